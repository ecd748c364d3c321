"""MultiHeadAttention's ``weights`` / ``trainable_weights`` / ``non_trainable_weights`` in
Keras's 3-D shapes (session 22): views of the Dense projections' flat variables, so a write
through either is seen by both. Against Keras 3 (torch backend) where installed: names,
shapes, order, values after set_weights, and a custom training loop's steps
(``apply_gradients(zip(grads, model.trainable_weights))``); against NumPy otherwise."""
import json
import re
import zipfile

import numpy as np
import pytest

from wsekern import nn

L = nn.layers

# Keras's shapes for MultiHeadAttention(2, 4) on 8 features, in Keras's order
KERAS_SHAPES = [(8, 2, 4), (2, 4), (8, 2, 4), (2, 4), (8, 2, 4), (2, 4), (2, 4, 8), (8,)]
NAMES = [f"mha/{p}/{w}" for p in ("query", "key", "value", "attention_output")
         for w in ("kernel", "bias")]


def build(K, trainable=True):
    inp = K.Input((5, 8))
    h = K.layers.MultiHeadAttention(2, 4, name="mha", trainable=trainable)(inp, inp)
    out = K.layers.Dense(1, name="head")(K.layers.GlobalAveragePooling1D()(h))
    return K.Model(inp, out)


def data():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((6, 5, 8)).astype(np.float32),
            rng.standard_normal((6, 1)).astype(np.float32))


def test_weights_are_keras_shaped_views_of_the_flat_projections():
    model = build(nn)
    mha = model.get_layer("mha")
    assert [tuple(w.shape) for w in mha.weights] == KERAS_SHAPES
    assert [w.name for w in mha.weights] == NAMES
    assert [tuple(w.shape) for w in mha.trainable_weights] == KERAS_SHAPES
    assert mha.non_trainable_weights == []
    assert [tuple(w.shape) for w in model.trainable_weights] == KERAS_SHAPES + [(8, 1), (1,)]
    # the same objects on every call (the optimizer keys its slots by them)
    assert all(a is b for a, b in zip(mha.weights, model.weights))
    # each is the matching get_weights array, and shares memory with no other weight
    for w, arr in zip(mha.weights, mha.get_weights()):
        np.testing.assert_array_equal(np.asarray(w), arr)
    ws = model.weights
    for i in range(len(ws)):
        for j in range(i):
            assert not np.shares_memory(ws[i].data, ws[j].data), (ws[i].name, ws[j].name)


def test_a_write_through_either_side_is_seen_by_both():
    model = build(nn)
    mha = model.get_layer("mha")
    x, _ = data()
    kernel = mha.weights[0]
    new = np.arange(64, dtype=np.float32).reshape(8, 2, 4) / 64
    kernel.assign(new)
    np.testing.assert_array_equal(mha.query_dense.kernel.data, new.reshape(8, 8))
    np.testing.assert_array_equal(mha.get_weights()[0], new)
    kernel.assign_add(np.ones((8, 2, 4), np.float32))
    kernel.assign_sub(np.ones((8, 2, 4), np.float32) * 0.5)
    np.testing.assert_allclose(mha.query_dense.kernel.data, new.reshape(8, 8) + 0.5)
    mha.query_dense.kernel.data[0, 0] = -7.0            # the flat side, in place
    assert kernel.data[0, 0, 0] == -7.0
    # the forward uses what was written: equal to a model given the same arrays
    twin = build(nn)
    twin.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(x, verbose=0), twin.predict(x, verbose=0))
    with pytest.raises(ValueError, match=r"shape \(8, 2, 4\).*received shape \(8, 8\)"):
        kernel.assign(np.zeros((8, 8), np.float32))


