"""Activations as autograd ops, with Keras's names (``get("relu")``)."""
import numpy as np
from scipy.special import erf

from .tensor import Tensor


def relu(x):
    out = np.maximum(x.data, 0)
    return Tensor(out, parents=(x,), backward=lambda g: x.accumulate(g * (x.data > 0)))


def tanh(x):
    out = np.tanh(x.data)
    return Tensor(out, parents=(x,), backward=lambda g: x.accumulate(g * (1 - out * out)))


def sigmoid(x):
    out = 0.5 * (1 + np.tanh(0.5 * x.data))       # stable for large |x|
    return Tensor(out, parents=(x,), backward=lambda g: x.accumulate(g * out * (1 - out)))


def gelu(x, approximate=False):
    """Keras's gelu: exact (erf) by default, tanh approximation with approximate=True."""
    v = x.data
    if approximate:
        c = np.sqrt(2 / np.pi).astype(v.dtype)
        inner = c * (v + 0.044715 * v ** 3)
        t = np.tanh(inner)
        out = 0.5 * v * (1 + t)
        d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v)
    else:
        z = v * v.dtype.type(1 / np.sqrt(2))
        cdf = 0.5 * (1 + (_erf32(z) if v.dtype == np.float32 else erf(z)))
        out = v * cdf
        d = cdf + v * np.exp(-0.5 * v * v) * v.dtype.type(1 / np.sqrt(2 * np.pi))
    return Tensor(out.astype(v.dtype, copy=False), parents=(x,),
                  backward=lambda g: x.accumulate((g * d).astype(v.dtype, copy=False)))


def _erf32(x):
    """erf for float32 arrays: Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7, below
    float32's resolution near 1), about 10x faster than scipy.special.erf here."""
    a = np.abs(x)
    t = 1.0 / (1.0 + np.float32(0.3275911) * a)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (
        np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    return np.copysign(1.0 - poly * np.exp(-a * a), x).astype(np.float32, copy=False)


def softmax(x, axis=-1):
    z = x.data - x.data.max(axis=axis, keepdims=True)
    e = np.exp(z)
    out = e / e.sum(axis=axis, keepdims=True)

    def backward(g):
        x.accumulate(out * (g - (g * out).sum(axis=axis, keepdims=True)))
    return Tensor(out, parents=(x,), backward=backward)


def linear(x):
    return x


_ACTIVATIONS = {"relu": relu, "tanh": tanh, "sigmoid": sigmoid, "gelu": gelu,
                "softmax": softmax, "linear": linear, None: linear}


def get(identifier):
    """An activation function from a name (Keras's) or a callable."""
    if callable(identifier):
        return identifier
    if identifier not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {identifier!r}; available: "
                         f"{sorted(k for k in _ACTIVATIONS if k)}")
    return _ACTIVATIONS[identifier]


def name_of(fn):
    for k, v in _ACTIVATIONS.items():
        if v is fn and k is not None:
            return k
    return getattr(fn, "__name__", "custom")
