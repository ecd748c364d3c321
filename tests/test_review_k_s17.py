"""review_k (session 17): Keras 3 parity of what keras17 merged (regularizers, constraints,
per-output sample weights, MultiHeadAttention weights), checked against closed forms and
against Keras itself from the same weights."""
import numpy as np
import pytest

from wsekern import nn

L, R = nn.layers, nn.regularizers


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype("float32"), \
        rng.standard_normal((n, 1)).astype("float32")


def frozen_net(lib, freeze):
    """Input -> Sequential base (Dense l2/L1 bias, BatchNormalization l2 gamma, l1 beta)
    -> Dense l1 head; `freeze` is None, "base" or "bn"."""
    inp = lib.Input((6,))
    base = lib.Sequential([
        lib.layers.Dense(5, kernel_regularizer="l2", bias_regularizer=lib.regularizers.L1(0.1),
                         name="d1"),
        lib.layers.BatchNormalization(gamma_regularizer="l2", beta_regularizer="l1",
                                      name="bn")], name="base")
    out = lib.layers.Dense(1, kernel_regularizer="l1", name="d2")(base(inp))
    model = lib.Model(inp, out)
    if freeze == "base":
        base.trainable = False
    elif freeze == "bn":
        base.layers[1].trainable = False
    return model


def penalties(model):
    return [float(np.asarray(t.data)) for t in model.losses]


@pytest.mark.parametrize("freeze", ["base", "bn"])
def test_frozen_layers_weights_are_not_regularized(freeze):
    # Keras 3 regularizes the trainable weights only: a frozen base (or a frozen
    # BatchNormalization's gamma/beta) adds nothing to model.losses or the reported loss
    nn.utils.set_random_seed(0)
    model = frozen_net(nn, freeze)
    model.compile(optimizer=nn.optimizers.SGD(0.05), loss="mse")
    model.set_weights([w + 0.3 for w in model.get_weights()])
    k1, b1, k2 = model.get_weights()[0], model.get_weights()[1], model.get_weights()[-2]
    expect = [0.01 * np.sum(np.abs(k2))]
    if freeze == "bn":
        expect = [0.01 * np.sum(k1 * k1), 0.1 * np.sum(np.abs(b1))] + expect
    np.testing.assert_allclose(penalties(model), expect, rtol=1e-5)
    x, y = data()
    before = model.get_weights()
    pred = model.predict(x, verbose=0)
    mse = float(np.mean((pred - y) ** 2))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(mse + sum(expect), rel=1e-5)
    # the step's reported loss (fit's cached walk) leaves the frozen weights out too
    assert model.train_on_batch(x, y) == pytest.approx(mse + sum(expect), rel=1e-5)
    hist = model.fit(x, y, epochs=1, batch_size=8, verbose=0,
                     validation_data=(x, y)).history
    after = model.get_weights()
    now = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    assert hist["val_loss"][0] == pytest.approx(now + sum(penalties(model)), rel=1e-5)
    np.testing.assert_array_equal(after[2], before[2])       # the frozen gamma


@pytest.mark.parametrize("freeze", [None, "base", "bn"])
def test_frozen_regularized_losses_equal_keras(freeze, keras):
    keras.utils.set_random_seed(0)
    km, wm = frozen_net(keras, freeze), frozen_net(nn, freeze)
    weights = [w + 0.3 for w in km.get_weights()]
    km.set_weights(weights)
    wm.set_weights(weights)
    np.testing.assert_allclose(penalties(wm), [float(t) for t in km.losses], rtol=1e-5)
    x, y = data()
    for m in (km, wm):
        m.compile(optimizer="sgd", loss="mse")
    assert wm.evaluate(x, y, verbose=0) == pytest.approx(km.evaluate(x, y, verbose=0),
                                                         rel=1e-5)
    kh = km.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0,
                validation_data=(x, y)).history
    wh = wm.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0,
                validation_data=(x, y)).history
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(wh[key], kh[key], rtol=1e-4)


