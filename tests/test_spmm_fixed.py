"""spmm's short route for a plain SciPy CSR (its fixed per-call cost): same results as the
general route against NumPy, the general route taken on any doubt, and the same refusals."""
import numpy as np
import pytest
import scipy.sparse as sps
from conftest import random_csr, reference, run_in_child, tol

import wsekern
from wsekern import _budget, sparse


def _count_general_route(monkeypatch):
    """Counts the calls of the general CSR validation (check_sparse_operand)."""
    calls = []
    real = sparse.check_sparse_operand

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(sparse, "check_sparse_operand", counting)
    return calls


@pytest.mark.parametrize("cls", [sps.csr_matrix, sps.csr_array])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("w_dtype, x_dtype", [(np.float32, np.float32), (np.float64, np.float64),
                                              (np.float32, np.float64), (np.float64, np.float32)])
def test_plain_csr_takes_the_short_route_and_matches_numpy(monkeypatch, cls, index_dtype,
                                                           w_dtype, x_dtype):
    calls = _count_general_route(monkeypatch)
    rng = np.random.default_rng(3)
    for m, k, n, density in ((8, 8, 8, 0.5), (37, 50, 19, 0.1), (200, 300, 64, 0.01),
                             (5, 7, 1, 0.4)):
        W = cls(random_csr(m, k, density, dtype=w_dtype, index_dtype=index_dtype, seed=m))
        assert W.indices.dtype == index_dtype and W.indptr.dtype == index_dtype
        X = rng.standard_normal((k, n)).astype(x_dtype)
        dtype = np.result_type(w_dtype, x_dtype)
        for x in (X, X[:, 0]):                           # 2-D and 1-D
            got = wsekern.spmm(W, x)
            assert got.dtype == dtype and got.shape == (m,) + x.shape[1:]
            np.testing.assert_allclose(got, reference(W, x), **tol(dtype))
    assert calls == []


def _with_indices(W, indices_dtype, indptr_dtype):
    V = sps.csr_array(W)                 # arrays set after construction: SciPy unifies them
    V.indices, V.indptr = W.indices.astype(indices_dtype), W.indptr.astype(indptr_dtype)
    return V


@pytest.mark.parametrize("make", [
    lambda W: _with_indices(W, np.int32, np.int64),                     # mixed index types
    lambda W: _with_indices(W, np.int16, np.int16),                     # narrow indices
    lambda W: _with_indices(W, np.uint32, np.uint32),                   # unsigned
    lambda W: type("MyCSR", (sps.csr_array,), {})(W),                   # a subclass
])
def test_anything_else_takes_the_general_route(monkeypatch, make):
    W = random_csr(30, 40, 0.2, index_dtype=np.int64)
    V = make(W)
    calls = _count_general_route(monkeypatch)
    X = np.random.default_rng(0).standard_normal((40, 9))
    np.testing.assert_allclose(wsekern.spmm(V, X), reference(W, X), **tol(np.float64))
    assert calls


def test_a_lowered_address_space_limit_is_still_read_on_every_call(monkeypatch):
    """The machine's memory is read once; the process's limit at each call."""
    W = random_csr(4, 4, 0.5)
    wsekern.spmm(W, np.ones((4, 2)))
    monkeypatch.setattr(_budget.resource, "getrlimit", lambda which: (1000, 1000))
    with pytest.raises(MemoryError, match="budget"):
        wsekern.spmm(W, np.ones((4, 2000)))


def test_plain_csr_refusals_are_the_general_routes_in_child():
    """Every malformed plain CSR (raw arrays set after construction) is refused with the
    message of the general validation, on both index types; a good call on the same
    matrix first (nothing remembered)."""
    code = """
import numpy as np, scipy.sparse as sps, wsekern
from wsekern.sparse import check_sparse_operand, check_csr_index_range, _unify_indices
X = np.ones((3, 2))
cases = [([0, 5], [0, 1, 2]), ([0, -1], [0, 1, 2]), ([0, 1], [0, 2, 1]),
         ([0, 1], [1, 1, 2]), ([0, 1], [0, 1, 3]), ([0, 1], [0, 2]), ([0, 1], [0, 1, 2, 2]),
         ([0, 2**31 - 1], [0, 1, 2]), ([0, 1], [-1, 1, 2])]
n = 0
for it in (np.int32, np.int64):
    for cls in (sps.csr_array, sps.csr_matrix):
        for indices, indptr in cases:
            W = cls(np.ones((2, 3)))
            wsekern.spmm(W, X)
            W.data = np.ones(len(indices))
            W.indices, W.indptr = np.asarray(indices, it), np.asarray(indptr, it)
            try:
                check_sparse_operand(W)
            except ValueError as e:
                expected = str(e)
            else:
                raise SystemExit(f"general route accepted {indices} {indptr}")
            try:
                wsekern.spmm(W, X)
            except ValueError as e:
                assert str(e) == expected, (str(e), expected)
                n += 1
            else:
                raise SystemExit(f"spmm accepted {indices} {indptr}")
print("refused", n)
"""
    proc = run_in_child(code)
    assert proc.returncode == 0 and proc.stdout.strip() == "refused 36", (
        proc.stdout[-2000:] + proc.stderr[-2000:])
