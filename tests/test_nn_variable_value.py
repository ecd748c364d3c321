"""``Variable.value`` as keras.io's PyTorch guides use it (``v.value.grad``) and as NumPy
code used it before (the array): a view of the variable's array with ``.grad``, which the
ops take as the variable itself, as Keras's ``value`` on torch (a Parameter) is."""
import copy
import pickle

import numpy as np
import pytest

from wsekern import nn
from wsekern.nn import ops


def _guide_model(K):
    """keras.io's "Customizing what happens in fit() with PyTorch": its train_step, as
    written there, on a model of two Dense layers."""
    import torch

    class CustomModel(K.Model):
        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    inputs = K.Input(shape=(6,))
    hidden = K.layers.Dense(8, activation="tanh")(inputs)
    model = CustomModel(inputs, K.layers.Dense(1)(hidden))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def test_the_keras_io_torch_train_step_trains_as_keras(keras):
    from conftest import keras_twins
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)

    def run(K, model):
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return [np.asarray(w) for w in model.get_weights()]
    want, got = keras_twins(keras, _guide_model, run)
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_a_layer_computing_with_its_kernels_value_trains_it_as_keras(keras):
    """Keras's value carries the gradient (a torch Parameter): ``ops.matmul(x,
    self.w.value)`` in a call trains ``w``. Ours took it as a constant before."""
    import torch

    def layer(K):
        class Linear(K.layers.Layer):
            def build(self, input_shape):
                self.w = self.add_weight(shape=(input_shape[-1], 3), initializer="ones")

            def call(self, x):
                return K.ops.matmul(x, self.w.value) * 2.0
        return Linear()

    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    k = layer(keras)
    out = k(torch.tensor(x))
    (out * out).sum().backward()
    ours = layer(nn)
    y = ours(nn.ops.convert_to_tensor(x))
    nn.ops.sum(y * y).backward()
    np.testing.assert_allclose(ours.w.grad, k.w.value.grad.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(ours.w.value.grad, ours.w.grad)


def test_value_is_the_array_with_a_grad():
    v = nn.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="v")
    value = v.value
    assert isinstance(value, np.ndarray) and value.shape == (2, 3)
    np.testing.assert_array_equal(value, v.data)
    value[0, 0] = 7.0                          # a view: the write reaches the variable
    assert v.data[0, 0] == 7.0
    # what NumPy computes from it is a plain array (or a scalar), as before
    assert type(value * 2) is np.ndarray and type(np.exp(value)) is np.ndarray
    assert type(value.sum()) is np.float32 and type(np.asarray(value)) is np.ndarray
    for copied in (value.copy(), copy.copy(value), copy.deepcopy(value),
                   pickle.loads(pickle.dumps(value))):
        assert type(copied) is np.ndarray
        np.testing.assert_array_equal(copied, v.data)
    assert value.grad is None
    ops.sum(ops.multiply(v, v)).backward()
    np.testing.assert_array_equal(v.value.grad, 2 * v.data)
    v.value.grad = None                        # as Keras code zeroes a torch gradient
    assert v.grad is None
    with pytest.raises(AttributeError, match=r"part of a Variable's value.*\.grad"):
        value[0].grad  # noqa: B018


def test_a_reshaped_view_variables_value_has_its_gradient_in_its_shape():
    """MultiHeadAttention lists its projections' kernels as 3-D views of 2-D variables."""
    mha = nn.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    x = nn.ops.convert_to_tensor(np.ones((1, 4, 5), np.float32))
    nn.ops.sum(mha(x, x)).backward()
    for w in mha.trainable_weights:
        assert w.value.shape == w.shape and w.value.grad.shape == w.shape
        np.testing.assert_array_equal(w.value.grad, w.grad)
