"""sddmm: the values of A @ B.T at a pattern's nonzeros."""
import numpy as np
import pytest
import scipy.sparse as sps
from conftest import random_csr, tol

import wsekern


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
@pytest.mark.parametrize("D", [0, 1, 15, 64, 100])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_sddmm_matches_masked_dense(dtype, density, D, n_threads, index_dtype):
    P = random_csr(70, 50, density, dtype, index_dtype, seed=D)
    rng = np.random.default_rng(D)
    A = rng.standard_normal((70, D)).astype(dtype)
    B = rng.standard_normal((50, D)).astype(dtype)
    S = wsekern.sddmm(A, B, P, n_threads=n_threads)
    assert isinstance(S, sps.csr_array) and S.dtype == dtype
    np.testing.assert_array_equal(S.indices, P.indices)
    np.testing.assert_array_equal(S.indptr, P.indptr)
    full = A.astype(np.float64) @ B.T.astype(np.float64)
    rows = np.repeat(np.arange(70), np.diff(P.indptr))
    np.testing.assert_allclose(S.data, full[rows, P.indices], **tol(dtype))


def test_sddmm_packed_pattern_returns_packed_with_same_structure():
    W = wsekern.pack(random_csr(40, 30, 0.2, seed=1))
    rng = np.random.default_rng(0)
    dY, X = rng.standard_normal((40, 16)), rng.standard_normal((30, 16))
    G = wsekern.sddmm(dY, X, W)
    assert isinstance(G, wsekern.PackedSparse)
    assert G.indices is W.indices or np.array_equal(G.indices, W.indices)
    mask = W.toarray() != 0
    np.testing.assert_allclose(G.toarray(), (dY @ X.T) * mask, **tol(np.float64))


def test_sddmm_keeps_pattern_order_duplicates_and_stored_zeros():
    indptr = np.array([0, 3, 4])
    indices = np.array([2, 0, 2, 1])
    P = sps.csr_array((np.array([0.0, 1.0, 1.0, 0.0]), indices, indptr), shape=(2, 3))
    A = np.arange(8.0).reshape(2, 4)
    B = np.arange(12.0).reshape(3, 4) - 5
    S = wsekern.sddmm(A, B, P)
    full = A @ B.T
    np.testing.assert_allclose(S.data, [full[0, 2], full[0, 0], full[0, 2], full[1, 1]])


def test_sddmm_nan_propagates_like_dense():
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((5, 8)), rng.standard_normal((6, 8))
    A[1, 3] = np.nan
    P = sps.csr_array(np.ones((5, 6)))
    S = wsekern.sddmm(A, B, P)
    np.testing.assert_array_equal(np.isnan(S.toarray()), np.isnan(A @ B.T))


@pytest.mark.parametrize("fmt", ["coo", "csc", "bsr"])
def test_sddmm_other_pattern_formats(fmt):
    P = random_csr(20, 10, 0.3, seed=2)
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((20, 7)), rng.standard_normal((10, 7))
    S = wsekern.sddmm(A, B, P.asformat(fmt))
    np.testing.assert_allclose(S.toarray(), (A @ B.T) * (P.toarray() != 0), **tol(np.float64))


def test_sddmm_is_the_masked_weight_gradient():
    """dW of Y = W @ X is dY @ X.T, restricted to W's pattern."""
    rng = np.random.default_rng(0)
    W = random_csr(12, 9, 0.4, seed=3)
    X = rng.standard_normal((9, 5))
    dY = rng.standard_normal((12, 5))
    G = wsekern.sddmm(dY, X, W)
    np.testing.assert_allclose(G.toarray(), (dY @ X.T) * (W.toarray() != 0))
