"""s18 review_n2: data_offset refuses None (it read the address field of None's object: a
silent 0), and the fused live-map spmm (64 float32 columns) with the columns checked as
it compacts, over random rows, K at the live map's edges, bad columns anywhere and 1-2
threads: the bad rows counted, else bit for bit csr_spmm on W compacted in NumPy."""
import os

import numpy as np
import pytest
from conftest import run_in_child

from wsekern import _sparse_dense, _spmm


def test_data_offset_refuses_none_and_reads_odd_offsets():
    proc = run_in_child("from wsekern import _sparse_dense as s\n"
                        "try:\n    s.data_offset(None, 64)\n"
                        "except TypeError as e:\n    print('refused', 'None' in str(e))\n"
                        "else:\n    print('accepted')\n")
    assert proc.returncode == 0 and proc.stdout.split() == ["refused", "True"], (
        proc.stdout + proc.stderr)
    raw = np.zeros(200, np.uint8)
    for off in range(9):
        a = raw[off:]
        for align in (1, 3, 16, 64):
            assert _sparse_dense.data_offset(a, align) == a.ctypes.data % align
    with pytest.raises(ValueError, match="align must be > 0; received 0"):
        _sparse_dense.data_offset(raw, 0)


_FUSED = """
import numpy as np
from wsekern import _spmm
assert _spmm.livemap_fused()
rng = np.random.default_rng(11)
N, n = 64, 0
for trial in range(120):
    K = int(rng.choice([1, 2, 31, 32, 33, 100, 4095, 4096]))
    M = int(rng.integers(1, 60))
    lengths = rng.choice([0, 1, 2, 15, 16, 17, 31, 33, 200], M)
    X = rng.standard_normal((K, N)).astype(np.float32)
    alive = (rng.random(K) < rng.random()).astype(np.uint8)
    X[alive == 0] = 0
    n_alive = int(alive.sum())
    X_live, remap = _spmm.live_rows(X, alive, n_alive, np.int32)
    indices = rng.integers(0, K, int(lengths.sum())).astype(np.int32)
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    data = rng.standard_normal(len(indices)).astype(np.float32)
    data[rng.random(len(data)) < 0.02] = np.nan
    badrows = set()
    if len(indices) and trial % 3:
        for _ in range(int(rng.integers(1, 4))):
            p = int(rng.integers(0, len(indices)))
            indices[p] = int(rng.choice([K, -1, K + 4096, -2**31, 2**31 - 1]))
            badrows.add(int(np.searchsorted(indptr, p, side="right") - 1))
    inr = (indices >= 0) & (indices < K)
    rmp = np.zeros(len(indices), np.int32)
    rmp[inr] = remap[indices[inr]]
    keep = inr & ((rmp < n_alive) | ~np.isfinite(data))
    cnt = np.diff(np.r_[0, np.cumsum(keep)][indptr])
    pre = (data[keep].copy(), rmp[keep], np.r_[0, np.cumsum(cnt)].astype(np.int32))
    for threads in (1, 2):
        ref = np.full((M, N), 7, np.float32)
        got = np.full((M, N), 7, np.float32)
        _spmm.csr_spmm(*pre, X_live, ref, None, threads, 0)
        nbad = _spmm.csr_spmm(data, indices, indptr, X_live, got, remap, threads, 0, True)
        assert nbad == len(badrows), (trial, nbad, badrows)
        if not badrows:
            assert np.array_equal(got.view(np.uint32), ref.view(np.uint32)), trial
        n += 1
print("ok", n)
"""


def test_fused_livemap_checked_columns_fuzz():
    if not _spmm.livemap_fused():
        pytest.skip("this CPU or path does not run the fused live-map spmm")
    proc = run_in_child(_FUSED, env=dict(os.environ, WSEKERN_SIMD="avx512"), timeout=300)
    assert proc.returncode == 0 and proc.stdout.split() == ["ok", "240"], (
        proc.stdout[-2000:] + proc.stderr[-2000:])
