"""The transformer's fused passes (src/_transformer.pyx): LayerNorm and causal attention on
the (B, T, heads, d) layout, against the NumPy/autograd compositions, finite differences
and, where installed, PyTorch; bad shapes in a child process."""
import textwrap

import numpy as np
import pytest
from conftest import assert_refused_in_child

from wsekern.nn.layers import LayerNormalization, MultiHeadAttention
from wsekern.nn.layers.attention import (
    attention,
    attention_heads_last,
    attention_reference,
    heads_last_applies,
)
from wsekern.nn.layers.normalization import _normalize, layer_norm
from wsekern.nn.tensor import Tensor

TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _params(d, dtype, rng):
    return (Tensor(rng.standard_normal(d).astype(dtype), requires_grad=True),
            Tensor(rng.standard_normal(d).astype(dtype), requires_grad=True))


# -- LayerNorm --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 1), (4, 1), (2, 0, 6), (0, 3), (9, 130)])
def test_layer_norm_matches_the_numpy_composition(dtype, shape):
    rng = np.random.default_rng(0)
    xv = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    gamma, beta = _params(shape[-1], dtype, rng)
    R = rng.standard_normal(shape).astype(dtype)
    grads = []
    for fn in (lambda x: layer_norm(x, gamma, beta, 1e-5),
               lambda x: _normalize(x, -1, 1e-5, gamma, beta)[0]):
        x = Tensor(xv.copy(), requires_grad=True)
        gamma.grad = beta.grad = None
        y = fn(x)
        (y * Tensor(R)).sum().backward()
        assert y.dtype == dtype and y.shape == shape
        grads.append((y.data, x.grad, gamma.grad, beta.grad))
    tol = TOL[dtype]
    for a, b in zip(*grads):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_layer_norm_without_scale_or_centre_and_strided_input():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 6, 10))
    xv = base[:, ::2, ::-1]                                   # not contiguous
    # Weighted: the plain sum of a normalised row is 0 whatever x is, so its gradient
    # without gamma is about 0 on both sides and would compare nothing.
    R = Tensor(rng.standard_normal(xv.shape))
    for gamma, beta in [(None, None), (_params(10, np.float64, rng)[0], None)]:
        x = Tensor(xv, requires_grad=True)
        y = layer_norm(x, gamma, beta, 1e-3)
        (y * R).sum().backward()
        x2 = Tensor(np.ascontiguousarray(xv), requires_grad=True)
        y2 = _normalize(x2, -1, 1e-3, gamma, beta)[0]
        (y2 * R).sum().backward()
        assert np.abs(x.grad).max() > 0.1
        np.testing.assert_allclose(y.data, y2.data, atol=1e-12)
        np.testing.assert_allclose(x.grad, x2.grad, atol=1e-12)


def test_layer_norm_gradient_by_finite_differences():
    rng = np.random.default_rng(2)
    xv = rng.standard_normal((3, 5))
    gamma, beta = _params(5, np.float64, rng)
    R = rng.standard_normal((3, 5))
    x = Tensor(xv.copy(), requires_grad=True)
    (layer_norm(x, gamma, beta, 1e-5) * Tensor(R)).sum().backward()

    def f(v, g=gamma.data, b=beta.data):
        return float((layer_norm(Tensor(v), Tensor(g), Tensor(b), 1e-5).data * R).sum())
    h = 1e-6
    for idx in np.ndindex(xv.shape):
        e = np.zeros_like(xv)
        e[idx] = h
        assert abs((f(xv + e) - f(xv - e)) / (2 * h) - x.grad[idx]) < 1e-6
    for j in range(5):
        e = np.zeros(5)
        e[j] = h
        num_g = (f(xv, g=gamma.data + e) - f(xv, g=gamma.data - e)) / (2 * h)
        num_b = (f(xv, b=beta.data + e) - f(xv, b=beta.data - e)) / (2 * h)
        assert abs(num_g - gamma.grad[j]) < 1e-6 and abs(num_b - beta.grad[j]) < 1e-6


def test_layer_norm_non_finite_rows_stay_in_their_row():
    xv = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 4.0], [np.inf, 0.0, 1.0]], np.float32)
    x = Tensor(xv, requires_grad=True)
    layer = LayerNormalization(epsilon=1e-5)
    y = layer(x)
    ref = _normalize(Tensor(xv), -1, 1e-5, layer.gamma, layer.beta)[0].data
    assert np.isnan(y.data[0]).all() and np.isnan(y.data[2]).all()
    np.testing.assert_allclose(y.data[1], ref[1], rtol=1e-6)
    y.sum().backward()
    assert np.isfinite(x.grad[1]).all()


