"""The functional API, merge layers and subclassing, each against an independent reference
(NumPy, finite differences, the layers run one by one)."""
import contextlib
import io
import re

import numpy as np
import pytest

from wsekern import nn
from wsekern.nn import layers as L
from wsekern.nn.tensor import Tensor


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float64")


# -- merge layers -----------------------------------------------------------------------
MERGES = {"add": (L.Add, lambda a, b: a + b), "subtract": (L.Subtract, lambda a, b: a - b),
          "multiply": (L.Multiply, lambda a, b: a * b),
          "average": (L.Average, lambda a, b: (a + b) / 2),
          "maximum": (L.Maximum, np.maximum), "minimum": (L.Minimum, np.minimum)}


@pytest.mark.parametrize("name", sorted(MERGES))
def test_merge_layers_match_numpy_and_finite_differences(name):
    cls, ref = MERGES[name]
    a, b = rand(4, 5, seed=1), rand(4, 5, seed=2)
    layer = cls(dtype="float64")
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = layer([ta, tb])
    np.testing.assert_allclose(out.data, ref(a, b))
    weights = rand(4, 5, seed=3)
    (out * weights).sum().backward()
    eps = 1e-6
    for t, arr, other_first in ((ta, a, True), (tb, b, False)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            f = (lambda v: (ref(v, b) * weights).sum()) if other_first else \
                (lambda v: (ref(a, v) * weights).sum())
            num[idx] = (f(plus) - f(minus)) / (2 * eps)
        np.testing.assert_allclose(t.grad, num, rtol=1e-5, atol=1e-7)
    assert getattr(L, name)([Tensor(a), Tensor(b)]).data.shape == (4, 5)


def test_concatenate_and_dot_match_numpy():
    a, b = rand(3, 4, 5, seed=1), rand(3, 2, 5, seed=2)
    np.testing.assert_allclose(L.Concatenate(axis=1)([Tensor(a), Tensor(b)]).data,
                               np.concatenate([a, b], axis=1))
    np.testing.assert_allclose(L.Dot(axes=2)([Tensor(a), Tensor(b)]).data,
                               np.einsum("bik,bjk->bij", a, b))
    np.testing.assert_allclose(L.Dot(axes=(1, 1))([Tensor(a), Tensor(rand(3, 4, 2))]).data,
                               np.einsum("bki,bkj->bij", a, rand(3, 4, 2)))
    u, v = rand(6, 5, seed=4), rand(6, 5, seed=5)
    np.testing.assert_allclose(L.Dot(axes=1)([Tensor(u), Tensor(v)]).data,
                               (u * v).sum(1, keepdims=True))
    cos = (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    np.testing.assert_allclose(L.Dot(axes=1, normalize=True)([Tensor(u), Tensor(v)]).data[:, 0],
                               cos, rtol=1e-6)


def test_merge_layers_refuse_bad_inputs_clearly():
    with pytest.raises(ValueError, match="incompatible shapes"):
        L.Add()([nn.Input(shape=(3,)), nn.Input(shape=(4,))])
    with pytest.raises(ValueError, match="exactly 2"):
        L.Subtract()([nn.Input(shape=(3,))] * 3)
    with pytest.raises(ValueError, match="list of tensors"):
        L.Add()(nn.Input(shape=(3,)))
    with pytest.raises(ValueError, match="match except on that axis"):
        L.Concatenate(axis=1)([nn.Input(shape=(3, 2)), nn.Input(shape=(4, 5))])


# -- the functional API ----------------------------------------------------------------------
def two_tower():
    nn.utils.set_random_seed(0)
    title = nn.Input(shape=(6,), name="title")
    body = nn.Input(shape=(None, 4), name="body")
    shared = L.Dense(5, activation="relu", name="shared")
    t = shared(L.Dense(4, name="title_proj")(title))
    pooled = L.Dense(4, name="body_proj")(body)[:, 0]          # first step's projection
    b = shared(pooled)
    merged = L.concatenate([t, b, L.add([t, b])], name="merged")
    priority = L.Dense(1, name="priority")(merged)
    department = L.Dense(3, activation="softmax", name="department")(merged)
    return nn.Model(inputs={"title": title, "body": body},
                    outputs={"priority": priority, "department": department})


def test_functional_model_with_dict_inputs_outputs_shared_layer_and_none_dims():
    model = two_tower()
    shared = model.get_layer("shared")
    assert len(shared._inbound_nodes) == 2 and model.output_names == ["priority", "department"]
    with pytest.raises(AttributeError, match="shared layer"):
        shared.output
    assert model.get_layer("merged").output.shape == (None, 15)
    x = {"title": rand(5, 6).astype("float32"), "body": rand(5, 7, 4).astype("float32")}
    out = model.predict(x, verbose=0)
    assert out["priority"].shape == (5, 1) and out["department"].shape == (5, 3)
    # the same numbers as the layers applied one by one
    g = lambda n: model.get_layer(n)                                        # noqa: E731
    t = g("shared")(g("title_proj")(x["title"]))
    b = g("shared")(g("body_proj")(x["body"]).data[:, 0])
    merged = np.concatenate([t.data, b.data, t.data + b.data], axis=1)
    np.testing.assert_allclose(out["priority"], g("priority")(merged).data, rtol=1e-5)
    # a different sequence length goes through the None dimension
    x2 = {"title": x["title"], "body": rand(5, 2, 4).astype("float32")}
    assert model.predict(x2, verbose=0)["department"].shape == (5, 3)


def test_compile_with_loss_dict_and_loss_weights_sums_the_weighted_losses():
    model = two_tower()
    model.compile(optimizer=nn.optimizers.SGD(0.0 + 1e-9),
                  loss={"priority": "mse", "department": "sparse_categorical_crossentropy"},
                  loss_weights={"priority": 0.25, "department": 2.0},
                  metrics={"department": ["accuracy"]})
    x = {"title": rand(8, 6).astype("float32"), "body": rand(8, 3, 4).astype("float32")}
    y = {"priority": rand(8, 1).astype("float32"),
         "department": np.random.default_rng(0).integers(0, 3, 8)}
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    mse = np.mean((p["priority"] - y["priority"]) ** 2)
    ce = -np.mean(np.log(p["department"][np.arange(8), y["department"]]))
    acc = np.mean(p["department"].argmax(1) == y["department"])
    assert logs["priority_loss"] == pytest.approx(mse, rel=1e-5)
    assert logs["department_loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["loss"] == pytest.approx(0.25 * mse + 2.0 * ce, rel=1e-5)
    assert logs["department_accuracy"] == pytest.approx(acc)
    history = model.fit(x, y, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "priority_loss", "department_loss",
                                    "department_accuracy"}


def test_compile_loss_list_for_list_outputs_and_clear_errors():
    nn.utils.set_random_seed(0)
    inp = nn.Input(shape=(4,))
    h = L.Dense(8, activation="relu")(inp)
    model = nn.Model(inp, [L.Dense(1)(h), L.Dense(2, activation="softmax")(h)])
    with pytest.raises(ValueError, match="2 outputs"):
        model.compile(optimizer="adam", loss=["mse"])
        model.fit(rand(4, 4), [rand(4, 1), np.zeros(4, int)], verbose=0)
    model.compile(optimizer="adam", loss=["mse", "sparse_categorical_crossentropy"])
    model.fit(rand(16, 4).astype("float32"), [rand(16, 1), np.zeros(16, int)], verbose=0)
    with pytest.raises(ValueError, match="Graph disconnected"):
        nn.Model(nn.Input(shape=(4,)), h)


def test_sub_model_from_intermediate_outputs_and_models_called_as_layers():
    nn.utils.set_random_seed(0)
    inp = nn.Input(shape=(8,))
    h1 = L.Dense(6, activation="relu", name="h1")(inp)
    h2 = L.Dense(4, activation="relu", name="h2")(h1)
    out = L.Dense(2, name="out")(h2)
    model = nn.Model(inp, out)
    features = nn.Model(inputs=model.inputs, outputs=[model.get_layer("h1").output,
                                                      model.get_layer("h2").output])
    x = rand(3, 8).astype("float32")
    f1, f2 = features.predict(x, verbose=0)
    np.testing.assert_allclose(f1, model.get_layer("h1")(x).data, rtol=1e-6)
    np.testing.assert_allclose(f2, model.get_layer("h2")(f1).data, rtol=1e-6)
    # a model used as a layer inside another model shares its weights
    outer_in = nn.Input(shape=(8,))
    outer = nn.Model(outer_in, L.Dense(1)(model(outer_in)))
    assert len(outer.weights) == len(model.weights) + 2
    assert all(any(w is v for v in outer.weights) for w in model.weights)
    np.testing.assert_allclose(outer.predict(x, verbose=0),
                               outer.layers[-1](model.predict(x, verbose=0)).data, rtol=1e-5)


def test_residual_arithmetic_on_symbolic_tensors():
    nn.utils.set_random_seed(0)
    inp = nn.Input(shape=(5,))
    x = L.Dense(5)(inp)
    out = (x + inp) * 0.5
    model = nn.Model(inp, out)
    data = rand(2, 5).astype("float32")
    np.testing.assert_allclose(model.predict(data, verbose=0),
                               (model.layers[1](data).data + data) * 0.5, rtol=1e-6)


def test_functional_model_saves_and_loads(tmp_path):
    model = two_tower()
    model.compile(optimizer="adam", loss={"priority": "mse",
                                          "department": "sparse_categorical_crossentropy"})
    x = {"title": rand(8, 6).astype("float32"), "body": rand(8, 3, 4).astype("float32")}
    y = {"priority": rand(8, 1).astype("float32"), "department": np.zeros(8, int)}
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "f.keras")
    loaded = nn.load_model(tmp_path / "f.keras")
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    for k, v in model.predict(x, verbose=0).items():
        np.testing.assert_allclose(loaded.predict(x, verbose=0)[k], v, rtol=1e-6)
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_summary_prints_keras_table_and_param_lines():
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input(shape=(4,)), L.Dense(8), L.BatchNormalization(),
                           L.Dense(2)])
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        model.summary()
    lines = text.getvalue().splitlines()
    assert re.fullmatch(r'Model: "sequential(_\d+)?"', lines[0])   # numbered as Keras's
    assert any("Layer (type)" in l and "Output Shape" in l and "Param #" in l for l in lines)
    # Dense 4*8+8=40, BN 4*8=32 (16 non-trainable), Dense 8*2+2=18
    assert lines[-3] == " Total params: 90 (360.00 B)"
    assert lines[-2] == " Trainable params: 74 (296.00 B)"
    assert lines[-1] == " Non-trainable params: 16 (64.00 B)"


