"""conv2d's setup outside the kernel: the scan of x on every SIMD path this CPU runs (its
vector body and scalar tail against NumPy, NaN and inf anywhere), and the weight cache
(density, finiteness, offsets) never serving weights changed since they were cached."""
import numpy as np
import pytest
from conftest import assert_refused_in_child
from test_conv import conv_reference

import wsekern
from wsekern import _conv
from wsekern import conv as conv_mod
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


@pytest.fixture(params=simd_available())
def simd(request):
    """Each SIMD path this CPU runs, selected in this process for _conv only."""
    _conv.simd_init(SIMD_BITS[request.param])
    yield request.param
    _conv.simd_init(SIMD_BITS[SIMD_PATH])


def numpy_scan(x):
    return (np.count_nonzero(x), bool(np.isfinite(x).all()),
            (x != 0).any(axis=2).astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scan_planes_matches_numpy_at_every_length(simd, dtype):
    """Plane lengths 0-70 (below one vector, whole vectors, the tail), -0.0 counted as a
    zero, subnormals as nonzeros, and all-zero planes."""
    rng = np.random.default_rng(11)
    tiny = np.finfo(dtype).smallest_subnormal
    for n in list(range(71)) + [127, 128, 129, 1000, 4099]:
        x = rng.standard_normal((2, 3, n)).astype(dtype)
        x[rng.random(x.shape) < 0.6] = 0
        x[0, 1] = 0                                   # a dead plane
        if n:
            x[1, 2, rng.integers(n)] = -0.0
            x[1, 0, rng.integers(n)] = tiny
        alive = np.full((2, 3), 7, np.uint8)
        nnz, finite = _conv.scan_planes(x, alive)
        want = numpy_scan(x)
        assert (nnz, finite) == want[:2], (simd, n)
        np.testing.assert_array_equal(alive, want[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_scan_planes_finds_a_non_finite_anywhere(simd, dtype, special):
    """One NaN or inf at each position of planes of several lengths: found in the vector
    body and in the tail, and it keeps an otherwise zero plane alive."""
    for n in (1, 7, 8, 15, 16, 17, 33, 64, 65, 100):
        for pos in range(n):
            x = np.zeros((1, 2, n), dtype)
            x[0, 1, pos] = special
            alive = np.zeros((1, 2), np.uint8)
            nnz, finite = _conv.scan_planes(x, alive)
            assert (nnz, finite) == (1, False), (simd, n, pos)
            np.testing.assert_array_equal(alive, [[0, 1]])


def test_scan_planes_refuses_a_short_alive_in_a_child_process():
    """scan_planes writes alive without bounds checks: a mismatched one is refused."""
    assert_refused_in_child("""
        import numpy as np
        from wsekern import _conv
        x = np.ones((2, 3, 5))
        cases = [
            lambda: _conv.scan_planes(x, np.empty((2, 2), np.uint8)),
            lambda: _conv.scan_planes(x, np.empty((1, 3), np.uint8)),
            lambda: _conv.scan_planes(x, np.empty((3, 3), np.uint8)),
        ]
    """, 3)


def test_scan_planes_of_empty_inputs():
    for shape in [(0, 3, 5), (2, 0, 5), (2, 3, 0)]:
        alive = np.full(shape[:2], 7, np.uint8)
        assert _conv.scan_planes(np.zeros(shape), alive) == (0, True)
        assert not alive.any()


@pytest.fixture
def direct_only(monkeypatch):
    monkeypatch.setattr(conv_mod, "DIRECT_FIXED", -1e9)
    monkeypatch.setattr(conv_mod, "_OFFSETS_CACHE", [])


def check(x, w, padding=1):
    y = wsekern.conv2d(x, w, padding=padding)
    want = conv_reference(x, w, None, 1, padding, 1, 1)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))


def test_weight_cache_sees_an_inf_written_in_place(direct_only):
    """Cached as finite, then an inf written in place on a channel x holds no nonzero: the
    dead channel must no longer be skipped (inf * 0 is NaN), as for fresh weights."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 5))
    x[:, 1] = 0                                       # channel 1 dead in every image
    w = rng.standard_normal((4, 3, 3, 3)) * (rng.random((4, 3, 3, 3)) < 0.4)
    w[:, 1] = 0
    check(x, w)
    w[2, 1, 1, 1] = np.inf                            # same object, same other bytes
    check(x, w)
    assert np.isnan(wsekern.conv2d(x, w, padding=1)[:, 2]).all()
    w[2, 1, 1, 1] = 0                                 # back to the first weights
    check(x, w)


def test_weight_cache_sees_the_density_change_in_place(monkeypatch):
    """The path follows the weights' density: after the same array is made dense in
    place, conv2d_path answers as for a fresh copy of it (and the sums follow)."""
    monkeypatch.setattr(conv_mod, "_OFFSETS_CACHE", [])
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 16, 12, 12))
    w = rng.standard_normal((16, 16, 3, 3))
    dense = w.copy()
    w[rng.random(w.shape) < 0.97] = 0
    assert wsekern.conv2d_path(x, w, padding=1) == wsekern.conv2d_path(x, w.copy(), padding=1)
    check(x, w)
    w[...] = dense                                    # in place
    assert wsekern.conv2d_path(x, w, padding=1) == wsekern.conv2d_path(x, w.copy(), padding=1)
    check(x, w)


def test_weight_cache_across_steps_and_geometries(direct_only):
    """A training loop's in-place updates (w -= lr * g), then the same weights on other
    image sizes, paddings and strides: every call as the reference; the cache stays
    bounded in weights and in geometries per weight."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 3, 3, 3)) * (rng.random((4, 3, 3, 3)) < 0.5)
    mask = w != 0
    for step in range(3):
        x = rng.standard_normal((2, 3, 7, 6))
        check(x, w)
        w -= 0.1 * rng.standard_normal(w.shape) * mask
    for size, padding in [(7, 1), (9, 1), (9, 0), (10, 2), (5, 1), (11, 1), (7, 1)]:
        x = rng.standard_normal((1, 3, size, size + 1))
        check(x, w, padding)
    y = wsekern.conv2d(x, w, stride=2, padding=1)
    np.testing.assert_allclose(y, conv_reference(x, w, None, 2, 1, 1, 1), rtol=1e-10,
                               atol=1e-10)
    assert 0 < len(conv_mod._OFFSETS_CACHE) <= conv_mod._OFFSETS_KEPT
    assert all(len(e.offsets) <= conv_mod._OFFSETS_KEPT for e in conv_mod._OFFSETS_CACHE)


def test_weight_cache_tells_dtypes_and_shapes_apart(direct_only):
    """The same bytes as float32 and as another shape are other weights."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 4, 6, 6))
    w = rng.standard_normal((4, 4, 3, 3)) * (rng.random((4, 4, 3, 3)) < 0.4)
    check(x, w)
    w2 = w.reshape(8, 2, 3, 3)                        # same bytes, another layer
    check(x[:, :2], w2)
    y32 = wsekern.conv2d(x.astype(np.float32), w.astype(np.float32), padding=1)
    np.testing.assert_allclose(y32, conv_reference(x, w, None, 1, 1, 1, 1), rtol=1e-4,
                               atol=1e-4)


def test_pair_takes_plain_ints_and_refuses_the_rest():
    """conv2d's int fast path for stride, padding and dilation keeps every refusal."""
    assert conv_mod.pair(3, "stride", 1) == (3, 3)
    assert conv_mod.pair(np.int64(2), "stride", 1) == (2, 2)
    assert conv_mod.pair((1, 2), "stride", 1) == (1, 2)
    assert conv_mod.pair(0, "padding", 0) == (0, 0)
    for v, error in [(True, TypeError), (1.0, TypeError), ("1", TypeError), (0, ValueError),
                     (-1, ValueError), (2**31, ValueError), ((1, True), TypeError)]:
        with pytest.raises(error):
            conv_mod.pair(v, "stride", 1)
