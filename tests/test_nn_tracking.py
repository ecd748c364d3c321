"""Issue 15's silent defects: sub-layer and variable tracking, EarlyStopping's patience,
callback logs and hooks (on_batch_*, on_test_* during validation, evaluate/predict
callbacks=)."""
import numpy as np
import pytest

from wsekern import nn
from wsekern.nn import layers as L


def data(n=48, d=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype("float32"), rng.integers(0, classes, n)


class Block(L.Layer):
    """Sub-layers as an attribute, in a list, in a dict; a Variable; a nested block."""

    def __init__(self, nested=True, **kwargs):
        super().__init__(**kwargs)
        self.first = L.Dense(16, activation="relu")
        self.branches = [L.Dense(8), {"other": L.Dense(8)}]
        self.scale = nn.Variable(np.ones(8, "float32"), name="scale")
        self.inner = Block(nested=False) if nested else None

    def call(self, x):
        h = self.first(x)
        out = (self.branches[0](h) + self.branches[1]["other"](h)) * self.scale
        return self.inner(out) if self.inner is not None else out


class Classifier(nn.Model):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = L.Dense(3, activation="softmax")

    def call(self, x):
        return self.head(self.block(x))


def test_sub_layers_and_variables_in_attributes_lists_and_dicts_are_tracked_and_trained():
    nn.utils.set_random_seed(0)
    x, y = data()
    model = Classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model(x[:2])
    # outer block: 3 Dense (kernel+bias) + scale; inner block the same; head: 2
    assert len(model.weights) == 2 * (3 * 2 + 1) + 2
    assert len(model.trainable_weights) == len(model.weights)
    assert len({id(w) for w in model.weights}) == len(model.weights)
    before = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    after = model.get_weights()
    unchanged = [i for i, (a, b) in enumerate(zip(before, after)) if np.array_equal(a, b)]
    assert unchanged == []                  # every weight, however deep, was trained


def test_transformer_block_written_as_a_custom_layer_trains_every_weight():
    """keras.io's text-classification TransformerBlock: attention, a Sequential FFN, two
    LayerNormalizations and Dropouts as attributes (4 of 22 weights trained before)."""
    class TransformerBlock(L.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
            super().__init__()
            self.att = L.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = nn.Sequential([L.Dense(ff_dim, activation="relu"), L.Dense(embed_dim)])
            self.layernorm1 = L.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = L.LayerNormalization(epsilon=1e-6)
            self.dropout1 = L.Dropout(rate)
            self.dropout2 = L.Dropout(rate)

        def call(self, inputs, training=False):
            attn_output = self.att(inputs, inputs)
            attn_output = self.dropout1(attn_output, training=training)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.ffn(out1)
            ffn_output = self.dropout2(ffn_output, training=training)
            return self.layernorm2(out1 + ffn_output)

    nn.utils.set_random_seed(0)
    block = TransformerBlock(8, 2, 16)
    x = np.random.default_rng(0).normal(size=(4, 5, 8)).astype("float32")
    block(x)
    # attention: 4 Dense x 2; FFN: 2 x 2; two LayerNorms x 2
    assert len(block.trainable_weights) == 8 + 4 + 4
    out = block(x, training=True)
    loss = (out * out).sum()
    loss.backward()
    assert all(w.grad is not None and np.abs(w.grad).sum() > 0 for w in block.trainable_weights)


def test_frozen_sub_layer_and_frozen_parent():
    nn.utils.set_random_seed(0)
    block = Block(nested=False)
    block(np.zeros((2, 8), "float32"))
    block.first.trainable = False
    assert len(block.trainable_weights) == len(block.weights) - 2
    assert len(block.non_trainable_weights) == 2
    block.trainable = False
    assert block.trainable_weights == [] and len(block.weights) == 7


def test_call_without_training_argument_and_add_weight_keras_signature():
    class Scale(L.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")
            self.b = self.add_weight(shape=(1,), initializer="zeros", trainable=False,
                                     name="offset")

        def call(self, x):                 # no training argument, as Keras allows
            return x * self.w + self.b

    layer = Scale()
    out = layer(np.ones((2, 3), "float32"), training=True)
    np.testing.assert_array_equal(out.data, np.ones((2, 3)))
    assert layer.compute_output_shape((None, 3)) == (None, 3)
    assert [w.name for w in layer.weights] == ["scale/variable_0", "scale/offset"]
    assert len(layer.trainable_weights) == 1


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    """Keras stops once `wait >= patience`: with patience=2 and no improvement after the
    first epoch, training ends after epoch 3 (it ran one epoch more before)."""
    nn.utils.set_random_seed(0)
    x, y = data()
    model = nn.Sequential([L.Dense(3, activation="softmax", input_shape=(8,))])
    model.compile(optimizer=nn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    stop = nn.callbacks.EarlyStopping(monitor="loss", patience=2, mode="max")
    h = model.fit(x, y, epochs=10, verbose=0, callbacks=[stop])
    losses = h.history["loss"]
    assert losses[1] < losses[0] and losses[2] < losses[0]   # 'max': no improvement
    assert len(losses) == 3 and stop.stopped_epoch == 2


class Recorder(nn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def _log(self, name, logs):
        assert isinstance(logs, dict), f"{name} received logs={logs!r}"
        self.events.append((name, dict(logs)))

    def on_train_begin(self, logs=None): self._log("train_begin", logs)
    def on_train_end(self, logs=None): self._log("train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._log("epoch_begin", logs)
    def on_epoch_end(self, epoch, logs=None): self._log("epoch_end", logs)
    def on_batch_begin(self, batch, logs=None): self._log("batch_begin", logs)
    def on_batch_end(self, batch, logs=None): self._log("batch_end", logs)
    def on_test_begin(self, logs=None): self._log("test_begin", logs)
    def on_test_end(self, logs=None): self._log("test_end", logs)
    def on_test_batch_begin(self, batch, logs=None): self._log("test_batch_begin", logs)
    def on_test_batch_end(self, batch, logs=None): self._log("test_batch_end", logs)
    def on_predict_begin(self, logs=None): self._log("predict_begin", logs)
    def on_predict_end(self, logs=None): self._log("predict_end", logs)
    def on_predict_batch_end(self, batch, logs=None): self._log("predict_batch_end", logs)

    def names(self):
        return [n for n, _ in self.events]


def small_model():
    nn.utils.set_random_seed(0)
    model = nn.Sequential([L.Dense(3, activation="softmax", input_shape=(8,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_callbacks_get_logs_dicts_batch_aliases_and_test_hooks_during_validation():
    x, y = data()
    rec = Recorder()
    small_model().fit(x, y, epochs=2, batch_size=16, verbose=0, validation_data=(x[:20], y[:20]),
                      callbacks=[rec])
    names = rec.names()
    assert names[0] == "train_begin" and names[-1] == "train_end"
    assert names.count("batch_end") == 2 * 3 and names.count("batch_begin") == 2 * 3
    assert names.count("test_begin") == 2 and names.count("test_end") == 2
    assert names.count("test_batch_end") == 2 * 2                 # 20 samples / 16
    epoch_end = [logs for n, logs in rec.events if n == "epoch_end"]
    assert set(epoch_end[0]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    test_end = [logs for n, logs in rec.events if n == "test_end"]
    assert test_end[0]["loss"] == pytest.approx(epoch_end[0]["val_loss"])
    batch_end = [logs for n, logs in rec.events if n == "batch_end"]
    assert set(batch_end[0]) == {"loss", "accuracy"}
    assert rec.events[-1][1] == epoch_end[-1]                      # train_end: last logs
    assert names.index("test_begin") > names.index("batch_end")


def test_evaluate_and_predict_take_callbacks():
    x, y = data()
    model = small_model()
    rec = Recorder()
    result = model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[rec])
    assert rec.names() == ["test_begin"] + ["test_batch_begin", "test_batch_end"] * 3 + \
        ["test_end"]
    assert rec.events[-1][1]["loss"] == pytest.approx(result[0])
    rec = Recorder()
    out = model.predict(x, batch_size=32, callbacks=[rec], verbose=0)
    assert rec.names() == ["predict_begin", "predict_batch_end", "predict_batch_end",
                           "predict_end"]
    np.testing.assert_array_equal(rec.events[1][1]["outputs"], out[:32])


def test_evaluate_on_empty_data_raises():
    model = small_model()
    with pytest.raises(ValueError, match="no samples"):
        model.evaluate(np.zeros((0, 8), "float32"), np.zeros(0, int), verbose=0)


def test_wrong_label_shape_says_what_was_expected():
    x, y = data(n=32)
    model = small_model()
    with pytest.raises(ValueError, match=r"expected y with 32 labels for 32 samples; received "
                                         r"shape \(32, 2\)"):
        model.fit(x, np.stack([y, y], axis=1), batch_size=32, verbose=0)


def test_training_flag_reaches_sub_layers_of_a_call_without_training_argument():
    """Keras passes `training` down implicitly: a Dropout inside a model whose call() does
    not forward it is still active in fit and inactive in predict."""
    class Net(nn.Model):
        def __init__(self):
            super().__init__()
            self.drop = L.Dropout(0.5)

        def call(self, x):
            return self.drop(x)

    model = Net()
    x = np.ones((200, 10), "float32")
    assert np.array_equal(model(x).data, x)                         # inference: identity
    out = model(x, training=True).data
    assert 0.3 < np.mean(out == 0) < 0.7 and set(np.unique(out)) == {0.0, 2.0}
