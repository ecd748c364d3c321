"""BatchNormalization and LayerNormalization (Keras defaults: epsilon 1e-3, last axis)."""
import numpy as np

from ... import _transformer
from ..tensor import Tensor
from .base import Layer


def _normalize(x, axes, eps, gamma, beta, stats=None, weights=None):
    """(x - mean) / sqrt(var + eps) * gamma + beta over ``axes``, fused with its gradients.

    With ``stats`` = (mean, var) the statistics are constants (inference); otherwise they
    come from x itself and the backward pass accounts for them. ``weights`` (0/1, x's shape
    with a last axis of 1: a mask) restricts the statistics to the real steps, as Keras's
    BatchNormalization does with a mask; every step is still normalised by them.
    """
    xd = x.data
    n = None
    if stats is None and weights is not None:
        n = weights.sum(axis=axes, keepdims=True) + 1e-7         # Keras's backend.epsilon()
        mu = (weights * xd).sum(axis=axes, keepdims=True) / n
        var = (weights * (xd - mu) ** 2).sum(axis=axes, keepdims=True) / n
    elif stats is None:
        mu = xd.mean(axis=axes, keepdims=True)
        var = xd.var(axis=axes, keepdims=True)
    else:
        mu, var = stats
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (xd - mu) * inv
    out = xhat * gamma.data if gamma is not None else xhat
    if beta is not None:
        out = out + beta.data
    parents = tuple(t for t in (x, gamma, beta) if t is not None)

    def backward(g):
        param_axes = tuple(range(xd.ndim - 1))
        if gamma is not None:
            gamma.accumulate((g * xhat).sum(axis=param_axes))
        if beta is not None:
            beta.accumulate(g.sum(axis=param_axes))
        if x.requires_grad:
            gx = g * gamma.data if gamma is not None else g
            if stats is None and weights is not None:
                # every output depends on the masked statistics: sums over all steps
                gx = inv * (gx - weights / n * gx.sum(axis=axes, keepdims=True)
                            - weights * xhat / n * (gx * xhat).sum(axis=axes, keepdims=True))
            elif stats is None:
                # torch's form, the two means accumulated in float64: a bias just before
                # the norm has a zero gradient in exact arithmetic, and float32 sums left
                # ~1e-7 of noise there, which Adam (g / sqrt(v)) turns into full steps
                count = np.prod([xd.shape[a] for a in np.atleast_1d(axes)])
                mg = gx.sum(axis=axes, keepdims=True, dtype=np.float64) / count
                mgx = (gx * xhat).sum(axis=axes, keepdims=True, dtype=np.float64) / count
                gx = inv * (gx - mg.astype(gx.dtype) - xhat * mgx.astype(gx.dtype))
            else:
                gx = gx * inv
            x.accumulate(gx.astype(xd.dtype, copy=False))
    return Tensor(out.astype(xd.dtype, copy=False), parents=parents, backward=backward), mu, var


def layer_norm(x, gamma, beta, eps):
    """LayerNorm over the last axis: one fused pass forward and one backward
    (src/_transformer.pyx, sums in double) for float32 or float64 ``x`` with ``gamma`` and
    ``beta`` (either may be None) of its dtype; otherwise the NumPy :func:`_normalize`."""
    xd = x.data
    dt = xd.dtype
    d = xd.shape[-1] if xd.ndim else 0
    if (dt not in (np.float32, np.float64) or d == 0
            or any(t is not None and t.dtype != dt for t in (gamma, beta))):
        return _normalize(x, -1, eps, gamma, beta)[0]
    x2 = np.ascontiguousarray(xd.reshape(-1, d))                         # (rows, d)
    scale = gamma.data if gamma is not None else np.ones(d, dt)
    shift = beta.data if beta is not None else np.zeros(d, dt)
    out = np.empty_like(x2)
    mean, rstd = np.empty(len(x2)), np.empty(len(x2))
    _transformer.layer_norm_forward(x2, np.ascontiguousarray(scale), np.ascontiguousarray(shift),
                                    float(eps), out, mean, rstd)

    def backward(g):
        g2 = np.ascontiguousarray(g.reshape(-1, d), dtype=dt)
        dx = np.empty_like(x2)
        dgamma, dbeta = np.zeros(d), np.zeros(d)
        _transformer.layer_norm_backward(g2, x2, np.ascontiguousarray(scale), mean, rstd, dx,
                                         dgamma, dbeta)
        if gamma is not None:
            gamma.accumulate(dgamma.astype(dt))
        if beta is not None:
            beta.accumulate(dbeta.astype(dt))
        x.accumulate(dx.reshape(xd.shape))
    parents = tuple(t for t in (x, gamma, beta) if t is not None)
    return Tensor(out.reshape(xd.shape), parents=parents, backward=backward)


class BatchNormalization(Layer):
    """Normalise each feature (last axis) by batch statistics in training, by moving ones after."""
    _regularizable = ("gamma", "beta")
    supports_masking = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        if axis != -1:
            raise ValueError(f"only axis=-1 (channels last) is supported; received {axis!r}")
        if not 0 <= momentum < 1 or epsilon <= 0:
            raise ValueError(f"momentum must be in [0, 1) and epsilon > 0; received "
                             f"momentum={momentum}, epsilon={epsilon}")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def build(self, input_shape):
        n = input_shape[-1]
        self.gamma = self.add_weight("gamma", (n,), "ones") if self.scale else None
        self.beta = self.add_weight("beta", (n,), "zeros") if self.center else None
        self.moving_mean = self.add_weight("moving_mean", (n,), "zeros", trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (n,), "ones", trainable=False)

    def call(self, x, training=False, mask=None):
        axes = tuple(range(x.ndim - 1))
        # Keras: a frozen BatchNormalization (trainable=False) runs in inference mode, on
        # its moving statistics, which it leaves alone (the fine-tuning recipe relies on it)
        if training and self.trainable:
            weights = None
            if mask is not None:           # Keras's masked moments: the real steps only
                mask = np.asarray(getattr(mask, "data", mask))
                if mask.shape != x.shape[:-1]:
                    raise ValueError(f"BatchNormalization expects a mask of shape "
                                     f"{x.shape[:-1]} (its input's without the features); "
                                     f"received {mask.shape}")
                weights = mask[..., None].astype(x.dtype)
            out, mu, var = _normalize(x, axes, self.epsilon, self.gamma, self.beta,
                                      weights=weights)
            m = self.momentum
            self.moving_mean.data[...] = m * self.moving_mean.data + (1 - m) * mu.ravel()
            self.moving_variance.data[...] = m * self.moving_variance.data + (1 - m) * var.ravel()
            return out
        stats = (self.moving_mean.data, self.moving_variance.data)
        return _normalize(x, axes, self.epsilon, self.gamma, self.beta, stats)[0]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale}


class LayerNormalization(Layer):
    """Normalise each sample over its last axis."""
    _regularizable = ("gamma", "beta")
    supports_masking = True

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        if axis != -1:
            raise ValueError(f"only axis=-1 is supported; received {axis!r}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0; received {epsilon}")
        self.axis, self.epsilon = axis, float(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def build(self, input_shape):
        n = input_shape[-1]
        self.gamma = self.add_weight("gamma", (n,), "ones") if self.scale else None
        self.beta = self.add_weight("beta", (n,), "zeros") if self.center else None

    def call(self, x, training=False):
        return layer_norm(x, self.gamma, self.beta, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}
