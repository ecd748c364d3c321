"""Channels-last im2col / col2im and pooling (src/_nhwc.pyx) against NumPy references,
finite differences and, where installed, torch; hostile geometry in a child process."""
import textwrap

import numpy as np
import pytest
from conftest import assert_refused_in_child

from wsekern import pool
from wsekern.conv import NhwcGeometry, col2im_nhwc, conv2d, im2col_nhwc
from wsekern.nn import Input, Sequential, layers


def im2col_reference(x, g):
    """Loops over every (pixel, tap): zeros where the tap reads the padding."""
    cols = np.zeros((g.rows, g.depth), dtype=x.dtype)
    (sh, sw), (ph, pw), (dh, dw) = g.stride, g.pad, g.dilation
    for b in range(g.B):
        for oh in range(g.OH):
            for ow in range(g.OW):
                row = (b * g.OH + oh) * g.OW + ow
                for i in range(g.kh):
                    for j in range(g.kw):
                        ih, iw = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                        if 0 <= ih < g.H and 0 <= iw < g.W:
                            t = (i * g.kw + j) * g.C
                            cols[row, t:t + g.C] = x[b, ih, iw]
    return cols


GEOMETRIES = [  # (x shape, kernel, stride, pads ((top, bottom), (left, right)), dilation)
    ((2, 7, 9, 3), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    ((1, 8, 5, 2), (2, 3), (2, 1), ((0, 1), (1, 0)), (1, 1)),
    ((3, 9, 10, 1), (3, 2), (2, 3), ((2, 0), (0, 2)), (2, 1)),
    ((2, 6, 6, 5), (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    ((0, 6, 6, 4), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),     # empty batch
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k, s, pads, d", GEOMETRIES)
def test_im2col_matches_loops(shape, k, s, pads, d, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    g = NhwcGeometry.of(shape, k, s, pads, d)
    cols = im2col_nhwc(x, g)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, im2col_reference(x, g))


@pytest.mark.parametrize("shape, k, s, pads, d", GEOMETRIES)
def test_col2im_is_the_adjoint(shape, k, s, pads, d):
    """<im2col(x), C> == <x, col2im(C)> for random x and C: col2im is im2col's transpose."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    g = NhwcGeometry.of(shape, k, s, pads, d)
    C = rng.standard_normal((g.rows, g.depth))
    back = col2im_nhwc(C, g)
    assert back.shape == x.shape
    np.testing.assert_allclose((im2col_nhwc(x, g) * C).sum(), (x * back).sum(), rtol=1e-10)


def test_im2col_gemm_is_conv2d():
    """cols @ kernel(kh*kw*C, O) equals wsekern.conv2d on the NCHW transpose."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 9, 8, 3))
    w = rng.standard_normal((3, 2, 3, 4))              # (kh, kw, C, O)
    g = NhwcGeometry.of(x.shape, (3, 2), (2, 1), ((1, 1), (0, 0)), (1, 2))
    y = (im2col_nhwc(x, g) @ w.reshape(-1, 4)).reshape(2, g.OH, g.OW, 4)
    ref = conv2d(x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), stride=(2, 1),
                 padding=(1, 0), dilation=(1, 2))
    np.testing.assert_allclose(y, ref.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)


def test_nan_flows_through_im2col():
    x = np.ones((1, 3, 3, 2), dtype=np.float32)
    x[0, 1, 1, 0] = np.nan
    g = NhwcGeometry.of(x.shape, 3, 1, ((1, 1), (1, 1)))
    cols = im2col_nhwc(x, g)
    assert np.isnan(cols).sum() == 9                  # every window reads the centre
    assert np.isnan(col2im_nhwc(cols, g)[0, 1, 1, 0])


def test_geometry_and_shape_errors():
    with pytest.raises(ValueError, match="does not fit"):
        NhwcGeometry.of((1, 2, 2, 1), 3, 1, ((0, 0), (0, 0)))
    with pytest.raises(ValueError, match="4-D"):
        NhwcGeometry.of((2, 2, 1), 1)
    g = NhwcGeometry.of((1, 4, 4, 2), 3)
    with pytest.raises(ValueError, match="geometry expects"):
        im2col_nhwc(np.ones((1, 4, 4, 3)), g)
    with pytest.raises(ValueError, match="geometry expects"):
        col2im_nhwc(np.ones((3, 18)), g)
    with pytest.raises(TypeError, match="float32 or float64"):
        im2col_nhwc(np.ones((1, 4, 4, 2), dtype=np.int64), g)
    with pytest.raises(ValueError, match="shape"):
        pool.max_pool_nhwc(np.ones((2, 4, 4, 2)), g)
    out, arg = pool.max_pool_nhwc(np.ones((1, 4, 4, 2)), g)
    with pytest.raises(ValueError, match="outside"):
        pool.max_pool_nhwc_backward(np.ones_like(out), arg + 100, g)


# -- pooling, channels-last -------------------------------------------------------------
def pool_reference_nhwc(x, g, op, count_pad):
    """Loops over each window's pixels inside the image; the first maximum takes the
    gradient (NaN first), as torch."""
    out = np.empty((g.B, g.OH, g.OW, g.C))
    where = np.full(out.shape, -1)
    (sh, sw), (ph, pw) = g.stride, g.pad
    for b, oh, ow, c in np.ndindex(out.shape):
        pix = [(ih, iw) for ih in range(oh * sh - ph, oh * sh - ph + g.kh)
               for iw in range(ow * sw - pw, ow * sw - pw + g.kw)
               if 0 <= ih < g.H and 0 <= iw < g.W]
        vals = [x[b, ih, iw, c] for ih, iw in pix]
        if op == "max":
            nan = [i for i, v in enumerate(vals) if np.isnan(v)]
            best = nan[0] if nan else int(np.argmax(vals))
            out[b, oh, ow, c] = vals[best]
            where[b, oh, ow, c] = pix[best][0] * g.W + pix[best][1]
        else:
            out[b, oh, ow, c] = sum(vals) / (g.kh * g.kw if count_pad else len(vals))
    return out, where


# (2, 9, 7, 35) and (1, 8, 7, 3) (stride above the window): unpadded windows apart, the
# 2x2 loop and the backward that writes every pixel (the rows and columns no window
# covers get zeros, not what np.empty held)
POOLS = [((2, 9, 7, 35), (2, 2), (2, 2), ((0, 0), (0, 0))),
         ((1, 8, 7, 3), (2, 2), (3, 3), ((0, 0), (0, 0))),
         ((2, 7, 7, 3), (2, 2), (2, 2), ((0, 1), (0, 1))), ((1, 5, 6, 2), (3, 3), (1, 2),
                                                           ((1, 1), (1, 0))),
         ((2, 4, 4, 1), (2, 2), (1, 1), ((0, 0), (0, 0))), ((0, 4, 4, 2), (2, 2), (2, 2),
                                                           ((0, 0), (0, 0)))]


@pytest.mark.parametrize("count_pad", [True, False])
@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("shape, k, s, pads", POOLS)
def test_pool_nhwc_forward_and_backward(shape, k, s, pads, op, count_pad):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    if x.size:
        x.flat[::7] = np.nan if op == "max" else x.flat[::7]
    g = NhwcGeometry.of(shape, k, s, pads)
    ref, where = pool_reference_nhwc(x, g, op, count_pad)
    R = rng.standard_normal(ref.shape)
    if op == "max":
        y, arg = pool.max_pool_nhwc(x, g)
        np.testing.assert_array_equal(arg, where)
        gx = pool.max_pool_nhwc_backward(R, arg, g)
        expect = np.zeros(x.shape)
        for b, oh, ow, c in np.ndindex(R.shape):
            ih, iw = divmod(where[b, oh, ow, c], g.W)
            expect[b, ih, iw, c] += R[b, oh, ow, c]
        np.testing.assert_allclose(gx, expect, rtol=1e-12)
    else:
        y = pool.avg_pool_nhwc(x, g, count_pad)
        gx = pool.avg_pool_nhwc_backward(R, g, count_pad)
        # adjoint check: <avg(x), R> == <x, avg'(R)>
        np.testing.assert_allclose((y * R).sum(), (x * gx).sum(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, ref, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_ties_infinities_and_nan_as_the_reference(dtype):
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, (3, 11, 13, 19)).astype(dtype)     # many ties
    x.flat[::5] = -np.inf
    x.flat[::11] = np.inf
    x.flat[::13] = np.nan
    g = NhwcGeometry.of(x.shape, 2, 2, ((0, 0), (0, 0)))
    ref, where = pool_reference_nhwc(x, g, "max", False)
    y, arg = pool.max_pool_nhwc(x, g)
    assert y.dtype == dtype
    np.testing.assert_array_equal(arg, where)
    np.testing.assert_array_equal(y, ref.astype(dtype))
    R = rng.standard_normal(y.shape).astype(dtype)
    gx = pool.max_pool_nhwc_backward(R, arg, g)
    expect = np.zeros(x.shape, dtype)
    for b, oh, ow, c in np.ndindex(R.shape):
        ih, iw = divmod(where[b, oh, ow, c], g.W)
        expect[b, ih, iw, c] += R[b, oh, ow, c]
    np.testing.assert_array_equal(gx, expect)


def test_max_pool_all_minus_inf_window_keeps_first_pixel():
    x = np.full((1, 2, 2, 1), -np.inf)
    g = NhwcGeometry.of(x.shape, 2, 2, ((0, 0), (0, 0)))
    y, arg = pool.max_pool_nhwc(x, g)
    assert y[0, 0, 0, 0] == -np.inf and arg[0, 0, 0, 0] == 0


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pool_layers_match_torch_when_installed(mode, padding):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).standard_normal((2, 7, 7, 3)).astype(np.float32)
    layer = (layers.MaxPooling2D if mode == "max" else layers.AveragePooling2D)(
        2, padding=padding)
    from wsekern.nn.tensor import Tensor
    xt_ours = Tensor(x, requires_grad=True)
    y = layer(xt_ours)
    R = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
    (y * Tensor(R)).sum().backward()
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    if padding == "same":                   # 7 -> 4: one pixel of padding after, as Keras
        xp = torch.nn.functional.pad(xt, (0, 1, 0, 1), value=-np.inf if mode == "max" else 0)
    else:
        xp = xt
    if mode == "max":
        yt = torch.nn.functional.max_pool2d(xp, 2)
    else:                                   # Keras averages the pixels inside only
        ones = torch.nn.functional.pad(torch.ones(1, 1, 7, 7), (0, 1, 0, 1)) \
            if padding == "same" else torch.ones(1, 1, 7, 7)
        yt = torch.nn.functional.avg_pool2d(xp, 2) / torch.nn.functional.avg_pool2d(ones, 2)
    yt.backward(torch.from_numpy(R.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(y.data, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-6)
    np.testing.assert_allclose(xt_ours.grad, xt.grad.numpy().transpose(0, 2, 3, 1),
                               rtol=1e-6, atol=1e-7)


def test_conv_layer_dense_path_matches_torch_when_installed():
    """Conv2D (dense: the NHWC im2col path), 'same' padding with stride 2 and dilation,
    forward and both gradients against torch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 9, 8, 4))
    layer = layers.Conv2D(5, (3, 2), strides=(2, 1), padding="same", use_bias=False,
                          dtype="float64")
    from wsekern.nn.tensor import Tensor
    xt_ours = Tensor(x, requires_grad=True)
    y = layer(xt_ours)
    R = rng.standard_normal(y.shape)
    (y * Tensor(R)).sum().backward()
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    wt = torch.from_numpy(layer.kernel.data.transpose(3, 2, 0, 1).copy()).requires_grad_()
    # TF 'same' for 9 rows, stride 2, k 3: total pad 2 -> (1, 1); 8 cols, k 2: (0, 1)
    yt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (0, 1, 1, 1)), wt, stride=(2, 1))
    yt.backward(torch.from_numpy(R.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(y.data, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10)
    np.testing.assert_allclose(xt_ours.grad, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10)
    np.testing.assert_allclose(layer.kernel.grad, wt.grad.numpy().transpose(2, 3, 1, 0),
                               rtol=1e-10)


def test_conv_layer_dense_gradients_by_finite_differences():
    rng = np.random.default_rng(7)
    x0 = rng.standard_normal((2, 5, 6, 2))
    layer = layers.Conv2D(3, 3, strides=2, padding="same", dilation_rate=1, dtype="float64")
    from wsekern.nn.tensor import Tensor
    layer(Tensor(x0))
    R = rng.standard_normal(layer(Tensor(x0)).shape)

    def loss(x):
        return float((layer(Tensor(x)).data * R).sum())
    xt = Tensor(x0.copy(), requires_grad=True)
    (layer(xt) * Tensor(R)).sum().backward()
    num = np.zeros_like(x0)
    for idx in np.ndindex(x0.shape):
        up, down = x0.copy(), x0.copy()
        up[idx] += 1e-6
        down[idx] -= 1e-6
        num[idx] = (loss(up) - loss(down)) / 2e-6
    np.testing.assert_allclose(xt.grad, num, rtol=1e-6, atol=1e-8)


def test_convnet_trains_on_empty_free_batches():
    """A keras.io-style convnet through the new paths: a step runs, the loss falls."""
    rng = np.random.default_rng(8)
    x = rng.random((64, 12, 12, 1)).astype(np.float32)
    y = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype(np.int64)
    model = Sequential([Input(shape=(12, 12, 1)), layers.Conv2D(8, 3, activation="relu"),
                        layers.MaxPooling2D(2), layers.Conv2D(8, 3, activation="relu",
                                                              padding="same"),
                        layers.AveragePooling2D(2, padding="same"), layers.Flatten(),
                        layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    hist = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert model.predict(x[:0], verbose=0).shape == (0, 2)


def test_hostile_geometry_in_a_child_process():
    """Absurd and mismatched sizes give exceptions, never a crash (run in a child)."""
    code = textwrap.dedent("""
        import numpy as np
        from wsekern import _nhwc, pool
        from wsekern.conv import NhwcGeometry, col2im_nhwc, im2col_nhwc
        cases = [
            lambda: NhwcGeometry.of((1, 2**16, 2**16, 1), 1),
            lambda: im2col_nhwc(np.ones((1, 4, 4, 1)), NhwcGeometry.of((9, 4, 4, 1), 3)),
            lambda: im2col_nhwc(np.ones((1, 300, 300, 64)),
                                NhwcGeometry.of((1, 300, 300, 64), 9999, 1,
                                                ((9000, 9000), (9000, 9000)))),
            lambda: col2im_nhwc(np.ones((1, 1)), NhwcGeometry.of((1, 4, 4, 1), 3)),
            lambda: pool.max_pool_nhwc(np.ones((1, 4, 4, 1)), NhwcGeometry.of((2, 4, 4, 1), 2)),
            lambda: pool.max_pool_nhwc_backward(np.ones((1, 2, 2, 1)),
                                                np.full((1, 2, 2, 1), 10**6, np.int32),
                                                NhwcGeometry.of((1, 4, 4, 1), 2, 2)),
            lambda: pool.avg_pool_nhwc_backward(np.ones((1, 3, 3, 1)),
                                                NhwcGeometry.of((1, 4, 4, 1), 2, 2), True),
            lambda: pool.max_pool2d(np.ones((1, 1, 4, 4)), 2, -1),
            # the kernel itself: arg or gx not matching grad, both backward modes
            lambda: _nhwc.max_pool_backward(np.ones((1, 2, 2, 1)),
                                            np.zeros((1, 1, 1, 1), np.int32),
                                            np.empty((1, 4, 4, 1)), 1, 2, 2, 2, 2),
            lambda: _nhwc.max_pool_backward(np.ones((4, 2, 2, 8)),
                                            np.zeros((4, 2, 2, 8), np.int32),
                                            np.zeros((1, 4, 4, 1)), 1),
            lambda: _nhwc.max_pool_backward(np.ones((4, 2, 2, 8)),
                                            np.zeros((4, 2, 2, 8), np.int32),
                                            np.empty((1, 4, 4, 8)), 1, 2, 2, 2, 2),
            # the scatter mode called directly: an arg beyond the image (it wrote there)
            lambda: _nhwc.max_pool_backward(np.ones((1, 2, 2, 4)),
                                            np.full((1, 2, 2, 4), 10**8, np.int32),
                                            np.zeros((1, 4, 4, 4)), 1),
        ]
    """)
    assert_refused_in_child(code, 12, (ValueError, TypeError, MemoryError), ())


@pytest.mark.parametrize("skip_above", [0.0, 1.0])
def test_pruned_conv_both_paths_agree_and_keep_zeros(skip_above, monkeypatch):
    """A pruned Conv2D through the zero-skipping path (NCHW) and through the masked GEMM
    (NHWC) gives the same output and gradients, and the pruned weights get none."""
    from wsekern.nn.layers import conv as conv_layers
    from wsekern.nn.tensor import Tensor
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 6, 7, 4))
    layer = layers.Conv2D(6, 3, padding="same", activation="relu", sparsity=0.5,
                          dtype="float64")
    layer(Tensor(x))
    R = rng.standard_normal((2, 6, 7, 6))
    grads = {}
    for name, thr in (("ref", 1.0 - skip_above), ("test", skip_above)):
        monkeypatch.setattr(conv_layers, "SKIP_ZEROS_ABOVE", thr)
        layer.kernel.grad = layer.bias.grad = None
        xt = Tensor(x, requires_grad=True)
        y = layer(xt)
        (y * Tensor(R)).sum().backward()
        grads[name] = (y.data, xt.grad, layer.kernel.grad, layer.bias.grad)
    for a, b in zip(grads["ref"], grads["test"]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert not grads["test"][2][~layer.weight_mask].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu, with_bias", [(True, True), (True, False), (False, True)])
def test_conv_epilogues_match_numpy(relu, with_bias, dtype):
    """bias_relu_nhwc (in place) and relu_grad_bias_nhwc against NumPy, with NaN and
    infinities: NaN stays NaN through the ReLU and its derivative, -inf becomes 0."""
    from wsekern.conv import bias_relu_nhwc, relu_grad_bias_nhwc
    rng = np.random.default_rng(4)
    y = rng.standard_normal((50, 7)).astype(dtype)
    y[3, 2], y[4, 5], y[6, 0] = np.nan, -np.inf, np.inf
    bias = rng.standard_normal(7).astype(dtype) if with_bias else None
    ref = y + (bias if with_bias else 0)
    ref = np.maximum(ref, 0) if relu else ref
    out = bias_relu_nhwc(y, bias, relu)
    assert out is y and out.dtype == dtype
    np.testing.assert_array_equal(out, ref)
    grad = rng.standard_normal(y.shape).astype(dtype)
    grad[1, 1] = np.nan
    masked, db = relu_grad_bias_nhwc(grad, out, relu)
    want = np.where(out > 0, grad, 0) if relu else grad
    np.testing.assert_array_equal(masked, want)
    assert masked.dtype == db.dtype == dtype
    np.testing.assert_allclose(db, want.astype(np.float64).sum(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="bias must have shape"):
        bias_relu_nhwc(y, np.ones(3, dtype))
    with pytest.raises(ValueError, match="one 2-D shape"):
        relu_grad_bias_nhwc(grad, out[:5], relu)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_derivative_of_a_nan_gradient_where_the_relu_was_off_is_zero(dtype):
    """The fused ReLU's derivative was a product, grad * (y > 0): a NaN (or inf) gradient
    where y <= 0 gave NaN; torch's threshold_backward and Keras give 0 there. Where the
    ReLU was on, NaN passes through."""
    from wsekern.conv import relu_grad_bias_nhwc
    y = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]], dtype)
    grad = np.array([[np.nan, np.nan, np.inf], [1.0, -np.inf, 2.0]], dtype)
    masked, db = relu_grad_bias_nhwc(grad, y, True)
    np.testing.assert_array_equal(masked, np.array([[0, np.nan, 0], [1, 0, 2]], dtype))
    np.testing.assert_array_equal(db, np.array([1, np.nan, 2], dtype))
    torch = pytest.importorskip("torch")
    yt = torch.tensor(np.array([[-1.0, 2.0, -1.0], [1.0, -1.0, 3.0]], dtype),
                      requires_grad=True)
    torch.relu(yt).backward(torch.from_numpy(grad))
    np.testing.assert_array_equal(masked, yt.grad.numpy())
