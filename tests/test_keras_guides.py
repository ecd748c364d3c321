"""keras.io's guides, section by section, with ``keras`` replaced by ``wsekern.nn`` and the
downloads replaced by offline data of the same shape (small, 1-2 epochs). A section that
needs a part of the Keras surface wsekern.nn does not have yet is skipped by name."""
import numpy as np
import pytest

import wsekern as wk
from wsekern import nn as keras
from wsekern.nn import layers


def requires(*names):
    """Skip unless every dotted name (e.g. 'optimizers.RMSprop') exists in wsekern.nn."""
    missing = []
    for name in names:
        obj = keras
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                missing.append(name)
                break
    return pytest.mark.skipif(bool(missing), reason=f"wsekern.nn has no {missing} yet")


@pytest.fixture(scope="module")
def mnist_like():
    """MNIST's shapes and dtypes from the digits that ship with wsekern (8x8 upsampled by
    nearest neighbour to 28x28 would be slower and add nothing: the guides only need the
    shapes (n, 784) / (n, 28, 28) and labels 0-9)."""
    (x, y), (xt, yt) = wk.data.load_digits()
    pad = lambda a: np.pad(a, ((0, 0), (0, 784 - a.shape[1])))          # noqa: E731
    return (pad(x)[:512].astype("float32"), y[:512]), (pad(xt)[:256].astype("float32"),
                                                         yt[:256])


# -- The Sequential model -------------------------------------------------------------------
def test_sequential_guide_creating_and_building(capsys):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            layers.Dense(2, activation="relu", name="layer1"),
            layers.Dense(3, activation="relu", name="layer2"),
            layers.Dense(4, name="layer3"),
        ]
    )
    x = np.ones((3, 3))
    y = model(x)
    assert y.shape == (3, 4)
    assert [l.name for l in model.layers] == ["layer1", "layer2", "layer3"]

    model = keras.Sequential()
    model.add(layers.Dense(2, activation="relu"))
    model.add(layers.Dense(3, activation="relu"))
    model.add(layers.Dense(4))
    model.pop()
    assert len(model.layers) == 2

    layer = layers.Dense(3)
    assert layer.weights == []
    x = np.ones((1, 4))
    y = layer(x)
    assert len(layer.weights) == 2

    model = keras.Sequential(
        [
            layers.Dense(2, activation="relu"),
            layers.Dense(3, activation="relu"),
            layers.Dense(4),
        ]
    )
    x = np.ones((1, 4))
    y = model(x)
    assert len(model.weights) == 6
    model.summary()

    model = keras.Sequential()
    model.add(keras.Input(shape=(4,)))
    model.add(layers.Dense(2, activation="relu"))
    model.summary()
    assert "Total params: 10" in capsys.readouterr().out


def test_sequential_guide_feature_extraction_and_transfer_learning(mnist_like):
    keras.utils.set_random_seed(0)
    initial_model = keras.Sequential(
        [
            keras.Input(shape=(16,)),                     # the guide: (250, 250, 3) + Conv2D
            layers.Dense(32, activation="relu"),
            layers.Dense(32, activation="relu"),
            layers.Dense(32, activation="relu", name="my_intermediate_layer"),
        ]
    )
    feature_extractor = keras.Model(
        inputs=initial_model.inputs,
        outputs=[layer.output for layer in initial_model.layers],
    )
    x = np.ones((1, 16))
    features = feature_extractor(x)
    assert [f.shape for f in features] == [(1, 32)] * 3
    feature_extractor = keras.Model(
        inputs=initial_model.inputs,
        outputs=initial_model.get_layer(name="my_intermediate_layer").output,
    )
    np.testing.assert_allclose(feature_extractor(x).data, features[2].data)

    (x_train, y_train), _ = mnist_like
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        layers.Dense(32, activation="relu"),
        layers.Dense(32, activation="relu"),
        layers.Dense(32, activation="relu"),
        layers.Dense(10),
    ])
    for layer in model.layers[:-1]:
        layer.trainable = False
    frozen = [w.copy() for w in model.get_weights()[:-2]]
    model.compile(optimizer="adam", loss="mse")
    model.fit(x_train[:64], keras.utils.to_categorical(y_train[:64], 10), epochs=1, verbose=0)
    for a, b in zip(frozen, model.get_weights()[:-2]):
        np.testing.assert_array_equal(a, b)


