"""What a placed layer hands the wafer strategy (wsekern.nn.columns) equals what the
im2col it replaces gives: the same pattern, the same counts per row, the same gradient
pattern behind a fused ReLU."""
import numpy as np
import pytest

from wsekern.nn import columns


def _im2col_loops(x, pads, kernel, strides, dilation):
    """im2col(x) (C*kh*kw x B*OH*OW), rows (c, i, j), columns (b, oh, ow), by loops over
    the NHWC input padded with zeros."""
    (t, b), (l, r) = pads
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    B, Hp, Wp, C = xp.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilation
    OH = (Hp - ((kh - 1) * dh + 1)) // sh + 1
    OW = (Wp - ((kw - 1) * dw + 1)) // sw + 1
    cols = np.zeros((C, kh, kw, B, OH, OW), x.dtype)
    for i in range(kh):
        for j in range(kw):
            for oh in range(OH):
                for ow in range(OW):
                    cols[:, i, j, :, oh, ow] = xp[:, oh * sh + i * dh, ow * sw + j * dw, :].T
    return cols.reshape(C * kh * kw, B * OH * OW)


CASES = [
    ((2, 6, 5, 3), ((0, 0), (0, 0)), (3, 3), (1, 1), (1, 1)),
    ((3, 7, 7, 2), ((1, 1), (1, 1)), (3, 3), (1, 1), (1, 1)),
    ((2, 9, 8, 4), ((1, 2), (0, 1)), (3, 2), (2, 3), (1, 1)),
    ((1, 10, 9, 2), ((2, 2), (1, 0)), (2, 3), (1, 2), (2, 2)),
    ((2, 5, 5, 1), ((0, 0), (0, 0)), (5, 5), (1, 1), (1, 1)),
    ((4, 3, 4, 5), ((0, 0), (0, 0)), (1, 1), (2, 1), (1, 1)),
]


@pytest.mark.parametrize("shape, pads, kernel, strides, dilation", CASES)
@pytest.mark.parametrize("zeros", [0.0, 0.6, 1.0])
def test_conv_columns_equal_the_im2col_pattern(shape, pads, kernel, strides, dilation, zeros):
    rng = np.random.default_rng(sum(shape) + int(10 * zeros))
    x = rng.standard_normal(shape).astype(np.float32)
    x[rng.random(shape) < zeros] = 0
    x[rng.random(shape) < 0.05] = -0.0                # a negative zero is a zero
    if zeros < 1:
        x.flat[rng.integers(x.size)] = np.nan            # NaN is not zero
    want = _im2col_loops(x, pads, kernel, strides, dilation) != 0
    cc = columns.ConvColumns(x, pads, kernel, strides, dilation)
    assert cc.shape == want.shape
    got = cc.pattern()
    assert got.dtype == np.bool_ and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    counts = cc.row_counts()
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, want.sum(axis=1))
    np.testing.assert_array_equal(columns.row_counts(cc), want.sum(axis=1))
    np.testing.assert_array_equal(columns.pattern(cc), want)


