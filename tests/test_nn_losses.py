"""Keras 3's losses: NumPy closed forms, finite-difference gradients, reductions and sample
weights, custom losses; and Keras itself where installed."""
import numpy as np
import pytest
from test_nn_ops import check_grad, keras_or_none

from wsekern.nn import losses, ops
from wsekern.nn.tensor import Tensor

rng = np.random.default_rng(0)
YT = rng.uniform(0.1, 1.0, (4, 3))
YP = rng.uniform(0.1, 1.0, (4, 3))
SIGNS = np.where(rng.uniform(size=(4, 3)) > 0.5, 1.0, -1.0)
LOGITS = rng.standard_normal((4, 3))
ONEHOT = np.eye(3)[[0, 2, 1, 2]]

REF = {
    "mse": (YT, YP, lambda t, p: ((p - t) ** 2).mean(-1)),
    "mae": (YT, YP, lambda t, p: np.abs(p - t).mean(-1)),
    "mape": (YT, YP, lambda t, p: 100 * np.abs((t - p) / t).mean(-1)),
    "msle": (YT, YP, lambda t, p: ((np.log1p(p) - np.log1p(t)) ** 2).mean(-1)),
    "huber": (YT * 3, YP, lambda t, p: np.where(np.abs(p - t) <= 1, 0.5 * (p - t) ** 2,
                                                 np.abs(p - t) - 0.5).mean(-1)),
    "log_cosh": (YT, YP * 3, lambda t, p: np.log(np.cosh(p - t)).mean(-1)),
    "kl_divergence": (YT, YP, lambda t, p: (t * np.log(t / p)).sum(-1)),
    "poisson": (YT, YP, lambda t, p: (p - t * np.log(p + 1e-7)).mean(-1)),
    "hinge": (SIGNS, LOGITS, lambda t, p: np.maximum(1 - t * p, 0).mean(-1)),
    "squared_hinge": (SIGNS, LOGITS, lambda t, p: (np.maximum(1 - t * p, 0) ** 2).mean(-1)),
    "categorical_hinge": (ONEHOT, LOGITS, lambda t, p: np.maximum(
        (p * (1 - t)).max(-1) - (p * t).sum(-1) + 1, 0)),
    "cosine_similarity": (YT, LOGITS, lambda t, p: -(t * p).sum(-1) / (
        np.linalg.norm(t, axis=-1) * np.linalg.norm(p, axis=-1))),
    "binary_crossentropy": ((YT > 0.5) * 1.0, YP * 0.9, lambda t, p: -(
        t * np.log(p) + (1 - t) * np.log(1 - p)).mean(-1)),
    "categorical_crossentropy": (ONEHOT, YP / YP.sum(-1, keepdims=True), lambda t, p: -(
        t * np.log(p)).sum(-1)),
}


@pytest.mark.parametrize("name", sorted(REF))
def test_per_sample_value_reduction_and_gradient(name):
    t, p, ref = REF[name]
    fn = getattr(losses, name)
    np.testing.assert_allclose(fn(t, Tensor(p)).data, ref(t, p), rtol=1e-6)
    loss = losses.as_loss(name)
    np.testing.assert_allclose(float(loss(t, Tensor(p)).data), ref(t, p).mean(), rtol=1e-6)
    check_grad(lambda q: loss(t, q), p, rtol=1e-4, atol=1e-7)


def test_hinge_converts_zero_one_labels():
    t01 = (SIGNS > 0) * 1.0
    np.testing.assert_allclose(losses.hinge(t01, Tensor(LOGITS)).data,
                               losses.hinge(SIGNS, Tensor(LOGITS)).data)


