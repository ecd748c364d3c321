"""The planes path's kernels (src/wsk_conv_planes.h) against float64 sums over taps in NumPy,
on every SIMD path, float32 and float64, 1 and 2 threads: the weight gradient (lane sums
per kept weight over all images, a filter's gradient plane in registers a chunk at a time,
eight weights a pass) and the rows of the forward and the input gradient (a row's vectors
in registers, the kept weights streaming past); filters keeping 0, a few, exactly 8 and
more than 8 weights, planes of one chunk and of several unequal chunks, padding and
dilation; raw calls that would read outside the planes refused."""
import numpy as np
import pytest

from wsekern import _conv, conv_planes
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


@pytest.fixture(params=simd_available())
def simd(request):
    _conv.simd_init(SIMD_BITS[request.param])
    yield request.param
    _conv.simd_init(SIMD_BITS[SIMD_PATH])


def conv_reference(x, k, pads, dilation):
    """Channels-last cross-correlation, float64."""
    (t, b), (l, r) = pads
    dh, dw = dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (t, b), (l, r), (0, 0)))
    kh, kw = k.shape[:2]
    OH = xp.shape[1] - (kh - 1) * dh
    OW = xp.shape[2] - (kw - 1) * dw
    y = np.zeros((x.shape[0], OH, OW, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            y += xp[:, i * dh:i * dh + OH, j * dw:j * dw + OW] @ k[i, j].astype(np.float64)
    return y


def input_grad_reference(x_shape, k, pads, dilation, R):
    """d(sum(R * conv(x, k)))/dx, float64."""
    (t, b), (l, r) = pads
    dh, dw = dilation
    B, H, W, C = x_shape
    gxp = np.zeros((B, H + t + b, W + l + r, C))
    kh, kw = k.shape[:2]
    OH, OW = R.shape[1:3]
    for i in range(kh):
        for j in range(kw):
            gxp[:, i * dh:i * dh + OH, j * dw:j * dw + OW] += \
                R.astype(np.float64) @ k[i, j].T.astype(np.float64)
    return gxp[:, t:t + H, l:l + W]


def grad_reference(x, mask, pads, dilation, R):
    """d(sum(R * conv(x, k)))/dk at every weight, float64, as a sum over taps."""
    (t, b), (l, r) = pads
    dh, dw = dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (t, b), (l, r), (0, 0)))
    kh, kw = mask.shape[:2]
    OH, OW = R.shape[1:3]
    gk = np.zeros(mask.shape)
    for i in range(kh):
        for j in range(kw):
            win = xp[:, i * dh:i * dh + OH, j * dw:j * dw + OW]
            gk[i, j] = np.einsum("bhwc,bhwo->co", win, R.astype(np.float64))
    return gk * mask


def _mask_with_counts(kshape, counts, rng):
    """A mask whose filter o keeps counts[o] weights, at random taps and channels."""
    kh, kw, C, O = kshape
    mask = np.zeros((kh * kw * C, O), dtype=bool)
    for o, n in enumerate(counts):
        mask[rng.choice(kh * kw * C, size=n, replace=False), o] = True
    return mask.reshape(kshape)


CASES = [   # (x shape, kernel shape, kept weights per filter, pads, dilation)
    # 18 x 25 wide rows: 29 float32 vectors on AVX-512, rows in two chunks (15 + 14)
    ((2, 20, 25, 3), (3, 3, 3, 4), (0, 5, 9, 27), ((0, 0), (0, 0)), (1, 1)),
    # 13 x 20 wide rows: 17 float32 vectors on AVX-512 (chunks of 9 and 8), more elsewhere
    ((3, 15, 20, 5), (3, 3, 5, 6), (0, 1, 7, 8, 9, 27), ((1, 1), (0, 0)), (1, 1)),
    # one small chunk, every filter past a group of eight
    ((2, 6, 6, 4), (3, 3, 4, 3), (16, 17, 36), ((0, 0), (0, 0)), (1, 1)),
    # dilated and unevenly padded, a 2x3 kernel
    ((2, 11, 9, 3), (2, 3, 3, 4), (18, 5, 0, 12), ((2, 1), (0, 3)), (2, 2)),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kshape, counts, pads, dilation", CASES)
def test_grad_weight_at_the_kept_weights(simd, shape, kshape, counts, pads, dilation, dtype,
                                         threads):
    rng = np.random.default_rng(len(counts))
    mask = _mask_with_counts(kshape, counts, rng)
    x = rng.standard_normal(shape).astype(dtype)
    g = conv_planes.PlaneGeometry.of(shape, kshape, pads, dilation)
    pat = conv_planes.PlanePattern(mask, g)
    R = rng.standard_normal((shape[0], g.OH, g.OW, kshape[3])).astype(dtype)
    G, _ = conv_planes.grad_planes(R, np.ones_like(R), False, g)
    X = conv_planes.to_planes(x, g)
    got = np.zeros(kshape, dtype)
    got.ravel()[pat.flat_o] = conv_planes.grad_weight(X, G, pat, n_threads=threads)
    ref = grad_reference(x, mask, pads, dilation, R)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())
    assert not got[~mask].any()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kshape, counts, pads, dilation", CASES)
