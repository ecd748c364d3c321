"""review2 (s16): csr_spmm with x_remap (the per-row variant, 16 rows a call, the
compacted-once one and the x_rows column blocks) on adversarial operands, every SIMD path in a
child process, against references built apart from wsekern: X's live rows and remap in NumPy,
W compacted in NumPy (bit for bit through the plain kernel) and SciPy in float64 on the full
X (NaN and inf exactly where it has them, close elsewhere). Rows of every length 0-70; dead
rows none, all, alternating, random, only the first or the last live, in blocks of 8; columns
0 and K-1, unsorted with repeats; inf/NaN weights on live and on dead rows; a huge row among
empty ones (a 16-row run far longer than the others); 1-3 threads."""
import os

import pytest
from conftest import run_in_child, run_on_simd

from wsekern import _spmm

_CODE = r"""
import numpy as np, scipy.sparse as sps
from wsekern import _spmm
from wsekern.simd_path import SIMD_PATH

np.seterr(all="ignore")
rng = np.random.default_rng(1616)


def live_parts(X, idx):
    alive = (X != 0).any(axis=1)
    n_live = int(alive.sum())
    X_live = np.ascontiguousarray(np.vstack([X[alive], np.zeros((1, X.shape[1]), X.dtype)]))
    remap = np.where(alive, np.cumsum(alive) - 1, n_live).astype(idx)
    return X_live, remap, np.flatnonzero(alive).astype(idx), n_live


def make_w(lengths, K, dt, idx, dead):
    indices = np.concatenate([rng.integers(0, K, m) for m in lengths]).astype(idx)
    indptr = np.r_[0, np.cumsum(lengths)].astype(idx)
    data = rng.standard_normal(len(indices)).astype(dt)
    dead_cols, live_cols = np.flatnonzero(dead), np.flatnonzero(~dead)
    for i, m in enumerate(lengths):
        if m >= 2 and i % 4 == 0:                  # the remap's first and last entries
            indices[indptr[i]], indices[indptr[i + 1] - 1] = 0, K - 1
        if m and i % 5 == 1 and len(dead_cols):    # inf/NaN on a dead row, lane moving
            p = indptr[i] + (i * 5) % m
            indices[p], data[p] = dead_cols[i % len(dead_cols)], (np.nan, np.inf, -np.inf)[i % 3]
        if m and i % 5 == 3 and len(live_cols):    # inf/NaN on a live row
            p = indptr[i] + (i * 5) % m
            indices[p], data[p] = live_cols[i % len(live_cols)], (np.inf, np.nan, -np.inf)[i % 3]
    return data, indices, indptr


def check(data, indices, indptr, X, dt, idx, label):
    K, N = X.shape
    M = len(indptr) - 1
    X_live, remap, rows, n_live = live_parts(X, idx)
    keep = (remap[indices] < n_live) | ~np.isfinite(data)
    cnt = np.array([keep[s:e].sum() for s, e in zip(indptr[:-1], indptr[1:])], np.int64)
    pre = (np.ascontiguousarray(data[keep]), remap[indices[keep]].astype(idx),
           np.r_[0, np.cumsum(cnt)].astype(idx))
    ref = sps.csr_matrix((data.astype(np.float64), indices, indptr),
                         shape=(M, K)) @ X.astype(np.float64)
    fin = np.isfinite(ref)
    tol = 2e-4 if dt == np.float32 else 1e-11
    scale = max(np.abs(data[np.isfinite(data)]).max(initial=1.0), 1.0)
    variants = [(nb, thr, False) for nb in (0, N) for thr in (1, 2, 3)]
    if N > 1:
        variants += [(nb, thr, xr) for nb in (1, N - 1) for thr in (1, 2) for xr in (0, 1)]
    for nb, thr, xr in variants:
        want = np.full((M, N), 7, dt)
        got = np.full((M, N), 7, dt)
        _spmm.csr_spmm(*pre, X_live, want, None, thr, nb)
        if xr:
            _spmm.csr_spmm(data, indices, indptr, X, got, remap, thr, nb, False, rows)
        else:
            _spmm.csr_spmm(data, indices, indptr, X_live, got, remap, thr, nb)
        where = (label, dt.__name__, idx.__name__, N, nb, thr, xr)
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), ("bits", where)
        assert np.array_equal(np.isnan(got), np.isnan(ref)), ("nan", where)
        assert np.array_equal(np.isinf(got), np.isinf(ref)), ("inf", where)
        assert np.allclose(got[fin], ref[fin], rtol=tol, atol=tol * scale * 10), ("close", where)
    return len(variants)


total = 0
for dt in (np.float32, np.float64):
    for idx in (np.int32, np.int64):
        for pat in ("none", "all", "alt", "random", "first", "last", "blocks"):
            for N in (1, 16, 32, 40):     # 16/32: the baseline rows call's 8x1 tile, fp64/fp32
                K = 83
                k = np.arange(K)
                dead = {"none": k < 0, "all": k >= 0, "alt": k % 2 == 0,
                        "random": rng.random(K) < 0.5, "first": k != 0, "last": k != K - 1,
                        "blocks": (k // 8) % 2 == 0}[pat]
                X = rng.standard_normal((K, N)).astype(dt)
                X[dead] = 0
                X[np.flatnonzero(dead)[:2]] = -0.0
                lengths = np.arange(71) if pat != "random" else rng.permutation(71)
                total += check(*make_w(lengths, K, dt, idx, dead), X, dt, idx, pat)
        for lengths in ([0] * 7 + [20_003] + [0] * 9, [5] * 3 + [9_001] + [1] * 20, [69],
                        [0] * 33, [16] * 16 + [17]):
            K, N = 257, 24
            X = rng.standard_normal((K, N)).astype(dt)
            dead = rng.random(K) < 0.5
            X[dead] = 0
            total += check(*make_w(np.array(lengths), K, dt, idx, dead), X, dt, idx,
                           f"rows{len(lengths)}")
print("ok", total, SIMD_PATH)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_remap_compaction_adversarial(simd):
    proc = run_on_simd(simd, _CODE, timeout=600)
    assert proc.returncode == 0 and proc.stdout.split()[::2] == ["ok", simd], (
        proc.stdout[-2000:] + proc.stderr[-2000:])


_THREADS0 = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm
rng = np.random.default_rng(3)
W = sps.random(300, 120, density=0.3, format="csr", dtype=np.float64, random_state=1)
X = rng.standard_normal((120, 16))
X[::2] = 0
alive = (X != 0).any(axis=1).astype(np.uint8)
X_live, remap = _spmm.live_rows(X, alive, int(alive.sum()), np.int32)
for n_threads in (0, -3):
    out = np.full((300, 16), 7.0)
    _spmm.csr_spmm(W.data, W.indices, W.indptr, X_live, out, remap, n_threads)
    assert np.allclose(out, W @ X), n_threads
    out = np.full((300, 16), 7.0)
    _spmm.dense_spmm(W.toarray(), X_live, out, alive, remap, n_threads)
    assert np.allclose(out, W @ X), n_threads
print("ok")
"""


