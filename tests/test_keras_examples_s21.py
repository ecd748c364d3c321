"""Two keras.io examples not ported before (session 21), each written once as a function of
its ``keras`` module and run twice, with ``import keras`` and with ``from wsekern import nn
as keras``: "Timeseries classification from scratch" (Conv1D/BatchNormalization/ReLU,
GlobalAveragePooling1D, ModelCheckpoint(save_best_only) + ReduceLROnPlateau + EarlyStopping,
then the best model reloaded) and "Imbalanced classification: credit card fraud detection"
(class_weight, the four confusion counts, Precision and Recall, a ModelCheckpoint per epoch).
The downloads are replaced by small seeded data of the same shapes and kinds; ours starts
from Keras's initial weights (conftest's ``keras_twins``) and fits without shuffling (the two
libraries shuffle with different generators), otherwise the programs are the examples'."""
import os
import warnings

import numpy as np
import pytest
from conftest import keras_twins

from wsekern import nn

RTOL, ATOL = 1e-4, 1e-5


def _close(a, b, what, rtol=RTOL, atol=ATOL):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


# -- Timeseries classification from scratch (keras.io/examples/timeseries) ----------------
def _forda_like(n, seed):
    """FordA's shape: univariate series of one length, labels -1/1 (the example maps -1 to
    0). The test series have two noisy frequencies; the training series (seed 0) one for
    both labels, so val_loss stops improving at once and both callbacks act early."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 64)
    y = np.where(rng.random(n) < 0.5, -1, 1)
    f = np.where(y == 1, 7.0, 5.0)[:, None] if seed else 6.0
    x = np.sin(2 * np.pi * f * t + rng.uniform(0, 6, (n, 1))) + rng.normal(size=(n, 64))
    return x, y                                      # float64, as np.loadtxt gives


def _timeseries_program(keras, model_factory, workdir, epochs=8):
    """The example from its data preparation to its evaluation of the best model."""
    x_train, y_train = _forda_like(120, 0)
    x_test, y_test = _forda_like(60, 1)
    x_train = x_train.reshape((x_train.shape[0], x_train.shape[1], 1))
    x_test = x_test.reshape((x_test.shape[0], x_test.shape[1], 1))
    num_classes = len(np.unique(y_train))
    y_train[y_train == -1] = 0
    y_test[y_test == -1] = 0

    model = model_factory(input_shape=x_train.shape[1:], num_classes=num_classes)
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            os.path.join(workdir, "best_model.keras"), save_best_only=True, monitor="val_loss"
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=1, min_lr=0.0001
        ),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, verbose=0),
    ]
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, callbacks=callbacks,
                        validation_split=0.2, verbose=0, shuffle=False)
    best = keras.models.load_model(os.path.join(workdir, "best_model.keras"))
    test_loss, test_acc = best.evaluate(x_test, y_test, verbose=0)
    return dict(history=history.history, test=(test_loss, test_acc),
                best=best.predict(x_test, verbose=0), final=model.predict(x_test, verbose=0))


def _timeseries_model(keras):
    def make_model(input_shape, num_classes):
        input_layer = keras.layers.Input(input_shape)

        conv1 = keras.layers.Conv1D(filters=16, kernel_size=3, padding="same")(input_layer)
        conv1 = keras.layers.BatchNormalization()(conv1)
        conv1 = keras.layers.ReLU()(conv1)

        conv2 = keras.layers.Conv1D(filters=16, kernel_size=3, padding="same")(conv1)
        conv2 = keras.layers.BatchNormalization()(conv2)
        conv2 = keras.layers.ReLU()(conv2)

        conv3 = keras.layers.Conv1D(filters=16, kernel_size=3, padding="same")(conv2)
        conv3 = keras.layers.BatchNormalization()(conv3)
        conv3 = keras.layers.ReLU()(conv3)

        gap = keras.layers.GlobalAveragePooling1D()(conv3)

        output_layer = keras.layers.Dense(num_classes, activation="softmax")(gap)

        return keras.models.Model(inputs=input_layer, outputs=output_layer)
    return make_model


def test_timeseries_classification_example_as_keras(keras, tmp_path):
    pytest.importorskip("h5py")                 # ModelCheckpoint writes Keras's .keras file
    runs = {}

    def build(K):
        return _timeseries_model(K)(input_shape=(64, 1), num_classes=2)

    def run(K, model):
        d = tmp_path / ("keras" if K is keras else "ours")
        d.mkdir()
        runs[K is keras] = d
        return _timeseries_program(K, lambda **kw: model, str(d))

    theirs, ours = keras_twins(keras, build, run)
    h_k, h_o = theirs["history"], ours["history"]
    assert sorted(h_o) == sorted(h_k)
    # the callbacks acted on the same epochs: the learning rate halved and the run stopped
    # early alike (both happen on this data; checked so the test covers them)
    assert len(h_o["loss"]) == len(h_k["loss"]) < 8
    assert min(h_k["learning_rate"]) < 0.001
    for key in h_k:
        _close(h_o[key], h_k[key], key)
    _close(ours["test"], theirs["test"], "best model's evaluate")
    _close(ours["best"], theirs["best"], "best model's predictions")
    _close(ours["final"], theirs["final"], "final predictions")
    # the training series carry no label signal, so the predictions stay near 0.5 and hide
    # a BatchNormalization off by a little (a moving variance 2 % off at each update
    # passed): the best models' weights, moving statistics included, are compared too,
    # but for the conv biases before each norm (a zero gradient in exact arithmetic: what
    # Adam makes of the rounding noise differs; the norm removes them)
    best_k = keras.models.load_model(runs[True] / "best_model.keras")
    best_o = nn.models.load_model(runs[False] / "best_model.keras")
    assert [type(la).__name__ for la in best_o.layers] == \
        [type(la).__name__ for la in best_k.layers]
    for lo, lk in zip(best_o.layers, best_k.layers):
        wo, wk = lo.get_weights(), lk.get_weights()
        assert [w.shape for w in wo] == [w.shape for w in wk], lo.name
        if type(lk).__name__ == "Conv1D":
            wo, wk = wo[:1], wk[:1]
        for i, (a, b) in enumerate(zip(wo, wk)):
            _close(a, b, f"best model's {lk.name} weight {i}")
    # each library reads the other's best_model.keras and predicts as its writer did
    x = np.random.default_rng(2).normal(size=(5, 64, 1))
    k_from_ours = keras.models.load_model(runs[False] / "best_model.keras")
    o_from_keras = nn.models.load_model(runs[True] / "best_model.keras")
    _close(k_from_ours.predict(x, verbose=0),
           nn.models.load_model(runs[False] / "best_model.keras").predict(x, verbose=0),
           "Keras reading our file")
    _close(o_from_keras.predict(x, verbose=0),
           keras.models.load_model(runs[True] / "best_model.keras").predict(x, verbose=0),
           "ours reading Keras's file")


# -- Imbalanced classification: credit card fraud detection (keras.io/examples/structured_data)
def _fraud_like():
    """The Kaggle file's shapes and kinds: 30 float features of very different scales and a
    rare positive class (~4 %) as uint8 (n, 1) targets."""
    rng = np.random.default_rng(0)
    n = 800
    features = (rng.normal(size=(n, 30)) * rng.uniform(0.5, 50, 30)).astype("float32")
    score = features[:, 3] / features[:, 3].std() + 0.3 * rng.normal(size=n)
    targets = (score > 1.75).astype("uint8")[:, None]
    return features, targets


def _fraud_program(keras, workdir, dropout=0.3, validation=True, epochs=3, weights=None):
    features, targets = _fraud_like()
    num_val_samples = int(len(features) * 0.2)
    train_features = features[:-num_val_samples]
    train_targets = targets[:-num_val_samples]
    val_features = features[-num_val_samples:]
    val_targets = targets[-num_val_samples:]

    counts = np.bincount(train_targets[:, 0])
    weight_for_0 = 1.0 / counts[0]
    weight_for_1 = 1.0 / counts[1]

    mean = np.mean(train_features, axis=0)
    train_features -= mean
    val_features -= mean
    std = np.std(train_features, axis=0)
    train_features /= std
    val_features /= std

    model = keras.Sequential(
        [
            keras.Input(shape=train_features.shape[1:]),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    initial = model.get_weights()
    if weights is not None:               # the twins start alike (not in the example)
        model.set_weights(weights)
    metrics = [
        keras.metrics.FalseNegatives(name="fn"),
        keras.metrics.FalsePositives(name="fp"),
        keras.metrics.TrueNegatives(name="tn"),
        keras.metrics.TruePositives(name="tp"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
    ]
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=metrics
    )
    callbacks = [keras.callbacks.ModelCheckpoint(
        os.path.join(workdir, "fraud_model_at_epoch_{epoch}.keras"))]
    class_weight = {0: weight_for_0, 1: weight_for_1}
    history = model.fit(
        train_features, train_targets, batch_size=128, epochs=epochs, verbose=0,
        callbacks=callbacks,
        validation_data=(val_features, val_targets) if validation else None,
        class_weight=class_weight, shuffle=False)
    return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}, (
        val_features, val_targets, train_targets), initial


def test_imbalanced_classification_example_runs_verbatim(tmp_path):
    """Dropout(0.3) as in the example (its random draws differ from Keras's, so this run is
    checked against NumPy, not Keras): the counts of each epoch add up to the rows, the
    validation counts are the final model's, each epoch's file is written (with no warning:
    Keras has every metric) and loads."""
    nn.utils.set_random_seed(0)
    with warnings.catch_warnings():
        try:                                    # (without h5py, our format: warned)
            import h5py  # noqa: F401
            warnings.simplefilter("error")
        except ImportError:
            pass
        model, h, (xv, yv, yt), _ = _fraud_program(nn, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [f"fraud_model_at_epoch_{e}.keras" for e in (1, 2, 3)]
    # class_weight weighs the loss, not the metrics (as in Keras): each epoch counts every
    # training row once
    pos = int(yt.sum())
    for e in range(3):
        assert h["tp"][e] + h["fn"][e] == pos
        assert h["tn"][e] + h["fp"][e] == len(yt) - pos
    p = model.predict(xv, verbose=0)[:, 0] > 0.5
    t = yv[:, 0] == 1
    want = dict(val_tp=(p & t).sum(), val_fp=(p & ~t).sum(), val_tn=(~p & ~t).sum(),
                val_fn=(~p & t).sum())
    assert {k: h[k][-1] for k in want} == {k: float(v) for k, v in want.items()}
    assert h["val_precision"][-1] == pytest.approx(want["val_tp"] / max(p.sum(), 1))
    assert h["val_recall"][-1] == pytest.approx(want["val_tp"] / t.sum())
    last = nn.models.load_model(tmp_path / "fraud_model_at_epoch_3.keras")
    _close(last.predict(xv, verbose=0), model.predict(xv, verbose=0), "epoch 3's file")


def test_imbalanced_classification_example_as_keras(keras, tmp_path):
    """Without dropout (its draws are the only randomness), ours equals Keras epoch by
    epoch. Keras 3.15 on torch logs the train-side fn/fp/tn/tp of an epoch with validation
    data as the validation values (its result() hands out the metric's variable, which the
    evaluation then resets and refills), so those four are compared with a Keras run
    without validation data, whose training is the same."""
    def run(K, name, validation, weights):
        d = tmp_path / name
        d.mkdir()
        K.utils.set_random_seed(0)
        model, h, (xv, yv, _), initial = _fraud_program(K, str(d), dropout=0.0,
                                                       validation=validation, weights=weights)
        data[:] = xv, yv
        return h, model.predict(xv, verbose=0), initial

    data = [None, None]

    h_k, p_k, init = run(keras, "keras", True, None)
    h_kn, _, _ = run(keras, "keras-noval", False, init)
    h_o, p_o, _ = run(nn, "ours", True, init)
    assert sorted(h_o) == sorted(h_k)
    for key in h_k:
        train_count = key in ("tp", "fp", "tn", "fn")
        _close(h_o[key], (h_kn if train_count else h_k)[key], key)
    _close(p_o, p_k, "predictions after the fit")
    assert h_o["tp"] != h_o["val_tp"]           # the train side is not the validation side
    # Keras loads our last checkpoint compiled with the six metrics and evaluates as ours
    pytest.importorskip("h5py")
    xv, yv = data
    theirs = keras.models.load_model(tmp_path / "ours" / "fraud_model_at_epoch_3.keras")
    mine = nn.models.load_model(tmp_path / "ours" / "fraud_model_at_epoch_3.keras")
    ek = theirs.evaluate(xv, yv, verbose=0, return_dict=True)
    eo = mine.evaluate(xv, yv, verbose=0, return_dict=True)
    assert sorted(ek) == sorted(eo) == ["fn", "fp", "loss", "precision", "recall", "tn", "tp"]
    for key in ek:
        _close(eo[key], ek[key], f"evaluate's {key}")
