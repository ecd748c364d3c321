"""keras.io's "Transfer learning & fine-tuning" (guides/transfer_learning.py; session 27),
written once as a function of its ``keras`` module and run with ``import keras`` and with
``from wsekern import nn as keras``: the weight lists of Dense and BatchNormalization and of a
frozen Dense; a frozen first layer left unchanged by fit; ``trainable`` set recursively
through a nested Sequential; then the guide's workflow -- a base model frozen, called with
``training=False`` under a new head (Rescaling, GlobalAveragePooling2D, Dropout, Dense(1)),
BinaryCrossentropy(from_logits) and BinaryAccuracy, fit; unfrozen, recompiled with Adam(1e-5)
and fit again. As keras-team/keras#20285 found, Keras 3's fit passes ``training=True`` over
the graph's ``training=False``: BatchNormalization keeps its statistics while frozen (its
``trainable`` False runs it in inference mode) but updates them in the fine-tuning -- Keras
and wsekern.nn alike, checked here. Xception on cats vs. dogs is
replaced by a small Conv2D/BatchNormalization base "pretrained" here on 8x8 RGB images of
the same uint8 kind, 64 training and 32 validation images, batch 16; the guide's random flips
and rotations (RandomFlip, RandomRotation: not in wsekern.nn) are left out."""
import numpy as np
from conftest import keras_twins

from wsekern import nn


def _images(n, seed):
    """uint8 RGB 8x8 images: label 1 brighter in the red channel's left half."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype("float32")
    x = rng.uniform(0, 160, (n, 8, 8, 3))
    x[y == 1, :, :4, 0] += 90
    return x.astype("uint8").astype("float32"), y


def _trainable_api(keras):
    """The guide's first sections, what they print and assert."""
    seen = {}
    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    seen["dense"] = (len(layer.weights), len(layer.trainable_weights),
                     len(layer.non_trainable_weights))
    layer = keras.layers.BatchNormalization()
    layer.build((None, 4))
    seen["batchnorm"] = (len(layer.weights), len(layer.trainable_weights),
                         len(layer.non_trainable_weights))
    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    layer.trainable = False
    seen["frozen_dense"] = (len(layer.weights), len(layer.trainable_weights),
                            len(layer.non_trainable_weights))

    layer1 = keras.layers.Dense(3, activation="relu")
    layer2 = keras.layers.Dense(3, activation="sigmoid")
    model = keras.Sequential([keras.Input(shape=(3,)), layer1, layer2])
    layer1.trainable = False
    initial_layer1_weights_values = layer1.get_weights()
    initial_layer2_weights_values = layer2.get_weights()
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.random.random((2, 3)), np.random.random((2, 3)), verbose=0)
    final_layer1_weights_values = layer1.get_weights()
    np.testing.assert_allclose(initial_layer1_weights_values[0], final_layer1_weights_values[0])
    np.testing.assert_allclose(initial_layer1_weights_values[1], final_layer1_weights_values[1])
    seen["layer2_moved"] = not np.array_equal(initial_layer2_weights_values[0],
                                              layer2.get_weights()[0])

    inner_model = keras.Sequential([
        keras.Input(shape=(3,)),
        keras.layers.Dense(3, activation="relu"),
        keras.layers.Dense(3, activation="relu"),
    ])
    model = keras.Sequential([
        keras.Input(shape=(3,)),
        inner_model,
        keras.layers.Dense(3, activation="sigmoid"),
    ])
    model.trainable = False
    assert inner_model.trainable == False                         # noqa: E712 - the guide's
    assert inner_model.layers[0].trainable == False               # noqa: E712
    seen["recursive"] = (len(model.trainable_weights), len(model.non_trainable_weights))
    return seen


def _base_model(keras):
    """The stand-in for Xception (include_top=False): features of shape (4, 4, 16)."""
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Conv2D(16, 3, strides=2, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
    ], name="base")


def _moving(bn):
    """The moving means and variances of the BatchNormalization layers ``bn``."""
    return [np.array(w) for l in bn for w in l.weights if "moving" in w.name]