def test_layer_norm_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    xv = rng.standard_normal((8, 16, 128)).astype(np.float32) * 2
    gamma, beta = _params(128, np.float32, rng)
    R = rng.standard_normal(xv.shape).astype(np.float32)
    x = Tensor(xv, requires_grad=True)
    (layer_norm(x, gamma, beta, 1e-5) * Tensor(R)).sum().backward()
    xt = torch.from_numpy(xv).requires_grad_()
    gt = torch.from_numpy(gamma.data.copy()).requires_grad_()
    bt = torch.from_numpy(beta.data.copy()).requires_grad_()
    yt = torch.nn.functional.layer_norm(xt, (128,), gt, bt, 1e-5)
    (yt * torch.from_numpy(R)).sum().backward()
    np.testing.assert_allclose(layer_norm(Tensor(xv), gamma, beta, 1e-5).data,
                               yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gamma.grad, gt.grad.numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(beta.grad, bt.grad.numpy(), rtol=1e-4, atol=1e-3)


# -- attention ----------------------------------------------------------------------------
def _qkv(B, Tq, Tk, H, dk, dv, dtype, rng):
    return (Tensor(rng.standard_normal((B, Tq, H, dk)).astype(dtype), requires_grad=True),
            Tensor(rng.standard_normal((B, Tk, H, dk)).astype(dtype), requires_grad=True),
            Tensor(rng.standard_normal((B, Tk, H, dv)).astype(dtype), requires_grad=True))


def _composed(q, k, v, causal):
    """The readable attention (autograd ops) on the heads-first layout."""
    from wsekern.nn.tensor import transpose
    Tq, Tk = q.shape[1], k.shape[1]
    mask = np.tril(np.ones((Tq, Tk), bool))[None, None] if causal else None
    heads = [transpose(t, (0, 2, 1, 3)) for t in (q, k, v)]
    return transpose(attention_reference(*heads, mask), (0, 2, 1, 3))


@pytest.fixture(params=["avx512", "avx2", "baseline"])
def softmax_path(request):
    """Each path of the float32 softmax exponentials (wsk_vmath.h: 8 lanes on avx512 and
    avx2, 4 on baseline); one the CPU lacks is skipped."""
    from wsekern import _transformer
    before = _transformer.SIMD_PATH
    if _transformer.use_simd_path(request.param) != request.param:
        _transformer.use_simd_path(before)
        pytest.skip(f"this CPU cannot run the {request.param} path")
    yield request.param
    _transformer.use_simd_path(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("sizes", [(2, 5, 5, 3, 4, 4), (3, 4, 7, 2, 5, 3), (1, 1, 1, 1, 1, 1),
                                   (2, 17, 17, 1, 9, 2), (1, 3, 38, 2, 4, 3),
                                   (2, 7, 3, 2, 4, 3)])
def test_heads_last_attention_matches_the_composition(dtype, causal, sizes, softmax_path):
    """Rows of every length mod 8 (up to 38 keys): each softmax path's vector body and
    padded tail."""
    rng = np.random.default_rng(4)
    B, Tq, Tk, H, dk, dv = sizes
    R = rng.standard_normal((B, Tq, H, dv)).astype(dtype)
    results = []
    for fn in (lambda *t: attention_heads_last(*t, causal=causal),
               lambda *t: _composed(*t, causal)):
        q, k, v = _qkv(B, Tq, Tk, H, dk, dv, dtype, np.random.default_rng(5))
        out = fn(q, k, v)
        (out * Tensor(R)).sum().backward()
        results.append((out.data, q.grad, k.grad, v.grad))
    tol = TOL[dtype]
    assert results[0][0].dtype == dtype and results[0][0].shape == (B, Tq, H, dv)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_heads_last_attention_by_finite_differences_and_strided_inputs():
    rng = np.random.default_rng(6)
    q, k, v = _qkv(2, 4, 4, 2, 3, 3, np.float64, rng)
    R = rng.standard_normal((2, 4, 2, 3))
    (attention_heads_last(q, k, v, causal=True) * Tensor(R)).sum().backward()
    h = 1e-6
    for t in (q, k, v):
        for idx in list(np.ndindex(t.shape))[::5]:
            old = t.data[idx]
            t.data[idx] = old + h
            up = (attention_heads_last(q, k, v, True).data * R).sum()
            t.data[idx] = old - h
            down = (attention_heads_last(q, k, v, True).data * R).sum()
            t.data[idx] = old
            assert abs((up - down) / (2 * h) - t.grad[idx]) < 1e-6
    wide = rng.standard_normal((2, 4, 2, 6))
    qs = Tensor(wide[..., ::2])                                  # not contiguous
    a = attention_heads_last(qs, k, v, True).data
    b = attention_heads_last(Tensor(np.ascontiguousarray(wide[..., ::2])), k, v, True).data
    np.testing.assert_array_equal(a, b)


def test_heads_last_attention_nan_and_inf_as_the_numpy_path():
    rng = np.random.default_rng(7)
    q, k, v = _qkv(1, 4, 4, 1, 2, 2, np.float32, rng)
    q.data[0, 2, 0, 0] = np.nan                                  # query 2's row
    k.data[0, 3, 0, 1] = np.inf                                  # key 3: masked for rows < 3
    fused = attention_heads_last(q, k, v, causal=True).data
    heads = [Tensor(np.ascontiguousarray(t.data.transpose(0, 2, 1, 3))) for t in (q, k, v)]
    mask = np.tril(np.ones((4, 4), bool))[None, None]
    plain = attention(*heads, mask)[0].data.transpose(0, 2, 1, 3)
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(plain))
    finite = ~np.isnan(plain)
    np.testing.assert_allclose(fused[finite], plain[finite], rtol=1e-5, atol=1e-6)
    assert np.isnan(fused[0, 2]).all() and np.isfinite(fused[0, :2]).all()


def test_heads_last_attention_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    q, k, v = _qkv(4, 16, 16, 4, 8, 8, np.float32, rng)
    R = rng.standard_normal((4, 16, 4, 8)).astype(np.float32)
    (attention_heads_last(q, k, v, causal=True) * Tensor(R)).sum().backward()
    ts = [torch.from_numpy(t.data.transpose(0, 2, 1, 3).copy()).requires_grad_()
          for t in (q, k, v)]
    out = torch.nn.functional.scaled_dot_product_attention(*ts, is_causal=True)
    (out * torch.from_numpy(R.transpose(0, 2, 1, 3).copy())).sum().backward()
    np.testing.assert_allclose(attention_heads_last(q, k, v, True).data,
                               out.detach().numpy().transpose(0, 2, 1, 3), atol=2e-6)
    for t, tt in zip((q, k, v), ts):
        np.testing.assert_allclose(t.grad, tt.grad.numpy().transpose(0, 2, 1, 3), atol=2e-5)


def test_multi_head_attention_takes_the_fused_path_only_where_it_applies():
    assert heads_last_applies(np.float32, 2, 4, 4, 8, 8, True, None, 0)
    assert not heads_last_applies(np.float32, 2, 4, 4, 8, 8, True, np.ones((2, 4, 4)), 0)
    assert not heads_last_applies(np.float32, 2, 4, 4, 8, 8, True, None, 0.1)
    assert heads_last_applies(np.float32, 2, 5, 4, 8, 8, True, None, 0)   # Tq > Tk: j <= i
    assert heads_last_applies(np.float32, 2, 5, 4, 8, 8, False, None, 0)
    assert not heads_last_applies(np.float32, 0, 4, 4, 8, 8, True, None, 0)
    assert not heads_last_applies(np.float16, 2, 4, 4, 8, 8, True, None, 0)
    # the layer's two paths agree: an all-True mask takes the general one
    rng = np.random.default_rng(9)
    xv = rng.standard_normal((2, 6, 16)).astype(np.float32)
    mha = MultiHeadAttention(4, 4)
    outs = []
    for mask in (None, np.tril(np.ones((2, 6, 6), bool))):
        x = Tensor(xv, requires_grad=True)
        y = mha(x, x, attention_mask=mask, use_causal_mask=True)
        y.sum().backward()
        outs.append((y.data, x.grad))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-4, atol=1e-5)


