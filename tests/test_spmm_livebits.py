"""spmm's one-thread csr-skip-rows at 64 float32 columns with a live map of X other than the
last call's (AVX-512 with VPOPCNTDQ): the fused kernel multiplies X itself, its live rows
as bits in registers (no X_live copy). Checked in a child per SIMD path, L2 pinned to
Zen 4's 1 MiB: K = 1000 (a partial 32-row word), 4096 and 5000 (over the kernel's reach);
rows of 0-80 entries and long ones; inf/NaN weights, some on dead rows; -0.0 dead rows; a
packed W (a new map each call, then one map three times: noted, made, reused), its
transpose, and a SciPy CSR W with unsorted and duplicate columns. Each product is bit for
bit (NaN payloads too) csr_spmm's fused kernel on X_live with the remap (the route
before), has NaN exactly where a float64 SciPy product has one and is close elsewhere.
Where the CPU runs the kernel, the route is shown to skip X_live (its buffer is never
asked for); elsewhere the old route runs. A SciPy CSR with a column out of
range is declined by the native call and named by spmm."""

import os

import pytest
from conftest import assert_child_says, run_on_simd

# The child imports tests/livebits_cases.py (before: the route before, the fused kernel on
# X's live rows with the remap).
_CODE = f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n" + """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels, pack, spmm
from wsekern.simd_path import SIMD_PATH
from livebits_cases import before, refused

np.seterr(invalid="ignore", over="ignore")
kernels.l2_bytes = lambda: 1 << 20
rng = np.random.default_rng(7)
flags = open("/proc/cpuinfo").read()
want = SIMD_PATH == "avx512" and "avx512_vpopcntdq" in flags
assert _spmm.livebits_fused() == want, (_spmm.livebits_fused(), SIMD_PATH)
assert not _spmm._live_made[0]
calls = [0]                  # X_live's buffer asked for (the route before)
_orig = _spmm._live_buffer


def _counting(nbytes):
    calls[0] += 1
    return _orig(nbytes)


_spmm._live_buffer = _counting
N = 64
n = 0


def x_dead(K, seed):
    r = np.random.default_rng(seed)
    X = r.standard_normal((K, N)).astype(np.float32)
    alive = r.random(K) < 0.5
    alive[0] = True
    X[~alive] = 0
    X[np.flatnonzero(~alive)[:2]] = -0.0
    return X



def check(got, W, X, ref):
    global n
    r = sps.csr_matrix(W, dtype=np.float64) @ X.astype(np.float64)
    fin = np.isfinite(r)
    assert fin.mean() > 0.5 and (~fin).any()
    assert got.dtype == np.float32 and got.shape == r.shape
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))
    assert np.array_equal(np.isnan(got), np.isnan(r))
    assert np.allclose(got[fin], r[fin], rtol=1e-4, atol=1e-3)
    n += 1


for K in (4096, 1000, 5000):
    lengths = rng.permutation(np.r_[np.arange(81), 0, 0, 300, 301, min(K, 1000), 17, 640])
    M = len(lengths)
    cols = [np.sort(rng.choice(K, min(m, K), replace=False)) for m in lengths]
    lengths = np.array([len(c) for c in cols])
    indices = np.concatenate(cols).astype(np.int32)
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    data = rng.standard_normal(len(indices)).astype(np.float32)
    Xs = [x_dead(K, 10 * K + s) for s in range(3)]
    dead = np.flatnonzero(~Xs[0].any(axis=1))
    for i, m in enumerate(lengths):          # inf/NaN weights, some on X's dead rows
        if m and i % 3 == 1:
            data[indptr[i] + (i * 7) % m] = (np.nan, np.inf, -np.inf)[i % 3]
    W = sps.csr_matrix((data, indices, indptr), shape=(M, K))
    P = pack(W)
    maps = [0, 1, 2, 2, 2, 0]                # new maps, then one three times, then another
    for j, s in enumerate(maps):
        X = Xs[s]
        got = spmm(P, X, n_threads=1)
        check(got, W, X, before(data, indices, indptr, X))
        kept = P._kept
        assert kept is not None and kept[0] == X.any(axis=1).astype(np.uint8).tobytes()
        assert (kept[1] is not None) == (j in (3, 4)), (K, j, kept[1] is None)
        if K == 4096 and j < 3:
            # the map changed: X itself was multiplied where the kernel runs (X_live's
            # buffer never asked for; a copy of X off the 64-byte line may be made)
            assert (calls[0] > 0) != want, (j, want)
    # W's transpose: P built from W.T, spmm(..., transpose=True) on its cached transpose
    PT = pack(W.T.tocsr())
    PT.transpose()
    for s in (1, 0):
        got = spmm(PT, Xs[s], transpose=True, n_threads=1)
        check(got, W, Xs[s], before(data, indices, indptr, Xs[s]))
    # a SciPy CSR W, columns unsorted and duplicated within rows (no kept compaction)
    perm = np.concatenate([rng.permutation(np.arange(indptr[i], indptr[i + 1]))
                           for i in range(M)]).astype(np.int64)
    ucols = indices[perm].copy()
    udata = data[perm].copy()
    for i, m in enumerate(lengths):
        if m > 3 and i % 4 == 0:
            ucols[indptr[i] + 1] = ucols[indptr[i]]
    U = sps.csr_matrix((udata, ucols, indptr.copy()), shape=(M, K))
    assert not U.has_sorted_indices
    for s in (0, 1):
        got = spmm(U, Xs[s], n_threads=1)
        check(got, U, Xs[s], before(udata, ucols, indptr, Xs[s]))
# a SciPy CSR holding a column out of range (K or -1) in its first, a middle or its last
# row: the native call declines, spmm names the index
K = 4096
X = x_dead(K, 99)
V0 = sps.random(200, K, density=0.2, format="csr", random_state=3, dtype=np.float32)
assert kernels._spmm_impl(V0, X, False, None, 1)[1] == "csr-skip-rows"
for row in (0, 77, 199):
    for bad in (K, -1):
        V = V0.copy()
        V.indices[V.indptr[row] + 1] = bad
        assert _spmm.csr_spmm_plain(V, X, False, None, 1, kernels._GLOBALS) is None
        n += refused(lambda: spmm(V, X, n_threads=1), bad)
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_livebits(simd):
    assert_child_says(run_on_simd(simd, _CODE, timeout=300), ["ok", "36", simd])
