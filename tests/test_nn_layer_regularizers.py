"""The built-in layers' kernel_/bias_/activity_regularizer and kernel_/bias_constraint
arguments (Keras 3's): the penalty in ``model.losses`` and in the loss fit/evaluate report,
its gradient in the step, the constraint assigned after each optimizer update. Checked in
closed form (no Keras needed) and against Keras itself from the same weights."""

import numpy as np
import pytest

from wsekern import nn

L, R, C = nn.layers, nn.regularizers, nn.constraints


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype("float32"), \
        rng.standard_normal((n, 3)).astype("float32")


def one_dense(**kw):
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input((6,)), L.Dense(3, name="d", **kw)])
    model.compile(optimizer=nn.optimizers.SGD(0.1), loss="mse")
    return model


def test_kernel_l2_adds_its_closed_form_penalty_and_gradient():
    x, y = data()
    plain, reg = one_dense(), one_dense(kernel_regularizer=R.L2(0.05), bias_regularizer="l1")
    reg.set_weights(plain.get_weights())
    k, b = (w.copy() for w in plain.get_weights())
    b[:] = [0.5, -0.25, 0.0]
    for m in (plain, reg):
        m.set_weights([k, b])
    penalty = 0.05 * np.sum(k * k) + 0.01 * np.sum(np.abs(b))
    assert float(sum(t.data for t in reg.losses)) == pytest.approx(penalty, rel=1e-6)
    lp = plain.evaluate(x, y, verbose=0)
    assert reg.evaluate(x, y, verbose=0) == pytest.approx(lp + penalty, rel=1e-6)
    hp = plain.train_on_batch(x, y)
    hr = reg.train_on_batch(x, y)
    assert hr == pytest.approx(hp + penalty, rel=1e-6)
    (kp, bp), (kr, br) = plain.get_weights(), reg.get_weights()
    # the penalty's gradient: 2 * 0.05 * k and 0.01 * sign(b), times the rate 0.1
    np.testing.assert_allclose(kr, kp - 0.1 * 2 * 0.05 * k, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(br, bp - 0.1 * 0.01 * np.sign(b), rtol=1e-5, atol=1e-7)


def test_activity_regularizer_is_the_output_penalty_over_the_batch():
    x, y = data()
    plain, reg = one_dense(), one_dense(activity_regularizer=R.L2(0.1))
    reg.set_weights(plain.get_weights())
    out = plain.predict(x, verbose=0)
    lp = plain.test_on_batch(x, y)
    assert reg.test_on_batch(x, y) == pytest.approx(lp + 0.1 * np.sum(out * out) / len(x),
                                                    rel=1e-6)


@pytest.mark.parametrize("con, check", [
    (C.NonNeg(), lambda w, raw: np.maximum(raw, 0)),
    (C.MaxNorm(0.3), lambda w, raw: raw * np.clip(n := np.linalg.norm(raw, axis=0), 0, 0.3)
     / (1e-7 + n)),
    (C.UnitNorm(axis=1), lambda w, raw: raw / (1e-7 + np.linalg.norm(raw, axis=1,
                                                                     keepdims=True))),
    (C.MinMaxNorm(0.5, 0.6, rate=0.5), lambda w, raw: raw * (
        0.5 * np.clip(n := np.linalg.norm(raw, axis=0), 0.5, 0.6) + 0.5 * n) / (1e-7 + n)),
    (lambda w: w * 0.5, lambda w, raw: raw * 0.5),
], ids=["non_neg", "max_norm", "unit_norm", "min_max_norm", "callable"])
def test_kernel_constraint_projects_the_updated_kernel(con, check):
    x, y = data()
    plain, cons = one_dense(), one_dense(kernel_constraint=con)
    cons.set_weights(plain.get_weights())
    plain.train_on_batch(x, y)
    cons.train_on_batch(x, y)
    raw = plain.get_weights()[0]
    np.testing.assert_allclose(cons.get_weights()[0], check(None, raw), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(cons.get_weights()[1], plain.get_weights()[1])


def test_sparse_kernel_keeps_its_zeros_and_takes_any_regularizer():
    """A pruned Dense trains its kept values: an L2 penalty on them is the dense kernel's,
    a callable written for the dense kernel sees it (gradient included), and a constraint
    never brings a pruned weight back."""
    x, y = data()
    dense_fn = R.L2(0.05)
    a = one_dense(kernel_regularizer=dense_fn, sparsity=0.5)
    b = one_dense(kernel_regularizer=lambda w: 0.05 * (w * w).sum(), sparsity=0.5,
                  kernel_constraint=lambda w: w + 1.0)
    b.set_weights(a.get_weights())
    k = a.get_weights()[0]
    assert float(a.losses[0].data) == pytest.approx(0.05 * np.sum(k * k), rel=1e-6)
    assert float(b.losses[0].data) == pytest.approx(0.05 * np.sum(k * k), rel=1e-6)
    a.train_on_batch(x, y)
    b.train_on_batch(x, y)
    mask = a.get_layer("d").mask
    np.testing.assert_allclose(b.get_weights()[0], (a.get_weights()[0] + 1.0) * mask,
                               rtol=1e-5, atol=1e-6)


def test_config_and_keras_file_round_trip(tmp_path):
    x, y = data()
    nn.utils.set_random_seed(1)
    model = nn.Sequential([
        nn.Input((6,)),
        L.Dense(8, activation="relu", kernel_regularizer="l1_l2", bias_regularizer=R.L1(0.02),
                activity_regularizer="l2", kernel_constraint=C.MaxNorm(1.0, axis=0),
                bias_constraint="non_neg", name="h"),
        L.Dense(3, kernel_constraint=C.MinMaxNorm(0.1, 0.9, 0.5), name="o")])
    model.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = nn.load_model(tmp_path / "m.keras")
    for a, b in zip(model.layers, loaded.layers, strict=True):
        assert a.get_config() == b.get_config()
    cfg = loaded.get_layer("h").get_config()
    assert cfg["kernel_constraint"] == {"class_name": "MaxNorm",
                                        "config": {"max_value": 1.0, "axis": 0}}
    assert cfg["activity_regularizer"]["class_name"] == "L2"
    h1 = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0).history["loss"]
    h2 = loaded.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0).history["loss"]
    assert h1 == h2
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_say_what_works():
    with pytest.raises(ValueError, match=r"unknown regularizer 'l3'.*l1_l2"):
        L.Dense(3, kernel_regularizer="l3")
    with pytest.raises(ValueError, match=r"unknown constraint 'positive'.*non_neg"):
        L.Dense(3, kernel_constraint="positive")
    with pytest.raises(TypeError, match=r"gamma_regularizer.*Dense takes kernel_regularizer"):
        L.Dense(3, gamma_regularizer="l2")
    with pytest.raises(ValueError, match="max_value must be a finite number >= 0"):
        C.MaxNorm(-1)


