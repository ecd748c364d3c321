"""Keras files both ways (session 20): a functional Keras file with masks loads (its mask
ops rebuilt), Keras's format is written by ``save`` and read back by real Keras, and
``save_weights``/``load_weights`` speak Keras's ``.weights.h5``. Every Keras file here is
written, or read, by real Keras 3 (torch backend) in the test."""
import numpy as np
import pytest
from conftest import keras_twins, run_in_child
from test_keras_file_s19 import _check

from wsekern import nn

pytest.importorskip("h5py")
RTOL = ATOL = 1e-5


def _padded_tokens(n=16, t=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 20, (n, t)).astype("int32")
    for i in range(n):                   # each row padded after a length of 1..t
        x[i, 1 + i % t:] = 0
    return x


# -- 1. a functional Keras file with Embedding(mask_zero=True) -----------------------------
def _emb_mha_gap(K):
    L = K.layers
    x = K.Input((6,), dtype="int32")
    e = L.Embedding(20, 8, mask_zero=True)(x)
    a = L.MultiHeadAttention(2, 4)(e, e)
    h = L.LayerNormalization()(L.Add()([e, a]))
    return K.Model(x, L.Dense(3)(L.GlobalAveragePooling1D()(h)))


def _two_masked_inputs(K):
    L = K.layers
    a, b = K.Input((6,), dtype="int32"), K.Input((6,), dtype="int32")
    ea, eb = L.Embedding(20, 8, mask_zero=True)(a), L.Embedding(20, 8, mask_zero=True)(b)
    h = L.Dense(4)(L.Add()([ea, eb]))                  # Keras merges the masks: logical_or
    return K.Model([a, b], L.Dense(3)(L.GlobalAveragePooling1D()(h)))


def _masking_mha(K):
    L = K.layers
    x = K.Input((6, 3))
    h = L.Masking(0.0)(x)                               # any(not_equal(x, 0), axis=-1)
    a = L.MultiHeadAttention(2, 4)(h, h)
    return K.Model(x, L.Dense(3)(L.GlobalAveragePooling1D()(a)))


@pytest.mark.parametrize("build", [_emb_mha_gap, _two_masked_inputs, _masking_mha],
                         ids=["emb-mha-ln-gap", "two-masked-inputs", "masking-mha"])
def test_a_functional_keras_file_with_masks_loads_and_trains_as_keras(keras, tmp_path, build):
    """Keras records the masks as keras.ops nodes (not_equal, logical_or, any) feeding
    GlobalAveragePooling1D's mask: rebuilt, the padded steps are skipped as in Keras (the
    predictions, one more fit step's loss and weights equal Keras's)."""
    keras.utils.set_random_seed(0)
    km = build(keras)
    tok = _padded_tokens()
    if build is _two_masked_inputs:
        x = [tok, _padded_tokens(seed=1)[:, ::-1].copy()]
    elif build is _masking_mha:
        x = np.random.default_rng(2).normal(size=(16, 6, 3)).astype("float32")
        x[tok == 0] = 0.0
    else:
        x = tok
    y = np.random.default_rng(1).normal(size=(16, 3)).astype("float32")
    # SGD: MHA's key bias has a zero gradient in exact arithmetic (softmax ignores a shift);
    # Adam would scale each side's rounding noise (1e-9) up to a step of its own
    model = _check(km, x, y, tmp_path, optimizer="sgd")
    ops = [la for la in model.layers if type(la).__name__ == "OpLayer"]
    assert {o.op for o in ops} & {"not_equal", "any", "logical_or"}


def test_global_max_pooling_ignores_the_mask_as_keras(keras):
    """Keras 3's GlobalMaxPooling1D does not take a mask (it warns and drops it): the padded
    steps take part in the maximum. Ours skipped them: another answer than Keras's."""
    def build(K):
        L = K.layers
        return K.Sequential([K.Input((6,), dtype="int32"), L.Embedding(20, 8, mask_zero=True),
                             L.GlobalMaxPooling1D(), L.Dense(2)])
    with pytest.warns(UserWarning, match="does not support masking"):
        want, got = keras_twins(keras, build, lambda K, m: m.predict(_padded_tokens(),
                                                                     verbose=0))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


