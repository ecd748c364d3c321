"""s17 audit: what a new user ran into (a student of dataflow hardware, a Keras user porting
keras.io programs, a sparse-kernel writer). Each test failed on main a7e2d4d unless it says
otherwise."""
import numpy as np
import pytest
from conftest import keras_twins

from wsekern import nn

RNG = np.random.default_rng(0)
X = RNG.standard_normal((64, 10)).astype(np.float32)
LABELS = RNG.integers(0, 3, 64)
XV = RNG.standard_normal((32, 10)).astype(np.float32)
LABELS_V = RNG.integers(0, 3, 32)


def _mlp(K):
    return K.Sequential([K.Input((10,)), K.layers.Dense(16, activation="relu"),
                         K.layers.Dense(3, activation="softmax")])


# EarlyStopping(restore_best_weights=True) put the best weights back only when it stopped
# training; Keras 3 puts them back at the end of training whether it stopped early or not.
# A run of all its epochs kept the last weights (val_loss 1.338 where Keras has 1.180).
@pytest.mark.parametrize("patience,epochs", [(50, 6), (1, 30)], ids=["ran-out", "stopped"])
def test_early_stopping_restores_the_best_weights_at_the_end(keras, patience, epochs):
    def run(K, model):
        model.compile(optimizer=K.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
        stop = K.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
        history = model.fit(X, LABELS, epochs=epochs, batch_size=16, shuffle=False, verbose=0,
                            validation_data=(XV, LABELS_V), callbacks=[stop])
        return (history.history["val_loss"], stop.best_epoch,
                float(model.evaluate(XV, LABELS_V, verbose=0)))
    (k_val, k_best, k_loss), (w_val, w_best, w_loss) = keras_twins(keras, _mlp, run)
    np.testing.assert_allclose(w_val, k_val, rtol=1e-4)
    assert w_best == k_best
    # the best epoch's val_loss, not the last one's
    np.testing.assert_allclose(w_loss, k_val[k_best], rtol=1e-4)
    np.testing.assert_allclose(w_loss, k_loss, rtol=1e-4)


# keras.callbacks.TerminateOnNaN and LambdaCallback (both in keras.io programs) were missing:
# AttributeError.
def test_terminate_on_nan_stops_at_the_first_bad_batch(keras):
    def run(K, model):
        model.compile(optimizer=K.optimizers.SGD(1e30), loss="mse")
        seen = []
        log = K.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: seen.append(batch),
            on_epoch_end=lambda epoch, logs: seen.append(("epoch", epoch)))
        history = model.fit(X, np.eye(3)[LABELS] * 1e30, epochs=3, batch_size=16, verbose=0,
                            shuffle=False, callbacks=[K.callbacks.TerminateOnNaN(), log])
        return seen, np.isfinite(history.history["loss"]).tolist()
    theirs, ours = keras_twins(keras, _mlp, run)
    assert ours == theirs
    assert len(ours[0]) < 3 * 4          # it did stop


def test_lambda_callback_calls_each_hook_with_keras_arguments(keras):
    def run(K, model):
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        calls = []
        cb = K.callbacks.LambdaCallback(
            on_train_begin=lambda logs: calls.append("train_begin"),
            on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch)),
            on_train_batch_begin=lambda batch, logs: calls.append(("batch_begin", batch)),
            on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch,
                                                            round(logs["loss"], 4))),
            on_train_end=lambda logs: calls.append("train_end"))
        model.fit(X, LABELS, epochs=2, batch_size=32, verbose=0, shuffle=False, callbacks=cb)
        return calls
    theirs, ours = keras_twins(keras, _mlp, run)
    assert ours == theirs
    with pytest.raises(TypeError, match="on_epoch_ends"):
        nn.callbacks.LambdaCallback(on_epoch_ends=print)


def _frozen_bn_model(K):
    return K.Sequential([K.Input((10,)), K.layers.Dense(16), K.layers.BatchNormalization(),
                         K.layers.Dense(3)])


# A BatchNormalization with trainable=False still normalised by the batch's statistics in
# training and kept updating its moving ones; in Keras it runs in inference mode (the
# fine-tuning recipe of keras.io's transfer-learning guide relies on it).
def test_a_frozen_batch_normalization_runs_in_inference_mode(keras):
    def run(K, model):
        model.layers[1].trainable = False
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="mse")
        history = model.fit(X, np.ones((64, 3), np.float32), epochs=2, batch_size=16,
                            shuffle=False, verbose=0)
        return history.history["loss"], [np.asarray(w) for w in model.layers[1].get_weights()]
    (k_loss, k_bn), (w_loss, w_bn) = keras_twins(keras, _frozen_bn_model, run)
    np.testing.assert_allclose(w_loss, k_loss, rtol=1e-4)
    for ours, theirs in zip(w_bn, k_bn):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


