"""spmm's lean path for small narrow products (issue 19: "never slower than SciPy", 64^2 x 1):
csr_spmm_plain's narrow route made on the arrays' C fields, W's column indices checked in
one pass, then a narrow kernel without the check whose odd last nonzero is added under a
select. Results against NumPy on every SIMD path, bits against the checked kernel (kernels'
Python route), the decisions it repeats, and what it leaves to the full route."""
import dataclasses
import textwrap

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import run_in_child

from wsekern import _spmm, kernels
from wsekern.costs import cost_table
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


@pytest.fixture(params=simd_available())
def path(request):
    _spmm.simd_init(SIMD_BITS[request.param])
    yield request.param
    _spmm.simd_init(SIMD_BITS[SIMD_PATH])


def _csr(lengths, K, dtype, itype, seed=0):
    """A CSR with the given row lengths: unsorted columns, a duplicate in rows of 3+."""
    rng = np.random.default_rng(seed)
    cols = []
    for n in lengths:
        c = rng.integers(0, K, size=n)
        if n > 2:
            c[2] = c[0]
        cols.append(c)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(itype)
    data = rng.standard_normal(int(indptr[-1])).astype(dtype)
    ind = np.concatenate(cols).astype(itype) if cols else np.zeros(0, itype)
    W = sps.csr_matrix((data, ind, indptr), shape=(len(lengths), K))
    W.indices, W.indptr = ind, indptr         # SciPy made int64 indices that fit int32
    return W


def _numpy_product(W, X):
    """Each row's stored weights times X's rows, summed in float64 with NumPy: only stored
    weights are multiplied (inf/NaN of X meet only those), duplicates summed."""
    X64 = np.asarray(X, dtype=np.float64).reshape(W.shape[1], -1)
    out = np.zeros((W.shape[0], X64.shape[1]))
    with np.errstate(invalid="ignore", over="ignore"):     # inf - inf, 0 * inf: NaN wanted
        _rows_product(W, X64, out)
    return out.reshape((W.shape[0],) + np.shape(X)[1:])


def _rows_product(W, X64, out):
    for i in range(W.shape[0]):
        p0, p1 = W.indptr[i], W.indptr[i + 1]
        w = W.data[p0:p1].astype(np.float64)
        out[i] = (w[:, None] * X64[W.indices[p0:p1]]).sum(axis=0)


def _same(got, ref, dtype):
    """Equal NaN and inf positions (and signs), finite values close."""
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(ref))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(ref))
    fin = np.isfinite(ref)
    tol = 3e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[fin], ref[fin], rtol=tol, atol=tol * 10)


# Row lengths that meet the kernel's cases: odd and even rows, empty rows first and last
# (an empty row reads nonzero 0 under the select), one row, one nonzero.
_LENGTHS = {
    "odd": [1, 3, 5, 7, 9, 11, 13],
    "even": [2, 4, 6, 8, 10, 12],
    "empty_ends": [0, 3, 0, 4, 1, 0, 2, 0],
    "mixed": [int(n) for n in np.random.default_rng(3).integers(0, 17, size=61)],
    "one_row": [5],
    "one_nonzero": [0, 0, 1, 0],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("itype", [np.int32, np.int64])
def test_lean_results_against_numpy_on_every_path(path, dtype, itype):
    rng = np.random.default_rng(1)
    for name, lengths in _LENGTHS.items():
        for K in (1, 7, 40):
            W = _csr(lengths, K, dtype, itype, seed=len(name) + K)
            for N in range(0, _spmm.narrow_width(dtype) + 2):      # N = 0 and past the width
                X = rng.standard_normal((K, N)).astype(dtype)
                ref = _numpy_product(W, X)
                _same(kernels.spmm(W, X, n_threads=1), ref, dtype)
                _same(kernels.spmm(W, X), ref, dtype)              # n_threads=None
                _same(kernels.spmm(W, np.asfortranarray(X), n_threads=1), ref, dtype)
                Xw = np.repeat(X, 2, axis=1)[:, ::2]                # not contiguous
                _same(kernels.spmm(W, Xw, n_threads=1), ref, dtype)
            x = rng.standard_normal(K).astype(dtype)                # 1-D X: 1-D result
            _same(kernels.spmm(W, x, n_threads=1), _numpy_product(W, x), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lean_nan_and_inf_against_numpy_on_every_path(path, dtype):
    W = _csr(_LENGTHS["mixed"], 30, dtype, np.int32, seed=5)
    W.data[4] = np.nan
    W.data[9] = np.inf
    W.data[20] = -np.inf
    rng = np.random.default_rng(6)
    for N in range(1, _spmm.narrow_width(dtype) + 1):
        X = rng.standard_normal((30, N)).astype(dtype)
        X[3, 0] = np.inf
        X[11, -1] = np.nan
        X[W.indices[9]] = 0                  # zeros of X meeting a stored inf: NaN
        _same(kernels.spmm(W, X, n_threads=1), _numpy_product(W, X), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("itype", [np.int32, np.int64])
def test_lean_bits_equal_the_checked_kernel(path, dtype, itype):
    """The lean path (csr_spmm_plain taking the call) and kernels' Python route (the
    checked narrow kernel through _csr_spmm) give the same bits at every narrow width."""
    rng = np.random.default_rng(7)
    for name, lengths in _LENGTHS.items():
        W = _csr(lengths, 50, dtype, itype, seed=11)
        for N in range(1, _spmm.narrow_width(dtype) + 1):
            X = rng.standard_normal((50, N)).astype(dtype)
            lean = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
            assert lean is not None, (name, N)
            python, route = kernels._spmm_impl(W, X, False, None, 1)
            assert route == "csr"
            np.testing.assert_array_equal(lean.view(f"u{lean.itemsize}"),
                                          python.view(f"u{python.itemsize}"), err_msg=name)


def test_lean_reads_a_replaced_cost_table():
    """Its rates are kept per table object: a table replaced between calls is read."""
    W = sps.random(60, 70, density=0.3, format="csr", dtype=np.float32, random_state=2)
    X = np.random.default_rng(3).standard_normal((70, 1)).astype(np.float32)
    g = dict(kernels._GLOBALS)
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, g) is not None
    # the CSR kernel priced far above densifying: the narrow shortcut does not apply and
    # the native route declines the densified call (BLAS stays Python's)
    dear = dataclasses.replace(cost_table(), spmm_mac=1e4)
    g["cost_table"] = lambda: dear
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, g) is None
    g["cost_table"] = cost_table
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, g) is not None