# -- 2. model.save("m.keras") writes Keras's format: real Keras loads it ------------------
def _seq(K):
    L = K.layers
    return K.Sequential([K.Input((5,)), L.Dense(7, activation="relu"), L.Dense(3)])


def _multi(K):
    L = K.layers
    a, b = K.Input((5,), name="a"), K.Input((3,), name="b")
    h = L.Concatenate()([L.Dense(4, activation="tanh")(a), L.Dense(4)(b)])
    h = L.Add()([h, L.Dense(8)(h)])
    return K.Model([a, b], L.Dense(3)(h * 0.5))


def _conv(K):
    L = K.layers
    # no conv bias before BN: its gradient is zero in exact arithmetic, and Adam would scale
    # each side's rounding noise up to a step of its own
    return K.Sequential([K.Input((8, 8, 2)), L.Conv2D(4, 3, padding="same", use_bias=False),
                         L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(),
                         L.GlobalAveragePooling2D(), L.Dense(3)])


def _branches(K):
    """Keras orders this graph's Dense layers [x1, y1, x2] (by depth from the output); ours
    [y1, x1, x2]: Keras names its HDF5 groups and orders its optimizer slots by its order,
    so a writer in our order swapped two same-shaped kernels (a silent wrong answer)."""
    L = K.layers
    a = K.Input((5,))
    x1 = L.Dense(4)(a)
    x2 = L.Dense(4)(x1)
    y1 = L.Dense(4)(a)
    return K.Model(a, L.Dense(3)(L.Concatenate()([y1, x2])))


def _x(build, n=16):
    rng = np.random.default_rng(0)
    if build is _multi:
        return [rng.normal(size=(n, 5)).astype("float32"),
                rng.normal(size=(n, 3)).astype("float32")]
    if build is _conv:
        return rng.normal(size=(n, 8, 8, 2)).astype("float32")
    if build is _emb_mha_gap:
        return _padded_tokens(n)
    return rng.normal(size=(n, 5)).astype("float32")


def _no_warning_save(model, path):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save(path)


