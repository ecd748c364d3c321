"""Issue 12's model-file items: atomic save, NumPy integers in configs, the whole optimizer
(config and state) restored so training resumes exactly, values read from a file checked,
malformed configs as ValueErrors naming the key, custom functions saved only when they can
be restored, and hostile files (bombs, traversal, pickles, foreign classes, wrong masks)
refused - the hostile ones in a child process under an address-space limit."""
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from wsekern import nn
from wsekern.nn import layers as L


def mlp(optimizer, sparsity=0.0):
    nn.utils.set_random_seed(0)
    model = nn.Sequential([L.Dense(16, activation="relu", input_shape=(8,), sparsity=sparsity),
                           L.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def data(n=64):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 8)).astype("float32"), rng.integers(0, 3, n)


def rewrite(path, out, edit_config=None, members=None, drop=()):
    """Copy a model zip, editing its config (a function of the dict) and members."""
    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    if edit_config is not None:
        items["config.json"] = json.dumps(edit_config(json.loads(items["config.json"]))).encode()
    for name in drop:
        items.pop(name, None)
    items.update(members or {})
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, value in items.items():
            z.writestr(name, value)
    return out


# -- atomic save and what a config may hold --------------------------------------------------
def test_failed_save_leaves_the_existing_file_intact(tmp_path, monkeypatch):
    x, y = data()
    model = mlp("adam")
    path = tmp_path / "model.keras"
    model.save(path)
    good = path.read_bytes()

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(zipfile.ZipFile, "writestr", disk_full)
    with pytest.raises(OSError, match="No space"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]        # no temporary left behind
    np.testing.assert_allclose(nn.load_model(path).predict(x, verbose=0),
                               model.predict(x, verbose=0))


def test_numpy_integers_in_layer_arguments_save_and_load(tmp_path):
    nn.utils.set_random_seed(0)
    model = nn.Sequential([L.Dense(np.int64(4), input_shape=(np.int64(8),)),
                           L.Dropout(0.5, seed=np.int64(1)), L.Dense(2)])
    model.save(tmp_path / "m.keras")
    loaded = nn.load_model(tmp_path / "m.keras")
    assert loaded.input_shape == (None, 8) and loaded.layers[1].seed == 1
    x, _ = data(4)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("make_optimizer", [
    lambda: nn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: nn.optimizers.Adam(0.01, beta_1=0.8),
    lambda: nn.optimizers.AdamW(0.01, weight_decay=0.01),
], ids=["sgd-momentum", "adam", "adamw"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5])
def test_training_resumes_exactly_after_load(tmp_path, make_optimizer, sparsity):
    """SGD's momentum came back 0.0 and its velocity was lost: one more epoch then
    differed by 0.15. Now config and state (slots, step count) are restored."""
    x, y = data()
    model = mlp(make_optimizer(), sparsity)
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = nn.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert type(loaded.optimizer) is type(model.optimizer)
    for name in ("momentum", "nesterov", "beta_1", "weight_decay"):
        assert getattr(loaded.optimizer, name, None) == getattr(model.optimizer, name, None)
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def attention_model():
    """Pruned projections inside layers made of sublayers: a MultiHeadAttention, and a
    TransformerBlock holding another one and its MLP."""
    nn.utils.set_random_seed(0)
    inp = nn.Input(shape=(6, 8))
    h = L.MultiHeadAttention(2, 4, sparsity=0.5, name="mha")(inp, inp)
    h = L.TransformerBlock(2, 16, sparsity=0.75, name="block")(h)
    out = L.Dense(3)(L.Flatten()(h))
    model = nn.Model(inp, out)
    model.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse")
    return model


def kernel_masks(model):
    mha, block = model.get_layer("mha"), model.get_layer("block")
    return [d.mask for d in mha.sublayers + block.attn.sublayers + [block.fc, block.proj]]


