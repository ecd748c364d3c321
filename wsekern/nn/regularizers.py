"""Keras 3's weight regularizers: ``L1``, ``L2``, ``L1L2`` and ``OrthogonalRegularizer``;
each maps a weight Tensor to a scalar penalty Tensor that carries gradients."""
import math

import numpy as np

from . import registry
from .tensor import Tensor, absolute, as_tensor, extremum, matmul, mul, power, transpose, tsum


def _factor(name, value):
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0; received {value!r}")
    return v


class Regularizer:
    def __call__(self, x):
        return Tensor(np.zeros((), dtype=as_tensor(x).dtype))

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x^2)``."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _factor("l1", l1), _factor("l2", l2)

    def __call__(self, x):
        x = as_tensor(x)
        total = Tensor(np.zeros((), dtype=x.dtype))
        if self.l1:
            total = total + tsum(absolute(x)) * self.l1
        if self.l2:
            total = total + tsum(mul(x, x)) * self.l2
        return total

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """``factor`` times the mean absolute off-diagonal entry of the Gram matrix of the
    l2-normalised rows (or columns), as Keras 3 computes it."""

    def __init__(self, factor=0.01, mode="rows"):
        if mode not in ("rows", "columns"):
            raise ValueError(f"mode must be 'rows' or 'columns'; received {mode!r}")
        self.factor, self.mode = _factor("factor", factor), mode

    def __call__(self, x):
        x = as_tensor(x)
        if x.ndim != 2:
            raise ValueError(f"OrthogonalRegularizer needs a 2-D weight; received shape "
                             f"{x.shape}")
        if self.mode == "columns":
            x = transpose(x)
        xn = _normalize_rows(x)
        gram = matmul(xn, transpose(xn))
        n = x.shape[0]
        off = gram * (1.0 - np.eye(n, dtype=x.dtype))
        denom = n * (n - 1) / 2 if n > 1 else 1
        return tsum(absolute(off)) * (self.factor / 2 / denom)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


def _normalize_rows(x):
    sq = tsum(mul(x, x), axis=-1, keepdims=True)
    return mul(x, power(extremum(sq, 1e-12, take_max=True), -0.5))


l1, l2, l1_l2 = L1, L2, L1L2
_CLASSES = {c.__name__: c for c in (L1, L2, L1L2, OrthogonalRegularizer)}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2,
          "orthogonal_regularizer": OrthogonalRegularizer}


def get(identifier):
    """A regularizer from None, a name ("l1", "l2", "l1_l2"), an instance, a serialized
    dict, a registered name, or a callable ``fn(weight) -> scalar``."""
    if identifier is None:
        return None
    if not isinstance(identifier, Regularizer) and any(
            c.__module__.split(".")[0] == "keras" for c in type(identifier).__mro__):
        return _from_keras(identifier)
    return registry.resolve(identifier, Regularizer, "regularizer",
                            by_name=registry.instance_by_name(_NAMES, _CLASSES),
                            deserialize=deserialize, from_callable=lambda fn: fn,
                            expected=f"{sorted(_NAMES)}, a Regularizer, or a callable "
                                     "fn(weight) -> scalar")


def serialize(obj):
    return registry.serialize_object(obj, _CLASSES)


def deserialize(config, custom_objects=None):
    return registry.deserialize_object(config, _CLASSES, "regularizer", custom_objects)


def _from_keras(obj):
    """Ours for a regularizer object of the keras package (same class and config): Keras's
    computes with its backend's tensors, which carry no wsekern gradient, so fit would
    report its penalty and not train against it. One we have no twin for is refused."""
    cls = _CLASSES.get(type(obj).__name__)
    if cls is None or type(obj).__module__.split(".")[0] != "keras":
        raise TypeError(f"{type(obj).__module__}.{type(obj).__qualname__} is a Keras "
                        f"regularizer: it computes with Keras's backend tensors, through which "
                        f"no wsekern gradient flows. Use one of wsekern.nn.regularizers "
                        f"({', '.join(sorted(_CLASSES))}), or subclass "
                        f"wsekern.nn.regularizers.Regularizer")
    return cls(**obj.get_config())
