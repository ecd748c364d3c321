"""Keras 3's losses: per-sample functions (``mean_squared_error``, ``huber``, ...), Loss
classes that weight and reduce them (``Loss(name=, reduction=)``), and ``get`` by name."""
import numpy as np

from . import registry
from .tensor import (
    Tensor,
    absolute,
    as_tensor,
    cast,
    clip,
    extremum,
    log,
    log1p,
    mean,
    reduce_extremum,
    reshape,
    tsum,
    where,
)

EPSILON = 1e-7      # Keras's backend epsilon: probabilities are clipped to [eps, 1 - eps]


def _labels(y_true, n_classes):
    y = np.asarray(y_true)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            bad = y[y != np.round(y)].flat[0]
            raise ValueError(f"sparse categorical labels must be integers (class ids); "
                             f"received {bad} among them")
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise ValueError(f"sparse categorical labels must be integers; received dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes}) for a model with {n_classes} "
                         f"outputs; received values from {y.min()} to {y.max()}")
    return y


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras's rule: a trailing size-1 axis is squeezed (or a rank-1 partner expanded) so
    that ``(n,)`` labels meet ``(n, 1)`` predictions without broadcasting to ``(n, n)``."""
    r1, r2 = len(x1.shape), len(x2.shape)
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = reshape(x2, tuple(x2.shape) + (1,))
        else:
            x1 = reshape(x1, tuple(x1.shape[:-1]))
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = reshape(x1, tuple(x1.shape) + (1,))
        else:
            x2 = reshape(x2, tuple(x2.shape[:-1]))
    return x1, x2


def reduce_weighted_values(values, sample_weight=None, reduction="sum_over_batch_size",
                           mask=None):
    """Weight per-sample losses and reduce them as Keras 3 does: "sum_over_batch_size" (the
    default; "mean" is its alias) divides the weighted sum by the number of values,
    "mean_with_sample_weight" by the sum of the weights, "sum" does not divide, "none"
    returns the weighted values. ``mask`` (the predictions' Keras mask, True = a real step)
    zeroes the padded steps' losses; a mean is then over the real steps only."""
    values = as_tensor(values)
    if mask is not None:
        sample_weight = _mask_weights(mask, sample_weight, values.dtype, reduction)
    if sample_weight is not None:
        sw = as_tensor(np.asarray(as_tensor(sample_weight).data, dtype=values.dtype))
        values, sw = squeeze_or_expand_to_same_rank(values, sw)
        values = values * sw
    if reduction in (None, "none") or values.shape in ((), (0,)):
        return values
    total = tsum(values)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = float(np.broadcast_to(sw.data, values.shape).sum())
    else:
        divisor = float(values.size)
    return total * (values.dtype.type(1.0 / divisor) if divisor else values.dtype.type(0.0))


def _mask_weights(mask, sample_weight, dtype, reduction):
    """Keras's apply_mask: the mask as weights, scaled so that a mean divides by the number
    of real steps; times ``sample_weight`` when there is one."""
    m = np.asarray(getattr(mask, "data", mask), dtype=dtype)
    if reduction in ("sum_over_batch_size", "mean"):
        m = m * dtype.type(m.size / (m.sum() + 1e-7))
    if sample_weight is None:
        return m
    sw = np.asarray(as_tensor(sample_weight).data, dtype=dtype)
    sw = sw.reshape(sw.shape + (1,) * (m.ndim - sw.ndim)) if sw.ndim < m.ndim else sw
    return sw * m


class Loss:
    """Keras's Loss: subclasses implement ``call(y_true, y_pred)`` returning per-sample
    values; ``__call__`` applies ``sample_weight`` and the ``reduction``."""
    name = None

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {list(REDUCTIONS)}; received "
                             f"{reduction!r}")
        self.name = name or type(self).name or _snake(type(self).__name__)
        self.reduction = reduction
        self.dtype = dtype

    def __call__(self, y_true, y_pred, sample_weight=None):
        mask = getattr(y_pred, "_keras_mask", None)
        y_pred = as_tensor(y_pred)
        values = self.call(y_true, y_pred)
        own = getattr(values, "_keras_mask", None)      # ignore_class's labels
        if own is not None:
            mask = own if mask is None else np.logical_and(getattr(mask, "data", mask), own)
        return reduce_weighted_values(values, sample_weight, self.reduction, mask=mask)

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _snake(name):
    import re
    return re.sub("([a-z0-9])([A-Z])", r"\1_\2", name).lower()


