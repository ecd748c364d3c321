"""The fused exact GELU (src/_activations.pyx) against SciPy's erf, finite differences
and, where installed, torch."""
import numpy as np
import pytest
from scipy.special import erf

from wsekern.nn import activations
from wsekern.nn.tensor import Tensor


def gelu_reference(v):
    v = v.astype(np.float64)
    cdf = 0.5 * (1 + erf(v / np.sqrt(2)))
    return v * cdf, cdf + v * np.exp(-0.5 * v * v) / np.sqrt(2 * np.pi)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("shape", [(0,), (7,), (3, 5, 11), (2, 0, 4)])
def test_gelu_matches_erf_formula(dtype, tol, shape):
    v = (np.random.default_rng(0).standard_normal(shape) * 4).astype(dtype)
    x = Tensor(v, requires_grad=True)
    y = activations.gelu(x)
    assert y.dtype == dtype and y.shape == shape
    R = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    (y * Tensor(R)).sum().backward()
    out, d = gelu_reference(v)
    np.testing.assert_allclose(y.data, out, rtol=tol, atol=tol)
    np.testing.assert_allclose(x.grad, R * d, rtol=tol * 10, atol=tol * 10)


def test_gelu_gradient_by_finite_differences():
    v = np.random.default_rng(2).standard_normal(50) * 3
    x = Tensor(v, requires_grad=True)
    activations.gelu(x).sum().backward()
    num = (gelu_reference(v + 1e-6)[0] - gelu_reference(v - 1e-6)[0]) / 2e-6
    np.testing.assert_allclose(x.grad, num, rtol=1e-6, atol=1e-8)


def test_gelu_non_finite_and_strided_input():
    v = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 40.0, -40.0], dtype=np.float32)
    y = activations.gelu(Tensor(v)).data
    assert np.isnan(y[0]) and y[1] == np.inf and np.isnan(y[2])      # -inf * 0, as v * cdf
    np.testing.assert_array_equal(y[3:], [0, 0, 40, 0])
    s = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2] - 5    # not contiguous
    np.testing.assert_allclose(activations.gelu(Tensor(s)).data, gelu_reference(s)[0],
                               rtol=2e-6, atol=2e-6)


def test_gelu_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    v = (np.random.default_rng(3).standard_normal((64, 33)) * 3).astype(np.float32)
    x = Tensor(v, requires_grad=True)
    activations.gelu(x).sum().backward()
    vt = torch.from_numpy(v).requires_grad_()
    yt = torch.nn.functional.gelu(vt)
    yt.sum().backward()
    np.testing.assert_allclose(activations.gelu(Tensor(v)).data, yt.detach().numpy(),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x.grad, vt.grad.numpy(), rtol=1e-5, atol=1e-6)