# keras.io's transfer-learning guide, step for step: `base.trainable = False` (which Keras
# passes down to every layer inside), `base(inputs, training=False)` in a functional model
# (fit then failed: "got multiple values for keyword argument 'training'"), fit, then
# `base.trainable = True` and fine-tune with a low learning rate.
def test_the_transfer_learning_recipe_runs_as_in_keras(keras):
    def build(K):
        base = K.Sequential([K.Input((10,)), K.layers.Dense(16), K.layers.BatchNormalization(),
                             K.layers.Dropout(0.0), K.layers.Activation("relu")])
        base.trainable = False
        inputs = K.Input((10,))
        outputs = K.layers.Dense(3, activation="softmax")(base(inputs, training=False))
        return K.Model(inputs, outputs)

    def run(K, model):
        base = model.layers[1]
        frozen = ([layer.trainable for layer in base.layers], len(model.trainable_weights))
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        first = model.fit(X, LABELS, epochs=2, batch_size=16, shuffle=False, verbose=0)
        base.trainable = True
        thawed = ([layer.trainable for layer in base.layers], len(model.trainable_weights))
        model.compile(optimizer=K.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
        second = model.fit(X, LABELS, epochs=2, batch_size=16, shuffle=False, verbose=0)
        return (frozen, thawed, first.history["loss"] + second.history["loss"],
                [np.asarray(w) for w in model.get_weights()])
    (k_flags, k_thawed, k_loss, k_w), (w_flags, w_thawed, w_loss, w_w) = keras_twins(keras, build,
                                                                                  run)
    assert (w_flags, w_thawed) == (k_flags, k_thawed)
    np.testing.assert_allclose(w_loss, k_loss, rtol=1e-4)
    for ours, theirs in zip(w_w, k_w):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


# Sequential([base_model, Dense(...)]) with a built base: Keras builds the stack from the
# base's input shape; ours stayed unbuilt (set_weights: "expects 6 weight arrays; received 8").
def test_a_sequential_stacked_on_a_built_model_is_built(keras):
    def build(K):
        base = K.Sequential([K.Input((10,)), K.layers.Dense(16), K.layers.BatchNormalization()])
        base.trainable = False
        return K.Sequential([base, K.layers.Dense(3, activation="softmax")])

    def run(K, model):
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        history = model.fit(X, LABELS, epochs=2, batch_size=16, shuffle=False, verbose=0)
        return model.count_params(), history.history["loss"]
    (k_n, k_loss), (w_n, w_loss) = keras_twins(keras, build, run)
    assert w_n == k_n
    np.testing.assert_allclose(w_loss, k_loss, rtol=1e-4)


# BatchNormalization after Embedding(mask_zero=True) took its batch statistics over the
# padded steps too; Keras takes them over the real steps only (the padding's zeros pulled
# the mean down: loss 1.156 where Keras has 1.104).
def test_batch_normalization_takes_its_statistics_over_the_real_steps(keras):
    tokens = np.random.default_rng(1).integers(1, 50, (64, 12))
    tokens[:, 8:] = 0
    tokens[3, 3:] = 0

    def build(K):
        inputs = K.Input((12,), dtype="int32")
        h = K.layers.Embedding(50, 8, mask_zero=True)(inputs)
        h = K.layers.BatchNormalization()(K.layers.Dense(8, activation="relu")(h))
        outputs = K.layers.Dense(3, activation="softmax")(K.layers.GlobalAveragePooling1D()(h))
        return K.Model(inputs, outputs)

    def run(K, model):
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        history = model.fit(tokens, LABELS, epochs=2, batch_size=16, shuffle=False, verbose=0)
        return history.history["loss"], [np.asarray(w) for w in model.get_weights()]
    (k_loss, k_w), (w_loss, w_w) = keras_twins(keras, build, run)
    np.testing.assert_allclose(w_loss, k_loss, rtol=1e-4)
    for ours, theirs in zip(w_w, k_w):           # the moving statistics included
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_masked_batch_normalization_gradient_is_that_of_its_output():
    """Finite differences through the masked statistics: every step's output depends on
    them, the padded ones included."""
    from wsekern.nn.tensor import Tensor
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 4))
    mask = rng.random((3, 5)) > 0.3
    R = rng.standard_normal(x.shape)
    layer = nn.layers.BatchNormalization(dtype="float64")
    layer(Tensor(x))
    layer.gamma.data[...] = [0.5, 2.0, -1.0, 1.5]
    layer.beta.data[...] = [0.1, -0.2, 0.3, 0.0]

    def f(xv):
        return float((layer(Tensor(xv), training=True, mask=mask).data * R).sum())
    xt = Tensor(x.copy(), requires_grad=True)
    (layer(xt, training=True, mask=mask) * R).sum().backward()
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += 1e-6
        down[idx] -= 1e-6
        numeric[idx] = (f(up) - f(down)) / 2e-6
    np.testing.assert_allclose(xt.grad, numeric, rtol=1e-5, atol=1e-7)
    # the statistics are the real steps' (a closed form)
    real = x[mask]
    expect = (x - real.mean(0)) / np.sqrt(real.var(0) + 1e-3) * layer.gamma.data \
        + layer.beta.data
    np.testing.assert_allclose(layer(Tensor(x), training=True, mask=mask).data, expect,
                               rtol=1e-6)


