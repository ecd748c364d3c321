"""WaferStrategy sizes each layer for the activation columns it really streams: batch x OH*OW
for a Conv2D (its im2col), batch x T for a Dense on (B, T, d), batch for a Dense on (B, d).
Every count here is worked out by hand from the shapes."""
import numpy as np
import pytest

import wsekern as wk
from wsekern import bench_train, nn
from wsekern.errors import SramOverflowError
from wsekern.nn import layers as L
from wsekern.wafer import training


def _placed(strategy, layers):
    nn.utils.set_random_seed(0)
    with strategy.scope():
        model = nn.Sequential(layers)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model, {p.layer.name: p for p in strategy.placements}


def test_keras_io_convnet_trains_under_the_strategy_on_wse2():
    # was SramOverflowError on the first step: "sddmm, pattern 32x9, D=86528 on 16x9 PEs"
    case = bench_train.Case("keras.io MNIST convnet", "convnet", (), 256, 128)
    x, y = bench_train.case_data(case)
    strategy = wk.WaferStrategy(wk.WaferConfig.wse2())
    with strategy.scope():
        model = bench_train.wsekern_model(case)
    model.fit(x, y, batch_size=128, epochs=1, verbose=0)
    assert strategy.steps == 2 and all(c > 0 for c in strategy.step_cycles)
    # 28 -> conv 3x3 valid 26 -> pool 13 -> conv 3x3 valid 11 -> pool 5 -> Dense on (B, 1600)
    want = [128 * 26 * 26, 128 * 11 * 11, 128]
    rows = model.wafer_report().to_dict()["layers"]
    assert [r["columns_per_step"] for r in rows] == want
    assert [r["type"] for r in rows] == ["Conv2D", "Conv2D", "Dense"]
    # the first conv's weight gradient keeps rows of 86,528 gradients per PE: no rectangle
    # holds one, so the whole model streams its weights, and says so
    assert strategy.mode == "weight-streaming"
    assert "no layer-pipelined placement" in strategy.reason and "conv2d" in strategy.reason
    # the cause, not the advice to take the mode it took
    assert "output-gradient columns" in strategy.reason
    assert "mode='weight-streaming'" not in strategy.reason


@pytest.mark.parametrize("conv, hw, out_hw", [
    (dict(filters=6, kernel_size=3, padding="same"), (10, 10), (10, 10)),
    (dict(filters=4, kernel_size=3), (9, 7), (7, 5)),
    (dict(filters=5, kernel_size=(3, 2), strides=2), (9, 9), (4, 4)),
])
def test_conv_saved_activation_bytes_are_k_by_batch_oh_ow(conv, hw, out_hw):
    cfg = wk.WaferConfig.small(16, 16)
    cin, batch = 3, 8
    model, by_name = _placed(wk.WaferStrategy(cfg),
                             [nn.Input(hw + (cin,)), L.Conv2D(name="c", **conv)])
    p = by_name["c"]
    kh, kw = (conv["kernel_size"],) * 2 if isinstance(conv["kernel_size"], int) \
        else conv["kernel_size"]
    K, M = cin * kh * kw, conv["filters"]
    assert p.columns_per_sample == out_hw[0] * out_hw[1]
    assert p.columns(batch) == batch * out_hw[0] * out_hw[1]
    weights_etc = 4 * M * K * cfg.elem_bytes          # W, dW, Adam's m and v, all dense
    saved = K * batch * out_hw[0] * out_hw[1] * cfg.elem_bytes
    assert training.training_bytes(p.weight_matrix(), cfg, p.columns(batch)) == \
        weights_etc + saved


def test_dense_columns_per_sample_follow_the_middle_dimensions():
    cfg = wk.WaferConfig.small(16, 16)
    _, by_name = _placed(wk.WaferStrategy(cfg), [nn.Input((7, 12)), L.Dense(5, name="seq"),
                                                 L.Flatten(), L.Dense(3, name="flat")])
    assert by_name["seq"].columns_per_sample == 7       # (B, T, d): T columns per sample
    assert by_name["flat"].columns_per_sample == 1
    model, _ = _placed(wk.WaferStrategy(cfg), [nn.Input((7, 12)), L.Dense(5, name="seq"),
                                               L.Flatten(), L.Dense(3, name="flat")])
    x = np.random.default_rng(0).random((4, 7, 12)).astype(np.float32)
    model.train_on_batch(x, np.arange(4) % 3)
    rows = {r["layer"]: r for r in model.wafer_report().to_dict()["layers"]}
    assert rows["seq"]["columns_per_step"] == 4 * 7 and rows["flat"]["columns_per_step"] == 4


def test_a_convnet_too_big_to_stream_names_the_layer_and_the_bytes():
    cfg = wk.WaferConfig.small(16, 16)
    strategy = wk.WaferStrategy(cfg)
    model, by_name = _placed(strategy, [
        nn.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu", name="c1"),
        L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu", name="c2"), L.MaxPooling2D(2),
        L.Flatten(), L.Dense(10, activation="softmax", name="d")])
    # c2 at batch 128: 288 x 15,488 activations over 256 PEs, double-buffered
    per_pe = -(-288 * 128 * 11 * 11 // 256) * cfg.elem_bytes * 2
    assert per_pe + cfg.reserve_bytes > cfg.sram_bytes
    with pytest.raises(SramOverflowError, match=rf"'c2'.*288 x 15,488.*{per_pe:,} B per PE"):
        strategy.place(model, 128)


def test_layer_pipelined_when_requested_names_the_layer_that_fits_no_rectangle():
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), mode="layer-pipelined")
    with pytest.raises(SramOverflowError, match="'c1' does not fit any rectangle"):
        model, _ = _placed(strategy, [nn.Input((28, 28, 1)), L.Conv2D(8, 3, name="c1"),
                                      L.Flatten(), L.Dense(10, name="d")])
        strategy.place(model, 128)       # 128 x 26 x 26 gradients in each row of the SDDMM


def test_a_time_dimension_unknown_at_build_is_sized_from_fits_first_step():
    """Input((None, 64)) was placed for 1 column per sample, and fit's first step then
    overflowed (sddmm, D=12800); fit now re-places from what the step streamed, as the
    same model with Input((400, 64)) is placed."""
    T, B = 400, 32
    rng = np.random.default_rng(0)
    x = rng.random((B, T, 64)).astype(np.float32)
    y = np.zeros((B, 2), np.float32)
    reports = []
    for shape in [(None, 64), (T, 64)]:
        strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))
        nn.utils.set_random_seed(0)
        with strategy.scope():
            model = nn.Sequential([nn.Input(shape), L.Dense(64, name="seq"),
                                   L.GlobalAveragePooling1D(), L.Dense(2, name="o")])
            model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, batch_size=B, epochs=1, verbose=0)
        r = model.wafer_report().to_dict()
        layers = [(lr["layer"], lr["columns_per_step"], lr["region"]) for lr in r["layers"]]
        reports.append((strategy.mode, r["cycles_per_step"], layers))
    assert reports[0] == reports[1]
    assert reports[0][2][0][1] == B * T