def test_pruned_attention_layers_load_back_with_their_patterns(tmp_path):
    """A model with a pruned MultiHeadAttention did not load: its weights were saved as the
    kept values and its sublayers' masks not at all. Now the masks round-trip, the
    predictions are equal, and training resumes exactly."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 6, 8)).astype("float32")
    y = rng.normal(size=(8, 3)).astype("float32")
    model = attention_model()
    model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = nn.load_model(tmp_path / "m.keras")
    for a, b in zip(kernel_masks(model), kernel_masks(loaded), strict=True):
        assert 0 < a.sum() < a.size
        np.testing.assert_array_equal(a, b)
    assert loaded.get_layer("mha").sparsity == 0.5
    assert loaded.get_layer("block").attn.sparsity == loaded.get_layer("block").sparsity == 0.75
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    dense = loaded.get_layer("mha").sublayers[0]          # pruned weights stayed zero
    assert np.all(dense.get_weights()[0][~dense.mask] == 0)


def test_pruned_attention_weights_are_dense_kernels_as_in_keras(tmp_path):
    """get_weights gives each projection's dense kernel in Keras's shape (d, heads,
    key_dim), pruned entries zero, as a pruned Dense does; set_weights and
    save_weights/load_weights take them back."""
    model = attention_model()
    mha = model.get_layer("mha")
    shapes = [w.shape for w in mha.get_weights()]
    assert shapes == [(8, 2, 4), (2, 4)] * 3 + [(2, 4, 8), (8,)]
    q = mha.get_weights()[0]
    np.testing.assert_array_equal(q.reshape(8, 8) != 0, mha.query_dense.mask)
    model.save_weights(tmp_path / "w.weights.h5")
    other = attention_model()
    other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@nn.saving.register_keras_serializable(package="s16_lambda")
def first_two(t):
    return t[:, :2] * 2.0


@nn.saving.register_keras_serializable(package="s16_lambda")
def two_features(input_shape):
    return tuple(input_shape[:-1]) + (2,)


@pytest.mark.parametrize("output_shape", [(2,), two_features])
def test_lambda_keeps_its_output_shape_through_config_json_and_file(tmp_path, output_shape):
    """Lambda.get_config() dropped output_shape (Keras 3's keeps it): a model loaded back
    probed the function for its shape instead."""
    model = nn.Sequential([L.Input((4,)), L.Lambda(first_two, output_shape=output_shape,
                                                   name="lam"), L.Dense(1)])
    config = model.get_layer("lam").get_config()
    assert config["output_shape"] == (output_shape if isinstance(output_shape, tuple) else
                                      "s16_lambda>two_features")
    model.save(tmp_path / "m.keras")
    loaded = (nn.load_model(tmp_path / "m.keras"), nn.models.model_from_json(model.to_json()))
    for other in loaded:
        lam = other.get_layer("lam")
        assert lam._output_shape == output_shape
        assert lam.get_config() == config
        assert lam.compute_output_shape((None, 4)) == (None, 2)
    x = np.arange(12, dtype="float32").reshape(3, 4)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded[0].predict(x, verbose=0))


def test_lambda_config_matches_keras_on_output_shape(keras):
    for shape in (None, (2,), (3, None)):
        ours = L.Lambda(first_two, output_shape=shape).get_config()
        theirs = keras.layers.Lambda(first_two, output_shape=shape).get_config()
        assert ("output_shape" in ours) == ("output_shape" in theirs)
        assert ours.get("output_shape") == theirs.get("output_shape")


@pytest.mark.parametrize("bad", ["(2,)", (-1,), (2.5,), (True,), {"a": 1}])
def test_lambda_output_shape_of_a_wrong_kind_is_refused(bad):
    with pytest.raises(ValueError, match="output_shape") as e:
        L.Lambda(first_two, output_shape=bad)
    assert repr(bad)[:20] in str(e.value)


def test_lambda_output_shape_function_unknown_at_load_is_named():
    config = L.Lambda(first_two, output_shape=two_features).get_config()
    config["output_shape"] = "nobody>knows"
    with pytest.raises(ValueError, match="'nobody>knows'.*custom_objects"):
        L.Lambda.from_config(config)


@pytest.mark.parametrize("value", [-1.0, "NaN", "inf"])     # 0 is valid, as in Keras
@pytest.mark.parametrize("suffix, member", [(".wsekern", "config.json"),
                                            (".keras", "wsekern/config.json")])
def test_learning_rate_read_from_a_file_is_validated(tmp_path, value, suffix, member):
    # our format, and our config riding in a .keras file in Keras's format (session 20),
    # which needs h5py (without it a .keras path gets our own format: the first case)
    if suffix == ".keras":
        pytest.importorskip("h5py")
    model = mlp(nn.optimizers.SGD(0.1, momentum=0.9))
    model.save(tmp_path / f"m{suffix}")

    def edit(meta):
        meta["optimizer"]["config"]["learning_rate"] = float(value)
        return meta
    with zipfile.ZipFile(tmp_path / f"m{suffix}") as z:
        items = {n: z.read(n) for n in z.namelist()}
    meta = edit(json.loads(items[member]))
    items[member] = json.dumps(meta).encode()          # NaN written as the token NaN
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as z:
        for n, v in items.items():
            z.writestr(n, v)
    with pytest.raises(ValueError, match="learning_rate"):
        nn.load_model(tmp_path / "bad.keras")


def test_custom_activation_is_refused_at_save_with_the_reason(tmp_path):
    def swish_ish(x):
        return x * nn.activations.sigmoid(x)
    path = tmp_path / "m.keras"
    mlp("adam").save(path)
    before = path.read_bytes()
    model = nn.Sequential([L.Dense(4, activation=swish_ish, input_shape=(8,))])
    with pytest.raises(ValueError, match="swish_ish|register_keras_serializable"):
        model.save(path)
    assert path.read_bytes() == before


def test_custom_function_shadowing_a_builtin_name_is_refused(tmp_path):
    def relu(x):                              # not nn.activations.relu: would load as it
        return x * 2.0
    model = nn.Sequential([L.Dense(4, activation=relu, input_shape=(8,))])
    with pytest.raises(ValueError, match="relu"):
        model.save(tmp_path / "m.keras")


# -- malformed configs: ValueError naming the key, never KeyError/TypeError ------------------
def _paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _mutated(meta, path, how):
    meta = json.loads(json.dumps(meta))
    parent = meta
    for k in path[:-1]:
        parent = parent[k]
    if how == "drop":
        if isinstance(parent, list):
            parent.pop(path[-1])
        else:
            parent.pop(path[-1])
    else:
        parent[path[-1]] = how
    return meta


def test_malformed_config_raises_value_errors(tmp_path):
    x, y = data()
    inp = nn.Input(shape=(8,))
    out = L.Dense(3, activation="softmax")(L.add([L.Dense(8)(inp), inp]))
    func = nn.Model(inp, out)
    func.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    func.fit(x, y, epochs=1, verbose=0)
    models = {"sequential": mlp(nn.optimizers.SGD(0.1, momentum=0.9), 0.5), "functional": func}
    checked = 0
    for kind, model in models.items():
        src = tmp_path / f"{kind}.wsekern"
        model.save(src)
        with zipfile.ZipFile(src) as z:
            meta = json.loads(z.read("config.json"))
        for path in _paths(meta):
            for how in ("drop", "text", -7, {"x": 1}):
                bad = rewrite(src, tmp_path / "bad.keras",
                              edit_config=lambda m, p=path, h=how: _mutated(m, p, h))
                try:
                    nn.load_model(bad)
                except ValueError:
                    pass                      # the expected failure (ConfigError included)
                except Exception as e:        # noqa: BLE001
                    pytest.fail(f"{kind}: {how!r} at {path} raised {type(e).__name__}: {e}")
                checked += 1
    assert checked > 200


def test_malformed_config_message_names_the_key(tmp_path):
    mlp("adam").save(tmp_path / "m.wsekern")

    def drop_units(meta):
        del meta["model"]["config"]["layers"][0]["config"]["units"]
        return meta
    with pytest.raises(ValueError, match="units"):
        nn.load_model(rewrite(tmp_path / "m.wsekern", tmp_path / "b.keras", drop_units))

    def drop_layers(meta):
        del meta["model"]["config"]["layers"]
        return meta
    with pytest.raises(ValueError, match="'layers'"):
        nn.load_model(rewrite(tmp_path / "m.wsekern", tmp_path / "b.keras", drop_layers))


# -- hostile files, each loaded in a child process under an address-space limit --------------
CHILD = textwrap.dedent("""
    import resource, sys
    from wsekern import nn
    with open("/proc/self/status") as f:
        vm = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize")][0]
    limit = vm + int(sys.argv[2]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        nn.load_model(sys.argv[1])
    except ValueError as e:
        print("REFUSED:", e)
        sys.exit(3)
    print("LOADED")
""")


def load_in_child(path, headroom_mib=256):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(headroom_mib)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1",
                               "OPENBLAS_NUM_THREADS": "1"})
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "good.wsekern"
    model = mlp(nn.optimizers.SGD(0.1, momentum=0.9), sparsity=0.5)
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(path)
    return path


@pytest.fixture(scope="module")
def bomb_npy():
    """128 MiB of zeros as .npy: about 130 KB once deflated, far beyond the child's
    64 MiB of headroom if it were ever decompressed."""
    buf = io.BytesIO()
    np.save(buf, np.zeros(2**25, "float32"))
    return buf.getvalue()


def test_good_file_loads_in_the_child(saved):
    code, out = load_in_child(saved)
    assert code == 0 and "LOADED" in out, out


def test_bomb_member_declaring_more_than_the_model_holds_is_refused_before_reading(
        saved, tmp_path, bomb_npy):
    # the model's first kernel is 8 x 16 floats
    bomb = rewrite(saved, tmp_path / "bomb.keras", members={"weights/0.npy": bomb_npy})
    assert bomb.stat().st_size < 2**20
    code, out = load_in_child(bomb, headroom_mib=64)
    assert code == 3 and "declares" in out, out


def test_unused_members_are_never_read(saved, tmp_path, bomb_npy):
    junk = rewrite(saved, tmp_path / "junk.keras", members={"junk.npy": bomb_npy})
    code, out = load_in_child(junk, headroom_mib=64)
    assert code == 0 and "LOADED" in out, out


def test_whitespace_config_is_refused_by_its_size_cap(saved, tmp_path):
    with zipfile.ZipFile(saved) as z:
        raw = z.read("config.json")
    padded = raw[:-1] + b" " * 1_000_000 + raw[-1:]
    bad = rewrite(saved, tmp_path / "ws.keras", members={"config.json": padded})
    code, out = load_in_child(bad, headroom_mib=128)
    assert code == 3 and "config.json" in out and "at most" in out, out


def test_config_nested_beyond_the_json_reader_is_refused_by_name(saved, tmp_path):
    """A small but deeply nested config.json raised a bare RecursionError from json."""
    with zipfile.ZipFile(saved) as z:
        meta = json.loads(z.read("config.json"))
    depth = 50_000
    deep = json.dumps(meta)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    bad = rewrite(saved, tmp_path / "deep.keras", members={"config.json": deep.encode()})
    code, out = load_in_child(bad, headroom_mib=128)
    assert code == 3 and "nests deeper" in out, out


def test_config_asking_for_a_huge_layer_is_refused_before_building(saved, tmp_path):
    def huge(meta):
        meta["model"]["config"]["layers"][1]["config"]["units"] = 10**9
        return meta
    bad = rewrite(saved, tmp_path / "huge.keras", edit_config=huge)
    code, out = load_in_child(bad, headroom_mib=256)
    assert code == 3 and "units" in out, out


def test_path_traversal_member_is_refused(saved, tmp_path):
    bad = rewrite(saved, tmp_path / "trav.keras", members={"../../evil.npy": b"x"})
    code, out = load_in_child(bad)
    assert code == 3 and "unsafe path" in out, out


def test_pickled_array_is_refused(saved, tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}] * 128, dtype=object).reshape(8, 16), allow_pickle=True)
    bad = rewrite(saved, tmp_path / "pickle.keras", members={"weights/0.npy": buf.getvalue()})
    code, out = load_in_child(bad)
    assert code == 3 and "weights/0.npy" in out, out


@pytest.mark.parametrize("class_name", ["os.system", "subprocess.Popen", "Tensor", "Callback",
                                        "__import__"])
def test_foreign_class_names_are_refused(saved, tmp_path, class_name):
    def foreign(meta):
        meta["model"]["config"]["layers"][0]["class_name"] = class_name
        return meta
    bad = rewrite(saved, tmp_path / "foreign.keras", edit_config=foreign)
    code, out = load_in_child(bad)
    assert code == 3 and "unknown class" in out, out


def test_mask_of_a_wrong_but_broadcastable_shape_is_refused(saved, tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.ones((1, 16), dtype=bool))            # the kernel is (8, 16)
    bad = rewrite(saved, tmp_path / "mask.keras", members={"masks/0.npy": buf.getvalue()})
    code, out = load_in_child(bad)
    assert code == 3 and "masks/0.npy" in out, out


@pytest.mark.parametrize("key, says", [
    ("1/9", "has 4 sublayers"),              # MultiHeadAttention has 4 projections
    ("1/0/0", "has 0 sublayers"),            # a Dense has none
    ("0/0", "has 0 sublayers"),              # nor has the input layer
    ("1/x", "names layer"),
    ("1", "cannot be sparse"),               # the masks are its projections'
    ("2/0", "cannot be sparse"),             # the block's LayerNormalization
    ("\u00b2", "names layer"),                # '²'.isdigit(), but int('²') raised ValueError
    ("1/\u00b2", "names layer"),
    ("\u0661", "names layer"),                # an Arabic-Indic 1, int() takes it as 1
])
def test_mask_naming_a_sublayer_that_cannot_take_it_is_refused(tmp_path, key, says):
    model = attention_model()
    model.save(tmp_path / "a.wsekern")
    buf = io.BytesIO()
    np.save(buf, np.ones((8, 8), dtype=bool))

    def add_mask(meta):
        meta["masks"][key] = [8, 8]
        return meta
    bad = rewrite(tmp_path / "a.wsekern", tmp_path / "bad.keras", edit_config=add_mask,
                  members={f"masks/{key.replace('/', '-')}.npy": buf.getvalue()})
    code, out = load_in_child(bad)
    assert code == 3 and says in out, out


@pytest.mark.parametrize("key", ["\u00b2/0", "0/\u00b2"])
def test_optimizer_state_key_of_non_ascii_digits_is_refused(saved, tmp_path, key):
    # '²'.isdigit() is true but int('²') raised a bare ValueError naming neither the file
    # nor the key (the file's own key, then the optimizer's set-state check)
    def rename(meta):
        meta["optimizer_state"][key] = meta["optimizer_state"].pop("0/0")
        return meta
    with zipfile.ZipFile(saved) as z:
        member = z.read("optimizer/0-0.npy")
    bad = rewrite(saved, tmp_path / "digits.keras", edit_config=rename,
                  members={f"optimizer/{key.replace('/', '-')}.npy": member})
    code, out = load_in_child(bad)
    assert code == 3 and repr(key) in out and "invalid literal" not in out, out


def test_optimizer_state_of_the_wrong_shape_is_refused(saved, tmp_path):
    def grow(meta):
        meta["optimizer_state"]["0/0"][0] = [10**6]
        return meta
    bad = rewrite(saved, tmp_path / "state.keras", edit_config=grow)
    code, out = load_in_child(bad)
    assert code == 3 and "0/0" in out, out
