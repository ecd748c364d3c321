"""Conv2D (channels-last, optionally sparse), pooling and global average pooling."""
import operator

import numpy as np

from ... import conv as conv_kernels
from ... import conv_planes
from ... import pool as pool_kernels
from ...simd_path import SIMD_PATH
from .. import activations, columns
from ..placed import placement_of
from ..tensor import Tensor
from .base import Layer
from .core import _init_name, check_sparsity, magnitude_mask, warn_outside_pattern


def _pair(v, name):
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    try:                # whole numbers only: 2.9 must not become 2
        v = tuple(operator.index(a) for a in v)
    except TypeError:
        raise ValueError(f"{name} must be a positive int or a pair of them; received "
                         f"{v!r}") from None
    if len(v) != 2 or min(v) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of them; received {v!r}")
    return v


def _padding_arg(padding):
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same'; received {padding!r}")
    return padding


def same_pads(size, k, stride, dilation):
    """TensorFlow's 'same' padding: (before, after) so that out = ceil(size / stride)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _out_len(size, k, s, d, pads):
    """Output length of one axis: window k, stride s, dilation d, padding (before, after)."""
    n = (size + sum(pads) - ((k - 1) * d + 1)) // s + 1
    if n <= 0:
        raise ValueError(f"kernel of size {k} (dilation {d}) does not fit an input of length "
                         f"{size}")
    return n


def _out_sizes(layer, sizes, window, dilation):
    """(OH, OW) of a windowed layer (its strides and padding) over (H, W); None where the
    size is None, as in Keras (a fully convolutional model takes any image size)."""
    out = []
    for axis, size in enumerate(sizes):
        if size is None:
            out.append(None)
            continue
        pads = ((0, 0) if layer.padding == "valid" else
                same_pads(size, window[axis], layer.strides[axis], dilation[axis]))
        try:
            out.append(_out_len(size, window[axis], layer.strides[axis], dilation[axis], pads))
        except ValueError:
            raise ValueError(f"layer {layer.name!r}: window {tuple(window)} does not fit an "
                             f"input of {sizes[0]}x{sizes[1]} with padding={layer.padding!r}"
                             ) from None
    return out


def _pad_nchw(x, pads, value=0.0):
    (t, b), (l, r) = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


# Zero-skipping conv (wsekern.conv2d's direct path, NCHW) for a pruned kernel the channel
# planes do not take (strided or grouped) only above this fraction of zeros: below it one
# dense GEMM on the masked kernel trains faster. Measured (keras.io convnet, 1,000 images,
# Zen 3, 1 thread): at 90% zeros 1.26 s an epoch through the GEMM against 1.82 s through
# the direct path; at 98%, 1.47 s against 1.23 s.
SKIP_ZEROS_ABOVE = 0.95
# Input channels up to which an ungrouped Conv2D runs the direct few-channel kernel
# (wsekern.conv.conv2d_small_nhwc, register tiles) instead of im2col + GEMM, per SIMD path
# (OpenBLAS's GEMM is vectorised whatever the path). Measured on Zen 4, 1 thread, 3x3,
# bias + ReLU, forward + kernel gradient, 128 images: GEMM time / the kernel's at 1, 3, 8
# channels (32 filters, 28x28), 16 and 32 (64 filters, 13x13): avx512 4.6, 2.7, 2.0, 1.2,
# 0.5; avx2 3.4, 2.3, 1.8, 1.1, 0.4; baseline 1.6, 0.93, 0.69, 0.48.
SMALL_CHANNELS = {"avx512": 8, "avx2": 8}.get(SIMD_PATH, 1)


def conv2d_nhwc(x, kernel, mask, strides, pads, dilation, groups, bias=None, relu=False,
                cache=None):
    """Channels-last convolution (+ ``bias``, then ReLU when ``relu``) with its gradients.

    A pruned (``mask``), ungrouped, stride-1 kernel goes through the channel planes
    (wsekern.conv_planes: only the kept weights multiplied, in every product) when this
    CPU's cost table says they beat the GEMMs and the batch is finite; ``cache`` (a dict
    the layer keeps) holds their index arrays between steps. Ungrouped with at most
    SMALL_CHANNELS input channels: the direct few-channel kernel, no im2col. Dense and
    ungrouped: im2col
    in NHWC times the Keras kernel seen as (kh*kw*C, O), one GEMM, no transpose; the
    columns are kept for the kernel's gradient, and the bias and the ReLU are applied in
    place (no extra arrays, no extra graph nodes). Otherwise through wsekern.conv2d (NCHW
    inside), which skips a pruned kernel's zeros."""
    if mask is not None and groups == 1 and tuple(strides) == (1, 1):
        y = _conv2d_planes(x, kernel, mask, pads, dilation, bias, relu,
                           {} if cache is None else cache)
        if y is not None:
            return y
    if groups == 1 and kernel.shape[2] <= SMALL_CHANNELS:
        y = _conv2d_small(x, kernel, mask, strides, pads, dilation, bias, relu)
        if y is not None:
            return y
    sparse = mask is not None and 1 - np.count_nonzero(mask) / mask.size > SKIP_ZEROS_ABOVE
    if sparse or groups != 1:
        y = _conv2d_nchw(x, kernel, mask, strides, pads, dilation, groups)
        y = y + bias if bias is not None else y
        return activations.relu(y) if relu else y
    kh, kw, _, filters = kernel.shape
    g = conv_kernels.NhwcGeometry.of(x.shape, (kh, kw), strides, pads, dilation)
    dtype = np.result_type(x.dtype, kernel.dtype)
    cols = conv_kernels.im2col_nhwc(x.data.astype(dtype, copy=False), g)   # (B*OH*OW, K)
    k2 = kernel.data.reshape(-1, filters).astype(dtype, copy=False)         # (K, O)
    y = cols @ k2                                                           # (B*OH*OW, O)
    conv_kernels.bias_relu_nhwc(y, None if bias is None else bias.data, relu)   # one pass
    parents = (x, kernel) if bias is None else (x, kernel, bias)

    def backward(grad):
        _gemm_backward(grad, cols, k2, g, x, kernel, mask, bias, y if relu else None)
    return Tensor(y.reshape(g.B, g.OH, g.OW, filters), parents=parents, backward=backward)


