"""spmm's plain route keeps a PackedSparse W compacted to one live map of X beside it
(PackedSparse._kept, made by _spmm._kept_w): a W meeting the same dead rows of X again
skips the compaction.

Checked on every SIMD path this CPU runs, fp32 and fp64, int32 and int64 indices, the
column-block route (1024^2 x 256) and the per-row one (N = 64, the fused form on AVX-512
fp32), inf/NaN weights on dead rows and -0.0 dead rows: a sequence of live maps (a, a, a,
a, b, b, a) gives, call after call, bit for bit the product of the same arrays passed as a
SciPy CSR (the compaction made afresh, the same kernel; a NaN's sign and payload apart) and
a float64 SciPy reference (NaN exactly where it has one); a map is noted the first call,
compacted and kept the second call in a row, those arrays reused after; a new map lets
them go. The cache is dropped when the values change (set_values, on W or on its cached
transpose, either way round) and the next products use the new values; spmm with
transpose=True keeps its own on the transpose; a W too big to keep keeps nothing; threads
multiplying one W with different maps at once each get their own product."""

import pytest
from conftest import assert_child_says, run_on_simd

_CODE = """
import threading
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels, spmm
from wsekern.sparse import PackedSparse
from wsekern.simd_path import SIMD_PATH

np.seterr(all="ignore")
rng = np.random.default_rng(11)
G = kernels._GLOBALS
# both routes are chosen against L2 (aarch64 under qemu, L2 unknown, met only the column
# blocks): a 1 MiB one gives each shape its route on every SIMD path
kernels.l2_bytes = lambda: 1 << 20


def dead_x(K, N, dtype, seed):
    r = np.random.default_rng(seed)
    X = r.standard_normal((K, N)).astype(dtype)
    dead = np.flatnonzero(r.random(K) < 0.5)
    X[dead] = 0
    X[dead[:3]] = -0.0
    return X, dead


def weight(M, K, dtype, idx, dead):
    W = sps.random(M, K, density=0.1, format="csr", dtype=dtype, random_state=rng)
    d = W.data.copy()
    for j, i in enumerate(range(0, M, 7)):        # inf/NaN weights on dead rows of X
        row = slice(W.indptr[i], W.indptr[i + 1])
        hit = np.flatnonzero(np.isin(W.indices[row], dead))
        if len(hit):
            d[W.indptr[i] + hit[j % len(hit)]] = (np.inf, -np.inf, np.nan)[j % 3]
    P = PackedSparse(d, W.indices.astype(idx), W.indptr.astype(idx), W.shape)
    assert P._indices.dtype == idx and P._indptr.dtype == idx
    return P


def fresh(A, X):
    # the same arrays as a SciPy CSR: the plain route compacts them afresh, same kernel
    W = sps.csr_array((A._data.copy(), A._indices.copy(), A._indptr.copy()), shape=A.shape)
    W.indices = A._indices.copy()
    W.indptr = A._indptr.copy()
    y = _spmm.csr_spmm_plain(W, X, False, None, 1, G)
    assert y is not None
    return y


def check(A, X, got):
    ref = sps.csr_array((A._data.astype(np.float64), A._indices, A._indptr),
                        shape=A.shape) @ X.astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    fin = np.isfinite(ref)
    tol = 1e-4 if X.dtype == np.float32 else 1e-10
    assert np.allclose(got[fin], ref[fin], rtol=tol, atol=tol)
    assert np.array_equal(got[~fin], ref[~fin], equal_nan=True)
    assert (~fin).any() and fin.mean() > 0.5
    # bit for bit but a NaN's sign/payload (the fused compaction's FMA may take the other
    # operand's NaN where an inf*0 meets a NaN weight in one sum)
    fr = fresh(A, X)
    nan = np.isnan(fr)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint8), fr[~nan].view(np.uint8))


def alive_of(X):
    alive = np.empty(X.shape[0], np.uint8)
    _spmm.scan_alive(X, alive, 1)
    return bytes(alive)


def tiles(dtype, idx, N, X):
    # csr_spmm_plain's livebits tiles (the CPU and path of livebits_fused; float32, int32
    # indices, 128 * T columns, X's live rows in 5/8 of L2) multiply X itself, kept or not
    live = int(X.any(axis=1).sum())
    return (_spmm.livebits_fused() and dtype == np.float32 and idx == np.int32
            and N % 128 == 0 and live * N * 4 <= (1 << 20) * 5 // 8)


n = 0
routes = set()
for M, K, N in ((1024, 1024, 256), (1500, 512, 64)):
    for dtype in (np.float32, np.float64):
        for idx in (np.int32, np.int64):
            Xa, dead_a = dead_x(K, N, dtype, 1)
            Xb, _ = dead_x(K, N, dtype, 2)
            P = weight(M, K, dtype, idx, dead_a)
            P.transpose()                   # built: the plain route decides (csc candidate)
            assert kernels.spmm_path(P, Xa) == "csr-skip-rows", kernels.spmm_path(P, Xa)
            kept = None
            if tiles(dtype, idx, N, Xa) or tiles(dtype, idx, N, Xb):
                # livebits' tiled form multiplies X itself: nothing kept (test_spmm_livebits_tiles)
                for X in (Xa, Xa, Xb):
                    check(P, X, spmm(P, X, n_threads=1))
                    assert P._kept is None
                n += 8                  # the 7 states and the transpose case
                routes.add("blocks")
                continue
            for X, state in ((Xa, "noted"), (Xa, "made"), (Xa, "reused"), (Xa, "reused"),
                             (Xb, "noted"), (Xb, "made"), (Xa, "noted")):
                got = spmm(P, X, n_threads=1)
                check(P, X, got)
                assert P._kept is not None and P._kept[0] == alive_of(X)
                arrays = P._kept[1]
                if state == "noted":
                    assert arrays is None
                else:
                    assert not arrays[0].flags.writeable
                    assert (arrays[0] is kept) == (state == "reused")
                kept = None if arrays is None else arrays[0]
                n += 1
            nb = kernels.column_block(int(np.frombuffer(P._kept[0], np.uint8).sum()) + 1, N,
                                      np.dtype(dtype).itemsize, reuse=P.nnz / K)
            routes.add("blocks" if 0 < nb < N else "rows")
            # new values: the cache is dropped, the next product uses them
            got = spmm(P, Xa, n_threads=1)         # made (the map noted last call)
            assert P._kept[1] is not None
            v = P._data * 2
            v[::997] = np.nan
            P.set_values(v)
            assert P._kept is None
            for _ in range(3):
                got = spmm(P, Xa, n_threads=1)
                check(P, Xa, got)
            assert P._kept[1] is not None
            assert np.isnan(got).sum() > 0
            # transpose=True: its own cache on the cached transpose; dropped with set_values
            # on W, and W's dropped with set_values on the transpose
            T = P._transpose[0]
            Xt, _ = dead_x(M, N, dtype, 3)
            T.transpose()
            if kernels.spmm_path(T, Xt) == "csr-skip-rows":
                for _ in range(2):
                    got = spmm(P, Xt, transpose=True, n_threads=1)
                    check(T, Xt, got)
                assert T._kept[1] is not None
                P.set_values(P._data + 1)
                assert T._kept is None and P._kept is None
                for _ in range(2):
                    check(T, Xt, spmm(P, Xt, transpose=True, n_threads=1))
                    check(P, Xa, spmm(P, Xa, n_threads=1))
                assert P._kept is not None and T._kept is not None
                T.set_values(T._data - 3)
                assert P._kept is None and T._kept is None
                for _ in range(2):
                    check(P, Xa, spmm(P, Xa, n_threads=1))
                    check(T, Xt, spmm(P, Xt, transpose=True, n_threads=1))
                n += 1
assert routes == {"blocks", "rows"}, routes

# a W too big to keep keeps nothing (the products the same)
# (int64 indices: livebits' tiles, which keep nothing, take only int32)
M, K, N = 1024, 1024, 256
Xa, dead_a = dead_x(K, N, np.float32, 4)
P = weight(M, K, np.float32, np.int64, dead_a)
P.transpose()
limit = _spmm._KEPT_MAX_BYTES
_spmm._KEPT_MAX_BYTES = P.nnz * 12 + (M + 1) * 8 - 1   # values, columns and row pointers
try:
    for _ in range(3):
        check(P, Xa, spmm(P, Xa, n_threads=1))
        assert P._kept[1] is None
    _spmm._KEPT_MAX_BYTES = P.nnz * 12 + (M + 1) * 8
    for _ in range(2):
        check(P, Xa, spmm(P, Xa, n_threads=1))
    assert P._kept[1] is not None
finally:
    _spmm._KEPT_MAX_BYTES = limit
n += 1

# threads at once on one W, each with its own live map
xs = [dead_x(K, N, np.float32, 20 + s)[0] for s in range(3)]
refs = [fresh(P, X) for X in xs]
bad = []


def work(t):
    r = np.random.default_rng(t)
    for _ in range(15):
        s = int(r.integers(3))
        if not np.array_equal(spmm(P, xs[s], n_threads=1).view(np.uint8),
                              refs[s].view(np.uint8)):
            bad.append((t, s))


threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not bad, bad
assert P._kept is not None
n += 1
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_kept_w(simd):
    assert_child_says(run_on_simd(simd, _CODE, timeout=600), ["ok", "66", simd])
