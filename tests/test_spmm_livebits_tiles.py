"""spmm's livebits route in its tiled form (one thread, csr-skip-rows, float32 X of 128 * T
columns whose live rows fit in 5/8 of L2, AVX-512 with VPOPCNTDQ): the fused kernel
multiplies X itself in column tiles of 128, no live map or X_live made. Checked in a child
per SIMD path, L2 pinned to Zen 4's 1 MiB: N = 128, 256 and 384; K = 600 and 900 (partial
32-row words) and 4096 (80 % of its rows dead); rows of 0-80 entries and long ones; inf/NaN
weights, some on dead rows; -0.0 dead rows; NaN in a live row; X at byte offsets 0, 4, 16
and 48 from 64 (off the line: copied whole first); a SciPy CSR W and a packed W, a new map
each call and the same map again. Each product is bit for bit the route before (the rows
kernels on X's live rows with the remap, in column blocks of 128 and unblocked), has NaN
exactly where a float64 SciPy product has one and is close elsewhere; X is left as it was.
Where the CPU runs the kernel, no live map or X_live is made (on main, the column blocks
made the one, the rows kernels the other: this count fails there); elsewhere, and past its
reach (live rows over 5/8 of L2, N = 192, K = 5000), the route before runs. A column out of
range is declined by the native call and named by spmm, the kept buffer back."""
import os

import pytest
from conftest import assert_child_says, run_on_simd

_CODE = f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n" + """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels, pack, spmm
from wsekern.simd_path import SIMD_PATH
from livebits_cases import at, before, refused, x_dead

np.seterr(all="ignore")
kernels.l2_bytes = lambda: 1 << 20
flags = open("/proc/cpuinfo").read()
want = SIMD_PATH == "avx512" and "avx512_vpopcntdq" in flags
maps = [0]           # live maps or X_live made (the route before, in column blocks or not)
_map_orig, _live_orig = _spmm.live_map, _spmm._live_buffer


def _map_counting(*a):
    maps[0] += 1
    return _map_orig(*a)


def _live_counting(*a):
    maps[0] += 1
    return _live_orig(*a)


_spmm.live_map = _map_counting
_spmm._live_buffer = _live_counting
rng = np.random.default_rng(9)
n = 0


def check(got, W, X, refs):
    global n
    r = sps.csr_matrix(W, dtype=np.float64) @ X.astype(np.float64)
    fin = np.isfinite(r)
    assert fin.mean() > 0.5 and (~fin).any()
    assert got.dtype == np.float32 and got.shape == r.shape
    for ref in refs:
        assert got.tobytes() == ref.tobytes()
    assert np.array_equal(np.isnan(got), np.isnan(r))
    assert np.allclose(got[fin], r[fin], rtol=1e-4, atol=1e-3)
    n += 1


for K, N, dead_share, reach in ((900, 256, 0.5, True), (4096, 128, 0.8, True),
                                (600, 384, 0.5, True), (4096, 256, 0.5, False),
                                (1000, 192, 0.5, False), (5000, 128, 0.8, False)):
    lengths = rng.permutation(np.r_[np.arange(0, 81, 4), 0, 300, min(K, 1000), min(K, 640)])
    M = len(lengths)
    cols = [np.sort(rng.choice(K, m, replace=False)) for m in lengths]
    indices = np.concatenate(cols).astype(np.int32)
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    data = rng.standard_normal(len(indices)).astype(np.float32)
    Xs = [x_dead(K, N, 10 * K + N + s, s == 1, dead_share) for s in range(2)]
    dead = np.flatnonzero(~Xs[0].any(axis=1))
    for i, m in enumerate(lengths):          # inf/NaN weights, some on X's dead rows
        if m and i % 5 == 1:
            data[indptr[i] + (i * 7) % m] = (np.nan, np.inf, -np.inf)[i % 3]
    data[np.flatnonzero(np.isin(indices, dead))[:2]] = (np.inf, np.nan)
    W = sps.csr_matrix((data, indices, indptr), shape=(M, K))
    P = pack(W)
    if reach:    # X's live rows, plus the route before's zero row: in half of L2 (5/8 asked)
        assert (int(Xs[0].any(axis=1).sum()) + 1) * N * 4 <= 1 << 19
    for s in (0, 1, 1, 1, 0):                # new maps, then one map three times
        X = Xs[s]
        refs = [before(data, indices, indptr, X, 128), before(data, indices, indptr, X)]
        for off in (0, 4, 16, 48):
            Xo = at(X, off)
            keep = Xo.tobytes()
            for Wx in (W, P):
                maps[0] = 0
                got = spmm(Wx, Xo, n_threads=1)
                check(got, W, X, refs)
                assert Xo.tobytes() == keep
                if want and reach:
                    assert maps[0] == 0, (K, N, s, off)
                if _spmm._live_made[0]:
                    assert _spmm._live_kept[0] is not None
    assert kernels._spmm_impl(W, Xs[0], False, None, 1)[1] == "csr-skip-rows"
# the same operands past the kernel's reach took the route before: the column blocks'
# live map was made there (X's live rows over 5/8 of L2 at 4096 x 256)
maps[0] = 0
Xb = x_dead(4096, 256, 5)
Wb = sps.random(600, 4096, density=0.1, format="csr", random_state=4, dtype=np.float32)
got = spmm(Wb, Xb, n_threads=1)
assert got.tobytes() == before(Wb.data, Wb.indices, Wb.indptr, Xb, 128).tobytes()
assert maps[0] == 1
n += 1
# a SciPy CSR holding a column out of range (K or -1), X on and off the line: the native
# call declines, spmm names the index, the kept buffer back
K, N = 1000, 256
X = x_dead(K, N, 99)
V0 = sps.random(200, K, density=0.2, format="csr", random_state=3, dtype=np.float32)
for off in (0, 16):
    Xo = at(X, off)
    for row in (0, 199):
        for bad in (K, -1):
            V = V0.copy()
            V.indices[V.indptr[row] + 1] = bad
            assert _spmm.csr_spmm_plain(V, Xo, False, None, 1, kernels._GLOBALS) is None
            if _spmm._live_made[0]:
                assert _spmm._live_kept[0] is not None
            n += refused(lambda: spmm(V, Xo, n_threads=1), bad)
print("ok", n, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_livebits_tiles(simd):
    assert_child_says(run_on_simd(simd, _CODE, timeout=300), ["ok", "249", simd])