def test_huber_delta_and_label_smoothing_configs_round_trip():
    h = losses.Huber(delta=0.5, reduction="sum", name="h")
    t, p, _ = REF["huber"]
    d = p - t
    expect = np.where(np.abs(d) <= 0.5, 0.5 * d ** 2, 0.5 * np.abs(d) - 0.125).mean(-1).sum()
    np.testing.assert_allclose(float(h(t, Tensor(p)).data), expect, rtol=1e-6)
    back = losses.deserialize(losses.serialize(h))
    assert (back.delta, back.reduction, back.name) == (0.5, "sum", "h")
    cce = losses.CategoricalCrossentropy(label_smoothing=0.1)
    smooth = ONEHOT * 0.9 + 0.1 / 3
    q = YP / YP.sum(-1, keepdims=True)
    np.testing.assert_allclose(float(cce(ONEHOT, Tensor(q)).data),
                               -(smooth * np.log(q)).sum(-1).mean(), rtol=1e-6)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight",
                                       "none"])
def test_reductions_with_sample_weight(reduction):
    sw = np.array([1.0, 0.0, 2.0, 0.5])
    per = ((YP - YT) ** 2).mean(-1)
    loss = losses.MeanSquaredError(reduction=reduction)
    got = loss(YT, Tensor(YP), sample_weight=sw).data
    expect = {"sum_over_batch_size": (per * sw).sum() / 4, "sum": (per * sw).sum(),
              "mean_with_sample_weight": (per * sw).sum() / sw.sum(), "none": per * sw}
    np.testing.assert_allclose(got, expect[reduction])
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.MeanSquaredError(reduction="avg")


def test_sparse_labels_shapes_and_ignore_class():
    y = np.array([0, 2, 1, 2])
    scce = losses.SparseCategoricalCrossentropy(from_logits=True)
    ref = -ops.log_softmax(LOGITS).data[np.arange(4), y].mean()
    assert float(scce(y, Tensor(LOGITS)).data) == pytest.approx(ref)
    assert float(scce(y[:, None], Tensor(LOGITS)).data) == pytest.approx(ref)
    ig = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1)
    keep = y != 1
    per = -ops.log_softmax(LOGITS).data[np.arange(4), y] * keep
    # Keras averages over the labels kept (its mask), not over all four
    assert float(ig(y, Tensor(LOGITS)).data) == pytest.approx(per.sum() / keep.sum())


def test_custom_function_returning_per_sample_values_is_averaged():
    def my_mse(y_true, y_pred):
        return ops.mean(ops.square(y_pred - y_true), axis=-1)
    loss = losses.as_loss(my_mse)
    assert isinstance(loss, losses.Loss) and loss.name == "my_mse"
    assert float(loss(YT, Tensor(YP)).data) == pytest.approx(((YP - YT) ** 2).mean())
    check_grad(lambda q: loss(YT, q), YP)


def test_custom_loss_subclass():
    class Scaled(losses.Loss):
        def __init__(self, k=2.0, **kwargs):
            super().__init__(**kwargs)
            self.k = k

        def call(self, y_true, y_pred):
            return ops.mean(ops.abs(y_pred - y_true), axis=-1) * self.k
    s = Scaled(name="scaled", reduction="sum")
    assert s.name == "scaled"
    assert float(s(YT, Tensor(YP)).data) == pytest.approx(2 * np.abs(YP - YT).mean(-1).sum())


def test_unknown_loss_lists_the_names():
    with pytest.raises(ValueError, match="'mape'"):
        losses.get("mean_cubed_error")


keras = keras_or_none()


@pytest.mark.skipif(keras is None, reason="keras with the torch backend is not installed")
@pytest.mark.parametrize("name", sorted(REF))
def test_against_keras(name):
    t, p, _ = REF[name]
    ours = losses.get(name)(t.astype(np.float32), Tensor(p.astype(np.float32))).data
    theirs = keras.ops.convert_to_numpy(keras.losses.get(name)(
        keras.ops.convert_to_tensor(t.astype(np.float32)),
        keras.ops.convert_to_tensor(p.astype(np.float32))))
    assert ours.shape == theirs.shape             # get(name) is the per-sample function
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-7)
