"""A ``.keras`` file that Keras 3 wrote loads in wsekern.nn (session 19): the files are written
by real Keras in each test (torch backend), and the loaded model must predict as Keras's and
take one more fit step as Keras's does (optimizer state included)."""
import json
import zipfile

import numpy as np
import pytest
from conftest import run_in_child

from wsekern import nn

pytest.importorskip("h5py")
RTOL = ATOL = 1e-5


def _data(kind, n=16, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "tokens":
        return rng.integers(1, 20, (n, 6)).astype("int32")
    return rng.normal(size=(n,) + kind).astype("float32")


def _fit_twice(km, x, y, path, optimizer="adam", loss="mse", **compile_kw):
    """Keras fits a step, saves, fits one more step; returns (predictions after the save,
    predictions and weights after the second step)."""
    km.compile(optimizer=optimizer, loss=loss, **compile_kw)
    km.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    km.save(path)
    before = km.predict(x, verbose=0)
    hist = km.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    return before, km.predict(x, verbose=0), None, hist


def _check(km, x, y, tmp_path, optimizer="adam", loss="mse", **compile_kw):
    path = tmp_path / "k.keras"
    before, after, weights, hist = _fit_twice(km, x, y, path, optimizer, loss, **compile_kw)
    model = nn.load_model(path)
    np.testing.assert_allclose(_flat(model.predict(x, verbose=0)), _flat(before),
                               rtol=RTOL, atol=ATOL)
    ours = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    _same_weights(model, km)
    np.testing.assert_allclose(_flat(model.predict(x, verbose=0)), _flat(after),
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ours["loss"], hist["loss"], rtol=RTOL, atol=ATOL)
    return model


def _same_weights(ours, theirs):
    """Layer by layer, by name (a functional model's layer order may differ from Keras's)."""
    for kl in theirs.layers:
        mine = ours.get_layer(kl.name)
        if hasattr(kl, "layers"):
            _same_weights(mine, kl)
            continue
        got, want = mine.get_weights(), kl.get_weights()
        assert len(got) == len(want), kl.name
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=kl.name)


def _flat(p):
    if isinstance(p, dict):
        return np.concatenate([np.ravel(p[k]) for k in sorted(p)])
    if isinstance(p, list):
        return np.concatenate([np.ravel(a) for a in p])
    return np.asarray(p)


def test_a_keras_sequential_file_loads_and_resumes_with_adam(keras, tmp_path):
    L = keras.layers
    keras.utils.set_random_seed(0)
    km = keras.Sequential([keras.Input((5,)), L.Dense(7, activation="relu"),
                           L.Dropout(0.0), L.Dense(3)])
    model = _check(km, _data((5,)), _data((3,), seed=1), tmp_path)
    assert model.optimizer.iterations == 4 and type(model.optimizer).__name__ == "Adam"


@pytest.mark.parametrize("opt", ["sgd-momentum", "rmsprop-centered", "sgd"])
def test_the_optimizer_state_of_sgd_and_rmsprop_is_restored(keras, tmp_path, opt):
    L = keras.layers
    keras.utils.set_random_seed(1)
    km = keras.Sequential([keras.Input((4,)), L.Dense(6, activation="tanh"), L.Dense(2)])
    optimizer = {"sgd-momentum": keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                 "rmsprop-centered": keras.optimizers.RMSprop(0.01, momentum=0.5,
                                                              centered=True),
                 "sgd": keras.optimizers.SGD(0.05)}[opt]
    _check(km, _data((4,)), _data((2,), seed=2), tmp_path, optimizer=optimizer)


def test_a_keras_functional_multi_input_file_loads(keras, tmp_path):
    L = keras.layers
    keras.utils.set_random_seed(2)
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    frozen = L.Dense(5)
    frozen.trainable = False                 # not among the optimizer's variables
    h = L.Concatenate()([L.Dense(5, activation="relu")(a), frozen(b)])
    h = L.Add()([L.Dense(6)(h), L.Dense(6, activation="gelu")(h)])
    out = L.Dense(2, name="out")(h * 0.5)
    km = keras.Model([a, b], out)
    x = [_data((4,)), _data((3,), seed=3)]
    _check(km, x, _data((2,), seed=4), tmp_path, metrics=["mae"])


def test_a_keras_nested_model_file_loads(keras, tmp_path):
    """A Sequential inside a functional model inside a functional model, which is called
    twice (a shared nested model)."""
    L = keras.layers
    keras.utils.set_random_seed(3)
    inner = keras.Sequential([keras.Input((6,)), L.Dense(5, activation="relu"), L.Dense(5)],
                             name="inner")
    i = keras.Input((6,))
    block = keras.Model(i, L.Dense(4)(inner(i)), name="block")
    j = keras.Input((6,))
    h = L.Concatenate()([L.Dense(3)(block(j)), block(L.Dense(6)(j))])
    km = keras.Model(j, L.Dense(2)(h))
    _check(km, _data((6,)), _data((2,), seed=5), tmp_path)


