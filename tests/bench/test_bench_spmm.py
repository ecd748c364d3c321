"""pytest-benchmark suite for spmm/sddmm (disabled by default; run with --benchmark-enable).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest tests/bench --benchmark-enable

Each benchmark checks its result, so with benchmarks disabled this is a plain test.
Peers (NumPy dense, scipy.sparse) sit in the same group, so the table compares them.
"""
import numpy as np
import pytest

import wsekern
from wsekern.bench import limit_threads
from wsekern.workloads import random_weight

CASES = [(1024, 1024, 256, 0.9), (1024, 1024, 256, 0.5), (4096, 4096, 64, 0.9)]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: "%dx%dx%d-s%.2f" % c)
def case(request):
    M, K, N, s = request.param
    W = random_weight(M, K, s)
    X = np.random.default_rng(1).standard_normal((K, N)).astype(np.float32)
    ref = W.toarray().astype(np.float64) @ X
    return W, wsekern.pack(W), X, ref


def _check(Y, ref):
    np.testing.assert_allclose(Y, ref, rtol=1e-4, atol=1e-3)


def test_spmm_wsekern(benchmark, case):
    W, P, X, ref = case
    benchmark.group = "spmm-%dx%dx%d" % (W.shape + (X.shape[1],))
    with limit_threads(1):
        _check(benchmark(wsekern.spmm, P, X, n_threads=1), ref)


def test_spmm_numpy_dense(benchmark, case):
    W, P, X, ref = case
    benchmark.group = "spmm-%dx%dx%d" % (W.shape + (X.shape[1],))
    Wd = W.toarray()
    with limit_threads(1):
        _check(benchmark(np.matmul, Wd, X), ref)


def test_spmm_scipy(benchmark, case):
    W, P, X, ref = case
    benchmark.group = "spmm-%dx%dx%d" % (W.shape + (X.shape[1],))
    _check(benchmark(W.__matmul__, X), ref)


def test_sddmm_wsekern(benchmark):
    W = wsekern.pack(random_weight(1024, 1024, 0.9))
    rng = np.random.default_rng(0)
    A = rng.standard_normal((1024, 128)).astype(np.float32)
    B = rng.standard_normal((1024, 128)).astype(np.float32)
    benchmark.group = "sddmm-1024x1024x128"
    G = benchmark(wsekern.sddmm, A, B, W, n_threads=1)
    mask = W.toarray() != 0
    np.testing.assert_allclose(G.toarray(), (A.astype(np.float64) @ B.T) * mask,
                               rtol=1e-4, atol=1e-3)
