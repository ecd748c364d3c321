"""X with dead rows in column blocks: csr_spmm's ``x_rows`` copies X's live rows into each
block straight from X (no copy of the live rows first, _spmm.live_rows). Bit for bit the
kernel on the gathered live rows with the same remap and blocks, on every SIMD path, against
a float64 reference over the stored weights (an inf/NaN weight meeting a dead row gives NaN,
as in SciPy); the routes that take it (Python and the native entry) give the same bits; bad
arguments are refused."""
import os

import pytest
from conftest import assert_child_says, assert_refused_in_child, run_in_child, run_on_simd

# The child imports tests/dead_x_cases.py.
_CASES_PATH = f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n"

_SAME_CODE = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels
from wsekern.sparse import PackedSparse
from wsekern.sysinfo import get_config
from dead_x_cases import dead_x_operands

np.seterr(invalid="ignore", over="ignore")
rng = np.random.default_rng(5)
n = 0
for dt in (np.float32, np.float64):
    for idx in (np.int32, np.int64):
        for M, K, N, density, dead, form in (
                (64, 96, 64, 0.2, 0.5, "sorted"), (40, 200, 130, 0.1, 0.5, "unsorted"),
                (50, 80, 96, 0.3, 0.5, "dup"), (30, 64, 72, 0.3, 0.5, "nan-w"),
                (30, 64, 72, 0.3, 0.5, "nan-x"), (20, 50, 80, 0.4, 1.0, "sorted"),
                (20, 50, 80, 0.4, 0.0, "sorted"), (1, 70, 17, 0.2, 0.6, "sorted"),
                (33, 1, 40, 1.0, 0.0, "sorted"), (25, 40, 64, 0.3, 0.97, "nan-w")):
            data, indices, indptr, X, dead_rows = dead_x_operands(
                M, K, N, density, dead, form, dt, idx, rng, n)
            X[dead_rows[::3], :2] = -0.0
            if form == "nan-w":          # inf/NaN weights, some on dead rows
                hit = np.flatnonzero(np.isin(indices, dead_rows))[:3]
                data[hit] = [np.nan, np.inf, -np.inf][:len(hit)]
                data[::9] = np.nan
            if form == "nan-x":          # NaN/inf in live rows of X
                live = np.setdiff1d(np.arange(K), dead_rows)
                X[live[0], 0] = np.nan
                X[live[-1], -1] = np.inf
            alive = (X != 0).any(axis=1).astype(np.uint8)
            n_alive = int(alive.sum())
            X_live, remap = _spmm.live_rows(X, alive, n_alive, idx)
            remap2, rows = _spmm.live_map(alive, n_alive, idx)
            assert np.array_equal(remap, remap2) and rows.dtype == idx
            assert np.array_equal(rows, np.flatnonzero(alive))
            Wr = sps.csr_matrix((data.astype(np.float64), indices, indptr), shape=(M, K))
            r = Wr @ X.astype(np.float64)
            tol = 1e-4 if dt == np.float32 else 1e-12
            for nb in (1, 7, 16, N - 1):
                for threads in (1, 2):
                    want = np.full((M, N), 7, dt)
                    got = np.full((M, N), 7, dt)
                    _spmm.csr_spmm(data, indices, indptr, X_live, want, remap, threads, nb)
                    _spmm.csr_spmm(data, indices, indptr, X, got, remap, threads, nb,
                                   x_rows=rows)
                    assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (
                        dt, idx, form, nb, threads)
                    assert np.array_equal(np.isnan(got), np.isnan(r)), (dt, idx, form, nb)
                    scale = max(1, np.abs(r[np.isfinite(r)]).max(initial=0))
                    assert np.allclose(got, r, rtol=tol, atol=tol * scale, equal_nan=True)
                    n += 1

# The routes: X's columns in blocks (column_block patched to 16 columns); the Python route
# and the native entry take csr-skip-rows with x_rows and give the kernel's bits above.
g = kernels._GLOBALS
real_block = g["column_block"]
g["column_block"] = lambda rows, n, size, reuse=1.0: 16 if n > 16 else 0
try:
    taken = 0
    for dt in (np.float32, np.float64):
        W = sps.random(120, 300, density=0.2, format="csr", dtype=dt, random_state=3)
        X = rng.standard_normal((300, 200)).astype(dt)
        X[rng.permutation(300)[:200]] = 0
        alive = (X != 0).any(axis=1).astype(np.uint8)
        X_live, remap = _spmm.live_rows(X, alive, int(alive.sum()), W.indices.dtype)
        want = np.empty((120, 200), dt)
        _spmm.csr_spmm(W.data, W.indices, W.indptr, X_live, want, remap, 1, 16)
        P = PackedSparse(W.data, W.indices, W.indptr, W.shape)
        for A in (W, P):
            got, path = kernels._spmm_impl(A, X, False, None, 1)
            taken += path == "csr-skip-rows"
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (dt, path)
            nat = _spmm.csr_spmm_plain(A, X, False, None, 1, g)
            assert nat is not None and np.array_equal(nat.view(np.uint8), want.view(np.uint8))
    assert taken >= 2, taken
finally:
    g["column_block"] = real_block
print("ok", n, get_config()["simd"])
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_live_rows_copied_from_x_bit_for_bit(simd):
    proc = run_on_simd(simd, _CASES_PATH + _SAME_CODE, timeout=300)
    assert_child_says(proc, ["ok", "320", simd])


