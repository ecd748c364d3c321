"""The CSR row compaction against X's dead rows (csr_spmm with x_remap) at every row length
from 0 to 49, so each SIMD step (16 fp32 lanes on AVX-512, 8 elsewhere and for fp64) meets
every tail, with an inf/NaN weight on a dead row at a different lane in every third row, unsorted
and duplicate column indices: bit for bit csr_spmm on W compacted beforehand in NumPy (the
same entries in the same order), NaN exactly where a float64 SciPy reference has it, and
close to it elsewhere; fp32/fp64 x int32/int64, the per-row and compacted-once variants,
1 and 2 threads, every SIMD path this CPU runs."""

import pytest
from conftest import assert_child_says, run_on_simd

_CODE = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm

np.seterr(invalid="ignore", over="ignore")
rng = np.random.default_rng(5)
K, N = 97, 40
lengths = np.arange(50)
n = 0
for dt in (np.float32, np.float64):
    for idx in (np.int32, np.int64):
        X = rng.standard_normal((K, N)).astype(dt)
        dead = rng.permutation(K)[:K // 2]
        X[dead] = 0
        X[dead[:3]] = -0.0                    # dead rows may hold negative zeros
        alive = np.ones(K, np.uint8)
        alive[dead] = 0
        X_live, remap = _spmm.live_rows(X, alive, int(alive.sum()), idx)
        zero_row = int(alive.sum())
        # row i: i entries, columns drawn with repeats, in no order
        indices = np.concatenate([rng.integers(0, K, m) for m in lengths]).astype(idx)
        indptr = np.r_[0, np.cumsum(lengths)].astype(idx)
        data = rng.standard_normal(len(indices)).astype(dt)
        for i, m in enumerate(lengths):       # an inf/NaN on a dead row, its lane moving,
            if m and i % 3 == 1:              # in a third of the rows (NaN fills a row)
                p = indptr[i] + (i * 7) % m
                indices[p] = dead[i % len(dead)]
                data[p] = (np.nan, np.inf, -np.inf)[i % 3]
        keep = (remap[indices] < zero_row) | ~np.isfinite(data)
        cnt = np.add.reduceat(keep.astype(np.int64), indptr[:-1]) * (lengths > 0)
        pre = (data[keep].copy(), remap[indices[keep]].astype(idx),
               np.r_[0, np.cumsum(cnt)].astype(idx))
        r = sps.csr_matrix((data.astype(np.float64), indices, indptr),
                           shape=(len(lengths), K)) @ X.astype(np.float64)
        tol = 1e-4 if dt == np.float32 else 1e-12
        fin = np.isfinite(r)
        for nb in (8, N):                     # compacted once (column blocks), per row
            for threads in (1, 2):
                want = np.full((len(lengths), N), 7, dt)
                got = np.full((len(lengths), N), 7, dt)
                _spmm.csr_spmm(*pre, X_live, want, None, threads, nb)
                _spmm.csr_spmm(data, indices, indptr, X_live, got, remap, threads, nb)
                assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (
                    dt, idx, nb, threads)
                assert np.array_equal(np.isnan(got), np.isnan(r)), (dt, idx, nb, threads)
                assert np.allclose(got[fin], r[fin], rtol=tol, atol=tol * 10), (dt, idx, nb)
                assert np.isnan(got[1::3]).all() and not got[0].any()
                assert np.isfinite(got[0::3]).all() and np.isfinite(got[2::3]).all()
                n += 1
from wsekern.simd_path import SIMD_PATH
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_compaction_every_tail(simd):
    assert_child_says(run_on_simd(simd, _CODE, timeout=300), ["ok", "16", simd])
