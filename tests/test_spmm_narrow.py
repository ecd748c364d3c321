"""spmm with X narrower than one vector of the SIMD path (issue 19: N = 1..15): the narrow
kernel on every path against SciPy in float64, the native route that takes it (1-D X
included), its decisions, and an index out of range refused without a read outside X."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sps

from wsekern import _spmm, kernels
from wsekern.costs import cost_table
from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available


@pytest.fixture(params=simd_available())
def path(request):
    _spmm.simd_init(SIMD_BITS[request.param])
    yield request.param
    _spmm.simd_init(SIMD_BITS[SIMD_PATH])


def _reference(W, X):
    """SciPy's product in float64: only stored weights are multiplied, duplicates summed."""
    W64 = sps.csr_array((W.data.astype(np.float64), W.indices, W.indptr), shape=W.shape)
    return W64 @ np.asarray(X, dtype=np.float64)


def _hard_csr(dtype, itype, M=37, K=53, seed=0):
    """A CSR with empty rows, unsorted and duplicate column indices (not canonical)."""
    rng = np.random.default_rng(seed)
    rows, data, cols = [], [], []
    for i in range(M):
        n = 0 if i % 5 == 0 else int(rng.integers(1, 12))
        c = rng.integers(0, K, size=n)
        if n > 2:
            c[1] = c[0]                      # a duplicate
        cols.append(c[::-1])                 # unsorted
        data.append(rng.standard_normal(n))
        rows.append(n)
    indptr = np.concatenate([[0], np.cumsum(rows)]).astype(itype)
    W = sps.csr_array((np.concatenate(data).astype(dtype), np.concatenate(cols).astype(itype),
                       indptr), shape=(M, K))
    assert not W.has_canonical_format
    return W


def _close(got, ref, dtype):
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("itype", [np.int32, np.int64])
def test_narrow_widths_on_every_path_against_scipy(path, dtype, itype):
    W = _hard_csr(dtype, itype)
    rng = np.random.default_rng(1)
    width = _spmm.narrow_width(dtype)
    assert width >= 1
    for N in range(0, width + 3):           # N = 0, every narrow width and past it
        X = rng.standard_normal((W.shape[1], N)).astype(dtype)
        X[rng.random(W.shape[1]) < 0.3] = 0                # dead rows of X
        for op in (X, np.asfortranarray(X)):
            _close(kernels.spmm(W, op, n_threads=1), _reference(W, X), dtype)
            _close(kernels.spmm(W, op, n_threads=2), _reference(W, X), dtype)
        # non-contiguous: every other column of a wider X
        Xw = rng.standard_normal((W.shape[1], 2 * N)).astype(dtype)
        _close(kernels.spmm(W, Xw[:, ::2]), _reference(W, Xw[:, ::2]), dtype)
    x = rng.standard_normal(W.shape[1]).astype(dtype)       # 1-D X: a 1-D result
    got = kernels.spmm(W, x, n_threads=1)
    assert got.shape == (W.shape[0],)
    _close(got, _reference(W, x), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_narrow_nan_and_inf_propagate_as_in_scipy(path, dtype):
    W = _hard_csr(dtype, np.int32, seed=2)
    W.data[3] = np.nan
    W.data[7] = np.inf
    rng = np.random.default_rng(3)
    for N in (1, 2, _spmm.narrow_width(dtype)):
        X = rng.standard_normal((W.shape[1], N)).astype(dtype)
        X[rng.random(W.shape[1]) < 0.4] = 0        # inf * 0 = NaN where W's inf is stored
        X[5, 0] = np.inf
        X[9, -1] = np.nan
        got = kernels.spmm(W, X, n_threads=1)
        ref = _reference(W, X)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(ref))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(ref))
        fin = np.isfinite(ref)
        _close(got[fin], ref[fin], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("itype", [np.int32, np.int64])
def test_narrow_native_route_equals_the_python_route_bit_for_bit(path, dtype, itype):
    """The native entry and kernels' Python route run the same kernel at these widths."""
    W = sps.random(200, 300, density=0.1, format="csr", dtype=dtype, random_state=4)
    W.indices, W.indptr = W.indices.astype(itype), W.indptr.astype(itype)
    rng = np.random.default_rng(5)
    for N in range(1, _spmm.narrow_width(dtype) + 1):
        X = rng.standard_normal((300, N)).astype(dtype)
        native = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
        assert native is not None, N
        python, route = kernels._spmm_impl(W, X, False, None, 1)
        assert route == "csr"
        np.testing.assert_array_equal(native, python)
        _close(native, _reference(W, X), dtype)


def test_vector_x_is_taken_natively_with_a_vector_result():
    """A 1-D X (SciPy's matvec) no longer falls back to the Python route."""
    W = sps.random(64, 80, density=0.3, format="csr", dtype=np.float64, random_state=6)
    x = np.random.default_rng(7).standard_normal(80)
    got = _spmm.csr_spmm_plain(W, x, False, None, 1, kernels._GLOBALS)
    assert got is not None and got.shape == (64,)
    np.testing.assert_allclose(got, W @ x, rtol=1e-12, atol=1e-12)
    # a 1-D X of another dtype or not contiguous is still declined
    assert _spmm.csr_spmm_plain(W, x[::2].copy()[:40], False, None, 1,
                                kernels._GLOBALS) is None           # 40 rows: a mismatch
    assert _spmm.csr_spmm_plain(W, np.repeat(x, 2)[::2], False, None, 1,
                                kernels._GLOBALS) is None


def test_narrow_route_decisions_follow_the_cost_model_and_x_density():
    W = sps.random(100, 120, density=0.2, format="csr", dtype=np.float32, random_state=8)
    rng = np.random.default_rng(9)
    X = rng.standard_normal((120, 2)).astype(np.float32)
    g = dict(kernels._GLOBALS)
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, g) is not None
    # X sparse enough for the sparse-x route: declined (the Python route decides)
    Xs = np.zeros_like(X)
    Xs[3, 1] = 1.0
    assert _spmm.csr_spmm_plain(W, Xs, False, None, 1, g) is None
    assert kernels.spmm_path(W, Xs) == "csr-sparse-x"
    # a cost table where compacting pays even at N = 2: the narrow shortcut does not apply,
    # and the full native route (which scans X's dead rows) gives kernels' answer
    import dataclasses
    cheap = dataclasses.replace(cost_table(), csr_compact=1e-6)
    g["cost_table"] = lambda: cheap
    Xd = X.copy()
    Xd[::2] = 0                                      # half of X's rows dead
    got = _spmm.csr_spmm_plain(W, Xd, False, None, 1, g)
    assert got is not None
    np.testing.assert_allclose(got, _reference(W, Xd), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("itype", ["int32", "int64"])
@pytest.mark.parametrize("bad", [-1, 120, 2**31 - 1])
def test_narrow_index_out_of_range_is_refused_in_a_child(itype, bad):
    """An unchecked column index past X (or negative) in a SciPy CSR: the narrow kernel
    reads nothing outside X and the call raises the range error, on every path."""
    code = textwrap.dedent(f"""
        import numpy as np, scipy.sparse as sps, wsekern
        from wsekern import _spmm
        W = sps.random(50, 120, density=0.2, format="csr", dtype=np.float32, random_state=1)
        W.indices = W.indices.astype("{itype}"); W.indptr = W.indptr.astype("{itype}")
        W.indices[17] = {bad}
        for N in (1, 3):
            try:
                wsekern.spmm(W, np.ones((120, N), np.float32), n_threads=1)
            except ValueError as e:
                assert "out of range" in str(e) and "{bad}" in str(e), e
            else:
                raise SystemExit("accepted")
            out = np.zeros((50, N), np.float32)
            rows = _spmm.csr_spmm(W.data, W.indices, W.indptr, np.ones((120, N), np.float32),
                                  out, None, 1, 0, True)
            assert rows == 1, rows
        print("ok")
    """)
    for simd in simd_available():
        env = {**__import__("os").environ, "WSEKERN_SIMD": simd}
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, timeout=120)
        assert run.returncode == 0 and "ok" in run.stdout, (simd, run.stdout, run.stderr)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("itype", [np.int32, np.int64])
