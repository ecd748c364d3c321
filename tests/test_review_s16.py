"""s16 review of the leftovers16 and audit16 merges: what a second reading found. Each test
failed on main c4415b9 unless it says otherwise."""
import numpy as np
import pytest

from wsekern import nn

RNG = np.random.default_rng(16)
X = RNG.standard_normal((24, 5)).astype(np.float32)
LABELS = RNG.integers(0, 3, 24)
BINARY = (RNG.random((24, 1)) > 0.5).astype(np.float32)


def _evaluate_both(keras, units, activation, loss, y, **compile_args):
    """Keras's and our evaluate logs for the same one-layer model (Keras's weights)."""
    logs, weights = [], None
    for K in (keras, nn):
        keras.utils.set_random_seed(0)
        model = K.Sequential([K.Input((5,)), K.layers.Dense(units, activation=activation)])
        if weights is None:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        model.compile(optimizer="sgd", loss=loss, **compile_args)
        logs.append(model.evaluate(X, y, verbose=0, return_dict=True))
    return logs


# Keras picks the shape-chosen accuracy for any case of 'accuracy'/'acc'
# (str(identifier).lower()) and logs it under the name as given; ours matched the lower case
# only: 'Accuracy' became the exact-equality Accuracy metric (labels against probabilities:
# a broadcast error), 'ACC' was refused as unknown.
@pytest.mark.parametrize("name", ["Accuracy", "ACC", "Acc"])
@pytest.mark.parametrize("units,activation,loss,y", [
    (3, "softmax", "sparse_categorical_crossentropy", LABELS),
    (1, "sigmoid", "binary_crossentropy", BINARY),
    (3, "softmax", "categorical_crossentropy", np.eye(3, dtype=np.float32)[LABELS]),
], ids=["sparse", "binary", "categorical"])
def test_accuracy_in_any_case_is_keras_accuracy(name, units, activation, loss, y, keras):
    theirs, ours = _evaluate_both(keras, units, activation, loss, y, metrics=[name])
    assert sorted(ours) == sorted(theirs) == sorted(["loss", name])
    for key in theirs:
        np.testing.assert_allclose(ours[key], float(theirs[key]), rtol=1e-5, err_msg=key)


# save_model kept compile's loss, loss_weights and metrics but not weighted_metrics (nor did
# load_model pass them back): a loaded model's logs lost the weighted metrics, so
# metrics=["accuracy"], weighted_metrics=["accuracy"] logged 'accuracy' and
# 'weighted_accuracy' before saving and 'accuracy' alone after.
@pytest.mark.parametrize("weighted", [
    ["accuracy"], ["acc", "sparse_categorical_crossentropy"], {"out": ["accuracy"]},
], ids=["same-name", "two", "per-output"])
def test_saved_model_keeps_its_weighted_metrics(weighted, tmp_path):
    sw = RNG.random(24).astype(np.float32)
    inp = nn.Input((5,))
    model = nn.Model(inp, nn.layers.Dense(3, activation="softmax", name="out")(inp))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=weighted)
    model.fit(X, LABELS, sample_weight=sw, epochs=1, verbose=0)
    before = model.evaluate(X, LABELS, sample_weight=sw, verbose=0, return_dict=True)
    assert len(before) == 2 + len(weighted if isinstance(weighted, list) else weighted["out"])
    model.save(tmp_path / "m.keras")
    loaded = nn.saving.load_model(tmp_path / "m.keras")
    after = loaded.evaluate(X, LABELS, sample_weight=sw, verbose=0, return_dict=True)
    assert list(after) == list(before)
    np.testing.assert_allclose(list(after.values()), list(before.values()), rtol=1e-6)


# The README (s16) said the built-in layers take no *_regularizer or constraint arguments
# "and say so"; they raised the generic "got unexpected keyword arguments". Since s17 they
# take Keras's (tests/test_nn_layer_regularizers.py); one a layer does not have is refused
# naming those it has.
@pytest.mark.parametrize("layer,kwargs", [
    (lambda **kw: nn.layers.Dense(3, **kw), {"gamma_regularizer": "l2"}),
    (lambda **kw: nn.layers.Conv2D(2, 3, **kw), {"beta_constraint": "non_neg"}),
    (lambda **kw: nn.layers.Dense(3, **kw), {"alpha_regularizer": "l1", "units2": 1}),
], ids=["dense-gamma-regularizer", "conv-beta-constraint", "alpha-and-unknown"])
def test_regularizer_arguments_are_refused_with_what_to_do(layer, kwargs):
    with pytest.raises(TypeError) as info:
        layer(**kwargs)
    message = str(info.value)
    assert all(k in message for k in kwargs)
    assert "kernel_regularizer" in message and "add_weight(regularizer=" in message


def test_other_unknown_arguments_keep_the_plain_message():      # a guard: passes on c4415b9
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['bogus'\]$"):
        nn.layers.Dense(3, bogus=1)


# fit(validation_split=) cut sample_weight at the split before any check of its length:
# 20 weights for 16 samples were refused for "(4) ... received shape (8,)" (the held-out
# part; before s16 the extra weights were silently dropped), and a dict a bare IndexError.
# (Since s17 a dict by output name is Keras's per-output form: its arrays are checked.)
@pytest.mark.parametrize("weights,shown", [
    (np.ones(30), "(30,)"), (np.ones(10), "(10,)"), ({"out": np.ones(20)}, "['out']"),
], ids=["too-many", "too-few", "dict"])
def test_validation_split_checks_the_sample_weights_length_first(weights, shown):
    inp = nn.Input((5,))
    model = nn.Model(inp, nn.layers.Dense(3, activation="softmax", name="out")(inp))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"one (finite )?weight per sample \(24\)") as info:
        model.fit(X, LABELS, sample_weight=weights, validation_split=0.25, epochs=1,
                  verbose=0)
    assert shown in str(info.value)
