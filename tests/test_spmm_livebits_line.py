"""spmm's livebits route (one thread, csr-skip-rows at 64 float32 columns, a new live map)
with X off the 64-byte line: X is copied whole into the kept 64-aligned buffer
(_x_line_buffer) and the kernel reads the copy; on the line, X itself. Checked in a child
per SIMD path, L2 pinned to Zen 4's 1 MiB: X at byte offsets 0, 4, 16, 32 and 48 from 64
(a 4-byte offset: rows are not even 16-byte aligned), K = 4096, 1000 and 300 (below the
kept buffer's least size: NumPy's memory), inf/NaN weights (some on dead rows), -0.0 dead
rows, NaN in a live row; a SciPy CSR and a packed W (a new map each call). Each product is
bit for bit (NaN payloads too) the route before (csr_spmm's fused kernel on X_live with
the remap), the same whatever the offset, has NaN where a float64 SciPy product has one
and is close elsewhere; X is left as it was. Where the CPU runs the kernel, the copy is
asked for exactly when X is off the line, X_live's buffer never, and the kept buffer is
back after the call; elsewhere no copy is made (the route before). A column out of range
with X off the line is declined (the kept buffer back) and named by spmm; a call while
another holds the kept buffer copies into NumPy's memory, still on the line."""

import os

import pytest
from conftest import assert_child_says, run_on_simd

# The child imports tests/livebits_cases.py.
_CODE = f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n" + """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels, pack, spmm
from wsekern.simd_path import SIMD_PATH
from livebits_cases import at, before, refused, x_dead as _x_dead

np.seterr(all="ignore")
kernels.l2_bytes = lambda: 1 << 20
flags = open("/proc/cpuinfo").read()
want = SIMD_PATH == "avx512" and "avx512_vpopcntdq" in flags
assert _spmm.livebits_fused() == want
N = 64
asked = {"x": [], "live": []}
_x_orig, _live_orig = _spmm._x_line_buffer, _spmm._live_buffer


def _x_counting(nbytes):
    got = _x_orig(nbytes)
    asked["x"].append((nbytes, got[1] is not None, got[0].ctypes.data % 64))
    return got


def _live_counting(nbytes):
    asked["live"].append(nbytes)
    return _live_orig(nbytes)


_spmm._x_line_buffer = _x_counting
_spmm._live_buffer = _live_counting


def x_dead(K, seed):
    return _x_dead(K, N, seed, nan_live=True)


rng = np.random.default_rng(5)
n = 0
for K in (4096, 1000, 300):
    M = 150                              # 15 weights a row of X at most: no column blocks
    W = sps.random(M, K, density=min(0.1, 20 / K * 4), format="csr", random_state=K,
                   dtype=np.float32)
    W.indices = W.indices.astype(np.int32)
    W.indptr = W.indptr.astype(np.int32)
    Xs = [x_dead(K, K + s) for s in range(3)]
    dead = np.flatnonzero(~Xs[0].any(axis=1))
    for i in range(0, M, 7):                  # inf/NaN weights, some on X's dead rows
        p = W.indptr[i]
        if W.indptr[i + 1] > p:
            W.indices[p] = dead[i % len(dead)] if i % 2 else W.indices[p]
            W.data[p] = (np.inf, np.nan, -np.inf)[i % 3]
    W.sum_duplicates()
    P = pack(W)
    assert kernels._spmm_impl(W, Xs[0], False, None, 1)[1] == "csr-skip-rows"
    for s, X in enumerate(Xs):
        ref = before(W.data, W.indices, W.indptr, X)
        r64 = W.astype(np.float64) @ X.astype(np.float64)
        fin = np.isfinite(r64)
        assert fin.mean() > 0.5 and (~fin).any()
        for off in (0, 4, 16, 32, 48):
            Xo = at(X, off)
            keep = Xo.tobytes()
            for Wx in (W, P):                # P: a new map every call (3 maps in turn)
                if Wx is P:
                    P._kept = None
                asked["x"].clear()
                asked["live"].clear()
                got = spmm(Wx, Xo, n_threads=1)
                assert got.tobytes() == ref.tobytes(), (K, s, off)
                assert np.array_equal(np.isnan(got), np.isnan(r64))
                assert np.allclose(got[fin], r64[fin], rtol=1e-4, atol=1e-3)
                assert Xo.tobytes() == keep
                if want:
                    assert not asked["live"], (K, off, asked)
                    if off:
                        assert len(asked["x"]) == 1 and asked["x"][0][0] == K * N * 4
                        assert asked["x"][0][1] == (K * N * 4 >= _spmm._LIVE_HUGE_MIN)
                        assert asked["x"][0][2] == 0
                    else:
                        assert not asked["x"], (K, asked)
                else:
                    assert not asked["x"] and asked["live"], (K, off, asked)
                if _spmm._live_made[0]:       # the kept buffer, once made, is back
                    assert _spmm._live_kept[0] is not None
                n += 1
# the kept buffer held elsewhere (another call): the copy in NumPy's memory, on the line
X = x_dead(4096, 1)
Xo = at(X, 16)
W = sps.random(150, 4096, density=0.1, format="csr", random_state=2, dtype=np.float32)
ref = before(W.data, W.indices, W.indptr, X)
held, raw = _spmm._live_buffer(1 << 20)
assert raw is not None
asked["x"].clear()
got = spmm(W, Xo, n_threads=1)
assert got.tobytes() == ref.tobytes()
assert asked["x"] == ([(4096 * N * 4, False, 0)] if want else [])
_spmm._live_release(raw)
n += 1
# a column out of range (K, -1) with X off the line: declined, the kept buffer back
for bad in (4096, -1):
    V = W.copy()
    V.indices[V.indptr[70] + 1] = bad
    asked["x"].clear()
    assert _spmm.csr_spmm_plain(V, Xo, False, None, 1, kernels._GLOBALS) is None
    assert len(asked["x"]) == int(want)
    assert _spmm._live_kept[0] is not None
    n += refused(lambda: spmm(V, Xo, n_threads=1), bad)
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_livebits_x_off_the_line(simd):
    assert_child_says(run_on_simd(simd, _CODE, timeout=300), ["ok", "93", simd])