class _Workflow:
    """The base model pretrained on a task of its own, then the guide's transfer learning
    and fine-tuning on the new data; ``get_weights``/``set_weights`` over the base and the
    head (for keras_twins)."""

    def __init__(self, keras, dropout):
        self.keras = keras
        self.pretrain_head = keras.layers.Dense(3)
        self.base_model = _base_model(keras)
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.GlobalAveragePooling2D()(self.base_model(inputs))
        self.pretrain_model = keras.Model(inputs, self.pretrain_head(x))

        base_model = self.base_model
        inputs = keras.Input(shape=(8, 8, 3))
        scale_layer = keras.layers.Rescaling(scale=1 / 127.5, offset=-1)
        x = scale_layer(inputs)
        x = base_model(x, training=False)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(dropout)(x)
        outputs = keras.layers.Dense(1)(x)
        self.model = keras.Model(inputs, outputs)

    def get_weights(self):
        return self.pretrain_model.get_weights() + self.model.layers[-1].get_weights()

    def set_weights(self, weights):
        n = len(self.pretrain_model.get_weights())
        self.pretrain_model.set_weights(weights[:n])
        self.model.layers[-1].set_weights(weights[n:])

    def run(self, shuffle):
        keras, base_model, model = self.keras, self.base_model, self.model
        seen = {}
        x, y = _images(64, 1)
        xv, yv = _images(32, 2)
        self.pretrain_model.compile(optimizer=keras.optimizers.Adam(),
                                    loss=keras.losses.SparseCategoricalCrossentropy(
                                        from_logits=True))
        self.pretrain_model.fit(x / 127.5 - 1, (x[:, 0, 0, :].argmax(-1)), batch_size=16,
                                epochs=1, shuffle=shuffle, verbose=0)
        bn = [l for l in base_model.layers if isinstance(l, keras.layers.BatchNormalization)]
        stats = _moving(bn)
        seen["bn_stats_pretrained"] = stats

        base_model.trainable = False
        seen["frozen_counts"] = (len(model.trainable_weights),
                                 len(model.non_trainable_weights))
        base_before = [np.array(w) for w in base_model.get_weights()]
        model.compile(optimizer=keras.optimizers.Adam(),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[keras.metrics.BinaryAccuracy()])
        epochs = 2
        history = model.fit(x, y, batch_size=16, epochs=epochs, validation_data=(xv, yv),
                            shuffle=shuffle, verbose=0)
        seen["transfer"] = history.history
        for a, b in zip(base_before, base_model.get_weights()):
            np.testing.assert_array_equal(a, b)              # frozen: nothing moved
        seen["bn_stats_transfer"] = _moving(bn)

        base_model.trainable = True
        seen["unfrozen_counts"] = (len(model.trainable_weights),
                                   len(model.non_trainable_weights))
        model.compile(optimizer=keras.optimizers.Adam(1e-5),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[keras.metrics.BinaryAccuracy()])
        epochs = 1
        history = model.fit(x, y, batch_size=16, epochs=epochs, validation_data=(xv, yv),
                            shuffle=shuffle, verbose=0)
        seen["fine_tune"] = history.history
        seen["bn_stats_after"] = _moving(bn)
        seen["base_moved"] = max(float(np.abs(a - np.array(b)).max())
                                 for a, b in zip(base_before, base_model.get_weights()))
        seen["weights"] = [np.array(w) for w in model.get_weights()]
        seen["predictions"] = np.asarray(model.predict(xv, verbose=0))
        return seen


def test_transfer_guide_runs_verbatim():
    nn.utils.set_random_seed(0)
    seen = _trainable_api(nn)
    assert seen["dense"] == (2, 2, 0) and seen["batchnorm"] == (4, 2, 2)
    out = _Workflow(nn, dropout=0.2).run(shuffle=True)
    for a, b in zip(out["bn_stats_pretrained"], out["bn_stats_transfer"]):
        np.testing.assert_array_equal(a, b)       # frozen: BN kept its statistics
    assert out["base_moved"] > 0


def test_transfer_guide_trainable_api_as_keras(keras):
    keras.utils.set_random_seed(0)
    theirs = _trainable_api(keras)
    nn.utils.set_random_seed(0)
    assert _trainable_api(nn) == theirs


def test_transfer_guide_workflow_as_keras(keras):
    """Ours from Keras's initial weights, without shuffling (the guide fits a tf.data
    dataset, which fit does not shuffle) and Dropout(0) (each library draws its own
    masks): every epoch's loss, accuracy and validation numbers, the weight counts frozen
    and unfrozen, BatchNormalization's statistics (moved by the pretraining, kept by the
    transfer and the fine-tuning), every weight and the predictions equal Keras's (rtol
    1e-4: float32 convolutions and BatchNormalization summed in other orders, through
    three fits; the Conv2D biases before a BatchNormalization: see there)."""
    theirs, ours = keras_twins(keras, lambda K: _Workflow(K, dropout=0.0),
                               lambda K, w: w.run(shuffle=False))
    for key in ("frozen_counts", "unfrozen_counts"):
        assert ours[key] == theirs[key], key
    for key in ("transfer", "fine_tune"):
        assert sorted(ours[key]) == sorted(theirs[key]), key
        for metric, values in theirs[key].items():
            np.testing.assert_allclose(ours[key][metric], values, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{key} {metric}")
    # the two Conv2D biases (weights 1 and 7) feed a BatchNormalization, which subtracts
    # the batch mean: their exact gradient is 0, each library's is its own float32 rounding,
    # which Adam scales to steps of about its learning rate (8 steps of at most 1e-3)
    noise = {1, 7}
    for key in ("bn_stats_pretrained", "bn_stats_transfer", "bn_stats_after", "weights"):
        assert len(ours[key]) == len(theirs[key]), key
        for i, (a, b) in enumerate(zip(ours[key], theirs[key])):
            atol = 1e-2 if key == "weights" and i in noise else 1e-5
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol, err_msg=f"{key} {i}")
    for a, b in zip(theirs["bn_stats_pretrained"], theirs["bn_stats_transfer"]):
        np.testing.assert_array_equal(a, b)        # Keras too kept them while frozen
    assert max(np.abs(a - b).max() for a, b in zip(theirs["bn_stats_transfer"],
                                                   theirs["bn_stats_after"])) > 1e-3
    np.testing.assert_allclose(ours["predictions"], theirs["predictions"], rtol=1e-4,
                               atol=1e-4)
