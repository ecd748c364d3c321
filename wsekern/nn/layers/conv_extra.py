"""Conv1D, DepthwiseConv2D, SeparableConv1D/2D and Conv2DTranspose (channels-last, Keras's
weight shapes), all through wsekern.conv2d and its gradients."""
import numpy as np

from ... import conv as conv_kernels
from .. import activations
from .. import tensor as T
from ..tensor import Tensor
from .base import Layer
from .conv import _out_len, _pad_nchw, _padding_arg, _pair, conv2d_nhwc, same_pads
from .core import _init_name


def _positive_int(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ValueError(f"{name} must be a positive int; received {v!r}")
    return int(v)


def _one(v, name):
    v = (v,) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(v) != 1 or isinstance(v[0], bool) or int(v[0]) < 1:
        raise ValueError(f"{name} must be a positive int; received {v!r}")
    return (int(v[0]),)


def _channels_last(data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"only data_format='channels_last' is supported; received "
                         f"{data_format!r}")


class _ConvBase(Layer):
    """Shared argument handling: activation, bias, initializers and their config."""
    _regularizable = ("kernel", "bias")

    def __init__(self, activation=None, use_bias=True, bias_initializer="zeros",
                 data_format=None, **kwargs):
        super().__init__(**kwargs)
        _channels_last(data_format)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = bias_initializer

    def _finish(self, y):
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)

    def get_config(self):
        return {**super().get_config(), "activation": activations.name_of(self.activation),
                "use_bias": self.use_bias, "bias_initializer": _init_name(self.bias_initializer)}


class Conv1D(_ConvBase):
    """``keras.layers.Conv1D``: (batch, steps, channels) with a (k, in, filters) kernel;
    padding "valid", "same" or "causal" (left padding only)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", data_format=None, **kwargs):
        super().__init__(activation, use_bias, bias_initializer, data_format, **kwargs)
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _one(kernel_size, "kernel_size")
        self.strides = _one(strides, "strides")
        self.dilation_rate = _one(dilation_rate, "dilation_rate")
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same", "causal"):
            raise ValueError(f"padding must be 'valid', 'same' or 'causal'; received {padding!r}")
        self.groups = _positive_int(groups, "groups")
        self.kernel_initializer = kernel_initializer

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Conv1D expects inputs (batch, steps, channels); received shape "
                             f"{input_shape}")
        c = input_shape[-1]
        if c % self.groups or self.filters % self.groups:
            raise ValueError(f"groups={self.groups} must divide the input channels ({c}) and "
                             f"filters ({self.filters})")
        self.kernel = self.add_weight("kernel", (self.kernel_size[0], c // self.groups,
                                                 self.filters), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def _pads(self, steps):
        k, s, d = self.kernel_size[0], self.strides[0], self.dilation_rate[0]
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "causal":
            return ((k - 1) * d, 0)
        return same_pads(steps, k, s, d)

    def call(self, x, training=False):
        x = T.as_tensor(x)
        x4 = T.reshape(x, (x.shape[0], 1) + x.shape[1:])                    # (b, 1, steps, c)
        k4 = T.reshape(self.kernel, (1,) + self.kernel.shape)                # (1, k, in, out)
        y = conv2d_nhwc(x4, k4, None, (1, self.strides[0]), ((0, 0), self._pads(x.shape[1])),
                        (1, self.dilation_rate[0]), self.groups)
        return self._finish(T.reshape(y, (y.shape[0],) + y.shape[2:]))

    def compute_output_shape(self, input_shape):
        b, steps, _ = input_shape
        n = None if steps is None else _out_len(steps, self.kernel_size[0], self.strides[0],
                                                self.dilation_rate[0], self._pads(steps))
        return (b, n, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "dilation_rate": list(self.dilation_rate),
                "groups": self.groups,
                "kernel_initializer": _init_name(self.kernel_initializer)}


def _same_or_valid(size, k, s, d, padding):
    return (0, 0) if padding == "valid" else same_pads(size, k, s, d)


class DepthwiseConv2D(_ConvBase):
    """Each input channel convolved with its own ``depth_multiplier`` filters; kernel
    (kh, kw, in, depth_multiplier); output channel c * depth_multiplier + m (Keras's order)."""
    _regularizable = (("depthwise", "kernel"), "bias")

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(activation, use_bias, bias_initializer, data_format, **kwargs)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.padding = _padding_arg(padding)
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier")
        self.depthwise_initializer = depthwise_initializer

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"DepthwiseConv2D expects inputs (batch, h, w, channels); "
                             f"received shape {input_shape}")
        c = input_shape[-1]
        self.kernel = self.add_weight("kernel", self.kernel_size + (c, self.depth_multiplier),
                                      self.depthwise_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (c * self.depth_multiplier,),
                                        self.bias_initializer)

    def _pads(self, h, w):
        return tuple(_same_or_valid(n, k, s, d, self.padding) for n, k, s, d in zip(
            (h, w), self.kernel_size, self.strides, self.dilation_rate))

    def call(self, x, training=False):
        x = T.as_tensor(x)
        c = x.shape[-1]
        k = T.reshape(self.kernel, self.kernel_size + (1, c * self.depth_multiplier))
        y = conv2d_nhwc(x, k, None, self.strides, self._pads(x.shape[1], x.shape[2]),
                        self.dilation_rate, c)
        return self._finish(y)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        dims = [None if n is None else _out_len(n, k, s, d, p) for n, k, s, d, p in zip(
            (h, w), self.kernel_size, self.strides, self.dilation_rate,
            self._pads(h or 1, w or 1))]
        return (b, dims[0], dims[1], c * self.depth_multiplier)

    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "depth_multiplier": self.depth_multiplier,
                "dilation_rate": list(self.dilation_rate),
                "depthwise_initializer": _init_name(self.depthwise_initializer)}


