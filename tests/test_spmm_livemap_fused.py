"""csr_spmm's per-row variant at 64 float32 columns with the live map in registers (AVX-512
with VPOPCNTDQ): each row's compaction runs fused with the multiply of the row before it,
in two buffers. Rows of every length 0-80 and a few long ones, in no order (so either side
of the fusion runs out first), W's row count not a multiple of the 16 rows a call, K on
both sides of a 32-row word and at 4096, unsorted and duplicate columns, inf/NaN weights
on dead rows, -0.0 dead rows, 1 and 2 threads: bit for bit csr_spmm on W compacted
beforehand in NumPy, NaN exactly where a float64 SciPy reference has it and close
elsewhere, every output row written. An out-of-range column in the first, a middle or the
last row of a call is declined. Every SIMD path this CPU runs; the fused form is checked
to run where the CPU has it."""

import pytest
from conftest import assert_child_says, run_on_simd

_CODE = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels
from wsekern.simd_path import SIMD_PATH

np.seterr(invalid="ignore", over="ignore")
rng = np.random.default_rng(5)
flags = open("/proc/cpuinfo").read()
want = SIMD_PATH == "avx512" and "avx512_vpopcntdq" in flags
assert _spmm.livemap_fused() == want, (_spmm.livemap_fused(), SIMD_PATH)
N = 64
lengths = rng.permutation(np.r_[np.arange(81), 0, 0, 300, 301, 1000, 17, 640])
M = len(lengths)
assert M % 16
n = 0
for K in (1, 33, 1000, 4096):
    X = rng.standard_normal((K, N)).astype(np.float32)
    alive = (rng.random(K) < 0.5).astype(np.uint8)
    alive[0] = 1
    alive[-1] = K % 2
    X[alive == 0] = 0
    X[np.flatnonzero(alive == 0)[:2]] = -0.0
    n_alive = int(alive.sum())
    dead = np.flatnonzero(alive == 0)
    X_live, remap = _spmm.live_rows(X, alive, n_alive, np.int32)
    zero_row = n_alive
    indices = np.concatenate([rng.integers(0, K, m) for m in lengths]).astype(np.int32)
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    data = rng.standard_normal(len(indices)).astype(np.float32)
    for i, m in enumerate(lengths):           # an inf/NaN on a dead row, lane moving
        if m and i % 3 == 1 and len(dead):
            p = indptr[i] + (i * 7) % m
            indices[p] = dead[i % len(dead)]
            data[p] = (np.nan, np.inf, -np.inf)[i % 3]
    keep = (remap[indices] < zero_row) | ~np.isfinite(data)
    cnt = np.add.reduceat(keep.astype(np.int64), indptr[:-1]) * (lengths > 0)
    pre = (data[keep].copy(), remap[indices[keep]].astype(np.int32),
           np.r_[0, np.cumsum(cnt)].astype(np.int32))
    r = sps.csr_matrix((data.astype(np.float64), indices, indptr),
                       shape=(M, K)) @ X.astype(np.float64)
    fin = np.isfinite(r)
    assert fin.any() and ((~fin).any() or not len(dead))
    for nb in (0, N):                         # the per-row variant either way
        for threads in (1, 2):
            ref = np.full((M, N), 7, np.float32)
            got = np.full((M, N), 7, np.float32)
            _spmm.csr_spmm(*pre, X_live, ref, None, threads, nb)
            _spmm.csr_spmm(data, indices, indptr, X_live, got, remap, threads, nb)
            assert np.array_equal(got.view(np.uint8), ref.view(np.uint8)), (K, nb, threads)
            assert np.array_equal(np.isnan(got), np.isnan(r)), (K, nb, threads)
            assert np.allclose(got[fin], r[fin], rtol=1e-4, atol=1e-3), (K, nb, threads)
            assert (got[lengths == 0] == 0).all()
            n += 1
# an out-of-range column (K, -1) in the first row of a call, its last, the next call's
# first, a middle row and W's last: the plain route's one-thread native call declines
K = 4096
X = rng.standard_normal((K, N)).astype(np.float32)
X[1::2] = 0
W = sps.random(M, K, density=0.2, format="csr", random_state=3, dtype=np.float32)
assert kernels._spmm_impl(W, X, False, None, 1)[1] == "csr-skip-rows"
# the per-row variant (no column blocks), so the fused form where it runs
assert kernels.column_block(K // 2 + 1, N, 4, reuse=W.nnz / K) == 0 or not want
ok = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
assert np.allclose(ok, W.toarray().astype(np.float64) @ X, rtol=1e-4, atol=1e-3)
for row in (0, 15, 16, 40, M - 1):
    for bad in (K, -1):
        V = W.copy()
        V.indices[V.indptr[row] + 1] = bad
        assert _spmm.csr_spmm_plain(V, X, False, None, 1, kernels._GLOBALS) is None
        n += 1
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_livemap_fused(simd):
    assert_child_says(run_on_simd(simd, _CODE, timeout=300), ["ok", "26", simd])
