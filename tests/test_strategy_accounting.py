"""What the WaferStrategy's accounting may not change, and what it reports of the CPU: the
model trains to the same numbers with or without it; the per-step shortcut's memo of the
last pattern never answers for another one; any loop of train_on_batch steps gives the
report a CPU rate."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L
from wsekern.wafer import analytic, training
from wsekern.wafer.placement import WeightStats


def _mlp():
    return nn.Sequential([nn.Input((6, 8)),
                          L.Dense(16, activation="gelu", name="proj"),     # 3-D input
                          L.Flatten(),
                          L.Dense(24, activation="relu", name="hidden"),
                          L.Dense(5, activation="softmax", name="out")])


def _trained(strategy, steps=4):
    nn.utils.set_random_seed(0)
    if strategy is None:
        model = _mlp()
    else:
        with strategy.scope():
            model = _mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = np.maximum(rng.standard_normal((steps * 8, 6, 8)), 0).astype(np.float32)
    y = rng.integers(0, 5, steps * 8)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model


def test_training_under_the_strategy_changes_no_number_of_the_model():
    """The strategy only watches: the weights after a few Adam steps are the very floats
    plain training gives (a placed Dense now takes the fused product, GELU unfused, as a
    plain one takes it fused: a regression guard for that path)."""
    strategy = wk.WaferStrategy(wk.WaferConfig.small(32, 32))
    placed, plain = _trained(strategy), _trained(None)
    assert strategy.steps == 4 and len(strategy.placements) == 3
    for a, b in zip(placed.get_weights(), plain.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_dense_screen_memo_answers_only_for_the_same_pattern():
    """dense_screen_cycles keeps the figures of the last all-nonzero pattern it costed (a
    gradient or an input with no zero): a repeat of that shape returns them; a pattern with
    a zero (the same array changed in place too), another batch size or another config is
    costed afresh, as step_cost costs it."""
    cfg = wk.WaferConfig.small(16, 16)
    rng = np.random.default_rng(3)
    W = sps.csr_array(rng.standard_normal((20, 30)).astype(np.float32) + 5.0)
    stats, region = WeightStats(W), (0, 0, 4, 6)
    plan = analytic.dense_screen(stats, cfg, region)

    def reference(x_nz):
        r = analytic.weight_stationary(W, x_nz.astype(np.float32), cfg, region, exact=False,
                                       full=False, ops=training.Operands(W, x_nz, stats))
        return r.cycles, r.cycles_lower

    x_nz = rng.random((30, 8)) < 0.4
    first = analytic.dense_screen_cycles(plan, x_nz, cfg)
    assert first == reference(x_nz)
    assert analytic.dense_screen_cycles(plan, x_nz.copy(), cfg) == first
    assert "seen" not in plan                         # a pattern with a zero is not kept
    full = np.ones((30, 8), bool)
    once = analytic.dense_screen_cycles(plan, full, cfg)
    assert once == reference(full) != first and plan["seen"][2] == once
    assert analytic.dense_screen_cycles(plan, np.ones((30, 8), bool), cfg) == once
    # the same array with zeros written in (the count tells): costed afresh
    count = np.count_nonzero(x_nz)
    full[:] = False
    full.reshape(-1)[:count] = True
    assert analytic.dense_screen_cycles(plan, full, cfg) == reference(full)
    full[:] = True
    assert analytic.dense_screen_cycles(plan, full.view(np.uint8), cfg) == once  # 0/1 bytes
    wide = np.ones((30, 9), bool)
    assert analytic.dense_screen_cycles(plan, wide, cfg) == reference(wide)
    other = wk.WaferConfig.small(16, 16)              # equal, but not the plan's config
    assert analytic.dense_screen_cycles(plan, wide, other) == reference(wide)
    assert plan["seen"][0] is other


def test_a_custom_loop_of_train_on_batch_gives_the_report_a_cpu_rate():
    """train_on_batch clocks its own steps (the wafer costing left out): a loop that never
    calls fit still gets the CPU's samples/s in the report, from exactly the samples it
    trained on; a fit epoch then stands alone and later steps add to it. (Only fit fed the
    rate before: a custom loop's report said "this CPU -".)"""
    strategy = wk.WaferStrategy(wk.WaferConfig.small(32, 32))
    nn.utils.set_random_seed(0)
    with strategy.scope():
        model = nn.Sequential([nn.Input((12,)), L.Dense(16, activation="relu"),
                               L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 12)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    for n in (8, 8, 5):
        model.train_on_batch(x[:n], y[:n])
    report = model.wafer_report()
    assert strategy.steps == 3 and strategy.samples == 21
    assert report.cpu_samples == 21 and report.cpu_seconds > 0
    assert report.cpu_samples_per_s == pytest.approx(21 / report.cpu_seconds)
    assert "over 21 samples" in str(report)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert model.wafer_report().cpu_samples == 24          # the last epoch
    model.train_on_batch(x[:4], y[:4])
    assert model.wafer_report().cpu_samples == 28
    plain = nn.Sequential([nn.Input((12,)), L.Dense(3, activation="softmax")])
    plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    plain.train_on_batch(x[:6], y[:6])
    assert plain._cpu_samples == 6 and plain._cpu_seconds > 0      # no strategy needed


def test_fit_leaves_a_lazy_build_and_its_placement_out_of_the_cpu_time(monkeypatch):
    """A model built by its first batch inside fit was placed inside the epoch's clock, so
    the report's CPU rate counted the placement (8.4 s of 8.5 s for a 784-1024-10 MLP on
    wse2) where train_on_batch's did not. A fake clock that moves only while placing."""
    import types

    from wsekern.nn.models import model as model_mod
    clock = [0.0]
    monkeypatch.setattr(model_mod, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    strategy = wk.WaferStrategy(wk.WaferConfig.small(32, 32))
    place = strategy.place

    def slow_place(*args, **kwargs):
        clock[0] += 100.0
        return place(*args, **kwargs)
    monkeypatch.setattr(strategy, "place", slow_place)
    with strategy.scope():
        model = nn.Sequential([L.Dense(16, activation="relu"), L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((16, 12)).astype(np.float32), rng.integers(0, 3, 16),
              batch_size=8, epochs=1, verbose=0)
    assert clock[0] >= 100.0                       # it was placed inside fit
    assert model._cpu_samples == 16 and model._cpu_seconds < 100.0
