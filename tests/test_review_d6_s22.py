"""Review of spmm's livebits route (csr_spmm_plain's one-thread csr-skip-rows at 64 float32
columns with a new live map: the fused kernel on X itself, its live rows as bits in 8 zmm).
Each check runs in a child per SIMD path, L2 pinned to Zen 4's 1 MiB. The route is told
apart from the one before by whether X_live's buffer is asked for (_live_buffer, counted):
the livebits kernel never makes X_live. Products are checked bit for bit (NaN payloads
too) against csr_spmm's fused kernel on X_live with the remap (the route before), and
against a float64 SciPy product (NaN where it has one, close elsewhere)."""

import os

import pytest
from conftest import assert_child_says, run_on_simd

# The child imports tests/livebits_cases.py (refused: an index out of range named).
_HEAD = f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n" + """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels, pack, spmm
from wsekern.simd_path import SIMD_PATH
from livebits_cases import refused

np.seterr(all="ignore")
kernels.l2_bytes = lambda: 1 << 20
flags = open("/proc/cpuinfo").read()
want = SIMD_PATH == "avx512" and "avx512_vpopcntdq" in flags
calls = [0]
_orig = _spmm._live_buffer


def _counting(n):
    calls[0] += 1
    return _orig(n)


_spmm._live_buffer = _counting
N = 64


def plain(W, X, n_threads=1):
    # (csr_spmm_plain's result, whether X_live was asked for)
    calls[0] = 0
    got = _spmm.csr_spmm_plain(W, X, False, None, n_threads, kernels._GLOBALS)
    return got, calls[0] > 0


def before(data, indices, indptr, X):
    # the route before: X's live rows copied out, the fused kernel on them with the remap
    alive = X.any(axis=1).astype(np.uint8)
    X_live, remap = _spmm.live_rows(X, alive, int(alive.sum()), indices.dtype)
    out = np.full((len(indptr) - 1, X.shape[1]), 7, X.dtype)
    _spmm.csr_spmm(data, indices, indptr, X_live, out, remap, 1, 0)
    return out


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def check(got, data, indices, indptr, X, bits=True):
    M = len(indptr) - 1
    if bits:
        assert same_bits(got, before(data, indices, indptr, X))
    W = sps.csr_matrix((data.astype(np.float64), indices, indptr), shape=(M, X.shape[0]))
    r = W @ X.astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(r))
    fin = np.isfinite(r)
    assert np.allclose(got[fin], r[fin], rtol=1e-4, atol=1e-3)


def x_half_dead(K, seed, n=N, dtype=np.float32):
    r = np.random.default_rng(seed)
    X = r.standard_normal((K, n)).astype(dtype)
    dead = r.random(K) < 0.5
    dead[0] = False
    X[dead] = 0
    X[np.flatnonzero(dead)[::2]] = -0.0
    return X


def w_random(M, K, density, seed, dtype=np.float32, idx=np.int32):
    W = sps.random(M, K, density=density, format="csr", random_state=seed, dtype=dtype)
    W.indices = W.indices.astype(idx)
    W.indptr = W.indptr.astype(idx)
    return W
"""

_ROUTE = _HEAD + """
# The route: taken on AVX-512 with VPOPCNTDQ only, for float32 X of 64 columns and at most
# 4096 rows, int32 indices, one thread, a live map other than a packed W's kept one
X = x_half_dead(4096, 1)
W = w_random(150, 4096, 0.1, 2)       # 15 weights a row of X: no column blocks
assert kernels._spmm_impl(W, X, False, None, 1)[1] == "csr-skip-rows"
got, made = plain(W, X)
assert got is not None and made != want, (made, want)
check(got, W.data, W.indices, W.indptr, X)
n = 1
X2 = x_half_dead(4097, 3)                          # past the 8 zmm of bits: X_live
W2 = w_random(150, 4097, 0.1, 4)
got, made = plain(W2, X2)
assert got is not None and made
check(got, W2.data, W2.indices, W2.indptr, X2)
W64 = w_random(150, 4096, 0.1, 2, idx=np.int64)    # int64 indices: X_live
got, made = plain(W64, X)
assert got is not None and made
check(got, W64.data, W64.indices, W64.indptr, X)
Wd = w_random(150, 4096, 0.1, 2, dtype=np.float64)  # float64: X_live
Xd = X.astype(np.float64)
got, made = plain(Wd, Xd)
assert got is not None and made
check(got, Wd.data, Wd.indices, Wd.indptr, Xd)
n += 3
# a packed W: a new map runs the kernel (the map noted); the same map again makes the
# kept compaction (X_live made), a third time reuses it (X_live made); another map: kernel
Wi = W.copy()
Wi.data[5] = np.inf                   # not all finite: no csc-skip-rows candidate
P = pack(Wi)
Xb = x_half_dead(4096, 5)
for j, (Xj, lb) in enumerate([(X, True), (X, False), (X, False), (Xb, True), (X, True)]):
    got, made = plain(P, Xj)
    assert got is not None and made != (want and lb), (j, made)
    check(got, P._data, P._indices, P._indptr, Xj)
    assert P._kept[0] == Xj.any(axis=1).astype(np.uint8).tobytes()
    n += 1
