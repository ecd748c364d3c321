"""Deferred costing (``WaferStrategy(defer_steps=K)``): steps that follow every layer's plan
are queued with what they handed over and costed later, in order. Every figure a reader
can see is the one eager costing (K=1) gives: on dense, sparse, conv, embedding, attention
and weight-streaming models; read by a callback mid-epoch; with train_on_batch; with a
placement made again, a new weight structure or a queue cap in the middle of the queue;
with the scope exiting, or the strategy dropped, while steps are queued. Each test also
checks that steps really were queued, so that it could tell."""
import gc

import numpy as np
import pytest
from test_strategy_lazy import _same

import wsekern as wk
from wsekern import nn
from wsekern.errors import SramOverflowError
from wsekern.nn import callbacks as cbks
from wsekern.nn import layers as L
from wsekern.nn import placed
from wsekern.nn.models import GPT, GPTConfig

SAMPLES, BATCH = 45, 8              # five batches of 8 and a last one of 5


def _dense():
    return nn.Sequential([nn.Input((12,)), L.Dense(16, activation="relu", name="d1"),
                          L.Dense(10, activation="softmax", name="d2")])


def _sparse():
    return nn.Sequential([nn.Input((12,)),
                          L.Dense(24, activation="relu", sparsity=0.7, name="s1"),
                          L.Dense(16, activation="relu", sparsity=0.5, name="s2"),
                          L.Dense(10, activation="softmax", name="s3")])


def _conv():
    return nn.Sequential([nn.Input((8, 8, 2)),
                          L.Conv2D(4, 3, activation="relu", padding="same", name="c1"),
                          L.Conv2D(6, 3, activation="relu", sparsity=0.5, name="c2"),
                          L.Flatten(name="flat"), L.Dense(10, activation="softmax", name="cd")])


def _embedding():
    return nn.Sequential([nn.Input((6,), dtype="int32"), L.Embedding(20, 8, name="emb"),
                          L.Dense(12, activation="relu", name="e1"), L.Flatten(name="ef"),
                          L.Dense(10, activation="softmax", name="e2")])


def _x(build, rng, n):
    if build is _embedding:
        return rng.integers(0, 20, (n, 6)).astype(np.int32)
    shape = (8, 8, 2) if build is _conv else (12,)
    return (rng.random((n,) + shape) - 0.3).astype(np.float32)


MODELS = [(_dense, None), (_sparse, None), (_conv, None), (_embedding, None),
          (_sparse, "weight-streaming"), (_conv, "weight-streaming")]
IDS = ["dense", "sparse", "conv", "embedding", "sparse-streaming", "conv-streaming"]


class _QueueSeen(cbks.Callback):
    """Records the queue's length after each batch, reading nothing that flushes it."""

    def __init__(self, strategy):
        super().__init__()
        self.strategy, self.lengths = strategy, []

    def on_train_batch_end(self, batch, logs=None):
        self.lengths.append(len(_held(self.strategy)._queue))


def _figures(strategy, model):
    """Everything a reader can see of the costing, the measured CPU figures left out; read
    in an order that starts with a placement's figure (its reader must flush too)."""
    placements = [{"totals": dict(p.totals), "sram": p.sram_peak,
                   "zeros": p.activation_zeros, "costed": p.costed_steps,
                   "columns_max": p.columns_max, "columns": p.last_columns,
                   "latency": p.last_latency, "nnz": p.last_input_nnz,
                   "size": p.last_input_size, "out": p.last_output_size,
                   "region": tuple(int(v) for v in p.region) if p.region else None,
                   "forward": p.forward_figures(),
                   "reports": {k: r.to_dict() for k, r in p.reports.items()}}
                  for p in strategy.placements]
    edges = [(dict(e.totals), e.steps, e.last_latency) for e in strategy.edges]
    report = model.wafer_report()
    d = report.to_dict()
    d.pop("cpu_samples_per_s")
    return {"placements": placements, "edges": edges, "steps": strategy.steps,
            "samples": strategy.samples, "step_cycles": list(strategy.step_cycles),
            "attention": sorted((m.name, c) for m, c in strategy.attention_cycles.items()),
            "report": d, "text": str(report).rsplit("\n", 1)[0]}


def _setup(build, mode, K, cfg=None, loss="sparse_categorical_crossentropy", **kwargs):
    nn.utils.set_random_seed(0)
    strategy = wk.WaferStrategy(cfg or wk.WaferConfig.small(16, 16), mode=mode,
                                defer_steps=K, **kwargs)
    with strategy.scope():
        model = build()
        model.compile(optimizer="adam", loss=loss)
    return strategy, model


