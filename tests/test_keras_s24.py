"""Session 24's Keras differences, each against real Keras 3 on torch where installed:
a loss differentiates in its target when a model made it (keras.io's knowledge
distillation trains the teacher through KLDivergence's y_true), ``compute_loss`` is called
as Keras calls it, ``ops.nonzero`` / one-argument ``ops.where`` give Keras's (ndim, n)
tensor, ``i0`` / ``logaddexp`` / ``nextafter`` take complex input as Keras does, and
unnamed optimizers are numbered per process as Keras numbers them."""
import warnings

import numpy as np
import pytest

from wsekern import nn
from wsekern.nn import losses as L
from wsekern.nn import ops
from wsekern.nn.tensor import Tensor, tsum

rng = np.random.default_rng(0)
P = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
T = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
DIST = (T / T.sum(1, keepdims=True)).astype(np.float32)         # rows of probabilities
BINARY = (T > 0.5).astype(np.float32)

_TARGET_LOSSES = [
    ("mean_squared_error", T, {}), ("mean_absolute_error", T, {}),
    ("mean_absolute_percentage_error", T, {}), ("mean_squared_logarithmic_error", T, {}),
    ("huber", T, {}), ("log_cosh", T, {}), ("kl_divergence", DIST, {}), ("poisson", T, {}),
    ("hinge", T, {}), ("hinge", BINARY, {}), ("squared_hinge", BINARY, {}),
    ("categorical_hinge", DIST, {}), ("cosine_similarity", T, {}),
    ("binary_crossentropy", T, {}), ("binary_crossentropy", T, {"from_logits": True}),
    ("binary_crossentropy", T, {"label_smoothing": 0.2}),
    ("categorical_crossentropy", DIST, {}),
    ("categorical_crossentropy", DIST, {"from_logits": True, "label_smoothing": 0.1}),
]


@pytest.mark.parametrize("name,target,kw", _TARGET_LOSSES)
def test_loss_differentiates_in_a_target_as_keras(keras, name, target, kw):
    """A target that carries a gradient (a teacher's softmax, a discriminator's output)
    gets d loss / d y_true, as Keras on torch gives it. Before: none for any loss (the
    target was copied out of the graph), so keras.io's distiller left its teacher as it
    was while Keras trains it."""
    import torch
    t = torch.tensor(target, requires_grad=True)
    getattr(keras.losses, name)(t, torch.tensor(P), **kw).sum().backward()
    ours = Tensor(target.copy(), requires_grad=True)
    y_pred = Tensor(P.copy(), requires_grad=True)
    tsum(getattr(L, name)(ours, y_pred, **kw)).backward()
    assert ours.grad is not None, f"{name}: no gradient reached y_true"
    np.testing.assert_allclose(ours.grad, t.grad.numpy(), rtol=2e-5, atol=1e-6)
    assert y_pred.grad is not None


def test_loss_of_plain_targets_is_unchanged():
    # the common case (labels as arrays) keeps the target out of the graph
    y_pred = Tensor(P.copy(), requires_grad=True)
    out = L.kl_divergence(DIST, y_pred)
    assert out._parents and all(p.requires_grad for p in out._parents)
    ref = np.sum(np.clip(DIST, 1e-7, 1) * np.log(np.clip(DIST, 1e-7, 1) / P), axis=-1)
    np.testing.assert_allclose(out.data, ref, rtol=1e-6)


def _recording_models(K):
    """Two subclassed models recording how fit and evaluate call their compute_loss: one
    written for Keras < 3.3 (``allow_empty``, no ``training``), one taking ``training``
    under other parameter names (Keras passes x, y, y_pred, sample_weight by position)."""
    calls = []

    class Old(K.Model):
        def __init__(self):
            super().__init__()
            self.dense = K.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                         allow_empty=False):
            calls.append(("old", allow_empty))
            return K.ops.mean(K.ops.square(y_pred - y))

    class New(Old):
        def compute_loss(self, inputs, targets, outputs, weights, training=True):
            calls.append(("new", training))
            return K.ops.mean(K.ops.square(outputs - targets))

    return Old, New, calls


def test_compute_loss_called_as_keras_calls_it(keras):
    x = np.linspace(0, 1, 8, dtype=np.float32).reshape(4, 2)
    y = x.sum(1, keepdims=True)
    out = []
    for K in (keras, nn):
        Old, New, calls = _recording_models(K)
        losses = []
        for cls in (Old, New):
            keras.utils.set_random_seed(0)
            m = cls()
            m.compile(optimizer="sgd")
            losses.append(m.fit(x, y, batch_size=2, epochs=1, verbose=0).history["loss"])
            losses.append(m.evaluate(x, y, verbose=0))
        out.append((calls, losses))
    (kcalls, klosses), (calls, _) = out
    assert calls == kcalls == [("old", False)] * 3 + [("new", True)] * 2 + [("new", False)]