def _padded(g):
    """Whether some window of ``g`` reads the zero padding (before or after)."""
    (sh, sw), (dh, dw) = g.stride, g.dilation
    return (g.pad != (0, 0) or (g.OH - 1) * sh + (g.kh - 1) * dh >= g.H
            or (g.OW - 1) * sw + (g.kw - 1) * dw >= g.W)


def _conv2d_small(x, kernel, mask, strides, pads, dilation, bias, relu):
    """Few input channels: the direct channels-last kernel, no im2col (forward and kernel
    gradient); the input gradient, when asked, through the GEMM and col2im. The kernel
    skips the taps that read the padding, so where a window reads it and a weight (or, in
    the backward, the output gradient) is NaN or inf, the GEMMs run instead: they give
    IEEE's 0 * inf = NaN there, as the dense reference does. None: take the GEMM path."""
    kh, kw, _, filters = kernel.shape
    g = conv_kernels.NhwcGeometry.of(x.shape, (kh, kw), strides, pads, dilation)
    dtype = np.result_type(x.dtype, kernel.dtype)
    k2 = kernel.data.reshape(-1, filters).astype(dtype, copy=False)         # (K, O)
    padded = _padded(g)
    if padded and not _finite(k2):
        return None
    xd = np.ascontiguousarray(x.data, dtype=dtype)
    y = conv_kernels.conv2d_small_nhwc(xd, k2.reshape(kernel.shape), g,
                                       None if bias is None else bias.data, relu)
    parents = (x, kernel) if bias is None else (x, kernel, bias)

    def backward(grad):
        _gemm_backward(grad, None, k2, g, x, kernel, mask, bias,
                       y.reshape(-1, filters) if relu else None, xd, padded)
    return Tensor(y, parents=parents, backward=backward)


