"""``Lambda(mask=...)`` as Keras 3: None drops the mask, a function mask(inputs,
previous_mask) computes the output's mask, a boolean array is the output's mask; a
function with a ``mask`` parameter receives the input's mask. (It was accepted and
ignored.) A masked global average over the steps shows which mask reached it."""
import os

import numpy as np
import pytest

from wsekern import nn

IDS = np.array([[3, 5, 0, 0], [7, 0, 0, 0], [1, 2, 4, 6]], "int32")
FIXED = np.array([[True, False, True, False]] * 3)


def keep_mask(inputs, mask):
    return mask


def first_two(inputs, mask):
    out = np.zeros(inputs.shape[:2], bool)
    out[:, :2] = True
    return out


def scaled_where_real(x, mask=None):
    return x * nn.ops.expand_dims(nn.ops.cast(mask, "float32"), -1) * 3.0


def model(lib, **lambda_kw):
    inp = lib.Input((4,), dtype="int32")
    e = lib.layers.Embedding(10, 3, mask_zero=True, name="e")(inp)
    h = lib.layers.Lambda(lambda_kw.pop("fn", lambda x: x * 2.0), **lambda_kw)(e)
    return lib.Model(inp, lib.layers.GlobalAveragePooling1D()(h))


def mean_over(emb, mask, scale=2.0):
    m = mask[..., None].astype(np.float32)
    return (emb * scale * m).sum(1) / m.sum(1)


@pytest.mark.parametrize("kind", ["none", "function", "array", "fn-takes-mask"])
def test_the_mask_that_reaches_the_pooling(kind):
    nn.utils.set_random_seed(0)
    kw = {"none": {}, "function": {"mask": keep_mask}, "array": {"mask": FIXED},
          "fn-takes-mask": {"fn": scaled_where_real, "mask": keep_mask}}[kind]
    m = model(nn, **dict(kw))
    emb = m.get_layer("e").get_weights()[0][IDS]
    real = IDS != 0
    want = {"none": mean_over(emb, np.ones_like(real)), "function": mean_over(emb, real),
            "array": mean_over(emb, FIXED),
            "fn-takes-mask": mean_over(emb, real, 3.0)}[kind]
    np.testing.assert_allclose(m.predict(IDS, verbose=0), want, rtol=1e-6)


def test_mask_function_sees_the_inputs_and_round_trips(tmp_path):
    nn.saving.register_keras_serializable(package="t17")(first_two)
    layer = nn.layers.Lambda(lambda x: x, mask=first_two)
    out = layer(np.ones((2, 5, 3), np.float32))
    np.testing.assert_array_equal(out._keras_mask, [[1, 1, 0, 0, 0]] * 2)
    again = nn.layers.Lambda.from_config({**layer.get_config(), "function": "t17>first_two"})
    assert again.mask is first_two
    arr = nn.layers.Lambda(lambda x: x, mask=FIXED)
    back = nn.layers.Lambda.from_config({**arr.get_config(), "function": "t17>first_two"})
    np.testing.assert_array_equal(back.mask, FIXED)
    with pytest.raises(ValueError, match="boolean array; received ndarray of dtype float"):
        nn.layers.Lambda(lambda x: x, mask=np.ones(3))


@pytest.mark.parametrize("kind", ["none", "function", "array"])
def test_equal_to_keras(kind):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on {keras.backend.backend()}, not torch")
    kw = {"none": {}, "function": {"mask": keep_mask}, "array": {"mask": FIXED}}[kind]
    theirs, ours = model(keras, **dict(kw)), model(nn, **dict(kw))
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(IDS, verbose=0), theirs.predict(IDS, verbose=0),
                               rtol=1e-6)
