"""``keras.random``: draws with an explicit seed (int: the same values every call), a
``SeedGenerator`` (advances each call, so a layer's dropout differs step to step but
repeats run to run), or None (wsekern.nn's global generator, see utils.set_random_seed)."""
import numpy as np

from . import utils
from .tensor import Tensor, as_tensor, mul


class SeedGenerator:
    """A stateful seed: each draw made with it uses a fresh, reproducible stream."""

    def __init__(self, seed=None, name=None, **kwargs):
        if seed is None:
            seed = int(utils.rng().integers(0, 2**31 - 1))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int or None; received {seed!r}")
        self.seed = int(seed)
        self.state = np.array([self.seed, 0], dtype=np.int64)     # (seed, draws so far)
        self.name = name

    def next(self):
        self.state[1] += 1
        return np.random.default_rng([int(self.state[0]), int(self.state[1])])

    def get_config(self):
        return {"seed": self.seed}


def _rng(seed):
    if seed is None:
        return utils.rng()
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be None, a non-negative int or a SeedGenerator; received "
                         f"{seed!r}")
    return np.random.default_rng(int(seed))


def _dtype(dtype):
    return np.dtype(dtype or np.float32)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return Tensor((mean + stddev * _rng(seed).standard_normal(shape)).astype(_dtype(dtype)))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    rng = _rng(seed)
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return Tensor((mean + stddev * out).astype(_dtype(dtype)))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    return Tensor(_rng(seed).uniform(minval, maxval, size=shape).astype(_dtype(dtype)))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    return Tensor(_rng(seed).integers(minval, maxval, size=shape).astype(np.dtype(dtype)))


def categorical(logits, num_samples, dtype="int32", seed=None):
    """``num_samples`` class draws per row of unnormalised log-probabilities."""
    z = np.asarray(as_tensor(logits).data, dtype=np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    rng = _rng(seed)
    u = rng.uniform(size=(z.shape[0], num_samples, 1))
    return Tensor((u > np.cumsum(p, -1)[:, None, :]).sum(-1).astype(np.dtype(dtype)))


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Zero each entry with probability ``rate`` and scale the rest by 1 / (1 - rate);
    differentiable in ``inputs``. ``noise_shape`` broadcasts one mask (SpatialDropout)."""
    x = as_tensor(inputs)
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1); received {rate!r}")
    if rate == 0:
        return x
    shape = x.shape if noise_shape is None else tuple(
        x.shape[i] if s is None else s for i, s in enumerate(noise_shape))
    keep = _rng(seed).uniform(size=shape) >= rate
    return mul(x, (keep / (1 - rate)).astype(x.dtype if x.dtype.kind == "f" else np.float32))


def shuffle(x, axis=0, seed=None):
    x = as_tensor(x)
    perm = _rng(seed).permutation(x.shape[axis])
    from .tensor import getitem
    return getitem(x, (slice(None),) * (axis % x.ndim) + (perm,))