def _gemm_backward(grad, cols, k2, g, x, kernel, mask, bias, relu_out, xd=None,
                   padded=False):
    """The im2col + GEMM gradients; ``relu_out``: the ReLU's output when one was fused.
    ``cols`` None: the kernel gradient from ``xd`` (x in the compute dtype) by the direct
    few-channel kernel instead, unless the windows read padding (``padded``) and the
    gradient is not finite (see _conv2d_small)."""
    filters = k2.shape[1]
    g2 = np.ascontiguousarray(grad, dtype=k2.dtype).reshape(-1, filters)    # (B*OH*OW, O)
    if relu_out is not None or (bias is not None and bias.requires_grad):  # one pass
        g2, db = conv_kernels.relu_grad_bias_nhwc(
            g2, g2 if relu_out is None else relu_out.reshape(-1, filters), relu_out is not None)
    if kernel.requires_grad and cols is None and padded and not _finite(g2):
        cols = conv_kernels.im2col_nhwc(xd, g)
    if kernel.requires_grad and cols is None:
        gk = conv_kernels.conv2d_small_grad_weight_nhwc(
            xd, g2.reshape(g.B, g.OH, g.OW, filters), g).astype(kernel.dtype, copy=False)
        kernel.accumulate(gk if mask is None else gk * mask)        # pruned weights stay 0
    elif kernel.requires_grad:        # (O, K) then transposed: the faster GEMM orientation
        gk = (g2.T @ cols).T.reshape(kernel.shape).astype(kernel.dtype)
        kernel.accumulate(gk if mask is None else gk * mask)        # pruned weights stay 0
    if bias is not None and bias.requires_grad:
        bias.accumulate(db.astype(bias.dtype, copy=False))
    if x.requires_grad:
        x.accumulate(conv_kernels.col2im_nhwc(g2 @ k2.T, g).astype(x.dtype, copy=False))


def _finite(a):
    """Whether every element of ``a`` is finite, from one sum (an overflow to inf only
    sends a finite batch to the dense path, which is exact too)."""
    return bool(np.isfinite(np.add.reduce(a, axis=None)))


def _conv2d_planes(x, kernel, mask, pads, dilation, bias, relu, cache):
    """The pruned kernel on channel planes, or None when the GEMMs are cheaper here or
    ``x`` is not finite (a skipped zero weight would hide 0 * inf = NaN)."""
    dtype = np.result_type(x.dtype, kernel.dtype)
    g = conv_planes.PlaneGeometry.of(x.shape, kernel.shape, pads, dilation)
    if not conv_planes.planes_pay(x.shape, g, np.count_nonzero(mask), x.requires_grad):
        return None
    pattern = conv_planes.PlanePattern.cached(cache, mask, g)
    xd = np.ascontiguousarray(x.data, dtype=dtype)
    k = kernel.data.astype(dtype, copy=False).reshape(-1)
    # a non-finite kept weight would also meet the zero padding of the gradient's planes
    if not (_finite(xd) and _finite(k[pattern.flat_o])):
        return None
    X = conv_planes.to_planes(xd, g)
    y = conv_planes.forward(X, k[pattern.flat_o], pattern,
                            None if bias is None else bias.data, relu)
    parents = (x, kernel) if bias is None else (x, kernel, bias)

    def backward(grad):
        grad = np.ascontiguousarray(grad, dtype=dtype)
        if not _finite(grad):         # the masked GEMMs give what IEEE gives for inf, NaN
            ng = conv_kernels.NhwcGeometry.of(x.shape, (g.kh, g.kw), 1, pads, dilation)
            k2 = k.reshape(-1, g.O) * mask.reshape(-1, g.O)
            _gemm_backward(grad, conv_kernels.im2col_nhwc(xd, ng), k2, ng, x, kernel, mask,
                           bias, y if relu else None)
            return
        G, db = conv_planes.grad_planes(grad, y, relu, g)    # (B, O, g_stride), (O,)
        if kernel.requires_grad:
            gk = np.zeros(kernel.shape, dtype=kernel.dtype)
            gk.reshape(-1)[pattern.flat_o] = conv_planes.grad_weight(X, G, pattern)
            kernel.accumulate(gk)                             # pruned weights get none
        if bias is not None and bias.requires_grad:
            bias.accumulate(db.astype(bias.dtype, copy=False))
        if x.requires_grad:
            gx = conv_planes.grad_input(G, k[pattern.flat_c], pattern)
            x.accumulate(gx.astype(x.dtype, copy=False))
    return Tensor(y, parents=parents, backward=backward)


