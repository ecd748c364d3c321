"""``sample_weight={output_name: w}`` (and a list in output order) on a multi-output model:
each output's loss weighed by its own array, as Keras does (a dict was an unclear
"float() argument must be ... not 'dict'" TypeError). Checked in closed form and against
Keras itself."""

import numpy as np
import pytest

from wsekern import nn


def two_outputs(lib):
    i = lib.Input((4,))
    a = lib.layers.Dense(2, name="a")(i)
    b = lib.layers.Dense(1, name="b")(i)
    model = lib.Model(i, {"a": a, "b": b})
    model.compile(optimizer=lib.optimizers.SGD(0.1), loss={"a": "mse", "b": "mae"})
    return model


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4)).astype("float32")
    y = {"a": rng.standard_normal((8, 2)).astype("float32"),
         "b": rng.standard_normal((8, 1)).astype("float32")}
    sw = {"a": np.arange(8.0, dtype="float32"), "b": np.linspace(0, 1, 8, dtype="float32")}
    return x, y, sw


def test_each_output_takes_its_own_weights():
    x, y, sw = data()
    nn.utils.set_random_seed(0)
    model = two_outputs(nn)
    pred = model.predict(x, verbose=0)
    mse = np.mean((pred["a"] - y["a"]) ** 2, axis=1)
    mae = np.mean(np.abs(pred["b"] - y["b"]), axis=1)
    want_a, want_b = np.sum(sw["a"] * mse) / 8, np.sum(sw["b"] * mae) / 8
    for weights in (sw, [sw["a"], sw["b"]]):
        got = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
        assert got["a_loss"] == pytest.approx(want_a, rel=1e-5)
        assert got["b_loss"] == pytest.approx(want_b, rel=1e-5)
        assert got["loss"] == pytest.approx(want_a + want_b, rel=1e-5)
    only_a = model.evaluate(x, y, sample_weight={"a": sw["a"], "b": None}, verbose=0,
                            return_dict=True)   # None: b unweighted (a partial dict is refused)
    assert only_a["b_loss"] == pytest.approx(np.mean(mae), rel=1e-5)      # unweighted
    history = model.fit(x, y, sample_weight=sw, validation_split=0.25, epochs=1,
                        batch_size=3, shuffle=False, verbose=0).history
    assert set(history) >= {"loss", "a_loss", "b_loss", "val_loss"}


def test_wrong_weights_say_what_works():
    x, y, sw = data()
    model = two_outputs(nn)
    with pytest.raises(ValueError, match=r"sample_weight names \['c'\].*outputs are \['a', "
                                         r"'b'\]"):
        model.fit(x, y, sample_weight={"a": sw["a"], "c": sw["b"]}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight\['b'\] must hold one finite weight "
                                         r"per sample \(8\); received shape \(5,\)"):
        model.fit(x, y, sample_weight={"a": sw["a"], "b": np.ones(5)}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="3 arrays for a model with 2 outputs"):
        model.train_on_batch(x, y, sample_weight=[sw["a"], sw["b"], sw["b"]])


def test_fit_equals_keras(keras):
    x, y, sw = data()
    theirs, ours = two_outputs(keras), two_outputs(nn)
    ours.set_weights(theirs.get_weights())
    h1 = ours.fit(x, y, sample_weight=sw, epochs=2, batch_size=4, shuffle=False,
                  verbose=0).history
    h2 = theirs.fit(x, y, sample_weight=sw, epochs=2, batch_size=4, shuffle=False,
                    verbose=0).history
    for key in ("loss", "a_loss", "b_loss"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-6)
    e1 = ours.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    e2 = theirs.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    for key in e2:
        assert e1[key] == pytest.approx(e2[key], rel=1e-5)