# -- The Functional API ---------------------------------------------------------------------
def test_functional_guide_mnist_model_train_evaluate_save(mnist_like, tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(784,))
    dense = layers.Dense(64, activation="relu")
    x = dense(inputs)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(10)(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")
    model.summary()

    (x_train, y_train), (x_test, y_test) = mnist_like
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=keras.optimizers.Adam(),
        metrics=["accuracy"],
    )
    history = model.fit(x_train, y_train, batch_size=64, epochs=2, validation_split=0.2,
                        verbose=0)
    test_scores = model.evaluate(x_test, y_test, verbose=2)
    assert test_scores[1] > 0.5 and len(history.history["val_accuracy"]) == 2

    model.save(tmp_path / "my_model.keras")
    del model
    model = keras.models.load_model(tmp_path / "my_model.keras")
    assert model.evaluate(x_test, y_test, verbose=0)[1] == pytest.approx(test_scores[1])


def test_functional_guide_toy_resnet():
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(12, 12, 3), name="img")
    x = layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    block_1_output = layers.MaxPooling2D(2)(x)

    x = layers.Conv2D(16, 3, activation="relu", padding="same")(block_1_output)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    block_2_output = layers.add([x, block_1_output])

    x = layers.Conv2D(16, 3, activation="relu", padding="same")(block_2_output)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    block_3_output = layers.add([x, block_2_output])

    x = layers.Conv2D(16, 3, activation="relu")(block_3_output)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10)(x)

    model = keras.Model(inputs, outputs, name="toy_resnet")
    model.summary()
    rng = np.random.default_rng(0)
    x_train = rng.random((32, 12, 12, 3)).astype("float32")
    y_train = keras.utils.to_categorical(rng.integers(0, 10, 32), 10)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["acc"],
    )
    history = model.fit(x_train, y_train, batch_size=16, epochs=1, validation_split=0.25,
                        verbose=0)
    assert set(history.history) == {"loss", "acc", "val_loss", "val_acc"}


def test_functional_guide_shared_layers_and_nested_models():
    keras.utils.set_random_seed(0)
    shared_embedding = layers.Embedding(1000, 16)
    text_input_a = keras.Input(shape=(None,), dtype="int32")
    text_input_b = keras.Input(shape=(None,), dtype="int32")
    encoded_input_a = shared_embedding(text_input_a)
    encoded_input_b = shared_embedding(text_input_b)
    model = keras.Model([text_input_a, text_input_b], [encoded_input_a, encoded_input_b])
    a, b = model.predict([np.arange(10).reshape(2, 5), np.arange(8).reshape(2, 4)], verbose=0)
    np.testing.assert_array_equal(a[0, 1], b[0, 1])           # one table for both inputs

    def get_model():
        inputs = keras.Input(shape=(128,))
        outputs = layers.Dense(1)(inputs)
        return keras.Model(inputs, outputs)

    model1, model2, model3 = get_model(), get_model(), get_model()
    inputs = keras.Input(shape=(128,))
    y1, y2, y3 = model1(inputs), model2(inputs), model3(inputs)
    outputs = layers.average([y1, y2, y3])
    ensemble_model = keras.Model(inputs=inputs, outputs=outputs)
    x = np.random.default_rng(0).random((4, 128)).astype("float32")
    np.testing.assert_allclose(ensemble_model.predict(x, verbose=0),
                               (model1.predict(x, verbose=0) + model2.predict(x, verbose=0)
                                + model3.predict(x, verbose=0)) / 3, rtol=1e-5)


# -- Training & evaluation with the built-in methods -----------------------------------------
def get_uncompiled_model():
    inputs = keras.Input(shape=(784,), name="digits")
    x = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    return model


def get_compiled_model():
    model = get_uncompiled_model()
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def test_training_guide_fit_validation_history_and_predict(mnist_like):
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = mnist_like
    x_val, y_val = x_train[-100:], y_train[-100:]
    x_train, y_train = x_train[:-100], y_train[:-100]
    model = get_compiled_model()
    history = model.fit(x_train, y_train, batch_size=64, epochs=2,
                        validation_data=(x_val, y_val), verbose=0)
    assert set(history.history) == {"loss", "sparse_categorical_accuracy", "val_loss",
                                    "val_sparse_categorical_accuracy"}
    results = model.evaluate(x_test, y_test, batch_size=128, verbose=0)
    predictions = model.predict(x_test[:3], verbose=0)
    assert len(results) == 2 and predictions.shape == (3, 10)


