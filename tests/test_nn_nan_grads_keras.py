"""Values and gradients at NaN, +-inf, +-0 and the bounds of each piece, against Keras 3
on torch (the oracle): abs/sign (torch's sgn is 0 at NaN), clip (0 where clipped even for
a NaN upstream gradient) and the losses built on them, and the relu family, elu, selu,
celu, hard_silu, hard_tanh, sparse_sigmoid (which branch a NaN takes, as torch)."""
import numpy as np
import pytest

from wsekern.nn import activations, losses, ops
from wsekern.nn.tensor import Tensor, tsum

NAN, INF = np.nan, np.inf
X = [NAN, INF, -INF, 0.0, -0.0, -1.0, 1.0, -3.0, 3.0, 6.0, 0.5, -0.5, 7.0, 4.0]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")    # NaN and inf by design

# an upstream gradient that is NaN, inf or 1 at each element (what a product after the op
# with NaN or inf in it hands back)
UPSTREAM = np.array([NAN, INF, 1.0] * 4 + [NAN, 1.0], np.float32)


def _ours(fn, *xs, upstream=None):
    ts = [Tensor(np.array(x, np.float32), requires_grad=True) for x in xs]
    out = fn(*ts)
    tsum(out if upstream is None else out * Tensor(upstream)).backward()
    return np.asarray(out.data), [np.zeros(t.shape, np.float32) if t.grad is None
                                  else np.asarray(t.grad) for t in ts]     # sign: a constant


def _keras(fn, *xs, upstream=None):
    import torch
    ts = [torch.tensor(np.array(x, np.float32), requires_grad=True) for x in xs]
    out = fn(*ts)
    (out if upstream is None else out * torch.tensor(upstream)).sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def _same(fn_ours, fn_keras, *xs, upstream=None):
    got, grads = _ours(fn_ours, *xs, upstream=upstream)
    want, want_grads = _keras(fn_keras, *xs, upstream=upstream)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7, equal_nan=True)


OPS = ["abs", "absolute", "sign", "relu", "relu6", "elu", "selu", "celu", "leaky_relu",
       "hard_silu", "hard_tanh", "sparse_sigmoid", "hard_sigmoid"]


@pytest.mark.parametrize("name", OPS)
def test_ops_at_nan_inf_and_bounds_as_keras(keras, name):
    _same(getattr(ops, name), getattr(keras.ops, name), X)


@pytest.mark.parametrize("name", ["abs", "clip", "relu", "relu6", "hard_tanh"])
def test_a_nan_or_inf_upstream_gradient_where_the_op_is_flat_as_keras(keras, name):
    """0 where the op is flat or clipped (torch's where), NaN where it passes."""
    if name == "clip":
        mine, theirs = (lambda t: ops.clip(t, 0.0, 1.0)), (lambda t: keras.ops.clip(t, 0.0, 1.0))
    else:
        mine, theirs = getattr(ops, name), getattr(keras.ops, name)
    _same(mine, theirs, X, upstream=UPSTREAM)


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (-1.0, 6.0), (0.5, 0.5)])
def test_clip_as_keras(keras, bounds):
    _same(lambda t: ops.clip(t, *bounds), lambda t: keras.ops.clip(t, *bounds), X)


@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("max_value", [None, 6.0, 4.0])
@pytest.mark.parametrize("threshold", [0.0, 0.5, -1.0])
def test_relu_with_its_options_as_keras(keras, slope, max_value, threshold):
    _same(lambda t: activations.relu(t, slope, max_value, threshold),
          lambda t: keras.activations.relu(t, slope, max_value, threshold), X)


@pytest.mark.parametrize("name", ["relu", "relu6", "elu", "selu", "leaky_relu", "hard_silu",
                                  "hard_sigmoid"])
def test_activations_at_nan_inf_and_bounds_as_keras(keras, name):
    _same(getattr(activations, name), getattr(keras.activations, name), X)


@pytest.mark.parametrize("name", ["mean_absolute_error", "mean_absolute_percentage_error",
                                  "kl_divergence", "huber", "mean_squared_logarithmic_error"])
def test_losses_with_nan_and_inf_as_keras(keras, name):
    y_true = [[1.0, 1.0, -1.0, -1.0, 0.0, NAN, 0.5], [1.0, 0.0, -1.0, 1.0, 1.0, 1.0, INF]]
    y_pred = [[1.0, 0.5, -1.0, 2.0, NAN, 0.0, INF], [INF, 0.0, -1.0, 0.0, 1.0, NAN, -INF]]
    _same(getattr(losses, name), getattr(keras.losses, name), y_true, y_pred)
