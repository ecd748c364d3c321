"""Channels-last max pooling (src/wsk_nhwc.h: a vector of channels at a time, the maxima and
their pixels in registers) on every SIMD path, float32 and float64, against plain NumPy
loops: channels off the vector (tails), windows overlapping, apart, strided and padded
(one wholly in the padding), ties (the first pixel), NaN (the first NaN wins), -inf; the
backward of apart windows writes every pixel (gx starts from garbage)."""
import numpy as np
import pytest

from wsekern import _nhwc
from wsekern import conv as conv_mod
from wsekern import pool as pool_mod
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


@pytest.fixture(params=simd_available())
def simd(request):
    _nhwc.simd_init(SIMD_BITS[request.param])
    yield request.param
    _nhwc.simd_init(SIMD_BITS[SIMD_PATH])


def max_pool_reference(x, g):
    """(out, arg) by loops: the first maximum, or the first NaN; -inf and -1 for a window
    wholly in the padding."""
    B, H, W, C = x.shape
    out = np.full((B, g.OH, g.OW, C), -np.inf, x.dtype)
    arg = np.full(out.shape, -1, np.int32)
    (sh, sw), (ph, pw) = g.stride, g.pad
    for b in range(B):
        for oh in range(g.OH):
            for ow in range(g.OW):
                for c in range(C):
                    for ih in range(max(oh * sh - ph, 0), min(oh * sh - ph + g.kh, H)):
                        for iw in range(max(ow * sw - pw, 0), min(ow * sw - pw + g.kw, W)):
                            v, best = x[b, ih, iw, c], out[b, oh, ow, c]
                            first = arg[b, oh, ow, c] < 0
                            if first or v > best or (np.isnan(v) and not np.isnan(best)):
                                out[b, oh, ow, c] = v
                                arg[b, oh, ow, c] = ih * W + iw
    return out, arg


CASES = [   # (x shape, window, stride, pads)
    ((2, 8, 6, 37), (2, 2), (2, 2), ((0, 0), (0, 0))),     # apart; 37 channels: tails
    ((1, 7, 7, 16), (3, 3), (2, 2), ((0, 0), (0, 0))),     # overlapping
    ((2, 5, 6, 5), (2, 3), (3, 2), ((1, 1), (0, 1))),      # padded, fewer channels than a vector
    ((1, 3, 3, 20), (2, 2), (3, 3), ((3, 0), (0, 0))),     # a window wholly in the padding
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, window, stride, pads", CASES)
def test_max_pool_on_every_path(simd, shape, window, stride, pads, dtype):
    rng = np.random.default_rng(sum(shape))
    # few distinct values (ties), NaN, -inf
    x = rng.integers(-3, 4, shape).astype(dtype)
    x.ravel()[rng.choice(x.size, x.size // 10, replace=False)] = np.nan
    x.ravel()[rng.choice(x.size, x.size // 10, replace=False)] = -np.inf
    g = conv_mod.NhwcGeometry.of(shape, window, stride, pads)
    out, arg = pool_mod.max_pool_nhwc(x, g)
    ref, ref_arg = max_pool_reference(x, g)
    np.testing.assert_array_equal(out, ref)          # NaN == NaN here, -inf too
    np.testing.assert_array_equal(arg, ref_arg)

    grad = rng.standard_normal(out.shape).astype(dtype)
    gx = pool_mod.max_pool_nhwc_backward(grad, arg, g)
    want = np.zeros(shape, dtype)
    B, H, W, C = shape
    for b, oh, ow, c in np.ndindex(out.shape):
        p = arg[b, oh, ow, c]
        if p >= 0:
            want[b, p // W, p % W, c] += grad[b, oh, ow, c]
    np.testing.assert_array_equal(gx, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apart_backward_writes_every_pixel(simd, dtype):
    """gx from np.empty: pixels no window names (and the rows and columns no window
    reaches) must come out 0, not what the memory held."""
    shape = (2, 7, 9, 19)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    g = conv_mod.NhwcGeometry.of(shape, (2, 2), (2, 2))
    out, arg = pool_mod.max_pool_nhwc(x, g)
    grad = rng.standard_normal(out.shape).astype(dtype)
    gx = np.full(shape, np.nan, dtype)
    _nhwc.max_pool_backward(grad, arg, gx, 1, 2, 2, 2, 2)
    want = np.zeros(shape, dtype)
    for b, oh, ow, c in np.ndindex(out.shape):
        p = arg[b, oh, ow, c]
        want[b, p // 9, p % 9, c] += grad[b, oh, ow, c]
    np.testing.assert_array_equal(gx, want)


def test_simd_init_refuses_an_unknown_path():
    with pytest.raises(ValueError, match="path must be 1, 2 or 4; received 3"):
        _nhwc.simd_init(3)
