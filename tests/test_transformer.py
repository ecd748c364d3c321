"""Transformers: attention, embeddings, blocks (gradient checks), the GPT model, text data,
and the synthetic reversal task."""
import numpy as np
import pytest
from test_nn_grad import numeric_grad

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L
from wsekern.nn.layers.attention import attention, attention_reference
from wsekern.nn.models import GPT, GPTConfig
from wsekern.nn.tensor import Tensor


def _check(fn, inputs, weights, rtol=1e-5, atol=1e-6):
    """Autograd vs finite differences of sum(fn(*inputs) * R) for inputs and weights."""
    out = fn(*[Tensor(a) for a in inputs])
    R = np.random.default_rng(5).standard_normal(out.shape)

    def f():
        return float((fn(*[Tensor(a) for a in inputs]).data * R).sum())
    ts = [Tensor(a, requires_grad=True) for a in inputs]
    for w in weights:
        w.grad = None
    (fn(*ts) * R).sum().backward()
    for t, a in zip(ts, inputs):
        np.testing.assert_allclose(t.grad, numeric_grad(f, a), rtol=rtol, atol=atol)
    for w in weights:
        np.testing.assert_allclose(w.grad, numeric_grad(f, w.data), rtol=rtol, atol=atol,
                                   err_msg=w.name)


def test_fused_attention_equals_the_readable_one():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    mask = np.tril(np.ones((5, 5), bool))[None, None]
    fused = attention(Tensor(q), Tensor(k), Tensor(v), mask)[0].data
    readable = attention_reference(Tensor(q), Tensor(k), Tensor(v), mask).data
    np.testing.assert_allclose(fused, readable, rtol=1e-12)
    _check(lambda a, b, c: attention(a, b, c, mask)[0], [q, k, v], [])


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_gradients(causal):
    nn.utils.set_random_seed(0)
    mha = L.MultiHeadAttention(num_heads=2, key_dim=3, dtype="float64")
    x = np.random.default_rng(1).standard_normal((2, 4, 6))
    mha(Tensor(x))
    _check(lambda t: mha(t, t, use_causal_mask=causal), [x], mha.trainable_weights)


def test_cross_attention_with_a_mask_and_keras_signature():
    nn.utils.set_random_seed(0)
    mha = L.MultiHeadAttention(num_heads=2, key_dim=2, value_dim=3, dtype="float64")
    rng = np.random.default_rng(2)
    q, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    mask = rng.random((2, 3, 5)) < 0.7
    mask[:, :, 0] = True
    mha(Tensor(q), Tensor(v))
    _check(lambda a, b: mha(a, b, attention_mask=mask), [q, v], mha.trainable_weights)
    assert mha(Tensor(q), Tensor(v)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="attention_mask"):
        mha(Tensor(q), Tensor(v), attention_mask=np.ones((2, 3, 4), bool))


def test_causal_mask_hides_the_future():
    nn.utils.set_random_seed(0)
    mha = L.MultiHeadAttention(num_heads=1, key_dim=4, dtype="float64")
    x = np.random.default_rng(3).standard_normal((1, 6, 4))
    y = mha(Tensor(x), use_causal_mask=True).data
    x2 = x.copy()
    x2[0, 4:] += 10.0                          # change only the last two positions
    y2 = mha(Tensor(x2), use_causal_mask=True).data
    np.testing.assert_allclose(y[0, :4], y2[0, :4], rtol=1e-12)


def test_embeddings_and_block_gradients():
    nn.utils.set_random_seed(0)
    emb = L.TokenAndPositionEmbedding(11, 5, 6, dtype="float64")
    ids = np.random.default_rng(0).integers(0, 11, (3, 5))
    out = emb(Tensor(ids))
    R = np.random.default_rng(1).standard_normal(out.shape)
    for w in emb.trainable_weights:
        w.grad = None
    (emb(Tensor(ids)) * R).sum().backward()
    for w in emb.trainable_weights:
        np.testing.assert_allclose(
            w.grad, numeric_grad(lambda: float((emb(Tensor(ids)).data * R).sum()), w.data),
            rtol=1e-5, atol=1e-7)
    block = L.TransformerBlock(num_heads=2, mlp_dim=8, dtype="float64")
    x = np.random.default_rng(2).standard_normal((2, 4, 6))
    block(Tensor(x))
    for w in block.trainable_weights:       # no LayerNorm exactly at its initial point
        w.data += np.random.default_rng(4).normal(0, 0.05, w.shape)
    _check(lambda t: block(t), [x], block.trainable_weights, rtol=1e-4, atol=1e-6)


def test_sinusoidal_positions_and_bad_ids():
    from wsekern.nn.layers.attention import sinusoidal_positions
    P = sinusoidal_positions(10, 8)
    np.testing.assert_allclose(P[:, 0], np.sin(np.arange(10)), rtol=1e-6)
    np.testing.assert_allclose(P[:, 1], np.cos(np.arange(10)), rtol=1e-6)
    emb = L.Embedding(5, 3)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 5\)"):
        emb(Tensor(np.array([[1, 7]])))


