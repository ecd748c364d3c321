"""Keras 3's metrics: stateful objects with ``update_state / result / reset_state``.

State lives in ``MetricVariable``s made by ``add_variable`` (so ``reset_state`` can put
every one back to its initial value, and custom subclasses written for Keras run
unchanged); results are computed in float64 from the batch values and returned as
Python floats' 0-d Tensors, as Keras returns scalar tensors.
"""
import re
import warnings

import numpy as np

from . import losses as _losses
from . import registry
from .tensor import Tensor, array_protocol

EPSILON = 1e-7


def _np(x, dtype=None):
    arr = np.asarray(x.data if isinstance(x, Tensor) else
                     (x.value if isinstance(x, MetricVariable) else x))
    return arr if dtype is None else arr.astype(dtype, copy=False)


class MetricVariable:
    """A metric's state array with Keras's ``assign / assign_add / assign_sub``."""

    def __init__(self, value, name):
        self.value = np.array(value)
        self.initial = self.value.copy()
        self.name = name

    def assign(self, value):
        self.value[...] = _np(value)
        return self

    def assign_add(self, value):
        self.value += _np(value).astype(self.value.dtype, copy=False)
        return self

    def assign_sub(self, value):
        self.value -= _np(value).astype(self.value.dtype, copy=False)
        return self

    def numpy(self):
        return self.value.copy()

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def data(self):          # so ops and arithmetic accept it like a Tensor
        return self.value

    def __array__(self, dtype=None, copy=None):
        return array_protocol(np.asarray(self.value), dtype, copy)

    def __float__(self):
        return float(self.value)

    def __repr__(self):
        return f"<MetricVariable {self.name!r} value={self.value!r}>"


def _snake(name):
    s = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z0-9])([A-Z])", r"\1_\2", s).lower()


class Metric:
    """Base class: subclasses create state with ``add_variable`` in ``__init__`` and define
    ``update_state(y_true, y_pred, sample_weight=None)`` and ``result()``."""

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.dtype = np.dtype(dtype or "float32")
        self._metric_variables = []

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum",
                     name=None):
        if callable(initializer):
            value = np.asarray(initializer(tuple(shape), dtype=dtype or self.dtype))
        elif initializer in ("zeros", None):
            value = np.zeros(shape, dtype=dtype or self.dtype)
        elif initializer == "ones":
            value = np.ones(shape, dtype=dtype or self.dtype)
        else:
            raise ValueError(f"metric variable initializer must be 'zeros', 'ones' or a "
                             f"callable; received {initializer!r}")
        v = MetricVariable(value, name or f"variable_{len(self._metric_variables)}")
        self._metric_variables.append(v)
        return v

    add_weight = add_variable

    @property
    def variables(self):
        return list(self._metric_variables)

    def reset_state(self):
        for v in self._metric_variables:
            v.value[...] = v.initial

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result")

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _result(value):
    return Tensor(np.asarray(value, dtype=np.float32))