# -- subclassing -----------------------------------------------------------------------------
class Linear(L.Layer):
    """keras.io's subclassing guide: weights in build, an activity regularizer by add_loss."""

    def __init__(self, units=4, rate=1e-2):
        super().__init__()
        self.units, self.rate = units, rate

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)
        self.total = nn.Variable(np.zeros((), "float32"), trainable=False)

    def call(self, inputs):
        self.total.assign_add(1.0)
        out = inputs @ self.w + self.b
        self.add_loss(self.rate * (out * out).sum())
        return out


class MLP(nn.Model):
    def __init__(self):
        super().__init__()
        self.linear_1 = Linear(8)
        self.linear_2 = Linear(1)

    def call(self, inputs):
        return self.linear_2(nn.activations.relu(self.linear_1(inputs)))


def test_subclassed_layer_add_loss_variables_and_inferred_output_shape():
    nn.utils.set_random_seed(0)
    layer = Linear(3)
    x = rand(2, 5).astype("float32")
    out = layer(x)
    assert layer.compute_output_shape((None, 5)) == (None, 3)
    assert len(layer.losses) == 1
    assert float(layer.losses[0].data) == pytest.approx(1e-2 * float((out.data ** 2).sum()),
                                                        rel=1e-5)
    assert len(layer.trainable_weights) == 2 and len(layer.non_trainable_weights) == 1
    assert float(layer.total.data) >= 1
    layer.total.assign(5.0)
    layer.total.assign_sub(2.0)
    assert float(layer.total.data) == 3.0
    with pytest.raises(ValueError, match="shape"):
        layer.w.assign(np.zeros((2, 2)))


