"""The dispatcher's look at X (wsekern.kernels._scan_x): dead rows found exactly by reading
each row up to its first nonzero, X's density sampled, X read whole only when the sample
says the sparse-x path may apply, and X's finiteness read only before BLAS. Every
decision it feeds gives NumPy's / SciPy's answer, NaN and inf in X included, on every SIMD
path the CPU runs (a child process per forced path)."""
import os

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import random_csr, run_on_simd, tol

import wsekern
from wsekern import _spmm, kernels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scan_alive_flags_rows_and_counts_the_sample(dtype):
    rng = np.random.default_rng(5)
    for K, N in ((1, 1), (3, 40), (64, 33), (200, 17), (50, 300)):
        X = (rng.standard_normal((K, N)) * (rng.random((K, N)) < 0.3)).astype(dtype)
        X[rng.random(K) < 0.3] = 0
        X[rng.integers(K), -1] = np.nan          # a NaN alone in a row keeps it alive
        X[rng.integers(K)] = 0
        X[rng.integers(K), :] = -0.0             # minus zero is zero
        alive = np.empty(K, np.uint8)
        for per_row in (1, 2, 7, N, N + 5):
            kept, hits = _spmm.scan_alive(X, alive, per_row)
            want = (X != 0).any(1)
            np.testing.assert_array_equal(alive, want)
            assert kept == want.sum()
            if per_row >= N:
                assert hits == np.count_nonzero(X)
            else:
                assert 0 <= hits <= K * per_row
    assert _spmm.scan_alive(np.zeros((4, 0), dtype), np.empty(4, np.uint8), 3) == (0, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scan_alive_finds_a_lone_nonzero_at_every_position(dtype):
    """A row whose only nonzero (a value, NaN, inf or the smallest subnormal, of either
    sign) sits at any column, in the first 16, in the 64-wide chunks after them or in the
    tail, among zeros of either sign, is alive; a row of -0.0 is not (the scan ORs the
    values' bits and masks the sign off)."""
    tiny = np.finfo(dtype).smallest_subnormal
    for N in (1, 16, 17, 80, 81, 150):
        for special in (1.5, np.nan, -np.nan, -np.inf, tiny, -tiny):
            for background in (0.0, -0.0):
                X = np.full((N + 1, N), background, dtype)
                X[np.arange(N), np.arange(N)] = special
                X[N] = -0.0
                alive = np.empty(N + 1, np.uint8)
                kept, _ = _spmm.scan_alive(X, alive, 1)
                assert kept == N and alive[:N].all() and not alive[N], (N, special)


def test_the_sample_reads_spread_positions():
    """One nonzero column: the sample finds it in about 1 / N of the rows, not 0 or all."""
    X = np.zeros((1024, 64))
    X[:, 5] = 1.0
    kept, hits = _spmm.scan_alive(X, np.empty(1024, np.uint8), 1)
    assert kept == 1024 and 0 < hits < 64


def test_scan_alive_refuses_a_flag_buffer_shorter_than_x():
    with pytest.raises(ValueError, match="must hold 8 flags; received 7"):
        _spmm.scan_alive(np.ones((8, 4)), np.empty(7, np.uint8), 2)


def test_scan_x_reads_x_whole_only_when_it_may_be_sparse(monkeypatch):
    calls = []
    real = _spmm.scan_rows
    monkeypatch.setattr(_spmm, "scan_rows", lambda X, a: calls.append(1) or real(X, a))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1024, 256))
    X[::3] = 0
    alive = np.empty(1024, np.uint8)
    n_alive, finite, nnz = kernels._scan_x(X, alive)
    assert (n_alive, finite, nnz, calls) == ((X != 0).any(1).sum(), None, None, [])
    np.testing.assert_array_equal(alive, (X != 0).any(1))
    S = random_csr(1024, 256, 0.01, seed=1).toarray()
    S[7, 9] = np.inf
    assert kernels._scan_x(S, alive) == ((S != 0).any(1).sum(), False, np.count_nonzero(S))
    assert calls == [1]
    small = rng.standard_normal((30, 20))          # every position sampled: exact count
    assert kernels._scan_x(small, np.empty(30, np.uint8)) == (30, None, 600)


def _cases(dtype):
    """(name, W, X, expected path prefix): every route the scan's answers decide."""
    rng = np.random.default_rng(2)
    W99 = random_csr(256, 300, 0.01, dtype, seed=3)
    X = rng.standard_normal((300, 96)).astype(dtype)
    Xdead = X.copy()
    Xdead[rng.random(300) < 0.5] = 0
    Xsparse = random_csr(300, 96, 0.005, dtype, seed=4).toarray()
    Wd = rng.standard_normal((120, 300)).astype(dtype)
    return [("csr", W99, X, "csr"), ("csr-dead", W99, Xdead, "csr"),
            ("sparse-x", W99, Xsparse, "csr-sparse-x"),
            ("densified", random_csr(200, 300, 0.9, dtype, seed=5), X, "blas-densified"),
            ("blas", Wd, X, "blas"), ("blas-dead", Wd, Xdead, "blas-skip-rows")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_every_route_gives_the_reference_answer_with_nonfinite_x(dtype, bad):
    """inf/NaN in X: BLAS would multiply it by W's unstored zeros, so the routes that read
    X's finiteness late must still refuse BLAS; the others propagate it as SciPy does."""
    for name, W, X, path in _cases(dtype):
        X = X.copy()
        if bad is not None:
            X[3, 5] = bad            # row 3 is alive in every case (or becomes so)
        expected = (sps.csr_array(W) if isinstance(W, np.ndarray) else W) @ X.astype(
            np.float64)
        got = wsekern.spmm(W, X)
        got_path = wsekern.spmm_path(W, X)
        if bad is None:
            assert got_path.startswith(path), (name, got_path)
        else:
            assert not got_path.startswith("blas"), (name, got_path)
        assert got.dtype == dtype
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=name)
            np.testing.assert_array_equal(np.isinf(got), np.isinf(expected), err_msg=name)
        fin = np.isfinite(expected)
        np.testing.assert_allclose(got[fin], expected[fin], err_msg=name, **(
            tol(dtype) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-3)))


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_every_route_on_every_simd_path_in_a_child(simd):
    code = f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import numpy as np, scipy.sparse as sps
        import wsekern
        from test_spmm_scan import _cases
        assert wsekern.get_config()["simd"] == {simd!r}
        for dtype in (np.float32, np.float64):
            for name, W, X, path in _cases(dtype):
                assert wsekern.spmm_path(W, X).startswith(path), (name, wsekern.spmm_path(W, X))
                Wd = W if isinstance(W, np.ndarray) else W.toarray()
                np.testing.assert_allclose(wsekern.spmm(W, X), Wd.astype(np.float64) @ X,
                                           rtol=1e-4, atol=1e-3, err_msg=name)
                X = X.copy(); X[3, 5] = np.nan
                got = wsekern.spmm(W, X)
                ref = (sps.csr_array(W) if isinstance(W, np.ndarray) else W) @ X
                np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=name)
        print("ok")
    """
    done = run_on_simd(simd, code)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
