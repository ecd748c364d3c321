"""Bad input gets a clear ValueError/TypeError naming what was received; never a crash."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern
from conftest import random_csr


def _raw_csr(data, indices, indptr, shape):
    """A csr_array built without SciPy's checks, as a careless caller could."""
    A = sps.csr_array(shape)
    A.data, A.indices, A.indptr = np.asarray(data, float), np.asarray(indices), np.asarray(indptr)
    return A


def test_shape_mismatch_names_both_shapes():
    W = random_csr(10, 8, 0.3)
    with pytest.raises(ValueError, match=r"W.shape=\(10, 8\), X.shape=\(9, 3\)"):
        wsekern.spmm(W, np.ones((9, 3)))
    with pytest.raises(ValueError, match="transpose=True"):
        wsekern.spmm(W, np.ones((8, 3)), transpose=True)


@pytest.mark.parametrize("X", [np.ones((2, 2, 2)), np.float64(3.0)])
def test_bad_ndim(X):
    with pytest.raises(ValueError, match="1-D or 2-D"):
        wsekern.spmm(random_csr(4, 2, 0.5), X)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.complex128, object, bool, np.float16])
def test_bad_dtypes(dtype):
    W = random_csr(4, 3, 0.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        wsekern.spmm(W, np.ones((3, 2), dtype=dtype))
    with pytest.raises(TypeError, match="float32 or float64"):
        wsekern.spmm(np.ones((4, 3), dtype=dtype), np.ones((3, 2)))
    if dtype not in (object, np.float16):      # SciPy cannot even hold these
        with pytest.raises(TypeError, match="float32 or float64"):
            wsekern.spmm(W.astype(dtype), np.ones((3, 2)))


def test_sparse_X_is_refused_with_advice():
    with pytest.raises(TypeError, match="dense array"):
        wsekern.spmm(random_csr(4, 3, 0.5), sps.csr_array(np.ones((3, 2))))


@pytest.mark.parametrize("indices, indptr, match", [
    ([0, 5], [0, 1, 2], "column index 5 .* out of range"),
    ([0, -1], [0, 1, 2], "column index -1"),
    ([0, 1], [0, 2, 1], "non-decreasing|indptr"),
    ([0, 1], [1, 1, 2], r"indptr\[0\] must be 0"),
    ([0, 1], [0, 1, 3], r"indptr\[-1\]"),
    ([0, 1], [0, 2], "indptr must have 3 entries"),
])
def test_malformed_csr(indices, indptr, match):
    W = _raw_csr(np.ones(len(indices)), indices, indptr, (2, 3))
    with pytest.raises(ValueError, match=match):
        wsekern.spmm(W, np.ones((3, 2)))
    with pytest.raises(ValueError, match=match):
        wsekern.pack(W)


def test_out_of_range_coo():
    W = sps.coo_array((np.ones(2), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 3))
    W.col = np.array([0, 7])
    with pytest.raises(ValueError, match="column index 7 is out of range"):
        wsekern.spmm(W, np.ones((3, 1)))


def test_sddmm_errors():
    A, B = np.ones((4, 3)), np.ones((5, 3))
    P = random_csr(4, 5, 0.5)
    with pytest.raises(ValueError, match="same number of columns"):
        wsekern.sddmm(A, np.ones((5, 2)), P)
    with pytest.raises(ValueError, match=r"pattern of shape \(4, 5\)"):
        wsekern.sddmm(A, B, random_csr(5, 4, 0.5))
    with pytest.raises(TypeError, match="pattern must be"):
        wsekern.sddmm(A, B, np.ones((4, 5)))
    with pytest.raises(TypeError, match="float32 or float64"):
        wsekern.sddmm(A.astype(int), B, P)
    with pytest.raises(ValueError, match="2-D"):
        wsekern.sddmm(np.ones(4), B, P)


@pytest.mark.parametrize("n_threads, exc", [(0, ValueError), ("2", TypeError), (1.5, TypeError)])
def test_bad_n_threads(n_threads, exc):
    with pytest.raises(exc, match="n_threads"):
        wsekern.spmm(random_csr(4, 3, 0.5), np.ones((3, 2)), n_threads=n_threads)


def test_pack_errors():
    with pytest.raises(ValueError, match="2-D"):
        wsekern.pack(np.ones(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        wsekern.pack(np.ones((2, 2), dtype=int))
    P = wsekern.pack(random_csr(4, 3, 0.5))
    with pytest.raises(ValueError, match="set_values expects"):
        P.set_values(np.ones(P.nnz + 1))
