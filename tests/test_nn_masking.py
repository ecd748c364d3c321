"""Keras's implicit masks: Embedding(mask_zero=True) and Masking mark padded steps, layers that
keep the steps pass the mask on, and attention and pooling skip what it marks. The check that
needs no oracle: a padded sequence gives the same answer as the unpadded one. Real Keras (torch
backend) is the oracle where installed."""
import numpy as np
import pytest

from wsekern import nn
from wsekern.nn import layers


def _attention_classifier(lib, vocab=20, d=8, mask_zero=True):
    L = lib.layers
    inp = lib.Input(shape=(None,), dtype="int32")
    x = L.Embedding(vocab, d, mask_zero=mask_zero, name="emb")(inp)
    x = L.Dense(d, activation="relu", name="proj")(x)
    a = L.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x)
    x = L.LayerNormalization(name="ln")(L.add([x, a]))
    x = L.GlobalAveragePooling1D(name="pool")(x)
    out = L.Dense(3, name="out")(x)
    return lib.Model(inp, out)


def _outputs(model, ids):
    y = model(np.asarray(ids, dtype="int32"))
    return np.asarray(getattr(y, "data", y))


def test_padding_does_not_change_the_answer():
    nn.utils.set_random_seed(0)
    model = _attention_classifier(nn)
    short = [[5, 3, 7, 2]]
    padded = [[5, 3, 7, 2, 0, 0, 0]]
    np.testing.assert_allclose(_outputs(model, padded), _outputs(model, short), rtol=1e-5,
                               atol=1e-6)
    # a batch with different lengths: each row as if alone
    batch = [[5, 3, 7, 2, 0, 0], [9, 1, 0, 0, 0, 0]]
    got = _outputs(model, batch)
    np.testing.assert_allclose(got[1], _outputs(model, [[9, 1]])[0], rtol=1e-5, atol=1e-6)


def test_without_mask_zero_padding_changes_the_answer():
    # the same model without masks: the padded steps are attended to and averaged in,
    # so the property above must fail (the test above would catch a dropped mask)
    nn.utils.set_random_seed(0)
    model = _attention_classifier(nn, mask_zero=False)
    assert not np.allclose(_outputs(model, [[5, 3, 7, 2, 0, 0, 0]]),
                           _outputs(model, [[5, 3, 7, 2]]), atol=1e-4)


def test_mask_travels_through_sequential_layers_and_merges():
    emb = layers.Embedding(10, 4, mask_zero=True)
    ids = np.array([[1, 2, 0], [3, 0, 0]])
    x = emb(ids)
    np.testing.assert_array_equal(x._keras_mask.data, ids != 0)
    y = layers.Dropout(0.5)(layers.Dense(4)(x))
    np.testing.assert_array_equal(np.asarray(y._keras_mask.data), ids != 0)
    # Add: AND of the inputs' masks; Concatenate on features: AND; on steps: joined
    other = layers.Embedding(10, 4, mask_zero=True)(np.array([[1, 0, 5], [3, 3, 0]]))
    both = layers.add([x, other])
    np.testing.assert_array_equal(both._keras_mask, [[True, False, False], [True, False, False]])
    steps = layers.Concatenate(axis=1)([x, other])
    assert steps.shape == (2, 6, 4)
    np.testing.assert_array_equal(steps._keras_mask[1], [1, 0, 0, 1, 1, 0])
    # a layer that does not keep the steps drops the mask
    assert getattr(layers.GlobalAveragePooling1D()(x), "_keras_mask", None) is None
    assert getattr(layers.Flatten()(x), "_keras_mask", None) is None


def test_masking_layer_marks_and_zeroes_steps():
    x = np.array([[[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]]], dtype="float32")
    m = layers.Masking(mask_value=0.0)
    y = m(x)
    np.testing.assert_array_equal(y._keras_mask, [[True, False, True]])
    pooled = layers.GlobalAveragePooling1D()(y)
    np.testing.assert_allclose(np.asarray(pooled.data), [[2.0, 1.0]])
    assert m.get_config()["mask_value"] == 0.0
    # NaN is not equal to the mask value: a NaN step stays real (as in Keras)
    x[0, 1, 0] = np.nan
    assert layers.Masking()(x)._keras_mask[0, 1]


