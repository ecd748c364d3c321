"""spmm's refusals of operands the audit (s15) found refused badly: each names what was
received and what would work, before any memory is spent."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern


def test_a_broadcast_dense_w_beyond_the_budget_is_refused_before_its_copy():
    W = np.broadcast_to(np.float32(1), (2**20, 2**20))      # 4 TiB once made contiguous
    with pytest.raises(MemoryError, match="broadcast view of shape"):
        wsekern.spmm(W, np.ones((2**20, 1), np.float32))


def test_a_small_broadcast_dense_w_is_computed():
    W = np.broadcast_to(np.float32(0.5), (6, 5))
    X = np.arange(10, dtype=np.float32).reshape(5, 2)
    np.testing.assert_array_equal(wsekern.spmm(W, X), np.ascontiguousarray(W) @ X)


def test_a_one_dimensional_sparse_array_is_refused_as_not_2d():
    W = sps.coo_array(np.ones(40, np.float32))
    with pytest.raises(ValueError, match=r"W must be 2-D; received a coo_array of shape \(40,\)"):
        wsekern.spmm(W, np.ones((40, 2), np.float32))


def test_a_read_only_out_is_refused_and_left_untouched():
    W = sps.random(4, 4, density=0.5, format="csr", dtype=np.float32, random_state=0)
    out = np.full((4, 2), 7, np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        wsekern.spmm(W, np.ones((4, 2), np.float32), out=out)
    np.testing.assert_array_equal(out, 7)
    writable = np.empty((4, 2), np.float32)
    result = wsekern.spmm(W, np.ones((4, 2), np.float32), out=writable)
    assert result is writable
    np.testing.assert_allclose(writable, W @ np.ones((4, 2), np.float32), rtol=1e-6)
