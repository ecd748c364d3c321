"""s18 review_k2: fresh eyes on keras18's and audit18's merges, each case against real
Keras 3 (torch backend). Each test failed on main 6fe7db0 unless it says otherwise."""
import numpy as np
import pytest

from wsekern import nn


def _mha_weights(K, keras, **kw):
    keras.utils.set_random_seed(0)
    inputs = K.Input((5, 16))
    mha = K.layers.MultiHeadAttention(num_heads=4, key_dim=8, value_dim=6, **kw)
    K.Model(inputs, mha(inputs, inputs))
    return mha.get_weights()


# Keras's initializer objects are stateless: Keras's MultiHeadAttention clones one per
# projection (an unseeded one draws anew each time) and EinsumDense gives a VarianceScaling
# the fans of its input and output axes. Ours called the one object four times in Keras's
# 3-D shape: the query and key kernels were equal and a fan_out/fan_avg draw had half
# Keras's std (0.125 where Keras draws 0.249 with VarianceScaling(2, "fan_out")).
@pytest.mark.parametrize("make", [
    lambda k: dict(kernel_initializer=k.initializers.VarianceScaling(
        2.0, "fan_out", "truncated_normal")),
    lambda k: dict(kernel_initializer=k.initializers.VarianceScaling(1.0, "fan_avg", "uniform")),
    lambda k: dict(kernel_initializer=k.initializers.GlorotNormal(),
                   bias_initializer=k.initializers.RandomNormal(stddev=0.5)),
], ids=["fan_out", "fan_avg", "glorot-object+random-bias"])
def test_mha_keras_initializer_objects_draw_as_keras(keras, make):
    theirs = _mha_weights(keras, keras, **make(keras))
    ours = _mha_weights(nn, keras, **make(keras))
    assert [w.shape for w in ours] == [w.shape for w in theirs]
    for a, b in zip(theirs, ours):
        # the same statistics as Keras's draw (its fans), whatever the random stream
        assert np.std(b) == pytest.approx(np.std(a), rel=0.15, abs=1e-6)
    # each projection draws its own values, as Keras's clones do
    assert not np.allclose(ours[0], ours[2])
    if "bias_initializer" in make(keras):
        assert not np.allclose(ours[1], ours[3])
    # with the same seeds, the very values Keras draws
    for a, b in zip(theirs, ours):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


# A Keras initializer object in a config was written as its class name alone
# (get_registered_name): its arguments were lost, so clone_model's fresh draw (and a loaded
# model's, before its weights) took Constant(0) where Keras's clone has Constant(0.5), and a
# RandomNormal(stddev=3) drew std 0.05.
def test_keras_initializer_objects_keep_their_arguments_in_clones(keras, tmp_path):
    def build(K):
        inputs = K.Input((4,))
        dense = K.layers.Dense(64, name="d",
                               kernel_initializer=keras.initializers.RandomNormal(stddev=3.0),
                               bias_initializer=keras.initializers.Constant(0.5))
        mha = K.layers.MultiHeadAttention(
            2, 4, name="mha", kernel_initializer=keras.initializers.HeNormal(seed=3),
            bias_initializer=keras.initializers.Constant(-0.25))
        h = K.layers.Reshape((8, 8))(dense(inputs))
        return K.Model(inputs, mha(h, h))

    keras.utils.set_random_seed(0)
    theirs = keras.models.clone_model(build(keras))
    keras.utils.set_random_seed(0)
    model = build(nn)
    clones = [nn.models.clone_model(model)]
    for clone in clones:
        for name in ("d", "mha"):
            t, o = theirs.get_layer(name).get_weights(), clone.get_layer(name).get_weights()
            for a, b in zip(t, o):
                assert b.shape == a.shape
                if np.ptp(a) == 0:          # a Constant bias: the very value
                    np.testing.assert_array_equal(b, a)
                else:
                    assert np.std(b) == pytest.approx(np.std(a), rel=0.15)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = nn.load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(b, a)
    assert loaded.get_layer("d").get_config()["bias_initializer"] == {
        "class_name": "Constant", "config": {"value": 0.5}}


# keras.io's serialization guide: ``new_model = keras.Model.from_config(model.get_config())``.
# A functional model's get_config was Model's {name, trainable}: Model.from_config made an
# empty model in silence (no layers, predict had nothing to run), Functional.from_config a
# TypeError.
def test_model_from_config_of_a_functional_model_is_its_graph(keras):
    def build(K):
        inputs = K.Input((6,), name="x")
        h = K.layers.Dense(5, activation="relu", name="h")(inputs)
        return K.Model(inputs, [K.layers.Dense(1, name="a")(h),
                                K.layers.Dense(2, name="b")(h)], name="two")

    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    theirs, ours = build(keras), build(nn)
    ours.set_weights(theirs.get_weights())
    for make in (keras.Model.from_config, type(theirs).from_config):
        new = make(theirs.get_config())
        new.set_weights(theirs.get_weights())
        expected = [layer.name for layer in new.layers]
    for make in (nn.Model.from_config, type(ours).from_config):
        new = make(ours.get_config())
        assert [layer.name for layer in new.layers] == expected
        assert new.name == "two"
        new.set_weights(ours.get_weights())
        for a, b in zip(theirs.predict(x, verbose=0), new.predict(x, verbose=0)):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


# Keras takes output_shape as an int or a tuple; (10,) was handed to Dense as units and
# refused with "units must be a positive int; received (10,)". A tuple of more dims is
# refused by what ours does.
def test_mha_output_shape_as_a_tuple_as_keras(keras, tmp_path):
    x = np.random.default_rng(1).standard_normal((2, 5, 16)).astype(np.float32)
    out = []
    for K in (keras, nn):
        inputs = K.Input((5, 16))
        mha = K.layers.MultiHeadAttention(2, 4, output_shape=(10,), name="mha")
        model = K.Model(inputs, mha(inputs, inputs))
        if K is nn:
            model.set_weights(out[0][1])
        out.append((model.predict(x, verbose=0), model.get_weights(), mha.get_config()))
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=1e-5, atol=1e-6)
    assert out[1][2]["output_shape"] == out[0][2]["output_shape"]
    path = tmp_path / "m.keras"
    model.save(path)
    np.testing.assert_array_equal(nn.load_model(path).predict(x, verbose=0), out[1][0])
    with pytest.raises(ValueError, match=r"output_shape.*received \(3, 4\)"):
        nn.layers.MultiHeadAttention(2, 4, output_shape=(3, 4))
