"""Activations as autograd ops, with Keras's names (``get("relu")``); each takes a
Tensor, a NumPy array or a scalar."""
import numpy as np
from scipy.special import erf

from .. import _activations
from .._threads import resolve_threads
from . import registry
from .tensor import Tensor, as_tensor, clip, lift, real_only, where
from .tensor import log_softmax as _log_softmax


def _plain_relu(x):
    out = np.maximum(x.data, 0)         # NaN stays NaN
    # torch's rule: 0 where x <= 0, even for a NaN/inf gradient (where, not g * mask);
    # the gradient passes at a NaN x (its result is not <= 0)
    return Tensor(out, parents=(x,),
                  backward=lambda g: x.accumulate(np.where(x.data <= 0, 0, g)))


def _leaky_relu(x, negative_slope):
    v = x.data
    above = v > 0
    return _elementwise(x, np.where(above, v, negative_slope * v),
                        np.where(above, 1.0, negative_slope))


def _hard_tanh(x, low, high):
    """torch's hardtanh: ``x`` clipped to [low, high]; the gradient passes strictly
    inside and at NaN, and is 0 at and beyond the bounds."""
    v = x.data
    flat = (v <= low) | (v >= high)
    return _elementwise(x, np.clip(v, low, high), ~flat, flat=flat)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's relu: ``x`` above ``threshold`` (capped at ``max_value``), else
    ``negative_slope * (x - threshold)``; composed as Keras composes it (leaky_relu,
    relu6 or relu, clip, where), so values and gradients at NaN, the threshold and
    ``max_value`` are Keras's on torch."""
    x = as_tensor(x)
    if negative_slope == 0 and max_value is None and threshold == 0:
        return _plain_relu(x)
    if max_value is None and threshold == 0:
        return _leaky_relu(x, negative_slope)
    clip_max = max_value is not None
    if threshold != 0:
        y = where(x.data > np.asarray(threshold, x.dtype), x, lift(0.0, x))
    elif max_value == 6:
        y, clip_max = _hard_tanh(x, 0, 6), False
    else:
        y = _plain_relu(x)
    if clip_max:
        y = clip(y, 0.0, max_value)
    if negative_slope != 0:
        y = y - _plain_relu(-x + threshold if threshold != 0 else -x) * negative_slope
    return y


def _elementwise(x, out, d, flat=None):
    """``out`` with derivative ``d``; where ``flat`` is set the gradient is 0 even when the
    incoming one is NaN or inf (PyTorch's rule for relu and hardtanh), not NaN from 0 * inf."""
    dtype = x.dtype

    def backward(g):
        if flat is None:
            x.accumulate((g * d).astype(dtype, copy=False))
            return
        with np.errstate(invalid="ignore"):          # inf * 0 in the flat part, replaced below
            gd = (g * d).astype(dtype, copy=False)
        x.accumulate(np.where(flat, 0, gd))
    return Tensor(np.asarray(out, dtype=dtype), parents=(x,), backward=backward)


def relu6(x):
    return _hard_tanh(as_tensor(x), 0, 6)


def leaky_relu(x, negative_slope=0.2):
    return relu(x, negative_slope=negative_slope)


def elu(x, alpha=1.0):
    """torch's elu: the gradient's negative branch where x <= 0, so a NaN x passes it (1)."""
    x = as_tensor(x)
    v = x.data
    neg = alpha * np.expm1(np.minimum(v, 0))
    return _elementwise(x, np.where(v > 0, v, neg), np.where(v <= 0, neg + alpha, 1.0))


def selu(x):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    x = as_tensor(x)
    v = x.data
    neg = alpha * np.expm1(np.minimum(v, 0))
    return _elementwise(x, scale * np.where(v > 0, v, neg),
                        scale * np.where(v <= 0, neg + alpha, 1.0))


def celu(x, alpha=1.0):
    """torch's celu (Keras's on torch): ``alpha * expm1(x / alpha)`` where x <= 0."""
    x = as_tensor(x)
    v = x.data
    e = np.exp(np.minimum(v, 0) / alpha)
    return _elementwise(x, np.where(v > 0, v, alpha * (e - 1)), np.where(v <= 0, e, 1.0))


def softplus(x):
    x = as_tensor(x)
    v = x.data
    out = np.logaddexp(v, 0).astype(v.dtype, copy=False)
    return _elementwise(x, out, 0.5 * (1 + np.tanh(0.5 * v)))


def softsign(x):
    x = as_tensor(x)
    v = x.data
    return _elementwise(x, v / (1 + np.abs(v)), 1 / (1 + np.abs(v)) ** 2)


def silu(x):
    x = as_tensor(x)
    v = x.data
    s = 0.5 * (1 + np.tanh(0.5 * v))
    return _elementwise(x, v * s, s * (1 + v * (1 - s)))


swish = silu


def hard_sigmoid(x):
    """Keras 3's: relu6(x + 3) / 6."""
    x = as_tensor(x)
    v = x.data
    inside = (v > -3) & (v < 3)
    return _elementwise(x, np.clip(v / 6 + 0.5, 0, 1), inside / 6.0, flat=~inside)


def hard_silu(x):
    """torch's hardswish, gradient included: 0 up to -3, x / 3 + 1/2 below 3, else 1 (NaN
    and inf too)."""
    x = as_tensor(x)
    v = x.data
    hs = np.clip(v / 6 + 0.5, 0, 1)
    low = v <= -3
    return _elementwise(x, v * hs, np.where(low, 0.0, np.where(v < 3, v / 3 + 0.5, 1.0)),
                        flat=low)


