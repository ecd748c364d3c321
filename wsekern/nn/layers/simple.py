"""Keras's small layers: activation layers (ReLU, LeakyReLU, ELU, Softmax, PReLU),
reshaping (UpSampling2D, ZeroPadding1D/2D, Cropping1D/2D, RepeatVector, Permute),
1-D and global pooling, noise and spatial dropout, and Lambda, Identity, Rescaling,
TimeDistributed. Each is built from differentiable tensor ops."""
import inspect

import numpy as np

from .. import activations
from .. import random as nn_random
from .. import tensor as T
from .base import Layer
from .conv import AveragePooling2D, MaxPooling2D


def _pair_of_pairs(padding, name):
    """Keras's 2-D padding/cropping argument: int, (sym_h, sym_w) or ((t, b), (l, r))."""
    if isinstance(padding, (int, np.integer)):
        p = ((int(padding),) * 2,) * 2
    else:
        p = tuple((int(a), int(a)) if isinstance(a, (int, np.integer)) else tuple(map(int, a))
                  for a in padding)
    if len(p) != 2 or any(len(a) != 2 or min(a) < 0 for a in p):
        raise ValueError(f"{name} must be an int >= 0, a pair, or a pair of pairs; received "
                         f"{padding!r}")
    return p


def _pair_1d(padding, name):
    p = (int(padding),) * 2 if isinstance(padding, (int, np.integer)) else tuple(map(int, padding))
    if len(p) != 2 or min(p) < 0:
        raise ValueError(f"{name} must be an int >= 0 or a pair; received {padding!r}")
    return p