def mha_net(lib, **kw):
    inp = lib.Input((5, 8))
    out = lib.layers.MultiHeadAttention(2, 4, value_dim=3, output_shape=6, name="mha",
                                        **kw)(inp, inp)
    return lib.Model(inp, out)


def test_mha_constraints_see_keras_shaped_weights():
    # Keras's bias (heads, key_dim) and output kernel (heads, value_dim, d_out): a UnitNorm
    # along axis 0 normalises over the heads, not over the flat (heads*dim) vector
    nn.utils.set_random_seed(0)
    model = mha_net(nn, kernel_constraint="unit_norm", bias_constraint="unit_norm")
    model.compile(optimizer=nn.optimizers.SGD(0.1), loss="mse")
    model.set_weights([w + 0.1 for w in model.get_weights()])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 5, 8)), rng.standard_normal((4, 5, 6))
    model.train_on_batch(x.astype("float32"), y.astype("float32"))
    weights = model.get_weights()
    for w in weights[:6] + [weights[6]]:          # q/k/v kernels and biases, output kernel
        np.testing.assert_allclose(np.sqrt(np.sum(w * w, axis=0)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(weights[7]), 1.0, rtol=1e-5)


def test_mha_activity_regularizer_is_on_its_four_projections():
    # Keras's MultiHeadAttention hands activity_regularizer to its projections (query, key,
    # value, output), each adding l2(output) / batch; it used to be dropped silently
    nn.utils.set_random_seed(0)
    reg, plain = mha_net(nn, activity_regularizer=R.L2(0.1)), mha_net(nn)
    plain.set_weights(reg.get_weights())
    x = np.random.default_rng(0).standard_normal((4, 5, 8)).astype("float32")
    wq, bq, wk, bk, wv, bv, wo, bo = reg.get_weights()
    proj = [np.einsum("btd,dhk->bthk", x, w) + b for w, b in ((wq, bq), (wk, bk), (wv, bv))]
    proj.append(plain.predict(x, verbose=0))
    expect = sum(0.1 * np.sum(p.astype("float64") ** 2) / 4 for p in proj)
    y = np.zeros((4, 5, 6), "float32")
    for m in (reg, plain):
        m.compile(optimizer="sgd", loss="mse")
    got = reg.evaluate(x, y, verbose=0) - plain.evaluate(x, y, verbose=0)
    assert got == pytest.approx(expect, rel=1e-4)


def test_mha_regularizers_and_constraints_equal_keras(keras):
    kfn = lambda w: 0.01 * keras.ops.sum(keras.ops.abs(keras.ops.sum(w, axis=0)))  # noqa: E731
    wfn = lambda w: 0.01 * nn.ops.sum(nn.ops.abs(nn.ops.sum(w, axis=0)))  # noqa: E731
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5, 8)).astype("float32")
    y = rng.standard_normal((4, 5, 6)).astype("float32")
    cases = [({"activity_regularizer": "l2"},) * 2,
             ({"kernel_regularizer": kfn}, {"kernel_regularizer": wfn}),
             ({"kernel_constraint": "unit_norm", "bias_constraint": "unit_norm"},) * 2,
             ({"kernel_constraint": keras.constraints.MaxNorm(0.3, axis=[0, 1])},
              {"kernel_constraint": nn.constraints.MaxNorm(0.3, axis=[0, 1])})]
    for kkw, wkw in cases:
        keras.utils.set_random_seed(0)
        km, wm = mha_net(keras, **kkw), mha_net(nn, **wkw)
        weights = [w + 0.1 for w in km.get_weights()]
        km.set_weights(weights)
        wm.set_weights(weights)
        km.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
        wm.compile(optimizer=nn.optimizers.SGD(0.5), loss="mse")
        assert wm.evaluate(x, y, verbose=0) == pytest.approx(km.evaluate(x, y, verbose=0),
                                                             rel=1e-5), kkw
        for m in (km, wm):
            m.fit(x, y, epochs=2, batch_size=2, shuffle=False, verbose=0)
        for a, b in zip(km.get_weights(), wm.get_weights()):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=str(kkw))


