"""Keras itself as the oracle (Keras 3 on the PyTorch backend, where installed): the same
program from the same initial weights (set with set_weights) gives the same weights after a
few optimizer steps, for a functional model with a residual branch and a subclassed model."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip(f"Keras runs on {keras.backend.backend()}, not torch", allow_module_level=True)

from wsekern import nn  # noqa: E402

OPTIMIZERS = {
    "sgd-momentum": ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    "adam": ("Adam", {"learning_rate": 0.01}),
    "rmsprop": ("RMSprop", {"learning_rate": 0.01}),
}


def build_functional(lib):
    L = lib.layers
    inp = lib.Input(shape=(8,))
    h = L.Dense(16, activation="relu", name="h")(inp)
    h = L.Dense(16, name="h2")(h)
    skip = L.Dense(16, name="skip")(inp)
    merged = L.add([h, skip])
    out = L.Dense(3, activation="softmax", name="out")(L.Activation("relu")(merged))
    return lib.Model(inp, out)


def build_subclassed(lib):
    L = lib.layers

    class Residual(lib.Model):
        def __init__(self):
            super().__init__()
            self.inner = L.Dense(8, activation="relu", name="inner")
            self.proj = L.Dense(8, name="proj")
            self.head = L.Dense(3, activation="softmax", name="head")

        def call(self, x):
            return self.head(x + self.proj(self.inner(x)))
    return Residual()


def names(model):
    return [l.name for l in model.layers if l.weights]


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("build", [build_functional, build_subclassed],
                         ids=["functional-residual", "subclassed"])
def test_same_weights_as_keras_after_a_few_steps(build, optimizer):
    cls_name, kwargs = OPTIMIZERS[optimizer]
    if not hasattr(nn.optimizers, cls_name):
        pytest.skip(f"wsekern.nn.optimizers has no {cls_name} yet")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype("float32")
    y = rng.integers(0, 3, 32)
    nn.utils.set_random_seed(0)
    ours, theirs = build(nn), build(keras)
    ours(x[:1])
    theirs(x[:1])
    assert names(ours) == names(theirs)
    for name in names(ours):
        theirs.get_layer(name).set_weights(ours.get_layer(name).get_weights())
    ours.compile(optimizer=getattr(nn.optimizers, cls_name)(**kwargs),
                 loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=getattr(keras.optimizers, cls_name)(**kwargs),
                   loss="sparse_categorical_crossentropy")
    for step in range(5):
        batch = slice(8 * (step % 4), 8 * (step % 4) + 8)
        a = ours.train_on_batch(x[batch], y[batch], return_dict=True)
        b = theirs.train_on_batch(x[batch], y[batch], return_dict=True)
        assert a["loss"] == pytest.approx(float(b["loss"]), rel=1e-5, abs=1e-6)
    for name in names(ours):
        for w, v in zip(ours.get_layer(name).get_weights(),
                        theirs.get_layer(name).get_weights()):
            np.testing.assert_allclose(w, np.asarray(v), rtol=1e-5, atol=1e-5)


def build_text_transformer(lib, maxlen=12, vocab=30, embed_dim=8, num_heads=2, ff_dim=16):
    """keras.io's text-classification transformer (custom TransformerBlock and
    TokenAndPositionEmbedding layers), dropout 0 so that both runs are deterministic."""
    layers, ops = lib.layers, lib.ops

    class TransformerBlock(layers.Layer):
        def __init__(self):
            super().__init__()
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = lib.Sequential([layers.Dense(ff_dim, activation="relu"),
                                       layers.Dense(embed_dim)])
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)

        def call(self, inputs):
            out1 = self.layernorm1(inputs + self.att(inputs, inputs))
            return self.layernorm2(out1 + self.ffn(out1))

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self):
            super().__init__()
            self.token_emb = layers.Embedding(input_dim=vocab, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            positions = ops.arange(start=0, stop=ops.shape(x)[-1], step=1)
            return self.token_emb(x) + self.pos_emb(positions)

    inputs = layers.Input(shape=(maxlen,))
    h = TransformerBlock()(TokenAndPositionEmbedding()(inputs))
    h = layers.Dense(8, activation="relu")(layers.GlobalAveragePooling1D()(h))
    return lib.Model(inputs, layers.Dense(2, activation="softmax")(h))


def test_text_transformer_trains_like_keras():
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 30, size=(24, 12)).astype("int32")
    y = (x[:, 0] > 15).astype("int64")
    nn.utils.set_random_seed(0)
    ours, theirs = build_text_transformer(nn), build_text_transformer(keras)
    ours(x[:1])
    theirs(x[:1])
    start = ours.get_weights()
    assert len(start) == len(theirs.get_weights())
    # Keras's attention kernels are (d, heads, key_dim): the same numbers, reshaped
    theirs.set_weights([w.reshape(t.shape) for w, t in zip(start, theirs.get_weights())])
    for model, lib in ((ours, nn), (theirs, keras)):
        model.compile(optimizer=lib.optimizers.Adam(learning_rate=0.01),
                      loss="sparse_categorical_crossentropy")
    for step in range(3):
        batch = slice(8 * step, 8 * step + 8)
        a = ours.train_on_batch(x[batch], y[batch], return_dict=True)
        b = theirs.train_on_batch(x[batch], y[batch], return_dict=True)
        assert a["loss"] == pytest.approx(float(b["loss"]), rel=1e-5, abs=1e-6)
    for w, v in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(w, np.asarray(v).reshape(w.shape), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("Tq, Tk", [(2, 5), (5, 3), (4, 4)])
def test_causal_attention_with_unequal_lengths_masks_as_keras(Tq, Tk):
    """Keras's causal mask lets query i see keys j <= i whatever the two lengths (the
    fused path and the general one alike; an all-True mask forces the general one)."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, Tq, 8)).astype(np.float32)
    kv = rng.standard_normal((2, Tk, 8)).astype(np.float32)
    ours, theirs = nn.layers.MultiHeadAttention(2, 4), keras.layers.MultiHeadAttention(2, 4)
    ours(q, kv)
    theirs(q, kv)
    theirs.set_weights([w.reshape(k.shape) for w, k in zip(ours.get_weights(),
                                                          theirs.get_weights())])
    want = keras.ops.convert_to_numpy(theirs(q, kv, use_causal_mask=True))
    for mask in (None, np.ones((2, Tq, Tk), bool)):
        got = ours(q, kv, attention_mask=mask, use_causal_mask=True).data
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
