"""Finite-difference gradient checks for every layer and loss of wsekern.nn."""
import numpy as np
import pytest

from wsekern import nn
from wsekern.nn import layers as L
from wsekern.nn import losses
from wsekern.nn.tensor import Tensor

EPS = 1e-6


def numeric_grad(f, arr):
    g = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + EPS
        up = f()
        arr[idx] = old - EPS
        down = f()
        arr[idx] = old
        g[idx] = (up - down) / (2 * EPS)
    return g


def check_layer(layer, x, training=False, rtol=1e-5, atol=1e-6):
    """d/d(input) and d/d(each trainable weight) of sum(layer(x) * R)."""
    nn.utils.set_random_seed(1)
    out = layer(Tensor(x), training=training)
    for w in layer.trainable_weights:
        if not w.data.any():      # zero biases would put ReLU kinks exactly at 0
            w.data[...] = np.random.default_rng(3).uniform(0.1, 0.3, w.shape)
    R = np.random.default_rng(2).standard_normal(out.shape)

    def f():
        return float((layer(Tensor(x), training=training).data * R).sum())
    xt = Tensor(x, requires_grad=True)
    y = layer(xt, training=training)
    for w in layer.trainable_weights:
        w.grad = None
    (y * R).sum().backward()
    np.testing.assert_allclose(xt.grad, numeric_grad(f, x), rtol=rtol, atol=atol)
    for w in layer.trainable_weights:
        expected = numeric_grad(f, w.data)
        mask = getattr(layer, "weight_mask", None)
        if mask is not None and w is layer.kernel:
            # Pruned weights get no gradient: they are never stored or updated.
            np.testing.assert_array_equal(w.grad[~mask], 0)
            expected = np.where(mask, expected, 0)
        np.testing.assert_allclose(w.grad, expected, rtol=rtol, atol=atol, err_msg=w.name)


def _x(*shape, seed=0, sparse=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    if sparse:
        x[np.abs(x) < 0.6] = 0
    return x


@pytest.mark.parametrize("sparsity", [0.0, 0.7])
@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "gelu", "softmax"])
def test_dense(sparsity, activation):
    layer = L.Dense(5, activation=activation, sparsity=sparsity, dtype="float64")
    check_layer(layer, _x(4, 7, sparse=True))


def test_dense_on_rank3_inputs():
    check_layer(L.Dense(3, dtype="float64"), _x(2, 3, 4))


@pytest.mark.parametrize("kwargs", [dict(padding="valid"), dict(padding="same"),
                                    dict(padding="same", strides=2),
                                    dict(padding="valid", dilation_rate=2),
                                    dict(padding="same", sparsity=0.6),
                                    dict(padding="valid", groups=2, activation="relu")])
def test_conv2d(kwargs):
    layer = L.Conv2D(4, 3, dtype="float64", **kwargs)
    check_layer(layer, _x(2, 7, 6, 4, sparse=True))


@pytest.mark.parametrize("cls", [L.MaxPooling2D, L.AveragePooling2D])
@pytest.mark.parametrize("kwargs", [dict(), dict(pool_size=3, strides=2, padding="same"),
                                    dict(pool_size=(2, 3), strides=1)])
def test_pooling(cls, kwargs):
    check_layer(cls(dtype="float64", **kwargs), _x(2, 7, 5, 3))


@pytest.mark.parametrize("layer", [L.GlobalAveragePooling2D(), L.Flatten(), L.Reshape((15, 2)),
                                   L.Activation("gelu"), L.Dropout(0.5)])
def test_shape_and_activation_layers(layer):
    check_layer(layer, _x(2, 5, 3, 2))


def test_dropout_in_training_scales_the_kept_units():
    layer = L.Dropout(0.25, seed=3)
    x = np.ones((200, 50))
    y = layer(Tensor(x), training=True).data
    kept = y != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    np.testing.assert_array_equal(layer(Tensor(x), training=False).data, x)


@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization(training):
    layer = L.BatchNormalization(dtype="float64")
    x = _x(6, 3, 4)
    layer(Tensor(x))                  # build
    layer.gamma.data[...] = [0.5, 2.0, -1.0, 1.5]
    layer.beta.data[...] = [0.1, -0.2, 0.3, 0.0]
    layer.moving_mean.data[...] = 0.3
    layer.moving_variance.data[...] = 2.0
    before = layer.moving_mean.data.copy()

    check_layer(layer, x, training=training, rtol=1e-4, atol=1e-6)
    if training:
        assert not np.allclose(layer.moving_mean.data, before)
    mean = x.reshape(-1, 4).mean(axis=0) if training else 0.3
    var = x.reshape(-1, 4).var(axis=0) if training else 2.0
    expect = (x - mean) / np.sqrt(var + 1e-3) * layer.gamma.data + layer.beta.data
    np.testing.assert_allclose(layer(Tensor(x), training=training).data, expect, rtol=1e-10)


def test_layer_normalization():
    layer = L.LayerNormalization(dtype="float64")
    check_layer(layer, _x(3, 4, 6), rtol=1e-4)


@pytest.mark.parametrize("loss, target, from_logits", [
    ("mse", "regression", False),
    ("binary_crossentropy", "binary", False),
    ("binary_crossentropy", "binary", True),
    ("categorical_crossentropy", "onehot", False),
    ("categorical_crossentropy", "onehot", True),
    ("sparse_categorical_crossentropy", "labels", False),
    ("sparse_categorical_crossentropy", "labels", True),
])
def test_losses(loss, target, from_logits):
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((5, 4))
    if target in ("binary",) and not from_logits:
        pred = 1 / (1 + np.exp(-raw))
    elif target in ("onehot", "labels") and not from_logits:
        pred = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    else:
        pred = raw
    y = {"regression": rng.standard_normal((5, 4)), "binary": (rng.random((5, 4)) < 0.5) * 1.0,
         "onehot": np.eye(4)[rng.integers(0, 4, 5)], "labels": rng.integers(0, 4, 5)}[target]
    fn = losses.as_loss(loss)
    fn.from_logits = from_logits

    def f():
        return float(fn(y, Tensor(pred)).data)
    p = Tensor(pred, requires_grad=True)
    fn(y, p).backward()
    np.testing.assert_allclose(p.grad, numeric_grad(f, pred), rtol=1e-5, atol=1e-7)


def test_losses_match_closed_forms():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = np.array([0, 2])
    got = float(losses.as_loss("sparse_categorical_crossentropy")(y, Tensor(p)).data)
    assert got == pytest.approx(-(np.log(0.7) + np.log(0.8)) / 2)
    got = float(losses.as_loss("mse")(np.zeros((2, 3)), Tensor(p)).data)
    assert got == pytest.approx((p ** 2).mean())
