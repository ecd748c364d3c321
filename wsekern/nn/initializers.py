"""Keras's default initialisers, drawn from wsekern.nn's seeded generator."""
import numpy as np

from . import utils


def _fans(shape):
    """(fan_in, fan_out) as Keras computes them: Dense (in, out); Conv (kh, kw, in, out)."""
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape, dtype=np.float32):
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return utils.rng().uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape, dtype=np.float32):
    fan_in, _ = _fans(shape)
    std = np.sqrt(2.0 / fan_in)
    return (utils.rng().standard_normal(shape) * std).astype(dtype)


def random_normal(shape, dtype=np.float32, stddev=0.05):
    return (utils.rng().standard_normal(shape) * stddev).astype(dtype)


def zeros(shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


_INITIALIZERS = {"glorot_uniform": glorot_uniform, "he_normal": he_normal,
                 "random_normal": random_normal, "zeros": zeros, "ones": ones}


def get(identifier):
    if callable(identifier):
        return identifier
    if identifier not in _INITIALIZERS:
        raise ValueError(f"unknown initializer {identifier!r}; available: {sorted(_INITIALIZERS)}")
    return _INITIALIZERS[identifier]
