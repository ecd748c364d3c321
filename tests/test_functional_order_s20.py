"""A functional model's layers, weights and trainable weights in Keras 3's order (its
``map_graph``: by depth from the outputs, deepest first), checked against real Keras; and
files wsekern.nn wrote before that order (an old-order fixture) still load exactly."""
import os

import numpy as np
import pytest

from wsekern import nn

DATA = os.path.join(os.path.dirname(__file__), "data")
FIXTURE = os.path.join(DATA, "functional_old_order_s20.wsekern")


def branch(K):
    L = K.layers
    a = K.Input((4,), name="a")
    x1 = L.Dense(4, name="x1")(a)
    x2 = L.Dense(4, name="x2")(x1)
    y1 = L.Dense(4, name="y1")(a)
    return K.Model(a, L.Dense(2, name="out")(L.Concatenate(name="cat")([y1, x2])), name="m")


def shared(K):
    L = K.layers
    a, b = K.Input((4,), name="a"), K.Input((4,), name="b")
    d = L.Dense(4, name="shared")
    deep = L.Dense(4, name="deep")(L.Dense(4, name="pre")(d(b)))
    short = L.Dense(4, name="short")(a)
    return K.Model([a, b], L.Dense(3, name="out")(L.Concatenate(name="cat")([short, deep,
                                                                             d(a)])),
                   name="m")


def multi_io(K):
    L = K.layers
    a, b = K.Input((4,), name="a"), K.Input((3,), name="b")
    h = L.Dense(4, name="h")(a)
    g = L.Dense(4, name="g")(L.Dense(4, name="f")(b))
    o1 = L.Dense(2, name="o1")(L.Add(name="add")([h, g]))
    o2 = L.Dense(4, name="o2")(L.Dense(4, name="o2pre")(L.Dense(4, name="o2prepre")(h)))
    return K.Model([a, b], [o1, o2], name="m")


def dict_out(K):
    L = K.layers
    a = K.Input((4,), name="a")
    z = L.Dense(3, name="zz")(L.Dense(4, name="z0")(a))
    y = L.Dense(2, name="aa")(a)
    return K.Model(a, {"zeta": z, "alpha": y}, name="m")


def nested(K):
    L = K.layers
    i = K.Input((4,), name="ii")
    inner = K.Model(i, L.Add(name="iadd")([L.Dense(4, name="iy")(i),
                                           L.Dense(4, name="ix2")(L.Dense(4, name="ix1")(i))]),
                    name="inner")
    a = K.Input((4,), name="a")
    x = L.Dense(4, name="x2")(L.Dense(4, name="x1")(a))
    y = inner(L.Dense(4, name="y1")(a))
    return K.Model(a, L.Dense(2, name="out")(L.Concatenate(name="cat")([y, x])), name="m")


GRAPHS = [branch, shared, multi_io, dict_out, nested]


def _inputs(model, rng):
    xs = [rng.normal(size=(5,) + tuple(t.shape[1:])).astype("float32") for t in model.inputs]
    return xs if len(xs) > 1 else xs[0]


def _flat(p):
    if isinstance(p, dict):
        return [np.asarray(p[k]) for k in sorted(p)]
    return [np.asarray(v) for v in p] if isinstance(p, (list, tuple)) else [np.asarray(p)]


def _names(model):
    out = []
    for layer in model.layers:
        out.append(layer.name)
        if hasattr(layer, "layers") and hasattr(layer, "inputs"):
            out.append([n for n in _names(layer)])
    return out


@pytest.mark.parametrize("build", GRAPHS, ids=lambda b: b.__name__)
def test_layers_and_weights_in_keras_order(keras, build):
    keras.utils.set_random_seed(3)
    km, m = build(keras), build(nn)
    assert _names(m) == _names(km)
    assert [w.shape for w in m.get_weights()] == [tuple(w.shape) for w in km.get_weights()]
    assert [tuple(w.shape) for w in m.trainable_weights] == \
        [tuple(w.shape) for w in km.trainable_weights]
    m.set_weights(km.get_weights())
    x = _inputs(m, np.random.default_rng(0))
    for ours, theirs in zip(_flat(m.predict(x, verbose=0)), _flat(km.predict(x, verbose=0))):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build", GRAPHS, ids=lambda b: b.__name__)