def test_heads_last_attention_refuses_mismatched_operands():
    rng = np.random.default_rng(10)
    q, k, v = _qkv(2, 3, 3, 2, 4, 4, np.float32, rng)
    with pytest.raises(ValueError, match="heads, dk"):
        attention_heads_last(q, Tensor(k.data[:, :, :1]), v)
    with pytest.raises(ValueError, match="one dtype"):
        attention_heads_last(q, Tensor(k.data.astype(np.float64)), v)


def test_kernels_refuse_hostile_shapes_in_a_child_process():
    """Wrong shapes straight into the Cython entry points: a ValueError naming the shape,
    never a write past a buffer (run in a child so that a crash fails this test)."""
    code = textwrap.dedent("""
        import numpy as np
        from wsekern import _transformer as T
        f = np.float32
        q = np.zeros((2, 3, 2, 4), f); k = np.zeros((2, 5, 2, 4), f); v = np.zeros((2, 5, 2, 4), f)
        p = np.zeros((2, 2, 3, 5), f); out = np.zeros((2, 3, 2, 4), f)
        cases = [
            lambda: T.attention_forward(q, k, v, 1.0, True, np.zeros((2, 2, 3, 4), f), out),
            lambda: T.attention_forward(q, k, v[:, :4].copy(), 1.0, True, p, out),
            lambda: T.attention_forward(q, k, v, 1.0, True, p, np.zeros((2, 3, 2, 3), f)),
            lambda: T.attention_forward(np.zeros((2, 3, 2, 0), f), np.zeros((2, 5, 2, 0), f),
                                        v, 1.0, True, p, out),
            lambda: T.attention_backward(out, q, k, v, p, 1.0, np.zeros_like(q),
                                         np.zeros_like(k), np.zeros_like(v),
                                         np.zeros((3, 4), f)),
            lambda: T.attention_backward(out, q, k, v, p, 1.0, np.zeros_like(q),
                                         np.zeros_like(q), np.zeros_like(v),
                                         np.zeros((3, 5), f)),
            lambda: T.layer_norm_forward(np.zeros((4, 6), f), np.ones(5, f), np.zeros(6, f),
                                         1e-5, np.zeros((4, 6), f), np.zeros(4), np.zeros(4)),
            lambda: T.layer_norm_forward(np.zeros((4, 6), f), np.ones(6, f), np.zeros(6, f),
                                         1e-5, np.zeros((4, 6), f), np.zeros(3), np.zeros(4)),
            lambda: T.layer_norm_backward(np.zeros((4, 6), f), np.zeros((4, 6), f),
                                          np.ones(6, f), np.zeros(4), np.zeros(4),
                                          np.zeros((4, 6), f), np.zeros(5), np.zeros(6)),
            lambda: T.layer_norm_backward(np.zeros((3, 6), f), np.zeros((4, 6), f),
                                          np.ones(6, f), np.zeros(4), np.zeros(4),
                                          np.zeros((4, 6), f), np.zeros(6), np.zeros(6)),
        ]
    """)
    assert_refused_in_child(code, 10, (ValueError,), ("shape", "sizes", "keys"))


