"""The few-input-channel channels-last convolution (wsekern.conv.conv2d_small_nhwc, no
im2col): forward and kernel gradient against a NumPy sum over taps (strides, dilation,
asymmetric padding, filter counts off the vector width, NaN and inf), the Conv2D layer
against its im2col + GEMM path on a pruned kernel, and hostile operands in a child."""
import textwrap

import numpy as np
import pytest
from conftest import nhwc_windows, run_in_child

from wsekern import conv as conv_kernels
from wsekern.nn import Input, Sequential, layers
from wsekern.nn.layers import conv as conv_layer
from wsekern.nn.tensor import Tensor

CASES = [  # x shape, kernel (kh, kw, O), stride, pads ((t, b), (l, r)), dilation
    ((2, 9, 8, 1), (3, 3, 32), 1, ((0, 0), (0, 0)), 1),
    ((3, 7, 10, 1), (3, 3, 37), 1, ((1, 1), (1, 1)), 1),
    ((2, 8, 9, 3), (3, 2, 5), (2, 1), ((0, 1), (1, 0)), 1),
    ((1, 11, 11, 2), (3, 3, 16), 1, ((2, 2), (2, 2)), 2),
    ((2, 6, 6, 1), (5, 5, 8), 2, ((2, 2), (2, 2)), 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kdims, stride, pads, dilation", CASES)
def test_forward_and_kernel_gradient_match_numpy(shape, kdims, stride, pads, dilation, dtype):
    rng = np.random.default_rng(0)
    kh, kw, O = kdims
    x = rng.standard_normal(shape).astype(dtype)
    k = rng.standard_normal((kh, kw, shape[3], O)).astype(dtype)
    k[rng.random(k.shape) < 0.6] = 0                     # pruned zeros are multiplied too
    bias = rng.standard_normal(O).astype(dtype)
    g = conv_kernels.NhwcGeometry.of(shape, (kh, kw), stride, pads, dilation)
    win = nhwc_windows(x, g)
    ref = np.einsum("bhwijc,ijco->bhwo", win, k.astype(np.float64)) + bias
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    y = conv_kernels.conv2d_small_nhwc(x, k, g, bias, relu=False)
    assert y.dtype == dtype and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, **tol)
    np.testing.assert_allclose(conv_kernels.conv2d_small_nhwc(x, k, g, bias, relu=True),
                               np.maximum(ref, 0), **tol)
    np.testing.assert_allclose(conv_kernels.conv2d_small_nhwc(x, k, g), ref - bias, **tol)
    gy = rng.standard_normal(ref.shape).astype(dtype)
    gk = conv_kernels.conv2d_small_grad_weight_nhwc(x, gy, g)
    assert gk.dtype == dtype and gk.shape == k.shape
    np.testing.assert_allclose(gk, np.einsum("bhwijc,bhwo->ijco", win, gy), **tol)


def test_nonfinite_x_gives_the_dense_answer():
    """Every product is done: inf times a zero weight is NaN, as in the dense GEMM."""
    x = np.ones((1, 4, 4, 1), np.float32)
    x[0, 1, 1, 0] = np.inf
    k = np.zeros((3, 3, 1, 4), np.float32)
    k[0, 0, 0] = 1.0
    g = conv_kernels.NhwcGeometry.of(x.shape, (3, 3))
    y = conv_kernels.conv2d_small_nhwc(x, k, g, relu=True)
    cols = conv_kernels.im2col_nhwc(x, g)
    with np.errstate(invalid="ignore"):
        ref = np.maximum(cols @ k.reshape(9, 4), 0).reshape(y.shape)
    np.testing.assert_array_equal(y, ref)
    assert np.isnan(y).any()


def _layer_pair(padding, sparsity, dtype="float64", channels=1):
    model = Sequential([Input(shape=(9, 8, channels)),
                        layers.Conv2D(6, 3, padding=padding, activation="relu",
                                      sparsity=sparsity, dtype=dtype)])
    return model.layers[0]


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("channels", [1, 3, 6])
def test_layer_equals_the_gemm_path_on_a_pruned_kernel(padding, channels, monkeypatch):
    """The Conv2D step through the few-channel kernel against im2col + GEMM (forced by
    SMALL_CHANNELS = 0): output, kernel gradient (pruned positions zero), bias and input
    gradients."""
    layer = _layer_pair(padding, 0.7, channels=channels)
    rng = np.random.default_rng(1)
    xv = rng.standard_normal((3, 9, 8, channels))
    R = rng.standard_normal(layer.compute_output_shape((3, 9, 8, channels)))
    # a pruned kernel may go to the channel planes first (by this CPU's cost table): off
    monkeypatch.setattr(conv_layer, "_conv2d_planes", lambda *args: None)
    calls = _count_small_calls(monkeypatch)
    results = []
    for small in (max(conv_layer.SMALL_CHANNELS, channels), 0):
        monkeypatch.setattr(conv_layer, "SMALL_CHANNELS", small)
        x = Tensor(xv, requires_grad=True)
        layer.kernel.grad = layer.bias.grad = None
        y = layer(x, training=True)
        (y * Tensor(R)).sum().backward()
        results.append((y.data, layer.kernel.grad.copy(), layer.bias.grad.copy(),
                        x.grad.copy()))
    assert calls == ["forward", "grad_weight"]        # the first run took the small kernel
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert not results[0][1][~layer.weight_mask].any()


def _count_small_calls(monkeypatch):
    calls = []
    for name, what in (("conv2d_small_nhwc", "forward"),
                       ("conv2d_small_grad_weight_nhwc", "grad_weight")):
        real = getattr(conv_kernels, name)

        def spy(*args, _real=real, _what=what, **kwargs):
            calls.append(_what)
            return _real(*args, **kwargs)
        monkeypatch.setattr(conv_kernels, name, spy)
    return calls


def _layer_grads(layer, xv, R, small, monkeypatch):
    monkeypatch.setattr(conv_layer, "SMALL_CHANNELS", small)
    x = Tensor(xv, requires_grad=True)
    layer.kernel.grad = layer.bias.grad = None
    y = layer(x, training=True)
    (y * Tensor(R)).sum().backward()
    return y.data, layer.kernel.grad.copy(), layer.bias.grad.copy(), x.grad.copy()


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_a_nonfinite_weight_or_gradient_reaches_the_padded_windows(padding, monkeypatch):
    """The small kernel skips taps that read the padding: with a NaN weight, or an inf in
    the output gradient, the windows that read padding must still give IEEE's NaN
    (0 * NaN), as the GEMMs and torch do. Same NaN positions and values on both paths."""
    layer = _layer_pair(padding, 0.0)
    k, b = layer.get_weights()
    k[0, 0, 0, 1] = np.nan
    layer.set_weights([k, b])
    rng = np.random.default_rng(2)
    xv = rng.standard_normal((2, 9, 8, 1))
    R = rng.standard_normal(layer.compute_output_shape(xv.shape))
    with np.errstate(invalid="ignore"):
        small = _layer_grads(layer, xv, R, 3, monkeypatch)
        gemm = _layer_grads(layer, xv, R, 0, monkeypatch)
    for a, c in zip(small, gemm):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)    # NaN where NaN
    assert np.isnan(small[0]).any()

    k[0, 0, 0, 1] = 0.5                                             # finite kernel again
    layer.set_weights([k, b])
    R[0, 0, 0, 2] = np.inf                                          # a corner's gradient
    with np.errstate(invalid="ignore"):
        small = _layer_grads(layer, xv, R, 3, monkeypatch)
        gemm = _layer_grads(layer, xv, R, 0, monkeypatch)
    for a, c in zip(small, gemm):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)