def test_forward_and_input_gradient_rows(simd, shape, kshape, counts, pads, dilation, dtype,
                                         threads):
    rng = np.random.default_rng(len(counts) + 7)
    mask = _mask_with_counts(kshape, counts, rng)
    k = (rng.standard_normal(kshape) * mask).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    g = conv_planes.PlaneGeometry.of(shape, kshape, pads, dilation)
    pat = conv_planes.PlanePattern(mask, g)
    X = conv_planes.to_planes(x, g)
    y = conv_planes.forward(X, k.ravel()[pat.flat_o], pat, n_threads=threads)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    ref = conv_reference(x, k, pads, dilation)
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol * np.abs(ref).max())
    R = rng.standard_normal(y.shape).astype(dtype)
    G, _ = conv_planes.grad_planes(R, np.ones_like(R), False, g)
    gx = conv_planes.grad_input(G, k.ravel()[pat.flat_c], pat, n_threads=threads)
    ref = input_grad_reference(shape, k, pads, dilation, R)
    np.testing.assert_allclose(gx, ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_raw_kernels_refuse_reads_outside_the_planes():
    shape, kshape = (1, 5, 5, 2), (3, 3, 2, 2)
    g = conv_planes.PlaneGeometry.of(shape, kshape, ((0, 0), (0, 0)), (1, 1))
    pat = conv_planes.PlanePattern(np.ones(kshape, bool), g)
    X = conv_planes.to_planes(np.ones(shape), g)
    G = np.zeros((1, 2, g.g_stride))
    with pytest.raises(ValueError, match="multiple of 16 and start .* received start 12, n 15"):
        _conv.planes_grad_weight(X, G, pat.x_off, pat.o_ptr, 12, 15, np.zeros((1, pat.nnz)))
    with pytest.raises(ValueError, match="within G's planes of 48; received start 40, n 16"):
        _conv.planes_grad_weight(X, G, pat.x_off, pat.o_ptr, 40, 16, np.zeros((1, pat.nnz)))
    far = pat.x_off.copy()
    far[-1] = X.shape[1] * X.shape[2] - 8            # its last 8 reads past the planes
    with pytest.raises(ValueError, match="reach outside one image's planes"):
        _conv.planes_grad_weight(X, G, far, pat.o_ptr, 0, 16, np.zeros((1, pat.nnz)))
    back = pat.o_ptr.copy()
    back[1] = back[2] + 1
    with pytest.raises(ValueError, match="must not decrease"):
        _conv.planes_grad_weight(X, G, pat.x_off, back, 0, 16, np.zeros((1, pat.nnz)))
    with pytest.raises(ValueError, match="optr must have 3 entries"):
        _conv.planes_grad_weight(X, G, pat.x_off, pat.o_ptr[:2], g.reach, 16,
                                 np.zeros((1, pat.nnz)))
    Y = np.zeros((1, 2, g.n_out))
    vals = np.ones(pat.nnz)
    with pytest.raises(ValueError, match="multiple of 16 within Y's rows"):
        _conv.planes_rows(X, vals, pat.x_off, pat.o_ptr, Y, 15)
    with pytest.raises(ValueError, match="multiple of 16 within Y's rows"):
        _conv.planes_rows(X, vals, pat.x_off, pat.o_ptr, Y, g.n_out + 16)
    with pytest.raises(ValueError, match="ptr must have 3 entries"):
        _conv.planes_rows(X, vals, pat.x_off, pat.o_ptr[:2], Y, 16)
    with pytest.raises(ValueError, match="reach outside one image's planes"):
        _conv.planes_rows(X, vals, far, pat.o_ptr, Y, 16)
    neg = pat.x_off.copy()
    neg[0] = -1
    with pytest.raises(ValueError, match="reach outside one image's planes"):
        _conv.planes_rows(X, vals, neg, pat.o_ptr, Y, 16)