def test_a_keras_dict_output_file_with_metric_objects_loads(keras, tmp_path):
    L = keras.layers
    keras.utils.set_random_seed(7)
    x = keras.Input((4,), name="x")
    h = L.Dense(6, activation="relu")(x)
    km = keras.Model(x, {"a": L.Dense(2, name="a")(h), "b": L.Dense(1, name="b")(h)})
    y = {"a": _data((2,), seed=9), "b": _data((1,), seed=10)}
    model = _check(km, _data((4,)), y, tmp_path, loss={"a": "mse", "b": keras.losses.Huber()},
                   loss_weights={"a": 1.0, "b": 0.5},
                   metrics={"a": [keras.metrics.MeanAbsoluteError()], "b": ["mse"]})
    assert model.output_names == ["a", "b"]


def test_a_keras_convnet_with_batchnorm_file_loads(keras, tmp_path):
    L = keras.layers
    keras.utils.set_random_seed(4)
    # no bias before the BN: its gradient is rounding noise, which Adam scales to lr-sized steps
    km = keras.Sequential([keras.Input((8, 8, 2)), L.Conv2D(4, 3, padding="same", use_bias=False),
                           L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(),
                           L.Conv2D(3, 2), L.GlobalAveragePooling2D(), L.Dense(2)])
    model = _check(km, _data((8, 8, 2)), _data((2,), seed=6), tmp_path)
    bn = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"][0]
    assert not np.allclose(bn.get_weights()[2], 0)       # the moving mean came from the file


def test_a_keras_transformer_file_loads(keras, tmp_path):
    L = keras.layers
    keras.utils.set_random_seed(5)
    t = keras.Input((6,), dtype="int32")
    e = L.Embedding(20, 8)(t)
    a = L.MultiHeadAttention(2, 4)(e, e)
    h = L.LayerNormalization()(L.Add()([a, e]))
    km = keras.Model(t, L.Dense(1)(L.GlobalAveragePooling1D()(h)))
    _check(km, _data("tokens"), _data((1,), seed=7), tmp_path)


def test_a_keras_regularized_layer_file_loads(keras, tmp_path):
    L = keras.layers
    keras.utils.set_random_seed(6)
    km = keras.Sequential([keras.Input((5,)),
                           L.Dense(4, kernel_regularizer=keras.regularizers.L2(0.1),
                                   activity_regularizer=keras.regularizers.L1(0.01)),
                           L.Dense(1, bias_regularizer="l2")])
    model = _check(km, _data((5,)), _data((1,), seed=8), tmp_path)
    assert len(model.losses) == len(km.losses)
    np.testing.assert_allclose(sum(float(np.asarray(v)) for v in model.losses),
                               sum(float(v) for v in km.losses), rtol=1e-5)


# -- hostile and broken files: a clear error, never a crash (each load in a child process) --
def _keras_file(keras, path):
    L = keras.layers
    km = keras.Sequential([keras.Input((5,)), L.Dense(7, activation="relu"), L.Dense(3)])
    km.compile("adam", "mse")
    km.fit(_data((5,)), _data((3,), seed=1), verbose=0)
    km.save(path)
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _rezip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for n, data in members.items():
            z.writestr(n, data)


def _with_config(members, edit):
    config = json.loads(members["config.json"])
    edit(config)
    return {**members, "config.json": json.dumps(config).encode()}


def _dense(config, i):
    return config["config"]["layers"][i]["config"]


def _nest(depth):
    return "[" * depth + "]" * depth


def _set(d, k, v):
    d[k] = v