def _fit(build, mode, K, epochs=2, callbacks=(), **kwargs):
    strategy, model = _setup(build, mode, K, **kwargs)
    rng = np.random.default_rng(3)
    x, y = _x(build, rng, SAMPLES), rng.integers(0, 10, SAMPLES)
    seen = _QueueSeen(strategy)
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[seen, *[c(strategy) for c in callbacks]])
    return strategy, model, seen.lengths


def test_defer_steps_and_bytes_are_checked():
    for bad in (0, -1, 1.5, True, "8", None):
        with pytest.raises(ValueError, match="defer_steps must be an int >= 1"):
            wk.WaferStrategy(defer_steps=bad)
    for bad in (-1, 2.0, False):
        with pytest.raises(ValueError, match="defer_bytes must be an int >= 0"):
            wk.WaferStrategy(defer_bytes=bad)
    assert wk.WaferStrategy().defer_steps > 1         # deferred by default


@pytest.mark.parametrize("build,mode", MODELS, ids=IDS)
def test_deferred_figures_equal_eager_ones(build, mode):
    eager, eager_model, eager_queue = _fit(build, mode, 1)
    want = _figures(eager, eager_model)
    for K in (3, 16):
        deferred, model, queue = _fit(build, mode, K)
        assert max(eager_queue) == 0 and max(queue) == min(K - 1, 4)   # it queued steps
        _same(_figures(deferred, model), want)
    assert want["steps"] == 12


def _gpt():
    return GPT(GPTConfig(vocab_size=12, context=8, n_layer=1, n_head=2, d_model=16,
                         mlp_dim=32))


def test_attention_figures_equal_eager_ones():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 12, (20, 8))
    y = rng.integers(0, 12, (20, 8))
    got = []
    for K in (1, 16):
        nn.utils.set_random_seed(0)
        strategy = wk.WaferStrategy(wk.WaferConfig.small(64, 64), defer_steps=K)
        with strategy.scope():
            model = _gpt()
            model.compile()
        seen = _QueueSeen(strategy)
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[seen])
        got.append((_figures(strategy, model), max(seen.lengths)))
    assert got[0][1] == 0 and got[1][1] >= 2
    assert got[0][0]["attention"][0][1] > 0
    _same(got[1][0], got[0][0])


class _Reader(cbks.Callback):
    def __init__(self, strategy):
        super().__init__()
        self.strategy, self.read = strategy, []

    def on_train_batch_end(self, batch, logs=None):
        if batch % 2:        # every other batch: queued steps between the reads
            self.read.append(_figures(self.strategy, self.model))


@pytest.mark.parametrize("build,mode", MODELS[:3], ids=IDS[:3])
def test_a_callback_reading_mid_epoch_sees_every_step_so_far(build, mode):
    eager, eager_model, _ = _fit(build, mode, 1, callbacks=[_Reader])
    deferred, model, queue = _fit(build, mode, 16, callbacks=[_Reader])
    assert max(queue) >= 1
    _same(_figures(deferred, model), _figures(eager, eager_model))


def test_mid_epoch_reads_equal_eager_ones_read_for_read():
    got = []
    for K in (1, 16):
        strategy, model = _setup(_sparse, None, K)
        reader = _Reader(strategy)
        seen = _QueueSeen(strategy)
        rng = np.random.default_rng(3)
        model.fit(_x(_sparse, rng, SAMPLES), rng.integers(0, 10, SAMPLES), batch_size=BATCH,
                  epochs=2, shuffle=False, verbose=0, callbacks=[seen, reader])
        got.append((reader.read, seen.lengths))
    assert len(got[0][0]) == 6 and max(got[1][1]) >= 1
    _same(got[1][0], got[0][0])


@pytest.mark.parametrize("build,mode", [MODELS[1], MODELS[4]], ids=["sparse", "streaming"])
def test_train_on_batch_figures_equal_eager_ones(build, mode):
    got = []
    for K in (1, 16):
        strategy, model = _setup(build, mode, K)
        rng = np.random.default_rng(3)
        read = []
        for _ in range(5):
            model.train_on_batch(_x(build, rng, BATCH), rng.integers(0, 10, BATCH))
            read.append(_figures(strategy, model))
        got.append(read)
    _same(got[1], got[0])


