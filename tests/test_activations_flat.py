"""Where an activation is flat (relu below 0, relu6 above 6, hard_sigmoid outside (-3, 3),
hard_silu below -3) a NaN or inf gradient from above passes on as 0, as in PyTorch, not as
0 * NaN = NaN; elsewhere NaN still propagates."""
import numpy as np
import pytest

from wsekern.nn import activations
from wsekern.nn.tensor import Tensor

V = np.array([-5.0, -3.0, -1.0, 0.0, 0.5, 2.0, 4.0, 7.0])
UPSTREAM = np.array([np.nan, np.inf, -np.inf, np.nan, np.nan, np.inf, np.nan, np.nan])

# (name, call, derivative of the activation in closed form; NaN where it is not flat is kept)
CASES = [
    ("relu", activations.relu, lambda v: (v > 0) * 1.0),
    ("relu6", activations.relu6, lambda v: ((v > 0) & (v < 6)) * 1.0),
    ("relu_threshold", lambda x: activations.relu(x, threshold=1.0), lambda v: (v > 1) * 1.0),
    ("hard_sigmoid", activations.hard_sigmoid, lambda v: ((v > -3) & (v < 3)) / 6.0),
    ("hard_silu", activations.hard_silu,
     lambda v: np.where(v <= -3, 0.0, np.where(v >= 3, 1.0, v / 3 + 0.5))),
]


def _input_grad(call, v, upstream):
    x = Tensor(v, requires_grad=True)
    (call(x) * Tensor(upstream)).sum().backward()
    return x.grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, call, derivative", CASES, ids=[c[0] for c in CASES])
def test_flat_region_passes_zero_for_a_nonfinite_gradient(name, call, derivative, dtype):
    v = V.astype(dtype)
    grad = _input_grad(call, v, UPSTREAM.astype(dtype))
    d = derivative(V)
    expected = np.where(d == 0, 0.0, UPSTREAM * d)
    assert grad.dtype == dtype
    np.testing.assert_array_equal(grad, expected.astype(dtype))


@pytest.mark.parametrize("name, call, derivative", CASES, ids=[c[0] for c in CASES])
def test_flat_region_rule_matches_torch(name, call, derivative):
    torch = pytest.importorskip("torch")
    ops = {"relu": torch.relu, "relu6": torch.nn.functional.relu6,
           "relu_threshold": lambda t: torch.nn.functional.threshold(t, 1.0, 0.0),
           "hard_sigmoid": torch.nn.functional.hardsigmoid,
           "hard_silu": torch.nn.functional.hardswish}
    # finite points away from the kinks, where the two definitions agree
    v = np.array([-5.0, -4.0, -1.0, 0.5, 2.0, 4.0, 7.0])
    up = np.array([np.nan, np.inf, np.nan, np.nan, np.inf, np.nan, np.nan])
    t = torch.tensor(v, requires_grad=True)
    (ops[name](t) * torch.tensor(up)).sum().backward()
    np.testing.assert_array_equal(_input_grad(call, v, up), t.grad.numpy())