CASES = {
    "unknown-layer": (lambda m: _with_config(m, lambda c: _set(c["config"]["layers"][1],
                                                                "class_name", "LSTM")),
                      "LSTM"),
    "absurd-units": (lambda m: _with_config(m, lambda c: _set(_dense(c, 1), "units", 10**12)),
                     "larger than any size"),
    "other-shape": (lambda m: _with_config(m, lambda c: _set(_dense(c, 1), "units", 8)),
                    "(5, 7)"),
    "no-weights": (lambda m: {k: v for k, v in m.items() if k != "model.weights.h5"},
                   "without model.weights.h5"),
    "corrupt-h5": (lambda m: {**m, "model.weights.h5": b"\x89HDF\r\n" + b"\x00" * 500},
                   "not a readable HDF5 file"),
    "bad-config": (lambda m: {**m, "config.json": b"{not json"}, "config.json is not valid"),
    "bad-metadata": (lambda m: {**m, "metadata.json": b"\xff\xfe"}, "metadata.json"),
    "deep-config": (lambda m: {**m, "config.json": (
        '{"class_name": "Sequential", "config": {"layers": ' + _nest(5000) + "}}").encode()},
                    "config.json"),
    "subclassed": (lambda m: _with_config(m, lambda c: _set(c, "class_name", "MyModel")),
                   "MyModel"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_broken_or_hostile_keras_file_gets_a_clear_error(keras, tmp_path, case):
    members = _keras_file(keras, tmp_path / "good.keras")
    make, words = CASES[case]
    path = tmp_path / f"{case}.keras"
    _rezip(path, make(members))
    proc = run_in_child(f"""
        from wsekern import nn
        try:
            nn.load_model({str(path)!r})
        except (ValueError, ImportError) as e:
            print(type(e).__name__, "::", e)
        else:
            print("LOADED")
        """, limit_gb=3)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "::" in proc.stdout and words in proc.stdout, proc.stdout[-2000:]


def test_a_keras_file_beyond_max_bytes_is_refused_before_reading(keras, tmp_path):
    path = tmp_path / "k.keras"
    _keras_file(keras, path)
    with pytest.raises(ValueError, match="beyond max_bytes=100"):
        nn.load_model(path, max_bytes=100)


def test_without_h5py_the_error_names_the_extra(keras, tmp_path):
    path = tmp_path / "k.keras"
    _keras_file(keras, path)
    proc = run_in_child(f"""
        import sys
        sys.modules["h5py"] = None                      # as if it were not installed
        from wsekern import nn
        try:
            nn.load_model({str(path)!r})
        except ImportError as e:
            print(e)
        """)
    assert "wsekern[keras]" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_a_keras_op_wsekern_cannot_rebuild_is_named(keras, tmp_path):
    x = keras.Input((3,))
    km = keras.Model(x, keras.layers.Dense(2)(keras.ops.exp(x)))
    km.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="keras.ops.exp"):
        nn.load_model(tmp_path / "k.keras")


def test_an_unknown_optimizer_loads_the_weights_and_warns(keras, tmp_path, monkeypatch):
    # every optimizer both have is now known: forget Nadam's layout to reach this path
    from wsekern.nn.saving import keras_format
    monkeypatch.delitem(keras_format._SLOT_GROUPS, "Nadam")
    L = keras.layers
    km = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    km.compile(keras.optimizers.Nadam(0.01), "mse")
    km.fit(_data((3,)), _data((2,)), verbose=0)
    km.save(tmp_path / "k.keras")
    with pytest.warns(UserWarning, match="not the state of the Nadam optimizer"):
        model = nn.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(model.predict(_data((3,)), verbose=0),
                               km.predict(_data((3,)), verbose=0), rtol=RTOL, atol=ATOL)
    assert type(model.optimizer).__name__ == "Nadam"


_IMG, _SEQ, _VEC = (6, 6, 3), (7, 4), (5,)
KINDS = {
    "flatten": (_IMG, lambda L: [L.Flatten(), L.Dense(2)]),
    "reshape": (_VEC, lambda L: [L.Reshape((5, 1)), L.Flatten()]),
    "conv1d-pool1d": (_SEQ, lambda L: [L.Conv1D(3, 2, padding="causal", dilation_rate=2),
                                       L.MaxPooling1D(2), L.GlobalMaxPooling1D()]),
    "separable-depthwise": (_IMG, lambda L: [L.SeparableConv2D(4, 3, depth_multiplier=2),
                                             L.DepthwiseConv2D(2)]),
    "conv2d-transpose": (_IMG, lambda L: [L.Conv2DTranspose(2, 3, strides=2)]),
    "resampling": (_IMG, lambda L: [L.UpSampling2D(), L.ZeroPadding2D(1), L.Cropping2D(2),
                                    L.AveragePooling2D(2, padding="same")]),
    "activations": (_VEC, lambda L: [L.Rescaling(0.5, offset=1.0), L.Dense(4),
                                     L.Activation("tanh"), L.LeakyReLU(0.2), L.ELU(),
                                     L.PReLU(), L.Softmax()]),
    "sequence": (_SEQ, lambda L: [L.Masking(), L.GaussianNoise(0.1), L.SpatialDropout1D(0.2),
                                  L.TimeDistributed(L.Dense(2)), L.Permute((2, 1)),
                                  L.Flatten(), L.RepeatVector(2)]),
    "embedding-masked": ("tokens", lambda L: [L.Embedding(10, 4, mask_zero=True),
                                              L.GlobalAveragePooling1D()]),
    "grouped-conv1d": (_SEQ, lambda L: [L.Conv1D(4, 3, groups=2)]),
    "batchnorm-no-center": (_VEC, lambda L: [L.BatchNormalization(center=False,
                                                                  momentum=0.9)]),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_keras_layer_kinds_load_and_predict_as_keras(keras, tmp_path, kind):
    shape, layers = KINDS[kind]
    keras.utils.set_random_seed(0)
    if shape == "tokens":
        x = np.random.default_rng(0).integers(0, 10, (3, 6)).astype("int32")
        x[0, 4:] = 0
        inp = keras.Input((6,), dtype="int32")
    else:
        x = np.random.default_rng(0).normal(size=(3,) + shape).astype("float32")
        inp = keras.Input(shape)
    km = keras.Sequential([inp] + layers(keras.layers))
    km.save(tmp_path / "k.keras")
    model = nn.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), km.predict(x, verbose=0),
                               rtol=RTOL, atol=ATOL)


def test_a_keras_sequential_built_by_fit_without_an_input_loads(keras, tmp_path):
    keras.utils.set_random_seed(0)
    km = keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(1)])
    _check(km, _data((5,)), _data((1,), seed=1), tmp_path)