def test_gradients_reach_the_views_and_a_manual_step_equals_fit():
    x, y = data()
    a, b = build(nn), build(nn)
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse")
    a.fit(x, y, batch_size=6, epochs=3, shuffle=False, verbose=0)
    opt = nn.optimizers.Adam(0.01)
    loss_fn = nn.losses.MeanSquaredError()
    for _ in range(3):
        weights = b.trainable_weights
        for w in weights:
            w.grad = None
        loss = loss_fn(y, b(x, training=True))
        loss.backward()
        grads = [w.grad for w in weights]
        assert [g.shape for g in grads[:8]] == KERAS_SHAPES
        opt.apply_gradients(zip(grads, weights))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    # fit's slots are the views' (Keras's shapes), one set per weight
    slots = [a.optimizer._state[id(w)][1] for w in a.trainable_weights]
    assert [s[0].shape for s in slots[:8]] == KERAS_SHAPES
    assert len(a.optimizer._state) == 10


def test_frozen_layer_lists_them_as_non_trainable():
    model = build(nn, trainable=False)
    mha = model.get_layer("mha")
    assert mha.trainable_weights == []
    assert [tuple(w.shape) for w in mha.non_trainable_weights] == KERAS_SHAPES
    assert [tuple(w.shape) for w in model.trainable_weights] == [(8, 1), (1,)]


def test_pruned_projection_lists_its_kept_values_and_the_views_the_rest():
    mha = L.MultiHeadAttention(2, 4, sparsity=0.5, name="mha")
    mha(np.zeros((1, 5, 8), np.float32))
    shapes = [tuple(w.shape) for w in mha.trainable_weights]
    assert len(shapes) == 8
    assert [shapes[i] for i in (1, 3, 5, 7)] == [(2, 4), (2, 4), (2, 4), (8,)]
    assert all(len(shapes[i]) == 1 for i in (0, 2, 4, 6))      # packed kept values
    assert [w.shape for w in mha.get_weights()] == KERAS_SHAPES  # Keras's dense kernels


def test_transformer_block_lists_each_attention_weight_once():
    block = L.TransformerBlock(2, 16, name="block")
    block(np.zeros((1, 5, 8), np.float32))
    ws = block.trainable_weights
    assert len(ws) == len({id(w) for w in ws}) == 2 + 8 + 2 + 4
    for i in range(len(ws)):
        for j in range(i):
            assert not np.shares_memory(ws[i].data, ws[j].data), (ws[i].name, ws[j].name)
    assert [tuple(w.shape) for w in block.attn.trainable_weights] == KERAS_SHAPES


def test_a_deep_copy_views_its_own_flat_weights():
    import copy
    x, _ = data()
    model = build(nn)
    twin = copy.deepcopy(model)
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    view = twin.get_layer("mha").weights[0]
    assert view.base is twin.get_layer("mha").query_dense.kernel
    view.assign(np.zeros((8, 2, 4), np.float32))
    assert not twin.get_layer("mha").query_dense.kernel.data.any()
    assert model.get_layer("mha").query_dense.kernel.data.any()       # the original's own


def _flatten_mha_slots(src, dst):
    """``src`` (our own .keras format) rewritten as a file before session 22 held it: the
    MultiHeadAttention slots flat, (8, 8) and (8,) (their config shapes too)."""
    flat = {(8, 2, 4): (8, 8), (2, 4): (8,), (2, 4, 8): (8, 8)}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        meta = json.loads(zin.read("config.json"))
        for key, (shape, dtype) in meta["optimizer_state"].items():
            meta["optimizer_state"][key] = [list(flat.get(tuple(shape), shape)), dtype]
        changed = 0
        for item in zin.infolist():
            raw = zin.read(item)
            if item.filename == "config.json":
                raw = json.dumps(meta).encode()
            elif item.filename.startswith("optimizer/"):
                import io
                arr = np.load(io.BytesIO(raw))
                if arr.shape in flat:
                    changed += 1
                    buf = io.BytesIO()
                    np.save(buf, arr.reshape(flat[arr.shape]))
                    raw = buf.getvalue()
            zout.writestr(item, raw)
    return changed


