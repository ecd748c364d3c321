"""fit walks the layer tree once (trainable weights, regularisers, added losses) instead of
every step: the result must equal the step-by-step path that walks it every time."""
import numpy as np

from wsekern.nn import Input, Sequential, layers, regularizers, utils


class Scaled(layers.Layer):
    """x * w with an L2-regularised w, and an added activity loss."""

    def __init__(self, l2=0.05, **kwargs):
        super().__init__(**kwargs)
        self.l2 = l2

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                 regularizer=regularizers.L2(self.l2) if self.l2 else None)

    def call(self, x, training=False):
        self.add_loss((x * x).mean() * 0.01)
        return x * self.w


def _model(l2=0.05):
    utils.set_random_seed(0)
    model = Sequential([Input(shape=(6,)), layers.Dense(5, activation="relu"), Scaled(l2),
                        layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_fit_equals_train_on_batch_with_regularisers_and_added_losses():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    fitted, stepped = _model(), _model()
    n_weights = len(fitted.weights)
    fitted.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for _ in range(2):
        for s in range(0, 40, 8):
            stepped.train_on_batch(x[s:s + 8], y[s:s + 8])
    for a, b in zip(fitted.get_weights(), stepped.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert fitted.__dict__.get("_fit_cache") is None          # nothing kept after fit
    assert len(fitted.weights) == n_weights
    # the regularisers and the added loss did count: without them the weights differ
    plain = _model(l2=0)
    plain.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert not np.allclose(plain.get_weights()[0], fitted.get_weights()[0])