class SeparableConv2D(DepthwiseConv2D):
    """Depthwise convolution then a 1x1 pointwise one (kernel (1, 1, in * dm, filters))."""
    _regularizable = (("depthwise", "depthwise_kernel"), ("pointwise", "pointwise_kernel"),
                      "bias")

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1), depth_multiplier=1, activation=None,
                 use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, **kwargs)
        self.filters = _positive_int(filters, "filters")
        self.pointwise_initializer = pointwise_initializer

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"SeparableConv2D expects inputs (batch, h, w, channels); "
                             f"received shape {input_shape}")
        c = input_shape[-1]
        self.depthwise_kernel = self.add_weight("depthwise_kernel", self.kernel_size +
                                                (c, self.depth_multiplier),
                                                self.depthwise_initializer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel",
                                                (1, 1, c * self.depth_multiplier, self.filters),
                                                self.pointwise_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def call(self, x, training=False):
        x = T.as_tensor(x)
        c = x.shape[-1]
        k = T.reshape(self.depthwise_kernel, self.kernel_size + (1, c * self.depth_multiplier))
        y = conv2d_nhwc(x, k, None, self.strides, self._pads(x.shape[1], x.shape[2]),
                        self.dilation_rate, c)
        # the pointwise 1x1 convolution is a matmul over the channel axis
        y = T.matmul(y, T.reshape(self.pointwise_kernel, self.pointwise_kernel.shape[-2:]))
        return self._finish(y)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = super().compute_output_shape(input_shape)
        return (b, h, w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "pointwise_initializer": _init_name(self.pointwise_initializer)}


class SeparableConv1D(SeparableConv2D):
    """SeparableConv2D over (batch, steps, channels) with a (1, k) window; its kernels
    have Keras's shapes, (k, in, depth_multiplier) and (1, in * depth_multiplier,
    filters), so a Keras model's weights load as they are."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, **kwargs):
        super().__init__(filters, (1,) + _one(kernel_size, "kernel_size"),
                         (1,) + _one(strides, "strides"), padding, data_format,
                         (1,) + _one(dilation_rate, "dilation_rate"), depth_multiplier,
                         **kwargs)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"SeparableConv1D expects inputs (batch, steps, channels); "
                             f"received shape {input_shape}")
        c = input_shape[-1]
        # Keras's 1-D shapes; call() reshapes them to the 2-D ones (same C-order data)
        self.depthwise_kernel = self.add_weight("depthwise_kernel", (self.kernel_size[1], c,
                                                self.depth_multiplier),
                                                self.depthwise_initializer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel",
                                                (1, c * self.depth_multiplier, self.filters),
                                                self.pointwise_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def set_weights(self, weights):
        # files saved before the kernels took Keras's shapes hold the 2-D layer's,
        # (1, k, in, dm) and (1, 1, in * dm, filters): the same C-order data
        weights = [np.asarray(w) for w in weights]
        if len(weights) >= 2 and weights[0].ndim == 4 and weights[1].ndim == 4 \
                and weights[0].shape[0] == 1 and weights[1].shape[0] == 1:
            weights[:2] = [weights[0][0], weights[1][0]]
        super().set_weights(weights)

    def call(self, x, training=False):
        x = T.as_tensor(x)
        y = super().call(T.reshape(x, (x.shape[0], 1) + x.shape[1:]), training)
        return T.reshape(y, (y.shape[0],) + y.shape[2:])

    def compute_output_shape(self, input_shape):
        b, _, w, f = super().compute_output_shape((input_shape[0], 1) + tuple(input_shape[1:]))
        return (b, w, f)

    def get_config(self):
        cfg = super().get_config()
        for k in ("kernel_size", "strides", "dilation_rate"):
            cfg[k] = cfg[k][1:]
        return cfg


def conv2d_transpose_nhwc(x, kernel, strides, crop):
    """Transposed convolution (the input gradient of a convolution), channels last.
    kernel: (kh, kw, filters, in). ``crop``: ((top, bottom), (left, right)) removed from
    the full output (Keras's 'same' padding); a negative one pads it with zeros instead
    (Keras's output is ``n * stride`` long even where a kernel shorter than its stride
    leaves the full output ``(n - 1) * stride + k`` shorter)."""
    b, h, w, _ = x.shape
    kh, kw, f, _ = kernel.shape
    sh, sw = strides
    full = (b, f, (h - 1) * sh + kh, (w - 1) * sw + kw)
    wo = np.ascontiguousarray(kernel.data.transpose(3, 2, 0, 1))          # (in, f, kh, kw)
    xn = np.ascontiguousarray(x.data.transpose(0, 3, 1, 2))
    dtype = np.result_type(x.dtype, kernel.dtype)
    # the forward conv this transposes maps (b, f, full) -> (b, in, h, w)
    zeros = np.zeros(full, dtype=dtype)
    out, _, _ = conv_kernels.conv2d_backward(xn, zeros, wo, stride=strides)
    out = _fit_nchw(out, tuple((-a, -b) for a, b in crop))

    def backward(g):
        gfull = _fit_nchw(np.ascontiguousarray(g.transpose(0, 3, 1, 2)), crop)
        if x.requires_grad:
            gx = conv_kernels.conv2d(gfull, wo, stride=strides)
            x.accumulate(gx.transpose(0, 2, 3, 1).astype(x.dtype, copy=False))
        if kernel.requires_grad:
            _, gw, _ = conv_kernels.conv2d_backward(xn, gfull, wo, stride=strides)
            kernel.accumulate(gw.transpose(2, 3, 1, 0).astype(kernel.dtype, copy=False))
    return Tensor(np.ascontiguousarray(out.transpose(0, 2, 3, 1)), parents=(x, kernel),
                  backward=backward)


def _fit_nchw(a, pads):
    """``a`` (N, C, H, W) padded with zeros by ((top, bottom), (left, right)), where a
    negative amount crops that many rows or columns instead."""
    (t, b), (l, r) = pads
    h, w = a.shape[2:]
    a = a[:, :, max(-t, 0):h - max(-b, 0), max(-l, 0):w - max(-r, 0)]
    return _pad_nchw(a, ((max(t, 0), max(b, 0)), (max(l, 0), max(r, 0))))


class Conv2DTranspose(_ConvBase):
    """``keras.layers.Conv2DTranspose``: kernel (kh, kw, filters, in); output size
    n * stride + max(k - stride, 0) ("valid") or n * stride ("same"), as in Keras."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(activation, use_bias, bias_initializer, data_format, **kwargs)
        if _pair(dilation_rate, "dilation_rate") != (1, 1):
            raise NotImplementedError("Conv2DTranspose with dilation_rate > 1")
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding_arg(padding)
        self.kernel_initializer = kernel_initializer

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Conv2DTranspose expects inputs (batch, h, w, channels); "
                             f"received shape {input_shape}")
        self.kernel = self.add_weight("kernel", self.kernel_size + (self.filters,
                                                                    input_shape[-1]),
                                      self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)

    def _crop(self, h, w):
        """((top, bottom), (left, right)) cropped from the full output to Keras's size (a
        negative bottom/right: zeros added, where the kernel is shorter than its stride)."""
        crops = []
        for n, k, s in zip((h, w), self.kernel_size, self.strides):
            full = (n - 1) * s + k
            # 'same': the convolution this transposes, with 'same' padding on n * s
            before = same_pads(n * s, k, s, 1)[0] if self.padding == "same" else 0
            crops.append((before, full - before - self._length(n, k, s)))
        return tuple(crops)

    def _length(self, n, k, s):
        """Keras's output length (deconv_output_length, no output_padding)."""
        return n * s if self.padding == "same" else n * s + max(k - s, 0)

    def call(self, x, training=False):
        x = T.as_tensor(x)
        y = conv2d_transpose_nhwc(x, self.kernel, self.strides,
                                  self._crop(x.shape[1], x.shape[2]))
        return self._finish(y)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        dims = [None if n is None else self._length(n, k, s)
                for n, k, s in zip((h, w), self.kernel_size, self.strides)]
        return (b, dims[0], dims[1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding,
                "kernel_initializer": _init_name(self.kernel_initializer)}