@pytest.mark.parametrize("build", [_seq, _multi, _conv, _emb_mha_gap, _branches],
                         ids=["sequential", "functional-multi-input", "conv-bn-pool",
                              "embedding-mha-layernorm", "branch-order"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd-momentum"])
def test_a_keras_file_we_write_loads_in_keras_and_trains_on_as_ours(keras, tmp_path, build,
                                                                     optimizer):
    """Ours trains a step and saves to .keras; real Keras loads the file, predicts as ours
    (1e-5) and, from the optimizer state in the file, takes the next step as ours does."""
    x = _x(build)
    y = np.random.default_rng(1).normal(size=(16, 3)).astype("float32")
    keras.utils.set_random_seed(0)
    model = build(nn)
    opt = (lambda K: K.optimizers.Adam(0.01)) if optimizer == "adam" else \
        (lambda K: K.optimizers.SGD(0.05, momentum=0.9))
    model.compile(opt(nn), "mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "m.keras"
    _no_warning_save(model, path)
    km = keras.models.load_model(path)
    np.testing.assert_allclose(km.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=RTOL, atol=ATOL)
    assert int(km.optimizer.iterations.numpy()) == 2
    assert type(km.optimizer).__name__ == type(model.optimizer).__name__
    theirs = km.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    ours = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(km.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)
    # and the file loads back here exactly: the next step as the original's
    back = nn.load_model(path)
    assert back.optimizer.iterations == 2


def test_our_keras_file_loads_back_here_exactly(tmp_path):
    """What Keras's format cannot hold rides along under wsekern/: the sparsity mask and
    the optimizer state Keras's layout cannot carry (a pruned layer's) come back."""
    x = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    y = np.random.default_rng(1).normal(size=(16, 3)).astype("float32")
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input((5,)), nn.layers.Dense(8, sparsity=0.5),
                           nn.layers.Dense(3)])
    model.compile(nn.optimizers.Nadam(0.01), "mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "m.keras"
    with pytest.warns(UserWarning, match="fresh optimizer"):
        model.save(path)
    import zipfile
    names = zipfile.ZipFile(path).namelist()
    assert {"metadata.json", "config.json", "model.weights.h5"} <= set(names)
    back = nn.load_model(path)
    np.testing.assert_array_equal(back.layers[0].mask, model.layers[0].mask)
    a = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"]
    b = back.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(b, a, rtol=1e-6)
    for u, v in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


def test_a_pruned_layer_reaches_keras_as_its_masked_dense_kernel(keras, tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input((5,)), nn.layers.Dense(8, sparsity=0.75),
                           nn.layers.Dense(3)])
    path = tmp_path / "m.keras"
    _no_warning_save(model, path)                 # not compiled: nothing is left out
    km = keras.models.load_model(path)
    kernel = km.layers[0].get_weights()[0]
    assert np.count_nonzero(kernel) == np.count_nonzero(model.layers[0].mask)
    np.testing.assert_allclose(km.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=RTOL, atol=ATOL)


def test_a_model_keras_lacks_is_written_in_our_format_with_a_warning(tmp_path):
    model = nn.Sequential([nn.Input((6,), dtype="int32"),
                           nn.layers.TokenAndPositionEmbedding(20, 6, 8),
                           nn.layers.GlobalAveragePooling1D(), nn.layers.Dense(2)])
    path = tmp_path / "m.keras"
    with pytest.warns(UserWarning, match="TokenAndPositionEmbedding, which Keras does not"):
        model.save(path)
    x = _padded_tokens()
    np.testing.assert_allclose(nn.load_model(path).predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=0, atol=0)


# -- 3. save_weights / load_weights in Keras's .weights.h5 layout, both ways --------------
@pytest.mark.parametrize("build", [_seq, _multi, _conv, _emb_mha_gap, _branches],
                         ids=["sequential", "functional-multi-input", "conv-bn-pool",
                              "embedding-mha-layernorm", "branch-order"])
def test_weights_h5_both_ways_with_keras(keras, tmp_path, build):
    x = _x(build)
    keras.utils.set_random_seed(1)
    km = build(keras)
    keras.utils.set_random_seed(2)
    model = build(nn)
    # Keras's file into ours
    km.save_weights(tmp_path / "k.weights.h5")
    model.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(model.predict(x, verbose=0), km.predict(x, verbose=0),
                               rtol=RTOL, atol=ATOL)
    # ours (other weights) into Keras
    nn.utils.set_random_seed(3)
    other = build(nn)
    other.save_weights(tmp_path / "o.weights.h5")
    km.load_weights(tmp_path / "o.weights.h5")
    np.testing.assert_allclose(km.predict(x, verbose=0), other.predict(x, verbose=0),
                               rtol=RTOL, atol=ATOL)


# -- hostile files on the new reader paths (each loaded in a child process) ---------------
def _our_keras_file(path):
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input((5,)), nn.layers.Dense(4), nn.layers.Dense(3)])
    model.compile(nn.optimizers.SGD(0.1, momentum=0.9), "mse")
    model.save(path)
    return model


def _h5_bytes(build):
    import io

    import h5py
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        build(f)
    return buf.getvalue()


def _dense_groups(f, kernel0=None):
    import h5py
    g = f.create_group("layers")
    d = g.create_group("dense/vars")
    if kernel0 is None:
        d.create_dataset("0", data=np.zeros((5, 4), "float32"))
    else:
        kernel0(d)
    d.create_dataset("1", data=np.zeros((4,), "float32"))
    d1 = g.create_group("dense_1/vars")
    d1.create_dataset("0", data=np.zeros((4, 3), "float32"))
    d1.create_dataset("1", data=np.zeros((3,), "float32"))
    return h5py


def _soft_link(d):
    d.parent.create_dataset("elsewhere", data=np.zeros((5, 4), "float32"))
    import h5py
    d["0"] = h5py.SoftLink("/layers/dense/elsewhere")


