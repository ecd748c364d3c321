"""Review of deferred costing (session 23): what a user holding or reading costing state sees
under ``WaferStrategy(defer_steps=K)`` is what eager costing (K=1) gives."""
import numpy as np
from test_strategy_deferred import _QueueSeen, _gpt, _same, _setup, _sparse, _x

import wsekern as wk
from wsekern import nn
from wsekern.nn import callbacks as cbks


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
