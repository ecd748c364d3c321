"""Review of deferred costing (session 23): what a user holding or reading costing state sees
under ``WaferStrategy(defer_steps=K)`` is what eager costing (K=1) gives."""
import numpy as np
import pytest
from test_strategy_deferred import _figures, _gpt, _held, _QueueSeen, _same, _setup, _sparse, _x

import wsekern as wk
from wsekern import nn
from wsekern.nn import callbacks as cbks
from wsekern.nn import columns


class _Held(cbks.Callback):
    """Takes the strategy's lists and dicts once, after the first step (fit's first step
    places again, making new ones), and reads those same objects after every batch."""

    def __init__(self, strategy):
        super().__init__()
        self.strategy, self.seen = strategy, []

    def on_train_batch_end(self, batch, logs=None):
        s = self.strategy
        if batch == 0:
            self.held = (s.step_cycles, s.attention_cycles, s.placements[0].totals,
                         [e.totals for e in s.edges])
        cycles, attention, totals, edges = self.held
        self.seen.append((len(cycles), list(cycles), sorted(attention.values()),
                          dict(totals), [dict(e) for e in edges]))


def _held_fit(K, build):
    nn.utils.set_random_seed(0)
    if build is _gpt:
        strategy = wk.WaferStrategy(wk.WaferConfig.small(64, 64), defer_steps=K)
        with strategy.scope():
            model = _gpt()
            model.compile()
        rng = np.random.default_rng(5)
        x, y, batch = rng.integers(0, 12, (24, 8)), rng.integers(0, 12, (24, 8)), 4
    else:
        strategy, model = _setup(build, None, K)
        rng = np.random.default_rng(3)
        x, y, batch = _x(build, rng, 45), rng.integers(0, 10, 45), 8
    held, seen = _Held(strategy), _QueueSeen(strategy)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0,
              callbacks=[seen, held])
    return held.seen, seen.lengths, strategy


def test_a_list_or_dict_held_by_a_reader_is_what_eager_costing_shows():
    """A callback that keeps ``strategy.step_cycles`` (or a placement's, a link's totals, the
    attention cycles) and reads the same object later saw every step under eager costing
    but only the steps costed before its queue under deferred costing: a silent lag. They
    are read as copies now, the same under both."""
    for build in (_sparse, _gpt):
        eager, eager_queue, strategy = _held_fit(1, build)
        deferred, queue, _ = _held_fit(16, build)
        assert max(eager_queue) == 0 and max(queue) >= 2          # steps were queued
        assert len(eager) >= 5 and strategy.edges
        _same(deferred, eager)


def test_a_list_or_dict_read_cannot_change_the_costing():
    """What a reader is handed is its own: changing it leaves the strategy's figures as
    they were."""
    strategy, model = _setup(_sparse, None, 16)
    rng = np.random.default_rng(3)
    model.fit(_x(_sparse, rng, 45), rng.integers(0, 10, 45), batch_size=8, epochs=1,
              shuffle=False, verbose=0)
    want = (list(strategy.step_cycles), dict(strategy.placements[0].totals),
            dict(strategy.edges[0].totals))
    strategy.step_cycles.append(1.0)
    strategy.placements[0].totals["forward"] = -1.0
    strategy.edges[0].totals["cycles"] = -1.0
    _same((strategy.step_cycles, strategy.placements[0].totals, strategy.edges[0].totals),
          want)