def _external(d):
    d.create_dataset("0", shape=(5, 4), dtype="float32", external=[("/dev/zero", 0, 80)])


HOSTILE_H5 = {
    "wrong-shape": (lambda d: d.create_dataset("0", data=np.zeros((6, 4), "float32")),
                    "needs (5, 4)"),
    "soft-link": (_soft_link, "SoftLink"),
    "external-storage": (_external, "external storage"),
    "strings": (lambda d: d.create_dataset("0", data=np.array([b"x"] * 20).reshape(5, 4)),
                "weights are numbers"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_H5))
@pytest.mark.parametrize("where", ["keras-zip", "weights-h5"])
def test_hostile_weights_in_our_keras_files_are_refused(tmp_path, case, where):
    """The weights of a .keras file we wrote (read with our own config riding along), and a
    .weights.h5 file for load_weights, go through the same guarded reader."""
    import zipfile
    make, words = HOSTILE_H5[case]
    data = _h5_bytes(lambda f: _dense_groups(f, make))
    if where == "keras-zip":
        _our_keras_file(tmp_path / "good.keras")
        path = tmp_path / "bad.keras"
        with zipfile.ZipFile(tmp_path / "good.keras") as z:
            items = {n: z.read(n) for n in z.namelist()}
        items["model.weights.h5"] = data
        with zipfile.ZipFile(path, "w") as z:
            for n, v in items.items():
                z.writestr(n, v)
        call = f"nn.load_model({str(path)!r})"
    else:
        path = tmp_path / "bad.weights.h5"
        path.write_bytes(data)
        call = (f"m = nn.Sequential([nn.Input((5,)), nn.layers.Dense(4), nn.layers.Dense(3)])"
                f"; m.load_weights({str(path)!r})")
    proc = run_in_child(f"""
        from wsekern import nn
        try:
            {call}
        except (ValueError, ImportError) as e:
            print(type(e).__name__, "::", e)
        else:
            print("LOADED")
        """, limit_gb=3)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "::" in proc.stdout and words in proc.stdout, proc.stdout[-2000:]


def test_our_config_in_a_keras_file_asking_for_a_huge_layer_is_refused(tmp_path):
    import json
    import zipfile
    _our_keras_file(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as z:
        items = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(items["wsekern/config.json"])
    meta["model"]["config"]["layers"][0]["config"]["units"] = 10**12
    items["wsekern/config.json"] = json.dumps(meta).encode()
    path = tmp_path / "huge.keras"
    with zipfile.ZipFile(path, "w") as z:
        for n, v in items.items():
            z.writestr(n, v)
    proc = run_in_child(f"""
        from wsekern import nn
        try:
            nn.load_model({str(path)!r})
        except ValueError as e:
            print("::", e)
        """, limit_gb=3)
    assert "::" in proc.stdout and "larger than any size" in proc.stdout, \
        proc.stdout + proc.stderr[-2000:]


def test_our_keras_file_beyond_max_bytes_is_refused_before_reading(tmp_path):
    _our_keras_file(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="beyond max_bytes=100"):
        nn.load_model(tmp_path / "m.keras", max_bytes=100)
    m = nn.Sequential([nn.Input((5,)), nn.layers.Dense(4), nn.layers.Dense(3)])
    m.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="beyond max_bytes=100"):
        nn.saving.load_weights(m, tmp_path / "w.weights.h5", max_bytes=100)


def test_without_h5py_save_writes_our_format_and_says_why(tmp_path):
    path = tmp_path / "m.keras"
    proc = run_in_child(f"""
        import sys, warnings
        sys.modules["h5py"] = None                      # as if it were not installed
        from wsekern import nn
        m = nn.Sequential([nn.Input((5,)), nn.layers.Dense(3)])
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            m.save({str(path)!r})
        print([str(x.message) for x in w])
        print(type(nn.load_model({str(path)!r})).__name__)
        """)
    assert "wsekern[keras]" in proc.stdout and "Sequential" in proc.stdout, \
        proc.stdout + proc.stderr[-2000:]