class LossFunctionWrapper(Loss):
    """A per-sample function ``fn(y_true, y_pred, **kwargs)`` as a Loss."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "loss"), reduction=reduction,
                         dtype=dtype)
        self.fn, self._fn_kwargs = fn, kwargs

    def call(self, y_true, y_pred):
        out = self.fn(y_true, y_pred, **self._fn_kwargs)
        if not isinstance(out, Tensor):
            raise TypeError(f"loss function {self.name!r} returned {type(out).__name__}; it "
                            "must return a Tensor (build it from wsekern.nn.ops so that it "
                            "carries gradients)")
        return out

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


def _float_pair(y_true, y_pred):
    y_pred = as_tensor(y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = Tensor(y_pred.data.astype(np.float32))
    y_true = as_tensor(y_true)
    if y_true.requires_grad and y_true.dtype.kind == "f":
        y_true = cast(y_true, y_pred.dtype)     # Keras differentiates in targets made by
    else:                                       # a model (a teacher's, a discriminator's)
        y_true = Tensor(np.asarray(y_true.data, dtype=y_pred.dtype))
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


# -- per-sample loss functions (Keras 3's formulas; mean over the last axis) ------------------
def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _float_pair(y_true, y_pred)
    d = y_pred - y_true
    return mean(d * d, axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _float_pair(y_true, y_pred)
    return mean(absolute(y_pred - y_true), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _float_pair(y_true, y_pred)
    if y_true.requires_grad:
        scale = extremum(absolute(y_true), EPSILON, take_max=True)
        return mean(absolute((y_true - y_pred) / scale), axis=-1) * 100.0
    scale = np.maximum(np.abs(y_true.data), EPSILON)
    return mean(absolute((y_true - y_pred) * (1.0 / scale)), axis=-1) * 100.0


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _float_pair(y_true, y_pred)
    first = log1p(extremum(y_pred, EPSILON, take_max=True))
    second = log1p(extremum(y_true, EPSILON, take_max=True)) if y_true.requires_grad else \
        np.log1p(np.maximum(y_true.data, EPSILON))
    d = first - second
    return mean(d * d, axis=-1)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _float_pair(y_true, y_pred)
    err = y_pred - y_true
    small = np.abs(err.data) <= delta
    quad = err * err * 0.5
    lin = absolute(err) * delta - 0.5 * delta * delta
    return mean(where(small, quad, lin), axis=-1)


def log_cosh(y_true, y_pred):
    """mean(log(cosh(d))) written as d + softplus(-2d) - log 2 (no overflow)."""
    y_true, y_pred = _float_pair(y_true, y_pred)
    d = y_pred - y_true
    v = d.data
    out = v + np.logaddexp(0, -2 * v) - np.log(2.0)
    lc = Tensor(out.astype(v.dtype, copy=False), parents=(d,),
                backward=lambda g: d.accumulate((g * np.tanh(v)).astype(v.dtype, copy=False)))
    return mean(lc, axis=-1)


def kl_divergence(y_true, y_pred):
    y_true, y_pred = _float_pair(y_true, y_pred)
    t = clip(y_true, EPSILON, 1)                # a Tensor: the gradient reaches y_true
    p = clip(y_pred, EPSILON, 1)
    return tsum(t * log(t / p), axis=-1)


def poisson(y_true, y_pred):
    y_true, y_pred = _float_pair(y_true, y_pred)
    return mean(y_pred - log(y_pred + EPSILON) * y_true, axis=-1)


def _hinge_labels(y_true):
    """{0, 1} labels become {-1, 1}, as Keras converts them; others pass unchanged."""
    t = y_true.data
    if t.size and np.all((t == 0) | (t == 1)):
        return y_true * 2.0 - 1.0           # (a Tensor: differentiable, as Keras's)
    return y_true


def hinge(y_true, y_pred):
    y_true, y_pred = _float_pair(y_true, y_pred)
    t = _hinge_labels(y_true)
    return mean(_relu(1.0 - t * y_pred), axis=-1)


def squared_hinge(y_true, y_pred):
    y_true, y_pred = _float_pair(y_true, y_pred)
    t = _hinge_labels(y_true)
    h = _relu(1.0 - t * y_pred)
    return mean(h * h, axis=-1)


def categorical_hinge(y_true, y_pred):
    y_true, y_pred = _float_pair(y_true, y_pred)
    pos = tsum(y_pred * y_true, axis=-1)
    neg = reduce_extremum(y_pred * (1.0 - y_true), axis=-1, take_max=True)
    return _relu(neg - pos + 1.0)


_INV_EPSILON = 1e7          # 1 / keras.backend.epsilon()


def _keras_inverse_norm(a, axis):
    """(sum of squares, Keras's ops.normalize factor min(rsqrt(s), 1/epsilon)) of ``a``."""
    s = (a * a).sum(axis, keepdims=True)
    with np.errstate(divide="ignore"):
        inv = np.minimum(1 / np.sqrt(s), a.dtype.type(_INV_EPSILON))
    return s, inv


def cosine_similarity(y_true, y_pred, axis=-1):
    """-sum(l2_normalize(y_true) * l2_normalize(y_pred)): -1 for aligned vectors.

    Keras 3's numerics, as one node: each vector times min(rsqrt(sum of squares), 1e7), so
    a zero row's value is 0, and its gradient what Keras's autodiff gives - finite (the
    1e7 factor) for a nonzero row under the clamp, NaN for an all-zero prediction row
    (rsqrt's infinite slope times the clamp's zero), as Keras's step on it."""
    y_true, y_pred = _float_pair(y_true, y_pred)
    t_s, t_inv = _keras_inverse_norm(y_true.data, axis)
    t = y_true.data * t_inv
    p = y_pred.data
    s, inv = _keras_inverse_norm(p, axis)
    out = -(t * p * inv).sum(axis)

    def backward(g):
        g = np.expand_dims(np.asarray(g, dtype=p.dtype), axis)
        y_pred.accumulate(_cosine_grad(p, s, inv, t, g, axis))
        if y_true.requires_grad:            # the same form with the roles swapped
            y_true.accumulate(_cosine_grad(y_true.data, t_s, t_inv, p * inv, g, axis))
    return Tensor(out.astype(p.dtype, copy=False), parents=(y_pred, y_true),
                  backward=backward)


def _cosine_grad(x, s, inv, other, g, axis):
    """d/dx of -sum(other * x * inv(x)) times ``g``, ``inv`` Keras's clamped rsqrt of
    ``s`` = sum(x * x)."""
    dot = (other * x).sum(axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1 / np.sqrt(s)                                             # rsqrt, inf at 0
        c = x.dtype.type(_INV_EPSILON)
        # d inv / d s: rsqrt's slope below the clamp, half of it at a tie (the min's
        # gradient split evenly, as torch's), none above it - but NaN at s = 0
        slope = np.where(r < c, -0.5 * r ** 3, np.where(
            r == c, -0.25 * r ** 3, np.where(s == 0, np.nan, 0.0))).astype(x.dtype)
        return -g * (other * inv + 2 * x * slope * dot)


def _relu(x):
    return extremum(x, 0.0, take_max=True)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _float_pair(y_true, y_pred)
    if not from_logits:     # with logits Keras computes any target (torch's loss with logits)
        _check_probabilities(y_true.data, "binary_crossentropy")
    y = y_true.data
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    elementwise = _binary_elementwise(y, y_pred, from_logits)
    if y_true.requires_grad:                # d loss / d y: -z with logits, else log((1-p)/p)
        z = y_pred.data
        if from_logits:
            d = -z
        else:
            p = np.clip(z, EPSILON, 1 - EPSILON)
            d = np.log(1 - p) - np.log(p)
        elementwise = _with_target_grad(elementwise, y_true, d * (1.0 - label_smoothing))
    return mean(elementwise, axis=axis)


def _with_target_grad(value, y_true, d):
    """``value`` also differentiable in ``y_true``: ``d`` its derivative there (the fused
    losses compute only the one in y_pred), ``value`` of y_true's shape or one axis less."""
    def backward(g):
        value.accumulate(g)
        g = np.asarray(g)
        y_true.accumulate((g if g.ndim == d.ndim else g[..., None]) * d)
    return Tensor(value.data, parents=(value, y_true), backward=backward)


def _check_probabilities(y, loss):
    """Binary targets are probabilities: outside [0, 1] the loss goes negative and training
    minimises nonsense (Keras on PyTorch refuses them too, but with logits). Class ids
    0..9 given to a one-unit sigmoid model are the usual cause."""
    if y.size and not (y.min() >= 0 and y.max() <= 1):     # NaN fails both
        finite = y[~np.isnan(y)]
        seen = (f"values from {finite.min():g} to {finite.max():g}" if finite.size else "")
        seen += (" and " if seen and finite.size < y.size else "")
        seen += "NaN" if finite.size < y.size else ""
        raise ValueError(f"{loss} targets must be in [0, 1] (0/1 labels or probabilities); "
                         f"received {seen}. For class ids use sparse_categorical_crossentropy "
                         f"with one output per class")


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_pred = as_tensor(y_pred)
    y_true = as_tensor(y_true)
    y = np.asarray(y_true.data, dtype=y_pred.dtype)
    if y.shape != y_pred.shape:
        raise ValueError(f"categorical targets must have the predictions' shape "
                         f"{y_pred.shape}; received {y.shape} (use sparse_categorical_"
                         f"crossentropy for integer labels)")
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + label_smoothing / y.shape[-1]
    if axis not in (-1, y.ndim - 1):
        raise NotImplementedError("categorical_crossentropy over an axis other than the last")
    loss = _categorical(y_pred, y, from_logits, sparse=False)
    if y_true.requires_grad and y_true.dtype.kind == "f":     # d loss / d y = -log(p)
        p = y_pred.data
        logp = _log_softmax(p) if from_logits else np.log(
            np.clip(p / p.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON))
        loss = _with_target_grad(loss, y_true, (-(1.0 - label_smoothing) * logp)
                                 .astype(y_true.dtype, copy=False))
    return loss


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    y_pred = as_tensor(y_pred)
    p = y_pred.data
    if axis not in (-1, p.ndim - 1):
        raise NotImplementedError("sparse_categorical_crossentropy over an axis other than "
                                  "the last")
    y = np.asarray(as_tensor(y_true).data)
    if y.ndim == p.ndim and y.shape[-1] == 1:
        y = y[..., 0]
    ignored = None
    if ignore_class is not None:
        ignored = y == ignore_class
        y = np.where(ignored, 0, y)
    y = _labels(y, p.shape[-1]).reshape(p.shape[:-1])
    out = _categorical(y_pred, y, from_logits, sparse=True)
    if ignored is None:
        return out
    out = where(~ignored, out, 0.0)
    out._keras_mask = ~ignored      # as Keras: a mean is over the labels not ignored
    return out


def _categorical(y_pred, y, from_logits, sparse):
    """Per-sample cross-entropy with a fused backward (softmax-minus-onehot for logits)."""
    p = y_pred.data
    if from_logits:
        logp = _log_softmax(p)
        soft = np.exp(logp)
    else:
        # Keras renormalises the probabilities, then clips them.
        q = p / p.sum(axis=-1, keepdims=True)
        clipped = np.clip(q, EPSILON, 1 - EPSILON)
        logp = np.log(clipped)
    if sparse:
        loss = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    else:
        loss = -(y * logp).sum(axis=-1)

    def backward(g):
        onehot = y if not sparse else _onehot(y, p.shape[-1], p.dtype)
        g = g[..., None]
        if from_logits:
            grad = soft * onehot.sum(axis=-1, keepdims=True) - onehot
        else:
            s = p.sum(axis=-1, keepdims=True)
            inside = ((q > EPSILON) & (q < 1 - EPSILON)).astype(p.dtype)
            gq = -onehot / clipped * inside                               # d loss / d q
            grad = (gq - (gq * q).sum(axis=-1, keepdims=True)) / s      # through q = p / sum(p)
        y_pred.accumulate((g * grad).astype(p.dtype, copy=False))
    return Tensor(np.asarray(loss, dtype=p.dtype), parents=(y_pred,), backward=backward)


def _onehot(y, n, dtype):
    out = np.zeros(y.shape + (n,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def _binary_elementwise(y, y_pred, from_logits):
    """Elementwise binary cross-entropy with its derivative in closed form."""
    z = y_pred.data
    if from_logits:
        # max(z, 0) - z * y + log(1 + exp(-|z|)), the stable form
        loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        grad = 0.5 * (1 + np.tanh(0.5 * z)) - y
    else:
        p = np.clip(z, EPSILON, 1 - EPSILON)
        loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        inside = ((z > EPSILON) & (z < 1 - EPSILON)).astype(z.dtype)
        grad = (-(y / p) + (1 - y) / (1 - p)) * inside
    return Tensor(np.asarray(loss, dtype=z.dtype), parents=(y_pred,),
                  backward=lambda g: y_pred.accumulate((g * grad).astype(z.dtype, copy=False)))


def _wrapper(fn, default_name, **defaults):
    """A Loss class around a per-sample function, with Keras's constructor arguments."""
    names = list(defaults)

    def __init__(self, *args, reduction="sum_over_batch_size", name=default_name, dtype=None,
                 **kwargs):
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional "
                            f"arguments; received {len(args)}")
        values = {**defaults, **dict(zip(names, args)), **kwargs}
        unknown = set(values) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments "
                            f"{sorted(unknown)}")
        LossFunctionWrapper.__init__(self, fn, reduction=reduction, name=name, dtype=dtype,
                                     **values)
        for k, v in values.items():
            setattr(self, k, v)
    return {"__init__": __init__, "name": default_name}


def _loss_class(cls_name, fn, default_name, **defaults):
    return type(cls_name, (LossFunctionWrapper,), _wrapper(fn, default_name, **defaults))


MeanSquaredError = _loss_class("MeanSquaredError", mean_squared_error, "mean_squared_error")
MeanAbsoluteError = _loss_class("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error")
MeanAbsolutePercentageError = _loss_class("MeanAbsolutePercentageError",
                                          mean_absolute_percentage_error,
                                          "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _loss_class("MeanSquaredLogarithmicError",
                                          mean_squared_logarithmic_error,
                                          "mean_squared_logarithmic_error")
Huber = _loss_class("Huber", huber, "huber_loss", delta=1.0)
LogCosh = _loss_class("LogCosh", log_cosh, "log_cosh")
KLDivergence = _loss_class("KLDivergence", kl_divergence, "kl_divergence")
Poisson = _loss_class("Poisson", poisson, "poisson")
Hinge = _loss_class("Hinge", hinge, "hinge")
SquaredHinge = _loss_class("SquaredHinge", squared_hinge, "squared_hinge")
CategoricalHinge = _loss_class("CategoricalHinge", categorical_hinge, "categorical_hinge")
CosineSimilarity = _loss_class("CosineSimilarity", cosine_similarity, "cosine_similarity",
                               axis=-1)
BinaryCrossentropy = _loss_class("BinaryCrossentropy", binary_crossentropy,
                                 "binary_crossentropy", from_logits=False, label_smoothing=0.0,
                                 axis=-1)
CategoricalCrossentropy = _loss_class("CategoricalCrossentropy", categorical_crossentropy,
                                      "categorical_crossentropy", from_logits=False,
                                      label_smoothing=0.0, axis=-1)
SparseCategoricalCrossentropy = _loss_class("SparseCategoricalCrossentropy",
                                            sparse_categorical_crossentropy,
                                            "sparse_categorical_crossentropy", from_logits=False,
                                            ignore_class=None, axis=-1)

_FUNCTIONS = {
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mape": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "msle": mean_squared_logarithmic_error,
    "huber": huber, "log_cosh": log_cosh, "logcosh": log_cosh,
    "kl_divergence": kl_divergence, "kld": kl_divergence,
    "kullback_leibler_divergence": kl_divergence, "poisson": poisson, "hinge": hinge,
    "squared_hinge": squared_hinge, "categorical_hinge": categorical_hinge,
    "cosine_similarity": cosine_similarity, "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}
_CLASSES = {c.__name__: c for c in (
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, Huber, LogCosh, KLDivergence, Poisson, Hinge, SquaredHinge,
    CategoricalHinge, CosineSimilarity, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy)}
_BY_FUNCTION = {fn: _CLASSES[c] for fn, c in (
    (mean_squared_error, "MeanSquaredError"), (mean_absolute_error, "MeanAbsoluteError"),
    (mean_absolute_percentage_error, "MeanAbsolutePercentageError"),
    (mean_squared_logarithmic_error, "MeanSquaredLogarithmicError"), (huber, "Huber"),
    (log_cosh, "LogCosh"), (kl_divergence, "KLDivergence"), (poisson, "Poisson"),
    (hinge, "Hinge"), (squared_hinge, "SquaredHinge"), (categorical_hinge, "CategoricalHinge"),
    (cosine_similarity, "CosineSimilarity"), (binary_crossentropy, "BinaryCrossentropy"),
    (categorical_crossentropy, "CategoricalCrossentropy"),
    (sparse_categorical_crossentropy, "SparseCategoricalCrossentropy"))}


def get(identifier):
    """``keras.losses.get``: a function's name or alias (``"mse"``) gives the per-sample
    function (``get("mse")(y, p)`` has shape ``(n,)``); a class name, a Loss class or a
    serialized dict gives a Loss object (which reduces to a scalar); a Loss or a function
    is returned as is, and None as None. ``compile`` resolves its losses with
    :func:`as_loss`."""
    if identifier is None:
        return None
    return registry.resolve(
        identifier, Loss, "loss", deserialize=deserialize,
        by_name=lambda name: _FUNCTIONS.get(name) or (
            _CLASSES[name]() if name in _CLASSES else None),
        from_callable=lambda fn: None if isinstance(fn, type) else fn,
        expected=f"{sorted(_FUNCTIONS)}, {sorted(_CLASSES)}, a Loss, or a function "
                 f"fn(y_true, y_pred)")


def as_loss(identifier):
    """A Loss object from Keras's names and aliases, a Loss class or instance, a serialized
    dict, a registered custom name, or a function ``fn(y_true, y_pred)`` returning
    per-sample values (or a scalar), which is wrapped so that the batch mean is taken:
    what ``compile(loss=...)`` makes of its argument."""
    def by_name(name):
        if name in _FUNCTIONS:
            return _BY_FUNCTION[_FUNCTIONS[name]]()
        return _CLASSES[name]() if name in _CLASSES else None

    def from_callable(fn):
        if isinstance(fn, type):
            return None
        return _BY_FUNCTION[fn]() if fn in _BY_FUNCTION else LossFunctionWrapper(fn)
    return registry.resolve(identifier, Loss, "loss", by_name=by_name, deserialize=deserialize,
                            from_callable=from_callable,
                            expected=f"{sorted(_FUNCTIONS)}, a Loss, or a function "
                                     "fn(y_true, y_pred) returning per-sample values")


def serialize(loss):
    if type(loss) is LossFunctionWrapper:
        return {"class_name": "function", "config": registry.get_registered_name(loss.fn)}
    return registry.serialize_object(loss, _CLASSES)


def deserialize(config, custom_objects=None):
    if isinstance(config, dict) and config.get("class_name") == "function":
        name = config["config"]
        fn = registry.get_registered_object(name, custom_objects, _FUNCTIONS)
        if fn is None:
            raise ValueError(f"unknown loss function {name!r}: register it with "
                             "register_keras_serializable or pass it in custom_objects")
        return as_loss(fn)
    return registry.deserialize_object(config, _CLASSES, "loss", custom_objects)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence
logcosh = log_cosh
