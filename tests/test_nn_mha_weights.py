"""MultiHeadAttention's weights in Keras's shapes and order: query/key/value kernels
(d, heads, key_dim) with biases (heads, key_dim), the output kernel (heads, value_dim, d_out)
with its bias (d_out,). Checked against a NumPy einsum of the same arrays (no Keras needed)
and against Keras 3 itself from the same weights (outputs and one SGD step), plus the
.keras files: pruned layers round-trip, and files written with the old flat kernels load."""
import json
import zipfile

import numpy as np
import pytest

from wsekern import nn

L = nn.layers


def einsum_mha(weights, q, v, heads, use_bias=True):
    """Keras's MultiHeadAttention written out with einsum, from Keras's weight list."""
    it = iter(weights)

    def proj(x, spec):
        w = next(it)
        y = np.einsum(spec, x, w)
        return y + next(it) if use_bias else y
    Q = proj(q, "btd,dhk->bthk")
    K = proj(v, "btd,dhk->bthk")
    V = proj(v, "btd,dhk->bthk")
    s = np.einsum("bqhk,bthk->bhqt", Q, K) / np.sqrt(Q.shape[-1])
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = np.einsum("bhqt,bthk->bqhk", p, V)
    return proj(o, "bqhk,hkd->bqd")


@pytest.mark.parametrize("use_bias", [True, False])
def test_weights_have_keras_shapes_and_compute_the_einsum(use_bias):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 5, 8)).astype(np.float32)
    v = rng.standard_normal((2, 7, 6)).astype(np.float32)
    mha = L.MultiHeadAttention(3, 4, value_dim=2, output_shape=5, use_bias=use_bias)
    mha(q, v)
    shapes = [(8, 3, 4), (3, 4), (6, 3, 4), (3, 4), (6, 3, 2), (3, 2), (3, 2, 5), (5,)]
    if not use_bias:
        shapes = shapes[::2]
    assert [w.shape for w in mha.get_weights()] == shapes
    new = [rng.standard_normal(s).astype(np.float32) * 0.5 for s in shapes]
    mha.set_weights(new)
    for a, b in zip(mha.get_weights(), new, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(mha(q, v).data, einsum_mha(new, q, v, 3, use_bias),
                               rtol=1e-5, atol=1e-5)


def test_key_of_its_own_width_gets_its_own_kernel():
    """A key of another width than the value (and, in a functional model, a value of
    another width than the query) builds each projection from its own input."""
    rng = np.random.default_rng(4)
    q, v, k = (rng.standard_normal((2, t, d)).astype(np.float32)
               for t, d in ((5, 8), (7, 6), (7, 3)))
    mha = L.MultiHeadAttention(2, 4)
    assert mha(q, v, key=k).shape == (2, 5, 8)
    assert [w.shape for w in mha.get_weights()][:6:2] == [(8, 2, 4), (3, 2, 4), (6, 2, 4)]
    qi, vi = nn.Input((5, 8)), nn.Input((7, 6))
    model = nn.Model([qi, vi], L.MultiHeadAttention(2, 4, name="m")(qi, vi))
    assert model.get_layer("m").get_weights()[4].shape == (6, 2, 4)
    assert model.predict([q, v], verbose=0).shape == (2, 5, 8)


def test_set_weights_names_the_keras_shape_it_wants():
    mha = L.MultiHeadAttention(2, 4)
    mha(np.zeros((1, 3, 8), np.float32))
    ws = mha.get_weights()
    ws[2] = np.zeros((8, 4, 2), np.float32)          # heads and key_dim swapped
    with pytest.raises(ValueError, match=r"key kernel has Keras's shape \(8, 2, 4\).*"
                                         r"received \(8, 4, 2\)"):
        mha.set_weights(ws)
    with pytest.raises(ValueError, match="expects 8 weight arrays"):
        mha.set_weights(ws[:7])


def tr(lib, **kw):
    i = lib.Input((6,), dtype="int32")
    e = lib.layers.Embedding(20, 8)(i)
    c = lib.Input((4, 5))
    a = lib.layers.MultiHeadAttention(2, 4, name="mha", **kw)(e, c)
    return lib.Model([i, c], lib.layers.Dense(3)(lib.layers.Flatten()(a)))


@pytest.mark.parametrize("kw", [{}, {"value_dim": 3, "output_shape": 7},
                                {"use_bias": False},
                                {"kernel_regularizer": "l2", "bias_constraint": "non_neg"}],
                         ids=["default", "dims", "nobias", "regularized"])
def test_keras_weights_load_and_train_alike(kw, keras):
    """The audit's reproducer: o.set_weights(keras_model.get_weights()) was refused. Now
    the outputs agree to 1e-5 and so do the weights after an SGD step (the gradients)."""
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 20, (4, 6)).astype("int32")
    ctx = rng.standard_normal((4, 4, 5)).astype("float32")
    y = rng.standard_normal((4, 3)).astype("float32")
    theirs, ours = tr(keras, **kw), tr(nn, **kw)
    ours.set_weights(theirs.get_weights())
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b))
    np.testing.assert_allclose(ours.predict([ids, ctx], verbose=0),
                               theirs.predict([ids, ctx], verbose=0), rtol=1e-5, atol=1e-5)
    for model, lib in ((ours, nn), (theirs, keras)):
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.5), loss="mse")
    for _ in range(2):
        a = ours.train_on_batch([ids, ctx], y)
        b = theirs.train_on_batch([ids, ctx], y)
        assert float(np.asarray(a).ravel()[0]) == pytest.approx(
            float(np.asarray(b).ravel()[0]), rel=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-4, atol=1e-6)