def test_subclassed_model_trains_with_added_losses_and_saves_weights(tmp_path):
    nn.utils.set_random_seed(0)
    model = MLP()
    x, y = rand(32, 5).astype("float32"), rand(32, 1).astype("float32")
    model.compile(optimizer=nn.optimizers.SGD(0.01), loss="mse")
    model(x[:1])
    # the loss fit() minimises is the mse plus the layers' add_loss terms
    pred = model(x)
    expected = np.mean((pred.data - y) ** 2) + sum(float(l.data) for l in model.losses)
    assert model.evaluate(x, y, batch_size=32, verbose=0) == pytest.approx(expected, rel=1e-5)
    before = model.get_weights()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.save_weights(tmp_path / "w.keras")
    other = MLP()
    other(x[:1])
    other.load_weights(tmp_path / "w.keras")
    np.testing.assert_allclose(other.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="register_keras_serializable|cannot save"):
        model.save(tmp_path / "m.keras")


def test_train_step_and_test_step_overrides_are_used():
    calls = []

    class Custom(MLP):
        def train_step(self, data):
            calls.append("train")
            x, y = data[0], data[1]
            y_pred = self(x, training=True)
            loss = ((y_pred - y) ** 2).mean()
            self.zero_grad()
            loss.backward()
            self.optimizer.apply_gradients(self.trainable_weights)
            return {"custom_loss": loss}

        def test_step(self, data):
            calls.append("test")
            return {"custom_loss": 0.5}

    nn.utils.set_random_seed(0)
    model = Custom()
    model.compile(optimizer="adam")
    x, y = rand(16, 5).astype("float32"), rand(16, 1).astype("float32")
    h = model.fit(x, y, epochs=1, batch_size=8, verbose=0, validation_data=(x, y))
    assert calls.count("train") == 2 and calls.count("test") == 2
    assert set(h.history) == {"custom_loss", "val_custom_loss"}
    assert h.history["val_custom_loss"] == [0.5]