def test_training_guide_add_loss_layer_sample_and_class_weights(mnist_like):
    class ActivityRegularizationLayer(layers.Layer):
        def call(self, inputs):
            self.add_loss(inputs.sum() * 1e-2)           # the guide: ops.sum(inputs) * 0.1
            return inputs

    keras.utils.set_random_seed(0)
    (x_train, y_train), _ = mnist_like
    inputs = keras.Input(shape=(784,), name="digits")
    x = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = ActivityRegularizationLayer()(x)
    x = layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(10, name="predictions")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)

    class_weight = {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 2.0, 6: 1.0, 7: 1.0, 8: 1.0,
                    9: 1.0}
    model = get_compiled_model()
    model.compile(optimizer="adam", loss=_per_sample_sce)     # per-sample, so weights apply
    model.fit(x_train, y_train, class_weight=class_weight, batch_size=64, epochs=1, verbose=0)
    sample_weight = np.ones(shape=(len(y_train),))
    sample_weight[y_train == 5] = 2.0
    model.fit(x_train, y_train, sample_weight=sample_weight, batch_size=64, epochs=1,
              verbose=0)


def _per_sample_sce(y_true, y_pred):
    """sparse categorical cross-entropy per sample (a custom loss, as the guide writes one)."""
    from wsekern.nn import tensor as T
    picked = y_pred[np.arange(len(y_true)), np.asarray(y_true).astype(int).ravel()]
    return -T.log(picked + 1e-7)


def test_training_guide_callbacks_early_stopping_and_checkpoints(mnist_like, tmp_path):
    keras.utils.set_random_seed(0)
    (x_train, y_train), _ = mnist_like
    model = get_compiled_model()
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e-2, patience=2,
                                      verbose=1),
        keras.callbacks.ModelCheckpoint(filepath=str(tmp_path / "mymodel_{epoch}.keras"),
                                        save_best_only=True, monitor="val_loss", verbose=1),
    ]
    model.fit(x_train, y_train, epochs=2, batch_size=64, callbacks=callbacks,
              validation_split=0.2, verbose=0)
    assert (tmp_path / "mymodel_1.keras").exists()


# -- Writing your own callbacks --------------------------------------------------------------
def get_model():
    model = keras.Sequential()
    model.add(layers.Dense(1, input_dim=784))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1),          # the guide: RMSprop
        loss="mean_squared_error",
        metrics=["mean_absolute_error"],
    )
    return model


