"""``nn.models.clone_model``, ``model.to_json`` / ``nn.models.model_from_json`` and
``nn.losses.get``, against Keras 3 on torch where it is installed."""
import json
import os
import textwrap

import numpy as np
import pytest
from conftest import assert_refused_in_child
from test_nn_ops import keras_or_none

from wsekern import nn
from wsekern.nn import losses
from wsekern.nn.tensor import Tensor

keras = keras_or_none()
needs_keras = pytest.mark.skipif(keras is None, reason="keras with the torch backend is "
                                                       "not installed")
RNG = np.random.default_rng(0)
X6 = RNG.random((5, 6)).astype(np.float32)
X4 = RNG.random((5, 4)).astype(np.float32)
CHILD = f"import sys\nsys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"


def sequential(lib=nn, sparsity=0.0):
    extra = {"sparsity": sparsity} if lib is nn else {}
    return lib.Sequential([lib.Input(shape=(6,)),
                           lib.layers.Dense(16, activation="relu", name="h", **extra),
                           lib.layers.Dropout(0.25, name="drop"),
                           lib.layers.Dense(3, activation="softmax", name="out")],
                          name="seq")


def functional(lib=nn):
    inp = lib.Input(shape=(4,), name="a")
    shared = lib.layers.Dense(4, activation="tanh", name="shared")
    h = lib.layers.add([shared(inp), lib.layers.Dense(4, name="side")(inp)])
    h2 = shared(h)                                # the shared layer, called twice
    outputs = {"o": lib.layers.Dense(2, name="o")(h2), "p": lib.layers.Dense(1, name="p")(h)}
    return lib.Model(inp, outputs, name="fun")


def configs(model):
    return [layer.get_config() for layer in model.layers]


def outputs_equal(a, b, x):
    pa, pb = a.predict(x, verbose=0), b.predict(x, verbose=0)
    if isinstance(pa, dict):
        assert pa.keys() == pb.keys()
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])
    else:
        np.testing.assert_array_equal(pa, pb)


def fresh(a, b):
    """Every kernel of ``b`` differs from ``a``'s (same shapes): freshly initialized."""
    ka = [w for w in a.get_weights() if w.ndim >= 2]
    kb = [w for w in b.get_weights() if w.ndim >= 2]
    assert [w.shape for w in ka] == [w.shape for w in kb] and ka
    assert all(not np.array_equal(p, q) for p, q in zip(ka, kb))


# -- clone_model -------------------------------------------------------------------------
def test_sequential_clone_is_the_architecture_with_fresh_weights():
    m = sequential()
    c = nn.models.clone_model(m)
    assert type(c) is nn.Sequential and c is not m and c.name == m.name
    assert configs(c) == configs(m)
    assert c.input_shape == m.input_shape and c.output_shape == m.output_shape
    assert all(a is not b for a, b in zip(c.layers, m.layers))
    fresh(m, c)
    c.set_weights(m.get_weights())
    outputs_equal(m, c, X6)
    assert not c.compiled


def test_a_compiled_model_clones_compiled_with_a_new_optimizer_and_metrics():
    m = sequential()
    mae = nn.metrics.MeanAbsoluteError()

    def l1(y_true, y_pred):
        return nn.ops.mean(nn.ops.abs(y_true - y_pred), axis=-1)
    m.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse", metrics=[mae, "mae", l1])
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]]
    m.fit(X6, y, epochs=1, verbose=0)
    c = nn.models.clone_model(m)
    assert c.compiled and c.optimizer is not m.optimizer
    assert type(c.optimizer) is nn.optimizers.Adam
    assert float(c.optimizer.learning_rate) == pytest.approx(0.01)
    c.set_weights(m.get_weights())
    assert c.evaluate(X6, y, verbose=0, return_dict=True) == \
        pytest.approx(m.evaluate(X6, y, verbose=0, return_dict=True))
    assert c._compile_config["metrics"][0] is not mae


def test_functional_clone_keeps_the_graph_and_sharing():
    m = functional()
    c = nn.models.clone_model(m)
    assert type(c) is nn.models.Functional and c.name == "fun"
    assert [l.name for l in c.layers] == [l.name for l in m.layers]
    assert configs(c) == configs(m)
    assert len(c.get_layer("shared")._inbound_nodes) == 2     # still shared
    assert c.output_names == m.output_names and c.input_names == m.input_names
    fresh(m, c)
    c.set_weights(m.get_weights())
    outputs_equal(m, c, X4)