def test_explicit_mask_arguments_win_and_mask_trains():
    nn.utils.set_random_seed(1)
    model = _attention_classifier(nn)
    model.compile(optimizer="adam", loss=nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20, size=(32, 6))
    ids[:, 4:] = 0
    y = (ids[:, 0] % 3).astype("int64")
    hist = model.fit(ids.astype("int32"), y, epochs=3, batch_size=8, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    mha = layers.MultiHeadAttention(num_heads=1, key_dim=2)
    q = np.ones((1, 3, 2), "float32")
    out = mha(q, q, query_mask=np.array([[True, True, False]]))
    np.testing.assert_array_equal(out._keras_mask, [[True, True, False]])


def test_masked_attention_matches_keras(keras):
    nn.utils.set_random_seed(0)
    ours = _attention_classifier(nn)
    theirs = _attention_classifier(keras)
    # Keras's attention kernels are (d, heads, key_dim): the same numbers, reshaped
    theirs.set_weights([w.reshape(t.shape) for w, t in zip(ours.get_weights(),
                                                             theirs.get_weights())])
    ids = np.array([[5, 3, 7, 2, 0, 0], [9, 1, 4, 0, 0, 0]], dtype="int32")
    expected = keras.ops.convert_to_numpy(theirs(ids))
    np.testing.assert_allclose(_outputs(ours, ids), expected, rtol=1e-4, atol=1e-5)


def _tagger(lib):
    L = lib.layers
    inp = lib.Input(shape=(None,), dtype="int32")
    x = L.Embedding(20, 8, mask_zero=True)(inp)
    x = L.Dense(8, activation="tanh")(x)
    return lib.Model(inp, L.Dense(3)(x))


def _tag_data():
    ids = np.array([[4, 7, 1, 0, 0], [3, 3, 9, 12, 0]], dtype="int32")
    tags = np.array([[0, 2, 1, 0, 0], [1, 1, 2, 0, 0]], dtype="int64")
    return ids, tags


def test_sequence_loss_skips_padded_steps():
    """The mean loss is over the real steps only: by hand from the logits, and the padded
    batch's loss equals the mean of the unpadded sequences' per-step losses."""
    nn.utils.set_random_seed(2)
    model = _tagger(nn)
    loss = nn.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="sgd", loss=loss)
    ids, tags = _tag_data()
    logits = np.asarray(model(ids).data, np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_step = -np.take_along_axis(logp, tags[..., None], -1)[..., 0]
    real = ids != 0
    expected = per_step[real].mean()
    assert model.evaluate(ids, tags, verbose=0) == pytest.approx(expected, rel=1e-5)
    # sample weights multiply the mask (Keras's apply_mask)
    got = loss(tags, model(ids), sample_weight=np.array([1.0, 3.0])).data
    w = np.where(real, np.array([[1.0], [3.0]]), 0.0)
    assert float(got) == pytest.approx((per_step * w).sum() / real.sum(), rel=1e-5)


def test_sequence_loss_matches_keras(keras):
    nn.utils.set_random_seed(3)
    ours = _tagger(nn)
    theirs = _tagger(keras)
    theirs.set_weights(ours.get_weights())
    ids, tags = _tag_data()
    for m, lib in ((ours, nn), (theirs, keras)):
        m.compile(optimizer=lib.optimizers.SGD(learning_rate=0.5),
                  loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert ours.evaluate(ids, tags, verbose=0) == pytest.approx(
        theirs.evaluate(ids, tags, verbose=0), rel=1e-5)
    ours.fit(ids, tags, epochs=3, batch_size=2, verbose=0, shuffle=False)
    theirs.fit(ids, tags, epochs=3, batch_size=2, verbose=0, shuffle=False)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_softmax_after_a_step_mask():
    """A (B, T) step mask reaching Softmax over (B, T, C) features: it broadcast over the
    classes (T == C: silently zeroed a class; T != C: a broadcast error)."""
    nn.utils.set_random_seed(0)
    for T_, C in ((3, 3), (5, 3)):
        ids = np.array([[3, 4] + [0] * (T_ - 2)])
        x = layers.Dense(C)(layers.Embedding(10, 4, mask_zero=True)(ids))
        logits = np.asarray(x.data, np.float64)
        y = layers.Softmax()(x)
        expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        expected[0, 2:] = 1.0 / C                     # a padded step: all masked, uniform
        np.testing.assert_allclose(np.asarray(y.data), expected, rtol=1e-5)
        np.testing.assert_array_equal(y._keras_mask.data, ids != 0)
    with pytest.raises(ValueError, match=r"mask's shape \(2,\)"):
        layers.Softmax()(np.ones((1, 3, 4), "float32"), mask=np.array([True, False]))