class CustomCallback(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def _note(self, what, logs):
        keys = list(logs.keys())
        self.seen.append((what, keys))

    def on_train_begin(self, logs=None): self._note("train_begin", logs)
    def on_train_end(self, logs=None): self._note("train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._note("epoch_begin", logs)
    def on_epoch_end(self, epoch, logs=None): self._note("epoch_end", logs)
    def on_test_begin(self, logs=None): self._note("test_begin", logs)
    def on_test_end(self, logs=None): self._note("test_end", logs)
    def on_predict_begin(self, logs=None): self._note("predict_begin", logs)
    def on_predict_end(self, logs=None): self._note("predict_end", logs)
    def on_train_batch_begin(self, batch, logs=None): self._note("train_batch_begin", logs)
    def on_train_batch_end(self, batch, logs=None): self._note("train_batch_end", logs)
    def on_test_batch_begin(self, batch, logs=None): self._note("test_batch_begin", logs)
    def on_test_batch_end(self, batch, logs=None): self._note("test_batch_end", logs)
    def on_predict_batch_begin(self, batch, logs=None): self._note("predict_batch_begin", logs)
    def on_predict_batch_end(self, batch, logs=None): self._note("predict_batch_end", logs)


class EarlyStoppingAtMinLoss(keras.callbacks.Callback):
    def __init__(self, patience=0):
        super().__init__()
        self.patience = patience
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("loss")
        if np.less(current, self.best):
            self.best = current
            self.wait = 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                self.model.set_weights(self.best_weights)


class CustomLearningRateScheduler(keras.callbacks.Callback):
    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.model.optimizer.learning_rate)
        scheduled_lr = self.schedule(epoch, lr)
        self.model.optimizer.learning_rate = scheduled_lr


def test_callbacks_guide(mnist_like):
    (x_train, y_train), (x_test, y_test) = mnist_like
    keras.utils.set_random_seed(0)
    model = get_model()
    cb = CustomCallback()
    model.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0, validation_split=0.5,
              callbacks=[cb])
    names = [n for n, _ in cb.seen]
    assert names[:3] == ["train_begin", "epoch_begin", "train_batch_begin"]
    assert "test_begin" in names and names[-1] == "train_end"
    assert dict(cb.seen)["epoch_end"] == ["loss", "mean_absolute_error", "val_loss",
                                          "val_mean_absolute_error"]
    cb = CustomCallback()
    model.evaluate(x_test, y_test, batch_size=128, verbose=0, callbacks=[cb])
    assert [n for n, _ in cb.seen][0] == "test_begin"
    cb = CustomCallback()
    model.predict(x_test, batch_size=128, callbacks=[cb])
    assert [n for n, _ in cb.seen][-1] == "predict_end"

    model = get_model()
    stop = EarlyStoppingAtMinLoss()
    h = model.fit(x_train, y_train, batch_size=64, steps_per_epoch=5, epochs=30, verbose=0,
                  callbacks=[stop])
    assert len(h.history["loss"]) < 30 and stop.stopped_epoch == len(h.history["loss"]) - 1

    LR_SCHEDULE = [(3, 0.05), (6, 0.01), (9, 0.005), (12, 0.001)]

    def lr_schedule(epoch, lr):
        if epoch < LR_SCHEDULE[0][0] or epoch > LR_SCHEDULE[-1][0]:
            return lr
        for i in range(len(LR_SCHEDULE)):
            if epoch == LR_SCHEDULE[i][0]:
                return LR_SCHEDULE[i][1]
        return lr

    model = get_model()
    model.fit(x_train, y_train, batch_size=64, steps_per_epoch=5, epochs=15, verbose=0,
              callbacks=[CustomLearningRateScheduler(lr_schedule)])
    assert model.optimizer.learning_rate == pytest.approx(0.001)


# -- Making new layers and models via subclassing ---------------------------------------------
class Linear(layers.Layer):
    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return inputs @ self.w + self.b


class ComputeSum(layers.Layer):
    def __init__(self, input_dim):
        super().__init__()
        self.total = self.add_weight(initializer="zeros", shape=(input_dim,), trainable=False)

    def call(self, inputs):
        self.total.assign_add(inputs.data.sum(axis=0))
        return self.total


class MLPBlock(layers.Layer):
    def __init__(self):
        super().__init__()
        self.linear_1 = Linear(32)
        self.linear_2 = Linear(32)
        self.linear_3 = Linear(1)

    def call(self, inputs):
        x = self.linear_1(inputs)
        x = keras.activations.relu(x)
        x = self.linear_2(x)
        x = keras.activations.relu(x)
        return self.linear_3(x)


def test_subclassing_guide_layers_weights_and_nesting():
    keras.utils.set_random_seed(0)
    x = np.ones((2, 2), "float32")
    linear_layer = Linear(4)
    y = linear_layer(x)
    assert y.shape == (2, 4) and len(linear_layer.weights) == 2

    my_sum = ComputeSum(2)
    y = my_sum(x)
    y = my_sum(x)
    np.testing.assert_array_equal(y.data, [4.0, 4.0])
    assert len(my_sum.weights) == 1 and len(my_sum.non_trainable_weights) == 1
    assert my_sum.trainable_weights == []

    mlp = MLPBlock()
    y = mlp(np.ones(shape=(3, 64), dtype="float32"))
    assert len(mlp.weights) == 6 and len(mlp.trainable_weights) == 6