def _samplewise(values, sample_weight, reduce_fn):
    """Keras's reduce_to_samplewise_values: weights broadcast against the values, values
    reduced over the axes the weights do not have, then over all but the batch axis."""
    values = _np(values, np.float64)
    sw = None
    if sample_weight is not None:
        sw = _np(sample_weight, np.float64)
        v_t, sw_t = _losses.squeeze_or_expand_to_same_rank(Tensor(values), Tensor(sw))
        values, sw = v_t.data, sw_t.data
        if values.ndim > sw.ndim:
            values = reduce_fn(values, axis=tuple(range(sw.ndim, values.ndim)))
        try:
            sw = np.broadcast_to(sw, values.shape)
        except ValueError:
            raise ValueError(f"sample_weight of shape {sw.shape} does not broadcast to the "
                             f"metric values of shape {values.shape}") from None
        values = values * sw
        if sw.ndim > 1:
            sw = reduce_fn(sw, axis=tuple(range(1, sw.ndim)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sw


class Mean(Metric):
    """Weighted mean of the values seen: total / count."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total", dtype=np.float64)
        self.count = self.add_variable((), name="count", dtype=np.float64)

    def update_state(self, values, sample_weight=None):
        values, sw = _samplewise(values, sample_weight, np.mean)
        self.total.assign_add(values.sum())
        self.count.assign_add(sw.sum() if sw is not None else (values.shape[0]
                                                               if values.ndim else 1))

    def result(self):
        c = float(self.count.value)
        return _result(float(self.total.value) / c if c else 0.0)


class Sum(Metric):
    """Weighted sum of the values seen."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total", dtype=np.float64)

    def update_state(self, values, sample_weight=None):
        values, _ = _samplewise(values, sample_weight, np.sum)
        self.total.assign_add(values.sum())

    def result(self):
        return _result(self.total.value)


class MeanMetricWrapper(Mean):
    """The mean of a per-sample function ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "metric"), dtype=dtype)
        self._fn, self._fn_kwargs = fn, kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


# -- per-sample metric functions (Keras 3's) ---------------------------------------------
def _pair(y_true, y_pred):
    y_pred = _np(y_pred)
    y_true = _np(y_true)
    t, p = _losses.squeeze_or_expand_to_same_rank(Tensor(y_true), Tensor(y_pred))
    return t.data, p.data


def accuracy(y_true, y_pred):
    t, p = _pair(y_true, y_pred)
    return (t.astype(p.dtype, copy=False) == p).astype(np.float32)      # in y_pred's dtype


def binary_accuracy(y_true, y_pred, threshold=0.5):
    t, p = _pair(y_true, y_pred)
    return (t == (p > threshold)).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    t = np.argmax(_np(y_true), axis=-1)
    return (t == np.argmax(_np(y_pred), axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    p = _np(y_pred)
    t = _np(y_true)
    if t.ndim == p.ndim and t.shape[-1] == 1:
        t = t[..., 0]
    return (t == np.argmax(p, axis=-1)).astype(np.float32)


def _in_top_k(targets, predictions, k):
    """Whether the target's score is among the top k (ties with the k-th count, as Keras's
    in_top_k); a non-finite target score never counts."""
    k = min(int(k), predictions.shape[-1])
    kth = -np.sort(-predictions, axis=-1)[..., k - 1]
    target = np.take_along_axis(predictions, targets[..., None].astype(np.int64), -1)[..., 0]
    return ((target >= kth) & np.isfinite(target)).astype(np.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(np.argmax(_np(y_true), axis=-1), _np(y_pred), k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    t, p = _np(y_true), _np(y_pred)
    if t.ndim == p.ndim and t.shape[-1] == 1:
        t = t[..., 0]
    if from_sorted_ids:          # y_pred holds the top class ids, best first
        return np.any(p[..., :k] == t[..., None], axis=-1).astype(np.float32)
    return _in_top_k(t, p, k)


def _loss_metric(fn):
    """A loss function's per-sample values as plain arrays (no graph kept)."""
    def metric(y_true, y_pred, **kwargs):
        return fn(_np(y_true), Tensor(_np(y_pred)), **kwargs).data
    metric.__name__ = fn.__name__
    return metric


mean_squared_error = _loss_metric(_losses.mean_squared_error)
mean_absolute_error = _loss_metric(_losses.mean_absolute_error)
mean_absolute_percentage_error = _loss_metric(_losses.mean_absolute_percentage_error)
mean_squared_logarithmic_error = _loss_metric(_losses.mean_squared_logarithmic_error)
log_cosh_error = _loss_metric(_losses.log_cosh)
kl_divergence = _loss_metric(_losses.kl_divergence)
poisson = _loss_metric(_losses.poisson)
hinge = _loss_metric(_losses.hinge)
squared_hinge = _loss_metric(_losses.squared_hinge)
categorical_hinge = _loss_metric(_losses.categorical_hinge)
binary_crossentropy = _loss_metric(_losses.binary_crossentropy)
categorical_crossentropy = _loss_metric(_losses.categorical_crossentropy)
sparse_categorical_crossentropy = _loss_metric(_losses.sparse_categorical_crossentropy)