def test_old_file_with_flat_slots_resumes_training_as_a_new_one(tmp_path):
    x, y = data()
    model = build(nn)
    model.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(tmp_path / "new.wsekern")
    assert _flatten_mha_slots(tmp_path / "new.wsekern", tmp_path / "old.wsekern") == 14
    runs = []
    for name in ("new", "old"):
        m = nn.models.load_model(tmp_path / f"{name}.wsekern")
        m.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0)
        runs.append(m.get_weights())
    model.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0)
    for a, b, c in zip(*runs, model.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


# -- against Keras ---------------------------------------------------------------------
def test_weights_names_shapes_order_and_values_as_keras(keras):
    km = build(keras)
    ours = build(nn)
    ours.set_weights(km.get_weights())
    for K, m in ((keras, km), (nn, ours)):
        mha = m.get_layer("mha")
        assert [tuple(w.shape) for w in mha.weights] == KERAS_SHAPES, K.__name__
        assert [tuple(w.shape) for w in mha.trainable_weights] == KERAS_SHAPES
        assert len(mha.non_trainable_weights) == 0
    kw = km.get_layer("mha").weights
    ow = ours.get_layer("mha").weights
    assert [w.path for w in kw] == [w.path for w in ow] == NAMES
    for k, o in zip(kw, ow):
        np.testing.assert_array_equal(np.asarray(o), keras.ops.convert_to_numpy(k))
    for K in (keras, nn):
        frozen = build(K, trainable=False).get_layer("mha")
        assert [tuple(w.shape) for w in frozen.non_trainable_weights] == KERAS_SHAPES
        assert frozen.trainable_weights == []


# the key projection's bias adds q.b to every score of a query's row, which the softmax
# cancels: its gradient is zero in exact arithmetic and float32 noise in both libraries
# (Adam turns the noise into steps), so it is left out of the comparisons
KEY_BIAS = 3


def test_custom_training_loop_steps_equal_keras(keras):
    import torch
    x, y = data()
    km = build(keras)
    ours = build(nn)
    ours.set_weights(km.get_weights())
    kopt, oopt = keras.optimizers.Adam(0.01), nn.optimizers.Adam(0.01)
    kloss, oloss = keras.losses.MeanSquaredError(), nn.losses.MeanSquaredError()
    for _ in range(3):
        kw = km.trainable_weights
        for v in kw:
            v.value.grad = None
        loss = kloss(torch.as_tensor(y), km(torch.as_tensor(x), training=True))
        loss.backward()
        kgrads = [v.value.grad for v in kw]
        with torch.no_grad():
            kopt.apply_gradients(zip(kgrads, kw))

        ow = ours.trainable_weights
        for v in ow:
            v.grad = None
        oloss(y, ours(x, training=True)).backward()
        ograds = [v.grad for v in ow]
        assert np.abs(ograds[KEY_BIAS]).max() < 1e-4
        for i, (kg, og) in enumerate(zip(kgrads, ograds)):
            if i != KEY_BIAS:
                kg = kg.numpy()
                np.testing.assert_allclose(og, kg, rtol=1e-3, atol=1e-4 * np.abs(kg).max())
        oopt.apply_gradients(zip(ograds, ow))
        for i, (k, o) in enumerate(zip(km.trainable_weights, ours.trainable_weights)):
            if i != KEY_BIAS:
                np.testing.assert_allclose(np.asarray(o), keras.ops.convert_to_numpy(k),
                                           rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.predict(x, verbose=0),
                               keras.ops.convert_to_numpy(km.predict(x, verbose=0)),
                               rtol=1e-4, atol=2e-5)
    # optimizer.variables as Keras's: names, order, shapes and values
    kv, ov = kopt.variables, oopt.variables
    assert [v.path.split("/", 1)[-1] for v in ov] == [v.path.split("/", 1)[-1] for v in kv]
    assert [tuple(v.shape) for v in ov] == [tuple(v.shape) for v in kv]
    assert int(ov[0].numpy()) == 3 and float(ov[1].numpy()) == pytest.approx(0.01)
    key_bias = "mha_key_bias"
    for k, o in zip(kv[2:], ov[2:]):
        if key_bias not in o.path:
            k = keras.ops.convert_to_numpy(k)
            np.testing.assert_allclose(o.numpy(), k, rtol=1e-4, atol=1e-4 * np.abs(k).max())
    # they are the optimizer's state: a write is seen by the next step
    ov[2].assign(np.zeros(ov[2].shape, np.float32))
    assert not oopt._state[id(ours.trainable_weights[0])][1][0].any()


def _keras_slots(keras, opt):
    # Keras numbers its optimizers' names (adam_3/...) across the process: the name dropped
    return {v.path.split("/", 1)[-1]: keras.ops.convert_to_numpy(v) for v in opt.variables}


def test_keras_files_carry_the_slots_both_ways(keras, tmp_path):
    pytest.importorskip("h5py")
    x, y = data()
    km, ours = build(keras), build(nn)
    ours.set_weights(km.get_weights())
    for m, K in ((km, keras), (ours, nn)):
        m.compile(optimizer=K.optimizers.Adam(0.01), loss="mse")
        m.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0)
    km.save(tmp_path / "k.keras")
    ours.save(tmp_path / "o.keras")
    from_keras = nn.models.load_model(tmp_path / "k.keras")
    from_ours = keras.models.load_model(tmp_path / "o.keras")
    for writer, reader, slots in ((km, from_keras, _keras_slots(keras, km.optimizer)),
                                  (ours, from_ours, _keras_slots(keras, from_ours.optimizer))):
        rw = reader.trainable_weights if reader is from_keras else writer.trainable_weights
        opt = (reader if reader is from_keras else writer).optimizer
        names = [w.path for w in (writer if reader is from_keras else reader).trainable_weights]
        for i, (v, name) in enumerate(zip(rw, names)):
            m, vel = opt._state[id(v)][1]
            key = name.replace("/", "_")
            assert m.shape == tuple(v.shape) == slots[f"{key}_momentum"].shape
            np.testing.assert_array_equal(m, slots[f"{key}_momentum"])
            np.testing.assert_array_equal(vel, slots[f"{key}_velocity"])
    # training resumes alike: each reader one more epoch, as its writer
    for writer, reader in ((km, from_keras), (ours, from_ours)):
        for m in (writer, reader):
            m.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
        np.testing.assert_allclose(np.asarray(reader.predict(x, verbose=0)),
                                   np.asarray(writer.predict(x, verbose=0)),
                                   rtol=1e-4, atol=1e-6)


