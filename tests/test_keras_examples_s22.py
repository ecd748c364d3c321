"""keras.io's "Timeseries classification with a Transformer model" (session 22), written
once as a function of its ``keras`` module and run with ``import keras`` and with ``from
wsekern import nn as keras``: MultiHeadAttention + Dropout + LayerNormalization(1e-6) and a
residual, a Conv1D(kernel_size=1) feed-forward part, GlobalAveragePooling1D(channels_last),
a Dense/Dropout head; Adam(1e-4), sparse categorical cross-entropy and accuracy,
EarlyStopping(restore_best_weights=True), validation_split, evaluate. The FordA download
is replaced by small seeded series of the same kind, with 3 features a step (see
``_readucr_like``); the sizes are cut so it runs in seconds (the example: 500 steps,
head_size 256, 4 heads, 4 blocks, 128 units, patience 10, 200 epochs).
Ours starts from Keras's initial weights and fits without shuffling."""
import numpy as np
from conftest import keras_twins

from wsekern import nn

# looser than session 21's 1e-4: Adam turns the float32 rounding of components whose
# gradient is near zero into whole steps, so the two runs drift apart by ~1e-7 after the
# first epoch, ~5e-5 after the second, ~3e-4 after the third (in the weights;
# notes/s22/keras22/probe_example_drift.out); the gradients of one step agree to ~3e-5
RTOL, ATOL = 1e-3, 1e-4


def _close(a, b, what, rtol=RTOL, atol=ATOL):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


