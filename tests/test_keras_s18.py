"""s18 keras18: what s17's review left of "Keras 3 programs run with only the import
changed", each checked against real Keras 3 (torch backend) from the same weights. Each test
failed on main c6e5e7b unless it says otherwise."""
import re

import numpy as np
import pytest
from conftest import keras_twins

from wsekern import nn

RNG = np.random.default_rng(18)
X = RNG.standard_normal((48, 6)).astype(np.float32)
Y1 = RNG.standard_normal((48, 1)).astype(np.float32)
Y2 = RNG.standard_normal((48, 2)).astype(np.float32)
SW = np.linspace(0.1, 2.0, 48).astype(np.float32)


def _structure(model):
    """model.metrics as (class, name), the container's metrics by name, metrics_names."""
    return ([(type(m).__name__, m.name) for m in model.metrics],
            [[s.name for s in m.metrics] for m in model.metrics if hasattr(m, "metrics")],
            list(model.metrics_names))


def _two_outputs(K):
    inputs = K.Input((6,))
    return K.Model(inputs, [K.layers.Dense(1, name="a")(inputs),
                            K.layers.Dense(2, name="b")(inputs)])


def _two_named_outputs(K):
    inputs = K.Input((6,))
    return K.Model(inputs, {"a": K.layers.Dense(1, name="a")(inputs),
                            "b": K.layers.Dense(2, name="b")(inputs)})


# 1. keras.io's custom train_step updates every entry of model.metrics with the sample
# weights. Keras's model.metrics is [loss tracker, CompileMetrics], and the container keeps a
# metrics= entry unweighted; ours listed the metric objects, so the weights reached them (mae
# 1.735 where Keras logs 1.650).
@pytest.mark.parametrize("outputs", [1, 2])
def test_a_custom_train_step_over_model_metrics_weights_only_weighted_metrics(keras, outputs):
    def build(K):
        class CustomModel(K.Model):
            def train_step(self, data):
                x, y, sample_weight = data
                self.zero_grad()
                y_pred = self(x, training=True)
                loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
                loss.backward()
                weights = list(self.trainable_weights)
                grads = [v.value.grad if K is keras else v.grad for v in weights]
                if K is keras:
                    import torch
                    with torch.no_grad():
                        self.optimizer.apply(grads, weights)
                else:
                    self.optimizer.apply(grads, weights)
                for metric in self.metrics:
                    if metric.name == "loss":
                        metric.update_state(loss)
                    elif metric.name.endswith("_loss"):    # outputs' trackers: left at 0
                        continue
                    else:
                        metric.update_state(y, y_pred, sample_weight=sample_weight)
                return {m.name: m.result() for m in self.metrics}

        inputs = K.Input((6,))
        if outputs == 1:
            return CustomModel(inputs, K.layers.Dense(1)(inputs))
        return CustomModel(inputs, [K.layers.Dense(1, name="a")(inputs),
                                    K.layers.Dense(2, name="b")(inputs)])

    def run(K, model):
        per = (lambda m: m) if outputs == 1 else (lambda m: [m, m])
        model.compile(optimizer=K.optimizers.SGD(0.05), loss="mse", metrics=per(["mae"]),
                      weighted_metrics=per(["mse"]))
        before = _structure(model)
        y = Y1 if outputs == 1 else [Y1, Y2]
        history = model.fit(X, y, sample_weight=SW, epochs=2, batch_size=16, shuffle=False,
                            verbose=0)
        return before, _structure(model), history.history

    (k_before, k_after, k_hist), (w_before, w_after, w_hist) = keras_twins(keras, build, run)
    assert w_before == k_before and w_after == k_after
    assert list(w_hist) == list(k_hist)            # the same keys in the same order
    for key in k_hist:
        np.testing.assert_allclose(w_hist[key], k_hist[key], rtol=1e-5, err_msg=key)


