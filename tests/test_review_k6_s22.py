"""Review of session 22's keras22 branch (MultiHeadAttention's weights as views,
optimizer.variables, complex ops, ctc_loss): each test failed on the branch before its fix."""
import numpy as np
import pytest

from wsekern import nn

L = nn.layers


def _data():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((12, 5, 8)).astype(np.float32),
            rng.standard_normal((12, 5, 8)).astype(np.float32))


def _mha_model():
    inp = nn.Input((5, 8))
    model = nn.Model(inp, L.MultiHeadAttention(2, 4, name="mha")(inp, inp))
    rng = np.random.default_rng(1)
    model.set_weights([rng.standard_normal(w.shape).astype(w.dtype) * 0.3
                       for w in model.get_weights()])
    return model


def _listed_bases(model):
    return [getattr(w, "base", w) for w in model.trainable_weights]


# -- a projection re-pruned directly: the optimizer must see its live variable -------------
def test_projection_pruned_directly_keeps_training_as_through_the_container():
    # mha.query_dense.set_sparsity replaces the projection's kernel variable by its kept
    # values; MultiHeadAttention listed a view of the dead kernel instead (the walk no
    # longer reaches the sublayer), so fit silently stopped training the query kernel
    x, y = _data()
    mask = np.random.default_rng(2).random((8, 8)) < 0.5
    direct, official = _mha_model(), _mha_model()
    direct.get_layer("mha").query_dense.set_sparsity(0.5, mask=mask)
    mha = official.get_layer("mha")
    mha.query_dense.set_sparsity(0.5, mask=mask)
    mha.sublayers_changed()                   # what a file's masks loader does
    live = direct.get_layer("mha").query_dense.kernel
    assert any(w is live for w in _listed_bases(direct))
    assert len(direct.trainable_weights) == 8
    before = direct.get_layer("mha").query_dense.get_weights()[0].copy()
    for m in (direct, official):
        m.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse")
        m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    after = direct.get_layer("mha").query_dense.get_weights()[0]
    assert not np.array_equal(before[mask], after[mask])
    assert not after[~mask].any()
    for a, b in zip(direct.get_weights(), official.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_gradual_pruning_of_one_projection_keeps_it_training():
    x, y = _data()
    model = _mha_model()
    mha = model.get_layer("mha")
    model.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse")
    cb = nn.pruning.GradualPruning(0.5, begin_step=0, pruning_steps=1, frequency=1,
                                   layers=[mha.query_dense])
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[cb])
    assert mha.query_dense.sparsity == 0.5
    before = mha.query_dense.get_weights()[0].copy()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert not np.array_equal(before, mha.query_dense.get_weights()[0])


def test_transformer_block_lists_only_live_variables_after_a_direct_prune():
    block = L.TransformerBlock(2, 16, name="block")
    block(np.zeros((1, 5, 8), np.float32))
    block.attn.key_dense.set_sparsity(0.5)
    block.fc.set_sparsity(0.5)
    live = [v for layer in (block.ln1, block.attn.query_dense, block.attn.key_dense,
                            block.attn.value_dense, block.attn.output_dense, block.ln2,
                            block.fc, block.proj) for _, v, _ in layer._variables]
    got = [getattr(w, "base", w) for w in block.trainable_weights]
    assert len(got) == len(live) == 16
    assert {id(v) for v in got} == {id(v) for v in live}



