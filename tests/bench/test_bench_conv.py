"""pytest-benchmark suite for conv2d (the issue's case), with im2col + BLAS and torch as peers.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest tests/bench --benchmark-enable
"""
import numpy as np
import pytest

import wsekern
from wsekern.bench import limit_threads
from wsekern.conv import ConvGeometry, im2col

SPARSITY = [(0.0, 0.0), (0.0, 0.8), (0.9, 0.0), (0.9, 0.8)]


@pytest.fixture(scope="module", params=SPARSITY, ids=lambda p: "w%.1f-x%.1f" % p)
def case(request):
    ws, xs = request.param
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 64, 32, 32))
         * (rng.random((8, 64, 32, 32)) >= xs)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3))
         * (rng.random((64, 64, 3, 3)) >= ws)).astype(np.float32)
    ref = wsekern.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1)
    return x, w, ref



def test_conv_wsekern(benchmark, case):
    x, w, ref = case
    benchmark.group = "conv"
    with limit_threads(1):
        y = benchmark(wsekern.conv2d, x, w, padding=1, n_threads=1)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-3)


def test_conv_im2col_numpy(benchmark, case):
    x, w, ref = case
    benchmark.group = "conv"
    g = ConvGeometry.of(x.shape, w.shape, 1, 1, 1, 1)
    with limit_threads(1):
        y = benchmark(lambda: np.matmul(w.reshape(1, 64, -1), im2col(x, g)))
    np.testing.assert_allclose(y.reshape(64, 8, 32, 32).transpose(1, 0, 2, 3), ref,
                               rtol=1e-4, atol=1e-3)


def test_conv_torch(benchmark, case):
    torch = pytest.importorskip("torch")
    x, w, ref = case
    benchmark.group = "conv"
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    with limit_threads(1), torch.no_grad():
        y = benchmark(torch.nn.functional.conv2d, xt, wt, padding=1)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-4, atol=1e-3)
