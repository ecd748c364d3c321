"""conv2d forward and backward against a plain NumPy reference and scipy.signal."""
import textwrap

import numpy as np
import pytest
from conftest import run_in_child
from scipy import signal

import wsekern
from wsekern import conv as conv_mod


def conv_reference(x, w, b, stride, padding, dilation, groups):
    """Plain loops over output positions and taps (float64)."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    (sh, sw), (ph, pw), (dh, dw) = [(v, v) if np.isscalar(v) else v
                                    for v in (stride, padding, dilation)]
    B, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((B, O, OH, OW))
    Og = O // groups
    for o in range(O):
        gi = o // Og
        for c in range(Cg):
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, gi * Cg + c, i * dh: i * dh + sh * (OH - 1) + 1: sh,
                               j * dw: j * dw + sw * (OW - 1) + 1: sw]
                    out[:, o] += w[o, c, i, j] * patch
    if b is not None:
        out += b[None, :, None, None]
    return out


CASES = [
    # (B, C, H, W), (O, kh, kw), stride, padding, dilation, groups
    ((2, 3, 9, 8), (4, 3, 3), 1, 1, 1, 1),
    ((1, 4, 7, 11), (6, 2, 3), (2, 1), (0, 2), 1, 2),
    ((2, 2, 10, 10), (3, 3, 3), 2, 1, 2, 1),
    ((1, 1, 5, 5), (1, 1, 1), 1, 0, 1, 1),            # 1x1, one channel
    ((3, 2, 4, 4), (2, 6, 6), 1, 1, 1, 1),            # kernel as large as the padded input
    ((1, 6, 13, 7), (6, 3, 2), 3, 2, (1, 2), 6),      # depthwise, odd sizes
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("w_sparsity", [0.0, 0.9, 1.0])
@pytest.mark.parametrize("x_sparsity", [0.0, 0.8])
@pytest.mark.parametrize("case", CASES)
def test_conv2d_matches_reference(case, w_sparsity, x_sparsity, dtype):
    xs, (O, kh, kw), stride, padding, dilation, groups = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs) * (rng.random(xs) >= x_sparsity)
    w = rng.standard_normal((O, xs[1] // groups, kh, kw))
    w *= rng.random(w.shape) >= w_sparsity
    b = rng.standard_normal(O)
    x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    ref = conv_reference(x, w, b, stride, padding, dilation, groups)
    for n_threads in (1, 2):
        y = wsekern.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation,
                           groups=groups, n_threads=n_threads)
        assert y.dtype == dtype and y.shape == ref.shape
        tol = 1e-4 if dtype == np.float32 else 1e-11
        np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)


@pytest.fixture(params=["im2col-blas", "direct", "input-sparse"])
def forced_path(request, monkeypatch):
    """Make one path the cheapest, so every test below runs it."""
    cheap, dear = -1e9, 1e9
    monkeypatch.setattr(conv_mod, "DIRECT_FIXED", cheap if request.param == "direct" else dear)
    monkeypatch.setattr(conv_mod, "INPUT_FIXED", cheap if request.param == "input-sparse" else dear)
    monkeypatch.setattr(conv_mod, "INPUT_MIN_CHANNELS", 1)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_every_path_matches_reference(case, forced_path, dtype):
    xs, (O, kh, kw), stride, padding, dilation, groups = case
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(xs) * (rng.random(xs) < 0.5)).astype(dtype)
    w = (rng.standard_normal((O, xs[1] // groups, kh, kw)) * 1.0).astype(dtype)
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert wsekern.conv2d_path(x, w, **kw_) == forced_path
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for n_threads in (1, 2):
        np.testing.assert_allclose(wsekern.conv2d(x, w, n_threads=n_threads, **kw_),
                                   conv_reference(x, w, None, stride, padding, dilation, groups),
                                   rtol=tol, atol=tol)


def test_direct_path_reuses_offsets_only_for_the_same_weights(monkeypatch):
    """The direct path keeps the last weights' offsets: a weight changed in place (values,
    then the pattern), another batch or another dtype must still give the reference."""
    monkeypatch.setattr(conv_mod, "DIRECT_FIXED", -1e9)
    monkeypatch.setattr(conv_mod, "_OFFSETS_CACHE", [])
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3)) * (rng.random((4, 3, 3, 3)) < 0.3)
    for step in range(4):
        if step == 1:
            w *= 2                                  # same pattern, new values, same object
        if step == 2:
            w[rng.random(w.shape) < 0.3] = 1.5      # a new pattern
        if step == 3:
            x = rng.standard_normal((3, 3, 7, 6))   # another batch size
        assert wsekern.conv2d_path(x, w, padding=1) == "direct"
        np.testing.assert_allclose(wsekern.conv2d(x, w, padding=1),
                                   conv_reference(x, w, None, 1, 1, 1, 1), rtol=1e-11,
                                   atol=1e-11)
        y32 = wsekern.conv2d(x.astype(np.float32), w.astype(np.float32), padding=1)
        np.testing.assert_allclose(y32, conv_reference(x, w, None, 1, 1, 1, 1), rtol=1e-4,
                                   atol=1e-4)
    assert 0 < len(conv_mod._OFFSETS_CACHE) <= conv_mod._OFFSETS_KEPT


def test_inf_weight_never_takes_the_input_sparse_path(forced_path):
    x = np.zeros((1, 2, 5, 5))
    x[0, 0, 2, 2] = 1.0
    w = np.ones((1, 2, 3, 3))
    w[0, 1, 1, 1] = np.inf              # meets only zeros of x: inf * 0 = NaN everywhere
    y = wsekern.conv2d(x, w)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(conv_reference(x, w, None, 1, 0, 1, 1)))
    assert wsekern.conv2d_path(x, w) != "input-sparse"


def test_matches_scipy_correlate_per_channel():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 1, 12, 10))
    w = rng.standard_normal((1, 1, 4, 3))
    y = wsekern.conv2d(x, w)
    np.testing.assert_allclose(y[0, 0], signal.correlate(x[0, 0], w[0, 0], mode="valid"),
                               rtol=1e-12, atol=1e-12)


def _loss_grads(x, w, b, kw):
    """Finite-difference gradients of sum(conv2d(...) * R)."""
    R = np.random.default_rng(9).standard_normal(wsekern.conv2d(x, w, b, **kw).shape)

    def loss(x_, w_, b_):
        return float((wsekern.conv2d(x_, w_, b_, **kw) * R).sum())
    num = []
    for arr in (x, w, b):
        g = np.zeros_like(arr)
        it = np.nditer(arr, flags=["multi_index"])
        for _ in it:
            idx = it.multi_index
            old = arr[idx]
            arr[idx] = old + 1e-6
            up = loss(x, w, b)
            arr[idx] = old - 1e-6
            down = loss(x, w, b)
            arr[idx] = old
            g[idx] = (up - down) / 2e-6
        num.append(g)
    return R, num


@pytest.mark.parametrize("case", CASES[:4] + CASES[5:])
def test_backward_matches_finite_differences(case, forced_path):
    xs, (O, kh, kw), stride, padding, dilation, groups = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal(xs)
    w = rng.standard_normal((O, xs[1] // groups, kh, kw))
    b = rng.standard_normal(O)
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    R, (gx_num, gw_num, gb_num) = _loss_grads(x, w, b, kw_)
    gx, gw, gb = wsekern.conv2d_backward(R, x, w, **kw_)
    np.testing.assert_allclose(gx, gx_num, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, gw_num, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gb, gb_num, rtol=1e-5, atol=1e-6)


def test_backward_weight_mask_keeps_only_kept_weights(forced_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    mask = rng.random(w.shape) < 0.3
    w_pruned = w * mask
    grad = rng.standard_normal((2, 4, 8, 8))
    gx_full, gw_full, _ = wsekern.conv2d_backward(grad, x, w_pruned, padding=1)
    gx, gw, _ = wsekern.conv2d_backward(grad, x, w_pruned, padding=1, weight_mask=mask)
    np.testing.assert_array_equal(gw[~mask], 0)
    np.testing.assert_allclose(gw[mask], gw_full[mask], rtol=1e-12)
    np.testing.assert_allclose(gx, gx_full, rtol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, kwargs, exc, match", [
    ((1, 3, 8, 8), (4, 2, 3, 3), {}, ValueError, "input channels per group"),
    ((1, 3, 8, 8), (4, 1, 3, 3), {"groups": 2}, ValueError, "must divide"),
    ((1, 3, 4, 4), (2, 3, 5, 5), {}, ValueError, "does not fit"),
    ((3, 8, 8), (2, 3, 3, 3), {}, ValueError, "4-D"),
    ((1, 3, 8, 8), (2, 3, 3, 3), {"stride": 0}, ValueError, "stride"),
    ((1, 3, 8, 8), (2, 3, 3, 3), {"padding": -1}, ValueError, "padding"),
    # not whole numbers: they were truncated to (1, 2), or a string read digit by digit
    ((1, 3, 8, 8), (2, 3, 3, 3), {"stride": (1.9, 2.9)}, TypeError, "stride"),
    ((1, 3, 8, 8), (2, 3, 3, 3), {"stride": "12"}, TypeError, "stride"),
    ((1, 3, 8, 8), (2, 3, 3, 3), {"dilation": (True, 1)}, TypeError, "dilation"),
    ((1, 3, 8, 8), (2, 3, 3, 3), {"stride": 2**32}, ValueError, "below 2..31"),
])
def test_bad_input(x_shape, w_shape, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        wsekern.conv2d(np.ones(x_shape), np.ones(w_shape), **kwargs)


def test_bad_dtype():
    with pytest.raises(TypeError, match="float32 or float64"):
        wsekern.conv2d(np.ones((1, 1, 3, 3), dtype=int), np.ones((1, 1, 1, 1)))


def test_nan_input_propagates_through_kept_weights():
    x = np.ones((1, 1, 5, 5))
    x[0, 0, 2, 2] = np.nan
    w = np.ones((1, 1, 3, 3))
    y = wsekern.conv2d(x, w)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(conv_reference(x, w, None, 1, 0, 1, 1)))


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_when_installed(case):
    torch = pytest.importorskip("torch")
    xs, (O, kh, kw), stride, padding, dilation, groups = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal(xs) * (rng.random(xs) < 0.3)
    w_shape = (O, xs[1] // groups, kh, kw)
    w = rng.standard_normal(w_shape) * (rng.random(w_shape) < 0.2)
    b = rng.standard_normal(O)
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    yt = torch.nn.functional.conv2d(xt, wt, bt, **kw_)
    R = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(R))
    np.testing.assert_allclose(wsekern.conv2d(x, w, b, **kw_), yt.detach().numpy(),
                               rtol=1e-10, atol=1e-10)
    gx, gw, gb = wsekern.conv2d_backward(R, x, w, **kw_)
    for ours, theirs in ((gx, xt.grad), (gw, wt.grad), (gb, bt.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("C, O", [(3, 0), (0, 4)])
def test_zero_channels_give_zeros_forward_backward_and_on_the_wafer(C, O):
    """No output channels (or no input channels) is a valid, empty case: it failed with
    NumPy's "cannot reshape array of size 0" (w.reshape(O, -1) and im2col)."""
    from wsekern import Wafer, WaferConfig
    x = np.ones((2, C, 8, 8), np.float32)
    w = np.ones((O, C, 3, 3), np.float32)
    y = wsekern.conv2d(x, w, padding=1)
    assert y.shape == (2, O, 8, 8) and not y.any()
    gx, gw, _ = wsekern.conv2d_backward(np.ones((2, O, 8, 8), np.float32), x, w, padding=1)
    assert gx.shape == x.shape and gw.shape == w.shape and not gx.any() and not gw.any()
    for mode in ("analytic", "event"):
        yw, report = Wafer(WaferConfig.wse2(rows=8, cols=8)).conv2d(x, w, padding=1, mode=mode)
        np.testing.assert_array_equal(yw, y)
        assert report.cycles == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("special", [None, np.nan, np.inf, -np.inf])