def test_text_data():
    tok, train, val = wk.data.load_text()
    text = wk.data.load_pydoc_corpus()
    assert len(train) == int(len(text) * 0.9) and len(train) + len(val) == len(text)
    assert tok.decode(train[:200]) == text[:200]
    x, y = wk.data.lm_windows(train, 64, 10)
    assert x.shape == y.shape == (10, 64)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_gpt_trains_and_generates_reproducibly():
    tok, train, val = wk.data.load_text()
    nn.utils.set_random_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, context=16, n_layer=1, n_head=2, d_model=32,
                          mlp_dim=64))
    model.compile(nn.optimizers.AdamW(3e-3, weight_decay=0.1))
    x, y = wk.data.lm_windows(train, 16, 64 * 30)
    before = model.evaluate(x[:256], y[:256], verbose=0)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    after = model.evaluate(x[:256], y[:256], verbose=0)
    assert after < before - 0.5
    a = model.generate(tok.encode("The "), 20, temperature=0.8, top_k=5, seed=7)
    b = model.generate(tok.encode("The "), 20, temperature=0.8, top_k=5, seed=7)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 24 and tok.decode(a[:4]) == "The "
    with pytest.raises(ValueError, match="prompt"):
        model.generate([], 3)


def test_sequence_reversal_is_learned():
    """At least 99% of held-out 16-token sequences reversed exactly, within 2,000 steps."""
    V, T = 10, 16
    x, y = wk.data.reversal_task(128 * 1500, T, V, seed=0)
    xt, yt = wk.data.reversal_task(1000, T, V, seed=1)
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input(shape=(T,), dtype="int64"),
                           L.TokenAndPositionEmbedding(V, T, 64),
                           L.TransformerBlock(num_heads=4, mlp_dim=128, causal=False),
                           L.TransformerBlock(num_heads=4, mlp_dim=128, causal=False),
                           L.LayerNormalization(), L.Dense(V)])
    model.compile(nn.optimizers.Adam(nn.optimizers.CosineDecay(0.0, 1400, warmup_target=2e-3,
                                                               warmup_steps=100)),
                  nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=128, epochs=1, verbose=0)          # 1,500 steps
    pred = model.predict(xt, batch_size=250).argmax(-1)
    assert np.mean((pred == yt).all(axis=1)) >= 0.99


def test_gpt_on_the_wafer_costs_attention_and_the_kv_cache():
    tok, train, _ = wk.data.load_text()
    strategy = wk.WaferStrategy(wk.WaferConfig.small(64, 64))
    nn.utils.set_random_seed(0)
    with strategy.scope():
        model = GPT(GPTConfig(vocab_size=tok.vocab_size, context=16, n_layer=1, n_head=2,
                              d_model=32, mlp_dim=64))
        model.compile()
    names = [p.layer.name for p in strategy.placements]
    assert "block_0/attn/query" in names and "block_0/mlp_fc" in names and "lm_head" in names
    x, y = wk.data.lm_windows(train, 16, 8)
    model.train_on_batch(x, y)
    report = model.wafer_report()
    assert report.attention_rows[0]["cycles_per_step"] > 0
    assert report.attention_rows[0]["kv_cache_bytes_per_sequence"] == 2 * 16 * 2 * 16 * 2
    assert "KV cache" in str(report)


def test_pruning_a_transformer():
    tok, train, _ = wk.data.load_text()
    nn.utils.set_random_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, context=16, n_layer=1, n_head=2, d_model=32,
                          mlp_dim=64))
    model.compile()
    x, y = wk.data.lm_windows(train, 16, 8 * 6)
    pruning = nn.callbacks.GradualPruning(0.8, pruning_steps=2, frequency=2,
                                          layers=[model.layers[1]])
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[pruning])
    fc = model.layers[1].fc
    assert np.mean(fc.get_weights()[0] == 0) == pytest.approx(0.8, abs=0.01)
    assert np.isfinite(model.evaluate(x, y, verbose=0))


def test_generate_and_embedding_refuse_what_they_cannot_mean():
    """temperature=nan reached NumPy's "probabilities contain NaN", max_new_tokens=-1 was
    taken as 0, and bool ids indexed the table as a mask (IndexError)."""
    model = GPT(GPTConfig(vocab_size=11, context=8, n_layer=1, n_head=1, d_model=8,
                          mlp_dim=8))
    for kwargs in ({"temperature": float("nan")}, {"max_new_tokens": -1}, {"top_k": 0}):
        with pytest.raises(ValueError, match="generate needs"):
            model.generate([1, 2], **{"max_new_tokens": 2, **kwargs})
    assert len(model.generate([1, 2], 0)) == 2
    emb = L.Embedding(11, 4)
    table = emb(np.array([[1, 0]])).data                    # builds it
    np.testing.assert_array_equal(emb(np.array([[True, False]])).data, table)   # as Keras
    with pytest.raises(TypeError, match="integer token ids; received <U1"):
        emb(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="whole numbers"):
        emb(np.array([[1.5, 2.0]]))


def test_multi_head_attention_names_mismatched_operands():
    """A key with another batch size reached a reshape deep inside ("cannot reshape array
    of size 120 into shape (2,5,2,4)"); each mismatch now names the shapes received."""
    mha = L.MultiHeadAttention(2, 4)
    q = np.ones((2, 3, 8), np.float32)
    for value, key in [(np.ones((3, 5, 8), np.float32), None),
                       (np.ones((2, 5, 8), np.float32), np.ones((2, 4, 8), np.float32)),
                       (np.ones((2, 5, 8), np.float32), np.ones((3, 5, 8), np.float32)),
                       (np.ones((5, 8), np.float32), None)]:
        with pytest.raises(ValueError, match="one batch size and one Tk; received query"):
            mha(q, value, key)
    assert mha(q, np.ones((2, 5, 8), np.float32)).shape == (2, 3, 8)
