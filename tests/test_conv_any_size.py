"""A fully convolutional model with Input(shape=(None, None, C)) (Keras accepts it): the
shapes are None where the image size is unknown, any image size runs, and the outputs
and gradients equal those of the same layers built for that fixed size."""
import numpy as np
import pytest

from wsekern.nn import Input, Sequential, layers


def _model(h, w):
    return Sequential([Input(shape=(h, w, 3)),
                       layers.Conv2D(4, 3, activation="relu", name="c1"),
                       layers.MaxPooling2D(2, name="p1"),
                       layers.Conv2D(5, 3, strides=2, padding="same", name="c2"),
                       layers.AveragePooling2D(2, padding="same", name="p2"),
                       layers.GlobalAveragePooling2D(name="g"),
                       layers.Dense(2, name="d")])


def test_unknown_sizes_give_none_in_the_output_shapes():
    m = _model(None, None)
    assert m.get_layer("c1").output_shape == (None, None, None, 4)
    assert m.get_layer("p2").output_shape == (None, None, None, 5)
    assert m.output_shape == (None, 2)
    part = _model(None, 17)
    assert part.get_layer("c1").output_shape == (None, None, 15, 4)
    assert part.get_layer("c2").output_shape == (None, None, 4, 5)    # ceil(7 / 2)


@pytest.mark.parametrize("size", [(9, 9), (12, 10), (31, 20)])
def test_any_size_equals_the_fixed_size_model(size):
    anysize = _model(None, None)
    fixed = _model(*size)
    fixed.set_weights(anysize.get_weights())
    x = np.random.default_rng(0).standard_normal((3, *size, 3)).astype(np.float32)
    np.testing.assert_allclose(anysize.predict(x, verbose=0), fixed.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    y = np.random.default_rng(1).standard_normal((3, 2)).astype(np.float32)
    for m in (anysize, fixed):
        m.compile(optimizer="sgd", loss="mse")
        m.train_on_batch(x, y)
    for a, b in zip(anysize.get_weights(), fixed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_window_larger_than_a_known_size_is_refused_at_build():
    with pytest.raises(ValueError, match="does not fit an input of Nonex2"):
        Sequential([Input(shape=(None, 2, 3)), layers.Conv2D(4, 3)])


def test_any_size_model_trains_under_the_wafer_strategy():
    """Placement needs sizes: the strategy places at the first batch's and again when a
    later batch brings another size; every step is costed."""
    from wsekern.nn.strategy import WaferStrategy
    from wsekern.wafer import WaferConfig
    strategy = WaferStrategy(WaferConfig.wse2())
    with strategy.scope():
        m = Sequential([Input(shape=(None, None, 3)), layers.Conv2D(4, 3, activation="relu"),
                        layers.GlobalAveragePooling2D(), layers.Dense(2)])
        m.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(2)
    for size in (9, 15):
        x = rng.random((8, size, size, 3)).astype(np.float32)
        m.fit(x, rng.random((8, 2)).astype(np.float32), epochs=1, verbose=0)
        report = str(strategy.report(m))
        assert "conv2d" in report and "cycles" in report