@needs_keras
@pytest.mark.parametrize("build", [sequential, functional], ids=["sequential", "functional"])
def test_clone_matches_keras(build):
    ours, theirs = build(nn), build(keras)
    ours.set_weights(theirs.get_weights())
    c_ours, c_theirs = nn.models.clone_model(ours), keras.models.clone_model(theirs)
    named = {"h", "drop", "out", "shared", "side", "o", "p"}     # not auto-numbered
    assert [l.name for l in c_ours.layers if l.name in named] == \
        [l.name for l in c_theirs.layers if l.name in named]
    assert [w.shape for w in c_ours.get_weights()] == \
        [tuple(w.shape) for w in c_theirs.get_weights()]
    # Keras's clone is fresh too; given the same weights both compute the same
    assert not np.array_equal(c_theirs.get_weights()[0], theirs.get_weights()[0])
    c_theirs.set_weights(theirs.get_weights())
    c_ours.set_weights(ours.get_weights())
    x = X6 if build is sequential else X4
    a, b = c_ours.predict(x, verbose=0), c_theirs.predict(x, verbose=0)
    for k in (a if isinstance(a, dict) else [None]):
        got, want = (a, b) if k is None else (a[k], b[k])
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(want), rtol=1e-5,
                                   atol=1e-6)


def test_a_pruned_layer_keeps_its_pattern_with_fresh_values():
    m = sequential(sparsity=0.75)
    c = nn.models.clone_model(m)
    a, b = m.get_layer("h"), c.get_layer("h")
    assert b.sparsity == 0.75 and b.pattern is not None
    np.testing.assert_array_equal(a.mask, b.mask)             # the same kept positions
    ka, kb = a.get_weights()[0], b.get_weights()[0]
    assert np.all(kb[~b.mask] == 0) and np.count_nonzero(kb) == np.count_nonzero(b.mask)
    assert not np.allclose(ka[a.mask], kb[b.mask])            # fresh values there
    c.set_weights(m.get_weights())                            # Keras's idiom is exact
    outputs_equal(m, c, X6)
    c.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    c.fit(X6, np.array([0, 1, 2, 0, 1]), epochs=1, verbose=0)
    assert np.all(c.get_layer("h").get_weights()[0][~a.mask] == 0)


def test_a_pruned_conv_and_a_gradually_pruned_dense_keep_their_patterns():
    m = nn.Sequential([nn.Input(shape=(6, 6, 2)),
                       nn.layers.Conv2D(4, 3, sparsity=0.5, name="conv"),
                       nn.layers.Flatten(), nn.layers.Dense(3, name="d")])
    m.get_layer("d").set_sparsity(0.4)            # pruned after build (GradualPruning's way)
    c = nn.models.clone_model(m)
    for name in ("conv", "d"):
        a, b = m.get_layer(name), c.get_layer(name)
        ma = a.weight_mask if name == "conv" else a.mask
        mb = b.weight_mask if name == "conv" else b.mask
        np.testing.assert_array_equal(ma, mb)
        assert b.sparsity == a.sparsity
    x = RNG.random((2, 6, 6, 2)).astype(np.float32)
    c.set_weights(m.get_weights())
    outputs_equal(m, c, x)
    before = m.get_weights()
    shared = nn.models.clone_model(m, clone_function=lambda layer: layer)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))  # untouched
    outputs_equal(m, shared, x)

    def dense_again(layer):                  # the clone function's sparsity is kept
        config = layer.get_config()
        if "sparsity" in config:
            config["sparsity"] = 0.0
        return type(layer).from_config(config)
    c = nn.models.clone_model(m, clone_function=dense_again)
    assert c.get_layer("conv").weight_mask is None and c.get_layer("d").pattern is None


def test_a_pruned_attention_layer_keeps_its_patterns():
    inp = nn.Input(shape=(5, 8))
    out = nn.layers.MultiHeadAttention(2, 4, sparsity=0.5, name="mha")(inp, inp)
    m = nn.Model(inp, out)
    c = nn.models.clone_model(m)
    subs_a, subs_b = m.get_layer("mha").sublayers, c.get_layer("mha").sublayers
    for a, b in zip(subs_a, subs_b):
        np.testing.assert_array_equal(a.mask, b.mask)
    c.set_weights(m.get_weights())
    x = RNG.random((2, 5, 8)).astype(np.float32)
    outputs_equal(m, c, x)
    r = nn.models.model_from_json(m.to_json())
    assert r.get_layer("mha").sparsity == 0.5
    for a, b in zip(subs_a, r.get_layer("mha").sublayers):
        np.testing.assert_array_equal(a.mask, b.mask)
    r.set_weights(m.get_weights())
    outputs_equal(m, r, x)