# The logs and lists Keras gives around the container: metrics_names is
# [m.name for m in model.metrics] ('compile_metrics' for the compiled ones, each output's loss
# tracker once built), the lists follow _flatten_metrics_in_order, the dicts and History are
# sorted by key (pythonify_logs). Ours named each metric in metrics_names and kept the dicts
# in loss-then-metrics order.
@pytest.mark.parametrize("kind", ["single", "two", "one-loss-of-two", "none"])
def test_metrics_names_lists_and_logs_are_keras(keras, kind):
    def build(K):
        if kind == "single" or kind == "none":
            inputs = K.Input((6,))
            return K.Model(inputs, K.layers.Dense(1)(inputs))
        return _two_outputs(K)

    def run(K, model):
        compile_ = {
            "single": dict(loss="mse", metrics=["mse", "mae"], weighted_metrics=["mae"]),
            "two": dict(loss=["mse", "mae"], metrics=[["mae"], ["mse", "mae"]],
                        weighted_metrics=[["mse"], []]),
            "one-loss-of-two": dict(loss=["mse", None], metrics={"b": ["mae"]}),
            "none": dict(loss="mse"),
        }[kind]
        model.compile(optimizer=K.optimizers.SGD(0.05), **compile_)
        y = Y1 if kind in ("single", "none") else [Y1, Y2]
        out = [_structure(model)]
        out.append(model.train_on_batch(X, y, sample_weight=SW))
        out.append(_structure(model))
        out.append(model.train_on_batch(X, y, return_dict=True))
        out.append(model.test_on_batch(X, y))
        out.append(model.evaluate(X, y, verbose=0, return_dict=True))
        out.append(model.evaluate(X, y, verbose=0))
        out.append(model.fit(X, y, validation_data=(X, y), epochs=1, shuffle=False,
                             verbose=0).history)
        return out

    theirs, ours = keras_twins(keras, build, run)
    for i, (t, o) in enumerate(zip(theirs, ours)):
        if isinstance(t, tuple):
            assert o == t, i
        elif isinstance(t, dict):
            assert list(o) == list(t), i
            np.testing.assert_allclose([np.ravel(o[k]) for k in t],
                                       [np.ravel(t[k]) for k in t], rtol=1e-5, err_msg=str(i))
        else:
            np.testing.assert_allclose(np.ravel(o), np.ravel(t), rtol=1e-5, err_msg=str(i))


def _refusal(call):
    """The message of the ValueError ``call()`` raises ('' when it returns)."""
    try:
        call()
    except ValueError as e:
        return str(e)
    return ""


# 2. fit/train_on_batch(class_weight=, sample_weight=) together: ours multiplied them, Keras
# refuses the pair.
def test_class_weight_with_sample_weight_is_refused_as_in_keras(keras):
    labels = RNG.integers(0, 3, 48)
    cw = {0: 1.0, 1: 2.0, 2: 0.5}
    for K in (keras, nn):
        inputs = K.Input((6,))
        model = K.Model(inputs, K.layers.Dense(3, activation="softmax")(inputs))
        model.compile("sgd", "sparse_categorical_crossentropy")
        for call in (lambda: model.fit(X, labels, sample_weight=SW, class_weight=cw, verbose=0),
                     lambda: model.fit(X, labels, sample_weight=SW, class_weight=cw,
                                       validation_split=0.25, verbose=0),
                     lambda: model.train_on_batch(X, labels, sample_weight=SW,
                                                  class_weight=cw)):
            message = _refusal(call)
            assert "class_weight" in message and "sample_weight" in message, (K, message)
    # either alone still trains, and class_weight alone is Keras's
    (k_hist, w_hist) = keras_twins(keras, lambda K: _softmax(K), lambda K, m: (
        m.compile("sgd", "sparse_categorical_crossentropy"),
        m.fit(X, labels, class_weight=cw, batch_size=16, epochs=2, shuffle=False,
              verbose=0).history["loss"])[1])
    np.testing.assert_allclose(w_hist, k_hist, rtol=1e-5)


def _softmax(K):
    inputs = K.Input((6,))
    return K.Model(inputs, K.layers.Dense(3, activation="softmax")(inputs))


# A per-output sample_weight dict must name every output y gives (None leaves one
# unweighted): ours left a missing output unweighted in silence, Keras refuses. One shared
# array on a multi-output model holds one weight per sample: ours failed with numpy's bare
# "operands could not be broadcast".
@pytest.mark.parametrize("case", ["partial", "shared-2d"])
def test_a_partial_per_output_weight_dict_is_refused_as_in_keras(keras, case):
    y = {"a": Y1, "b": Y2}
    sw = {"partial": {"a": SW}, "shared-2d": np.ones((48, 2), np.float32)}[case]
    want = {"partial": r"no entry for the outputs \['b'\].*None for an output left unweighted",
            "shared-2d": r"one weight per sample.*received shape \(48, 2\)"}[case]
    for K in (keras, nn):
        model = _two_named_outputs(K)
        model.compile("sgd", {"a": "mse", "b": "mse"})
        calls = [lambda: model.fit(X, y, sample_weight=sw, verbose=0),
                 lambda: model.evaluate(X, y, sample_weight=sw, verbose=0),
                 lambda: model.fit(X, y, validation_data=(X, y, sw), verbose=0)]
        if K is nn:         # Keras fails here too, by a KeyError or torch's size mismatch
            calls += [lambda: model.train_on_batch(X, y, sample_weight=sw),
                      lambda: model.test_on_batch(X, y, sample_weight=sw)]
        for call in calls:
            message = _refusal(call)
            assert message, (K, case)
            if K is nn:
                assert re.search(want, message, re.S), message