def test_regularizer_and_constraint_arguments_are_layer_attributes():
    # Keras's `layer.kernel_regularizer` etc.; a subclass that sets one in __init__ (the
    # Keras way, before build) gets its penalty and config
    dense = L.Dense(2, kernel_regularizer="l2", bias_constraint="non_neg")
    assert isinstance(dense.kernel_regularizer, R.L2) and dense.bias_regularizer is None
    assert isinstance(dense.bias_constraint, nn.constraints.NonNeg)
    assert isinstance(L.BatchNormalization(gamma_regularizer="l1").gamma_regularizer, R.L1)
    assert isinstance(L.Embedding(3, 2, embeddings_constraint="max_norm")
                      .embeddings_constraint, nn.constraints.MaxNorm)

    class Ridge(L.Dense):
        def __init__(self, units, **kw):
            super().__init__(units, **kw)
            self.kernel_regularizer = R.L2(0.5)

    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input((3,)), Ridge(2)])
    k = model.get_weights()[0]
    np.testing.assert_allclose(penalties(model), [0.5 * np.sum(k * k)], rtol=1e-6)
    assert model.layers[0].get_config()["kernel_regularizer"] == {
        "class_name": "L2", "config": {"l2": 0.5}}


def test_sequential_from_config_round_trips_the_new_arguments():
    # Keras's Sequential.from_config(model.get_config()) (clone-by-config); it raised
    # "unexpected keyword argument 'input_shape'"
    model = nn.Sequential([
        nn.Input((4,)),
        L.Dense(3, kernel_regularizer=R.L1L2(0.1, 0.2), kernel_constraint="max_norm",
                activity_regularizer="l2", name="d"),
        L.BatchNormalization(gamma_regularizer="l1", beta_constraint="non_neg", name="bn")])
    again = nn.Sequential.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    d, bn = again.layers
    assert d.kernel_regularizer.get_config() == {"l1": 0.1, "l2": 0.2}
    assert isinstance(d.kernel_constraint, nn.constraints.MaxNorm)
    assert isinstance(bn.beta_constraint, nn.constraints.NonNeg)
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(penalties(again), penalties(model), rtol=1e-6)


def test_a_non_scalar_regularizer_is_summed_and_a_non_number_refused():
    # Keras sums each entry of model.losses (trainer._aggregate_additional_loss); a vector
    # regularizer failed with "only 0-dimensional arrays can be converted"
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input((3,)), L.Dense(2, kernel_regularizer=lambda w: 0.1 * w)])
    model.compile(optimizer=nn.optimizers.SGD(0.5), loss="mse")
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    k, b = model.get_weights()
    mse = float(np.mean((x @ k + b) ** 2))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(mse + 0.1 * k.sum(), rel=1e-5)
    plain = nn.Sequential([nn.Input((3,)), L.Dense(2)])
    plain.compile(optimizer=nn.optimizers.SGD(0.5), loss="mse")
    plain.set_weights([k, b])
    assert model.train_on_batch(x, y) == pytest.approx(mse + 0.1 * k.sum(), rel=1e-5)
    plain.train_on_batch(x, y)
    # the penalty's gradient is 0.1 everywhere: the kernel moves 0.5 * 0.1 further
    np.testing.assert_allclose(model.get_weights()[0], plain.get_weights()[0] - 0.05,
                               rtol=1e-5, atol=1e-6)
    bad = nn.Sequential([nn.Input((3,)), L.Dense(2, kernel_regularizer=lambda w: None)])
    bad.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match="must be a number or a Tensor; received NoneType"):
        bad.fit(x, y, verbose=0)


def test_a_constraint_failing_on_its_weight_names_both():
    # an axis the weight does not have (a hand-edited config) failed with numpy's bare
    # "axis 5 is out of bounds for array of dimension 2"
    model = nn.Sequential([nn.Input((3,)), L.Dense(2, kernel_constraint=nn.constraints.MaxNorm(
        axis=5), name="d")])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"MaxNorm\(max_value=2.0, axis=5\) on 'd/kernel' "
                                         r"\(shape \(3, 2\)\).*out of bounds"):
        model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)