def test_scan_planes_matches_numpy(dtype, special):
    """conv2d's one-pass scan of x: nonzeros, finiteness and live channels as NumPy's."""
    from wsekern import _conv
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 4, 6)).astype(dtype)
    x[rng.random(x.shape) < 0.7] = 0
    x[1, 2] = 0                                   # a dead channel
    if special is not None:
        x[2, 4, 1, 1] = special
        x[1, 2, 0, 0] = special                   # NaN / inf keep a channel alive
    alive = np.empty((3, 5), np.uint8)
    nnz, finite = _conv.scan_planes(x.reshape(3, 5, -1), alive)
    assert nnz == np.count_nonzero(x)
    assert finite == bool(np.isfinite(x).all())
    np.testing.assert_array_equal(alive, x.any(axis=(2, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pads", [(0, 0), (1, 1), (2, 0), (0, 3)])
@pytest.mark.parametrize("special", [None, np.nan, -np.inf])
def test_pad_scan_pads_and_scans_as_numpy(dtype, pads, special):
    """The direct path's padded input and the scan of x in one pass: np.pad's zeros (the
    output buffer starts as garbage, so a border left unwritten shows), NumPy's counts."""
    from wsekern import _conv
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5, 7)).astype(dtype)
    x[rng.random(x.shape) < 0.6] = 0
    x[0, 1] = 0                                   # a dead channel
    if special is not None:
        x[2, 3, 4, 6] = special
        x[0, 1, 2, 2] = special
    ph, pw = pads
    out = np.full((3, 4, 5 + 2 * ph, 7 + 2 * pw), 99, dtype)
    alive = np.full((3, 4), 7, np.uint8)
    nnz, finite = _conv.pad_scan(x, out, ph, pw, alive)
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))))
    assert nnz == np.count_nonzero(x)
    assert finite == bool(np.isfinite(x).all())
    np.testing.assert_array_equal(alive, x.any(axis=(2, 3)))