def test_an_unbuilt_model_clones_and_round_trips_unbuilt():
    m = nn.Sequential([nn.layers.Dense(4, sparsity=0.5, name="d4"), nn.layers.Dense(2)])
    for c in (nn.models.clone_model(m), nn.models.model_from_json(m.to_json())):
        assert not c.built and c.get_layer("d4").sparsity == 0.5
        c.build((None, 6))
        assert c.get_layer("d4").mask.mean() == 0.5


def test_input_tensors_clone_function_and_call_function():
    m = functional()
    inp = nn.Input(shape=(4,), name="new_in")
    c = nn.models.clone_model(m, input_tensors=inp)
    assert c.input_names == ["new_in"]

    def relu_everywhere(layer):
        config = layer.get_config()
        if "activation" in config:
            config["activation"] = "relu"
        return type(layer).from_config(config)
    c = nn.models.clone_model(m, clone_function=relu_everywhere)
    assert c.get_layer("shared").get_config()["activation"] == "relu"
    shared = nn.models.clone_model(m, clone_function=lambda layer: layer)  # share all
    assert shared.get_layer("shared") is m.get_layer("shared")
    outputs_equal(m, shared, X4)
    calls = []

    def call_function(layer, *args, **kwargs):
        calls.append(layer.name)
        return layer(*args, **kwargs)
    nn.models.clone_model(m, call_function=call_function)
    assert calls.count("shared") == 2
    s = sequential()
    c = nn.models.clone_model(s, input_tensors=[nn.Input(shape=(6,))])
    c.set_weights(s.get_weights())
    outputs_equal(s, c, X6)


def test_nested_models_are_cloned_too():
    inner = nn.Sequential([nn.layers.Dense(5, activation="relu", name="inner_d")],
                          name="inner")
    inp = nn.Input(shape=(4,))
    m = nn.Model(inp, nn.layers.Dense(2, name="head")(inner(inp)))
    for recursive in (False, True):
        c = nn.models.clone_model(m, recursive=recursive)
        assert c.get_layer("inner") is not inner
        assert type(c.get_layer("inner")) is nn.Sequential
        c.set_weights(m.get_weights())
        outputs_equal(m, c, X4)


