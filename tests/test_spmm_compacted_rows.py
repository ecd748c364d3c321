"""W compacted once against X's dead rows (csr_spmm with x_remap, X in column blocks): the
kept rows run through the rows kernel, one call per 16 rows (one thread: back to back under
their own indptr; more threads: row i counts[i] nonzeros from indptr[i], the rows call with
counts). Bit for bit the kernel on W compacted beforehand in NumPy (the same nonzeros in the
same order, run as a plain CSR on the live rows), and a float64 SciPy reference over the
stored weights; rows with nothing kept, everything kept, empty rows, inf/NaN weights (on live
and dead rows), NaN/inf in X, int32/int64 indices, 1 and 2 threads, every SIMD path."""

import pytest
from conftest import assert_child_says, run_on_simd

_CODE = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm

np.seterr(invalid="ignore", over="ignore")
rng = np.random.default_rng(11)
n = 0
for dt in (np.float32, np.float64):
    for idx in (np.int32, np.int64):
        for M, K, N, density, form in (
                (70, 120, 64, 0.3, "plain"), (41, 90, 96, 0.25, "nan-w"),
                (37, 64, 80, 0.4, "nan-x"), (19, 300, 32, 0.2, "plain")):
            W = sps.random(M, K, density=density, format="csr", dtype=np.float64,
                           random_state=int(rng.integers(1 << 30)))
            W.data[:] = rng.standard_normal(W.nnz)
            X = rng.standard_normal((K, N)).astype(dt)
            dead = rng.permutation(K)[:K // 2]
            X[dead] = 0
            live = np.setdiff1d(np.arange(K), dead)
            lil = W.tolil()
            lil[0, :] = 0                              # an empty row
            lil[1, :] = 0
            lil[1, dead[:5]] = 1.5                     # a row with nothing kept
            lil[2, :] = 0
            lil[2, live[:40]] = -2.0                   # a row with everything kept
            W = lil.tocsr()
            data, indices, indptr = W.data.astype(dt), W.indices.astype(idx), W.indptr.astype(idx)
            if form == "nan-w":                        # inf/NaN weights on dead and live rows
                on_dead = np.flatnonzero(np.isin(indices, dead))[:3]
                data[on_dead] = [np.nan, np.inf, -np.inf][:len(on_dead)]
                data[7::11] = np.nan
            if form == "nan-x":
                X[live[0], 0] = np.nan
                X[live[-1], -1] = -np.inf
            alive = np.zeros(K, np.uint8)
            alive[live] = 1
            X_live, remap = _spmm.live_rows(X, alive, len(live), idx)
            # W compacted beforehand: the entries meeting a live row or inf/NaN, remapped
            zero_row = len(live)
            keep = (remap[indices] < zero_row) | ~np.isfinite(data)
            cnt = np.add.reduceat(keep.astype(np.int64), indptr[:-1]) * (np.diff(indptr) > 0)
            pre = (data[keep].copy(), remap[indices[keep]].astype(idx),
                   np.r_[0, np.cumsum(cnt)].astype(idx))
            r = sps.csr_matrix((data.astype(np.float64), indices, indptr),
                               shape=(M, K)) @ X.astype(np.float64)
            tol = 1e-4 if dt == np.float32 else 1e-12
            scale = max(1, np.abs(r[np.isfinite(r)]).max(initial=0))
            for nb in (8, 16, 32, N - 1, N):
                for threads in (1, 2):
                    want = np.full((M, N), 7, dt)
                    got = np.full((M, N), 7, dt)
                    if pre[0].size:
                        _spmm.csr_spmm(*pre, X_live, want, None, threads, nb)
                    else:
                        want[:] = 0
                    _spmm.csr_spmm(data, indices, indptr, X_live, got, remap, threads, nb)
                    assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (
                        dt, idx, form, nb, threads)
                    assert np.array_equal(np.isnan(got), np.isnan(r)), (dt, idx, form, nb)
                    assert np.allclose(got, r, rtol=tol, atol=tol * scale, equal_nan=True)
                    assert not got[0].any()
                    assert form == "nan-w" or not got[1].any()
                    n += 1
from wsekern.simd_path import SIMD_PATH
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_compacted_rows_bit_for_bit(simd):
    assert_child_says(run_on_simd(simd, _CODE, timeout=300), ["ok", "160", simd])
