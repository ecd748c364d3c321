"""Gradients at exact ties and NaNs against Keras 3 on torch: maximum/minimum split the
gradient evenly at a tie and give it whole to both operands where either is NaN (torch's
rule), and so do the ops and losses built on them (max/min with ``initial``, the hinge
losses at 1 - y * p == 0, MAPE and MSLE at a value of exactly epsilon); clip passes it at
its bounds, relu and abs give none at 0. Forward values too (NaN propagates).
Elementwise ops compared exactly, losses within float32 rounding."""
import numpy as np
import pytest

from wsekern.nn import losses, ops
from wsekern.nn.tensor import Tensor, tsum

NAN = np.nan
A = [1.0, 2.0, 3.0, NAN, 1.0, NAN, -0.0, 5.0]
B = [1.0, 1.0, 4.0, 1.0, NAN, NAN, 0.0, 5.0]


def _ours(fn, *xs):
    ts = [Tensor(np.array(x, np.float32), requires_grad=True) for x in xs]
    out = fn(*ts)
    tsum(out).backward()
    return out.data, [t.grad for t in ts]


def _keras(fn, *xs):
    import torch
    ts = [torch.tensor(np.array(x, np.float32), requires_grad=True) for x in xs]
    out = fn(*ts)
    out.sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def _check(keras_fn, our_fn, *xs, rtol=0.0):
    """Values and gradients equal (within ``rtol``: a loss's float32 sums in another
    order; a tie's gradient is off by a factor of 2, not a rounding)."""
    want, want_grads = _keras(keras_fn, *xs)
    got, grads = _ours(our_fn, *xs)
    np.testing.assert_allclose(got, want, rtol=rtol)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=rtol)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_and_minimum_split_ties_and_pass_nan_as_keras(keras, name):
    _check(getattr(keras.ops, name), getattr(ops, name), A, B)
    # a constant operand, on either side, and broadcasting (a row against a column)
    for c in (1.0, 0.0):
        _check(lambda x, c=c: getattr(keras.ops, name)(x, c),
               lambda x, c=c: getattr(ops, name)(x, c), [0.0, 1.0, 2.0])
        _check(lambda x, c=c: getattr(keras.ops, name)(c, x),
               lambda x, c=c: getattr(ops, name)(c, x), [0.0, 1.0, 2.0])
    _check(getattr(keras.ops, name), getattr(ops, name), [[1.0, 2.0, 3.0]], [[1.0], [2.0]])


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_with_initial_split_at_the_reduced_tie_as_keras(keras, name):
    x = [[1.0, 0.5, 1.0], [0.0, 2.0, -1.0]]
    for initial in (1.0, 0.5, 0.0, -1.0, 2.0):
        for axis in (None, 1):
            _check(lambda t, i=initial, a=axis: getattr(keras.ops, name)(t, axis=a, initial=i),
                   lambda t, i=initial, a=axis: getattr(ops, name)(t, axis=a, initial=i), x)


def test_clip_relu_and_abs_at_their_kinks_as_keras(keras):
    x = [-1.0, 0.0, 0.5, 1.0, 2.0]
    _check(lambda t: keras.ops.clip(t, 0.0, 1.0), lambda t: ops.clip(t, 0.0, 1.0), x + [NAN])
    # (at NaN, torch's relu passes the gradient and its abs gives 0; ours give 0 and NaN)
    _check(keras.ops.relu, ops.relu, x)
    _check(keras.ops.abs, ops.abs, x)


@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
def test_hinge_losses_at_the_tie_as_keras(keras, name):
    """1 - y * p == 0 at (1, 1) and (-1, -1): the gradient in y_pred and y_true both."""
    y, p = [[1.0, 1.0, -1.0, -1.0]], [[1.0, 0.5, -1.0, 2.0]]
    _check(getattr(keras.losses, name), getattr(losses, name), y, p, rtol=1e-6)


def test_categorical_hinge_at_the_tie_as_keras(keras):
    _check(keras.losses.categorical_hinge, losses.categorical_hinge,
           [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], [[0.5, 1.5, 0.25], [1.0, 0.5, 0.0]], rtol=1e-6)


@pytest.mark.parametrize("name", ["mean_absolute_percentage_error",
                                  "mean_squared_logarithmic_error"])
def test_mape_and_msle_at_epsilon_as_keras(keras, name):
    eps = float(np.float32(1e-7))
    _check(getattr(keras.losses, name), getattr(losses, name),
           [[eps, 1.0, 0.5]], [[0.5, 2.0, eps]], rtol=1e-6)