def test_subclassing_guide_activity_regularization_and_model():
    class ActivityRegularizationLayer(layers.Layer):
        def __init__(self, rate=1e-2):
            super().__init__()
            self.rate = rate

        def call(self, inputs):
            self.add_loss(self.rate * (inputs * inputs).mean())
            return inputs

    class OuterLayer(layers.Layer):
        def __init__(self):
            super().__init__()
            self.activity_reg = ActivityRegularizationLayer(1e-2)

        def call(self, inputs):
            return self.activity_reg(inputs)

    layer = OuterLayer()
    assert len(layer.losses) == 0
    _ = layer(np.zeros((1, 1), "float32"))
    assert len(layer.losses) == 1
    _ = layer(np.zeros((1, 1), "float32"))
    assert len(layer.losses) == 1                       # cleared at the start of each call

    class OuterLayerWithKernelRegularizer(layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(32)
            self.w = self.add_weight(shape=(4, 2), regularizer="l2")

        def call(self, inputs):
            return self.dense(inputs)

    layer = OuterLayerWithKernelRegularizer()
    _ = layer(np.zeros((1, 1), "float32"))
    assert float(layer.losses[0].data) == pytest.approx(0.01 * float((layer.w.data ** 2).sum()))

    inputs = keras.Input(shape=(3,))
    outputs = ActivityRegularizationLayer()(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.random.random((2, 3)), np.random.random((2, 3)), verbose=0)
    model.compile(optimizer="adam")
    model.fit(np.random.random((2, 3)), np.random.random((2, 3)), verbose=0)


# -- Making new layers and models via subclassing: the end-to-end VAE -------------------------
def test_subclassing_guide_variational_autoencoder(mnist_like):
    from wsekern.nn import ops

    class Sampling(layers.Layer):
        """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            batch = ops.shape(z_mean)[0]
            dim = ops.shape(z_mean)[1]
            epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    class Encoder(layers.Layer):
        """Maps MNIST digits to a triplet (z_mean, z_log_var, z)."""

        def __init__(self, latent_dim=32, intermediate_dim=64, name="encoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
            self.dense_mean = layers.Dense(latent_dim)
            self.dense_log_var = layers.Dense(latent_dim)
            self.sampling = Sampling()

        def call(self, inputs):
            x = self.dense_proj(inputs)
            z_mean = self.dense_mean(x)
            z_log_var = self.dense_log_var(x)
            z = self.sampling((z_mean, z_log_var))
            return z_mean, z_log_var, z

    class Decoder(layers.Layer):
        """Converts z, the encoded digit vector, back into a readable digit."""

        def __init__(self, original_dim, intermediate_dim=64, name="decoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
            self.dense_output = layers.Dense(original_dim, activation="sigmoid")

        def call(self, inputs):
            x = self.dense_proj(inputs)
            return self.dense_output(x)

    class VariationalAutoEncoder(keras.Model):
        """Combines the encoder and decoder into an end-to-end model for training."""

        def __init__(self, original_dim, intermediate_dim=64, latent_dim=32, name="autoencoder",
                     **kwargs):
            super().__init__(name=name, **kwargs)
            self.original_dim = original_dim
            self.encoder = Encoder(latent_dim=latent_dim, intermediate_dim=intermediate_dim)
            self.decoder = Decoder(original_dim, intermediate_dim=intermediate_dim)

        def call(self, inputs):
            z_mean, z_log_var, z = self.encoder(inputs)
            reconstructed = self.decoder(z)
            # Add KL divergence regularization loss.
            kl_loss = -0.5 * ops.mean(z_log_var - ops.square(z_mean) - ops.exp(z_log_var) + 1)
            self.add_loss(kl_loss)
            return reconstructed

    keras.utils.set_random_seed(0)
    (x, _), _ = mnist_like
    x_train = (x / x.max()).astype("float32")
    original_dim = 784
    vae = VariationalAutoEncoder(original_dim, 64, 32)
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    vae.compile(optimizer, loss=keras.losses.MeanSquaredError())
    before = [w.copy() for w in vae.get_weights()]
    history = vae.fit(x_train, x_train, epochs=3, batch_size=64, verbose=0)

    # every weight of the nested encoder/decoder is tracked and trained (10 arrays)
    assert len(vae.trainable_weights) == 10
    assert all(not np.array_equal(a, b) for a, b in zip(before, vae.get_weights()))
    assert history.history["loss"][-1] < history.history["loss"][0]

    # the KL term the model adds equals the closed form on the encoder's own outputs
    z_mean, z_log_var, _ = vae.encoder(x_train[:32])
    m, lv = np.asarray(z_mean.data, np.float64), np.asarray(z_log_var.data, np.float64)
    expected_kl = -0.5 * np.mean(lv - m ** 2 - np.exp(lv) + 1)
    _ = vae(x_train[:32])
    assert len(vae.losses) == 1
    assert float(vae.losses[0].data) == pytest.approx(expected_kl, rel=1e-4)