def test_other_layers_take_their_keras_arguments():
    nn.utils.set_random_seed(2)
    emb = L.Embedding(10, 4, embeddings_regularizer=R.L2(0.1), embeddings_constraint="non_neg")
    ln = L.LayerNormalization(gamma_regularizer="l2", beta_constraint=C.MaxNorm(0.1))
    conv = L.Conv2D(2, 3, kernel_regularizer="l1", bias_constraint="non_neg")
    emb(np.array([[1, 2]]))
    ln(np.ones((2, 4), np.float32))
    conv(np.ones((1, 5, 5, 2), np.float32))
    e = emb.embeddings.data
    assert float(emb.losses[0].data) == pytest.approx(0.1 * np.sum(e * e), rel=1e-6)
    assert float(ln.losses[0].data) == pytest.approx(0.01 * 4, rel=1e-6)
    assert float(conv.losses[0].data) == pytest.approx(
        0.01 * np.abs(conv.kernel.data).sum(), rel=1e-6)
    assert isinstance(emb.embeddings.constraint, C.NonNeg)
    assert isinstance(ln.beta.constraint, C.MaxNorm)


# -- Keras itself ------------------------------------------------------------------------
def build(lib, sgd):
    Lk, Rk, Ck = lib.layers, lib.regularizers, lib.constraints
    inp = lib.Input((6,))
    h = Lk.Dense(8, activation="relu", kernel_regularizer="l2", bias_regularizer=Rk.L1(0.02),
                 activity_regularizer=Rk.L1L2(0.001, 0.002),
                 kernel_constraint=Ck.MaxNorm(0.8), bias_constraint=Ck.NonNeg(), name="h")(inp)
    h = Lk.Dense(5, activation="tanh", kernel_regularizer=lambda w: 0.003 * (w * w).sum(),
                 kernel_constraint=Ck.UnitNorm(axis=0), name="h2")(h)
    out = Lk.Dense(3, kernel_regularizer="l1", kernel_constraint=Ck.MinMaxNorm(0.2, 0.7, 0.5),
                   bias_constraint=lambda w: w * 0.9, name="o")(h)
    model = lib.Model(inp, out)
    opt = lib.optimizers.SGD(0.05, momentum=0.5) if sgd else lib.optimizers.Adam(0.01)
    model.compile(optimizer=opt, loss="mse")
    return model


@pytest.mark.parametrize("sgd", [True, False], ids=["sgd", "adam"])
def test_loss_and_weights_after_steps_equal_keras(sgd, keras):
    x, y = data(24, seed=3)
    nn.utils.set_random_seed(4)
    ours, theirs = build(nn, sgd), build(keras, sgd)
    theirs.set_weights(ours.get_weights())
    got = sum(float(t.data) for t in ours.losses)
    want = sum(float(keras.ops.convert_to_numpy(t)) for t in theirs.losses)
    assert got == pytest.approx(want, rel=1e-5)
    e1 = ours.evaluate(x, y, verbose=0)
    e2 = theirs.evaluate(x, y, verbose=0)
    assert e1 == pytest.approx(e2, rel=1e-5)
    h1 = ours.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0).history["loss"]
    h2 = theirs.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(h1, h2, rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-4, atol=1e-5)


def test_attention_and_prelu_take_theirs():
    """MultiHeadAttention hands its kernel_/bias_ arguments to its four projections (an
    L2 penalty is the same on Keras's (d, heads, key_dim) kernels); PReLU took
    alpha_regularizer/alpha_constraint and dropped them."""
    q = np.random.default_rng(5).standard_normal((2, 3, 8)).astype(np.float32)
    mha = L.MultiHeadAttention(2, 4, kernel_regularizer=R.L2(0.1), bias_constraint="non_neg")
    mha(q, q)
    kernels = mha.get_weights()[0::2]
    assert sum(float(t.data) for t in mha.losses) == pytest.approx(
        0.1 * sum(np.sum(k * k) for k in kernels), rel=1e-5)
    assert all(isinstance(d.bias.constraint, C.NonNeg) for d in mha.sublayers)
    assert L.MultiHeadAttention.from_config(mha.get_config()).get_config() == mha.get_config()
    p = L.PReLU(alpha_initializer="ones", alpha_regularizer="l1", alpha_constraint="non_neg")
    p(np.ones((2, 4), np.float32))
    assert float(p.losses[0].data) == pytest.approx(0.04, rel=1e-6)
    assert isinstance(p.alpha.constraint, C.NonNeg)