def test_no_input_channels_with_relu_gives_relu_of_the_bias():
    x = np.ones((2, 5, 5, 0))
    k = np.ones((3, 3, 0, 4))
    bias = np.array([-1.0, 0.0, 2.0, -3.0])
    g = conv_kernels.NhwcGeometry.of(x.shape, (3, 3))
    for relu, want in ((True, np.maximum(bias, 0)), (False, bias)):
        y = conv_kernels.conv2d_small_nhwc(x, k, g, bias, relu=relu)
        assert y.shape == (2, 3, 3, 4)
        np.testing.assert_array_equal(y, np.broadcast_to(want, y.shape))


def test_hostile_operands_in_a_child_process():
    """small_forward and small_grad_weight write without bounds checks: each refuses a
    kernel, output, bias or geometry that does not fit x, naming what it received."""
    code = textwrap.dedent("""
        import numpy as np
        from wsekern import _conv
        x = np.ones((2, 5, 5, 1))
        w = np.ones((3, 3, 1, 4))
        y = np.empty((2, 3, 3, 4))
        b = np.empty(0)
        gw = np.zeros((3, 3, 1, 4))
        cases = [
            lambda: _conv.small_forward(x, np.ones((3, 3, 2, 4)), b, False, y, 1, 1, 0, 0, 1, 1),
            lambda: _conv.small_forward(x, w, b, False, np.empty((3, 3, 3, 4)), 1, 1, 0, 0, 1, 1),
            lambda: _conv.small_forward(x, w, b, False, np.empty((2, 3, 3, 9)), 1, 1, 0, 0, 1, 1),
            lambda: _conv.small_forward(x, w, np.ones(3), False, y, 1, 1, 0, 0, 1, 1),
            lambda: _conv.small_forward(x, w, b, False, y, 0, 1, 0, 0, 1, 1),
            lambda: _conv.small_forward(x, w, b, False, y, 1, 1, -4, 0, 1, 1),
            lambda: _conv.small_forward(x, w, b, False, y, 1, 1, 0, 0, 1, -1),
            lambda: _conv.small_grad_weight(x, y[:1], gw, 1, 1, 0, 0, 1, 1),
            lambda: _conv.small_grad_weight(x, y, np.zeros((3, 3, 2, 4)), 1, 1, 0, 0, 1, 1),
            lambda: _conv.small_grad_weight(x, y, np.zeros((3, 3, 1, 5)), 1, 1, 0, 0, 1, 1),
            lambda: _conv.small_grad_weight(x, y, gw, 1, 0, 0, 0, 1, 1),
        ]
        for i, case in enumerate(cases):
            try:
                case()
            except ValueError as e:
                assert "received" in str(e), (i, str(e))
            else:
                raise AssertionError(f"case {i} was accepted")
        # a huge padding or output reads nothing outside x: only bias (0) is written
        big = np.full((2, 9, 9, 4), 7.0)
        _conv.small_forward(x, w, b, False, big, 1, 1, 50, 50, 1, 1)
        assert not big.any()
        print("OK", len(cases))
    """)
    proc = run_in_child(code)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK 11", proc.stderr[-2000:]
