"""When and for what WaferStrategy places a model: the build's batch is a guess (a
requested layer-pipelined placement that fails for it waits for the real batch), a
sequence longer than the placement was sized for is placed again (the report keeps its
steps), layers inside a nested model are placed, and a layer's columns per step is the
most any step streamed."""
import numpy as np
import pytest

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L


def _build(strategy, layers, loss="sparse_categorical_crossentropy"):
    nn.utils.set_random_seed(0)
    with strategy.scope():
        model = nn.Sequential(layers)
        model.compile(optimizer="adam", loss=loss)
    return model


def _conv_layers():
    return [nn.Input((40, 40, 1)), L.Conv2D(8, 3, name="c1"), L.Flatten(),
            L.Dense(10, name="d")]


def test_layer_pipelined_requested_waits_for_the_batch_fit_uses():
    """The conv's weight gradient holds rows of batch x 38 x 38 gradients on each PE: at
    the build's guessed batch (32) no rectangle of a 16 x 16 wafer holds them, at fit's
    batch (4) one does. The build used to raise; now fit places for its batch."""
    cfg = wk.WaferConfig.small(16, 16)
    with pytest.raises(wk.SramOverflowError, match="'c1' does not fit any rectangle"):
        wk.WaferStrategy(cfg, mode="layer-pipelined").place(
            _build(wk.WaferStrategy(cfg), _conv_layers()), 32)
    strategy = wk.WaferStrategy(cfg, mode="layer-pipelined")
    model = _build(strategy, _conv_layers())
    assert strategy.mode is None and "not placed yet" in strategy.reason
    assert "not placed yet" in str(model.wafer_report())     # no layer row, no crash
    assert model.wafer_report().to_dict()["layers"] == []
    rng = np.random.default_rng(0)
    x = rng.random((8, 40, 40, 1)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert strategy.mode == "layer-pipelined" and strategy.batch == 4
    assert strategy.steps == 2 and all(c > 0 for c in strategy.step_cycles)
    reference = wk.WaferStrategy(cfg, mode="layer-pipelined")
    reference.place(_build(wk.WaferStrategy(cfg), _conv_layers()), 4)
    assert [p.region for p in strategy.placements] == \
        [p.region for p in reference.placements]


def test_layer_pipelined_requested_still_raises_at_a_batch_that_never_fits():
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), mode="layer-pipelined")
    model = _build(strategy, _conv_layers())
    x = np.ones((64, 40, 40, 1), np.float32)
    with pytest.raises(wk.SramOverflowError, match="'c1' does not fit any rectangle"):
        model.train_on_batch(x, np.zeros(64, np.int64))
    assert strategy.mode is None and strategy.steps == 0     # left as it was: unplaced


def test_columns_per_step_is_the_most_a_step_streamed():
    """10 samples at batch 4: steps of 4, 4 and 2 samples; the report gives 4 (it gave the
    last step's 2)."""
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))
    model = _build(strategy, [nn.Input((6,)), L.Dense(5, activation="relu", name="h"),
                              L.Dense(3, name="o")])
    rng = np.random.default_rng(1)
    model.fit(rng.random((10, 6)).astype(np.float32), rng.integers(0, 3, 10), batch_size=4,
              epochs=1, shuffle=False, verbose=0)
    assert strategy.steps == 3
    rows = model.wafer_report().to_dict()["layers"]
    assert [r["columns_per_step"] for r in rows] == [4, 4]


def test_layers_of_a_nested_model_are_placed_and_costed():
    cfg = wk.WaferConfig.small(16, 16)
    strategy = wk.WaferStrategy(cfg)
    nn.utils.set_random_seed(0)
    with strategy.scope():
        inner = nn.Sequential([nn.Input((8,)), L.Dense(12, activation="relu", name="in1"),
                               L.Dense(6, activation="relu", name="in2")], name="inner")
        model = nn.Sequential([nn.Input((8,)), inner, L.Dense(3, name="out")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert [p.layer.name for p in strategy.placements] == ["in1", "in2", "out"]
    rng = np.random.default_rng(2)
    model.fit(rng.random((8, 8)).astype(np.float32), rng.integers(0, 3, 8), batch_size=4,
              epochs=1, verbose=0)
    rows = {r["layer"]: r for r in model.wafer_report().to_dict()["layers"]}
    assert set(rows) == {"in1", "in2", "out"}
    assert all(rows[n]["forward"] > 0 and rows[n]["columns_per_step"] == 4 for n in rows)
    # the regions side by side, disjoint
    cols = sorted((r["region"][1], r["region"][1] + r["region"][3]) for r in rows.values())
    assert all(a[1] <= b[0] for a, b in zip(cols, cols[1:]))


def _seq_model(strategy):
    return _build(strategy, [nn.Input((None, 16)), L.Dense(16, name="seq"),
                             L.GlobalAveragePooling1D(), L.Dense(2, name="o")], loss="mse")


def test_a_longer_sequence_later_is_placed_again_and_the_report_keeps_its_steps():
    """Placed at fit's first step for T = 2; a later step of T = 300 used to be costed on
    that placement (sized for 2 columns per sample). Now the model is placed again for
    the longer sequence, as a model whose first step had T = 300 is, and the report keeps
    the steps before."""
    cfg = wk.WaferConfig.small(16, 16)
    B = 8
    rng = np.random.default_rng(3)
    short = rng.random((B, 2, 16)).astype(np.float32)
    long = rng.random((B, 300, 16)).astype(np.float32)
    y = np.zeros((B, 2), np.float32)
    strategy = wk.WaferStrategy(cfg)
    model = _seq_model(strategy)
    model.fit(short, y, batch_size=B, epochs=1, verbose=0)
    at_short = [p.region for p in strategy.placements]
    model.train_on_batch(long, y)
    reference = wk.WaferStrategy(cfg)
    ref_model = _seq_model(reference)
    ref_model.fit(long, y, batch_size=B, epochs=1, verbose=0)
    at_long = [p.region for p in reference.placements]
    assert at_short != at_long             # else this test could not fail
    assert [p.region for p in strategy.placements] == at_long
    assert strategy.steps == 2 and len(strategy.step_cycles) == 2
    rows = {r["layer"]: r for r in model.wafer_report().to_dict()["layers"]}
    assert rows["seq"]["columns_per_step"] == B * 300
    # the long step costs what it costs on the reference placement
    assert strategy.step_cycles[1] == reference.step_cycles[0]
    model.train_on_batch(short, y)           # shorter again: costed on the placement held
    assert [p.region for p in strategy.placements] == at_long and strategy.steps == 3