# What Keras takes beside those refusals gives Keras's numbers: a dict with None for an
# unweighted output, one (samples, 1) array shared by both outputs (a guard: passes on the
# old code too).
@pytest.mark.parametrize("case", ["none-entry", "shared-column"])
def test_the_per_output_weights_keras_takes_give_its_losses(keras, case):
    y = {"a": Y1, "b": Y2}
    sw = {"none-entry": {"a": SW, "b": None}, "shared-column": SW[:, None]}[case]

    def run(K, model):
        model.compile(K.optimizers.SGD(0.05), {"a": "mse", "b": "mae"})
        hist = model.fit(X, y, sample_weight=sw, batch_size=16, epochs=2, shuffle=False,
                         verbose=0).history
        return hist, model.evaluate(X, y, sample_weight=sw, verbose=0, return_dict=True)
    (k_hist, k_eval), (w_hist, w_eval) = keras_twins(keras, _two_named_outputs, run)
    assert list(w_hist) == list(k_hist) and list(w_eval) == list(k_eval)
    for key in k_hist:
        np.testing.assert_allclose(w_hist[key], k_hist[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(list(w_eval.values()), list(k_eval.values()), rtol=1e-5)


def _penalized(K):
    """Activity, add_loss and weight penalties at three depths: a functional model holding
    a Sequential of two penalized layers and a MultiHeadAttention (its activity penalty is
    on its four projections)."""
    class AddLoss(K.layers.Layer):
        def call(self, t):
            self.add_loss(K.ops.mean(t) * 0.0 + 0.125)
            return t

    reg = K.regularizers
    inner = K.Sequential([
        K.Input((3, 5)),
        K.layers.Dense(4, kernel_regularizer=reg.L2(0.3), activity_regularizer=reg.L1(0.02),
                       name="in_a"),
        K.layers.Dense(4, bias_regularizer=reg.L1(0.4), bias_initializer="ones",
                       activity_regularizer=reg.L2(0.05), name="in_b")], name="inner")
    inputs = K.Input((3, 6))
    h = K.layers.Dense(5, kernel_regularizer=reg.L2(0.1), bias_regularizer=reg.L1(0.05),
                       activity_regularizer=reg.L2(0.01), name="d1")(inputs)
    h = AddLoss(name="al")(h)
    h = inner(h)
    h = K.layers.MultiHeadAttention(2, 3, kernel_regularizer=reg.L2(0.07),
                                    activity_regularizer=reg.L1(0.01), name="mha")(h, h)
    return K.Model(inputs, K.layers.Dense(2, kernel_regularizer=reg.L1(0.2),
                                          activity_regularizer=reg.L1(0.03), name="d3")(h))


def _values(losses):
    return [float(np.asarray(t.detach() if hasattr(t, "detach") else t)) for t in losses]


# 3. model.losses in Keras's order: the activity/add_loss losses (layer by layer, in Keras's
# _flatten_layers order), then the weight penalties in trainable_weights order. Ours went
# layer by layer (each layer's activity loss, then its weights'); before any call, an inner
# model's placeholder call also left an activity loss behind.
def test_model_losses_are_in_keras_order(keras):
    x = RNG.standard_normal((4, 3, 6)).astype(np.float32)

    def run(K, model):
        before = _values(model.losses)
        model(x)
        after = _values(model.losses)
        model.compile(K.optimizers.SGD(0.01), "mse")
        y = np.zeros((4, 3, 2), np.float32)
        hist = model.fit(x, y, epochs=2, shuffle=False, verbose=0).history["loss"]
        return before, after, hist
    (k_before, k_after, k_hist), (w_before, w_after, w_hist) = keras_twins(keras, _penalized, run)
    assert len(w_before) == len(k_before) and len(w_after) == len(k_after)
    np.testing.assert_allclose(w_before, k_before, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(w_after, k_after, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(w_hist, k_hist, rtol=1e-5)


# MultiHeadAttention took neither kernel_initializer nor bias_initializer (a TypeError), nor
# Keras's other arguments (attention_axes, sliding_window, flash_attention, use_gate, seed) or
# call's return_attention_scores.
def test_multi_head_attention_takes_keras_arguments(keras):
    import inspect
    for theirs, ours in ((keras.layers.MultiHeadAttention.__init__,
                          nn.layers.MultiHeadAttention.__init__),
                         (keras.layers.MultiHeadAttention.call,
                          nn.layers.MultiHeadAttention.__call__)):
        k, w = inspect.signature(theirs).parameters, inspect.signature(ours).parameters
        assert [p for p in k if p not in w] == []
        named = [p for p in k if k[p].kind is not k[p].VAR_KEYWORD]
        assert list(w)[:len(named)] == named            # Keras's positions too
        # ours takes value=None (the query, as keras.layers.Attention); the rest as Keras
        assert {p: w[p].default for p in k if p != "value"} == {
            p: k[p].default for p in k if p != "value"}
    # Keras's config keys (the dtype aside) are in ours, and a Keras config builds ours
    config = keras.layers.MultiHeadAttention(2, 4, attention_axes=1, seed=5).get_config()
    ours = nn.layers.MultiHeadAttention(2, 4, attention_axes=1, seed=5).get_config()
    assert set(config) - {"dtype"} <= set(ours)
    plain = {k: v for k, v in config.items() if not isinstance(v, dict)}
    layer = nn.layers.MultiHeadAttention.from_config(plain)
    assert (layer.num_heads, layer.key_dim, layer.attention_axes, layer.seed) == (2, 4, (1,), 5)


def _by_shape(shape, dtype=None):
    """Values that depend on the shape asked for (what an initializer sees decides them)."""
    n = int(np.prod(shape))
    return ((np.arange(n, dtype=np.float64).reshape(shape) * 0.37 % 1.0 - 0.5)
            * (1.0 + 0.1 * len(shape))).astype(dtype or np.float32)


def _by_shape_initializer(K):
    class ByShape(K.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return _by_shape(shape, "float32")

        def get_config(self):
            return {}
    return ByShape()


# The initializers draw what Keras's do: a callable or Orthogonal sees Keras's 3-D shapes,
# glorot/he have the fans of the input and output axes (Keras's EinsumDense), so from the
# same initializers the layers are equal without any weight copied.
@pytest.mark.parametrize("init", ["callable", "ones-bias", "glorot-fans"])
def test_multi_head_attention_initializers_draw_as_keras(keras, init):
    q = RNG.standard_normal((2, 4, 8)).astype(np.float32)
    v = RNG.standard_normal((2, 5, 6)).astype(np.float32)
    if init == "glorot-fans":       # closed form: std = sqrt(2 / (fan_in + fan_out))
        layer = nn.layers.MultiHeadAttention(4, 16, value_dim=8)
        x = np.zeros((1, 2, 64), np.float32)
        layer(x, x)
        w = layer.get_weights()
        for kernel, (fan_in, fan_out) in zip(w[::2], [(64, 64), (64, 64), (64, 32),
                                                      (32, 64)]):
            np.testing.assert_allclose(kernel.std(), np.sqrt(2 / (fan_in + fan_out)),
                                       rtol=0.06)
        return
    out = []
    for K in (keras, nn):
        kwargs = ({"kernel_initializer": _by_shape_initializer(K),
                   "bias_initializer": _by_shape_initializer(K)} if init == "callable" else
                  {"bias_initializer": "ones", "kernel_initializer": _by_shape_initializer(K)})
        layer = K.layers.MultiHeadAttention(2, 3, value_dim=4, output_shape=5, **kwargs)
        y = layer(q, v)
        out.append(([np.asarray(a) for a in layer.get_weights()],
                    np.asarray(y.detach() if hasattr(y, "detach") else y)))
    (k_w, k_y), (w_w, w_y) = out
    assert [a.shape for a in w_w] == [a.shape for a in k_w]
    for a, b in zip(w_w, k_w):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(w_y, k_y, rtol=1e-5, atol=1e-6)


# return_attention_scores gives Keras's (output, scores); the scores' gradient reaches the
# query and key projections as in Keras.
def test_multi_head_attention_returns_keras_scores_and_their_gradient(keras):
    import torch
    q = RNG.standard_normal((2, 4, 8)).astype(np.float32)
    v = RNG.standard_normal((2, 5, 8)).astype(np.float32)
    mask = RNG.random((2, 4, 5)) > 0.3
    weight = RNG.standard_normal((2, 2, 4, 5)).astype(np.float32)
    layers = {}
    for K in (keras, nn):
        keras.utils.set_random_seed(0)
        layers[K] = K.layers.MultiHeadAttention(2, 3)
        layers[K](q, v)
    layers[nn].set_weights(layers[keras].get_weights())

    k_out, k_scores = layers[keras](q, v, attention_mask=mask, return_attention_scores=True)
    (k_scores * torch.as_tensor(weight)).sum().backward()
    k_grads = [w.value.grad for w in layers[keras].trainable_weights]

    w_out, w_scores = layers[nn](q, v, attention_mask=mask, return_attention_scores=True)
    (w_scores * nn.ops.convert_to_tensor(weight)).sum().backward()
    np.testing.assert_allclose(w_out.data, k_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_scores.data, k_scores.detach().numpy(), rtol=1e-5, atol=1e-7)
    ours = {}
    for sub, name in zip(layers[nn].sublayers, ["query", "key", "value", "output"]):
        ours[name] = [None if t.grad is None else np.asarray(t.grad)
                      for t in (sub.kernel, sub.bias)]
    for name, (kg, bg) in zip(["query", "key"], [k_grads[0:2], k_grads[2:4]]):
        np.testing.assert_allclose(ours[name][0].reshape(kg.shape), kg.numpy(), rtol=1e-4,
                                   atol=1e-6, err_msg=name)
        np.testing.assert_allclose(ours[name][1].reshape(bg.shape), bg.numpy(), rtol=1e-4,
                                   atol=1e-6, err_msg=name)
    assert all(g is None or not np.any(g) for g in ours["value"] + ours["output"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(attention_axes=(1, 2)), r"sequence axis.*received \(1, 2\)"),
    (dict(sliding_window=4), r"sliding_window.*received 4"),
    (dict(use_gate=True), r"use_gate=True\) is not supported"),
    (dict(flash_attention=True, dropout=0.1), r"Dropout is not supported.*flash"),
    (dict(seed=-1), r"seed must be None or a non-negative int; received -1"),
])
def test_multi_head_attention_refuses_what_it_does_not_do(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.layers.MultiHeadAttention(2, 4, **kwargs)


def test_multi_head_attention_seed_fixes_its_dropout():
    x = RNG.standard_normal((2, 6, 8)).astype(np.float32)
    outs = []
    for seed in (7, 7, 8):
        layer = nn.layers.MultiHeadAttention(2, 4, dropout=0.5, seed=seed,
                                             kernel_initializer=_by_shape_initializer(nn))
        outs.append(layer(x, x, training=True).data)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.allclose(outs[0], outs[2])


# A subclassed model calling self.mha(x, x) without `training`: Keras's MHA takes the
# caller's flag (dropout on in fit), ours defaulted to training=False (dropout never ran).
def test_multi_head_attention_takes_its_callers_training_flag():
    class Model(nn.Model):
        def __init__(self):
            super().__init__()
            self.mha = nn.layers.MultiHeadAttention(2, 4, dropout=0.9)

        def call(self, x, training=False):
            return self.mha(x, x)

    model = Model()
    x = RNG.standard_normal((2, 5, 8)).astype(np.float32)
    assert not np.allclose(model(x, training=True).data, model(x, training=True).data)
    np.testing.assert_array_equal(model(x, training=False).data, model(x).data)


# A layer given an initializer object (keras.io's Dense(kernel_initializer=
# GlorotNormal(seed=1))) wrote 'custom' in its config: the saved file then failed to load
# ("unknown initializer 'custom'") and clone_model failed the same way.
def test_an_initializer_object_survives_save_load_and_clone(tmp_path):
    init = nn.initializers
    model = nn.Sequential([
        nn.Input((5, 5, 2)),
        nn.layers.Conv2D(3, 3, kernel_initializer=init.HeNormal(seed=3),
                         bias_initializer=init.Constant(0.25)),
        nn.layers.Flatten(),
        nn.layers.Dense(4, kernel_initializer=init.GlorotNormal(seed=1),
                        bias_initializer=init.RandomUniform(-1.0, 1.0, seed=2))])
    model.compile("sgd", "mse")
    model.save(tmp_path / "m.keras")
    loaded = nn.load_model(tmp_path / "m.keras")
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # a seeded initializer draws the same values on every call: the clone's fresh weights
    # equal the original's first ones
    clone = nn.models.clone_model(loaded)
    for a, b in zip(clone.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert clone.layers[-1].get_config()["kernel_initializer"] == {
        "class_name": "GlorotNormal", "config": {"seed": 1}}
