"""WaferStrategy: placement, mode choice and per-step costing from the real nonzeros."""
import numpy as np
import pytest

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L


def _model(strategy, sparsity=0.0, hidden=64):
    nn.utils.set_random_seed(0)
    with strategy.scope():
        model = nn.Sequential([L.Dense(hidden, activation="relu", input_shape=(32,),
                                       sparsity=sparsity),
                               L.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_layer_pipelined_placement_is_disjoint_and_within_the_wafer():
    cfg = wk.WaferConfig.small(32, 32)
    strategy = wk.WaferStrategy(cfg)
    _model(strategy)
    assert strategy.mode == "layer-pipelined"
    used = np.zeros((32, 32), int)
    for p in strategy.placements:
        r0, c0, R, C = p.region
        assert r0 + R <= 32 and c0 + C <= 32
        used[r0:r0 + R, c0:c0 + C] += 1
    assert used.max() == 1


def test_weight_streaming_when_the_model_does_not_fit():
    cfg = wk.WaferConfig.small(2, 2)
    strategy = wk.WaferStrategy(cfg)
    model = _model(strategy, hidden=512)
    assert strategy.mode == "weight-streaming" and "MiB" in strategy.reason
    x = np.random.default_rng(0).random((16, 32)).astype(np.float32)
    model.fit(x, np.arange(16) % 10, epochs=1, verbose=0)
    assert strategy.steps == 1 and strategy.step_cycles[0] > 0


def test_each_step_is_costed_from_its_own_nonzeros():
    """Two batches with different ReLU sparsity give different, exact useful MACs."""
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))
    model = _model(strategy, sparsity=0.5)
    first, second = strategy.placements
    rng = np.random.default_rng(1)
    y = np.arange(8) % 10
    counts = []
    for scale in (1.0, -0.5):        # the second batch drives most first-layer units negative
        x = (rng.random((8, 32)) * scale + (0.2 if scale > 0 else 0.0)).astype(np.float32)
        h = np.maximum(x @ model.layers[0].get_weights()[0] + model.layers[0].get_weights()[1], 0)
        W2 = model.layers[1].get_weights()[0]
        expected = int(((W2 != 0).astype(int).T @ (h.T != 0).astype(int)).sum())
        model.train_on_batch(x, y)
        assert second.last_useful == expected
        counts.append(second.last_useful)
    assert counts[0] != counts[1]


def test_report_prints_plots_and_serialises(tmp_path):
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))
    model = _model(strategy, sparsity=0.9)
    x = np.random.default_rng(0).random((64, 32)).astype(np.float32)
    model.fit(x, np.arange(64) % 10, batch_size=16, epochs=1, verbose=0)
    report = model.wafer_report()
    text = str(report)
    for word in ("region", "SRAM", "cycles/step", "bottleneck layer", "samples/s"):
        assert word in text
    d = report.to_dict()
    assert len(d["layers"]) == 2 and d["cycles_per_step"] > 0
    assert d["layers"][0]["input-gradient"] == 0      # nobody needs the input's gradient
    pytest.importorskip("matplotlib")
    report.plot(tmp_path / "placement.png")
    assert (tmp_path / "placement.png").stat().st_size > 1000


def test_wafer_report_needs_a_strategy():
    model = nn.Sequential([L.Dense(2, input_shape=(3,))])
    with pytest.raises(RuntimeError, match="WaferStrategy"):
        model.wafer_report()


def test_strategy_argument_checks():
    with pytest.raises(TypeError):
        wk.WaferStrategy("wse2")
    with pytest.raises(ValueError, match="mode"):
        wk.WaferStrategy(mode="pipelined-ish")


def _mlp64(strategy):
    nn.utils.set_random_seed(0)
    with strategy.scope():
        model = nn.Sequential([nn.Input((64,)), L.Dense(48, activation="relu"),
                               L.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_fit_places_the_model_for_the_batch_it_uses():
    """A model placed for batch 32 when built, trained by fit at batch 4, is placed again
    for 4 (on an 8 x 12 wafer the rectangles differ): its steps cost what the same steps
    cost on a model placed for 4 from the start. The epoch's smaller last batch (10
    samples: 4, 4, 2) keeps the placement."""
    cfg = wk.WaferConfig.small(8, 12)
    rng = np.random.default_rng(3)
    x = rng.random((10, 64)).astype(np.float32) - 0.3
    y = rng.integers(0, 10, 10)
    strategy = wk.WaferStrategy(cfg)
    model = _mlp64(strategy)
    at_32 = [p.region for p in strategy.placements]
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)

    reference = wk.WaferStrategy(cfg)
    ref_model = _mlp64(reference)
    reference.place(ref_model, batch=4)
    at_4 = [p.region for p in reference.placements]
    assert at_4 != at_32                   # else this test could not fail
    for lo, hi in [(0, 4), (4, 8), (8, 10)]:
        ref_model.train_on_batch(x[lo:hi], y[lo:hi])
    assert strategy.batch == 4 and [p.region for p in strategy.placements] == at_4
    assert strategy.steps == 3 and strategy.samples == 10
    assert strategy.step_cycles == reference.step_cycles
    unnamed = [[{k: v for k, v in row.items() if k != "layer"}
                for row in m.wafer_report().to_dict()["layers"]] for m in (model, ref_model)]
    assert unnamed[0] == unnamed[1]

    model.fit(x[:4], y[:4], batch_size=4, epochs=1, verbose=0)       # same batch: kept
    assert strategy.steps == 4
    model.train_on_batch(x[:8], y[:8])     # not fit: the placement stays that of batch 4
    assert strategy.batch == 4 and strategy.steps == 5


def test_a_failed_placement_for_fits_batch_leaves_the_old_one_whole():
    """fit at a batch the wafer cannot hold raises; the model stays placed as it was, and
    a later step is costed on that placement (not half-switched to weight streaming)."""
    cfg = wk.WaferConfig.small(8, 8)
    strategy = wk.WaferStrategy(cfg)
    model = _mlp64(strategy)
    before = (strategy.batch, strategy.mode, [(p.region, p.mapping) for p in strategy.placements])
    rng = np.random.default_rng(0)
    x = rng.random((20000, 64)).astype(np.float32)
    y = rng.integers(0, 10, 20000)
    with pytest.raises(wk.SramOverflowError):
        model.fit(x, y, batch_size=20000, epochs=1, verbose=0)
    assert (strategy.batch, strategy.mode,
            [(p.region, p.mapping) for p in strategy.placements]) == before
    model.train_on_batch(x[:32], y[:32])
    assert strategy.mode == "layer-pipelined" and strategy.steps >= 1


def test_a_fit_that_runs_no_step_leaves_train_on_batch_its_placement():
    cfg = wk.WaferConfig.small(8, 12)
    strategy = wk.WaferStrategy(cfg)
    model = _mlp64(strategy)
    rng = np.random.default_rng(0)
    x = rng.random((16, 64)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    for i in range(3):
        model.train_on_batch(x[4 * i:4 * i + 4], y[4 * i:4 * i + 4])
    regions = [p.region for p in strategy.placements]
    model.fit(x, y, batch_size=4, epochs=0, verbose=0)
    model.train_on_batch(x[:4], y[:4])
    assert strategy.batch == 32 and [p.region for p in strategy.placements] == regions
    assert strategy.steps == 4
