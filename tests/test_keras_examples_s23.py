"""keras.io's "Convolutional autoencoder for image denoising" (examples/vision/autoencoder.py,
session 23), written once as a function of its two imports (``from keras import layers`` and
``from keras.models import Model``) and run with Keras's and with ``wsekern.nn``'s:
Conv2D(relu, same) / MaxPooling2D(same) twice, Conv2DTranspose(strides=2, relu, same) twice,
a sigmoid Conv2D, Adam and binary cross-entropy, fit on clean then on noisy images with
validation_data, predict. MNIST is replaced by small seeded images of strokes, 12x12 instead
of 28x28 (two poolings and two stride-2 transposes: 12 -> 6 -> 3 -> 6 -> 12), batch 16 and
3 + 3 epochs instead of 128 and 50 + 100. Ours starts from Keras's initial weights."""
import numpy as np
from conftest import keras_twins

from wsekern import nn

RTOL, ATOL = 1e-4, 1e-5       # Adam over 24 steps, float32 (measured drift ~1e-6)


def _close(a, b, what, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=rtol, atol=atol, err_msg=what)


def _digits_like(n, seed, size=12):
    """uint8 images of one or two bright strokes on black, MNIST's kind (0..255)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, size, size), np.float64)
    for i in range(n):
        for _ in range(rng.integers(1, 3)):
            r, c = rng.integers(1, size - 1, 2)
            length = rng.integers(3, size - 2)
            if rng.random() < 0.5:
                img[i, r, max(0, c - length // 2):c + length // 2] = 1.0
            else:
                img[i, max(0, r - length // 2):r + length // 2, c] = 1.0
    img = np.clip(img + 0.3 * np.roll(img, 1, axis=2), 0, 1)          # thicker strokes
    return (img * 255).astype(np.uint8)


def _program(layers, Model, shuffle, epochs=3, build_only=False):
    """The example, from its data preparation to its predictions (the two imports are
    its only ties to a library)."""
    def preprocess(array):
        """Normalizes the supplied array and reshapes it."""
        array = array.astype("float32") / 255.0
        array = np.reshape(array, (len(array), 12, 12, 1))
        return array

    def noise(array):
        """Adds random noise to each image in the supplied array."""
        noise_factor = 0.4
        noisy_array = array + noise_factor * np.random.normal(
            loc=0.0, scale=1.0, size=array.shape
        )
        return np.clip(noisy_array, 0.0, 1.0)

    train_data, test_data = _digits_like(64, 0), _digits_like(16, 1)
    train_data = preprocess(train_data)
    test_data = preprocess(test_data)
    np.random.seed(0)                                # (the example's noise is unseeded)
    noisy_train_data = noise(train_data)
    noisy_test_data = noise(test_data)

    input = layers.Input(shape=(12, 12, 1))          # noqa: A001  (the example's name)
    # Encoder
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    # Decoder
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)
    # Autoencoder
    autoencoder = Model(input, x)
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    if build_only:
        return autoencoder

    def run(autoencoder):
        first = autoencoder.fit(x=train_data, y=train_data, epochs=epochs, batch_size=16,
                                shuffle=shuffle, validation_data=(test_data, test_data),
                                verbose=0)
        predictions = autoencoder.predict(test_data, verbose=0)
        second = autoencoder.fit(x=noisy_train_data, y=train_data, epochs=epochs,
                                 batch_size=16, shuffle=shuffle,
                                 validation_data=(noisy_test_data, test_data), verbose=0)
        return dict(first=first.history, second=second.history, predictions=predictions,
                    denoised=autoencoder.predict(noisy_test_data, verbose=0),
                    params=autoencoder.count_params(),
                    weights=[np.asarray(w) for w in autoencoder.trainable_weights],
                    shapes=[tuple(w.shape) for w in autoencoder.trainable_weights],
                    test=test_data, noisy=noisy_test_data)
    return autoencoder, run


def test_denoising_autoencoder_example_runs_verbatim(capsys):
    """As the example has it (shuffle=True, summary()), no Keras needed: it trains, the
    denoised images are nearer the clean ones than the noisy inputs were."""
    nn.utils.set_random_seed(0)
    autoencoder, run = _program(nn.layers, nn.models.Model, shuffle=True, epochs=6)
    autoencoder.summary()
    assert "Conv2DTranspose" in capsys.readouterr().out
    out = run(autoencoder)
    for h in (out["first"], out["second"]):
        assert set(h) == {"loss", "val_loss"} and np.isfinite(h["loss"]).all()
    assert out["first"]["loss"][-1] < out["first"]["loss"][0]
    assert out["predictions"].shape == (16, 12, 12, 1)
    assert out["params"] == (9 * 32 + 32) + 3 * (9 * 32 * 32 + 32) + (9 * 32 + 1)
    err_in = np.mean((out["noisy"] - out["test"]) ** 2)
    err_out = np.mean((out["denoised"] - out["test"]) ** 2)
    assert err_out < err_in


def test_denoising_autoencoder_example_as_keras(keras):
    """shuffle=False (the libraries shuffle with different generators): every epoch's
    loss and val_loss of both fits, both predictions and the trained weights equal
    Keras's."""
    def build(K):
        return _program(K.layers, K.models.Model, shuffle=False, build_only=True)

    def run(K, model):
        return _program(K.layers, K.models.Model, shuffle=False)[1](model)

    theirs, ours = keras_twins(keras, build, run)
    for fit in ("first", "second"):
        assert sorted(ours[fit]) == sorted(theirs[fit])
        for key in theirs[fit]:
            _close(ours[fit][key], theirs[fit][key], f"{fit} fit {key}")
    _close(ours["predictions"], theirs["predictions"], "predictions after the first fit")
    _close(ours["denoised"], theirs["denoised"], "denoised")
    assert ours["params"] == theirs["params"]
    assert ours["shapes"] == theirs["shapes"]
    for i, (a, b) in enumerate(zip(ours["weights"], theirs["weights"])):
        _close(a, b, f"weight {i} {theirs['shapes'][i]}", rtol=1e-3, atol=1e-4)
