"""The weight gradient's SDDMM (wsekern._sparse_dense.sampled_dots): eight dots at a time
and, for float32, columns in blocks accumulated into the result; against NumPy at shapes
that are no multiple of the group or the vector, and refusing mis-sized operands."""
import textwrap

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import assert_refused_in_child

from wsekern import _sparse_dense, pack
from wsekern import sparse_dense as sd


def _pattern_kernel(K, N, density, dtype, seed=0):
    W = sps.random(K, N, density=density, random_state=seed, format="csr", dtype=np.float64)
    return pack(W.astype(dtype))


def _reference(P, Xt, Gt):
    """(Xt Gt^T)[i, cols[p]] for each stored p of row i, in float64, from its own rows."""
    rows = np.repeat(np.arange(P.shape[0]), np.diff(P.indptr))
    return np.einsum("pd,pd->p", Xt[rows].astype(np.float64),
                     Gt[P.indices].astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("D", [0, 1, 7, 8, 9, 31, 130])
@pytest.mark.parametrize("d_block", [0, 8, 16, 24, 64])
def test_sampled_dots_match_numpy_in_every_blocking(dtype, index_dtype, D, d_block):
    """Rows of 0..20 stored weights (groups of 8 and ragged last groups), dots not a
    multiple of the vector, column blocks not dividing D: each block's dots add up."""
    rng = np.random.default_rng(D + d_block)
    K, N = 21, 37
    counts = np.arange(K) % 21                        # 0, 1, ..., 20 stored per row
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(index_dtype)
    cols = np.concatenate([np.sort(rng.choice(N, c, replace=False)) for c in counts])
    cols = cols.astype(index_dtype)
    Xt = rng.standard_normal((K, D)).astype(dtype)
    Gt = rng.standard_normal((N, D)).astype(dtype)
    out = np.full(indptr[-1], np.nan, dtype=dtype)
    _sparse_dense.sampled_dots(Xt, Gt, cols, indptr, out, 1, d_block)
    rows = np.repeat(np.arange(K), counts)
    ref = np.einsum("pd,pd->p", Xt[rows].astype(np.float64), Gt[cols].astype(np.float64))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, ref, **tol)


@pytest.mark.parametrize("K,N,B", [(128, 512, 600), (70, 300, 1030), (5, 3, 0)])
def test_pattern_grad_blocks_match_numpy(K, N, B):
    """The wrapper at batches past 512 columns and none at all (eight dots at a time)."""
    rng = np.random.default_rng(B)
    P = _pattern_kernel(K, N, 0.1, np.float32)
    Xt = rng.standard_normal((K, B)).astype(np.float32)
    Gt = rng.standard_normal((N, B)).astype(np.float32)
    got = sd.pattern_grad(P, Xt, Gt, n_threads=2)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _reference(P, Xt, Gt), rtol=1e-4, atol=1e-4)


def test_all_zero_kernel_and_nan_inf_reach_only_their_own_dots():
    """A NaN or inf in row i of Xt reaches the gradients of row i's stored weights only (it
    meets no weight that is not stored), and one in row c of Gt those at column c only."""
    rng = np.random.default_rng(3)
    P = _pattern_kernel(40, 50, 0.2, np.float32)
    assert sd.pattern_grad(pack(np.zeros((40, 50), np.float32)),
                           np.ones((40, 9), np.float32), np.ones((50, 9), np.float32)).size == 0
    Xt = rng.standard_normal((40, 33)).astype(np.float32)
    Gt = rng.standard_normal((50, 33)).astype(np.float32)
    Xt[7, 5] = np.nan
    Gt[11, 30] = np.inf
    got = sd.pattern_grad(P, Xt, Gt)
    rows = np.repeat(np.arange(40), np.diff(P.indptr))
    bad_nan = rows == 7
    bad_inf = (P.indices == 11) & ~bad_nan
    assert np.isnan(got[bad_nan]).all()
    assert np.isinf(got[bad_inf]).all() or np.isnan(got[bad_inf]).all()
    ok = ~(bad_nan | bad_inf)
    assert ok.sum() > 0 and np.isfinite(got[ok]).all()
    np.testing.assert_allclose(got[ok], _reference(P, Xt, Gt)[ok], rtol=1e-4, atol=1e-4)


def test_sampled_dots_refuses_mis_sized_operands_in_a_child_process():
    """sampled_dots trusted its caller for A's rows, B's columns and out's length: a short
    one was read or written past its end. Straight into the Cython entry point, in a child
    so that a crash fails this test."""
    code = textwrap.dedent("""
        import numpy as np
        from wsekern import _sparse_dense as S
        f = np.float32
        cols = np.array([0, 2, 1, 3, 0, 1, 2, 3, 1], np.int32)
        ptr = np.array([0, 4, 9], np.int32)
        A, B, out = np.ones((2, 64), f), np.ones((4, 64), f), np.empty(9, f)
        cases = [
            lambda: S.sampled_dots(np.ones((1, 64), f), B, cols, ptr, out),
            lambda: S.sampled_dots(A, np.ones((4, 8), f), cols, ptr, out),
            lambda: S.sampled_dots(A, B, cols, ptr, np.empty(3, f)),
            lambda: S.sampled_dots(A, B, cols[:5], ptr, out),
            lambda: S.sampled_dots(A, B, cols, np.array([1, 4, 9], np.int32), out),
            lambda: S.sampled_dots(np.ones((0, 64), f), B, cols, np.zeros(0, np.int32),
                                   np.empty(0, f)),
            lambda: S.sampled_dots(A.astype(np.float64), B.astype(np.float64), cols, ptr,
                                   np.empty(2, np.float64)),
        ]
    """)
    assert_refused_in_child(code, 7, (ValueError,), ("received",))
