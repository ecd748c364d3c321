"""``to_categorical``, ``set_random_seed`` and the seeded generator every layer draws from."""
import random

import numpy as np

_RNG = np.random.default_rng()


def set_random_seed(seed):
    """Seed wsekern.nn's generator (weights, dropout, shuffling), Python's and NumPy's."""
    global _RNG
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; received {seed!r}")
    _RNG = np.random.default_rng(int(seed))
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)


def rng():
    return _RNG


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer labels, as keras.utils.to_categorical."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise ValueError(f"labels must be integers; received dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    n = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if y.size and (y.min() < 0 or y.max() >= n):
        raise ValueError(f"labels must be in [0, {n}); received values from {y.min()} to {y.max()}")
    out = np.zeros(y.shape + (n,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out