def _conv2d_nchw(x, kernel, mask, strides, pads, dilation, groups):
    """Through wsekern.conv2d, which skips the zero weights of a pruned kernel."""
    xn = np.ascontiguousarray(x.data.transpose(0, 3, 1, 2))
    xn = _pad_nchw(xn, pads)
    w = np.ascontiguousarray(kernel.data.transpose(3, 2, 0, 1))          # (kh, kw, in, out) -> OIHW
    y = conv_kernels.conv2d(xn, w, stride=strides, dilation=dilation, groups=groups)

    def backward(g):
        gn = np.ascontiguousarray(g.transpose(0, 3, 1, 2))
        m = None if mask is None else mask.transpose(3, 2, 0, 1)
        gx, gw, _ = conv_kernels.conv2d_backward(gn, xn, w, stride=strides, dilation=dilation,
                                                 groups=groups, weight_mask=m)
        if x.requires_grad:
            (t, b), (l, r) = pads
            gx = gx[:, :, t:gx.shape[2] - b, l:gx.shape[3] - r]
            x.accumulate(gx.transpose(0, 2, 3, 1))
        if kernel.requires_grad:
            kernel.accumulate(gw.transpose(2, 3, 1, 0))
    return Tensor(y.transpose(0, 2, 3, 1), parents=(x, kernel), backward=backward)


def _masked_constraint(con, mask):
    def constrain(w):
        out = con(w)
        return np.asarray(getattr(out, "data", out)) * mask
    return constrain