def test_narrow_kernel_gives_the_rows_kernels_bits_within_its_width(path, dtype, itype):
    """Up to narrow_width the narrow kernel (X whole) and the rows kernel (X's rows through
    an all-live remap) give the same bits, so the width (_spmm._NARROW) moves no product:
    X with dead rows (the remap) sums as X without them."""
    W = _hard_csr(dtype, itype, M=41, K=29, seed=11)
    K = W.shape[1]
    rng = np.random.default_rng(12)
    remap = np.arange(K, dtype=itype)
    for N in range(1, _spmm.narrow_width(dtype) + 1):
        X = rng.standard_normal((K, N)).astype(dtype)
        whole = np.empty((W.shape[0], N), dtype)
        assert _spmm.csr_spmm(W.data, W.indices, W.indptr, X, whole) == 0
        remapped = np.empty_like(whole)
        Xz = np.vstack([X, np.zeros((1, N), dtype)])              # the zero row last
        assert _spmm.csr_spmm(W.data, W.indices, W.indptr, Xz, remapped, remap) == 0
        np.testing.assert_array_equal(whole.view(np.uint8), remapped.view(np.uint8),
                                      err_msg=f"N = {N}")
        _close(whole, _reference(W, X), dtype)


def test_narrow_widths_follow_the_path_and_refuse_what_the_kernel_does_not_take(path):
    # the narrow kernel takes 1 to 15 columns (wsk_narrow.h): a width past it would not run
    assert all(1 <= w <= 15 for pair in _spmm._NARROW.values() for w in pair)
    widths = _spmm.narrow_widths()
    assert widths == _spmm._NARROW[path]
    assert (_spmm.narrow_width(np.float32), _spmm.narrow_width(np.float64)) == widths
    try:
        assert _spmm.narrow_widths(15, 1) == widths
        assert (_spmm.narrow_width(np.float32), _spmm.narrow_width(np.float64)) == (15, 1)
        for bad in (0, 16, 2.0, "3", True):
            with pytest.raises(ValueError, match=r"narrow width f64 must be an int from 1 to 15"):
                _spmm.narrow_widths(f64=bad)
        assert _spmm.narrow_widths() == (15, 1)           # nothing set by a refusal
    finally:
        _spmm.narrow_widths(*widths)
