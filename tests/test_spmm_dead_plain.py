"""X with dead (all-zero) rows through the native plain-CSR entry: _spmm.csr_spmm_plain now
takes kernels' csr-skip-rows route itself (X scanned once, the live rows gathered by
_spmm.live_rows, the nonzeros meeting dead rows dropped). Bit for bit the Python route's
array on every SIMD path, against a float64 reference over the stored weights only (an
inf/NaN weight meeting a dead row gives NaN, as in SciPy), and the same refusals. The same
weights packed take the entry too, its column path (csc-skip-rows) included."""
import os

import numpy as np
import pytest
from conftest import assert_child_says, run_in_child, run_on_simd

from wsekern import _spmm

# The child imports tests/dead_x_cases.py.
_CASES_PATH = f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n"

# Runs in a child per forced SIMD path. For each case: the plain entry's array (or None),
# the Python route's (_spmm_impl, which spmm runs when the entry declines), and spmm's
# must be the same bits; the route taken and the entry's answer are counted.
_SAME_CODE = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels
from wsekern.sparse import PackedSparse
from wsekern.sysinfo import get_config
from dead_x_cases import dead_x_operands

def ref(W, X):          # SciPy in float64: sums over the stored weights only
    return W.astype(np.float64) @ X.astype(np.float64)

np.seterr(invalid="ignore", over="ignore")
rng = np.random.default_rng(11)
taken = {}
n = 0
for dt in (np.float32, np.float64):
    for idx in (np.int32, np.int64):
        for M, K, N, density, dead, form in (
                (64, 96, 64, 0.2, 0.5, "sorted"), (40, 200, 128, 0.1, 0.5, "unsorted"),
                (50, 80, 96, 0.3, 0.5, "dup"), (30, 64, 72, 0.3, 0.5, "nan-w"),
                (30, 64, 72, 0.3, 0.5, "nan-x"), (20, 50, 80, 0.4, 1.0, "sorted"),
                (20, 50, 80, 0.4, 0.0, "sorted"), (33, 70, 16, 0.2, 0.6, "sorted"),
                (200, 300, 300, 0.1, 0.5, "sorted"), (25, 40, 64, 0.3, 0.97, "nan-w")):
            data, indices, indptr, X, dead_rows = dead_x_operands(
                M, K, N, density, dead, form, dt, idx, rng, n)
            W = sps.csr_matrix((data, indices, indptr), shape=(M, K))
            W.indices, W.indptr = indices, indptr      # SciPy narrows int64 that fit
            got = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
            want, path = kernels._spmm_impl(W, X, False, None, 1)
            taken[(path, got is not None)] = taken.get((path, got is not None), 0) + 1
            if got is not None:
                assert got.dtype == want.dtype == dt and got.shape == (M, N)
                assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (
                    dt, idx, form, path)
            whole = kernels.spmm(W, X, n_threads=1)
            assert np.array_equal(whole.view(np.uint8), want.view(np.uint8)), (dt, idx, form)
            tol = 1e-4 if dt == np.float32 else 1e-12
            r = ref(W, X)
            assert np.array_equal(np.isnan(whole), np.isnan(r)), (dt, idx, form, path)
            scale = max(1, np.abs(r[np.isfinite(r)]).max(initial=0))
            assert np.allclose(whole, r, rtol=tol, atol=tol * scale, equal_nan=True), form
            n += 1
            # The same weights packed (duplicates summed, sorted; this index type), before
            # and after its transpose (the column path's CSC) is cached: the Python route's
            # bits (declined before, where that route builds the transpose to decide).
            S = W.copy()
            S.sum_duplicates()
            P = PackedSparse(S.data, S.indices.astype(idx), S.indptr.astype(idx), (M, K))
            r = ref(S, X)
            # Last, W as the transpose of its cached transpose (transpose=True; the column
            # path's CSC is then that transpose itself).
            for step in range(3):
                if step:
                    P.transpose()
                A, tr = (P.transpose(), True) if step == 2 else (P, False)
                got = _spmm.csr_spmm_plain(A, X, tr, None, 1, kernels._GLOBALS)
                want, path = kernels._spmm_impl(A, X, tr, None, 1)
                key = ("packed", path, got is not None)
                taken[key] = taken.get(key, 0) + 1
                if got is not None:
                    assert got.shape == (M, N)
                    assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (
                        dt, idx, form, path, tr)
                whole = kernels.spmm(A, X, transpose=tr, n_threads=1)
                assert np.array_equal(whole.view(np.uint8), want.view(np.uint8))
                # n_threads None: taken only below a second thread's work, the same bits
                got = _spmm.csr_spmm_plain(A, X, tr, None, None, kernels._GLOBALS)
                want = kernels._spmm_impl(A, X, tr, None, None)[0]
                assert got is None or np.array_equal(got.view(np.uint8), want.view(np.uint8))
                assert np.array_equal(np.isnan(whole), np.isnan(r)), (dt, idx, form, path)
                assert np.allclose(whole, r, rtol=tol, atol=tol * scale, equal_nan=True), form