# a packed W too big for its kept arrays (_KEPT_MAX_BYTES: none made, each call compacts):
# the same map every call runs the kernel on X itself too
_spmm._KEPT_MAX_BYTES = 0
Pb = pack(Wi)
for j in range(3):
    got, made = plain(Pb, X)
    assert got is not None and made != want, (j, made)
    check(got, Pb._data, Pb._indices, Pb._indptr, X)
    assert Pb._kept[0] == X.any(axis=1).astype(np.uint8).tobytes() and Pb._kept[1] is None
    n += 1
_spmm._KEPT_MAX_BYTES = 64 << 20
# two threads on a product big enough for them: the Python route (declined here)
Wb = w_random(4096, 4096, 0.1, 6)
got, made = plain(Wb, X, n_threads=2)
assert got is None and not made
n += 1
print("ok", n, SIMD_PATH)
"""

_EDGES = _HEAD + """
# K tiny, not a multiple of 32 or 512, up to the bitmap's 4096; M of 1 and up; empty rows,
# rows longer than K (duplicates), unsorted columns; inf/NaN/0 weights (on dead rows too);
# -0.0 dead rows; NaN in live rows; X all live or nearly all dead; X at an odd offset
rng = np.random.default_rng(11)
n_lb = n = 0
for K in (1, 2, 31, 32, 33, 63, 65, 511, 513, 1000, 4064, 4095, 4096):
    for M in (1, 2, 3, 17, 130):
        for frac_dead in (0.0, 0.5, 0.95):
            dens = rng.choice([0.05, 0.5, 3.0])
            lengths = rng.poisson(dens * min(K, 200), M)
            lengths[rng.random(M) < 0.2] = 0
            if lengths.sum() == 0:
                lengths[-1] = 3
            cols = []
            for m in lengths:
                c = rng.integers(0, K, m)
                cols.append(np.sort(c) if rng.random() < 0.5 else c)
            indices = np.concatenate(cols).astype(np.int32)
            indptr = np.r_[0, np.cumsum(lengths)].astype(np.int32)
            data = rng.standard_normal(len(indices)).astype(np.float32)
            u = rng.random(len(indices))
            data[u < 0.04] = np.inf
            data[(u >= 0.04) & (u < 0.07)] = -np.inf
            data[(u >= 0.07) & (u < 0.10)] = np.nan
            data[(u >= 0.10) & (u < 0.13)] = 0.0
            X = rng.standard_normal((K, N)).astype(np.float32) * 4
            dead = rng.random(K) < frac_dead
            X[dead] = 0
            X[dead & (rng.random(K) < 0.5)] = -0.0
            live = np.flatnonzero(~dead)
            if len(live) > 3:
                X[live[1], 5] = np.nan
                X[live[2], 60] = np.inf
            buf = np.empty(K * N + 1, np.float32)  # X 4 bytes off 64-byte alignment
            Xo = buf[1:].reshape(K, N)
            Xo[...] = X
            W = sps.csr_matrix((data, indices, indptr), shape=(M, K))
            kept = int(X.any(axis=1).sum())
            nb = kernels.column_block(kept + 1, N, 4, reuse=len(indices) / K)
            for Wx, Xx in ((W, X), (W, Xo)):
                got, made = plain(Wx, Xx)
                if got is None:
                    continue
                # the route before took X_live here: now the kernel on X itself, when the
                # CPU has it (the map is new: a SciPy CSR W has no kept one)
                fused = (kernels._spmm_impl(Wx, Xx, False, None, 1)[1] == "csr-skip-rows"
                         and not 0 < nb < N)
                assert made == (fused and not want), (K, M, made, fused)
                check(got, data, indices, indptr, Xx, bits=fused)
                n += 1
                n_lb += fused and not made
assert n > 150, n
assert (n_lb > 40) if want else n_lb == 0, (n_lb, n)
print("ok", SIMD_PATH)
"""

_HOSTILE = _HEAD + """
# Column indices out of range for X (K = 1000 rows: the bitmap's bits past K are zero, and
# an inf weight is kept whatever the bit; past 4096 the word index wraps in the registers):
# the native call declines (nothing read through them), spmm names the index
K = 1000
X = x_half_dead(K, 7)
live = np.flatnonzero(X.any(axis=1))
V0 = w_random(64, K, 0.2, 8)
assert kernels._spmm_impl(V0, X, False, None, 1)[1] == "csr-skip-rows"
n = 0
for row in (0, 31, 63):
    for bad in (K, 3000, 4095, 4096 + int(live[3]), 1 << 20, 2**31 - 1, -1, -2**31):
        for w in (np.inf, np.nan, 1.0):
            V = V0.copy()
            p = V.indptr[row]
            V.indices[p] = bad
            V.data[p] = w
            got, made = plain(V, X)
            assert got is None and made != want   # refused by the kernel on X itself
            n += refused(lambda: spmm(V, X, n_threads=1), bad)
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_livebits_route(simd):
    assert_child_says(run_on_simd(simd, _ROUTE, timeout=300), ["ok", "13", simd])


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_livebits_edges(simd):
    assert_child_says(run_on_simd(simd, _EDGES, timeout=600), ["ok", simd])


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_livebits_hostile_columns(simd):
    assert_child_says(run_on_simd(simd, _HOSTILE, timeout=300), ["ok", "72", simd])