def test_conv_columns_equal_the_layers_nchw_im2col():
    """The rows in the order of wsekern.conv.im2col on the NCHW input, groups included
    (what the strategy was handed before)."""
    from wsekern import conv as ck
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((3, 8, 7, 4)), 0).astype(np.float32)
    pads = ((1, 1), (2, 0))
    for groups in (1, 2, 4):
        xn = np.pad(x.transpose(0, 3, 1, 2), ((0, 0), (0, 0)) + pads)
        g = ck.ConvGeometry.of(xn.shape, (4, 4 // groups, 3, 2), (1, 2), 0, (2, 1), groups)
        want = ck.im2col(xn, g).reshape(-1, g.B * g.OH * g.OW) != 0
        cc = columns.ConvColumns(x, pads, (3, 2), (1, 2), (2, 1))
        np.testing.assert_array_equal(cc.pattern(), want)
        np.testing.assert_array_equal(cc.row_counts(), want.sum(axis=1))


def test_sample_major_with_a_fused_relu_is_the_pre_activation_gradient_pattern():
    from wsekern.nn import activations
    from wsekern.nn.tensor import Tensor
    rng = np.random.default_rng(1)
    z = rng.standard_normal((50, 6)).astype(np.float32)
    z[rng.random(z.shape) < 0.2] = 0
    g = rng.standard_normal(z.shape).astype(np.float32)
    g[rng.random(g.shape) < 0.3] = 0
    g[0, 0], g[1, 1], g[2, 2] = np.nan, np.inf, -np.inf
    zt = Tensor(z, requires_grad=True)
    out = activations.relu(zt)
    out.backward(g)                                   # the unfused ReLU's own backward
    want = (zt.grad != 0).T
    sm = columns.SampleMajor(g, out.data > 0)
    assert sm.shape == want.shape
    np.testing.assert_array_equal(sm.pattern(), want)
    np.testing.assert_array_equal(sm.row_counts(), want.sum(axis=1))
    plain = columns.SampleMajor(g)
    np.testing.assert_array_equal(plain.pattern(), (g != 0).T)
    np.testing.assert_array_equal(columns.row_counts(g.T), (g != 0).T.sum(axis=1))


# -- a placed layer keeps its fused ReLU and hands the strategy what an unfused one does --
def _recording(monkeypatch):
    """Every costed step's (layer name, X pattern, G pattern), read before it is costed."""
    from wsekern.nn.strategy import LayerPlacement
    seen = []
    original = LayerPlacement.cost_step

    def cost_step(self, cfg, mode):
        seen.append((self.layer.name, columns.pattern(self.last_input).copy(),
                     columns.pattern(self.last_grad).copy()))
        return original(self, cfg, mode)
    monkeypatch.setattr(LayerPlacement, "cost_step", cost_step)
    return seen


def _conv_model(fused, sparsity):
    from wsekern import nn
    from wsekern.nn import layers as L

    def act(name):       # fused: in the layer; else a layer of its own after it
        return [] if fused else [L.Activation("relu", name=name + "_relu")]
    return [nn.Input((9, 8, 2)),
            L.Conv2D(4, 3, padding="same", name="c1", activation="relu" if fused else None,
                     sparsity=sparsity), *act("c1"),
            L.Conv2D(5, (2, 3), strides=(1, 2), name="c2",
                     activation="relu" if fused else None), *act("c2"),
            L.Flatten(),
            L.Dense(16, name="d1", activation="relu" if fused else None, sparsity=0.8),
            *act("d1"),
            L.Dense(3, name="d2")]


@pytest.mark.parametrize("mode", ["layer-pipelined", "weight-streaming"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5])
def test_fused_relu_hands_the_strategy_the_unfused_patterns_and_costs(monkeypatch, mode,
                                                                     sparsity):
    import wsekern as wk
    from wsekern import nn
    seen = _recording(monkeypatch)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 9, 8, 2)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = 0
    y = rng.integers(0, 3, 6)
    runs = {}
    for fused in (True, False):
        nn.utils.set_random_seed(0)
        strategy = wk.WaferStrategy(wk.WaferConfig.small(24, 24), mode=mode)
        with strategy.scope():
            model = nn.Sequential(_conv_model(fused, sparsity))
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        seen.clear()
        model.train_on_batch(x, y)
        rows = {r["layer"]: r for r in model.wafer_report().to_dict()["layers"]}
        runs[fused] = (list(seen), rows, list(strategy.step_cycles))
    (seen_f, rows_f, cyc_f), (seen_u, rows_u, cyc_u) = runs[True], runs[False]
    assert [s[0] for s in seen_f] == [s[0] for s in seen_u] == ["c1", "c2", "d1", "d2"]
    for (name, xf, gf), (_, xu, gu) in zip(seen_f, seen_u):
        np.testing.assert_array_equal(xf, xu, err_msg=name)
        np.testing.assert_array_equal(gf, gu, err_msg=name)
        assert 0 < gf.sum() < gf.size or name == "d2", name   # the ReLU zeroed some
    assert cyc_f == cyc_u
    assert rows_f == rows_u


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (1, 5), (254, 3), (255, 3), (256, 3),
                                   (765, 8), (1000, 13), (86528 // 8, 32), (128, 13, 13, 4)])
def test_column_counts_equal_count_nonzero(shape):
    rng = np.random.default_rng(len(shape) + shape[0])
    for density in (0.0, 0.3, 1.0):
        nz = rng.random(shape) < density
        got = columns.column_counts(nz)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, np.count_nonzero(nz, axis=0).reshape(-1))
    if len(shape) != 2:
        return
    a = rng.standard_normal(shape).astype(np.float32).T            # K x N, as Dense gives
    a[rng.random(a.shape) < 0.5] = 0
    np.testing.assert_array_equal(columns.row_counts(a), np.count_nonzero(a, axis=1).reshape(-1))


def test_streaming_reports_are_made_per_product_when_read():
    """A weight-streaming plan's reports: each product's made when first read, field for
    field step_cost's (the forward alone, as the strategy's report reads it, makes one)."""
    import dataclasses

    import scipy.sparse as sps

    import wsekern as wk
    from wsekern.wafer import training
    from wsekern.wafer.placement import WeightStats
    rng = np.random.default_rng(5)
    cfg = wk.WaferConfig.small(12, 12)
    W = sps.csr_array(rng.standard_normal((10, 14)) * (rng.random((10, 14)) < 0.4))
    stats, stats_t = WeightStats(W), WeightStats(sps.csr_array(W.T))
    region = (0, 0, 12, 12)
    x_nz, g_nz = rng.random((14, 9)) < 0.5, rng.random((10, 9)) < 0.7
    for needs in (True, False):
        plan = training.step_plan(cfg, "weight-streaming", region, W, stats, stats_t, 9, needs)
        got = training.planned_reports(plan, x_nz.sum(axis=1), g_nz.sum(axis=1))
        assert got["forward"].cycles == plan["parts"]["forward"]
        assert sorted(plan["made"]) == ["forward"]
        want = training.step_cost(cfg, "weight-streaming", region, W, stats, stats_t, x_nz,
                                  g_nz, needs)[1]
        assert list(got) == list(want) and len(got) == len(want)
        for k, r in want.items():
            a, b = dataclasses.asdict(got[k]), dataclasses.asdict(r)
            for f in a:
                if isinstance(a[f], np.ndarray):
                    np.testing.assert_array_equal(a[f], b[f], err_msg=f"{k}.{f}")
                else:
                    assert a[f] == b[f], (k, f)
        with pytest.raises(KeyError):
            got["update"]


@pytest.mark.parametrize("mode", ["layer-pipelined", "weight-streaming"])
@pytest.mark.parametrize("groups", [1, 2])
def test_a_pruned_convs_useful_macs_are_the_closed_form_count(mode, groups):
    """Column k of the strategy's W meets row k of the im2col: a pruned conv on a sparse
    input (one channel all zero) reports the forward MACs with two nonzero operands that a
    direct count over output pixels, taps, channels and filters gives. (W's columns were
    once in the kernel's (kh, kw, channel) order against the im2col's (channel, kh, kw).)"""
    import wsekern as wk
    from wsekern import nn
    from wsekern.nn import layers as L
    nn.utils.set_random_seed(0)
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), mode=mode)
    with strategy.scope():
        model = nn.Sequential([nn.Input((7, 6, 4)),
                               L.Conv2D(6, 3, groups=groups, use_bias=False, name="c")])
        model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(1)
    k = model.layers[0].kernel.data                       # (kh, kw, cin / groups, filters)
    k[...] = rng.standard_normal(k.shape) * (rng.random(k.shape) < 0.4)
    x = (rng.standard_normal((3, 7, 6, 4)) * (rng.random((3, 7, 6, 4)) < 0.5)).astype(np.float32)
    x[..., 0] = 0
    model.train_on_batch(x, np.zeros((3, 5, 4, 6), np.float32))
    cin_g, og = 4 // groups, 6 // groups
    want = 0
    for g in range(groups):
        xg = x[..., g * cin_g:(g + 1) * cin_g] != 0
        wg = k[..., g * og:(g + 1) * og] != 0
        for i in range(3):
            for j in range(3):
                want += int(np.einsum("bhwc,co->", xg[:, i:i + 5, j:j + 4].astype(np.int64),
                                      wg[i, j].astype(np.int64)))
    assert want > 0
    assert strategy.placements[0].reports["forward"].macs_useful == want