@nn.saving.register_keras_serializable(package="clone_test")
class Two(nn.Model):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.d1 = nn.layers.Dense(units, activation="relu", sparsity=0.5)
        self.d2 = nn.layers.Dense(2)

    def call(self, x):
        return self.d2(self.d1(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_a_subclassed_model_is_made_from_its_config():
    m = Two(units=7)
    m(X4)
    c = nn.models.clone_model(m)
    assert type(c) is Two and c.units == 7
    np.testing.assert_array_equal(c.d1.mask, m.d1.mask)
    c.set_weights(m.get_weights())
    outputs_equal(m, c, X4)


def test_what_clone_model_does_not_take_is_refused_by_name():
    assert_refused_in_child(CHILD + textwrap.dedent("""
        import numpy as np
        from wsekern import nn
        from test_keras_clone import functional, sequential, Two
        m, s, t = functional(), sequential(), Two()
        t(np.zeros((1, 4), np.float32))
        cases = [
            lambda: nn.models.clone_model(nn.layers.Dense(3)),
            lambda: nn.models.clone_model(m, cache={}),
            lambda: nn.models.clone_model(m, clone_function=3),
            lambda: nn.models.clone_model(m, clone_function=lambda layer: 3),
            lambda: nn.models.clone_model(m, input_tensors=[nn.Input(shape=(4,)),
                                                             nn.Input(shape=(4,))]),
            lambda: nn.models.clone_model(m, input_tensors=nn.Input(shape=(5,))),
            lambda: nn.models.clone_model(s, input_tensors=np.zeros((2, 6))),
            lambda: nn.models.clone_model(s, call_function=lambda l, *a, **k: l(*a, **k)),
            lambda: nn.models.clone_model(t, clone_function=lambda layer: layer),
        ]
        """), 9, errors=(ValueError, TypeError),
        needles=("clone_model", "clone_function", "input_tensors", "call_function"))


# -- to_json / model_from_json -----------------------------------------------------------
@pytest.mark.parametrize("build", [sequential, functional, lambda: sequential(sparsity=0.5)],
                         ids=["sequential", "functional", "pruned"])
def test_json_round_trip(build):
    m = build()
    s = m.to_json()
    spec = json.loads(s)
    assert spec["class_name"] in ("Sequential", "Functional") and "config" in spec
    r = nn.models.model_from_json(s)
    assert type(r) is type(m) and configs(r) == configs(m) and r.to_json() == s
    fresh(m, r)
    r.set_weights(m.get_weights())
    x = X4 if spec["class_name"] == "Functional" else X6
    outputs_equal(m, r, x)
    assert json.loads(m.to_json(indent=2)) == spec


def test_json_of_a_subclassed_model_needs_its_class():
    m = Two(units=5)
    m(X4)
    r = nn.models.model_from_json(m.to_json())
    assert type(r) is Two and r.units == 5
    r.set_weights(m.get_weights())
    outputs_equal(m, r, X4)


class Doubler(nn.layers.Layer):         # a custom layer nobody registered
    def call(self, x, training=False):
        return x * 2.0


def test_an_unknown_class_is_named_with_what_would_work(tmp_path):
    """model_from_json's message named load_model; each reader now names itself and the
    custom_objects= that would load the class."""
    m = nn.Sequential([nn.layers.Input((4,)), Doubler(name="twice"), nn.layers.Dense(2)])
    with pytest.raises(ValueError, match="unknown class 'Doubler'") as e:
        nn.models.model_from_json(m.to_json())
    assert "model_from_json(json_string, custom_objects={'Doubler': cls})" in str(e.value)
    assert "load_model" not in str(e.value)
    r = nn.models.model_from_json(m.to_json(), custom_objects={"Doubler": Doubler})
    assert type(r.get_layer("twice")) is Doubler
    m.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="unknown class 'Doubler'") as e:
        nn.models.load_model(tmp_path / "m.keras")
    assert "load_model(filepath, custom_objects={'Doubler': cls})" in str(e.value)
    assert "model_from_json" not in str(e.value)


@needs_keras
def test_json_has_keras_shape():
    ours = json.loads(sequential().to_json())
    theirs = json.loads(sequential(keras).to_json())
    assert ours["class_name"] == theirs["class_name"] == "Sequential"
    assert [l["class_name"] for l in ours["config"]["layers"]] == \
        [l["class_name"] for l in theirs["config"]["layers"] if l["class_name"] != "InputLayer"]
    with pytest.raises(ValueError, match="written by Keras itself"):
        nn.models.model_from_json(sequential(keras).to_json())


def test_hostile_json_is_refused_in_a_child():
    assert_refused_in_child(CHILD + textwrap.dedent("""
        import json
        from wsekern import nn
        from test_keras_clone import sequential
        good = json.loads(sequential(sparsity=0.5).to_json())
        def edit(fn):
            spec = json.loads(json.dumps(good))
            fn(spec)
            return json.dumps(spec)
        def bits(spec, value):
            spec["wsekern_sparsity"][0]["bits"] = value
        def shape(spec, value):
            spec["wsekern_sparsity"][0]["shape"] = value
        def layer(spec, value):
            spec["wsekern_sparsity"][0]["layer"] = value
        cases = [
            lambda: nn.models.model_from_json("{not json"),
            lambda: nn.models.model_from_json("[1, 2]"),
            lambda: nn.models.model_from_json("[" * 100000 + "]" * 100000),
            lambda: nn.models.model_from_json(edit(lambda s: s.update(class_name="os.system"))),
            lambda: nn.models.model_from_json(edit(lambda s: bits(s, "!!!"))),
            lambda: nn.models.model_from_json(edit(lambda s: bits(s, "AAAA"))),
            lambda: nn.models.model_from_json(edit(lambda s: bits(s, "A" * 10**6))),
            lambda: nn.models.model_from_json(edit(lambda s: shape(s, [10**9, 10**9]))),
            lambda: nn.models.model_from_json(edit(lambda s: shape(s, [16, 6]))),
            lambda: nn.models.model_from_json(edit(lambda s: layer(s, 99))),
            lambda: nn.models.model_from_json(edit(lambda s: layer(s, 2))),
            lambda: nn.models.model_from_json(edit(lambda s: s.update(wsekern_sparsity=3))),
            lambda: nn.models.model_from_json(12),
        ]
        """), 13, errors=(ValueError, TypeError), limit_gb=4)


def test_a_pattern_shape_whose_int64_product_wraps_is_refused_by_name():
    # np.prod in int64 wrapped 2**32 x 2**32 to 0 positions (numpy's "cannot reshape"
    # followed) and raised OverflowError for 2**64: the product is now exact
    assert_refused_in_child(CHILD + textwrap.dedent("""
        import json
        from wsekern import nn
        from test_keras_clone import sequential
        good = json.loads(sequential(sparsity=0.5).to_json())
        def with_shape(value):
            spec = json.loads(json.dumps(good))
            spec["wsekern_sparsity"][0].update(shape=value, bits="")
            return json.dumps(spec)
        cases = [lambda v=v: nn.models.model_from_json(with_shape(v))
                 for v in ([2**32, 2**32], [2**64], [2**62, 3], [2**21, 2**21, 2**22])]
        """), 4, errors=(ValueError,), needles=("positions",), limit_gb=4)


# -- losses.get --------------------------------------------------------------------------
NAMES = ["mse", "mae", "mape", "msle", "kld", "huber", "log_cosh", "poisson", "hinge",
         "squared_hinge", "categorical_hinge", "cosine_similarity", "binary_crossentropy",
         "categorical_crossentropy", "mean_squared_error", "kl_divergence"]


def test_get_gives_the_per_sample_function_for_a_name():
    y, p = RNG.random((4, 3)), RNG.random((4, 3))
    fn = losses.get("mse")
    assert fn is losses.mean_squared_error
    np.testing.assert_allclose(fn(y, Tensor(p)).data, ((y - p) ** 2).mean(-1))
    assert isinstance(losses.get("MeanSquaredError"), losses.MeanSquaredError)
    obj = losses.get({"class_name": "MeanSquaredError", "config": {"reduction": "sum"}})
    assert isinstance(obj, losses.MeanSquaredError) and obj.reduction == "sum"
    assert float(obj(y, Tensor(p)).data) == pytest.approx(((y - p) ** 2).mean(-1).sum())
    assert losses.get(None) is None
    assert losses.get(fn) is fn and losses.get(obj) is obj
    assert isinstance(losses.as_loss("mse"), losses.MeanSquaredError)


@needs_keras
@pytest.mark.parametrize("name", NAMES)
def test_get_matches_keras(name):
    y = (RNG.random((4, 3)) > 0.5).astype(np.float32) if "hinge" in name or \
        "binary" in name else RNG.dirichlet(np.ones(3), 4).astype(np.float32)
    p = RNG.dirichlet(np.ones(3), 4).astype(np.float32)
    ours, theirs = losses.get(name), keras.losses.get(name)
    assert ours.__name__ == theirs.__name__
    want = keras.ops.convert_to_numpy(theirs(keras.ops.convert_to_tensor(y),
                                             keras.ops.convert_to_tensor(p)))
    got = ours(y, Tensor(p)).data
    assert got.shape == want.shape == (4,)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_compile_and_save_still_take_loss_names(tmp_path):
    m = sequential()
    m.compile(optimizer="sgd", loss="mse")
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]]
    logged = m.evaluate(X6, y, verbose=0)
    want = ((m.predict(X6, verbose=0) - y) ** 2).mean()
    assert logged == pytest.approx(want, rel=1e-5)
    m.save(tmp_path / "m.keras")
    r = nn.load_model(tmp_path / "m.keras")
    assert r.evaluate(X6, y, verbose=0) == pytest.approx(logged, rel=1e-6)
    r.save(tmp_path / "r.keras")                       # saved again after loading
    assert nn.load_model(tmp_path / "r.keras").evaluate(X6, y, verbose=0) == \
        pytest.approx(logged, rel=1e-6)


def test_own_functions_are_handed_to_the_clone():
    def twice(x):
        return x * 2
    m = nn.Sequential([nn.Input(shape=(6,)), nn.layers.Dense(4, activation=twice),
                       nn.layers.Lambda(lambda x: x + 1)])
    c = nn.models.clone_model(m)                 # Keras 3 itself refuses this one
    assert c.layers[0].activation is twice and c.layers[1].function is m.layers[1].function
    c.set_weights(m.get_weights())
    outputs_equal(m, c, X6)
    with pytest.raises(ValueError, match="cannot save layer"):
        m.to_json()                              # a file cannot hold them: refused