class _Prune(cbks.Callback):
    """Prunes the dense model's first layer before batch 3: that step has a new W structure
    (costed when it is taken, after the queue); the ones after it follow a new plan."""

    def __init__(self, strategy):
        super().__init__()

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 3:
            self.model.get_layer("d1").set_sparsity(0.6)


def test_a_new_weight_structure_mid_queue_is_costed_at_its_step():
    eager, eager_model, _ = _fit(_dense, None, 1, epochs=1, callbacks=[_Prune])
    deferred, model, queue = _fit(_dense, None, 16, epochs=1, callbacks=[_Prune])
    assert queue[:3] == [0, 1, 2] and queue[3] == 0        # flushed by the new structure
    want = _figures(eager, eager_model)
    _same(_figures(deferred, model), want)
    # the pruning changed what the steps after it cost
    plain, plain_model, _ = _fit(_dense, None, 16, epochs=1)
    assert _figures(plain, plain_model)["step_cycles"] != want["step_cycles"]


class _PlaceAgain(cbks.Callback):
    """Places the model again, for a batch of 4, after batch 2: the steps before it are
    costed on the placement they had; the next step places again for fit's batch."""

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy

    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            self.strategy.place(self.model, 4)


def test_a_placement_made_mid_queue_costs_the_queue_on_the_old_one():
    eager, eager_model, _ = _fit(_sparse, None, 1, epochs=1, callbacks=[_PlaceAgain])
    deferred, model, queue = _fit(_sparse, None, 16, epochs=1, callbacks=[_PlaceAgain])
    assert queue[2] == 2 and queue[3] == 0
    _same(_figures(deferred, model), _figures(eager, eager_model))


def _sequences():
    """A Dense on (B, T, d) with T unknown at build: a longer sequence mid-epoch places it
    again (keeping the report's steps), after the queue is costed."""
    return nn.Sequential([nn.Input((None, 6)), L.Dense(12, activation="relu", name="q1"),
                          L.Dense(10, name="q2")])


def _sequence_fit(strategy, model, shapes, seed):
    rng = np.random.default_rng(seed)
    batches = [(rng.standard_normal((b, T, 6)).astype(np.float32),
                rng.standard_normal((b, T, 10)).astype(np.float32)) for b, T in shapes]
    seen = _QueueSeen(strategy)
    model.fit(iter(batches), epochs=1, steps_per_epoch=len(shapes), verbose=0,
              callbacks=[seen])
    return seen.lengths


def test_a_longer_sequence_mid_queue_places_again_after_the_queue():
    # (batch, T): T=5 streams more columns a sample than placed for; so does (2, 6), with
    # the columns of a step of (4, 3): it follows their plan, but must place again all
    # the same
    shapes = [(4, 3), (4, 3), (4, 3), (4, 5), (4, 5), (4, 3), (4, 3), (2, 6), (4, 3), (4, 3)]
    got = []
    for K in (1, 16):
        strategy, model = _setup(_sequences, None, K, loss="mse")
        lengths = _sequence_fit(strategy, model, shapes, 3)
        got.append((_figures(strategy, model), lengths))
    assert got[0][1] == [0] * 10 and got[1][1][:3] == [0, 1, 2] and got[1][1][3] == 0
    assert got[1][1][-1] >= 1
    _same(got[1][0], got[0][0])


def test_a_second_fit_with_another_batch_of_the_same_columns_places_again():
    # its first step streams the columns of the first fit's steps (4 x 3 = 3 x 4), fewer
    # a sample, and follows their plan, but fit's first step places again for fit's batch
    got = []
    for K in (1, 16):
        strategy, model = _setup(_sequences, None, K, loss="mse")
        _sequence_fit(strategy, model, [(3, 4)] * 4, 3)
        lengths = _sequence_fit(strategy, model, [(4, 3)] * 4, 4)
        got.append((_figures(strategy, model), lengths))
    # the model's count starts afresh on the new placement; the strategy's sum keeps both
    assert got[1][1] == [0, 1, 2, 3] and got[0][0]["steps"] == 8
    assert len(got[0][0]["step_cycles"]) == 4
    _same(got[1][0], got[0][0])


