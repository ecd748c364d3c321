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


# -- ops.nonzero and one-argument ops.where: Keras's (ndim, count) tensor --------------------
_INDEX_CASES = [np.bool_(True), np.bool_(False), np.float32(0), np.float32(2),
                np.array([np.nan, 0, 1.0]), np.array([[1 + 0j, 0j], [0j, 1j]]),
                np.zeros((2, 0, 3)), np.zeros((0,)), np.array([True, False]),
                np.array([[0, 1, 2], [3, 0, 0]], np.int8), np.array([-0.0, 0.0, 3.0])]


@pytest.mark.parametrize("name", ["nonzero", "where"])
def test_indices_are_one_tensor_as_keras(keras, name):
    """Before: a tuple of ndim int32 tensors for both (NumPy's form); Keras on torch gives
    one tensor of shape (ndim, count), int32 for nonzero and int64 for where, and its own
    shapes for 0-d input ((0, 1) or (0, 0) for nonzero, (1, count) for where)."""
    for x in _INDEX_CASES:
        want = keras.ops.convert_to_numpy(getattr(keras.ops, name)(x))
        got = getattr(ops, name)(x)
        assert isinstance(got, Tensor), (name, x)
        assert (got.shape, got.dtype) == (want.shape, want.dtype), (name, x)
        np.testing.assert_array_equal(got.data, want)


def test_indices_unpack_and_index_as_numpy():
    x = np.array([[0, 1, 2], [3, 0, 0]], np.float32)
    rows, cols = ops.where(x > 0)
    np.testing.assert_array_equal(rows.data, [0, 0, 1])
    np.testing.assert_array_equal(cols.data, [1, 2, 0])
    np.testing.assert_array_equal(x[tuple(ops.nonzero(x).data)], x[x != 0])


# -- i0, logaddexp and nextafter on complex input, as Keras on torch --------------------------
Z = np.array([1 + 2j, -3 + 0.5j, 0.25 - 1j, 2 + 0j, 40 + 3j, -40 - 3j], np.complex64)
W = np.array([0.5 + 0j, 2 - 1j, 0.25 - 1j, -2 + 5j, 1 + 1j, 39 + 2j], np.complex64)
_inf, _nan = np.inf, np.nan
EDGE_X = np.array([complex(_inf, 0), complex(-_inf, 0), complex(_inf, 1), complex(_inf, _inf),
                   complex(_nan, 0), complex(0, _nan), complex(-_inf, 2), 1 + 1j])
EDGE_Y = np.array([complex(_inf, 0), complex(-_inf, 3), complex(2, 1), complex(_inf, 0),
                   1 + 0j, 1 + 0j, complex(-_inf, 5), complex(-_inf, 0)])
_COMPLEX_CALLS = [
    ("logaddexp", (Z, W)), ("logaddexp", (Z.astype(np.complex128), W)),
    ("logaddexp", (Z, 1.0)), ("logaddexp", (Z, W.real.astype(np.float64))),
    ("logaddexp", (np.arange(6), Z)), ("logaddexp", (np.float32(1.0), 2j)),
    ("logaddexp", (EDGE_X, EDGE_Y)), ("logaddexp", (EDGE_Y, EDGE_X)),
    ("i0", (Z,)), ("i0", (Z.astype(np.complex128),)),
    ("i0", (np.array([0, 1, 2], np.int64),)), ("i0", (np.array([0, 1, 2], np.int32),)),
    ("i0", (np.array([True, False]),)), ("i0", (np.array([0.5, 3], np.float16),)),
    ("nextafter", (Z, W)), ("nextafter", (Z.astype(np.complex128), np.float32(0))),
    ("nextafter", (np.float64(1), W)),
]


@pytest.mark.parametrize("name,args", _COMPLEX_CALLS)
def test_complex_and_integer_input_as_keras(keras, name, args):
    """Before: ComplexInputError for complex input (ops._COMPLEX_NOT_YET), and i0 of int64
    was float32 (Keras: float64). Keras computes logaddexp in complex64 for any complex
    pair (torch's formula, its infinities and NaNs), and takes i0 and nextafter of the real
    part (torch's cast drops the imaginary part, with a warning: ours warns too)."""
    want = keras.ops.convert_to_numpy(getattr(keras.ops, name)(*args))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = getattr(ops, name)(*args)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-6, equal_nan=True)
    drops_imag = name != "logaddexp" and any(np.iscomplexobj(a) for a in args)
    assert drops_imag == any("imaginary part" in str(w.message) for w in caught)


def test_complex_input_with_a_gradient_is_refused_by_name():
    z = Tensor(Z.copy(), requires_grad=True)
    for fn in (lambda: ops.logaddexp(z, 1.0), lambda: ops.i0(z), lambda: ops.nextafter(z, 0.0)):
        with pytest.raises(NotImplementedError, match=r"ops\.(logaddexp|i0|nextafter).*complex"):
            fn()


def test_real_logaddexp_keeps_its_gradient():
    a = Tensor(np.array([0.5, -1.0], np.float32), requires_grad=True)
    tsum(ops.logaddexp(a, 0.25)).backward()
    np.testing.assert_allclose(a.grad, 1 / (1 + np.exp(0.25 - a.data)), rtol=1e-6)


# -- optimizer names: Keras numbers unnamed ones per process ----------------------------------
def _names(keras):
    keras.utils.clear_session()
    opts = keras.optimizers
    names = [o.name for o in (opts.Adam(), opts.Adam(), opts.SGD(), opts.Adam(name="adam"),
                              opts.RMSprop(), opts.AdamW(), opts.Adam.from_config({"name": "x"}),
                              opts.Adam())]
    m = keras.Sequential([keras.layers.Dense(2)])
    m.compile(optimizer="adam", loss="mse")
    m.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    names += [m.optimizer.name, m.optimizer.get_config()["name"], m.optimizer.variables[0].path]
    names.append(keras.layers.Dense(1).name)
    keras.utils.clear_session()
    return names + [keras.optimizers.Adam().name, keras.layers.Dense(1).name]


def test_unnamed_optimizers_are_numbered_as_keras(keras):
    """Before: every unnamed Adam was "adam" and SGD "SGD" (two optimizers' variables shared
    their paths), and there was no utils.clear_session. Keras names them by class,
    snake-cased, numbered per process in the table layers are named from (adam, adam_1,
    sgd, rm_sprop, adam_w), and clear_session starts the numbering again."""
    want = _names(keras)
    assert want[:8] == ["adam", "adam_1", "sgd", "adam", "rm_sprop", "adam_w", "x", "adam_2"]
    assert _names(nn) == want


def _model_names(keras):
    keras.utils.clear_session()
    names = []
    for _ in range(2):
        names.append(keras.Sequential().name)
        names.append(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]).name)
        i = keras.Input((3,))
        names.append(keras.Model(i, keras.layers.Dense(1)(i)).name)

        class MyModel(keras.Model):
            def call(self, x):
                return x
        names.append(MyModel().name)
        seq = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        names.append(keras.models.clone_model(seq).name)
        deferred = keras.Sequential([keras.layers.Dense(1)])
        deferred(np.ones((2, 3), np.float32))
        names.append(deferred.name)
    return names


def test_models_are_numbered_as_keras(keras):
    """Before: every Sequential was "sequential" and every functional model "functional";
    Keras numbers them as layers (and each build of a Sequential makes a functional model
    that takes a number: the first Model(inputs, outputs) after one is functional_1)."""
    want = _model_names(keras)
    assert want[:4] == ["sequential", "sequential_1", "functional_1", "my_model"]
    assert _model_names(nn) == want