def test_x_rows_refused():
    assert_refused_in_child("""
import numpy as np, scipy.sparse as sps
from wsekern import _spmm
W = sps.random(20, 30, density=0.3, format="csr", dtype=np.float32, random_state=0)
X = np.ones((30, 40), np.float32)
out = np.empty((20, 40), np.float32)
alive = np.ones(30, np.uint8)
remap, rows = _spmm.live_map(alive, 30, np.int32)
bad_hi, bad_lo = rows.copy(), rows.copy()
bad_hi[3], bad_lo[5] = 30, -1
args = (W.data, W.indices, W.indptr, X, out)
cases = [
    lambda: _spmm.csr_spmm(*args, None, 1, 8, x_rows=rows),          # no remap
    lambda: _spmm.csr_spmm(*args, remap, 1, 0, x_rows=rows),         # not blocked
    lambda: _spmm.csr_spmm(*args, remap, 1, 40, x_rows=rows),        # one block
    lambda: _spmm.csr_spmm(*args, remap, 1, 8, x_rows=bad_hi),       # a row past X
    lambda: _spmm.csr_spmm(*args, remap, 1, 8, x_rows=bad_lo),       # a negative row
    lambda: _spmm.live_map(alive, 29, np.int32),                     # a wrong count
    lambda: _spmm.live_map(alive, 30, np.float32),                   # not an index type
]
""", 7, needles=("x_rows", "alive flags", "index_dtype"))


def test_x_remap_refused():
    """csr_spmm reads row x_remap[k] of X (with x_rows: of X's live rows and the zero row
    after them): a remap value past those rows, or negative, is refused, and the zero row
    itself (len(x_rows)) is accepted."""
    assert_refused_in_child("""
import numpy as np, scipy.sparse as sps
from wsekern import _spmm
W = sps.random(20, 30, density=0.3, format="csr", dtype=np.float32, random_state=0)
X = np.random.default_rng(0).standard_normal((30, 40)).astype(np.float32)
out = np.empty((20, 40), np.float32)
alive = np.ones(30, np.uint8)
alive[[2, 9]] = 0
remap, rows = _spmm.live_map(alive, 28, np.int32)
assert remap[2] == 28 == len(rows)        # a dead row meets the zero row
_spmm.csr_spmm(W.data, W.indices, W.indptr, X, out, remap, 1, 8, x_rows=rows)
Wd = W.toarray()
Wd[:, [2, 9]] = 0
np.testing.assert_allclose(out, Wd @ X, rtol=1e-5, atol=1e-5)
X_live, remap_live = _spmm.live_rows(X, alive, 28, np.int64)
args = (W.data, W.indices.astype(np.int64), W.indptr.astype(np.int64))
_spmm.csr_spmm(*args, X_live, out, remap_live)
np.testing.assert_allclose(out, Wd @ X, rtol=1e-5, atol=1e-5)
past, neg = remap.copy(), remap.copy()
past[4], neg[7] = 29, -1                  # 29: past the zero row (28)
past_live, neg_live = remap_live.copy(), remap_live.copy()
past_live[0], neg_live[29] = 29, -3       # X_live holds 29 rows (0 to 28)
cases = [
    lambda: _spmm.csr_spmm(W.data, W.indices, W.indptr, X, out, past, 1, 8, x_rows=rows),
    lambda: _spmm.csr_spmm(W.data, W.indices, W.indptr, X, out, neg, 1, 8, x_rows=rows),
    lambda: _spmm.csr_spmm(*args, X_live, out, past_live),
    lambda: _spmm.csr_spmm(*args, X_live, out, neg_live, 1, 8),
]
""", 4, needles=("x_remap",))


def test_checked_indices_past_the_remap_are_counted_not_read():
    """With x_remap the kernel reads x_remap[cols[p]]: with check_cols, a column index of
    W past the remap (or negative) is counted as a bad row and nothing is computed; it was
    read past the remap (a segfault for an index of 5 000 000 into a remap of 3)."""
    proc = run_in_child("""
import numpy as np, scipy.sparse as sps
from wsekern import _spmm
for it in (np.int32, np.int64):
    for cols in ([0, 5000000, 2], [0, -1, 2], [0, 3, 1]):
        data, indptr = np.ones(3), np.array([0, 3, 3, 3], it)
        for n_block, threads in ((4, 1), (2, 1), (2, 2), (0, 1)):
            out = np.full((3, 4), 7.0)
            n_bad = _spmm.csr_spmm(data, np.array(cols, it), indptr, np.ones((3, 4)), out,
                                   np.arange(3, dtype=it), threads, n_block, True)
            assert n_bad == 1, (it, cols, n_block, n_bad)
    # in range: computed as before (remap value 2 is the zero row: that nonzero drops)
    out = np.empty((3, 4))
    X = np.vstack([np.ones((2, 4)), np.zeros((1, 4))])
    assert _spmm.csr_spmm(np.ones(3), np.array([0, 1, 2], it), np.array([0, 3, 3, 3], it),
                          X, out, np.arange(3, dtype=it), 1, 2, True) == 0
    np.testing.assert_array_equal(out, [[2.0] * 4, [0.0] * 4, [0.0] * 4])
print("ok")
""")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