def test_operands_handed_over_as_plain_arrays_are_costed_at_their_step():
    """An operand the pattern pass does not take (a float16 array here) is kept as it came:
    it may be the layer's own tensor, overwritten by the next step, so its step is costed
    when it is taken, not queued."""
    got = []
    for K in (1, 16):
        strategy, model, _ = _fit(_sparse, None, K, epochs=1)
        rng = np.random.default_rng(9)
        handed = []
        for _ in range(3):
            for p in strategy.placements:
                p.needs_input_grad = p is not strategy.placements[0]
                N = p._primed[4]
                x = (rng.random((p.shape[1], N)) - 0.5).astype(np.float16)
                g = (rng.random((p.shape[0], N)) - 0.5).astype(np.float16)
                p.last_input, p.last_grad = x, g
                handed += [x, g]
            strategy.record_step(model, 5)
        for a in handed:                   # what a later step would do to a layer's tensor
            a[...] = 0
        got.append(_figures(strategy, model))
    _same(got[1], got[0])


def test_a_queue_over_its_byte_cap_is_costed_early():
    eager, eager_model, _ = _fit(_conv, None, 1)
    # about 5 KB a step of patterns here: a cap of 12 KB holds two or three steps
    capped, model, queue = _fit(_conv, None, 16, defer_bytes=12_000)
    assert 0 < max(queue) < 4 and _held(capped)._queue_bytes == 0
    _same(_figures(capped, model), _figures(eager, eager_model))


def _held(strategy):
    """The ModelPlacement of the strategy's one model (its queue, its costed cycles)."""
    (model,) = strategy.models
    return strategy.model_placement(model)


def _quiet_fit_ends(strategy):
    """fit's end without costing the queue: what a custom loop would leave."""
    def fit_ends(model):
        strategy.model_placement(model)._check_batch = False
    strategy.fit_ends = fit_ends


class _Stop(cbks.Callback):
    """Stops fit after batch 4, before the epoch's end reads (and costs) the queue."""

    def __init__(self, strategy):
        super().__init__()

    def on_train_batch_end(self, batch, logs=None):
        if batch == 4:
            raise KeyboardInterrupt("stopped by the test")


def _stopped(K, scope):
    """A fit stopped after five steps, fit_ends quiet: steps 2-5 left in the queue."""
    strategy, model = _setup(_sparse, None, K)
    _quiet_fit_ends(strategy)
    rng = np.random.default_rng(3)
    x, y = _x(_sparse, rng, SAMPLES), rng.integers(0, 10, SAMPLES)
    with scope(strategy):
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0,
                      callbacks=[_Stop(strategy)])
        assert len(_held(strategy)._queue) == (4 if K > 1 else 0)
    return strategy, model


def test_the_scope_exiting_costs_the_queue():
    eager, eager_model = _stopped(1, lambda s: s.scope())
    strategy, model = _stopped(16, lambda s: s.scope())
    assert not _held(strategy)._queue               # costed when the scope exited
    _same(_figures(strategy, model), _figures(eager, eager_model))


def test_queued_steps_outlive_a_dropped_strategy():
    import contextlib
    eager, _ = _stopped(1, lambda s: contextlib.nullcontext())
    want = [dict(p.totals) for p in eager.placements]
    strategy, model = _stopped(16, lambda s: contextlib.nullcontext())
    assert len(_held(strategy)._queue) == 4
    placements = list(strategy.placements)
    layers = [p.layer for p in placements]
    del strategy, model
    gc.collect()
    # a placement still held (placed.py's map of layers holds it weakly) keeps what its
    # strategy queued
    _same([dict(p.totals) for p in placements], want)
    assert [placed.placement_of(layer) for layer in layers] == placements


def test_a_planned_step_does_not_raise_even_on_the_densest_operands():
    """What is queued is a step that follows its plan: its costing reads the plan and the
    operands only. On a wafer where the layers barely fit, a planned step on operands with
    no zero at all (the most SRAM and work a batch can take) costs without raising."""
    cfg = wk.WaferConfig.small(8, 8)
    for mode in (None, "weight-streaming"):
        strategy, model, _ = _fit(_sparse, mode, 16, epochs=1, cfg=cfg)
        for p in strategy.placements:
            W, N = p.stats()[2], p._primed[4]
            M, K = p.shape
            assert p.follows_plan(cfg, strategy.mode, W, N)
            p.last_input = np.ones((K, N), np.float32)
            p.last_grad = np.ones((M, N), np.float32)
            try:
                p.cost_step(cfg, strategy.mode)
            except SramOverflowError as e:          # pragma: no cover - the claim
                pytest.fail(f"a planned step raised {e}")
