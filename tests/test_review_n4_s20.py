"""Session 20 review (review_n4) of halfdead10's kept compaction and small20's lean path.

- The lean path (small narrow products, _spmm._lean_run) held the GIL for indptr's check,
  X's nonzero count and the kernel's row loop whenever nnz * N was small, whatever M and
  K * N: a call with 2^24 rows and 64 nonzeros kept every other thread out for ~80 % of
  its ~40 ms (Zen 4), a 256 MiB X for its count. Checked without a clock bound: in one
  of 20 tries, a watcher thread never stops running for half of such a call (the GIL
  held through a pass that is most of the call stops it that long every time), and the
  product is SciPy's.
- The kept compaction's size cap counts its row pointers too (M + 1 indices), not only
  nnz * (value + index) bytes: checked with the cap set between the two.
"""

import os

import pytest
from conftest import assert_child_says, run_on_simd

_GIL = """
import threading, time
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels
G = kernels._GLOBALS
rng = np.random.default_rng(3)


def released(W, X):
    # does a watcher thread run all through a native call (no stretch of half of it
    # without it)?
    for attempt in range(20):
        stamps, stop = [], threading.Event()
        def watch():
            while not stop.is_set():
                stamps.append(time.perf_counter_ns())
        th = threading.Thread(target=watch)
        th.start()
        time.sleep(0.01)
        t0 = time.perf_counter_ns()
        y = _spmm.csr_spmm_plain(W, X, False, None, 1, G)
        t1 = time.perf_counter_ns()
        stop.set()
        th.join()
        assert y is not None                      # the lean path decided (not the Python route)
        ref = W.astype(np.float64) @ X.astype(np.float64)
        assert np.allclose(y, ref, rtol=1e-5, atol=1e-5)
        # the longest stretch of the call the watcher did not run in: with the GIL held
        # through a pass that is most of the call, over half of it
        points = [t0] + [s for s in stamps if t0 < s < t1] + [t1]
        if max(b - a for a, b in zip(points, points[1:])) < (t1 - t0) / 2:
            return True
    return False


nnz = 64
for dtype, idx in ((np.float32, np.int32), (np.float64, np.int64)):
    # many rows, few nonzeros: indptr's check and the row loop over M
    M, K = 1 << 24, 1024
    W = sps.csr_array((rng.standard_normal(nnz).astype(dtype),
                       rng.integers(0, K, nnz).astype(idx),
                       np.minimum(np.arange(M + 1), nnz).astype(idx)), shape=(M, K))
    X = rng.standard_normal(K).astype(dtype)
    print("rows", released(W, X))
    del W
    # a long X (256 MiB: its count long enough to see past a loaded machine's wake-ups)
    M, K = 8, (1 << 28) // np.dtype(dtype).itemsize
    W = sps.csr_array((rng.standard_normal(nnz).astype(dtype),
                       rng.integers(0, K, nnz).astype(idx),
                       np.minimum(np.arange(M + 1) * 8, nnz).astype(idx)), shape=(M, K))
    X = rng.standard_normal((K, 1)).astype(dtype)
    print("x", released(W, X))
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_lean_path_releases_gil_on_long_passes(simd):
    # the watcher needs a core while the call runs: on a machine loaded past its cores it
    # was not scheduled for half of a ~20 ms call in any of 20 tries (Zen 5, load 8-14),
    # GIL released or not
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 1.5 * cores:
        pytest.skip(f"load {load:.1f} on {cores} cores: a watcher thread's share of a call "
                    "cannot be seen")
    proc = run_on_simd(simd, _GIL, timeout=300)
    assert_child_says(proc, ["rows", "True", "x", "True"] * 2)


_CAP = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, spmm
from wsekern.sparse import PackedSparse
rng = np.random.default_rng(4)
M = K = 1024
N = 200     # not a multiple of 128: float32 at 128*T columns takes the livebits tiles (no kept W)
for dtype in (np.float32, np.float64):
    W = sps.random(M, K, density=0.1, format="csr", dtype=dtype, random_state=rng)
    X = rng.standard_normal((K, N)).astype(dtype)
    X[rng.random(K) < 0.5] = 0
    isz = 4
    body = W.nnz * (np.dtype(dtype).itemsize + isz)
    ref = W @ X
    for cap, keeps in ((body + (M + 1) * isz, True), (body + (M + 1) * isz - 1, False)):
        P = PackedSparse(W.data, W.indices.astype(np.int32), W.indptr.astype(np.int32), W.shape)
        P.transpose()
        _spmm._KEPT_MAX_BYTES = cap
        for _ in range(3):
            y = spmm(P, X, n_threads=1)
            assert np.allclose(y, ref, rtol=1e-4, atol=1e-4)
        assert P._kept is not None
        print(P._kept[1] is not None, end=" ")
print()
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_kept_cap_counts_row_pointers(simd):
    proc = run_on_simd(simd, _CAP)
    assert_child_says(proc, ["True", "False"] * 2)