def test_lean_memory_check_follows_the_budget(monkeypatch):
    """The output's estimate against _budget's budget: read natively, and through
    check_memory when a test replaces a function of _budget or kernels'."""
    from wsekern import _budget
    W = sps.random(20, 30, density=0.3, format="csr", dtype=np.float64, random_state=4)
    X = np.ones((30, 1))
    g = kernels._GLOBALS
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, g) is not None
    monkeypatch.setattr(_budget, "memory_budget", lambda: 20 * 8 - 1)
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, g) is None
    with pytest.raises(MemoryError, match="output of shape"):
        kernels.spmm(W, X, n_threads=1)
    monkeypatch.setattr(_budget, "memory_budget", lambda: 20 * 8)
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, g) is not None
    monkeypatch.undo()
    monkeypatch.setattr(_budget, "_physical_bytes", lambda: 2 * 20 * 8 - 2)
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, g) is None


def test_lean_leaves_other_layouts_to_the_full_route():
    """Big-endian, misaligned and long-long-indexed operands: right results (another route)."""
    W = sps.random(40, 50, density=0.3, format="csr", dtype=np.float64, random_state=5)
    X = np.random.default_rng(6).standard_normal((50, 2))
    ref = _numpy_product(W, X)
    _same(kernels.spmm(W, X.astype(">f8"), n_threads=1), ref, np.float64)
    raw = np.zeros(X.nbytes + 1, np.uint8)
    Xm = np.frombuffer(raw.data, dtype=np.float64, count=X.size, offset=1).reshape(X.shape)
    assert not Xm.flags.aligned
    Xm = np.ndarray(X.shape, np.float64, raw.data, offset=1)
    Xm[...] = X
    _same(kernels.spmm(W, Xm, n_threads=1), ref, np.float64)
    Wq = sps.csr_matrix((W.data, W.indices.astype(np.longlong), W.indptr.astype(np.longlong)),
                        shape=W.shape)
    _same(kernels.spmm(Wq, X, n_threads=1), ref, np.float64)


def test_cost_table_follows_the_environment(monkeypatch):
    """WSEKERN_COSTS set or removed after the first call is read (os.environ's own dict)."""
    monkeypatch.delenv("WSEKERN_COSTS", raising=False)
    default = cost_table()
    other = next(t for t in __import__("wsekern.costs").costs.TABLES.values()
                 if t.name != default.name)
    monkeypatch.setenv("WSEKERN_COSTS", other.name)
    assert cost_table() is other
    monkeypatch.delenv("WSEKERN_COSTS")
    assert cost_table() is default


def test_lean_memory_check_reads_the_address_space_limit_in_a_child():
    """The native budget: half of RLIMIT_AS when that is below physical memory (lowered in
    a child, after its operands exist): the output's estimate beyond it is refused with
    kernels' message, as check_memory refuses it."""
    code = textwrap.dedent("""
        import resource
        import numpy as np, scipy.sparse as sps
        from wsekern import _spmm, kernels
        M = 100_000                                   # an 800 kB output, fp64
        W = sps.csr_matrix((np.ones(M), np.zeros(M, np.int32), np.arange(M + 1, dtype=np.int32)),
                           shape=(M, 4))
        X = np.ones((4, 1))
        assert _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS) is not None
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (1 << 20, hard))    # a budget of 512 kB
        try:
            taken = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS) is not None
            try:
                kernels.spmm(W, X, n_threads=1)
                msg = "accepted"
            except MemoryError as e:
                msg = str(e)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        print(taken, "output of shape" in msg, msg[:120])
    """)
    proc = run_in_child(code)
    assert proc.returncode == 0 and proc.stdout.startswith("False True"), (
        proc.stdout[-2000:] + proc.stderr[-2000:])