# -- a frozen sublayer of a container: its weights are not trainable -----------------------
def test_a_frozen_projection_is_not_trained():
    # the container lists its sublayers' variables as its own, with the flag they were
    # made with: mha.query_dense.trainable = False still trained them (Keras: a frozen
    # sublayer's weights leave trainable_weights)
    x, y = _data()
    model = _mha_model()
    mha = model.get_layer("mha")
    mha.query_dense.trainable = False
    assert [w.name for w in model.non_trainable_weights] == ["mha/query/kernel",
                                                             "mha/query/bias"]
    assert len(model.trainable_weights) == 6
    q0, k0 = mha.query_dense.get_weights(), mha.key_dense.get_weights()[0].copy()
    model.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(q0, mha.query_dense.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(k0, mha.key_dense.get_weights()[0])


def test_transformer_block_with_a_frozen_attention_or_projection():
    block = L.TransformerBlock(2, 16, name="block")
    block(np.zeros((1, 5, 8), np.float32))
    block.attn.value_dense.trainable = False
    block.fc.trainable = False
    assert (len(block.trainable_weights), len(block.non_trainable_weights)) == (12, 4)
    block.attn.trainable = False
    assert (len(block.trainable_weights), len(block.non_trainable_weights)) == (6, 10)
    frozen = {id(getattr(w, "base", w)) for w in block.non_trainable_weights}
    for layer in (block.attn.query_dense, block.attn.output_dense, block.fc):
        assert {id(v) for _, v, _ in layer._variables} <= frozen


# -- optimizer.variables: Keras's names ------------------------------------------------
def _dense_model(K):
    inp = K.Input((3,))
    return K.Model(inp, K.layers.Dense(2, name="d")(inp))


def test_adamax_variables_carry_keras_slot_names():
    # Keras's adamax.py: add_optimizer_variables(var_list, ["momentum", "norm"]); ours were
    # named after our slots, m and u
    opt = nn.optimizers.Adamax(0.01)
    opt.build(_dense_model(nn).trainable_weights)
    names = [v.path.split("/", 1)[-1] for v in opt.variables]
    assert names == ["iteration", "learning_rate", "d_kernel_momentum", "d_kernel_norm",
                     "d_bias_momentum", "d_bias_norm"]


def test_adamax_variables_as_keras(keras):
    kopt, oopt = keras.optimizers.Adamax(0.01), nn.optimizers.Adamax(0.01)
    kopt.build(_dense_model(keras).trainable_weights)
    oopt.build(_dense_model(nn).trainable_weights)
    assert [v.path.split("/", 1)[-1] for v in oopt.variables] == \
        [v.path.split("/", 1)[-1] for v in kopt.variables]



# -- complex tensors in the ops that took them silently wrong -------------------------------
def _complex_batch():
    rng = np.random.default_rng(3)
    return (rng.standard_normal((2, 3, 3)) + 1j * rng.standard_normal((2, 3, 3))).astype(
        np.complex64)


@pytest.mark.parametrize("kw", [{}, {"axis": 1}, {"axis": (0, 2), "keepdims": True}])
def test_var_and_std_of_complex_values_are_of_their_moduli(kw):
    # var was mean((x - mean) ** 2), the complex square: 2.34+0.08j where NumPy, torch and
    # Keras give E|x - mean|^2 = 4.68; std took its square root
    z = _complex_batch()
    v, s = nn.ops.var(z, **kw), nn.ops.std(z, **kw)
    assert v.dtype == np.complex64 and s.dtype == np.float32          # as Keras on torch
    np.testing.assert_allclose(v.data, np.var(z, **kw), rtol=1e-5)
    assert not v.data.imag.any()
    np.testing.assert_allclose(s.data, np.std(z, **kw), rtol=1e-5)


def test_logdet_of_complex_matrices_keeps_the_phase():
    # the real log|det| was returned (float32): the phase of det was dropped
    z = _complex_batch()
    got = nn.ops.logdet(z)
    assert got.dtype == np.complex64
    want = np.log(np.linalg.det(z.astype(np.complex128)))
    np.testing.assert_allclose(got.data, want, rtol=1e-4, atol=1e-5)


def test_complex_var_std_logdet_as_keras(keras):
    z = _complex_batch()
    for name in ("var", "std", "logdet"):
        want = keras.ops.convert_to_numpy(getattr(keras.ops, name)(z))
        got = getattr(nn.ops, name)(z)
        assert got.dtype == want.dtype, name
        np.testing.assert_allclose(got.data, want, rtol=1e-4, atol=1e-5, err_msg=name)


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
