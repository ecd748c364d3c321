"""Keras files both ways (session 20): a functional Keras file with masks loads (its mask
ops rebuilt), Keras's format is written by ``save`` and read back by real Keras, and
``save_weights``/``load_weights`` speak Keras's ``.weights.h5``. Every Keras file here is
written, or read, by real Keras 3 (torch backend) in the test."""
import numpy as np
import pytest
from conftest import keras_twins
from test_keras_file_s19 import _check

from wsekern import nn

pytest.importorskip("h5py")
RTOL = ATOL = 1e-5


def _padded_tokens(n=16, t=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 20, (n, t)).astype("int32")
    for i in range(n):                   # each row padded after a length of 1..t
        x[i, 1 + i % t:] = 0
    return x


# -- 1. a functional Keras file with Embedding(mask_zero=True) -----------------------------
def _emb_mha_gap(K):
    L = K.layers
    x = K.Input((6,), dtype="int32")
    e = L.Embedding(20, 8, mask_zero=True)(x)
    a = L.MultiHeadAttention(2, 4)(e, e)
    h = L.LayerNormalization()(L.Add()([e, a]))
    return K.Model(x, L.Dense(3)(L.GlobalAveragePooling1D()(h)))


def _two_masked_inputs(K):
    L = K.layers
    a, b = K.Input((6,), dtype="int32"), K.Input((6,), dtype="int32")
    ea, eb = L.Embedding(20, 8, mask_zero=True)(a), L.Embedding(20, 8, mask_zero=True)(b)
    h = L.Dense(4)(L.Add()([ea, eb]))                  # Keras merges the masks: logical_or
    return K.Model([a, b], L.Dense(3)(L.GlobalAveragePooling1D()(h)))


def _masking_mha(K):
    L = K.layers
    x = K.Input((6, 3))
    h = L.Masking(0.0)(x)                               # any(not_equal(x, 0), axis=-1)
    a = L.MultiHeadAttention(2, 4)(h, h)
    return K.Model(x, L.Dense(3)(L.GlobalAveragePooling1D()(a)))


@pytest.mark.parametrize("build", [_emb_mha_gap, _two_masked_inputs, _masking_mha],
                         ids=["emb-mha-ln-gap", "two-masked-inputs", "masking-mha"])
def test_a_functional_keras_file_with_masks_loads_and_trains_as_keras(keras, tmp_path, build):
    """Keras records the masks as keras.ops nodes (not_equal, logical_or, any) feeding
    GlobalAveragePooling1D's mask: rebuilt, the padded steps are skipped as in Keras (the
    predictions, one more fit step's loss and weights equal Keras's)."""
    keras.utils.set_random_seed(0)
    km = build(keras)
    tok = _padded_tokens()
    if build is _two_masked_inputs:
        x = [tok, _padded_tokens(seed=1)[:, ::-1].copy()]
    elif build is _masking_mha:
        x = np.random.default_rng(2).normal(size=(16, 6, 3)).astype("float32")
        x[tok == 0] = 0.0
    else:
        x = tok
    y = np.random.default_rng(1).normal(size=(16, 3)).astype("float32")
    # SGD: MHA's key bias has a zero gradient in exact arithmetic (softmax ignores a shift);
    # Adam would scale each side's rounding noise (1e-9) up to a step of its own
    model = _check(km, x, y, tmp_path, optimizer="sgd")
    ops = [la for la in model.layers if type(la).__name__ == "OpLayer"]
    assert {o.op for o in ops} & {"not_equal", "any", "logical_or"}


def test_global_max_pooling_ignores_the_mask_as_keras(keras):
    """Keras 3's GlobalMaxPooling1D does not take a mask (it warns and drops it): the padded
    steps take part in the maximum. Ours skipped them: another answer than Keras's."""
    def build(K):
        L = K.layers
        return K.Sequential([K.Input((6,), dtype="int32"), L.Embedding(20, 8, mask_zero=True),
                             L.GlobalMaxPooling1D(), L.Dense(2)])
    with pytest.warns(UserWarning, match="does not support masking"):
        want, got = keras_twins(keras, build, lambda K, m: m.predict(_padded_tokens(),
                                                                     verbose=0))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
