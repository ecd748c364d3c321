"""What the strategy works out lazily or ahead of the epoch gives the figures it gave when
made in full, in the step: a report read with nothing built before it (weight streaming's
forward figures without the report's per-PE maps; layer-pipelined reports made one product
at a time) equals the one read after every report was built; an epoch whose last, shorter
batch was prepared at placement (``place(..., samples=)``, or ``fit`` telling the strategy)
costs every step as one that met it in the epoch."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L
from wsekern.wafer import analytic, placement, training


def _cnn():
    return nn.Sequential([nn.Input((10, 10, 2)),
                          L.Conv2D(6, 3, activation="relu", padding="same", name="c1"),
                          L.Conv2D(8, 3, activation="relu", sparsity=0.5, name="c2"),
                          L.Flatten(name="flat"), L.Dense(10, activation="softmax", name="d")])


def _mlp():
    return nn.Sequential([L.Dense(48, activation="relu", input_shape=(40,), sparsity=0.8,
                                  name="d1"),
                          L.Dense(24, activation="relu", name="d2"),
                          L.Dense(10, activation="softmax", name="d3")])


CASES = [(_cnn, (10, 10, 2), "weight-streaming"), (_cnn, (10, 10, 2), None),
         (_mlp, (40,), "weight-streaming"), (_mlp, (40,), None)]


def _run(build, shape, mode, read_all, samples=37, batch=8, place_samples=None):
    nn.utils.set_random_seed(0)
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), mode=mode)
    with strategy.scope():
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    if place_samples is not None:
        strategy.place(model, batch, samples=place_samples)
    rng = np.random.default_rng(7)
    x = (rng.random((samples,) + shape) - 0.3).astype(np.float32)
    model.fit(x, rng.integers(0, 10, samples), batch_size=batch, epochs=2, shuffle=False,
              verbose=0)
    reports = None
    if read_all:
        reports = [{k: r.to_dict() for k, r in p.reports.items()} for p in strategy.placements]
    report = model.wafer_report().to_dict()
    report.pop("cpu_samples_per_s")          # measured, not simulated
    return strategy, report, reports


def _same(a, b):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b and type(a) is type(b)


@pytest.mark.parametrize("build,shape,mode", CASES)
def test_a_report_read_alone_equals_one_after_every_report(build, shape, mode):
    strategy, alone, _ = _run(build, shape, mode, read_all=False)
    assert strategy.mode == (mode or strategy.mode)
    other, after, reports = _run(build, shape, mode, read_all=True)
    _same(alone, after)
    _same(strategy.step_cycles, other.step_cycles)
    # and the layers' reports, read after the report, are those read before it
    _same([{k: r.to_dict() for k, r in p.reports.items()} for p in strategy.placements],
          reports)


@pytest.mark.parametrize("build,shape,mode", CASES)
def test_the_last_batch_prepared_at_placement_costs_the_same(build, shape, mode):
    # 37 samples in batches of 8: the fifth batch has 5; fit tells the strategy, or the
    # placement is made for it (place(..., samples=)); the reference's build placement was
    # made for the guessed batch of 32 (none prepared for 8 or 5), fit then places again
    base, want, want_reports = _run(build, shape, mode, read_all=True)
    for place_samples in (37, 36, None):
        strategy, got, reports = _run(build, shape, mode, read_all=True,
                                      place_samples=place_samples)
        assert strategy.last_batch == 5          # fit's own count wins over a wrong one
        _same(got, want)
        _same(reports, want_reports)
        _same(strategy.step_cycles, base.step_cycles)
        assert len(strategy.step_cycles) == 10


def test_the_last_batch_is_prepared_before_the_epoch():
    # weight streaming keeps each N's timing on the weight's stats: the last batch's is
    # there once placed with the epoch's samples, before any step
    nn.utils.set_random_seed(0)
    cfg = wk.WaferConfig.small(16, 16)
    strategy = wk.WaferStrategy(cfg, mode="weight-streaming")
    with strategy.scope():
        model = _mlp()
    strategy.place(model, 8, samples=37)
    assert strategy.last_batch == 5
    for p in strategy.placements:
        s = p.stats()[0]
        for n in (8, 5):
            assert ("as-step", id(cfg), tuple(int(v) for v in p.region), n, 1) in s.cache
    strategy.place(model, 8, samples=40)          # whole batches: no last batch
    assert strategy.last_batch is None


@pytest.mark.parametrize("shape,density,N,region", [
    ((24, 40), 0.3, 16, (0, 0, 16, 16)), ((24, 40), 1.0, 5, (0, 0, 4, 8)),
    ((10, 72), 0.5, 300, (0, 0, 16, 16)), ((7, 3), 0.0, 9, (0, 0, 2, 3)),
    ((64, 9), 0.9, 1, (2, 3, 8, 5))])
def test_activation_stationary_figures_are_the_reports(shape, density, N, region):
    rng = np.random.default_rng(3)
    W = sps.random(*shape, density=density, format="csr", random_state=rng,
                   dtype=np.float32)
    W.data[:] = 1.0
    for cfg in (wk.WaferConfig.small(16, 16), wk.WaferConfig.wse2()):
        w = placement.WeightStats(W)
        got = analytic.activation_stationary_figures(w, N, cfg, region)
        X = np.zeros((shape[1], N), bool)
        r = analytic.activation_stationary(W, X, cfg, region, passes=1, full=False,
                                           ops=placement.Operands(W, X, w))
        assert got == (r.macs_performed, r.macs_dense, r.bottleneck)
        # and from a fresh stats (no timing kept yet)
        assert analytic.activation_stationary_figures(placement.WeightStats(W), N, cfg,
                                                      region) == got


def test_planned_forward_is_the_plans_forward_report():
    rng = np.random.default_rng(5)
    W = sps.random(30, 50, density=0.4, format="csr", random_state=rng, dtype=np.float32)
    cfg, region = wk.WaferConfig.small(16, 16), (0, 0, 16, 16)
    s, s_t = placement.WeightStats(W), placement.WeightStats(W.T.tocsr())
    plan = training.step_plan(cfg, "weight-streaming", region, W, s, s_t, 12, True)
    got = training.planned_forward(plan)
    fwd = training.planned_reports(plan, np.zeros(50, np.int64), np.zeros(30, np.int64))
    fwd = fwd["forward"]
    assert got == (fwd.macs_performed, fwd.macs_dense, fwd.bottleneck)
    assert training.planned_forward(plan) == got            # the report made, then read
    assert training.planned_forward(None) is None
    lp = training.step_plan(cfg, "layer-pipelined", region, W, s, s_t, 12, True)
    assert training.planned_forward(lp) is None


def test_a_wrong_count_of_samples_is_refused():
    """place(..., samples=) takes a count of samples; anything else is refused with a
    message (in a child process)."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import wsekern as wk
        from wsekern import nn
        from wsekern.nn import layers as L
        strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))
        with strategy.scope():
            model = nn.Sequential([nn.Input((8,)), L.Dense(4)])
        strategy.place(model, 8, samples=20)
        cases = [lambda s=s: strategy.place(model, 8, samples=s)
                 for s in (-1, 2.5, "20", True, [20])]
        # placed at the guessed batch (batch=None), the count is checked all the same
        cases += [lambda s=s: strategy.place(model, None, samples=s) for s in (-1, "20")]
        assert strategy.last_batch == 4 and strategy.batch == 8
    """, 7, needles=("samples",))


@pytest.mark.parametrize("kwargs,last", [
    ({}, 5), ({"steps_per_epoch": 3}, None), ({"steps_per_epoch": 5}, 5),
    ({"validation_split": 0.25}, 3), ({"batch_size": 37}, None)])
def test_fit_tells_the_strategy_its_last_batch(kwargs, last):
    # 37 samples: batches of 8 leave 5; three steps of 8 leave none; a quarter held out
    # leaves 27 (3); fit's own figures are those of the same fit told nothing
    def run(tell):
        nn.utils.set_random_seed(0)
        strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), mode="weight-streaming")
        with strategy.scope():
            model = _mlp()
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        if not tell:
            strategy.fit_begins = lambda model, *a: type(strategy).fit_begins(strategy, model)
        rng = np.random.default_rng(7)
        x = (rng.random((37, 40)) - 0.3).astype(np.float32)
        model.fit(x, rng.integers(0, 10, 37), **{"batch_size": 8, **kwargs}, shuffle=False,
                  verbose=0)
        report = model.wafer_report().to_dict()
        report.pop("cpu_samples_per_s")
        return strategy, report
    strategy, got = run(True)
    assert strategy.last_batch == last
    other, want = run(False)
    assert other.last_batch is None
    _same(got, want)
    _same(strategy.step_cycles, other.step_cycles)


def test_a_fit_of_unknown_length_forgets_the_last_batch_of_the_fit_before():
    # a fit on a generator does not know its epoch: the last batch the fit before it
    # announced must not be prepared again for steps that never come
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), mode="weight-streaming")
    with strategy.scope():
        model = _mlp()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    x = (rng.random((37, 40)) - 0.3).astype(np.float32)
    y = rng.integers(0, 10, 37)
    model.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    assert strategy.last_batch == 5

    def batches():
        for i in range(0, 32, 8):
            yield x[i:i + 8], y[i:i + 8]
    model.fit(batches(), epochs=1, verbose=0)
    assert strategy.last_batch is None