def test_a_link_into_a_layer_that_handed_no_step_over_reads_that_steps_needs():
    """A link's backward wavelets read whether its destination needs dX. A layer that ran
    forward but got no gradient is left out of the step's costing, yet its link is costed
    with its ``needs_input_grad`` as the step's forward set it; a queued step read the
    value a later step's forward had set. (Handed over by hand: the public paths found so
    far keep it constant for such a layer.)"""
    got = []
    for K in (1, 16):
        strategy, model = _setup(_sparse, None, K)
        rng = np.random.default_rng(3)
        model.fit(_x(_sparse, rng, 16), rng.integers(0, 10, 16), batch_size=8, epochs=1,
                  shuffle=False, verbose=0)
        first, middle, last = strategy.placements
        link = [e for e in strategy.edges if e.dst is middle][0]
        before = dict(link.totals)
        lengths = []
        for step in range(4):
            # the first and last layers hand their step over; the middle one ran forward
            # (needs dX every other step) but got no gradient
            for p in (first, last):
                N = p._primed[4]
                p.last_input = columns.taken(rng.random((p.shape[1], N)).astype(np.float32))
                p.last_grad = columns.taken(rng.random((p.shape[0], N)).astype(np.float32))
            middle.needs_input_grad = bool(step % 2)
            strategy.record_step(model, 8)
            lengths.append(len(_held(strategy)._queue))
        got.append(({k: link.totals[k] - before[k] for k in before}, lengths))
    assert got[0][1] == [0] * 4 and got[1][1] == [1, 2, 3, 4]
    assert got[0][0]["backward_wavelets"] > 0
    _same(got[1][0], got[0][0])


def test_a_step_whose_gradient_has_other_columns_raises_at_the_step():
    """A layer handing over a gradient of other columns than its input (a layer called
    twice in a step on different shapes leaves the last call's input and the first call's
    gradient) makes eager costing raise at that step; queued, it raised later, at whatever
    read the costing (a report, ``strategy.steps``). It is costed at its step now."""
    for K in (1, 16):
        strategy, model = _setup(_sparse, None, K)
        rng = np.random.default_rng(3)
        model.fit(_x(_sparse, rng, 16), rng.integers(0, 10, 16), batch_size=8, epochs=1,
                  shuffle=False, verbose=0)
        steps = strategy.steps
        for p in strategy.placements:
            N = p._primed[4]
            p.last_input = columns.taken(rng.random((p.shape[1], N)).astype(np.float32))
            p.last_grad = columns.taken(rng.random((p.shape[0], N + 1)).astype(np.float32))
        with pytest.raises(ValueError, match="the plan is for steps of"):
            strategy.record_step(model, 8)
        assert not _held(strategy)._queue and strategy.steps == steps


def _train_on_batches(K, steps=7, read_between=False):
    strategy, model = _setup(_sparse, None, K)
    rng = np.random.default_rng(3)
    lengths = []
    for _ in range(steps):
        model.train_on_batch(_x(_sparse, rng, 8), rng.integers(0, 10, 8))
        lengths.append(len(_held(strategy)._queue))
        if read_between:
            strategy.steps          # a reader outside the steps costs the queue
    return strategy, model, lengths


def test_train_on_batch_queues_its_steps_and_ends_with_eager_figures():
    """train_on_batch read ``cost_seconds`` around its step to leave the costing out of its
    CPU time; that read costed the queue at every step, so nothing was ever deferred
    (``wsekern train ... --wafer`` steps with train_on_batch). It reads the costing clock
    as it stands now; the figures are eager costing's."""
    eager, eager_model, eager_lengths = _train_on_batches(1)
    strategy, model, lengths = _train_on_batches(16)
    assert max(eager_lengths) == 0 and lengths == [0, 1, 2, 3, 4, 5, 6]
    _same(_figures(strategy, model), _figures(eager, eager_model))


class _Clock:
    """time.perf_counter advancing a microsecond a call, and an hour for each step costed."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1e-6
        return self.t


def test_train_on_batch_cpu_seconds_leave_every_costing_out(monkeypatch):
    """Whether the queue is costed inside a train_on_batch (its 16th step) or by a reader
    between them, no step's costing (an hour each on this clock) reaches the CPU time."""
    import time

    from wsekern.nn.strategy import ModelPlacement
    for read_between in (False, True):
        clock = _Clock()
        monkeypatch.setattr(time, "perf_counter", clock)
        cost = ModelPlacement._cost

        def slow(self, batch_size, start, cost=cost, clock=clock):
            clock.t += 3600.0
            return cost(self, batch_size, start)
        monkeypatch.setattr(ModelPlacement, "_cost", slow)
        strategy, model, lengths = _train_on_batches(16, steps=20, read_between=read_between)
        assert max(lengths) == (1 if read_between else 15)
        assert strategy.steps == 20 and strategy.cost_seconds > 20 * 3600
        assert 0 < model._cpu_seconds < 1.0
        monkeypatch.undo()
