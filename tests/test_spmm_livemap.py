"""csr_spmm's compaction against a live map held in registers (AVX-512 with VPOPCNTDQ, remaps
of at most 4096 rows): K on both sides of 32-row words and of 4096, columns on every word
and table boundary (31/32, 511/512, 1023/1024, 2047/2048, 4095), rows of every length 0-40
(every 16-lane tail), unsorted and duplicate columns, inf/NaN weights on dead rows: bit for
bit csr_spmm on W compacted beforehand in NumPy, NaN exactly where a float64 SciPy
reference has it and close elsewhere; a remap that is not the live map (its live rows
permuted) takes the scalar loads and still gives the product. Every SIMD path this CPU
runs; the register form is checked to run where the CPU has it."""

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import assert_child_says, run_on_simd

from wsekern import _spmm, kernels

_CODE = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm
from wsekern.simd_path import SIMD_PATH

np.seterr(invalid="ignore", over="ignore")
rng = np.random.default_rng(11)
flags = open("/proc/cpuinfo").read()
want_lm = SIMD_PATH == "avx512" and "avx512_vpopcntdq" in flags
assert _spmm.livemap_compaction() == want_lm, (_spmm.livemap_compaction(), SIMD_PATH)
EDGES = np.array([0, 1, 31, 32, 33, 63, 64, 511, 512, 1023, 1024, 1535, 1536, 2047, 2048,
                  3071, 3072, 4064, 4094, 4095, 4096])
N = 20
lengths = np.arange(41)
n = 0
for K in (1, 31, 32, 33, 1000, 4095, 4096, 4097):
    edges = EDGES[EDGES < K]
    for dt in (np.float32, np.float64):
        X = rng.standard_normal((K, N)).astype(dt)
        alive = (rng.random(K) < 0.5).astype(np.uint8)
        alive[edges[::2]] = 1                 # boundary rows live and dead
        alive[edges[1::2]] = 0
        alive[-1] = K % 2                     # the last row live for odd K
        X[alive == 0] = 0
        X[np.flatnonzero(alive == 0)[:2]] = -0.0
        n_alive = int(alive.sum())
        dead = np.flatnonzero(alive == 0)
        X_live, remap = _spmm.live_rows(X, alive, n_alive, np.int32)
        zero_row = n_alive
        # columns half on the boundaries, half anywhere, with repeats, in no order
        indices = np.concatenate([np.where(rng.random(m) < 0.5, rng.choice(edges, m),
                                           rng.integers(0, K, m)) for m in lengths])
        indices = indices.astype(np.int32)
        indptr = np.r_[0, np.cumsum(lengths)].astype(np.int32)
        data = rng.standard_normal(len(indices)).astype(dt)
        for i, m in enumerate(lengths):       # an inf/NaN on a dead row, lane moving
            if m and i % 3 == 1 and len(dead):
                p = indptr[i] + (i * 5) % m
                indices[p] = dead[i % len(dead)]
                data[p] = (np.nan, np.inf, -np.inf)[i % 3]
        keep = (remap[indices] < zero_row) | ~np.isfinite(data)
        cnt = np.add.reduceat(keep.astype(np.int64), indptr[:-1]) * (lengths > 0)
        pre = (data[keep].copy(), remap[indices[keep]].astype(np.int32),
               np.r_[0, np.cumsum(cnt)].astype(np.int32))
        r = sps.csr_matrix((data.astype(np.float64), indices, indptr),
                           shape=(len(lengths), K)) @ X.astype(np.float64)
        tol = 1e-4 if dt == np.float32 else 1e-12
        fin = np.isfinite(r)
        # the live rows permuted in X_live: not the live map, so the remap's own loads
        perm = rng.permutation(n_alive)
        X_perm = X_live.copy()
        X_perm[perm] = X_live[:n_alive]
        remap_perm = remap.copy()
        remap_perm[alive == 1] = perm
        for nb in (8, N):                     # compacted once (column blocks), per row
            for threads in (1, 2):
                want = np.full((len(lengths), N), 7, dt)
                got = np.full((len(lengths), N), 7, dt)
                _spmm.csr_spmm(*pre, X_live, want, None, threads, nb)
                _spmm.csr_spmm(data, indices, indptr, X_live, got, remap, threads, nb)
                assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (
                    K, dt, nb, threads)
                assert np.array_equal(np.isnan(got), np.isnan(r)), (K, dt, nb, threads)
                assert np.allclose(got[fin], r[fin], rtol=tol, atol=tol * 10), (K, dt, nb)
                other = np.full((len(lengths), N), 7, dt)
                _spmm.csr_spmm(data, indices, indptr, X_perm, other, remap_perm, threads, nb)
                assert np.array_equal(np.isnan(other), np.isnan(r)), (K, dt, nb, threads)
                assert np.allclose(other[fin], r[fin], rtol=tol, atol=tol * 10), (K, dt, nb)
                n += 1
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_livemap_compaction(simd):
    assert_child_says(run_on_simd(simd, _CODE, timeout=300), ["ok", "64", simd])


# spmm's one native call checks each row's columns as it compacts the row (no pass of its
# own first): an index out of range in the first, a middle or the last row, per-row
# (4096 x 64) and compacted-once (512 x 256: column blocks) variants, int32 and int64,
# declines, and
# the Python route raises its message naming the index and its position.
@pytest.mark.parametrize("idx", [np.int32, np.int64])
@pytest.mark.parametrize("K,N", [(4096, 64), (512, 256)])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_dead_rows_bad_column_checked_as_compacted(idx, K, N, where, monkeypatch):
    # the variant is chosen against L2 and the SIMD path's tiles (the baseline path
    # column-blocked (4096, 64) with Zen 4's 1 MiB): pin an L2 that gives each shape its variant
    monkeypatch.setattr(kernels, "l2_bytes", lambda: (64 << 20) if N == 64 else (256 << 10))
    W = sps.random(128, K, density=0.3, format="csr", random_state=1, dtype=np.float32)
    W.indices = W.indices.astype(idx)
    W.indptr = W.indptr.astype(idx)
    assert W.indices.dtype == idx
    X = np.random.default_rng(0).standard_normal((K, N)).astype(np.float32)
    X[1::2] = 0
    assert kernels._spmm_impl(W, X, False, None, 1)[1] == "csr-skip-rows"
    nb = kernels.column_block(K // 2 + 1, N, 4, reuse=W.nnz / K)
    assert (nb == 0) == (N == 64)             # the variant meant
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS) is not None
    pos = {"first": 0, "middle": W.nnz // 2, "last": W.nnz - 1}[where]
    for bad in (K, -1):
        V = W.copy()                          # (SciPy's copy makes the indices int32)
        V.indices = V.indices.astype(idx)
        V.indptr = V.indptr.astype(idx)
        V.indices[pos] = bad
        assert V.indices.dtype == idx and V.indptr.dtype == idx
        assert _spmm.csr_spmm_plain(V, X, False, None, 1, kernels._GLOBALS) is None
        with pytest.raises(ValueError, match=f"column index {bad} at position {pos}"):
            kernels.spmm(V, X, n_threads=1)
