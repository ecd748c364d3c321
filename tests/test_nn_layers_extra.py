"""The added Keras layers: forward against direct NumPy loops (and PyTorch where installed),
gradients by finite differences, output shapes, configs and bad arguments."""
import numpy as np
import pytest
from test_nn_grad import check_layer

from wsekern.nn import layers as L
from wsekern.nn.tensor import Tensor

rng = np.random.default_rng(0)


def conv1d_ref(x, k, stride=1, dilation=1, left=0, right=0):
    x = np.pad(x, ((0, 0), (left, right), (0, 0)))
    kk = k.shape[0]
    n = (x.shape[1] - (kk - 1) * dilation - 1) // stride + 1
    out = np.zeros((x.shape[0], n, k.shape[2]))
    for t in range(n):
        for j in range(kk):
            out[:, t] += x[:, t * stride + j * dilation] @ k[j]
    return out


@pytest.mark.parametrize("padding,stride,dilation", [("valid", 1, 1), ("same", 2, 1),
                                                     ("causal", 1, 2), ("same", 1, 3)])
def test_conv1d_matches_loops_and_gradients(padding, stride, dilation):
    x = rng.standard_normal((2, 9, 3))
    layer = L.Conv1D(4, 3, strides=stride, padding=padding, dilation_rate=dilation,
                     dtype="float64")
    y = layer(Tensor(x))
    k = layer.kernel.data
    span = 2 * dilation + 1
    if padding == "valid":
        left = right = 0
    elif padding == "causal":
        left, right = span - 1, 0
    else:
        total = max((-(-9 // stride) - 1) * stride + span - 9, 0)
        left, right = total // 2, total - total // 2
    np.testing.assert_allclose(y.data, conv1d_ref(x, k, stride, dilation, left, right)
                               + layer.bias.data, atol=1e-12)
    assert y.shape == layer.compute_output_shape((2, 9, 3))
    check_layer(L.Conv1D(2, 3, strides=stride, padding=padding, dilation_rate=dilation,
                         dtype="float64"), rng.standard_normal((2, 7, 3)))


def test_depthwise_and_separable_match_loops():
    x = rng.standard_normal((2, 5, 6, 3))
    dw = L.DepthwiseConv2D(3, depth_multiplier=2, dtype="float64")
    y = dw(Tensor(x)).data
    k = dw.kernel.data                                   # (3, 3, in, dm)
    ref = np.zeros((2, 3, 4, 6))
    for c in range(3):
        for m in range(2):
            for i in range(3):
                for j in range(3):
                    ref[..., c * 2 + m] += x[:, i:i + 3, j:j + 4, c] * k[i, j, c, m]
    np.testing.assert_allclose(y, ref + dw.bias.data, atol=1e-12)
    sep = L.SeparableConv2D(4, 3, depth_multiplier=2, dtype="float64", use_bias=False)
    ys = sep(Tensor(x)).data
    sep_dw = L.DepthwiseConv2D(3, depth_multiplier=2, dtype="float64", use_bias=False)
    sep_dw(Tensor(x))
    sep_dw.kernel.data[...] = sep.depthwise_kernel.data
    np.testing.assert_allclose(ys, sep_dw(Tensor(x)).data @ sep.pointwise_kernel.data[0, 0],
                               atol=1e-12)
    check_layer(L.DepthwiseConv2D(2, depth_multiplier=2, padding="same", dtype="float64"),
                rng.standard_normal((1, 4, 4, 2)))
    check_layer(L.SeparableConv2D(3, 2, dtype="float64"), rng.standard_normal((1, 4, 4, 2)))
    check_layer(L.SeparableConv1D(3, 2, dtype="float64"), rng.standard_normal((2, 5, 2)))


def conv_transpose_ref(x, k, stride):
    b, h, w, c = x.shape
    kh, kw, f, _ = k.shape
    out = np.zeros((b, (h - 1) * stride[0] + kh, (w - 1) * stride[1] + kw, f))
    for i in range(h):
        for j in range(w):
            out[:, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw] += \
                np.einsum("bc,pqfc->bpqf", x[:, i, j], k)
    return out


@pytest.mark.parametrize("padding,strides,ksize", [("valid", (2, 2), (3, 3)),
                                                   ("same", (2, 1), (3, 2)),
                                                   ("same", (2, 2), (4, 4))])
def test_conv2d_transpose_matches_scatter_reference(padding, strides, ksize):
    x = rng.standard_normal((2, 3, 4, 2))
    layer = L.Conv2DTranspose(3, ksize, strides=strides, padding=padding, dtype="float64")
    y = layer(Tensor(x)).data
    full = conv_transpose_ref(x, layer.kernel.data, strides)
    if padding == "same":
        crops = []
        for n, k, s, size in zip((3, 4), ksize, strides, full.shape[1:3]):
            total = max((n - 1) * s + k - n * s, 0)
            crops.append((total // 2, size - (total - total // 2)))
        full = full[:, crops[0][0]:crops[0][1], crops[1][0]:crops[1][1]]
    np.testing.assert_allclose(y, full + layer.bias.data, atol=1e-12)
    assert y.shape == layer.compute_output_shape((2, 3, 4, 2))
    check_layer(L.Conv2DTranspose(2, ksize, strides=strides, padding=padding, dtype="float64"),
                rng.standard_normal((1, 3, 3, 2)))


def test_reshaping_layers_forward_and_gradients():
    x = rng.standard_normal((2, 3, 4, 2))
    np.testing.assert_array_equal(L.UpSampling2D((2, 3))(Tensor(x)).data,
                                  x.repeat(2, axis=1).repeat(3, axis=2))
    np.testing.assert_array_equal(L.ZeroPadding2D(((1, 0), (2, 1)))(Tensor(x)).data,
                                  np.pad(x, ((0, 0), (1, 0), (2, 1), (0, 0))))
    np.testing.assert_array_equal(L.Cropping2D(((1, 0), (1, 2)))(Tensor(x)).data,
                                  x[:, 1:, 1:2])
    s = rng.standard_normal((2, 5))
    np.testing.assert_array_equal(L.RepeatVector(3)(Tensor(s)).data,
                                  np.repeat(s[:, None], 3, axis=1))
    np.testing.assert_array_equal(L.Permute((3, 1, 2))(Tensor(x)).data, x.transpose(0, 3, 1, 2))
    for layer, inp in [(L.UpSampling2D(2), x), (L.ZeroPadding2D(1), x),
                       (L.Cropping2D(((1, 1), (0, 1))), x), (L.RepeatVector(2), s),
                       (L.Permute((2, 1)), x[:, 0]), (L.ZeroPadding1D((1, 2)), x[:, 0]),
                       (L.Cropping1D((1, 0)), x[:, 0]), (L.UpSampling1D(2), x[:, 0])]:
        check_layer(layer, inp.copy())
        assert layer(Tensor(inp)).shape == tuple(layer.compute_output_shape(inp.shape))
    with pytest.raises(ValueError, match="removes all"):
        L.Cropping2D(((2, 1), (0, 0)))(Tensor(x))


def test_pooling_1d_and_global_against_numpy():
    x = rng.standard_normal((2, 7, 3))
    np.testing.assert_allclose(L.MaxPooling1D(2)(Tensor(x)).data,
                               x[:, :6].reshape(2, 3, 2, 3).max(axis=2))
    np.testing.assert_allclose(L.AveragePooling1D(3, strides=2)(Tensor(x)).data,
                               np.stack([x[:, i:i + 3].mean(1) for i in (0, 2, 4)], 1))
    same = L.AveragePooling1D(2, padding="same")(Tensor(x)).data
    np.testing.assert_allclose(same[:, -1], x[:, 6])          # padding is not averaged in
    np.testing.assert_allclose(L.GlobalAveragePooling1D()(Tensor(x)).data, x.mean(1))
    np.testing.assert_allclose(L.GlobalMaxPooling1D()(Tensor(x)).data, x.max(1))
    x4 = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(L.GlobalMaxPooling2D(keepdims=True)(Tensor(x4)).data,
                               x4.max((1, 2), keepdims=True))
    for layer in (L.MaxPooling1D(2), L.AveragePooling1D(2, padding="same"),
                  L.GlobalAveragePooling1D(), L.GlobalMaxPooling1D()):
        check_layer(layer, x.copy())
    check_layer(L.GlobalMaxPooling2D(), x4.copy())


def test_masked_global_average_pooling_ignores_padding():
    x = rng.standard_normal((2, 4, 3))
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    got = L.GlobalAveragePooling1D().call(Tensor(x), mask=mask)
    np.testing.assert_allclose(got.data, [x[0, :2].mean(0), x[1].mean(0)])


def test_activation_layers():
    x = rng.standard_normal((3, 4)) * 3
    np.testing.assert_allclose(L.ReLU(max_value=2.0)(Tensor(x)).data, np.clip(x, 0, 2))
    np.testing.assert_allclose(L.ReLU(negative_slope=0.1, threshold=0.5)(Tensor(x)).data,
                               np.where(x > 0.5, x, 0.1 * (x - 0.5)))
    np.testing.assert_allclose(L.LeakyReLU()(Tensor(x)).data, np.where(x > 0, x, 0.3 * x))
    np.testing.assert_allclose(L.ELU(0.5)(Tensor(x)).data, np.where(x > 0, x, 0.5 * np.expm1(x)))
    sm = L.Softmax()(Tensor(x)).data
    np.testing.assert_allclose(sm, np.exp(x) / np.exp(x).sum(-1, keepdims=True))
    masked = L.Softmax().call(Tensor(x), mask=np.array([True, True, False, True]))
    assert np.allclose(masked.data[:, 2], 0) and np.allclose(masked.data.sum(-1), 1)
    p = L.PReLU(dtype="float64")
    p(Tensor(x))
    p.alpha.data[...] = 0.25
    np.testing.assert_allclose(p(Tensor(x)).data, np.where(x > 0, x, 0.25 * x))
    for layer in (L.ReLU(max_value=2.0), L.LeakyReLU(0.2), L.ELU(), L.Softmax(),
                  L.PReLU(shared_axes=[1], dtype="float64")):
        check_layer(layer, x.copy())


def test_noise_and_spatial_dropout_are_identity_at_inference():
    x = rng.standard_normal((4, 6, 5))
    for layer in (L.GaussianNoise(0.5), L.GaussianDropout(0.3), L.SpatialDropout1D(0.5)):
        np.testing.assert_array_equal(layer(Tensor(x)).data, x)
    y = L.SpatialDropout1D(0.5, seed=1)(Tensor(x), training=True).data
    zero_channels = (y == 0).all(axis=1)                  # whole channels dropped together
    assert zero_channels.any() and ((y != 0).all(axis=1) | zero_channels).all()
    y2 = L.SpatialDropout2D(0.5, seed=1)(Tensor(x[..., None].repeat(2, -1)), training=True)
    assert y2.shape == (4, 6, 5, 2)
    noisy = L.GaussianNoise(0.1, seed=0)(Tensor(np.zeros((2000,))), training=True).data
    assert abs(noisy.std() - 0.1) < 0.01


def test_rescaling_identity_lambda_timedistributed():
    img = np.arange(6, dtype=np.uint8).reshape(1, 6)
    np.testing.assert_allclose(L.Rescaling(1 / 255.0)(Tensor(img)).data, img / 255.0, rtol=1e-6)
    np.testing.assert_allclose(L.Rescaling(2.0, offset=-1.0)(Tensor(img)).data, img * 2.0 - 1)
    x = rng.standard_normal((2, 3, 4))
    assert L.Identity()(Tensor(x)).data is x
    lam = L.Lambda(lambda t: t[:, :, :2] * 2.0)
    np.testing.assert_array_equal(lam(Tensor(x)).data, x[:, :, :2] * 2)
    assert lam.compute_output_shape((None, 3, 4)) == (None, 3, 2)
    check_layer(lam, x.copy())
    td = L.TimeDistributed(L.Dense(5, dtype="float64"))
    y = td(Tensor(x))
    inner = td.layer
    np.testing.assert_allclose(y.data, x @ inner.kernel.data + inner.bias.data)
    assert len(td.trainable_weights) == 2 and td.compute_output_shape((None, 3, 4)) == \
        (None, 3, 5)
    check_layer(L.TimeDistributed(L.Dense(2, dtype="float64")), x.copy())


def test_embedding_mask_zero():
    emb = L.Embedding(10, 4, mask_zero=True)
    ids = np.array([[3, 1, 0, 0], [5, 6, 7, 0]])
    emb(ids)
    np.testing.assert_array_equal(emb.compute_mask(ids).data, ids != 0)
    assert L.Embedding(10, 4).compute_mask(ids) is None
    assert emb.get_config()["mask_zero"] is True


def test_bad_arguments_say_what_would_work():
    with pytest.raises(ValueError, match="causal"):
        L.Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match="filters"):
        L.Conv1D(0, 3)
    with pytest.raises(ValueError, match="permutation"):
        L.Permute((1, 3))
    with pytest.raises(ValueError, match="rank >= 3"):
        L.TimeDistributed(L.Dense(2))(Tensor(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"\(batch, steps, channels\)"):
        L.Conv1D(2, 3)(Tensor(np.zeros((2, 3, 4, 5))))


torch = None
try:
    import torch
    torch.set_num_threads(1)
except Exception:
    torch = None


@pytest.mark.skipif(torch is None, reason="torch is not installed")
def test_conv_layers_against_torch():
    F = torch.nn.functional
    x = rng.standard_normal((2, 3, 5, 2))
    ct = L.Conv2DTranspose(4, 3, strides=2, dtype="float64", use_bias=False)
    ours = ct(Tensor(x)).data
    theirs = F.conv_transpose2d(torch.tensor(x.transpose(0, 3, 1, 2)),
                                torch.tensor(ct.kernel.data.transpose(3, 2, 0, 1)), stride=2)
    np.testing.assert_allclose(ours, theirs.numpy().transpose(0, 2, 3, 1), atol=1e-10)
    c1 = L.Conv1D(3, 2, dilation_rate=2, dtype="float64", use_bias=False)
    s = rng.standard_normal((2, 7, 4))
    ours = c1(Tensor(s)).data
    theirs = F.conv1d(torch.tensor(s.transpose(0, 2, 1)),
                      torch.tensor(np.ascontiguousarray(c1.kernel.data.transpose(2, 1, 0))),
                      dilation=2)
    np.testing.assert_allclose(ours, theirs.numpy().transpose(0, 2, 1), atol=1e-10)


keras = None
if torch is not None:
    from test_nn_ops import keras_or_none
    keras = keras_or_none()


@pytest.mark.skipif(keras is None, reason="keras with the torch backend is not installed")
@pytest.mark.parametrize("name,kwargs,shape", [
    ("Conv1D", {"filters": 3, "kernel_size": 3, "padding": "causal", "dilation_rate": 2},
     (2, 9, 4)),
    ("Conv1D", {"filters": 3, "kernel_size": 2, "strides": 2, "padding": "same"}, (2, 9, 4)),
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"},
     (2, 5, 6, 3)),
    ("SeparableConv2D", {"filters": 4, "kernel_size": 2}, (2, 5, 6, 3)),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"},
     (2, 4, 5, 3)),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": (4, 3), "strides": (2, 3)},
     (2, 4, 5, 3)),
    ("PReLU", {}, (2, 5, 3)), ("UpSampling2D", {"size": (2, 3)}, (2, 3, 4, 2)),
    ("Cropping2D", {"cropping": ((1, 0), (0, 2))}, (2, 3, 4, 2)),
    ("AveragePooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 3)),
    ("MaxPooling1D", {"pool_size": 2, "padding": "same"}, (2, 7, 3)),
])
def test_layers_against_keras(name, kwargs, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    theirs = getattr(keras.layers, name)(**kwargs)
    ref = keras.ops.convert_to_numpy(theirs(x))
    ours = getattr(L, name)(**kwargs)
    ours(Tensor(x))
    weights = [w * 0 + rng.standard_normal(w.shape).astype(np.float32)
               for w in theirs.get_weights()]
    if weights:
        theirs.set_weights(weights)
        ours.set_weights(weights)
        ref = keras.ops.convert_to_numpy(theirs(x))
    np.testing.assert_allclose(ours(Tensor(x)).data, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"groups": 2.7}, {"groups": 0}, {"groups": -1},
                                    {"kernel_size": (2.9, 2)}, {"strides": 1.5}])
def test_conv2d_refuses_arguments_that_are_not_positive_whole_numbers(kwargs):
    """groups=2.7 became 2, groups=0 a ZeroDivisionError, kernel_size 2.9 became 2."""
    args = {"kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        L.Conv2D(4, **args)


def test_dense_on_no_features_gives_the_activation_of_its_bias():
    """x of shape (2, 0) is a valid empty case (Keras gives act(bias)); it failed in a
    reshape(-1, 0)."""
    layer = L.Dense(3, activation="relu")
    x = Tensor(np.ones((2, 0), np.float32), requires_grad=True)
    layer(x)
    layer.bias.data[...] = [1.0, -2.0, 3.0]
    y = layer(x)
    np.testing.assert_array_equal(y.data, [[1, 0, 3], [1, 0, 3]])
    y.sum().backward()
    assert x.grad.shape == (2, 0) and layer.kernel.grad.shape == (0, 3)
