"""Keras 3's weight constraints: ``MaxNorm``, ``NonNeg``, ``UnitNorm``, ``MinMaxNorm``.
Each maps a weight to its projection; the optimizer assigns it after every update (Keras's
``variable.assign(variable.constraint(variable))``). Keras's formulas and epsilon (1e-7)."""
import math

import numpy as np

from . import registry

EPSILON = 1e-7      # keras.backend.epsilon()


def _array(w):
    return np.asarray(getattr(w, "data", w))


def _axis(axis):
    if isinstance(axis, (list, tuple)):
        return tuple(int(a) for a in axis)
    return int(axis)


def _norms(w, axis):
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


class Constraint:
    """The base class: ``__call__(w)`` returns the constrained weight (identity here)."""

    def __call__(self, w):
        return _array(w)

    def get_config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MaxNorm(Constraint):
    """Scale each weight vector along ``axis`` whose norm exceeds ``max_value`` down to it."""

    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = _bound("max_value", max_value), _axis(axis)

    def __call__(self, w):
        w = _array(w)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return (w * (desired / (EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Negative weights become zero."""

    def __call__(self, w):
        return np.maximum(_array(w), 0)


class UnitNorm(Constraint):
    """Each weight vector along ``axis`` divided by its norm."""

    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def __call__(self, w):
        w = _array(w)
        return (w / (EPSILON + _norms(w, self.axis))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Each weight vector's norm moved ``rate`` of the way into [min_value, max_value]."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value = _bound("min_value", min_value), \
            _bound("max_value", max_value)
        if self.min_value > self.max_value:
            raise ValueError(f"min_value must be <= max_value; received {min_value}, "
                             f"{max_value}")
        self.rate, self.axis = _bound("rate", rate), _axis(axis)

    def __call__(self, w):
        w = _array(w)
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + \
            (1 - self.rate) * norms
        return (w * (desired / (EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


def _bound(name, value):
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0; received {value!r}")
    return v


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm
_CLASSES = {c.__name__: c for c in (Constraint, MaxNorm, NonNeg, UnitNorm, MinMaxNorm)}
_NAMES = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
          "min_max_norm": MinMaxNorm, "maxnorm": MaxNorm, "nonneg": NonNeg,
          "unitnorm": UnitNorm, "minmaxnorm": MinMaxNorm}


def get(identifier):
    """A constraint from None, a name ("max_norm", "non_neg", "unit_norm",
    "min_max_norm" or a class name), an instance, a serialized dict, a registered name,
    or a callable ``fn(weight) -> weight``."""
    if identifier is None:
        return None
    return registry.resolve(identifier, Constraint, "constraint",
                            by_name=registry.instance_by_name(_NAMES, _CLASSES),
                            deserialize=deserialize, from_callable=lambda fn: fn,
                            expected=f"{sorted(_NAMES)}, a Constraint, or a callable "
                                     "fn(weight) -> weight")


def serialize(obj):
    """A dict for a Constraint, the registered name of a plain function."""
    if obj is None:
        return None
    if hasattr(obj, "get_config"):
        return registry.serialize_object(obj, _CLASSES)
    return registry.get_registered_name(obj)


def deserialize(config, custom_objects=None):
    return registry.deserialize_object(config, _CLASSES, "constraint", custom_objects)


def apply(constraint, variable):
    """``variable`` assigned its constrained value, checked for shape (as Keras's assign)."""
    try:
        value = _array(constraint(variable))
    except (ValueError, IndexError) as e:        # a bad axis (from a config) shows here
        raise ValueError(f"the constraint {constraint!r} on {variable.name!r} (shape "
                         f"{variable.data.shape}) failed after the optimizer step: {e}") from e
    if value.shape != variable.data.shape:
        raise ValueError(f"the constraint {constraint!r} on {variable.name!r} returned shape "
                         f"{value.shape}; the weight has shape {variable.data.shape}")
    variable.data[...] = value
