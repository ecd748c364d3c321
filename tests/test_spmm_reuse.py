"""The CSR kernel's column blocking of X and its MIN_REUSE cut-off (wsekern.kernels): the
blocked and unblocked products agree on either side of the boundary, on every SIMD path."""

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import run_on_simd

from wsekern import kernels


def _w_with_reuse(reuse, K=64, M=80, seed=0):
    """A CSR (M, K) whose nnz / K is exactly ``reuse``."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(M * K, size=reuse * K, replace=False)
    rows, cols = np.divmod(flat, K)
    return sps.csr_array((rng.uniform(-1, 1, len(flat)), (rows, cols)), shape=(M, K))


def test_column_block_is_off_below_min_reuse(monkeypatch):
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 4096)       # tiny L2: blocks
    blocked = kernels.column_block(64, 300, 8)
    assert 0 < blocked < 300
    assert kernels.column_block(64, 300, 8, reuse=kernels.MIN_REUSE) == blocked
    assert kernels.column_block(64, 300, 8, reuse=kernels.MIN_REUSE - 0.5) == 0
    assert kernels.column_block(64, 300, 8, reuse=None) == blocked


@pytest.mark.parametrize("dead_rows", [False, True])
def test_both_sides_of_min_reuse_give_the_same_product(monkeypatch, dead_rows):
    """nnz / K just below and at MIN_REUSE: the unblocked and blocked CSR kernels give
    the same product, bit for bit (blocking changes no column's order of addition), and
    NumPy's dense answer."""
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 4096)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 300))
    if dead_rows:
        X[rng.permutation(64)[:32]] = 0
    results = {}
    for reuse in (kernels.MIN_REUSE - 1, kernels.MIN_REUSE):
        W = _w_with_reuse(reuse)
        path = kernels.spmm_path(W, X)
        assert path == ("csr-skip-rows" if dead_rows else "csr")
        got = kernels.spmm(W, X)
        np.testing.assert_allclose(got, W.toarray() @ X, rtol=1e-12, atol=1e-12)
        for min_reuse in (0, 10**9):               # always block / never block
            monkeypatch.setattr(kernels, "MIN_REUSE", min_reuse)
            results[reuse, min_reuse] = kernels.spmm(W, X)
        monkeypatch.setattr(kernels, "MIN_REUSE", 16)
        np.testing.assert_array_equal(results[reuse, 0], results[reuse, 10**9])


_CHILD = """
import numpy as np, scipy.sparse as sps
import wsekern
from wsekern import kernels
kernels.l2_bytes = lambda: 4096            # blocks wherever MIN_REUSE allows them
rng = np.random.default_rng(3)
for dt in (np.float32, np.float64):
    for reuse in (kernels.MIN_REUSE - 1, kernels.MIN_REUSE, 40):
        K, M = 64, 80
        flat = rng.choice(M * K, size=reuse * K, replace=False)
        W = sps.csr_array((rng.uniform(-1, 1, len(flat)).astype(dt), np.divmod(flat, K)),
                          shape=(M, K))
        for n in (1, 7, 33, 129, 300):
            X = rng.standard_normal((K, n)).astype(dt)
            ref = W.toarray().astype(np.float64) @ X.astype(np.float64)
            np.testing.assert_allclose(wsekern.spmm(W, X), ref, rtol=1e-4, atol=1e-4)
            X[rng.random(K) < 0.5] = 0
            ref = W.toarray().astype(np.float64) @ X.astype(np.float64)
            np.testing.assert_allclose(wsekern.spmm(W, X), ref, rtol=1e-4, atol=1e-4)
print(wsekern.get_config()["simd"])
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_every_path_forced_agrees_with_numpy_across_min_reuse(simd, tmp_path):
    # WSEKERN_COSTS unset: the row of this CPU and path, as a user gets
    res = run_on_simd(simd, _CHILD, env_pop=("WSEKERN_COSTS",))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == simd
