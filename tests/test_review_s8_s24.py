"""review_s8 (s24) on dense24's X copy onto the vector line and the livebits tiles, and on
zen5's one-thread narrow blocks: Python threads sharing the kept buffer, hostile W, and X
too big to copy. Each check in a child per SIMD path."""
import os

import pytest
from conftest import assert_child_says, run_on_simd

_HEAD = f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n" + """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels, pack, spmm
from wsekern.simd_path import SIMD_PATH
from livebits_cases import at, x_dead

np.seterr(all="ignore")
kernels.l2_bytes = lambda: 1 << 20
"""

_THREADS = _HEAD + """
import threading

# four Python threads at once, each its own X off the line (dense: the rows kernels' copy;
# half dead at 256 columns: the livebits tiles' copy), all sharing the one kept buffer:
# each product bit for bit its serial one with X on the line
rng = np.random.default_rng(5)
cases = []
for t in range(4):
    K = 1000 + 300 * t
    W = sps.random(200, K, density=30 / 200, format="csr", random_state=t, dtype=np.float32)
    Xd = rng.standard_normal((K, 64)).astype(np.float32)
    Xh = x_dead(K, 256, 40 + t)
    for X in (Xd, Xh):
        for Wx in (W, pack(W)):
            cases.append((Wx, X, spmm(Wx, at(X, 0), n_threads=1)))
errors = []


def work(t):
    try:
        for r in range(6):
            for i, (Wx, X, ref) in enumerate(cases):
                if (i + t) % 2:
                    continue
                off = (16, 32, 48, 4)[(r + t) % 4]
                got = spmm(Wx, at(X, off), n_threads=1 + (r + i) % 2)
                assert got.tobytes() == ref.tobytes(), (t, r, i, off)
    except BaseException as e:  # noqa: BLE001
        errors.append(repr(e))


threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for th in threads:
    th.start()
for th in threads:
    th.join()
assert not errors, errors[:3]
assert _spmm._live_kept[0] is not None or not _spmm._live_made[0]
print("ok", len(cases), SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2"])
def test_threads_share_the_kept_buffer(simd):
    assert_child_says(run_on_simd(simd, _THREADS, timeout=300), ["ok", "16", simd])


_HOSTILE = _HEAD + """
# a SciPy CSR W with a bad indptr or a column out of range, X off the line (dense at 64 and
# 16 columns, half dead at 64 and 256): refused with the bad value named, never a crash;
# the kept buffer back
n = 0
for K, N, half in ((1000, 64, False), (1000, 16, False), (1000, 64, True),
                   (1000, 256, True)):
    W0 = sps.random(120, K, density=0.03, format="csr", random_state=K + N,
                    dtype=np.float32)
    X = x_dead(K, N, 3) if half else np.random.default_rng(1).standard_normal(
        (K, N)).astype(np.float32)
    Xo = at(X, 16)
    for idx in (np.int32, np.int64):
        for what, bad in (("col", K), ("col", -1), ("col", 2**31 - 1), ("col", 4096),
                          ("ptr", "decreasing"), ("ptr", "past"), ("ptr", "start")):
            V = W0.copy()
            V.indices = V.indices.astype(idx)
            V.indptr = V.indptr.astype(idx)
            if what == "col":
                V.indices[V.indptr[60] + 1] = bad
                needle = str(bad)
            elif bad == "decreasing":
                V.indptr[50] = V.indptr[52] + 3
                needle = "indptr"
            elif bad == "past":
                V.indptr[-1] = V.nnz + 40
                needle = "indptr"
            else:
                V.indptr[0] = 2
                needle = "indptr"
            try:
                spmm(V, Xo, n_threads=1)
            except ValueError as e:
                assert needle in str(e), (what, bad, str(e))
                n += 1
            else:
                raise AssertionError(f"not refused: {what} {bad}")
            if _spmm._live_made[0]:
                assert _spmm._live_kept[0] is not None
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_hostile_w_with_x_off_the_line(simd):
    assert_child_says(run_on_simd(simd, _HOSTILE, timeout=300), ["ok", "56", simd])


_BIG = _HEAD + """
# X off the line over X_LINE_MAX_BYTES (4 MiB) is read as it is (the copy's pass cost more
# than it saved there, and doubled X's memory); at 4 MiB it is copied (AVX-512: 10 weights a
# row of X and more). The same bits either way as X on the line.
asked = []
_orig = _spmm._x_line_buffer


def _count(nbytes):
    asked.append(nbytes)
    return _orig(nbytes)


_spmm._x_line_buffer = _count
flags = open("/proc/cpuinfo").read()
tiles = SIMD_PATH == "avx512" and "avx512_vpopcntdq" in flags
rng = np.random.default_rng(2)
n = 0
for K, copied in ((16384, SIMD_PATH == "avx512"), (16400, False)):
    M, per = 1000, 170
    ind = np.sort(rng.integers(0, K, (M, per), dtype=np.int32), axis=1).ravel()
    W = sps.csr_matrix((rng.standard_normal(M * per).astype(np.float32), ind,
                        np.arange(0, M * per + 1, per, dtype=np.int32)), shape=(M, K))
    X = rng.standard_normal((K, 64)).astype(np.float32)
    ref = spmm(W, at(X, 0), n_threads=1)
    asked.clear()
    got = spmm(W, at(X, 16), n_threads=1)
    assert got.tobytes() == ref.tobytes()
    assert asked == ([K * 64 * 4] if copied else []), (K, asked)
    n += 1
# the livebits tiles at 384 columns, 5 % of 4096 rows live: X 6 MiB, read as it is
X = x_dead(4096, 384, 8, dead=0.95)
W = sps.random(300, 4096, density=0.05, format="csr", random_state=6, dtype=np.float32)
assert kernels._spmm_impl(W, X, False, None, 1)[1] == "csr-skip-rows"
ref = spmm(W, at(X, 0), n_threads=1)
for off in (16, 48):
    asked.clear()
    got = spmm(W, at(X, off), n_threads=1)
    assert got.tobytes() == ref.tobytes()
    assert asked == [], asked
    r = W.astype(np.float64) @ X.astype(np.float64)
    assert np.allclose(got, r, rtol=1e-4, atol=1e-3)
    n += 1
print("ok", n, SIMD_PATH, tiles)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_x_over_the_cap_read_as_it_is(simd):
    tiles = simd == "avx512" and "avx512_vpopcntdq" in open("/proc/cpuinfo").read()
    assert_child_says(run_on_simd(simd, _BIG, timeout=300), ["ok", "4", simd, str(tiles)])
