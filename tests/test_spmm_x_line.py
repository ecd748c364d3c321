"""spmm's rows kernels reading X whole (no column blocks, whose copies are on the line; no dead
rows skipped) with X off the SIMD path's vector line (64 bytes AVX-512, 32 AVX2; the
baseline reads X as it is): X is copied whole into the kept 64-aligned buffer
(_x_line_buffer) when each row of X meets enough stored weights on average (the path's reuse
in _spmm._X_LINE: 30 here, 16 and 4 apart) and its rows could all start on the line (the row
pitch a multiple of it). Checked in a child per SIMD path, L2 pinned to Zen 4's 1 MiB: X at
byte offsets 0, 4, 16, 32 and 48 from 64; fp32 and fp64, int32 and int64 indices; N = 64, 16
and 48 (pitches that are whole lines) and 24 fp32 (96 bytes: never copied); K = 1000 (X
under the kept buffer's least size: NumPy's memory) and 4096; a SciPy CSR and a packed W;
one thread (the native call) and two (the Python route); inf/NaN in X and in W. Each product
is bit for bit the one with X on the line (the same kernel and sums: a copy), has NaN where
a float64 SciPy product has one and is close elsewhere; X is left as it was. The copy is
asked for exactly when the rule above says, and the kept buffer is back after the call. A W
whose rows meet too few weights reads X as it is; a column index out of range with X off the
line is named by spmm, the kept buffer back. On main (before the copy) the counts fail: no
copy was ever asked for."""

import os

import pytest
from conftest import assert_child_says, run_on_simd

# The child imports tests/livebits_cases.py.
_CODE = f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n" + """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels, pack, spmm
from wsekern.simd_path import SIMD_PATH
from livebits_cases import at

np.seterr(all="ignore")
kernels.l2_bytes = lambda: 1 << 20
line, reuse = {"avx512": (64, 10), "avx2": (32, 24)}.get(SIMD_PATH, (0, 0))
assert _spmm._X_LINE.get(SIMD_PATH, (0, 0)) == (line, reuse)
asked = []
_x_orig = _spmm._x_line_buffer


def _x_counting(nbytes):
    got = _x_orig(nbytes)
    asked.append((nbytes, got[0].ctypes.data % 64))
    return got


_spmm._x_line_buffer = _x_counting


n = copied = 0
rng = np.random.default_rng(3)
for dt, idx in ((np.float32, np.int32), (np.float64, np.int64), (np.float32, np.int64)):
    for K, N in ((1000, 64), (4096, 16), (1000, 48), (1000, 24), (1000, 8)):
        if dt == np.float64 and N == 24:
            continue
        M = 300
        density = 30 / M                   # 30 weights a row of X on average
        W = sps.random(M, K, density=density, format="csr", random_state=K + N, dtype=dt)
        W.indices = W.indices.astype(idx)
        W.indptr = W.indptr.astype(idx)
        W.data[::W.nnz // 20] = np.inf
        W.data[5::W.nnz // 17] = np.nan
        X = rng.standard_normal((K, N)).astype(dt)
        X[7, 3] = np.nan
        X[K - 2, N - 1] = -np.inf
        r64 = W.astype(np.float64) @ X.astype(np.float64)
        fin = np.isfinite(r64)
        assert fin.mean() > 0.5 and (~fin).any()
        pitch = N * X.itemsize
        # X's columns in blocks (copied anyway, on the line): read whole only unblocked
        blocked = kernels.column_block(K, N, X.itemsize, reuse=W.nnz / K) != 0
        for Wx in (W, pack(W)):
            ref = spmm(Wx, at(X, 0), n_threads=1)
            for threads in (1, 2):
                route = kernels._spmm_impl(Wx, X, False, None, threads)[1]
                assert route == "csr", route
                for off in (0, 4, 16, 32, 48):
                    Xo = at(X, off)
                    keep = Xo.tobytes()
                    asked.clear()
                    got = spmm(Wx, Xo, n_threads=threads)
                    assert got.tobytes() == ref.tobytes(), (dt, K, N, off, threads)
                    assert np.array_equal(np.isnan(got), np.isnan(r64))
                    assert np.allclose(got[fin], r64[fin], rtol=1e-4, atol=1e-3)
                    assert Xo.tobytes() == keep
                    rows_full = K * N * X.itemsize
                    # 12 weights a row: copied on AVX-512 (10), not on AVX2 (24)
                    want = bool(line and off % line and pitch % line == 0
                                and W.nnz >= reuse * K and not blocked)
                    assert asked == ([(rows_full, 0)] if want else []), (
                        dt, K, N, off, threads, asked, SIMD_PATH)
                    if _spmm._live_made[0]:
                        assert _spmm._live_kept[0] is not None
                    n += 1
                    copied += want
assert (copied > 0) == (line > 0), copied
# a W whose rows of X meet 16 weights: copied on AVX-512, not AVX2; 4 weights: never
for per_row, copied in ((16, line == 64), (4, False)):
    K, N = 1000, 64
    W = sps.random(400, K, density=per_row / 400, format="csr", random_state=1,
                   dtype=np.float32)
    X = rng.standard_normal((K, N)).astype(np.float32)
    ref = spmm(W, at(X, 0), n_threads=1)
    asked.clear()
    got = spmm(W, at(X, 16), n_threads=1)
    assert got.tobytes() == ref.tobytes()
    assert asked == ([(K * N * 4, 0)] if copied else []), (per_row, asked)
    n += 1
# the kept buffer held elsewhere: the copy in NumPy's memory, still on the line
K = 4096
W = sps.random(300, K, density=0.1, format="csr", random_state=2, dtype=np.float32)
X = rng.standard_normal((K, 64)).astype(np.float32)
ref = spmm(W, at(X, 0), n_threads=1)
held, raw = _spmm._live_buffer(1 << 20)
assert raw is not None
asked.clear()
assert spmm(W, at(X, 16), n_threads=1).tobytes() == ref.tobytes()
assert asked == ([(K * 64 * 4, 0)] if line else [])
_spmm._live_release(raw)
n += 1
# a column out of range with X off the line: named by spmm, the kept buffer back
Xo = at(X, 16)
for bad in (K, -1):
    V = W.copy()
    V.indices[V.indptr[70] + 1] = bad
    for threads in (1, 2):
        try:
            spmm(V, Xo, n_threads=threads)
        except ValueError as e:
            assert str(bad) in str(e), str(e)
            n += 1
        else:
            raise AssertionError("an index out of range was not refused")
        assert _spmm._live_kept[0] is not None
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_dense_x_off_the_line(simd):
    assert_child_says(run_on_simd(simd, _CODE, timeout=300), ["ok", "287", simd])
