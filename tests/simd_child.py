"""Run in a child process with WSEKERN_SIMD set (tests/test_dispatch.py): every kernel that
goes through the SIMD dispatch table, at every tile and tail width, against NumPy. Prints
the SIMD path taken; any mismatch raises."""
import numpy as np
import scipy.sparse as sps

import wsekern
from wsekern import _spmm, conv, kernels

# Widths that end on every tile boundary of every path (vectors of 2 to 16 lanes, tiles of
# 1, 2, 4 and 8 vectors, half-vector and scalar tails, the baseline's streaming rows).
WIDTHS = (1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 96, 127,
          128, 129, 130, 191, 255, 256, 257, 300)
TOL = dict(rtol=1e-4, atol=1e-4)


def check_spmm(rng, dt, it):
    W = sps.random(61, 97, density=0.2, format="csr", dtype=dt, random_state=1)
    W.indices, W.indptr = W.indices.astype(it), W.indptr.astype(it)
    Wd = W.toarray().astype(np.float64)
    for n in WIDTHS:
        X = rng.standard_normal((97, n)).astype(dt)
        np.testing.assert_allclose(wsekern.spmm(W, X), Wd @ X, **TOL)
        X[rng.random(97) < 0.5] = 0
        np.testing.assert_allclose(wsekern.spmm(W, X), Wd @ X, **TOL)
        np.testing.assert_allclose(wsekern.spmm(W.toarray(), X), Wd @ X, **TOL)


def check_column_blocks(rng, dt, it):
    """The CSR kernel over X's columns in blocks (a packed copy per block), every block
    width against every tile and tail, with and without dead rows of X."""
    W = sps.random(61, 97, density=0.2, format="csr", dtype=dt, random_state=2)
    W.indices, W.indptr = W.indices.astype(it), W.indptr.astype(it)
    Wd = W.toarray().astype(np.float64)
    for n in (17, 64, 129, 300):
        X = rng.standard_normal((97, n)).astype(dt)
        for n_block in (1, 3, 8, 16, 40, 64, n - 1):
            out = np.full((61, n), np.nan, dtype=dt)
            _spmm.csr_spmm(W.data, W.indices, W.indptr, X, out, None, 1, n_block)
            np.testing.assert_allclose(out, Wd @ X, **TOL)
    l2_bytes, kernels.l2_bytes = kernels.l2_bytes, lambda: 4096   # tiny L2: blocks
    try:
        X = rng.standard_normal((97, 129)).astype(dt)
        assert 0 < kernels.column_block(97, 129, X.itemsize) < 129
        np.testing.assert_allclose(wsekern.spmm(W, X), Wd @ X, **TOL)
        X[rng.random(97) < 0.5] = 0
        assert wsekern.spmm_path(W, X) == "csr-skip-rows"
        np.testing.assert_allclose(wsekern.spmm(W, X), Wd @ X, **TOL)
    finally:
        kernels.l2_bytes = l2_bytes


def check_compaction(rng, dt):
    """dense_spmm's row compaction with inf/NaN weights and dead rows of X, every tail."""
    for K in (1, 3, 4, 7, 8, 9, 16, 97):
        Wd = rng.standard_normal((13, K)) * (rng.random((13, K)) < 0.3)
        Wd[rng.random((13, K)) < 0.05] = np.inf
        Wd[rng.random((13, K)) < 0.05] = np.nan
        Wd = Wd.astype(dt)
        X = rng.standard_normal((K, 37)).astype(dt)
        X[rng.random(K) < 0.4] = 0
        alive = np.empty(K, np.uint8)
        n_alive = _spmm.scan_rows(X, alive)[0]
        X_live, remap = kernels._live_rows(X, alive, n_alive, True, np.int32)
        out = np.empty((13, 37), dt)
        _spmm.dense_spmm(Wd, X_live, out, alive, remap, 1)
        with np.errstate(invalid="ignore"):
            ref = Wd.astype(np.float64) @ X          # inf * a dead row's 0 = NaN, as kept
        np.testing.assert_allclose(out, ref, **TOL)


def check_sddmm(rng, dt):
    W = sps.random(61, 97, density=0.2, format="csr", dtype=dt, random_state=1)
    for d in WIDTHS:
        A = rng.standard_normal((61, d)).astype(dt)
        B = rng.standard_normal((97, d)).astype(dt)
        ref = (A.astype(np.float64) @ B.T) * (W.toarray() != 0)
        np.testing.assert_allclose(wsekern.sddmm(A, B, W).toarray(), ref, **TOL)


def check_csc(rng, dt, it):
    """The column path (a packed W's CSC, live columns only) at every width, every block."""
    W = sps.random(61, 97, density=0.2, format="csr", dtype=dt, random_state=3)
    P = wsekern.pack(W)
    C = P.T
    C = wsekern.PackedSparse(C.data, C.indices.astype(it), C.indptr.astype(it), C.shape)
    Wd = W.toarray().astype(np.float64)
    for n in WIDTHS:
        X = rng.standard_normal((97, n)).astype(dt)
        X[rng.random(97) < 0.5] = 0
        alive = (X != 0).any(1).astype(np.uint8)
        for n_block in (1, 5, 32, n):
            out = np.full((61, n), np.nan, dtype=dt)
            _spmm.csc_spmm_live(C.data, C.indices, C.indptr, X, alive, out, 2, n_block)
            np.testing.assert_allclose(out, Wd @ X, **TOL)
    X = X[:, :16]                          # narrow X: where the dispatcher takes it
    assert wsekern.spmm_path(P, X) == "csc-skip-rows"
    np.testing.assert_allclose(wsekern.spmm(P, X), Wd @ X, **TOL)


def check_conv(rng, dt):
    for hw in (5, 9, 19, 35):
        x = rng.standard_normal((2, 6, hw, hw + 1)).astype(dt)
        x[x < 0.5] = 0
        w = rng.standard_normal((4, 3, 3, 3)).astype(dt)
        ref = wsekern.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1, groups=2)
        for path in ("direct", "input-sparse"):
            conv.DIRECT_FIXED = -1e9 if path == "direct" else 1e9
            conv.INPUT_FIXED = -1e9 if path == "input-sparse" else 1e9
            conv.INPUT_MIN_CHANNELS = 1
            assert wsekern.conv2d_path(x, w, padding=1, groups=2) == path
            np.testing.assert_allclose(wsekern.conv2d(x, w, padding=1, groups=2), ref, **TOL)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        for it in (np.int32, np.int64):
            check_spmm(rng, dt, it)
            check_column_blocks(rng, dt, it)
            check_csc(rng, dt, it)
        check_compaction(rng, dt)
        check_sddmm(rng, dt)
        check_conv(rng, dt)
    print(wsekern.get_config()["simd"])
