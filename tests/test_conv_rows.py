"""The direct conv path's row-tile kernel (src/wsk_conv_tile.h) on every SIMD path this CPU
runs, against plain loops in float64 and PyTorch: odd widths (not a multiple of any
vector), one-row images, strides, dilation, groups, NaN in x, all-zero filters, bands."""
import textwrap

import numpy as np
import pytest
from conftest import run_in_child

import wsekern
from wsekern import _conv
from wsekern import conv as conv_mod
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


def kept_reference(x, w, stride, padding, dilation, groups):
    """Plain loops over the kept (nonzero) weights only, in float64: what the direct path
    computes, NaN in x included (a zero weight never meets it)."""
    x = x.astype(np.float64)
    (sh, sw), (ph, pw), (dh, dw) = [(v, v) if np.isscalar(v) else v
                                    for v in (stride, padding, dilation)]
    B, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((B, O, OH, OW))
    Og = O // groups
    for o, c, i, j in zip(*np.nonzero(w)):
        c_in = (o // Og) * Cg + c
        patch = xp[:, c_in, i * dh: i * dh + sh * (OH - 1) + 1: sh,
                   j * dw: j * dw + sw * (OW - 1) + 1: sw]
        out[:, o] += float(w[o, c, i, j]) * patch
    return out


def direct(x, w, stride, padding, dilation, groups, band=0, n_threads=1):
    """conv_mod's direct path, called step by step (so NaN in x reaches the kernel)."""
    g = conv_mod.ConvGeometry.of(x.shape, w.shape, stride, padding, dilation, groups)
    w2 = np.ascontiguousarray(w).reshape(g.O, -1)
    P = conv_mod._phases(x, g)
    alive = np.empty((g.B, g.C), dtype=np.uint8)
    _conv.scan_planes(np.ascontiguousarray(x).reshape(g.B, g.C, -1), alive)
    wval, woff, wchan, wptr = conv_mod._filter_offsets(w2, g, P.shape)
    out = np.full((g.B, g.O, g.OH, g.OW), np.nan, dtype=x.dtype)
    _conv.forward(P, alive, wval, woff, wchan, wptr, out, n_threads, band)
    return out



def direct_pad(x, w, padding, dilation, groups, n_threads=1):
    """The stride-1 direct path that pads each image inside the kernel (forward_pad)."""
    g = conv_mod.ConvGeometry.of(x.shape, w.shape, 1, padding, dilation, groups)
    w2 = np.ascontiguousarray(w).reshape(g.O, -1)
    alive = np.empty((g.B, g.C), dtype=np.uint8)
    _conv.scan_planes(np.ascontiguousarray(x).reshape(g.B, g.C, -1), alive)
    wval, woff, wchan, wptr = conv_mod._filter_offsets(w2, g, g.phase_shape())
    out = np.full((g.B, g.O, g.OH, g.OW), np.nan, dtype=x.dtype)
    _conv.forward_pad(np.ascontiguousarray(x), *g.padding, alive, wval, woff, wchan, wptr,
                      out, n_threads)
    return out

@pytest.fixture(params=simd_available())
def simd(request):
    """Each SIMD path this CPU runs, selected in this process for _conv only."""
    _conv.simd_init(SIMD_BITS[request.param])
    yield request.param
    _conv.simd_init(SIMD_BITS[SIMD_PATH])


CASES = [
    # (B, C, H, W), (O, kh, kw), stride, padding, dilation, groups
    ((2, 3, 9, 8), (4, 3, 3), 1, 1, 1, 1),
    ((1, 2, 7, 5), (3, 3, 3), 1, 1, 1, 1),            # width below one vector
    ((2, 3, 6, 33), (5, 3, 3), 1, 1, 1, 1),           # a vector and a bit
    ((1, 2, 11, 37), (2, 3, 3), 1, 1, 1, 1),          # odd rows and columns
    ((2, 4, 1, 19), (3, 1, 3), 1, (0, 1), 1, 1),      # one-row image
    ((1, 2, 1, 70), (2, 3, 3), 1, 1, 1, 1),           # one row padded to three
    ((2, 3, 13, 29), (4, 3, 3), 2, 1, 1, 1),          # stride 2
    ((1, 4, 12, 23), (4, 3, 3), (1, 2), 2, 2, 2),     # dilation, groups, mixed stride
    ((2, 6, 9, 17), (6, 3, 3), 1, 1, 1, 6),           # depthwise
    ((1, 3, 16, 64), (4, 5, 5), 1, 2, 1, 1),          # exact vectors, 5x5
    ((1, 2, 34, 20), (3, 3, 3), 1, 0, 1, 1),          # no padding: reads end at P's end
    ((1, 3, 13, 40), (3, 3, 3), 1, 1, 1, 1),          # AVX-512 float32's 8-row tile + 5 rows
    ((2, 2, 10, 16), (3, 3, 3), 1, 1, 1, 1),          # 8 + 2 rows of one exact vector
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_row_tiles_match_reference(case, dtype, simd):
    xs, (O, kh, kw), stride, padding, dilation, groups = case
    rng = np.random.default_rng(abs(hash((xs, O))) % 2**32)
    x = rng.standard_normal(xs).astype(dtype)
    x[rng.random(xs) < 0.3] = 0
    w = rng.standard_normal((O, xs[1] // groups, kh, kw))
    w *= rng.random(w.shape) >= 0.7
    w[0] = 0                                          # an all-zero filter
    w = w.astype(dtype)
    ref = kept_reference(x, w, stride, padding, dilation, groups)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for band in (0, 1, 3):
        for n_threads in (1, 2):
            y = direct(x, w, stride, padding, dilation, groups, band, n_threads)
            assert y.dtype == dtype and y.shape == ref.shape
            np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)
    assert not direct(x, w, stride, padding, dilation, groups)[:, 0].any()
    if stride == 1:
        for n_threads in (1, 2):
            y = direct_pad(x, w, padding, dilation, groups, n_threads)
            assert y.dtype == dtype and y.shape == ref.shape
            np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_in_x_reaches_only_the_outputs_its_kept_weights_touch(dtype, simd):
    """NaN pixels beside the valid columns (in lanes the tile reads and drops) and in a
    dead-weight channel must not leak; those a kept weight meets give NaN."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 21)).astype(dtype)
    x[0, 0, 4, 20] = np.nan          # last column: read past by the row before's lanes
    x[1, 1, 0, 0] = np.nan
    x[1, 2, 5, 7] = np.inf
    w = (rng.standard_normal((4, 3, 3, 3)) * (rng.random((4, 3, 3, 3)) < 0.5)).astype(dtype)
    w[:, 2] = 0                      # channel 2 (with the inf) has no kept weight
    ref = kept_reference(x, w, 1, 1, 1, 1)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for y in (direct(x, w, 1, 1, 1, 1), direct_pad(x, w, 1, 1, 1)):
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
        np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)
    assert np.isnan(ref).any() and not np.isnan(ref).all()


def test_dead_channels_are_skipped_per_image(simd):
    """A channel zero for one image only: that image's kept weights on it are dropped."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 10, 26)).astype(np.float32)
    x[1, 2] = 0
    x[2] = 0
    w = (rng.standard_normal((5, 4, 3, 3)) * (rng.random((5, 4, 3, 3)) < 0.4))
    w = w.astype(np.float32)
    np.testing.assert_allclose(direct(x, w, 1, 1, 1, 1, band=4),
                               kept_reference(x, w, 1, 1, 1, 1), rtol=1e-4, atol=1e-4)
    for n_threads in (1, 2):
        np.testing.assert_allclose(direct_pad(x, w, 1, 1, 1, n_threads),
                                   kept_reference(x, w, 1, 1, 1, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES[:4] + CASES[6:9])
def test_conv2d_direct_matches_torch(case, simd, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(conv_mod, "DIRECT_FIXED", -1e9)
    monkeypatch.setattr(conv_mod, "INPUT_FIXED", 1e9)
    xs, (O, kh, kw), stride, padding, dilation, groups = case
    rng = np.random.default_rng(11)
    x = rng.standard_normal(xs).astype(np.float32)
    ws = (O, xs[1] // groups, kh, kw)
    w = (rng.standard_normal(ws) * (rng.random(ws) < 0.2)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    g = conv_mod.ConvGeometry.of(xs, ws, stride, padding, dilation, groups)
    if g.padding_dominates():
        pytest.skip("padding dominates: the direct path is not offered")
    assert wsekern.conv2d_path(x, w, stride=stride, padding=padding, dilation=dilation,
                               groups=groups) == "direct"
    y = wsekern.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation,
                       groups=groups)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                     torch.from_numpy(b), stride=stride, padding=padding,
                                     dilation=dilation, groups=groups).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_offsets_cache_compares_weights_bit_for_bit(monkeypatch):
    """-0.0 and 0.0 compare equal but are different weights' bytes: the cache must not
    hand back offsets built from other bytes (it keys on the array's bytes)."""
    monkeypatch.setattr(conv_mod, "DIRECT_FIXED", -1e9)
    monkeypatch.setattr(conv_mod, "_OFFSETS_CACHE", [])
    x = np.ones((1, 1, 4, 4))
    w = np.array([[[[1.0, 0.0], [0.0, 2.0]]]])
    y0 = wsekern.conv2d(x, w)
    w_neg = w.copy()
    w_neg[0, 0, 0, 1] = -0.0
    y1 = wsekern.conv2d(x, w_neg)
    np.testing.assert_array_equal(y0, y1)
    assert len(conv_mod._OFFSETS_CACHE) == 2      # two entries: the bytes differ
    w[0, 0, 1, 1] = 3.0                            # in place, same object
    np.testing.assert_allclose(wsekern.conv2d(x, w), np.full((1, 1, 3, 3), 4.0))


def test_any_nonzero_alive_flag_counts_as_alive(simd):
    """The channel flags are 0/1 from the scans; another nonzero must not overrun the
    per-thread weight buffers (it once counted a weight that many times)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 6, 20)).astype(np.float32)
    w = (rng.standard_normal((4, 3, 3, 3)) * (rng.random((4, 3, 3, 3)) < 0.5)).astype(np.float32)
    g = conv_mod.ConvGeometry.of(x.shape, w.shape, 1, 1, 1, 1)
    P = conv_mod._phases(x, g)
    wval, woff, wchan, wptr = conv_mod._filter_offsets(w.reshape(4, -1), g, P.shape)
    alive = np.full((2, 3), 200, dtype=np.uint8)
    alive[1, 0] = 0
    out = np.empty((2, 4, 6, 20), dtype=np.float32)
    _conv.forward(P, alive, wval, woff, wchan, wptr, out, 1)
    x_dead = x.copy()
    x_dead[1, 0] = 0
    np.testing.assert_allclose(out, kept_reference(x_dead, w, 1, 1, 1, 1), rtol=1e-4,
                               atol=1e-4)


def test_forward_pad_refuses_operands_that_do_not_fit_in_a_child_process():
    """forward_pad reads and writes without bounds checks: an output larger than the
    padded image, short alive or index arrays, a negative padding, an offset or a channel
    out of range, or a broken wptr is refused with a ValueError naming what it received."""
    code = textwrap.dedent("""
        import numpy as np
        from wsekern import _conv
        x = np.ones((2, 3, 5, 6))
        alive = np.ones((2, 3), np.uint8)
        val = np.ones(4)
        off = np.array([0, 1, 8, 9], np.int32)
        chan = np.array([0, 1, 2, 0], np.int32)
        ptr = np.array([0, 2, 4], np.int32)
        out = np.empty((2, 2, 5, 6))
        _conv.forward_pad(x, 1, 1, alive, val, off, chan, ptr, out, 1)     # fits
        cases = [
            lambda: _conv.forward_pad(x, 1, 1, alive, val, off, chan, ptr,
                                      np.empty((2, 2, 8, 6)), 1),
            lambda: _conv.forward_pad(x, 1, 1, alive, val, off, chan, ptr,
                                      np.empty((3, 2, 5, 6)), 1),
            lambda: _conv.forward_pad(x, 1, 1, alive[:1], val, off, chan, ptr, out, 1),
            lambda: _conv.forward_pad(x, -1, 1, alive, val, off, chan, ptr, out, 1),
            lambda: _conv.forward_pad(x, 1, 1, alive, val, off[:3], chan, ptr, out, 1),
            lambda: _conv.forward_pad(x, 1, 1, alive, val, off, chan, ptr[:2], out, 1),
            lambda: _conv.forward_pad(x, 1, 1, alive, val, np.array([0, 1, 8, 10**6], np.int32),
                                      chan, ptr, out, 1),
            lambda: _conv.forward_pad(x, 1, 1, alive, val, np.array([0, -1, 8, 9], np.int32),
                                      chan, ptr, out, 1),
            lambda: _conv.forward_pad(x, 1, 1, alive, val, off, np.array([0, 1, 3, 0], np.int32),
                                      ptr, out, 1),
            lambda: _conv.forward_pad(x, 1, 1, alive, val, off, chan,
                                      np.array([0, 3, 2], np.int32), out, 1),
            lambda: _conv.forward_pad(x, 1, 1, alive, val, off, chan,
                                      np.array([0, 2, 5], np.int32), out, 1),
        ]
        for i, case in enumerate(cases):
            try:
                case()
            except ValueError as e:
                msg = str(e)
                assert "received" in msg or "reads past" in msg or "must be" in msg, (i, msg)
            else:
                raise AssertionError(f"case {i} was accepted")
        print("OK", len(cases))
    """)
    proc = run_in_child(code)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK 11", proc.stderr[-2000:]