def _custom_train_step_model(K, torch_backend):
    """keras.io's "Customizing what happens in fit()" (the PyTorch version): a Model
    subclass made functional as CustomModel(inputs, outputs), whose train_step unpacks
    ``x, y = data`` (or three with sample weights) and calls optimizer.apply(grads, vars)."""
    class CustomModel(K.Model):
        def train_step(self, data):
            if len(data) == 3:
                x, y, sample_weight = data
            else:
                (x, y), sample_weight = data, None
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
            loss.backward()
            weights = list(self.trainable_weights)
            grads = [v.value.grad if torch_backend else v.grad for v in weights]
            if torch_backend:
                import torch
                with torch.no_grad():
                    self.optimizer.apply(grads, weights)
            else:
                self.optimizer.apply(grads, weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

        def predict_step(self, data):
            return self(data, training=False) * 2.0

    inputs = K.Input(shape=(10,))
    return CustomModel(inputs, K.layers.Dense(1)(inputs))


# `CustomModel(inputs, outputs)` was refused ("takes keyword arguments only"); the step got
# (x, y, None), so `x, y = data` failed; optimizer.apply(grads, variables) was a TypeError;
# predict_step got (x, None, None) where Keras gives x.
@pytest.mark.parametrize("weighted", [False, True])
def test_keras_io_custom_train_step_runs_as_in_keras(keras, weighted):
    target = RNG.standard_normal((64, 1)).astype(np.float32)
    fit = {"sample_weight": np.linspace(0.1, 1.0, 64)} if weighted else {}

    def run(K, model):
        model.compile(optimizer=K.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
        history = model.fit(X, target, epochs=3, batch_size=16, shuffle=False, verbose=0,
                            **fit)
        if K is nn:
            assert isinstance(model, nn.Model) and type(model).__name__ == "CustomModel"
        return history.history, np.asarray(model.predict(X[:4], verbose=0))
    (k_hist, k_pred), (w_hist, w_pred) = keras_twins(
        keras, lambda K: _custom_train_step_model(K, K is keras), run)
    assert sorted(w_hist) == sorted(k_hist)
    # weighted: Keras's model.metrics holds one CompileMetrics that updates an unweighted
    # metric without the weights (ours listed the metrics themselves until s18)
    for key in k_hist:
        np.testing.assert_allclose(w_hist[key], k_hist[key], rtol=1e-4, err_msg=key)
    np.testing.assert_allclose(w_pred, k_pred, rtol=1e-5)


# A layer called with training= in a functional graph (MC dropout's
# `Dropout(0.5)(x, training=True)`) made every later call fail ("got multiple values for
# keyword argument 'training'"). Keras 3: a bare model(x) keeps the graph's flag; fit,
# evaluate, predict and model(x, training=...) give theirs to every layer.
def test_a_training_flag_given_in_the_graph_is_kept_by_a_bare_call(keras):
    x = np.ones((8, 200), np.float32)
    out = []
    for K in (keras, nn):
        inputs = K.Input((200,))
        model = K.Model(inputs, K.layers.Dropout(0.5)(inputs, training=True))
        as_array = (lambda t: t.detach().numpy()) if K is keras else np.asarray
        out.append([float((as_array(model(x)) == 0).mean() > 0.3),
                    float((as_array(model(x, training=False)) == 0).mean()),
                    float((model.predict(x, verbose=0) == 0).mean())])
    assert out[1] == out[0] == [1.0, 0.0, 0.0]


# Once the optimizer has stepped, Keras's summary() counts its variables (step count,
# learning rate, slots) in "Total params" and prints "Optimizer params"; ours printed
# neither, so the totals of a compiled and fitted model differed from Keras's.
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "nadam", "rmsprop-centered",
                                       "adam-schedule"])
def test_summary_counts_the_optimizer_params_as_keras(keras, optimizer):
    def make(K):
        return {"rmsprop-centered": lambda: K.optimizers.RMSprop(momentum=0.5, centered=True),
                "adam-schedule": lambda: K.optimizers.Adam(
                    K.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)),
                }.get(optimizer, lambda: optimizer)()

    def build(K):
        model = K.Sequential([K.Input((10,)), K.layers.Dense(16),
                              K.layers.BatchNormalization(), K.layers.Dense(3)])
        model.layers[0].trainable = False
        return model

    def run(K, model):
        model.compile(optimizer=make(K),
                      loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
        lines = []
        for fit in (False, True):
            if fit:
                model.fit(X[:8], LABELS[:8], epochs=1, verbose=0)
            out = []
            model.summary(print_fn=lambda text, **kwargs: out.append(text))
            lines.append([line.strip() for line in "\n".join(out).splitlines()
                          if "params:" in line])
        return lines
    theirs, ours = keras_twins(keras, build, run)
    assert ours == theirs
    assert any("Optimizer params" in line for line in ours[1])