def _readucr_like(n, seed, length=24):
    """FordA's kind (labels -1/1, two noisy frequencies) with 3 features a step instead of
    FordA's one: on one feature each LayerNormalization outputs its beta alone (x - mean
    is 0), so nothing before it gets a gradient and the attention would go untested."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)[None, :, None]
    y = np.where(rng.random(n) < 0.5, -1, 1)
    f = np.where(y == 1, 5.0, 2.0)[:, None, None]
    phase = rng.uniform(0, 6, (n, 1, 1)) + np.array([0.0, 1.0, 2.0])
    x = np.sin(2 * np.pi * f * t + phase) + 0.5 * rng.normal(size=(n, length, 3))
    return x, y


def _program(keras, dropout, mlp_dropout, epochs=6, build_only=False):
    """The example, from its data preparation to its evaluation."""
    layers = keras.layers
    x_train, y_train = _readucr_like(96, 0)
    x_test, y_test = _readucr_like(40, 1)
    n_classes = len(np.unique(y_train))
    y_train[y_train == -1] = 0
    y_test[y_test == -1] = 0

    def transformer_encoder(inputs, head_size, num_heads, ff_dim, dropout=0):
        # Attention and Normalization
        x = layers.MultiHeadAttention(
            key_dim=head_size, num_heads=num_heads, dropout=dropout
        )(inputs, inputs)
        x = layers.Dropout(dropout)(x)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
        res = x + inputs

        # Feed Forward Part
        x = layers.Conv1D(filters=ff_dim, kernel_size=1, activation="relu")(res)
        x = layers.Dropout(dropout)(x)
        x = layers.Conv1D(filters=inputs.shape[-1], kernel_size=1)(x)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
        return x + res

    def build_model(input_shape, head_size, num_heads, ff_dim, num_transformer_blocks,
                    mlp_units, dropout=0, mlp_dropout=0):
        inputs = keras.Input(shape=input_shape)
        x = inputs
        for _ in range(num_transformer_blocks):
            x = transformer_encoder(x, head_size, num_heads, ff_dim, dropout)

        x = layers.GlobalAveragePooling1D(data_format="channels_last")(x)
        for dim in mlp_units:
            x = layers.Dense(dim, activation="relu")(x)
            x = layers.Dropout(mlp_dropout)(x)
        outputs = layers.Dense(n_classes, activation="softmax")(x)
        return keras.Model(inputs, outputs)

    input_shape = x_train.shape[1:]
    model = build_model(input_shape, head_size=8, num_heads=2, ff_dim=4,
                        num_transformer_blocks=2, mlp_units=[16], mlp_dropout=mlp_dropout,
                        dropout=dropout)
    if build_only:
        return model

    def run(model):
        model.compile(
            loss="sparse_categorical_crossentropy",
            optimizer=keras.optimizers.Adam(learning_rate=1e-4),
            metrics=["sparse_categorical_accuracy"],
        )
        callbacks = [keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)]
        history = model.fit(x_train, y_train, validation_split=0.2, epochs=epochs,
                            batch_size=16, callbacks=callbacks, verbose=0, shuffle=False)
        return dict(history=history.history, test=model.evaluate(x_test, y_test, verbose=0),
                    pred=model.predict(x_test, verbose=0),
                    weights=[np.asarray(w) for w in model.trainable_weights],
                    shapes=[tuple(w.shape) for w in model.trainable_weights],
                    paths=[w.path for w in model.trainable_weights])
    return model, run


def test_timeseries_transformer_example_runs_verbatim():
    """Dropout as the example has it (0.25 and 0.4; ours draws other masks than Keras's),
    no Keras needed: it trains, EarlyStopping restores the best epoch's weights, and
    the weights are listed in Keras's shapes."""
    nn.utils.set_random_seed(0)
    model, run = _program(nn, dropout=0.25, mlp_dropout=0.4, epochs=8)
    out = run(model)
    h = out["history"]
    assert set(h) == {"loss", "sparse_categorical_accuracy", "val_loss",
                      "val_sparse_categorical_accuracy"}
    assert np.isfinite(h["loss"]).all() and h["loss"][-1] < h["loss"][0]
    # restore_best_weights: the evaluation of the validation rows equals the best val_loss
    x, y = _readucr_like(96, 0)                     # validation_split=0.2: the last 20
    x_val, y_val = x[-20:], np.where(y == -1, 0, 1)[-20:]
    if len(h["loss"]) < 8:                          # it stopped early: restored
        best = min(h["val_loss"])
        _close(model.evaluate(x_val, y_val, verbose=0)[0], best, "restored best weights",
               rtol=1e-5)
    # MultiHeadAttention(2 heads, key_dim 8) on 3 features, in Keras's shapes
    assert out["shapes"][:8] == [(3, 2, 8), (2, 8), (3, 2, 8), (2, 8), (3, 2, 8), (2, 8),
                                 (2, 8, 3), (3,)]


def test_timeseries_transformer_example_as_keras(keras):
    """Dropout 0 (its draws are the only randomness): every history entry, the evaluation,
    the predictions and the trained weights equal Keras's."""
    def build(K):
        return _program(K, dropout=0.0, mlp_dropout=0.0, build_only=True)

    def run(K, model):
        return _program(K, dropout=0.0, mlp_dropout=0.0)[1](model)

    theirs, ours = keras_twins(keras, build, run)
    h_k, h_o = theirs["history"], ours["history"]
    assert sorted(h_o) == sorted(h_k)
    assert len(h_o["loss"]) == len(h_k["loss"])
    for key in h_k:
        _close(h_o[key], h_k[key], key)
    _close(ours["test"], theirs["test"], "evaluate")
    _close(ours["pred"], theirs["pred"], "predictions")
    assert ours["shapes"] == theirs["shapes"]
    # the key projections' biases have a zero gradient in exact arithmetic (the softmax
    # cancels them): Adam turns float32 noise into steps, so they are left out
    # the same order (layer names carry the process's counters, so only the weight names)
    assert [p.split("/")[-1] for p in ours["paths"]] == \
        [p.split("/")[-1] for p in theirs["paths"]]
    key_bias = {i for i, p in enumerate(theirs["paths"]) if p.endswith("key/bias")}
    assert len(key_bias) == 2
    for i, (a, b) in enumerate(zip(ours["weights"], theirs["weights"])):
        if i in key_bias:
            continue
        _close(a, b, f"weight {i} {theirs['shapes'][i]}", atol=2e-3)