hard_swish = hard_silu


def mish(x):
    x = as_tensor(x)
    v = x.data
    sp = np.logaddexp(v, 0)
    t = np.tanh(sp)
    s = 0.5 * (1 + np.tanh(0.5 * v))
    return _elementwise(x, v * t, t + v * (1 - t * t) * s)


def exponential(x):
    x = as_tensor(x)
    out = np.exp(x.data)
    return _elementwise(x, out, out)


def log_softmax(x, axis=-1):
    return _log_softmax(as_tensor(x), axis=axis)


def tanh(x):
    x = as_tensor(x)
    out = np.tanh(x.data)
    return Tensor(out, parents=(x,), backward=lambda g: x.accumulate(g * (1 - out * out)))


def sigmoid(x):
    x = as_tensor(x)
    out = 0.5 * (1 + np.tanh(0.5 * x.data))       # stable for large |x|
    return Tensor(out, parents=(x,), backward=lambda g: x.accumulate(g * out * (1 - out)))


def gelu(x, approximate=False):
    """Keras's gelu: exact (erf) by default, tanh approximation with approximate=True."""
    x = as_tensor(x)
    v = x.data
    if v.dtype.kind != "f":
        x = Tensor(v.astype(np.float32))
        v = x.data
    if approximate:
        c = np.sqrt(2 / np.pi).astype(v.dtype)
        inner = c * (v + 0.044715 * v ** 3)
        t = np.tanh(inner)
        out = 0.5 * v * (1 + t)
        d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v)
    elif v.dtype in (np.float32, np.float64):      # one fused pass (src/_activations.pyx)
        flat = np.ascontiguousarray(v).reshape(-1)
        out, d = np.empty_like(flat), np.empty_like(flat)
        _activations.gelu(flat, out, d, resolve_threads(None, flat.size * 8))
        out, d = out.reshape(v.shape), d.reshape(v.shape)
    else:
        z = v * v.dtype.type(1 / np.sqrt(2))
        cdf = 0.5 * (1 + erf(z))
        out = v * cdf
        d = cdf + v * np.exp(-0.5 * v * v) * v.dtype.type(1 / np.sqrt(2 * np.pi))
    return Tensor(out.astype(v.dtype, copy=False), parents=(x,),
                  backward=lambda g: x.accumulate((g * d).astype(v.dtype, copy=False)))


def softmax(x, axis=-1):
    x = as_tensor(x)
    z = x.data - x.data.max(axis=axis, keepdims=True)
    e = np.exp(z)
    out = e / e.sum(axis=axis, keepdims=True)

    def backward(g):
        x.accumulate(out * (g - (g * out).sum(axis=axis, keepdims=True)))
    return Tensor(out, parents=(x,), backward=backward)


def linear(x):
    return x


# Keras on torch refuses complex input to these (NumPy would answer lexicographically or
# drop the imaginary part): refused by name, one check for all (tensor.real_only)
_REAL_ONLY = ("relu", "relu6", "leaky_relu", "elu", "selu", "celu", "softplus", "hard_sigmoid",
              "hard_silu", "hard_swish", "mish", "gelu", "softmax", "log_softmax")


def _refuse_complex(names, module_globals, prefix):
    wrapped = {}                          # by function, so that aliases stay one object
    for n in names:
        fn = module_globals[n]
        if id(fn) not in wrapped:
            wrapped[id(fn)] = real_only(fn, prefix + fn.__name__)
        module_globals[n] = wrapped[id(fn)]


_refuse_complex(_REAL_ONLY, globals(), "activations.")

_ACTIVATIONS = {"relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "elu": elu,
                "selu": selu, "celu": celu, "softplus": softplus, "softsign": softsign,
                "silu": silu, "swish": swish, "hard_sigmoid": hard_sigmoid, "hard_silu": hard_silu,
                "hard_swish": hard_swish, "mish": mish, "exponential": exponential,
                "tanh": tanh, "sigmoid": sigmoid, "gelu": gelu, "softmax": softmax,
                "log_softmax": log_softmax, "linear": linear, None: linear}


def get(identifier):
    """An activation function from a name (Keras's), a registered custom name, a
    serialized ``{"class_name": ..., "config": ...}`` or a callable."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict) and "config" in identifier:
        cfg = identifier["config"]
        identifier = cfg.get("name") if isinstance(cfg, dict) else cfg
    if identifier in _ACTIVATIONS:
        return _ACTIVATIONS[identifier]
    if isinstance(identifier, str):
        found = registry.get_registered_object(identifier)
        if found is not None:
            return found
    raise ValueError(f"unknown activation {identifier!r}; available: "
                     f"{sorted(k for k in _ACTIVATIONS if k)} or a callable")


def name_of(fn):
    for k, v in _ACTIVATIONS.items():
        if v is fn and k is not None:
            return k
    for k, v in {**registry.get_custom_objects(), **registry.scoped_objects()}.items():
        if v is fn:
            return k
    return getattr(fn, "__name__", "custom")


def serialize(fn):
    return name_of(fn)


def deserialize(config, custom_objects=None):
    if isinstance(config, str) and custom_objects and config in custom_objects:
        return custom_objects[config]
    return get(config)