def cosine_similarity(y_true, y_pred, axis=-1):
    """+1 for aligned vectors (the loss of the same name is its negative)."""
    return -_losses.cosine_similarity(_np(y_true), Tensor(_np(y_pred)), axis=axis).data


def _wrapper_class(cls_name, fn, default_name, **defaults):
    names = list(defaults)

    def __init__(self, *args, name=default_name, dtype=None, **kwargs):
        values = {**defaults, **dict(zip(names, args)), **kwargs}
        unknown = set(values) - set(names)
        if unknown or len(args) > len(names):
            raise TypeError(f"{cls_name} takes {names or 'no arguments'} besides name and "
                            f"dtype; received {sorted(unknown) or args}")
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **values)
        for k, v in values.items():
            setattr(self, k, v)
    return type(cls_name, (MeanMetricWrapper,), {"__init__": __init__,
                                                  "__doc__": f"Mean of ``{fn.__name__}``."})


Accuracy = _wrapper_class("Accuracy", accuracy, "accuracy")
BinaryAccuracy = _wrapper_class("BinaryAccuracy", binary_accuracy, "binary_accuracy",
                                threshold=0.5)
CategoricalAccuracy = _wrapper_class("CategoricalAccuracy", categorical_accuracy,
                                     "categorical_accuracy")
SparseCategoricalAccuracy = _wrapper_class("SparseCategoricalAccuracy",
                                           sparse_categorical_accuracy,
                                           "sparse_categorical_accuracy")
TopKCategoricalAccuracy = _wrapper_class("TopKCategoricalAccuracy", top_k_categorical_accuracy,
                                         "top_k_categorical_accuracy", k=5)