def shared_net(lib):
    ia, ib = lib.Input((3,)), lib.Input((3,))
    d = lib.layers.Dense(2, activity_regularizer=lib.regularizers.L2(0.5), name="shared")
    return lib.Model([ia, ib], lib.layers.Add()([d(ia), d(ib)]))


def test_a_shared_layer_keeps_the_activity_loss_of_each_call(keras):
    # a layer called twice in one forward kept only its last call's activity penalty
    rng = np.random.default_rng(0)
    a, b, y = (rng.standard_normal((4, n)).astype("float32") for n in (3, 3, 2))
    nn.utils.set_random_seed(0)
    model = shared_net(nn)
    k, bias = model.get_weights()
    expect = sum(0.5 * np.sum((x @ k + bias) ** 2) / 4 for x in (a, b))
    model([a, b])
    np.testing.assert_allclose(sum(penalties(model)), expect, rtol=1e-5)
    keras.utils.set_random_seed(0)
    km = shared_net(keras)
    model.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.compile(optimizer=nn.optimizers.SGD(0.1), loss="mse")
    kh = km.fit([a, b], y, epochs=2, shuffle=False, verbose=0).history["loss"]
    wh = model.fit([a, b], y, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(wh, kh, rtol=1e-5)


@pytest.mark.parametrize("conv", [False, True])
def test_a_constraint_keeps_a_pruned_layers_zeros(conv):
    # keras17's re-masking of a pruned Conv2D's constraint had no test (dropping it left
    # every test passing while the kernel went dense); a constraint that moves zeros
    nn.utils.set_random_seed(0)
    shift = lambda w: np.asarray(getattr(w, "data", w)) + 0.01  # noqa: E731
    layer = (L.Conv2D(4, 3, sparsity=0.7, kernel_constraint=shift) if conv
             else L.Dense(8, sparsity=0.7, kernel_constraint=shift))
    shape = (6, 6, 2) if conv else (6,)
    model = nn.Sequential([nn.Input(shape), layer, L.Flatten(), L.Dense(1)])
    model.compile(optimizer=nn.optimizers.SGD(0.1), loss="mse")
    before = model.get_weights()[0]
    zeros = before == 0
    assert 0.6 < zeros.mean() < 0.8
    model.fit(np.ones((4,) + shape, "float32"), np.ones((4, 1), "float32"), verbose=0)
    after = model.get_weights()[0]
    np.testing.assert_array_equal(after[zeros], 0)
    assert np.all(np.abs(after[~zeros] - before[~zeros]) > 0.005)   # the constraint ran


def test_a_pruned_dense_shape_aware_regularizer_sees_the_dense_kernel():
    # keras17's scatter of the kept values into the (in, out) kernel had no test: giving
    # the regularizer the 1-D kept values instead left every test passing
    colsq = lambda w: 0.1 * nn.ops.sum(nn.ops.square(nn.ops.sum(w, axis=0)))  # noqa: E731
    nn.utils.set_random_seed(0)
    pruned = nn.Sequential([nn.Input((6,)), L.Dense(4, sparsity=0.5, kernel_regularizer=colsq)])
    plain = nn.Sequential([nn.Input((6,)), L.Dense(4)])       # dense, the same zeros
    plain.set_weights(pruned.get_weights())
    k, b = pruned.get_weights()
    kept = k != 0
    penalty = 0.1 * np.sum(k.sum(axis=0) ** 2)
    np.testing.assert_allclose(penalties(pruned), [penalty], rtol=1e-5)
    x, y = data(8, seed=1)[0], np.zeros((8, 4), "float32")
    for m in (pruned, plain):
        m.compile(optimizer=nn.optimizers.SGD(0.1), loss="mse")
    assert pruned.train_on_batch(x, y) == pytest.approx(
        plain.evaluate(x, y, verbose=0) + penalty, rel=1e-5)
    plain.train_on_batch(x, y)
    grad = 0.2 * np.broadcast_to(k.sum(axis=0), k.shape)
    after = pruned.get_weights()[0]
    np.testing.assert_allclose(after[kept], (plain.get_weights()[0] - 0.1 * grad)[kept],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(after[~kept], 0)