def test_pad_scan_refuses_operands_that_do_not_fit_in_a_child_process():
    """pad_scan writes without bounds checks: a short output or alive, or a negative
    padding, is refused naming what was received (a child, so a crash fails the test)."""
    code = textwrap.dedent("""
        import numpy as np
        from wsekern import _conv
        x = np.ones((2, 3, 4, 5))
        cases = [
            lambda: _conv.pad_scan(x, np.empty((2, 3, 6, 7)), 1, 2, np.empty((2, 3), np.uint8)),
            lambda: _conv.pad_scan(x, np.empty((2, 3, 6, 7)), 1, 1, np.empty((2, 2), np.uint8)),
            lambda: _conv.pad_scan(x, np.empty((1, 3, 6, 7)), 1, 1, np.empty((2, 3), np.uint8)),
            lambda: _conv.pad_scan(x, np.empty((2, 3, 2, 3)), -1, -1,
                                   np.empty((2, 3), np.uint8)),
            lambda: _conv.pad_scan(x, np.empty((2, 3, 6, 7), np.float32), 1, 1,
                                   np.empty((2, 3), np.uint8)),
            # 2 * ph wrapped in C int to H - 2: the padding must be counted in 64 bits
            lambda: _conv.pad_scan(x, np.empty((2, 3, 2, 5)), 2**31 - 1, 0,
                                   np.empty((2, 3), np.uint8)),
            lambda: _conv.pad_scan(x, np.empty((2, 3, 4, 3)), 0, 2**31 - 1,
                                   np.empty((2, 3), np.uint8)),
        ]
        for i, case in enumerate(cases):
            try:
                case()
            except (ValueError, TypeError) as e:
                assert i == 4 or "received" in str(e), (i, str(e))
            else:
                raise AssertionError(f"case {i} was accepted")
        print("OK", len(cases))
    """)
    proc = run_in_child(code)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK 7", proc.stderr[-2000:]
