"""spmm's lean path for a W whose column indices pass LEAN_CHECK_BYTES (4 MiB) in short
rows (issue 19: 262144x64 x 1 at 50 % zeros ran the checked kernel at 0.65-0.71 of SciPy's
speed): the indices checked and run by blocks of ~1024 nonzeros. Results against SciPy in
float64 and bits against the checked kernel (kernels' Python route) on every path, blocks
of empty rows first, in the middle and last, a row longer than a block; a bad index at
nonzero 0 (read by the empty rows of the first block), in a middle block and at the last
nonzero refused in a child."""
import textwrap

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import run_on_simd
from test_spmm_small import _same

from wsekern import _spmm, kernels
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


@pytest.fixture(params=simd_available())
def path(request):
    _spmm.simd_init(SIMD_BITS[request.param])
    yield request.param
    _spmm.simd_init(SIMD_BITS[SIMD_PATH])


# W's construction, as source: run here and in the children
_BUILD = """
def _lengths(seed):
    '''~69k rows (mean ~17: ~1.2M nonzeros, past 4 MiB of int32 indices), 3000
    empty rows first, in the middle (a whole block of them) and last, one row of 5000.'''
    rng = np.random.default_rng(seed)
    body = [int(n) for n in rng.integers(0, 41, size=60000)]
    return ([0] * 3000 + body[:30000] + [5000] + [0] * 3000 + body[30000:]
            + [0] * 3000)


def _big_csr(dtype, itype, K=64, seed=0):
    '''A CSR of _lengths' rows, columns drawn with repeats (duplicates in a row), unsorted;
    the index arrays kept in ``itype`` (SciPy turns int64 ones that fit into int32).'''
    rng = np.random.default_rng(seed)
    lengths = _lengths(seed)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(itype)
    nnz = int(indptr[-1])
    ind = rng.integers(0, K, size=nnz).astype(itype)
    data = rng.standard_normal(nnz).astype(dtype)
    W = sps.csr_matrix((data, ind, indptr), shape=(len(lengths), K))
    W.indices, W.indptr = ind, indptr
    return W
"""
_NS = {"np": np, "sps": sps}
exec(_BUILD, _NS)
_big_csr = _NS["_big_csr"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("itype", [np.int32, np.int64])
def test_lean_blocks_against_scipy_and_the_checked_kernel(path, dtype, itype):
    """Past 4 MiB of indices with short rows, on every path: taken by the lean path, close
    to SciPy's float64 product, and bit for bit the checked kernel's."""
    W = _big_csr(dtype, itype)
    assert W.nnz * np.dtype(itype).itemsize > 4 << 20
    assert W.nnz <= 64 * W.shape[0]
    W64 = W.astype(np.float64)
    rng = np.random.default_rng(5)
    for N in sorted({1, _spmm.narrow_width(dtype)}):
        X = rng.standard_normal((64, N)).astype(dtype)
        X[3] = np.nan if N > 1 else X[3]          # NaN meets only the weights of column 3
        lean = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
        assert lean is not None, N
        _same(lean, W64 @ X.astype(np.float64), dtype)
        python, route = kernels._spmm_impl(W, X, False, None, 1)
        assert route == "csr"
        np.testing.assert_array_equal(lean.view(f"u{lean.itemsize}"),
                                      python.view(f"u{python.itemsize}"), err_msg=f"N={N}")


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_lean_blocks_bad_index_refused_in_a_child(simd):
    """A column index out of range at nonzero 0 (the first block's 3000 empty rows read it),
    in a middle block, or at the last nonzero (the last block): K, -1 and 2^31 - 1 refused
    with the range error naming it, no read outside X (2^31 - 1 rows past X would fault);
    int32 and int64 indices, fp32 and fp64."""
    code = textwrap.dedent("""
        import numpy as np, scipy.sparse as sps, wsekern
        from wsekern import _spmm, kernels
        for itype in ("int32", "int64"):
            for dt in ("float32", "float64"):
                W = _big_csr(dt, itype)
                X = np.ones((64, 1), dt)
                for pos in (0, W.nnz // 2, W.nnz - 1):
                    for v in (64, -1, 2**31 - 1):
                        ind = W.indices.copy()
                        ind[pos] = v
                        bad = W.copy()
                        bad.indices, bad.indptr = ind, W.indptr
                        got = _spmm.csr_spmm_plain(bad, X, False, None, 1, kernels._GLOBALS)
                        assert got is None, (itype, dt, pos, v)
                        try:
                            wsekern.spmm(bad, X, n_threads=1)
                        except ValueError as e:
                            assert "out of range" in str(e) and str(v) in str(e), e
                        else:
                            raise SystemExit(f"accepted {itype} {dt} {pos} {v}")
        print("ok")
    """)
    run = run_on_simd(simd, "import numpy as np, scipy.sparse as sps\n" + _BUILD + code,
                      timeout=600)
    assert run.returncode == 0 and "ok" in run.stdout, (run.stdout[-2000:], run.stderr[-2000:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_route_on_one_thread_runs_the_blocks(path, dtype):
    """The call with n_threads left to wsekern declines the lean path past its thread
    threshold; on one thread its Python route now runs the same blocks (s24: 262144x64 x 1
    at 50 % zeros, Zen 5, 6.9 -> 5.0 ms, SciPy 3.9): bits equal to the checked kernel, which
    csr_spmm runs on each chunk of rows when given two threads."""
    W = _big_csr(dtype, np.int32)
    X = np.random.default_rng(6).standard_normal((64, 1)).astype(dtype)
    one = np.empty((W.shape[0], 1), dtype)
    two = np.empty((W.shape[0], 1), dtype)
    assert _spmm.csr_spmm(W.data, W.indices, W.indptr, X, one, None, 1, 0, True) == 0
    assert _spmm.csr_spmm(W.data, W.indices, W.indptr, X, two, None, 2, 0, True) == 0
    np.testing.assert_array_equal(one.view(f"u{one.itemsize}"), two.view(f"u{two.itemsize}"))
    _same(one, W.astype(np.float64) @ X.astype(np.float64), dtype)


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_python_route_blocks_count_bad_rows_in_a_child(simd):
    """Bad indices in three rows (the first nonzero, a middle one, the last; K, -1 and
    2^31 - 1): csr_spmm on one thread returns 3, the rows the checked kernel counts, and
    reads nothing outside X."""
    code = textwrap.dedent("""
        from wsekern import _spmm
        for dt in ("float32", "float64"):
            W = _big_csr(dt, np.int32)
            ind = W.indices.copy()
            for pos, v in ((0, 64), (W.nnz // 2, -1), (W.nnz - 1, 2**31 - 1)):
                ind[pos] = v
            X = np.ones((64, 1), dt)
            out = np.empty((W.shape[0], 1), dt)
            n = _spmm.csr_spmm(W.data, ind, W.indptr, X, out, None, 1, 0, True)
            assert n == 3, n
        print("ok")
    """)
    run = run_on_simd(simd, "import numpy as np, scipy.sparse as sps\n" + _BUILD + code,
                      timeout=600)
    assert run.returncode == 0 and "ok" in run.stdout, (run.stdout[-2000:], run.stderr[-2000:])