assert taken.get(("csr-skip-rows", True), 0) >= 8, taken
assert taken.get(("packed", "csr-skip-rows", True), 0) >= 8, taken
assert taken.get(("packed", "csc-skip-rows", True), 0) >= 8, taken
assert taken.get(("packed", "csc-skip-rows", False), 0) >= 4, taken
print("ok", n, get_config()["simd"])
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_plain_entry_takes_dead_rows_bit_for_bit(simd):
    proc = run_on_simd(simd, _CASES_PATH + _SAME_CODE, timeout=300)
    assert_child_says(proc, ["ok", "40", simd])


# An index out of range (too big, negative) in a W whose X has dead rows: the entry must not
# read remap out of bounds (so it declines before gathering) and spmm raises the Python
# route's own message, naming the index and its position.
_REFUSALS = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels
W = sps.random(40, 64, density=0.3, format="csr", random_state=0, dtype=np.float32)
X = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32)
X[::2] = 0
assert kernels._spmm_impl(W, X, False, None, 1)[1] == "csr-skip-rows"
msgs = []
for bad in (64, -1, 2**31 - 1):
    V = W.copy()
    V.indices = V.indices.copy()
    V.indices[5] = bad
    assert _spmm.csr_spmm_plain(V, X, False, None, 1, kernels._GLOBALS) is None
    try:
        kernels.spmm(V, X, n_threads=1)
    except ValueError as e:
        # the Python route's message, naming the index, where it is and the valid range
        assert f"column index {bad} at position 5" in str(e) and "0 to 63" in str(e), e
        msgs.append(str(e))
print("refused", len(msgs))
"""


def test_dead_rows_index_out_of_range_refused_as_the_python_route():
    proc = run_in_child(_REFUSALS)
    assert proc.returncode == 0 and proc.stdout.strip() == "refused 3", (
        proc.stdout[-2000:] + proc.stderr[-2000:])


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("idx", [np.int32, np.int64])
def test_live_rows_matches_numpy(dt, idx):
    rng = np.random.default_rng(5)
    for K, N, frac in ((50, 7, 0.5), (1, 3, 1.0), (1, 3, 0.0), (30, 1, 0.2), (9, 0, 0.5)):
        X = rng.standard_normal((K, N)).astype(dt)
        alive = (rng.random(K) < frac).astype(np.uint8)
        n_alive = int(alive.sum())
        X_live, remap = _spmm.live_rows(X, alive, n_alive, idx)
        live = alive.view(bool)
        want = np.vstack([X[live], np.zeros((1, N), dt)])
        assert X_live.dtype == dt and X_live.shape == (n_alive + 1, N)
        assert np.array_equal(X_live, want)
        want_remap = np.full(K, n_alive, dtype=idx)
        want_remap[live] = np.arange(n_alive)
        assert remap.dtype == idx and np.array_equal(remap, want_remap)


def test_live_rows_refuses_inconsistent_arguments():
    X = np.ones((4, 3))
    alive = np.array([1, 0, 1, 0], np.uint8)
    with pytest.raises(ValueError, match="n_alive"):
        _spmm.live_rows(X, alive, 3, np.int32)
    with pytest.raises(ValueError, match="flags"):
        _spmm.live_rows(X, alive[:3], 2, np.int32)
    with pytest.raises(ValueError, match="int32 or int64"):
        _spmm.live_rows(X, alive, 2, np.int16)