def pruned_model():
    nn.utils.set_random_seed(3)
    inp = nn.Input(shape=(6, 8))
    h = L.MultiHeadAttention(2, 4, sparsity=0.5, name="mha")(inp, inp)
    h = L.TransformerBlock(2, 16, sparsity=0.75, name="block")(h)
    model = nn.Model(inp, L.Dense(3)(L.Flatten()(h)))
    model.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse")
    return model


def test_pruned_attention_round_trips_and_old_flat_files_load(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 6, 8)).astype("float32")
    y = rng.normal(size=(8, 3)).astype("float32")
    model = pruned_model()
    model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    want = model.predict(x, verbose=0)
    # the code before session 17 saved each attention layer's Dense sublayers' flat weights
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(L.MultiHeadAttention, "get_weights", L.Layer.get_weights)
        model.save(tmp_path / "old.keras")
    with zipfile.ZipFile(tmp_path / "old.keras") as z:
        shapes = [tuple(s) for s, _ in json.loads(z.read("config.json"))["weights"]]
    assert shapes[:8] == [(8, 8), (8,)] * 4                 # written the old way
    for name in ("m.keras", "old.keras"):
        loaded = nn.load_model(tmp_path / name)
        assert [w.shape for w in loaded.get_layer("mha").get_weights()] == \
            [(8, 2, 4), (2, 4)] * 3 + [(2, 4, 8), (8,)]
        for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
        dense = loaded.get_layer("mha").query_dense
        assert np.array_equal(dense.mask, model.get_layer("mha").query_dense.mask)
        loaded.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)   # resumes


def test_containers_take_re_pruned_sublayers_through_their_hook():
    """The .keras loader re-prunes a container's sublayers and then calls the container's
    ``sublayers_changed()`` hook (it computed the container's sparsity and called a
    private ``_refresh_variables`` itself): the hook re-reads the sublayers' variables and
    takes their pruned fraction as the container's sparsity."""
    import inspect

    import wsekern.nn.saving as saving
    assert "_refresh_variables" not in inspect.getsource(saving)
    nn.utils.set_random_seed(5)
    block = L.TransformerBlock(2, 16, sparsity=0.5)
    block(np.zeros((1, 3, 8), np.float32))
    q = block.attn.query_dense
    mask = np.zeros(q.mask.shape, bool)
    mask[:, :2] = True                                   # keep 2 of 8 columns: 75% pruned
    old = q.kernel
    q.set_sparsity(0.75, mask=mask)
    # the weights list the live kernel at once (session 22: a container hid its sublayers
    # from the walk, so a stale list stopped training them); the hook sets the sparsity
    assert not any(getattr(v, "base", v) is old for v in block.weights)
    assert any(v is q.kernel for v in block.attn.weights)
    block.attn.sublayers_changed()
    block.sublayers_changed()
    assert not any(v is old for v in block.weights)
    assert any(v is q.kernel for v in block.attn.weights)
    sizes = [d.mask.size for d in block.attn.sublayers]
    kept = [d.mask.sum() for d in block.attn.sublayers]
    assert block.attn.sparsity == pytest.approx(1 - sum(kept) / sum(sizes))
    leaves = block.attn.sublayers + [block.fc, block.proj]
    assert block.sparsity == pytest.approx(
        1 - sum(d.mask.sum() for d in leaves) / sum(d.mask.size for d in leaves))


def test_a_same_size_array_of_another_shape_is_refused_outside_attention(tmp_path):
    """The loader reads an array in the file's shape when it has the model's size (for
    the flat attention kernels of old files): any other layer's set_weights still refuses
    it, naming both shapes."""
    import io
    nn.utils.set_random_seed(6)
    inp = nn.Input((4,))
    model = nn.Model(inp, L.Dense(3, name="d")(inp))
    model.save(tmp_path / "m.wsekern")
    with zipfile.ZipFile(tmp_path / "m.wsekern") as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(members["config.json"])
    assert meta["weights"][0][0] == [4, 3]
    meta["weights"][0][0] = [3, 4]
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 4), np.float32))
    members["weights/0.npy"] = buf.getvalue()
    members["config.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match=r"'d'.*\(4, 3\); received \(3, 4\)"):
        nn.load_model(tmp_path / "bad.keras")