def test_per_thread_buffers_with_no_thread_count():
    # csr_spmm (with x_remap) and dense_spmm size a buffer per thread by n_threads, while
    # OpenMP's num_threads(0) starts all its threads: a thread past the buffers wrote over
    # the heap (a segfault at exit, OMP_NUM_THREADS=2). A count below 1 runs one thread, as
    # csc_spmm_live and panel_spmm_live do.
    proc = run_in_child(_THREADS0, env=dict(os.environ, OMP_NUM_THREADS="2"), timeout=120)
    assert proc.returncode == 0 and proc.stdout.split() == ["ok"], (
        proc.returncode, proc.stdout[-2000:] + proc.stderr[-2000:])


def test_compaction_under_sanitizers(tmp_path):
    # tests/c/compact_asan.c: wsk_compact_csr_* on every path with exact-size buffers, under
    # AddressSanitizer and UBSan (a store past a row's end is a heap overflow it reports)
    import shutil
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on PATH")
    exe = tmp_path / "compact_asan"
    flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
             "-fno-omit-frame-pointer", "-fno-math-errno", "-Wno-psabi", f"-I{root / 'src'}"]
    built = subprocess.run([cc, *flags, str(root / "tests" / "c" / "compact_asan.c"), "-o",
                            str(exe), "-lm"], capture_output=True, text=True, timeout=300)
    if built.returncode and "sanitize" in built.stderr:
        pytest.skip(f"{cc} builds no sanitizers here: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    env.pop("LD_PRELOAD", None)
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    for path in ("baseline", "avx2", "avx512"):
        if _spmm.simd_available() & {"baseline": 1, "avx2": 2, "avx512": 4}[path]:
            assert f"{path} ok" in ran.stdout, ran.stdout