def test_fused_dense_keeps_a_float32_model_float32_under_a_float64_gradient():
    from wsekern.nn.layers.linear import linear
    from wsekern.nn.tensor import Tensor
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((4, 3), np.float32), rng.standard_normal((3, 5), np.float32)
    for gelu in (False, True):
        X, K, B = (Tensor(a, requires_grad=True) for a in (x, W, np.zeros(5, np.float32)))
        y = linear(X, K, B, gelu=gelu)
        y.backward(rng.standard_normal((4, 5)))                 # float64 upstream
        assert {y.data.dtype, X.grad.dtype, K.grad.dtype, B.grad.dtype} == {np.dtype(np.float32)}


def test_attention_over_no_keys_is_zero_and_differentiable():
    """An empty key sequence is a valid edge case: each head's output is a sum over no
    keys (zeros), so the layer gives its output bias; it failed in a zero-size max."""
    rng = np.random.default_rng(11)
    mha = MultiHeadAttention(2, 4)
    x = Tensor(rng.standard_normal((2, 3, 8)).astype(np.float32), requires_grad=True)
    mha(x, Tensor(np.ones((2, 1, 8), np.float32)))                # build
    out_bias = mha.get_weights()[-1]
    out_bias[...] = rng.standard_normal(out_bias.shape)
    mha.set_weights(mha.get_weights()[:-1] + [out_bias])
    y = mha(x, Tensor(np.ones((2, 0, 8), np.float32)))
    np.testing.assert_array_equal(y.data, np.broadcast_to(out_bias, (2, 3, 8)))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 0)
