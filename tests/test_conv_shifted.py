"""forward_pad's shifted copies (src/_conv.pyx _forward_shifted: one copy of each padded
image per kernel column, rows of aligned pitch, output bands x blocks of 16 input
channels) against the one-pass path bit for bit and plain loops in float64: channels off
the block, widths off the vector, heights off the tile, paddings, 1- to 3-column reach,
NaN and inf in x, inf weights, an all-zero filter, threads; where it does not apply
(weights out of channel order, a dead channel, a reach past 3 columns) the one-pass
path's sums."""
import numpy as np
import pytest
from test_conv_rows import kept_reference

from wsekern import _conv
from wsekern import conv as conv_mod
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


@pytest.fixture(params=simd_available())
def simd(request):
    _conv.simd_init(SIMD_BITS[request.param])
    yield request.param
    _conv.simd_init(SIMD_BITS[SIMD_PATH])


def pad_forward(x, w, padding, dilation, shifted, n_threads=1, alive=None, order=None):
    g = conv_mod.ConvGeometry.of(x.shape, w.shape, 1, padding, dilation, 1)
    wval, woff, wchan, wptr = conv_mod._filter_offsets(w.reshape(g.O, -1), g, g.phase_shape())
    if order is not None:                   # reverse each filter's weights
        for o in range(g.O):
            s = slice(wptr[o], wptr[o + 1])
            wval[s], woff[s], wchan[s] = wval[s][::-1], woff[s][::-1], wchan[s][::-1]
    if alive is None:
        alive = np.ones((g.B, g.C), dtype=np.uint8)
    out = np.full((g.B, g.O, g.OH, g.OW), np.nan, dtype=x.dtype)
    _conv.forward_pad(x, *g.padding, alive, wval, woff, wchan, wptr, out, n_threads,
                      -1 if shifted else 0, shifted)
    return out


CASES = [
    # (B, C, H, W), (O, kh, kw), padding, dilation
    ((2, 19, 13, 37), (5, 3, 3), 1, 1),     # channels off the block, 8 + 5 rows, 2.3 vectors
    ((1, 40, 9, 16), (3, 3, 3), 1, 1),      # one exact vector, 2.5 blocks
    ((2, 1, 7, 5), (2, 3, 3), 1, 1),        # one channel, width below a vector
    ((1, 17, 11, 30), (4, 3, 3), 0, 1),     # no padding: the copies' rows end short
    ((1, 5, 6, 21), (3, 3, 3), (2, 0), 1),  # padding rows only
    ((1, 5, 6, 21), (3, 3, 3), (0, 2), 1),  # padding columns only: wider than the reach
    ((2, 6, 10, 33), (3, 1, 1), 0, 1),      # 1x1: one copy
    ((1, 7, 12, 18), (3, 2, 2), 1, 2),      # dilated 2x2: columns 0 and 2
    ((1, 3, 1, 19), (3, 1, 3), (0, 1), 1),  # one-row image
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_shifted_copies_match_one_pass_bit_for_bit(case, dtype, simd):
    xs, (O, kh, kw), padding, dilation = case
    rng = np.random.default_rng(abs(hash((xs, O, kh))) % 2**32)
    x = rng.standard_normal(xs).astype(dtype)
    x[rng.random(xs) < 0.3] = 0
    w = rng.standard_normal((O, xs[1], kh, kw))
    w *= rng.random(w.shape) >= 0.7
    w[0] = 0                                        # an all-zero filter
    w = w.astype(dtype)
    ref = kept_reference(x, w, 1, padding, dilation, 1)
    one = pad_forward(x, w, padding, dilation, 0)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(one, ref, rtol=tol, atol=tol)
    for n_threads in (1, 2):
        y = pad_forward(x, w, padding, dilation, 1, n_threads)
        assert y.dtype == dtype and y.shape == ref.shape
        np.testing.assert_array_equal(y, one)


def test_nan_inf_in_x_and_inf_weights(simd):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 18, 9, 20)).astype(np.float32)
    x[0, 3, 4, 19] = np.nan                  # last column: lanes past it are dropped
    x[1, 17, 0, 0] = np.inf
    w = (rng.standard_normal((4, 18, 3, 3)) * (rng.random((4, 18, 3, 3)) < 0.4))
    w[2, 5, 1, 1] = np.inf
    w = w.astype(np.float32)
    ref = kept_reference(x, w, 1, 1, 1, 1)
    y = pad_forward(x, w, 1, 1, 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(y, pad_forward(x, w, 1, 1, 0))
    assert np.isnan(ref).any() and not np.isnan(ref).all()


@pytest.mark.parametrize("why", ["order", "dead channel", "reach"])
def test_where_shifted_does_not_apply(why, simd):
    rng = np.random.default_rng(6)
    kw = 5 if why == "reach" else 3
    x = rng.standard_normal((2, 20, 8, 24)).astype(np.float32)
    w = (rng.standard_normal((3, 20, 3, kw)) * (rng.random((3, 20, 3, kw)) < 0.5))
    w = w.astype(np.float32)
    alive = np.ones((2, 20), dtype=np.uint8)
    if why == "dead channel":
        x[1, 7] = 0
        alive[1, 7] = 0
    pad = (1, kw // 2)
    ref = kept_reference(x, w, 1, pad, 1, 1)
    y = pad_forward(x, w, pad, 1, 1, alive=alive, order=why == "order" or None)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_offsets_reaching_the_next_plane_in_a_child_process():
    """Offsets forward_pad accepts but no conv makes (a tap's rows running past its own
    channel's plane into the next): the copies are read inside the buffer, and the sums
    are the one-pass path's (rows reached past a plane are the next plane's in both)."""
    code = """
        import numpy as np
        from wsekern import _conv
        C, H, W, O = 3, 5, 20, 2
        Hq, Wq = H + 2, W + 2
        x = np.arange(2 * C * H * W, dtype=np.float32).reshape(2, C, H, W) % 7 - 3
        woff = np.array([0 * Hq * Wq + (Hq - 1) * Wq + 2, 1 * Hq * Wq + 3 * Wq + 1],
                        dtype=np.int32)
        wchan = np.array([0, 1], dtype=np.int32)
        wval = np.array([1.5, -2.0], dtype=np.float32)
        wptr = np.array([0, 1, 2], dtype=np.int32)
        alive = np.ones((2, C), dtype=np.uint8)
        outs = []
        for shifted in (0, 1):
            out = np.full((2, O, H, W), np.nan, dtype=np.float32)
            _conv.forward_pad(x, 1, 1, alive, wval, woff, wchan, wptr, out, 1, -1, shifted)
            outs.append(out)
        assert not np.isnan(outs[1]).any()
        assert np.array_equal(outs[0], outs[1]), np.abs(outs[0] - outs[1]).max()
        print("OK")
    """
    from conftest import run_in_child
    proc = run_in_child(code)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stderr[-2000:]