SparseTopKCategoricalAccuracy = _wrapper_class(
    "SparseTopKCategoricalAccuracy", sparse_top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy", k=5, from_sorted_ids=False)
MeanSquaredError = _wrapper_class("MeanSquaredError", mean_squared_error, "mean_squared_error")
MeanAbsoluteError = _wrapper_class("MeanAbsoluteError", mean_absolute_error,
                                   "mean_absolute_error")
MeanAbsolutePercentageError = _wrapper_class("MeanAbsolutePercentageError",
                                             mean_absolute_percentage_error,
                                             "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _wrapper_class("MeanSquaredLogarithmicError",
                                             mean_squared_logarithmic_error,
                                             "mean_squared_logarithmic_error")
LogCoshError = _wrapper_class("LogCoshError", log_cosh_error, "logcosh")
KLDivergence = _wrapper_class("KLDivergence", kl_divergence, "kl_divergence")
Poisson = _wrapper_class("Poisson", poisson, "poisson")
Hinge = _wrapper_class("Hinge", hinge, "hinge")
SquaredHinge = _wrapper_class("SquaredHinge", squared_hinge, "squared_hinge")
CategoricalHinge = _wrapper_class("CategoricalHinge", categorical_hinge, "categorical_hinge")
CosineSimilarity = _wrapper_class("CosineSimilarity", cosine_similarity, "cosine_similarity",
                                  axis=-1)
BinaryCrossentropy = _wrapper_class("BinaryCrossentropy", binary_crossentropy,
                                    "binary_crossentropy", from_logits=False,
                                    label_smoothing=0.0)
CategoricalCrossentropy = _wrapper_class("CategoricalCrossentropy", categorical_crossentropy,
                                         "categorical_crossentropy", from_logits=False,
                                         label_smoothing=0.0)
SparseCategoricalCrossentropy = _wrapper_class("SparseCategoricalCrossentropy",
                                               sparse_categorical_crossentropy,
                                               "sparse_categorical_crossentropy",
                                               from_logits=False)


class RootMeanSquaredError(Mean):
    """sqrt of the (weighted) mean of all squared errors."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p = _pair(y_true, y_pred)
        super().update_state((p.astype(np.float64) - t) ** 2, sample_weight)

    def result(self):
        return _result(np.sqrt(float(self.total.value) / float(self.count.value))
                       if float(self.count.value) else 0.0)


# -- confusion-matrix metrics ---------------------------------------------------------------
def _thresholds(thresholds, default):
    if thresholds is None:
        return np.asarray([default], dtype=np.float64)
    t = [thresholds] if np.ndim(thresholds) == 0 else list(thresholds)
    for v in t:
        if not 0 <= v <= 1:
            raise ValueError(f"thresholds must be in [0, 1]; received {thresholds!r}")
    return np.asarray(t, dtype=np.float64)


def _evenly(thresholds):
    """Keras's is_evenly_distributed_thresholds: 0, 1/(n-1), ..., 1 with n >= 3."""
    n = len(thresholds)
    return n >= 3 and bool(np.allclose(thresholds, np.arange(n, dtype=np.float32) / (n - 1),
                                       atol=EPSILON))


def _weights_like(sample_weight, p):
    """Keras's per-sample (or per-entry) weights broadcast to the predictions ``p``: a
    weight per sample, shape (n,), weighs every label of that sample's row (n, labels)."""
    sw = _np(sample_weight, np.float64)
    while sw.ndim > p.ndim and sw.shape[-1] == 1:      # (n, 1) weights, (n,) predictions
        sw = sw[..., 0]
    if 0 < sw.ndim < p.ndim:
        sw = sw.reshape(sw.shape + (1,) * (p.ndim - sw.ndim))
    try:
        return np.broadcast_to(sw, p.shape)
    except ValueError:
        raise ValueError(f"sample_weight of shape {np.shape(sample_weight)} does not broadcast "
                         f"to the predictions' shape {p.shape}: give one weight per sample "
                         f"({p.shape[:1]}) or one per entry") from None


def _warn_outside(p, owner):
    """Keras compares predictions outside [0, 1] (logits with AUC() and a from_logits loss,
    say) with the thresholds as given (AUC's evenly spaced ones: clipped to [0, 1] first):
    so do we, saying so, as the numbers rarely mean anything. One message per metric class,
    so Python's filter shows it once, not every batch."""
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        warnings.warn(f"{owner} received predictions outside [0, 1]; they are compared "
                      "with the thresholds as Keras does. Logits? Use "
                      "AUC(from_logits=True), thresholds=0 for the counts, or a sigmoid.",
                      UserWarning, stacklevel=5)
        return True
    return False


def _confusion(y_true, y_pred, thresholds, sample_weight, top_k=None, class_id=None,
               multi_label=False, owner="a confusion-matrix metric", evenly=False):
    """(tp, fp, tn, fn) per threshold — shape (T,) or (T, labels) with ``multi_label`` —
    counting a prediction as positive when it is strictly above the threshold."""
    t, p = _pair(y_true, y_pred)
    t = t.astype(np.float64)
    p = p.astype(np.float64)
    if _warn_outside(p, owner) and evenly:
        p = np.clip(p, 0.0, 1.0)          # Keras's bucketed path (even thresholds) clips
    if t.size and not np.all((t == 0) | (t == 1)):
        raise ValueError("labels must be 0 or 1 for a confusion-matrix metric; received "
                         f"values {np.unique(t)[:5].tolist()}")
    if top_k is not None:
        kth = -np.sort(-p, axis=-1)[..., min(top_k, p.shape[-1]) - 1:min(top_k, p.shape[-1])]
        p = np.where(p >= kth, p, -np.inf)
    if class_id is not None:
        t, p = t[..., class_id], p[..., class_id]
    w = np.ones_like(p) if sample_weight is None else _weights_like(sample_weight, p)
    if multi_label:
        t2, p2, w2 = (a.reshape(-1, a.shape[-1]) for a in (t, p, w))
    else:
        t2, p2, w2 = t.reshape(-1, 1), p.reshape(-1, 1), w.reshape(-1, 1)
    above = p2[None, :, :] > thresholds[:, None, None]          # (T, N, L)
    pos, neg = t2 * w2, (1 - t2) * w2
    tp = (above * pos).sum(1)
    fp = (above * neg).sum(1)
    fn = pos.sum(0) - tp
    tn = neg.sum(0) - fp
    if not multi_label:
        tp, fp, tn, fn = tp[:, 0], fp[:, 0], tn[:, 0], fn[:, 0]
    return tp, fp, tn, fn


def _ratio(num, den):
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


class _Confusion(Metric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = _thresholds(thresholds, 0.5 if top_k is None else -1e-7)
        self._evenly = _evenly(self.thresholds)      # fixed: not per batch
        self.top_k, self.class_id = top_k, class_id
        n = len(self.thresholds)
        self.true_positives = self.add_variable((n,), name="true_positives", dtype=np.float64)
        self.false_positives = self.add_variable((n,), name="false_positives",
                                                 dtype=np.float64)
        self.false_negatives = self.add_variable((n,), name="false_negatives",
                                                 dtype=np.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        tp, fp, _, fn = _confusion(y_true, y_pred, self.thresholds, sample_weight, self.top_k,
                                   self.class_id, owner=type(self).__name__,
                                   evenly=self._evenly)
        self.true_positives.assign_add(tp)
        self.false_positives.assign_add(fp)
        self.false_negatives.assign_add(fn)

    def _out(self, values):            # one threshold (0.5, [0.5]): a scalar, as Keras
        return _result(values[0] if len(self.thresholds) == 1 else values)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds,
                "top_k": self.top_k, "class_id": self.class_id}


class Precision(_Confusion):
    """tp / (tp + fp) at each threshold (default 0.5), or of the top_k predictions."""

    def result(self):
        tp = self.true_positives.value
        return self._out(_ratio(tp, tp + self.false_positives.value))


class Recall(_Confusion):
    """tp / (tp + fn) at each threshold (default 0.5), or of the top_k predictions."""

    def result(self):
        tp = self.true_positives.value
        return self._out(_ratio(tp, tp + self.false_negatives.value))


class _Count(Metric):
    """Keras's confusion-matrix counts: the weighted number of (label, prediction > t)
    pairs of one kind at each threshold (default 0.5); a scalar for one threshold."""
    _which = None            # index in _confusion's (tp, fp, tn, fn)

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = _thresholds(thresholds, 0.5)
        self._evenly = _evenly(self.thresholds)
        self.accumulator = self.add_variable((len(self.thresholds),), name="accumulator",
                                             dtype=np.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = _confusion(y_true, y_pred, self.thresholds, sample_weight,
                            owner=type(self).__name__, evenly=self._evenly)
        self.accumulator.assign_add(counts[self._which])

    def result(self):
        v = self.accumulator.value
        return _result(v[0] if len(self.thresholds) == 1 else v)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_Count):
    _which = 0


class FalsePositives(_Count):
    _which = 1


class TrueNegatives(_Count):
    _which = 2


class FalseNegatives(_Count):
    _which = 3


class AUC(Metric):
    """Area under the ROC or PR curve from confusion counts at ``num_thresholds`` evenly
    spaced thresholds (Keras's: 0 - eps, 1/(n-1), ..., 1 + eps), summed with the
    trapezoid ("interpolation"; Davis & Goadrich's for PR), "minoring" or "majoring"."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        super().__init__(name=name or "auc", dtype=dtype)
        curve, summation_method = str(curve).upper(), str(summation_method).lower()
        if curve not in ("ROC", "PR"):
            raise ValueError(f"curve must be 'ROC' or 'PR'; received {curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError("summation_method must be 'interpolation', 'minoring' or "
                             f"'majoring'; received {summation_method!r}")
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
            num_thresholds = len(inner) + 2
            self._evenly = _evenly([0.0] + inner + [1.0])
        else:
            self._evenly = True
            if int(num_thresholds) <= 1:
                raise ValueError(f"num_thresholds must be > 1; received {num_thresholds}")
            num_thresholds = int(num_thresholds)
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = np.asarray([0.0 - EPSILON] + inner + [1.0 + EPSILON])
        self._init_thresholds = thresholds
        self.num_thresholds, self.curve, self.summation_method = (num_thresholds, curve,
                                                                  summation_method)
        self.multi_label, self.num_labels = bool(multi_label), num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights,
                                                                           np.float64)
        self.from_logits = bool(from_logits)
        shape = (num_thresholds,) if not multi_label else (num_thresholds, num_labels or 0)
        self._shape = shape
        self.true_positives = self.add_variable(shape, name="true_positives", dtype=np.float64)
        self.false_positives = self.add_variable(shape, name="false_positives",
                                                 dtype=np.float64)
        self.true_negatives = self.add_variable(shape, name="true_negatives", dtype=np.float64)
        self.false_negatives = self.add_variable(shape, name="false_negatives",
                                                 dtype=np.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = _np(y_pred, np.float64)
        if self.from_logits:
            p = 0.5 * (1 + np.tanh(0.5 * p))
        counts = _confusion(y_true, p, self.thresholds, sample_weight,
                            multi_label=self.multi_label, owner=type(self).__name__,
                            evenly=self._evenly)
        if self.multi_label and self.true_positives.value.shape[1] != counts[0].shape[1]:
            if self.num_labels is None and not self.true_positives.value.size:
                for v in self._metric_variables:       # first batch fixes the label count
                    v.value = np.zeros(counts[0].shape)
                    v.initial = v.value.copy()
            else:
                raise ValueError(f"AUC(multi_label=True) was built for "
                                 f"{self.true_positives.value.shape[1]} labels; received "
                                 f"{counts[0].shape[1]}")
        for var, c in zip((self.true_positives, self.false_positives, self.true_negatives,
                           self.false_negatives), counts):
            var.assign_add(c)

    def _pr_interpolated(self, tp, fp, fn):
        n = self.num_thresholds
        dtp = tp[:n - 1] - tp[1:]
        p = tp + fp
        dp = p[:n - 1] - p[1:]
        slope = _ratio(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:n - 1] > 0) & (p[1:] > 0)
        safe_ratio = np.where(both, _ratio(p[:n - 1], np.maximum(p[1:], 0)), 1.0)
        inc = _ratio(slope * (dtp + intercept * np.log(safe_ratio)),
                     np.maximum(tp[1:] + fn[1:], 0))
        return inc.sum(axis=0)

    def result(self):
        tp, fp = self.true_positives.value, self.false_positives.value
        tn, fn = self.true_negatives.value, self.false_negatives.value
        n = self.num_thresholds
        if self.curve == "PR" and self.summation_method == "interpolation":
            per_label = self._pr_interpolated(tp, fp, fn)
        else:
            recall = _ratio(tp, tp + fn)
            if self.curve == "ROC":
                x, y = _ratio(fp, fp + tn), recall
            else:
                x, y = recall, _ratio(tp, tp + fp)
            if self.summation_method == "interpolation":
                heights = (y[:n - 1] + y[1:]) / 2
            elif self.summation_method == "minoring":
                heights = np.minimum(y[:n - 1], y[1:])
            else:
                heights = np.maximum(y[:n - 1], y[1:])
            per_label = ((x[:n - 1] - x[1:]) * heights).sum(axis=0)
        if not self.multi_label:
            return _result(per_label)
        if self.label_weights is None:
            return _result(per_label.mean() if per_label.size else 0.0)
        return _result(_ratio((per_label * self.label_weights).sum(), self.label_weights.sum()))

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "curve": self.curve, "summation_method": self.summation_method,
                "thresholds": self._init_thresholds, "multi_label": self.multi_label,
                "num_labels": self.num_labels, "from_logits": self.from_logits,
                "label_weights": None if self.label_weights is None
                else self.label_weights.tolist()}


# -- lookup -------------------------------------------------------------------------------
_CLASSES = {c.__name__: c for c in (
    Mean, Sum, MeanMetricWrapper, Accuracy, BinaryAccuracy, CategoricalAccuracy,
    SparseCategoricalAccuracy, TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy,
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, RootMeanSquaredError, LogCoshError, KLDivergence, Poisson,
    Hinge, SquaredHinge, CategoricalHinge, CosineSimilarity, BinaryCrossentropy,
    CategoricalCrossentropy, SparseCategoricalCrossentropy, AUC, Precision, Recall,
    TruePositives, FalsePositives, TrueNegatives, FalseNegatives)}

# Keras 3's string names and aliases -> class
_NAMES = {
    "accuracy": Accuracy, "acc": Accuracy, "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "mape": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "msle": MeanSquaredLogarithmicError, "root_mean_squared_error": RootMeanSquaredError,
    "rmse": RootMeanSquaredError, "logcosh": LogCoshError, "log_cosh": LogCoshError,
    "log_cosh_error": LogCoshError, "MSE": MeanSquaredError, "MAE": MeanAbsoluteError,
    "MAPE": MeanAbsolutePercentageError, "MSLE": MeanSquaredLogarithmicError,
    "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
    "kl_divergence": KLDivergence, "kld": KLDivergence, "poisson": Poisson, "hinge": Hinge,
    "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
    "cosine_similarity": CosineSimilarity, "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "auc": AUC, "precision": Precision, "recall": Recall, "mean": Mean, "sum": Sum,
}


def get(identifier):
    """A Metric instance from a Keras name or alias (named as given, as Keras logs it), a
    class name, a Metric instance or subclass, a registered name, a serialized dict, or a
    function ``fn(y_true, y_pred)`` of per-sample values (wrapped in MeanMetricWrapper)."""
    def by_name(name):
        if name in _NAMES:
            return _NAMES[name](name=name)
        if name in _CLASSES and name != "MeanMetricWrapper":
            return _CLASSES[name](name=name)        # Keras logs a string as given: "AUC"
        return None
    if not isinstance(identifier, (Metric, type)) and any(
            c.__module__.split(".")[0] == "keras" for c in type(identifier).__mro__):
        return _from_keras(identifier)
    return registry.resolve(identifier, Metric, "metric", by_name=by_name,
                            deserialize=deserialize, from_callable=MeanMetricWrapper,
                            expected=f"{sorted(_NAMES)}, a Metric, or a function "
                                     "fn(y_true, y_pred) returning per-sample values")


def _from_keras(obj):
    """Ours for a metric object of the keras package (same class and config, so it logs
    under its name as in Keras). Calling Keras's object as a function would update its
    own running state on each call, so its values would be means of running means."""
    cls = _CLASSES.get(type(obj).__name__)
    error = None
    if cls is not None and cls is not MeanMetricWrapper and \
            type(obj).__module__.split(".")[0] == "keras":
        try:
            return cls.from_config(obj.get_config())
        except (TypeError, ValueError) as e:
            error = e
    raise TypeError(f"{type(obj).__module__}.{type(obj).__qualname__} is a Keras metric "
                    f"object{f' whose config ours cannot take ({error})' if error else ''}: "
                    f"use one of wsekern.nn.metrics (e.g. nn.metrics.MeanAbsoluteError()) "
                    f"or its name as a string")


def serialize(metric):
    return registry.serialize_object(metric, _CLASSES)


def deserialize(config, custom_objects=None):
    builtins = {k: v for k, v in _CLASSES.items() if v is not MeanMetricWrapper}
    return registry.deserialize_object(config, builtins, "metric", custom_objects)
