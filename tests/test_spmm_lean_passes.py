"""spmm's lean path past a few rows (issue 19: 8192x64 x 1 and 64x8192 x 1 below SciPy):
indptr's check and X's nonzero count in vectorised passes per SIMD path, W's column indices
in one pass before the kernel without a check. Results against NumPy and bits against the
checked kernel over tens of thousands of nonzeros (blocks of empty rows first, in the
middle, last; one long row), a bad index in the first or last nonzero refused in a child,
indptr's check and X's count at the vector tails."""
import textwrap

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import run_on_simd
from test_spmm_small import _csr, _numpy_product, _same

from wsekern import _spmm, kernels
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


@pytest.fixture(params=simd_available())
def path(request):
    _spmm.simd_init(SIMD_BITS[request.param])
    yield request.param
    _spmm.simd_init(SIMD_BITS[SIMD_PATH])


_rng = np.random.default_rng(21)
# Row lengths past 16k nonzeros, with runs of empty rows first (the kernel reads nonzero
# 0 for an empty row), in the middle and last; and one row of 20000.
_PATTERNS = {
    "empty_first": [0] * 2000 + [40] * 1000,
    "empty_middle": [30] * 600 + [0] * 3000 + [31] * 600,
    "empty_last": [25] * 1500 + [0] * 4000,
    "random": [int(n) for n in _rng.integers(0, 23, size=3001)],
    "one_long_row": [3] * 100 + [20000] + [1] * 101,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("itype", [np.int32, np.int64])
def test_lean_long_patterns_against_numpy_and_the_checked_kernel(path, dtype, itype):
    """Each pattern on every path: taken by the lean path, equal to NumPy's product, and
    bit for bit the checked kernel's (kernels' Python route)."""
    rng = np.random.default_rng(4)
    for name, lengths in _PATTERNS.items():
        W = _csr(lengths, 300, dtype, itype, seed=len(name))
        assert W.nnz > 16384, name
        for N in sorted({1, _spmm.narrow_width(dtype)}):
            X = rng.standard_normal((300, N)).astype(dtype)
            lean = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
            assert lean is not None, (name, N)
            _same(lean, _numpy_product(W, X), dtype)
            python, route = kernels._spmm_impl(W, X, False, None, 1)
            assert route == "csr"
            np.testing.assert_array_equal(lean.view(f"u{lean.itemsize}"),
                                          python.view(f"u{python.itemsize}"),
                                          err_msg=f"{name} N={N}")


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
@pytest.mark.parametrize("where", ["first", "later"])
def test_lean_bad_first_or_last_index_refused_in_a_child(simd, where):
    """A column index past X in the first nonzero (3000 empty rows before it: an empty
    row reads nonzero 0) or near the last: the range error naming it, no read outside X
    (2^31 - 1 rows past it would fault)."""
    code = textwrap.dedent(f"""
        import numpy as np, scipy.sparse as sps, wsekern
        from wsekern import _spmm, kernels
        lengths = [0] * 3000 + [30] * 1000
        for itype in ("int32", "int64"):
            for dt in ("float32", "float64"):
                indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(itype)
                nnz = int(indptr[-1])
                ind = (np.arange(nnz) % 50).astype(itype)
                ind[{0 if where == "first" else -3}] = 2**31 - 1
                W = sps.csr_matrix((np.ones(nnz, dt), ind, indptr), shape=(4000, 50))
                W.indices, W.indptr = ind, indptr     # SciPy made int64 ones int32
                X = np.ones((50, 1), dt)
                assert _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS) is None
                try:
                    wsekern.spmm(W, X, n_threads=1)
                except ValueError as e:
                    assert "out of range" in str(e) and "2147483647" in str(e), e
                else:
                    raise SystemExit("accepted")
        print("ok")
    """)
    run = run_on_simd(simd, code)
    assert run.returncode == 0 and "ok" in run.stdout, (run.stdout[-2000:], run.stderr[-2000:])


@pytest.mark.parametrize("itype", [np.int32, np.int64])
def test_lean_indptr_check_on_every_path(path, itype):
    """A decreasing indptr (in the middle, at the vector tail, past nnz at the end) or one
    not starting at 0 / not ending at nnz: declined by the lean path (the Python route
    then names it); the same arrays made valid are taken."""
    M = 1003
    lengths = np.random.default_rng(8).integers(0, 5, size=M)
    good = np.concatenate([[0], np.cumsum(lengths)]).astype(itype)
    nnz = int(good[-1])
    W = sps.csr_matrix((np.ones(nnz, np.float32), np.zeros(nnz, itype), good), shape=(M, 7))
    W.indices, W.indptr = np.zeros(nnz, itype), good     # SciPy made int64 ones int32
    X = np.ones((7, 1), np.float32)
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS) is not None
    for i in (517, M - 2, M - 1):                # indptr[i] > indptr[i + 1]
        ip = good.copy()
        ip[i] = ip[i + 1] + 1                    # at M - 1: past nnz, then nnz
        bad = W.copy()
        bad.indices, bad.indptr = W.indices, ip
        assert _spmm.csr_spmm_plain(bad, X, False, None, 1, kernels._GLOBALS) is None, i
        with pytest.raises(ValueError, match="indptr"):
            kernels.spmm(bad, X, n_threads=1)
    for ip0, ipM in ((1, nnz), (0, nnz - 1)):
        ip = good.copy()
        ip[0], ip[-1] = ip0, ipM
        bad = W.copy()
        bad.indices, bad.indptr = W.indices, ip
        assert _spmm.csr_spmm_plain(bad, X, False, None, 1, kernels._GLOBALS) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lean_x_nonzero_count_on_every_path(path, dtype):
    """X's nonzeros (NaN counts, -0 does not) against SPARSE_X_DENSITY, placed in the
    vector tail: at the threshold the lean path takes the call, one fewer it declines (the
    sparse-X route decides), and the result matches NumPy's either way."""
    W = sps.random(40, 1003, density=0.3, format="csr", dtype=dtype, random_state=3)
    need = int(np.ceil(kernels.SPARSE_X_DENSITY * 1003))
    assert need - 1 < kernels.SPARSE_X_DENSITY * 1003 <= need
    for fill in (np.nan, 1.5):
        for n, taken in ((need, True), (need - 1, False)):
            X = np.zeros((1003, 1), dtype)
            X[:40] = -0.0
            X[1003 - n:] = fill                  # the last n: the count's tail
            got = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
            assert (got is not None) == taken, (fill, n)
            _same(kernels.spmm(W, X, n_threads=1), _numpy_product(W, X), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lean_x_count_stops_only_at_the_threshold(path, dtype):
    """The count stops once X's nonzeros reach the sparse-X threshold: need - 1 of them in
    the first block and the last one at the end of X must still be taken; need - 1 alone
    declined; a dense X taken. X of 3009 x 1 (blocks of 512 values)."""
    W = sps.random(40, 3009, density=0.3, format="csr", dtype=dtype, random_state=4)
    need = int(np.ceil(kernels.SPARSE_X_DENSITY * 3009))
    for last, taken in ((True, True), (False, False)):
        X = np.zeros((3009, 1), dtype)
        X[:need - 1] = 2.0
        if last:
            X[-1] = np.nan
        got = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
        assert (got is not None) == taken, last
        _same(kernels.spmm(W, X, n_threads=1), _numpy_product(W, X), dtype)
    X = np.random.default_rng(5).standard_normal((3009, 1)).astype(dtype)
    got = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
    assert got is not None
    _same(got, _numpy_product(W, X), dtype)


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_lean_column_check_edge_values_in_a_child(simd):
    """The column check (the top bit of c | (last - c)) at its edges, per index type, each
    value in a vector body (position 1000) or the scalar tail (the last): K - 1 and 0 are
    taken; K, -1, -K, the type's minimum and maximum (and 2^31 for int64) are refused with
    the range error naming the index, no read outside X. K = 50, 2000 nonzeros in rows of
    2 (short rows)."""
    code = textwrap.dedent("""
        import numpy as np, scipy.sparse as sps, wsekern
        from wsekern import _spmm, kernels
        K = 50
        for itype in ("int32", "int64"):
            info = np.iinfo(itype)
            bads = [K, -1, -K, int(info.min), int(info.max)] + ([2**31] if itype == "int64" else [])
            for dt in ("float32", "float64"):
                indptr = np.arange(0, 2001, 2).astype(itype)
                X = np.ones((K, 1), dt)
                for pos in (1000, 1999):
                    for v, ok in [(K - 1, True), (0, True)] + [(b, False) for b in bads]:
                        ind = (np.arange(2000) % K).astype(itype)
                        ind[pos] = v
                        W = sps.csr_matrix((np.ones(2000, dt), ind, indptr), shape=(1000, K))
                        W.indices, W.indptr = ind, indptr     # SciPy made int64 ones int32
                        got = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
                        assert (got is not None) == ok, (itype, dt, pos, v)
                        if ok:
                            assert np.array_equal(got[:, 0], np.full(1000, 2, dt)), (itype, v)
                            continue
                        try:
                            wsekern.spmm(W, X, n_threads=1)
                        except ValueError as e:
                            assert "out of range" in str(e) and str(v) in str(e), e
                        else:
                            raise SystemExit(f"accepted {itype} {v}")
        print("ok")
    """)
    run = run_on_simd(simd, code)
    assert run.returncode == 0 and "ok" in run.stdout, (run.stdout[-2000:], run.stderr[-2000:])