class Conv2D(Layer):
    """``keras.layers.Conv2D`` (channels-last), plus ``sparsity`` as in Dense."""
    _regularizable = ("kernel", "bias")

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", sparsity=0.0, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"only data_format='channels_last' is supported; received "
                             f"{data_format!r}")
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(f"filters must be a positive int; received {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding_arg(padding)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"groups must be a positive int; received {groups!r}")
        self.groups = int(groups)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.sparsity = check_sparsity(sparsity)
        self.weight_mask = None
        self._planes_cache = {}       # the pruned kernel's index arrays for the planes path

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Conv2D expects inputs (batch, height, width, channels); received "
                             f"shape {input_shape}")
        channels = input_shape[-1]
        if channels % self.groups or self.filters % self.groups:
            raise ValueError(f"groups={self.groups} must divide the input channels ({channels}) "
                             f"and filters ({self.filters})")
        kh, kw = self.kernel_size
        self.kernel = self.add_weight("kernel", (kh, kw, channels // self.groups, self.filters),
                                      self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)
        if self.sparsity > 0:
            self.set_sparsity(self.sparsity)

    def set_sparsity(self, sparsity, mask=None):
        self.sparsity = check_sparsity(sparsity)
        self.weight_mask = magnitude_mask(self.kernel.data, self.sparsity) if mask is None else mask
        self.kernel.data *= self.weight_mask
        con = self._weight_options.get(("kernel", "constraint"))
        if con is not None:             # pruned weights stay zero whatever it returns
            self.kernel.constraint = _masked_constraint(con, self.weight_mask)

    def set_weights(self, weights):
        """As Keras; a pruned layer keeps its pattern (as Dense does): the pruned positions
        of the kernel given are zeroed, so every path computes the same convolution."""
        weights = list(weights)
        if self.weight_mask is not None and weights \
                and np.shape(weights[0]) == np.shape(self.weight_mask):
            warn_outside_pattern(self, weights[0], np.asarray(self.weight_mask) != 0)
        super().set_weights(weights)
        if self.weight_mask is not None:
            self.kernel.data *= self.weight_mask

    def _pads(self, h, w):
        if self.padding == "valid":
            return ((0, 0), (0, 0))
        return (same_pads(h, self.kernel_size[0], self.strides[0], self.dilation_rate[0]),
                same_pads(w, self.kernel_size[1], self.strides[1], self.dilation_rate[1]))

    def call(self, x, training=False):
        if x.ndim != 4 or x.shape[-1] != self.input_shape[-1]:
            raise ValueError(f"layer {self.name!r} expects inputs (batch, h, w, "
                             f"{self.input_shape[-1]}); received shape {x.shape}")
        pads = self._pads(x.shape[1], x.shape[2])
        placement = placement_of(self)
        observed = training and placement is not None
        fuse = self.activation is activations.relu
        y = conv2d_nhwc(x, self.kernel, self.weight_mask, self.strides, pads,
                        self.dilation_rate, self.groups, self.bias if self.use_bias else None,
                        relu=fuse, cache=self._planes_cache)
        if observed:                                    # hand the step to the wafer strategy
            # the input's im2col columns, counted from the NHWC input (no im2col formed);
            # the gradient of the product's output, before the activation: with the ReLU
            # fused, the ReLU's backward passes dY where its output is > 0, else 0
            out = y.data if fuse else None
            filters = self.filters
            y = placement.observe(
                columns.ConvColumns(x.data, pads, self.kernel_size, self.strides,
                                    self.dilation_rate), x.requires_grad, y,
                lambda g: columns.SampleMajor(
                    g.reshape(-1, filters),
                    None if out is None else out.reshape(-1, filters) > 0))
        return y if fuse else self.activation(y)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, *_out_sizes(self, (h, w), self.kernel_size, self.dilation_rate),
                self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "dilation_rate": list(self.dilation_rate),
                "groups": self.groups, "activation": activations.name_of(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": _init_name(self.kernel_initializer),
                "bias_initializer": _init_name(self.bias_initializer), "sparsity": self.sparsity}


class _Pooling2D(Layer):
    mode = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"only data_format='channels_last' is supported; received "
                             f"{data_format!r}")
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = _pair(strides, "strides") if strides is not None else self.pool_size
        self.padding = _padding_arg(padding)

    def _pads(self, h, w):
        if self.padding == "valid":
            return ((0, 0), (0, 0))
        return (same_pads(h, self.pool_size[0], self.strides[0], 1),
                same_pads(w, self.pool_size[1], self.strides[1], 1))

    def call(self, x, training=False):
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects (batch, h, w, channels); received "
                             f"shape {x.shape}")
        g = conv_kernels.NhwcGeometry.of(x.shape, self.pool_size, self.strides,
                                         self._pads(x.shape[1], x.shape[2]))
        data = np.ascontiguousarray(x.data, dtype=np.result_type(x.dtype, np.float32))
        # Keras averages over the pixels inside the image only ('same' padding)
        if self.mode == "max":
            y, arg = pool_kernels.max_pool_nhwc(data, g)
        else:
            y = pool_kernels.avg_pool_nhwc(data, g, count_pad=False)

        def backward(grad):
            grad = np.ascontiguousarray(grad, dtype=y.dtype)
            if self.mode == "max":
                gx = pool_kernels.max_pool_nhwc_backward(grad, arg, g, check_arg=False)
            else:
                gx = pool_kernels.avg_pool_nhwc_backward(grad, g, count_pad=False)
            x.accumulate(gx.astype(x.dtype, copy=False))
        return Tensor(y, parents=(x,), backward=backward)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, *_out_sizes(self, (h, w), self.pool_size, (1, 1)), c)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding}


class MaxPooling2D(_Pooling2D):
    mode = "max"


class AveragePooling2D(_Pooling2D):
    mode = "avg"


MaxPool2D = MaxPooling2D
AveragePool2D = AveragePooling2D


class GlobalAveragePooling2D(Layer):
    def __init__(self, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)

    def call(self, x, training=False):
        return x.mean(axis=(1, 2), keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, 1, 1, c) if self.keepdims else (b, c)

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}