def test_fit_takes_a_pydataset_like_object_and_a_generator_with_sample_weights():
    nn.utils.set_random_seed(0)
    x, y = rand(24, 5).astype("float32"), rand(24, 1).astype("float32")

    class Batches:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]

    model = nn.Sequential([L.Dense(1, input_shape=(5,))])
    model.compile(optimizer=nn.optimizers.SGD(0.01), loss="mse")
    assert len(model.fit(Batches(), epochs=2, verbose=0).history["loss"]) == 2
    gen = ((x[i:i + 8], y[i:i + 8]) for i in range(0, 24, 8))
    model.fit(gen, epochs=1, verbose=0)
    # sample weights: weight 0 on half the samples equals training on the other half
    a = nn.Sequential([L.Dense(1, input_shape=(5,))])
    a.compile(optimizer=nn.optimizers.SGD(0.1), loss=lambda t, p: ((p - t) ** 2).mean(axis=1))
    b = nn.Sequential([L.Dense(1, input_shape=(5,))])
    b.compile(optimizer=nn.optimizers.SGD(0.1), loss=lambda t, p: ((p - t) ** 2).mean(axis=1))
    b.set_weights(a.get_weights())
    w = np.repeat([2.0, 0.0], 12)
    a.fit(x, y, sample_weight=w, batch_size=24, epochs=1, shuffle=False, verbose=0)
    b.fit(x[:12], y[:12], batch_size=12, epochs=1, shuffle=False, verbose=0)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-7)


def test_multi_head_attention_is_a_node_of_a_functional_graph():
    """MultiHeadAttention overrides __call__ (query, value, key): called on symbolic tensors it
    becomes a graph node whose output equals the layers called eagerly, and its weights train."""
    rng = np.random.default_rng(0)
    inp = nn.Input(shape=(6, 16))
    mha = nn.layers.MultiHeadAttention(num_heads=2, key_dim=8)
    att = mha(inp, inp, use_causal_mask=True)
    dense = nn.layers.Dense(3)
    out = dense(nn.layers.GlobalAveragePooling1D()(nn.layers.Add()([inp, att])))
    model = nn.Model(inp, out)
    assert len(model.trainable_weights) == 8 + 2
    X = rng.standard_normal((5, 6, 16)).astype("float32")
    eager = mha(X, X, use_causal_mask=True).data
    expected = (X + eager).mean(axis=1) @ dense.get_weights()[0] + dense.get_weights()[1]
    np.testing.assert_allclose(model.predict(X, verbose=0), expected, rtol=1e-5, atol=1e-5)
    before = [w.copy() for w in mha.get_weights()]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, np.arange(5) % 3, epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, mha.get_weights()))