def test_optimizer_build_and_variables_as_keras(keras):
    shapes = [(2, 3), (3,)]
    for name, kw in (("Adam", {}), ("SGD", {"momentum": 0.9}), ("SGD", {}),
                     ("RMSprop", {"momentum": 0.5, "centered": True}), ("Nadam", {}),
                     ("Adagrad", {}), ("Lion", {}), ("Adam", {"amsgrad": True})):
        kv = [keras.Variable(np.ones(s, np.float32), name=f"w{i}") for i, s in enumerate(shapes)]
        ov = [nn.Variable(np.ones(s, np.float32), name=f"w{i}") for i, s in enumerate(shapes)]
        kopt, oopt = getattr(keras.optimizers, name)(**kw), getattr(nn.optimizers, name)(**kw)
        kopt.build(kv)
        oopt.build(ov)
        # Keras numbers its paths, and an unnamed variable's name by how many came before
        # it in the process ("variable", "variable_2"): the full suite makes others first
        strip = lambda p: re.sub(r"^variable_\d+$", "variable", p.split("/", 1)[-1])  # noqa: E731
        assert [strip(v.path) for v in oopt.variables] == \
            [strip(v.path) for v in kopt.variables], name
        assert [tuple(v.shape) for v in oopt.variables] == \
            [tuple(v.shape) for v in kopt.variables], name
        for k, o in zip(kopt.variables[1:], oopt.variables[1:]):
            np.testing.assert_allclose(o.numpy(), keras.ops.convert_to_numpy(k), rtol=1e-7)