def test_keras_writer_order_is_the_models(build):
    # the writer's Keras order of the spec and Functional.layers are one implementation
    from wsekern.nn.saving.keras_writer import keras_layer_order
    from wsekern.nn.saving.model_config import model_spec
    m = build(nn)
    config = model_spec(m)["config"]
    assert [config["layers"][i]["config"]["name"] for i in keras_layer_order(config)] == \
        [layer.name for layer in m.layers]


def _fixture_model():
    L = nn.layers
    i = nn.Input((4,), name="in_inner")
    x1 = L.Dense(4, name="i_x1")(i)
    inner = nn.Model(i, L.Add(name="i_add")([L.Dense(4, name="i_y1")(i),
                                             L.Dense(4, name="i_x2")(x1)]), name="inner")
    a = nn.Input((4,), name="x")
    x2 = L.Dense(4, name="x2")(L.Dense(4, name="x1")(a))
    z = inner(L.Dense(4, name="y1")(a))
    return nn.Model(a, L.Dense(2, name="head")(L.Concatenate(name="cat")([z, x2])),
                    name="outer")


def test_file_written_in_the_old_order_loads_exactly():
    # written by wsekern at 0affc8b (layers then [x, y1, inner, x1, x2, cat, head]):
    # weights, x1's mask and Adam's state must land on the same layers as then
    ref = np.load(FIXTURE + ".npz")
    m = nn.load_model(FIXTURE)
    assert [layer.name for layer in m.layers] == ["x", "y1", "x1", "inner", "x2", "cat", "head"]
    np.testing.assert_allclose(m.predict(ref["x"], verbose=0), ref["pred"], rtol=1e-6, atol=1e-5)
    x1 = m.get_layer("x1")
    assert x1.sparsity == 0.5 and x1.mask.mean() == 0.5
    np.testing.assert_array_equal(x1.get_weights()[0] != 0, x1.mask)
    assert all(m.get_layer(n).sparsity == 0 for n in ("x2", "y1", "head"))
    m.fit(ref["x"], ref["y"], epochs=1, batch_size=16, verbose=0, shuffle=False)
    np.testing.assert_allclose(m.predict(ref["x"], verbose=0), ref["after"], rtol=1e-5,
                               atol=1e-4)


def test_old_order_file_into_a_model_built_in_code():
    ref = np.load(FIXTURE + ".npz")
    m = _fixture_model()
    m.load_weights(FIXTURE)
    np.testing.assert_allclose(m.predict(ref["x"], verbose=0), ref["pred"], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("build", [branch, nested], ids=lambda b: b.__name__)
def test_save_load_round_trip_keeps_training(tmp_path, build):
    rng = np.random.default_rng(1)
    m = build(nn)
    m.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in m.get_weights()])
    m.get_layer("x1").set_sparsity(0.5)
    m.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse")
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    m.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    order = [layer.name for layer in m.layers]
    m.save(tmp_path / "m.wsekern")
    m.save_weights(tmp_path / "m.weights.wsekern")
    back = nn.load_model(tmp_path / "m.wsekern")
    assert [layer.name for layer in m.layers] == order == [layer.name for layer in back.layers]
    np.testing.assert_array_equal(back.get_layer("x1").mask, m.get_layer("x1").mask)
    fresh = build(nn)
    fresh.load_weights(tmp_path / "m.weights.wsekern")
    for w, v in zip(fresh.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(w, v)
    m.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    back.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    np.testing.assert_allclose(back.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6,
                               atol=1e-6)
