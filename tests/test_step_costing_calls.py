"""What a training step's costing calls every step, read in place: a kept step's ``run``
takes a uint8 or bool ndarray without the buffer protocol's view (any strides, the same
figures as through that view, and the same refusals for anything else), and ``has_zero``
scans a kernel in AVX-512 lanes where the CPU has them: NumPy's ``(w == 0).any()`` on each
SIMD path, whatever the layout, the alignment or the byte order. X's count per PE column
(src/wsk_stream.h: in 16-bit lanes on the AVX-512 path, 257 rows at a time) against NumPy
where a column holds more rows than one such run, bytes up to 255."""
import numpy as np
import pytest
import scipy.sparse as sps
from test_step_prepared import DS_PIPELINES, WS_PIPELINES, _by_columns, _case
from test_step_stream import _dense_reference, _same

from wsekern._screen import DenseStep, dense_stream
from wsekern._step_cost import WsStep, ws_step_columns, ws_step_stream
from wsekern.wafer import analytic


def _steps(rng):
    """A kept WsStep and DenseStep on the same K rows of X, and K."""
    R, C = 9, 4
    x_nz, k_b, S, choice, comp, dense, t_dense, tail = _case(rng, R, C, 5, ())
    cols = _by_columns(None, R, C, k_b, S, choice, comp, dense)
    K = x_nz.shape[0]
    ws = WsStep(K, k_b, *cols[:3], t_dense, *cols[3:], *tail, True, WS_PIPELINES[0])
    ds = DenseStep(K, k_b, 2.5, 1.0, 2, 1.5, 0.5, DS_PIPELINES[0])
    return ws, ds, K


class _Sub(np.ndarray):
    """An ndarray subclass: read through the buffer protocol, as before."""


@pytest.mark.parametrize("path", ["avx512", "baseline"])
def test_a_step_reads_an_ndarray_in_place_as_through_its_view(paths, path):
    paths(path)
    rng = np.random.default_rng(11)
    ws, ds, K = _steps(rng)
    for N in (0, 1, 7, 32):
        x = (rng.random((K, N)) < 0.4).view(np.uint8)
        wide = np.zeros((K, 2 * N), np.uint8)
        wide[:, ::2] = x
        for view in (x, np.asfortranarray(x), wide[:, ::2], x[::-1]):
            for step in (ws, ds):
                # the same bytes through the buffer protocol (a memoryview is no ndarray)
                want = step.run(memoryview(np.ascontiguousarray(view)))
                assert step.run(view) == want
                assert step.run(view.view(bool)) == want        # the same bytes
                assert step.run(view.view(_Sub)) == want


def test_a_step_refuses_what_its_view_refuses():
    ws, ds, K = _steps(np.random.default_rng(12))
    for step in (ws, ds):
        for bad in (np.zeros((K, 3), np.int8),
                    np.zeros((K, 3), np.float32), np.zeros(K, np.uint8),
                    np.zeros((K, 3, 1), np.uint8)):
            with pytest.raises(ValueError, match="Buffer"):
                step.run(bad)
        with pytest.raises(ValueError, match=rf"the step's {K} rows"):
            step.run(np.zeros((K + 1, 3), np.uint8))


@pytest.mark.parametrize("path", ["avx512", "baseline"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_has_zero_is_numpys_on_each_simd_path(paths, path, dtype):
    paths(path)
    rng = np.random.default_rng(13)
    for n in (1, 15, 16, 63, 64, 65, 127, 128, 4095, 4096, 4097, 4160, 9000):
        base = (rng.random(n) + 0.5).astype(dtype)
        assert analytic.has_zero(base) is False
        for pos in sorted({0, n // 3, n - 1, max(n - 64, 0), min(4096, n - 1)}):
            for v in (0.0, -0.0, np.nan):
                a = base.copy()
                a[pos] = v
                want = bool(v == 0)
                assert analytic.has_zero(a) is want, (n, pos, v)
                # misaligned, byte-swapped: NumPy's way, the same answer
                raw = np.zeros(a.nbytes + 1, np.uint8)
                odd = raw[1:].view(dtype)
                odd[:] = a
                assert not odd.flags.aligned
                assert analytic.has_zero(odd) is want
                assert analytic.has_zero(a.astype(a.dtype.newbyteorder())) is want


@pytest.mark.parametrize("path", ["avx512", "baseline"])
def test_x_counts_of_long_columns_are_numpys(paths, path):
    """Columns of 1 to 1,100 rows of bytes up to 255 (a 16-bit lane would wrap past 257
    rows of 255), samples not a multiple of 32 or 64."""
    paths(path)
    rng = np.random.default_rng(14)
    for K, N, raw in ((1100, 33, True), (600, 65, False), (300, 1, True), (777, 96, True)):
        x = rng.integers(0, 256, (K, N)).astype(np.uint8) if raw else \
            (rng.random((K, N)) < 0.7).view(np.uint8)
        x[: K // 2] = 255 if raw else 1       # columns of 257 and more rows of 255
        k_b = np.sort([0, 1, min(258, K), min(259, K), K // 2, K]).astype(np.int_)
        want = _dense_reference(x, k_b, 3.0, 1.0, 2, 1.0, 0.5)
        for view in (x, np.asfortranarray(x)):
            got = dense_stream(view, k_b, 3.0, 1.0, 2, 1.0, 0.5)
            for g, w in zip(got, want):
                assert _same(g, w), (K, N, g, w)
        # ws_step_columns' counts per sample and per row (any nonzero byte counts once)
        # against ws_step_stream's own pass, on W's entries in every column k
        R, C = 3, len(k_b) - 1
        pe_col = np.searchsorted(k_b, np.arange(K), side="right") - 1
        S = sps.csr_array((rng.integers(1, 5, K).astype(np.int64),
                           (np.arange(K), rng.integers(0, R, K) * C + pe_col)),
                          shape=(K, R * C))
        S.indptr, S.indices = S.indptr.astype(np.int64), S.indices.astype(np.int32)
        choice = rng.integers(0, 3, R * C).astype(np.int8)
        comp, dense = rng.integers(0, 200, (2, R * C)).astype(np.int64)
        t_dense = np.array([7.0, 30.5, 12.0])
        tail = (3.5, 1.25, 3.5, 2, 0.5)
        want = ws_step_stream(x, k_b, S.indptr, S.indices, S.data, t_dense, choice, comp,
                              dense, *tail)
        cols = _by_columns(None, R, C, k_b, S, choice, comp, dense)
        got = ws_step_columns(np.asfortranarray(x), k_b, *cols[:3], t_dense, *cols[3:],
                              *tail)
        for g, w in zip(got, want[:7]):
            assert _same(g, w), (K, N, g, w)
