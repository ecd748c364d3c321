"""The few-input-channel kernel (src/wsk_conv_small.h) on every SIMD path this CPU runs:
its register tiles (pixels x filter vectors in the forward, taps x filter vectors in the
kernel gradient) against a float64 sum over taps, at sizes that leave every kind of
remainder: filters off the vector width, rows shorter than a tile, windows reading the
padding, strides, dilation, more taps than the tiles take, NaN and inf in x."""
import numpy as np
import pytest
from conftest import nhwc_windows

from wsekern import _conv
from wsekern import conv as conv_kernels
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


@pytest.fixture(params=simd_available())
def path(request):
    _conv.simd_init(SIMD_BITS[request.param])
    yield request.param
    _conv.simd_init(SIMD_BITS[SIMD_PATH])


CASES = [  # x shape, kernel (kh, kw, O), stride, pads ((t, b), (l, r)), dilation
    ((3, 28, 28, 1), (3, 3, 32), 1, ((0, 0), (0, 0)), 1),     # the keras.io convnet's first
    ((2, 12, 13, 1), (3, 3, 64), 1, ((1, 1), (1, 1)), 1),
    ((2, 9, 17, 2), (3, 3, 37), 1, ((0, 0), (0, 0)), 1),      # 37 filters: a scalar tail
    ((2, 7, 11, 3), (3, 3, 48), 1, ((1, 1), (1, 1)), 1),      # 48: a lone vector (avx512)
    ((1, 6, 3, 1), (3, 3, 16), 1, ((0, 0), (0, 0)), 1),       # one output column
    ((2, 10, 19, 1), (2, 4, 24), (2, 3), ((1, 0), (2, 1)), 1),
    ((1, 15, 16, 2), (3, 2, 8), 1, ((2, 2), (1, 1)), (2, 3)),
    ((2, 8, 8, 1), (5, 5, 4), 1, ((0, 0), (0, 0)), 1),        # fewer filters than a vector
    ((1, 9, 10, 30), (3, 3, 16), 1, ((0, 0), (0, 0)), 1),     # 270 taps: per-pixel loop
    ((2, 6, 9, 14), (3, 3, 16), 1, ((1, 1), (0, 0)), 1),      # 126 taps: many tap blocks
    ((1, 3, 3, 1), (3, 3, 32), 1, ((5, 5), (5, 5)), 1),       # every window reads padding
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kdims, stride, pads, dilation", CASES)
def test_every_path_matches_the_float64_sum(path, shape, kdims, stride, pads, dilation,
                                            dtype):
    rng = np.random.default_rng(3)
    kh, kw, O = kdims
    x = rng.standard_normal(shape).astype(dtype)
    k = rng.standard_normal((kh, kw, shape[3], O)).astype(dtype)
    bias = rng.standard_normal(O).astype(dtype)
    g = conv_kernels.NhwcGeometry.of(shape, (kh, kw), stride, pads, dilation)
    win = nhwc_windows(x, g)
    ref = np.einsum("bhwijc,ijco->bhwo", win, k.astype(np.float64)) + bias
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    y = conv_kernels.conv2d_small_nhwc(x, k, g, bias, relu=False, n_threads=1)
    assert y.dtype == dtype and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, **tol)
    yr = conv_kernels.conv2d_small_nhwc(x, k, g, bias, relu=True, n_threads=2)
    np.testing.assert_allclose(yr, np.maximum(ref, 0), **tol)
    assert (yr >= 0).all()
    np.testing.assert_allclose(conv_kernels.conv2d_small_nhwc(x, k, g), ref - bias, **tol)
    gy = rng.standard_normal(ref.shape).astype(dtype)
    want = np.einsum("bhwijc,bhwo->ijco", win, gy.astype(np.float64))
    for threads in (1, 2):
        gk = conv_kernels.conv2d_small_grad_weight_nhwc(x, gy, g, n_threads=threads)
        assert gk.dtype == dtype and gk.shape == k.shape
        scale = max(1.0, np.abs(want).max())
        np.testing.assert_allclose(gk, want, rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_inf_and_negative_zero_inside_the_tiles(path, dtype):
    """Every product of an interior window is done: inf times a zero weight is NaN; the
    ReLU keeps NaN (as NumPy's maximum) and clears negatives."""
    x = np.ones((1, 8, 12, 1), dtype)
    x[0, 3, 5, 0] = np.inf
    x[0, 6, 9, 0] = np.nan
    k = np.zeros((3, 3, 1, 32), dtype)
    k[1, 1, 0, :16] = -1.0
    k[0, 0, 0, 16:] = 2.0
    g = conv_kernels.NhwcGeometry.of(x.shape, (3, 3))
    cols = conv_kernels.im2col_nhwc(x, g)
    with np.errstate(invalid="ignore"):
        ref = (cols @ k.reshape(9, 32)).reshape(1, g.OH, g.OW, 32)
    y = conv_kernels.conv2d_small_nhwc(x, k, g, relu=False, n_threads=1)
    np.testing.assert_array_equal(y, ref)
    yr = conv_kernels.conv2d_small_nhwc(x, k, g, relu=True, n_threads=1)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(yr, np.maximum(ref, 0))
    assert np.isnan(yr).any() and (np.nan_to_num(yr, nan=0.0) >= 0).all()
    gy = np.ones((1, g.OH, g.OW, 32), dtype)
    with np.errstate(invalid="ignore"):
        want = (cols.T @ gy.reshape(-1, 32)).reshape(3, 3, 1, 32)
    gk = conv_kernels.conv2d_small_grad_weight_nhwc(x, gy, g, n_threads=1)
    np.testing.assert_array_equal(np.isnan(gk), np.isnan(want))
    np.testing.assert_allclose(np.nan_to_num(gk), np.nan_to_num(want))