# -- activation layers ----------------------------------------------------------------------
class ReLU(Layer):
    supports_masking = True
    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f"max_value must be >= 0; received {max_value}")
        if negative_slope < 0:
            raise ValueError(f"negative_slope must be >= 0; received {negative_slope}")
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold

    def call(self, x, training=False):
        return activations.relu(x, self.negative_slope, self.max_value, self.threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(Layer):
    supports_masking = True
    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        if negative_slope < 0:
            raise ValueError(f"negative_slope must be >= 0; received {negative_slope}")
        self.negative_slope = float(negative_slope)

    def call(self, x, training=False):
        return activations.leaky_relu(x, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(Layer):
    supports_masking = True
    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def call(self, x, training=False):
        return activations.elu(x, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(Layer):
    """Softmax over ``axis``; ``mask`` (True = keep) sends masked entries to zero, as
    Keras does by adding a large negative number before the softmax. A mask of the leading
    dimensions only (a time-step mask from Embedding(mask_zero=True)) covers all of a step's
    entries: a real step's softmax is unchanged, a padded step's is uniform (as in Keras);
    the mask is passed on."""
    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x, training=False, mask=None):
        if mask is not None:
            x = T.as_tensor(x)
            keep = np.asarray(mask.data if isinstance(mask, T.Tensor) else mask, dtype=bool)
            if keep.ndim < x.ndim and keep.shape == x.shape[:keep.ndim]:
                keep = keep.reshape(keep.shape + (1,) * (x.ndim - keep.ndim))
            try:
                np.broadcast_shapes(keep.shape, x.shape)
            except ValueError:
                raise ValueError(f"Softmax layer {self.name!r}: the mask's shape {keep.shape} "
                                 f"fits neither the input's shape {x.shape} nor its leading "
                                 f"dimensions") from None
            x = T.add(x, np.where(keep, 0.0, -1e9).astype(x.dtype))
        return activations.softmax(x, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class PReLU(Layer):
    """max(x, 0) + alpha * min(x, 0) with a learned alpha per input entry (or shared along
    ``shared_axes``)."""
    _regularizable = ("alpha",)
    supports_masking = True

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None,
                 alpha_constraint=None, shared_axes=None, **kwargs):
        super().__init__(alpha_regularizer=alpha_regularizer, alpha_constraint=alpha_constraint,
                         **kwargs)
        self.alpha_initializer = alpha_initializer
        self.shared_axes = None if shared_axes is None else (
            [shared_axes] if isinstance(shared_axes, int) else list(shared_axes))

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for ax in self.shared_axes or []:
            shape[ax - 1] = 1
        self.alpha = self.add_weight("alpha", tuple(shape), self.alpha_initializer)

    def call(self, x, training=False):
        x = T.as_tensor(x)
        pos = T.extremum(x, 0.0, take_max=True)
        neg = T.extremum(x, 0.0, take_max=False)
        return T.add(pos, T.mul(self.alpha, neg))

    def get_config(self):
        return {**super().get_config(), "shared_axes": self.shared_axes}


# -- reshaping -----------------------------------------------------------------------------
class UpSampling2D(Layer):
    """Repeat rows and columns (``interpolation="nearest"``)."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        if interpolation != "nearest":
            raise NotImplementedError(f"UpSampling2D interpolation={interpolation!r}: only "
                                      "'nearest' is implemented")
        self.size = (int(size), int(size)) if isinstance(size, (int, np.integer)) else \
            tuple(int(s) for s in size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be a positive int or pair; received {size!r}")
        self.interpolation = interpolation

    def call(self, x, training=False):
        return T.repeat(T.repeat(x, self.size[0], axis=1), self.size[1], axis=2)

    def compute_output_shape(self, s):
        return (s[0], None if s[1] is None else s[1] * self.size[0],
                None if s[2] is None else s[2] * self.size[1], s[3])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size),
                "interpolation": self.interpolation}


class UpSampling1D(Layer):
    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, x, training=False):
        return T.repeat(x, self.size, axis=1)

    def compute_output_shape(self, s):
        return (s[0], None if s[1] is None else s[1] * self.size, s[2])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class ZeroPadding2D(Layer):
    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pair_of_pairs(padding, "padding")

    def call(self, x, training=False):
        return T.pad(x, ((0, 0),) + self.padding + ((0, 0),))

    def compute_output_shape(self, s):
        return (s[0],) + tuple(None if n is None else n + sum(p)
                               for n, p in zip(s[1:3], self.padding)) + (s[3],)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}


class ZeroPadding1D(Layer):
    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pair_1d(padding, "padding")

    def call(self, x, training=False):
        return T.pad(x, ((0, 0), self.padding, (0, 0)))

    def compute_output_shape(self, s):
        return (s[0], None if s[1] is None else s[1] + sum(self.padding), s[2])

    def get_config(self):
        return {**super().get_config(), "padding": list(self.padding)}


class Cropping2D(Layer):
    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pair_of_pairs(cropping, "cropping")

    def build(self, input_shape):
        for n, (a, b) in zip(input_shape[1:3], self.cropping):
            if n is not None and a + b >= n:
                raise ValueError(f"cropping {self.cropping} removes all of an input of shape "
                                 f"{tuple(input_shape)}")

    def call(self, x, training=False):
        (t, b), (l, r) = self.cropping
        h, w = x.shape[1], x.shape[2]
        return T.getitem(x, (slice(None), slice(t, h - b), slice(l, w - r)))

    def compute_output_shape(self, s):
        return (s[0],) + tuple(None if n is None else n - sum(c)
                               for n, c in zip(s[1:3], self.cropping)) + (s[3],)

    def get_config(self):
        return {**super().get_config(), "cropping": [list(c) for c in self.cropping]}


class Cropping1D(Layer):
    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pair_1d(cropping, "cropping")

    def call(self, x, training=False):
        a, b = self.cropping
        return T.getitem(x, (slice(None), slice(a, x.shape[1] - b)))

    def compute_output_shape(self, s):
        return (s[0], None if s[1] is None else s[1] - sum(self.cropping), s[2])

    def get_config(self):
        return {**super().get_config(), "cropping": list(self.cropping)}


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an int >= 0; received {n!r}")
        self.n = int(n)

    def call(self, x, training=False):
        x = T.as_tensor(x)
        if x.ndim != 2:
            raise ValueError(f"RepeatVector expects (batch, features); received {x.shape}")
        return T.repeat(T.reshape(x, (x.shape[0], 1, x.shape[1])), self.n, axis=1)

    def compute_output_shape(self, s):
        return (s[0], self.n, s[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Permute(Layer):
    """Permute the non-batch axes; ``dims`` is 1-based as in Keras."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"dims must be a permutation of 1..{len(self.dims)}; received "
                             f"{dims!r}")

    def call(self, x, training=False):
        return T.transpose(x, (0,) + self.dims)

    def compute_output_shape(self, s):
        return (s[0],) + tuple(s[d] for d in self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


# -- pooling over steps and global pooling ----------------------------------------------------
def _one_int(value, what):
    """An int, or a tuple/list of one int (Keras takes both; its config writes a list)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{what} of a 1-D pooling must be an int or a tuple of one int; "
                             f"received {value!r}")
        value = value[0]
    return int(value)


class _Pooling1D(Layer):
    """A 2-D pooling layer run on (batch, 1, steps, channels)."""
    pool_cls = None

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _one_int(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _one_int(strides, "strides")
        self.padding = padding
        self._pool2d = self.pool_cls((1, self.pool_size), (1, self.strides), padding,
                                     data_format, name=f"{self.name}_2d")

    def call(self, x, training=False):
        x = T.as_tensor(x)
        if x.ndim != 3:
            raise ValueError(f"{type(self).__name__} expects (batch, steps, channels); "
                             f"received {x.shape}")
        x4 = T.reshape(x, (x.shape[0], 1) + x.shape[1:])
        if not self._pool2d.built:
            self._pool2d._build((None, 1) + x.shape[1:])
        y = self._pool2d.call(x4, training=training)
        return T.reshape(y, (y.shape[0],) + y.shape[2:])

    def compute_output_shape(self, s):
        b, _, w, c = self._pool2d.compute_output_shape((s[0], 1, s[1], s[2]))
        return (b, w, c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class MaxPooling1D(_Pooling1D):
    pool_cls = MaxPooling2D


class AveragePooling1D(_Pooling1D):
    pool_cls = AveragePooling2D


MaxPool1D, AveragePool1D = MaxPooling1D, AveragePooling1D


def _masked_mean(x, mask, axis):
    """Mean over ``axis`` of the entries whose mask is True (Keras's masked pooling)."""
    keep = np.asarray(mask.data if isinstance(mask, T.Tensor) else mask, dtype=x.dtype)
    keep = keep.reshape(keep.shape + (1,) * (x.ndim - keep.ndim))
    count = np.maximum(keep.sum(axis=axis, keepdims=True), 1)
    return T.tsum(T.mul(x, keep / count), axis=axis, keepdims=True)


class _GlobalPooling(Layer):
    axes = None
    reduce = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"only data_format='channels_last' is supported; received "
                             f"{data_format!r}")
        self.keepdims = bool(keepdims)

    def call(self, x, training=False, mask=None):
        x = T.as_tensor(x)
        if mask is not None and self.reduce == "mean":
            y = _masked_mean(x, mask, self.axes)
            return y if self.keepdims else T.reshape(y, (y.shape[0], y.shape[-1]))
        # max pooling ignores the mask, as Keras 3's (it warns and drops the mask): the
        # padded steps take part in the maximum
        if self.reduce == "mean":
            return T.mean(x, self.axes, self.keepdims)
        return T.reduce_extremum(x, self.axes, self.keepdims, take_max=True)

    def compute_output_shape(self, s):
        if self.keepdims:
            return tuple(1 if i in self.axes else n for i, n in enumerate(s))
        return (s[0], s[-1])

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling):
    axes, reduce = (1,), "mean"


class GlobalMaxPooling1D(_GlobalPooling):
    axes, reduce = (1,), "max"


class GlobalMaxPooling2D(_GlobalPooling):
    axes, reduce = (1, 2), "max"


GlobalAvgPool1D, GlobalMaxPool1D, GlobalMaxPool2D = (GlobalAveragePooling1D, GlobalMaxPooling1D,
                                                     GlobalMaxPooling2D)


# -- noise and spatial dropout (training only) -------------------------------------------------
class _Noise(Layer):
    """A training-only random layer with a ``rate`` (or stddev) and an optional seed."""
    supports_masking = True
    param = "rate"
    upper = 1.0

    def __init__(self, *args, seed=None, **kwargs):
        # Keras names the value (rate=, stddev=) or gives it first
        if self.param in kwargs and not args:
            args = (kwargs.pop(self.param),)
        if len(args) != 1:
            raise TypeError(f"{type(self).__name__} takes its {self.param} (one number), "
                            f"first or as {self.param}=; received {len(args)} values")
        value = args[0]
        super().__init__(**kwargs)
        if not 0 <= value < self.upper:
            raise ValueError(f"{self.param} must be in [0, {self.upper}); received {value!r}")
        setattr(self, self.param, float(value))
        self.seed = seed
        self._gen = nn_random.SeedGenerator(seed) if seed is not None else None

    def call(self, x, training=False):
        value = getattr(self, self.param)
        if not training or value == 0:
            return x
        return self._noisy(T.as_tensor(x), value)

    def get_config(self):
        return {**super().get_config(), self.param: getattr(self, self.param),
                "seed": self.seed}


class GaussianNoise(_Noise):
    """x + N(0, stddev^2) in training."""
    param, upper = "stddev", float("inf")

    def _noisy(self, x, stddev):
        return T.add(x, nn_random.normal(x.shape, 0.0, stddev, x.dtype, self._gen))


class GaussianDropout(_Noise):
    """x * N(1, rate / (1 - rate)) in training."""

    def _noisy(self, x, rate):
        std = np.sqrt(rate / (1 - rate))
        return T.mul(x, nn_random.normal(x.shape, 1.0, std, x.dtype, self._gen))


class _SpatialDropout(_Noise):
    def _noisy(self, x, rate):
        # one draw per (sample, channel), shared along every spatial axis
        noise = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        return nn_random.dropout(x, rate, noise, self._gen)


class SpatialDropout1D(_SpatialDropout):
    pass


class SpatialDropout2D(_SpatialDropout):
    pass


class SpatialDropout3D(_SpatialDropout):
    pass


# -- wrappers and utility layers -------------------------------------------------------------
class Identity(Layer):
    supports_masking = True

    def call(self, x, training=False):
        return x


class Masking(Layer):
    """``keras.layers.Masking``: the time steps whose features all equal ``mask_value`` are
    zeroed and masked, so the layers after (attention, pooling) skip them."""
    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def compute_mask(self, inputs, mask=None):
        data = inputs.data if isinstance(inputs, T.Tensor) else np.asarray(inputs)
        return np.any(data != self.mask_value, axis=-1)

    def call(self, x, training=False):
        x = T.as_tensor(x)
        keep = self.compute_mask(x)[..., None].astype(x.dtype)
        return T.mul(x, keep)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


class Rescaling(Layer):
    """x * scale + offset (e.g. Rescaling(1 / 255) for images)."""
    supports_masking = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def call(self, x, training=False):
        x = T.as_tensor(x)
        if x.dtype.kind != "f":
            x = T.cast(x, self.dtype)
        return T.add(T.mul(x, np.asarray(self.scale, x.dtype)), np.asarray(self.offset, x.dtype))

    def get_config(self):
        scale = self.scale.tolist() if isinstance(self.scale, np.ndarray) else self.scale
        offset = self.offset.tolist() if isinstance(self.offset, np.ndarray) else self.offset
        return {**super().get_config(), "scale": scale, "offset": offset}


class Lambda(Layer):
    """Wrap ``function(x)`` (or ``function(x, **arguments)``) as a layer. Its output shape
    is ``output_shape`` (a tuple without the batch axis, or a function of the input shape),
    or found by calling the function on zeros of the input shape.

    ``mask`` as Keras's: None (the output carries no mask), a function
    ``mask(inputs, previous_mask)`` giving the output's mask, or a boolean array that is
    the output's mask whatever the input; a ``function`` with a ``mask`` parameter is
    given the input's mask."""

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda needs a callable; received {type(function).__name__}")
        if not (output_shape is None or callable(output_shape) or (
                isinstance(output_shape, (tuple, list)) and all(
                    n is None or (isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                  and n >= 0) for n in output_shape))):
            raise ValueError(f"Lambda's output_shape must be None, a shape without the batch "
                             f"axis (a tuple of sizes or None) or a function of the input "
                             f"shape; received {output_shape!r:.80}")
        if isinstance(output_shape, (tuple, list)):
            output_shape = tuple(None if n is None else int(n) for n in output_shape)
        self.function, self._output_shape, self.arguments = function, output_shape, \
            dict(arguments or {})
        if mask is not None and not callable(mask):
            given = mask
            mask = np.asarray(getattr(mask, "data", mask))
            if mask.dtype != bool:
                raise ValueError(f"Lambda's mask must be None, a function mask(inputs, "
                                 f"previous_mask) or a boolean array; received "
                                 f"{type(given).__name__} of dtype {mask.dtype}")
        self.mask = mask
        self.supports_masking = mask is not None
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):          # a builtin without a signature
            params = {}
        self._fn_takes_mask = "mask" in params

    def call(self, x, training=False, mask=None):
        if self._fn_takes_mask:
            return self.function(x, mask=mask, **self.arguments)
        return self.function(x, **self.arguments)

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def compute_output_shape(self, input_shape):
        if callable(self._output_shape):
            return tuple(self._output_shape(input_shape))
        if self._output_shape is not None:
            return (input_shape[0],) + tuple(self._output_shape)
        probe = np.zeros(tuple(1 if n is None else n for n in input_shape), dtype=self.dtype)
        out = self.function(T.Tensor(probe), **self.arguments)
        shape = tuple(T.as_tensor(out).shape)
        return (input_shape[0],) + shape[1:] if input_shape[0] is None else shape

    def get_config(self):
        # a Python function cannot be written to JSON; saved by name for registered ones
        from .. import registry
        config = {**super().get_config(), "function": registry.get_registered_name(self.function)}
        if self._output_shape is not None:          # as Keras 3: only when given
            config["output_shape"] = (registry.get_registered_name(self._output_shape)
                                      if callable(self._output_shape) else self._output_shape)
        if self.mask is not None:                   # a function by name, an array as lists
            config["mask"] = registry.get_registered_name(self.mask) if callable(self.mask) \
                else self.mask.tolist()
        return {**config, "arguments": self.arguments}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .. import registry
        config = dict(config)
        fn = registry.get_registered_object(config["function"], custom_objects)
        if fn is None:
            raise ValueError(f"Lambda function {config['function']!r} is not known: register it "
                             "with register_keras_serializable or pass it in custom_objects")
        config["function"] = fn
        shape = config.get("output_shape")
        if isinstance(shape, str):                  # a function, saved by name
            fn = registry.get_registered_object(shape, custom_objects)
            if fn is None:
                raise ValueError(f"Lambda output_shape function {shape!r} is not known: "
                                 "register it with register_keras_serializable or pass it "
                                 "in custom_objects")
            config["output_shape"] = fn
        mask = config.get("mask")
        if isinstance(mask, str):
            fn = registry.get_registered_object(mask, custom_objects)
            if fn is None:
                raise ValueError(f"Lambda mask function {mask!r} is not known: register it "
                                 "with register_keras_serializable or pass it in "
                                 "custom_objects")
            config["mask"] = fn
        elif mask is not None:
            config["mask"] = np.asarray(mask, dtype=bool)
        return cls(**config)


