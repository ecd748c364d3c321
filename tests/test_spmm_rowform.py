"""The CSR row kernel's two forms on the baseline path (src/wsk_simd.h): register tiles, or
streaming each nonzero's whole row of X. Rows of at least WSK_STREAM_NNZ (64) nonzeros, or
an X whose row pitch is a multiple of 4 KiB, stream once the row is 128 fp32 / 64 fp64
columns wide; shorter rows at any other pitch take the tiles. Both forms, in one W and on
either side of each boundary, against the float64 reference, with NaN and inf in X, on every
SIMD path this CPU runs (each in a child process: the path is chosen at import)."""
import os

import pytest
from conftest import run_in_child

import wsekern

_CHILD = """
import numpy as np, scipy.sparse as sps
import wsekern
from wsekern import kernels
kernels.MIN_REUSE = 10**9                  # no column blocks: the kernel sees X's own pitch
rng = np.random.default_rng(5)
K, M = 600, 150
# Row i holds i % 75 nonzeros (0 to 74): short rows (tiles) and long ones (stream) in one W,
# 63 and 64 among them.
counts = np.arange(M) % 75
rows = np.repeat(np.arange(M), counts)
cols = np.concatenate([rng.choice(K, size=c, replace=False) for c in counts])
checked = 0
for dt, widths in ((np.float32, (127, 128, 129, 250, 256, 1024, 1030)),
                   (np.float64, (63, 64, 65, 250, 256, 512, 520))):
    W = sps.csr_array((rng.uniform(-1, 1, len(rows)).astype(dt), (rows, cols)), shape=(M, K))
    W64 = W.astype(np.float64)
    for n in widths:
        X = rng.standard_normal((K, n)).astype(dt)
        for poison in (False, True):
            if poison:                     # NaN and inf where some stored weights meet them
                X[3, 5] = np.nan
                X[40, n - 1] = np.inf
                X[41, 0] = -np.inf
            path = kernels.spmm_path(W, X)
            assert path == "csr", (dt, n, path)
            got = wsekern.spmm(W, X)
            ref = W64 @ X.astype(np.float64)      # unstored weights are not multiplied
            assert got.dtype == dt
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
            np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
            tol = 1e-4 if dt == np.float32 else 1e-12
            np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
            checked += 1
print(wsekern.get_config()["simd"], checked)
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_tiled_and_streamed_rows_agree_with_the_reference(simd):
    if simd not in wsekern.sysinfo.simd_available():
        pytest.skip(f"this CPU does not run the {simd} path")
    env = dict(os.environ, WSEKERN_SIMD=simd)
    env.pop("WSEKERN_COSTS", None)
    res = run_in_child(_CHILD, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [simd, "28"]


_DEAD_CHILD = """
import numpy as np, scipy.sparse as sps
import wsekern
from wsekern import kernels
rng = np.random.default_rng(6)
K, M, N = 300, 120, 96
checked = 0
for dt in (np.float32, np.float64):
    for it in (np.int32, np.int64):
        W = sps.random(M, K, density=0.15, format="csr", dtype=dt, random_state=7)
        W.indices = W.indices.astype(it); W.indptr = W.indptr.astype(it)
        # inf/NaN weights, some on columns that meet dead rows of X (kept: inf * 0 = NaN)
        W.data[::37] = np.nan
        W.data[5::41] = np.inf
        W.data[9::43] = -np.inf
        X = rng.standard_normal((K, N)).astype(dt)
        X[rng.permutation(K)[:K // 2]] = 0
        X[np.flatnonzero(X.any(axis=1))[0], 3] = np.nan
        ref = W.astype(np.float64) @ X.astype(np.float64)
        for blocks in (False, True):
            kernels.MIN_REUSE = 0 if blocks else 10**9
            kernels.l2_bytes = (lambda: 4096) if blocks else (lambda: 1 << 20)
            assert kernels.spmm_path(W, X) == "csr-skip-rows", kernels.spmm_path(W, X)
            got = wsekern.spmm(W, X)
            assert got.dtype == dt
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
            np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
            fin = np.isfinite(ref)
            tol = 1e-4 if dt == np.float32 else 1e-12
            np.testing.assert_allclose(got[fin], ref[fin], rtol=tol, atol=tol)
            np.testing.assert_array_equal(got[~fin], ref[~fin])
            checked += 1
print(wsekern.get_config()["simd"], checked)
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_dead_rows_compaction_keeps_nonfinite_weights(simd):
    """csr-skip-rows (the compaction of W's nonzeros that meet live rows of X, per row or once
    for all column blocks) with NaN/inf weights, some meeting dead rows: the reference's NaN
    and inf positions (inf * 0 = NaN, as in SciPy), fp32/fp64 x int32/int64 indices."""
    if simd not in wsekern.sysinfo.simd_available():
        pytest.skip(f"this CPU does not run the {simd} path")
    env = dict(os.environ, WSEKERN_SIMD=simd)
    env.pop("WSEKERN_COSTS", None)
    res = run_in_child(_DEAD_CHILD, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [simd, "8"]
