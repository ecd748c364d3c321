"""forward_pad's channel blocks: a filter's kept weights run in blocks of input channels,
each block's row tiles added to the blocks before (src/wsk_conv_tile.h's add mode). On
every SIMD path this CPU runs, any block size gives the one-pass result bit for bit (the
same sums in the same order), and both match plain float64 loops and PyTorch: odd widths,
one-row images, 5x5, dilation, groups, NaN and inf in x, dead channels, all-zero filters,
filters whose first blocks hold no weight, and weights not in channel order."""
import numpy as np
import pytest
from test_conv_rows import kept_reference

from wsekern import _conv
from wsekern import conv as conv_mod
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


@pytest.fixture(params=simd_available())
def simd(request):
    """Each SIMD path this CPU runs, selected in this process for _conv only."""
    _conv.simd_init(SIMD_BITS[request.param])
    yield request.param
    _conv.simd_init(SIMD_BITS[SIMD_PATH])


def operands(x, w, padding, dilation, groups):
    g = conv_mod.ConvGeometry.of(x.shape, w.shape, 1, padding, dilation, groups)
    w2 = np.ascontiguousarray(w).reshape(g.O, -1)
    alive = np.empty((g.B, g.C), dtype=np.uint8)
    _conv.scan_planes(np.ascontiguousarray(x).reshape(g.B, g.C, -1), alive)
    wval, woff, wchan, wptr = conv_mod._filter_offsets(w2, g, g.phase_shape())
    return g, alive, wval, woff, wchan, wptr


def run(x, g, alive, wval, woff, wchan, wptr, cblock, n_threads=1):
    out = np.full((g.B, g.O, g.OH, g.OW), np.nan, dtype=x.dtype)
    _conv.forward_pad(np.ascontiguousarray(x), *g.padding, alive, wval, woff, wchan, wptr,
                      out, n_threads, cblock)
    return out


CASES = [
    # (B, C, H, W), (O, kh, kw), padding, dilation, groups
    ((2, 7, 9, 8), (4, 3, 3), 1, 1, 1),
    ((1, 5, 7, 5), (3, 3, 3), 1, 1, 1),            # width below one vector
    ((2, 6, 6, 33), (5, 3, 3), 1, 1, 1),           # a vector and a bit
    ((1, 9, 11, 37), (2, 3, 3), 1, 1, 1),          # odd rows and columns
    ((2, 4, 1, 19), (3, 1, 3), (0, 1), 1, 1),      # one-row image
    ((1, 8, 12, 23), (4, 3, 3), 2, 2, 2),          # dilation, groups
    ((2, 6, 9, 17), (6, 3, 3), 1, 1, 6),           # depthwise
    ((1, 6, 16, 64), (4, 5, 5), 2, 1, 1),          # exact vectors, 5x5
    ((1, 5, 34, 20), (3, 3, 3), 0, 1, 1),          # no padding: reads end at the planes
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_blocks_give_the_one_pass_sums_bit_for_bit(case, dtype, simd):
    xs, (O, kh, kw), padding, dilation, groups = case
    rng = np.random.default_rng(abs(hash((xs, O, kh))) % 2**32)
    x = rng.standard_normal(xs).astype(dtype)
    x[rng.random(xs) < 0.3] = 0
    w = rng.standard_normal((O, xs[1] // groups, kh, kw))
    w *= rng.random(w.shape) >= 0.6
    w[0] = 0                                          # an all-zero filter
    if xs[1] // groups > 2:
        w[-1, :2] = 0                                 # first block(s) without a weight
    w = w.astype(dtype)
    ops = operands(x, w, padding, dilation, groups)
    one = run(x, *ops, 0)
    ref = kept_reference(x, w, 1, padding, dilation, groups)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(one, ref, rtol=tol, atol=tol)
    for cblock in (-1, 1, 2, 3, xs[1], 10**9):
        for n_threads in (1, 2):
            y = run(x, *ops, cblock, n_threads)
            np.testing.assert_array_equal(y, one)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_with_nan_inf_and_dead_channels(dtype, simd):
    """NaN and inf in x reach exactly the outputs a kept weight meets; a channel zero for
    one image drops its weights for that image (the weights are compacted per image, and
    the blocks are cut on the compacted list)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 6, 9, 21)).astype(dtype)
    x[0, 0, 4, 20] = np.nan          # last column: read past by the row before's lanes
    x[1, 4, 0, 0] = np.nan
    x[1, 2, 5, 7] = np.inf
    x[2, 1] = 0                      # dead for image 2 only
    x[0, 3] = 0
    w = (rng.standard_normal((4, 6, 3, 3)) * (rng.random((4, 6, 3, 3)) < 0.5)).astype(dtype)
    w[:, 5] = 0                      # channel 5 has no kept weight
    ref = kept_reference(x, w, 1, 1, 1, 1)
    ops = operands(x, w, 1, 1, 1)
    assert not ops[1].all()          # some dead channel: the compacting route runs
    tol = 1e-4 if dtype == np.float32 else 1e-12
    one = run(x, *ops, 0)
    np.testing.assert_array_equal(np.isnan(one), np.isnan(ref))
    np.testing.assert_allclose(one, ref, rtol=tol, atol=tol)
    assert np.isnan(ref).any() and np.isinf(ref).any() and not np.isnan(ref).all()
    for cblock in (-1, 1, 2, 4):
        np.testing.assert_array_equal(run(x, *ops, cblock), one)


def test_weights_out_of_channel_order_run_in_one_pass(simd):
    """forward_pad cuts blocks only when each filter's channels never decrease; shuffled
    weights run in one pass, so the sums are still right."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 8, 19)).astype(np.float32)
    w = (rng.standard_normal((3, 6, 3, 3)) * (rng.random((3, 6, 3, 3)) < 0.5))
    w = w.astype(np.float32)
    g, alive, wval, woff, wchan, wptr = operands(x, w, 1, 1, 1)
    perm = np.arange(len(wval))
    for o in range(g.O):
        perm[wptr[o]:wptr[o + 1]] = rng.permutation(perm[wptr[o]:wptr[o + 1]])
    assert (np.diff(wchan[perm]) < 0).any()
    shuffled = (wval[perm].copy(), woff[perm].copy(), wchan[perm].copy(), wptr)
    one = run(x, g, alive, *shuffled, 0)
    np.testing.assert_allclose(one, kept_reference(x, w, 1, 1, 1, 1), rtol=1e-4, atol=1e-4)
    for cblock in (-1, 1, 2):
        np.testing.assert_array_equal(run(x, g, alive, *shuffled, cblock), one)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_at_80_percent_zeros_matches_torch(dtype, simd, monkeypatch):
    """The benchmark's layer (64 channels, 32x32, 3x3): wide enough that the chosen blocks
    (float64 on every path, float32 on AVX2) cut each filter into several; conv2d end to
    end against PyTorch."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(conv_mod, "DIRECT_FIXED", -1e9)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 64, 32, 32)).astype(dtype)
    w = rng.standard_normal((64, 64, 3, 3)).astype(dtype)
    w[rng.random(w.shape) < 0.8] = 0
    assert conv_mod.conv2d_path(x, w, padding=1) == "direct"
    y = conv_mod.conv2d(x, w, padding=1, n_threads=1)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, ref.numpy(), rtol=tol, atol=tol)
    ops = operands(x, w, 1, 1, 1)
    np.testing.assert_array_equal(run(x, *ops, -1), run(x, *ops, 0))