class TimeDistributed(Layer):
    """Apply ``layer`` to every step: (batch, steps, ...) -> the layer on (batch * steps,
    ...), reshaped back."""
    supports_masking = True

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise ValueError(f"TimeDistributed wraps a Layer; received {type(layer).__name__}")
        self.layer = layer

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"TimeDistributed needs inputs of rank >= 3 (batch, steps, ...); "
                             f"received {tuple(input_shape)}")
        self.layer._build((None,) + tuple(input_shape[2:]))

    def call(self, x, training=False):
        x = T.as_tensor(x)
        b, t = x.shape[:2]
        y = self.layer(T.reshape(x, (b * t,) + x.shape[2:]), training=training)
        return T.reshape(y, (b, t) + y.shape[1:])

    def compute_output_shape(self, s):
        inner = self.layer.compute_output_shape((None,) + tuple(s[2:]))
        return (s[0], s[1]) + tuple(inner[1:])

    @property
    def weights(self):
        return self.layer.weights

    @property
    def trainable_weights(self):
        return self.layer.trainable_weights if self.trainable else []

    @property
    def non_trainable_weights(self):
        return self.layer.non_trainable_weights if self.trainable else self.layer.weights

    def get_weights(self):
        return self.layer.get_weights()

    def set_weights(self, weights):
        self.layer.set_weights(weights)

    def get_config(self):
        return {**super().get_config(), "layer": {"class_name": type(self.layer).__name__,
                                                  "config": self.layer.get_config()}}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The wrapped layer from its ``{class_name, config}`` (as get_config writes it)."""
        config = dict(config)
        spec = config.get("layer")
        if isinstance(spec, dict):
            name, inner = spec.get("class_name"), spec.get("config")
            layer_cls = _layer_class(name, custom_objects)
            if layer_cls is None or not isinstance(inner, dict):
                raise ValueError(f"TimeDistributed's layer must be {{'class_name': a layer "
                                 f"class, 'config': {{...}}}}; received {spec!r:.120}")
            config["layer"] = layer_cls.from_config(inner)
        return cls(**config)


def _layer_class(name, custom_objects=None):
    """A layer class by name: a custom or registered object, else wsekern.nn's own (found
    among Layer's subclasses, so that this module need not import the layers package)."""
    from .. import registry
    found = registry.get_registered_object(name, custom_objects)
    if isinstance(found, type) and issubclass(found, Layer):
        return found
    stack = [Layer]
    while stack:
        c = stack.pop()
        if c.__name__ == name and c.__module__.startswith("wsekern.nn."):
            return c
        stack.extend(c.__subclasses__())
    return None
