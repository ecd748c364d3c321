"""Session 19: the Keras differences the s18 reviews left, each against real Keras 3 (torch
backend) from the same initial weights."""
import numpy as np
import pytest

from wsekern import nn

TOL = dict(rtol=1e-5, atol=1e-6)


def _x(n=12, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype("float32")


def _twins(keras, build):
    """The same model in Keras and in wsekern.nn, with Keras's initial weights."""
    keras.utils.set_random_seed(0)
    km = build(keras)
    model = build(nn)
    model.set_weights(km.get_weights())
    return km, model


def _history(model, *args, **kwargs):
    return model.fit(*args, verbose=0, shuffle=False, **kwargs).history


def _same_history(ours, theirs):
    assert list(ours) == list(theirs)
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], **TOL, err_msg=k)


def test_class_weight_missing_a_class_weighs_it_one_as_in_keras(keras):
    def build(lib):
        return lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="softmax")])
    km, model = _twins(keras, build)
    y = np.random.default_rng(1).integers(0, 3, 12)
    assert set(y.tolist()) == {0, 1, 2}
    for m in (km, model):
        m.compile("sgd", "sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    cw = {0: 2.0, 1: 0.5}                              # class 2 is not named
    _same_history(_history(model, _x(), y, class_weight=cw, epochs=2, batch_size=4),
                  _history(km, _x(), y, class_weight=cw, epochs=2, batch_size=4))


def test_keras_metric_objects_log_by_their_names_and_values(keras):
    def build(lib):
        return lib.Sequential([lib.Input((4,)), lib.layers.Dense(2)])
    km, model = _twins(keras, build)
    y = _x(d=2, seed=2)
    for m in (km, model):
        m.compile("sgd", "mse", metrics=[keras.metrics.MeanAbsoluteError(),
                                         keras.metrics.RootMeanSquaredError(name="rm")])
    # several batches: the Keras object called as a function kept running means of its own
    _same_history(_history(model, _x(), y, epochs=2, batch_size=5),
                  _history(km, _x(), y, epochs=2, batch_size=5))
    ours = model.evaluate(_x(), y, batch_size=5, verbose=0, return_dict=True)
    theirs = km.evaluate(_x(), y, batch_size=5, verbose=0, return_dict=True)
    assert list(ours) == list(theirs)
    np.testing.assert_allclose([ours[k] for k in theirs], list(theirs.values()), **TOL)


def test_a_keras_metric_class_wsekern_lacks_is_refused_by_name(keras):
    model = nn.Sequential([nn.Input((4,)), nn.layers.Dense(1)])
    with pytest.raises(TypeError, match="R2Score is a Keras metric object"):
        model.compile("sgd", "mse", metrics=[keras.metrics.R2Score()])
        model.fit(_x(), _x(d=1), verbose=0)


def _two_outputs(lib, as_list):
    i = lib.Input((4,), name="x")
    h = lib.layers.Dense(5)(i)
    a, b = lib.layers.Dense(2, name="a")(h), lib.layers.Dense(1, name="b")(h)
    return lib.Model(i, [a, b] if as_list else {"a": a, "b": b})


@pytest.mark.parametrize("as_list", [False, True], ids=["dict-outputs", "list-outputs"])
def test_a_metrics_list_on_several_outputs_is_per_output_as_in_keras(keras, as_list):
    km, model = _twins(keras, lambda lib: _two_outputs(lib, as_list))
    ya, yb = _x(d=2, seed=3), _x(d=1, seed=4)
    y = [ya, yb] if as_list else {"a": ya, "b": yb}
    loss = ["mse", "mse"] if as_list else {"a": "mse", "b": "mse"}
    for m in (km, model):                          # one entry per output, in order
        m.compile("sgd", loss, metrics=["mae", "mse"], weighted_metrics=[None, ["mae"]])
    _same_history(_history(model, _x(), y, epochs=2, batch_size=5),
                  _history(km, _x(), y, epochs=2, batch_size=5))
    for metrics in (["mae"], ["mae", "mse", "mse"]):     # another length: both refuse
        for m in (km, model):
            m.compile("sgd", loss, metrics=metrics)
        with pytest.raises(ValueError):
            km.fit(_x(), y, verbose=0)
        with pytest.raises(ValueError, match="one entry per output"):
            model.fit(_x(), y, verbose=0)


def test_a_loss_dict_missing_an_output_trains_as_in_keras(keras):
    """Guard (passes on the old code too): Keras 3.15 takes the partial dict and leaves
    the other output out of the loss, as ours does (keras18 had noted it as refused)."""
    km, model = _twins(keras, lambda lib: _two_outputs(lib, False))
    y = {"a": _x(d=2, seed=3), "b": _x(d=1, seed=4)}
    for m in (km, model):
        m.compile("sgd", {"a": "mse"})
    _same_history(_history(model, _x(), y, epochs=2, batch_size=5),
                  _history(km, _x(), y, epochs=2, batch_size=5))


def test_clone_of_an_attention_with_one_projection_pruned_keeps_each_pattern(keras):
    def build(lib):
        i = lib.Input((3, 8))
        return lib.Model(i, lib.layers.MultiHeadAttention(2, 4, name="mha")(i, i))
    km, model = _twins(keras, build)
    mha = model.get_layer("mha")
    mha.query_dense.set_sparsity(0.75)
    mha.sublayers_changed()
    clone = nn.models.clone_model(model)
    kclone = keras.models.clone_model(km)
    cm = clone.get_layer("mha")
    assert [getattr(s, "sparsity", 0.0) for s in cm.sublayers] == \
        [getattr(s, "sparsity", 0.0) for s in mha.sublayers] == [0.75, 0.0, 0.0, 0.0]
    assert cm.sparsity == mha.sparsity
    np.testing.assert_array_equal(cm.query_dense.mask, mha.query_dense.mask)
    # the clone takes the original's weights back exactly, as Keras's clone does
    weights = model.get_weights()
    clone.set_weights(weights)
    kclone.set_weights(weights)
    x = np.random.default_rng(5).normal(size=(2, 3, 8)).astype("float32")
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0),
                               **TOL)
    np.testing.assert_allclose(clone.predict(x, verbose=0), kclone.predict(x, verbose=0),
                               **TOL)


def test_noise_layers_take_keras_keywords_and_time_distributed_saves(keras, tmp_path):
    """GaussianNoise(stddev=), SpatialDropout1D(rate=), MaxPooling1D(pool_size=(2,)) as in
    Keras; a model with TimeDistributed and GaussianNoise saves and loads (both failed)."""
    def build(lib):
        L = lib.layers
        return lib.Sequential([lib.Input((6, 3)), L.GaussianNoise(stddev=0.3),
                               L.SpatialDropout1D(rate=0.2), L.GaussianDropout(rate=0.1),
                               L.MaxPooling1D(pool_size=(2,), strides=[2]),
                               L.TimeDistributed(L.Dense(2))])
    km, model = _twins(keras, build)
    x = np.random.default_rng(6).normal(size=(4, 6, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), km.predict(x, verbose=0), **TOL)
    model.save(tmp_path / "m.keras")
    loaded = nn.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), km.predict(x, verbose=0), **TOL)
    assert loaded.layers[0].stddev == 0.3 and loaded.layers[1].rate == 0.2
