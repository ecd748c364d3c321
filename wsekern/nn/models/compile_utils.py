"""What ``compile`` turns its arguments into: one loss and a list of metrics per output,
and the loss weights, matched to the model's outputs by position or name as Keras does."""
import inspect
import math

import numpy as np

from .. import losses as losses_mod
from ..tensor import Tensor

_SPARSE_LOSSES = {"sparse_categorical_crossentropy"}
_ELEMENTWISE_LOSSES = {"mean_squared_error", "mse", "binary_crossentropy",
                       "categorical_crossentropy"}


def _metrics_module():
    """nn.metrics when present (stateful Metric objects), else None (the built-in fallback
    below serves 'accuracy' and functions)."""
    try:
        from .. import metrics
    except ImportError:
        return None
    return metrics


class Mean:
    """A weighted running mean with Keras's Metric methods (the loss tracker)."""

    def __init__(self, name):
        self.name = name
        self.reset_state()

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values.data if isinstance(values, Tensor) else values, np.float64)
        weight = np.ones_like(values) if sample_weight is None else np.broadcast_to(
            np.asarray(sample_weight, np.float64), values.shape)
        self.total += float((values * weight).sum())
        self.count += float(weight.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0

    def reset_state(self):
        self.total, self.count = 0.0, 0.0


class FunctionMetric(Mean):
    """``fn(y_true, y_pred)`` -> per-sample values, averaged (Keras's MeanMetricWrapper)."""

    def __init__(self, fn, name):
        super().__init__(name)
        self.fn = fn

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.fn(y_true, y_pred)
        values = np.asarray(values.data if isinstance(values, Tensor) else values, np.float64)
        if sample_weight is not None and values.ndim:
            sample_weight = np.asarray(sample_weight, np.float64).reshape(
                (len(values),) + (1,) * (values.ndim - 1))
        super().update_state(values, sample_weight)


class CompileMetrics:
    """Keras's CompileMetrics: every output's compiled metrics behind the one entry of
    ``model.metrics`` named 'compile_metrics'. ``update_state(y, y_pred, sample_weight)``
    gives the weights to ``weighted_metrics`` only (``metrics=`` stay unweighted, so a custom
    train_step's ``m.update_state(y, y_pred, sample_weight=sw)`` over ``model.metrics``
    weights what Keras weights) and a prediction's mask to the metrics that take it;
    ``result()`` is a dict by log name ('b_accuracy', 'weighted_mae', ...)."""

    name = "compile_metrics"

    def __init__(self, model):
        self._model = model         # its outputs, targets and weights lists

    @property
    def built(self):
        return self._model._compiled_outputs is not None

    def _entries(self):
        return [e for *_, ms in (self._model._compiled_outputs or []) for e in ms]

    @property
    def metrics(self):
        """The metric objects, Keras's order: every output's ``metrics``, then every
        output's ``weighted_metrics`` ([] before the first batch resolves them)."""
        entries = self._entries()
        return ([m for _, m, w in entries if not w] + [m for _, m, w in entries if w])

    @property
    def variables(self):
        return [v for m in self.metrics for v in getattr(m, "variables", [])]

    def update_state(self, y_true, y_pred, sample_weight=None):
        model = self._model
        for (_, _, _, ms), out, target, weights in zip(
                model._resolve_outputs(), model._outputs_list(y_pred),
                model._targets_list(y_true), model._weights_list(sample_weight)):
            if target is None:
                continue
            pred = out.data if isinstance(out, Tensor) else np.asarray(out)
            mask = getattr(out, "_keras_mask", None)
            target = np.asarray(target.data if isinstance(target, Tensor) else target)
            for _, metric, weighted in ms:
                sw = weights if weighted else None
                if mask is not None and takes_mask(metric):
                    sw = masked_weights(mask, sw)
                metric.update_state(target, pred, sample_weight=sw)

    def result(self):
        return {key: float(np.asarray(metric.result()))
                for key, metric, _ in self._entries_resolved()}

    def _entries_resolved(self):
        return [e for *_, ms in self._model._resolve_outputs() for e in ms]

    def reset_state(self):
        for m in self.metrics:
            m.reset_state()

    def __repr__(self):
        return f"<CompileMetrics {[m.name for m in self.metrics]}>"


def _accuracy_fn(kind):
    def accuracy(y_true, y_pred):
        p = np.asarray(y_pred)
        y = np.asarray(y_true)
        if kind == "binary":
            return ((p > 0.5) == (y.reshape(p.shape) > 0.5)).astype(np.float64)
        pred = p.argmax(axis=-1)
        if kind == "categorical":
            return (pred == y.argmax(axis=-1)).astype(np.float64)
        if y.ndim == pred.ndim + 1:
            y = y[..., 0]
        return (pred == y.reshape(pred.shape)).astype(np.float64)
    return accuracy


def _abs_error(y_true, y_pred):
    p = np.asarray(y_pred, np.float64)
    return np.abs(np.asarray(y_true, np.float64).reshape(p.shape) - p).mean(axis=-1)


def _squared_error(y_true, y_pred):
    p = np.asarray(y_pred, np.float64)
    return ((np.asarray(y_true, np.float64).reshape(p.shape) - p) ** 2).mean(axis=-1)


_ERRORS = {"mae": _abs_error, "mean_absolute_error": _abs_error, "mse": _squared_error,
           "mean_squared_error": _squared_error}
_ACCURACY_KINDS = {"sparse_categorical_accuracy": "sparse", "categorical_accuracy": "categorical",
                   "binary_accuracy": "binary"}


def loss_name(loss):
    return getattr(loss, "name", None) or getattr(loss, "__name__", None) or "custom"


def _accuracy_kind(y_true, y_pred):
    """Keras 3's choice for 'accuracy' (``is_binary_or_sparse_categorical``), from the
    shapes, whatever the loss: one output column -> binary; labels of lower rank, or one
    label column against several outputs -> sparse categorical; else categorical."""
    t, p = np.shape(y_true), np.shape(y_pred)
    if p[-1:] == (1,):
        return "binary"
    if len(t) < len(p) or (t[-1:] == (1,) and p[-1:] != (1,)):
        return "sparse"
    return "categorical"


def _shape_accuracy(module):
    """'accuracy' as a per-sample function that picks its kind by the shapes on each call
    (they are fixed per output): the loss named in compile does not decide it in Keras 3,
    so an MSE or hinge model with a (n, 1) output gets binary accuracy, not argmax of one
    column (always 0), and one-hot targets under a KL loss no longer fail to broadcast."""
    return accuracy


def accuracy(y_true, y_pred):
    """'accuracy' by the shapes (see _shape_accuracy): a module-level function, not a
    closure, so that a model compiled with it pickles."""
    module = _metrics_module()
    fns = {"binary": module.binary_accuracy, "sparse": module.sparse_categorical_accuracy,
           "categorical": module.categorical_accuracy}
    return fns[_accuracy_kind(y_true, y_pred)](y_true, y_pred)


def resolve_metric(identifier):
    """A metric object for ``identifier``; 'accuracy'/'acc' is binary, sparse categorical
    or categorical accuracy by the shapes of the targets and predictions, as in Keras 3."""
    display = identifier if isinstance(identifier, str) else None
    module = _metrics_module()
    if display is not None and display.lower() in ("accuracy", "acc"):   # Keras: any case
        if module is None:
            return FunctionMetric(lambda t, p: _accuracy_fn(_accuracy_kind(t, p))(t, p),
                                  display)
        return module.MeanMetricWrapper(_shape_accuracy(module), name=display)
    if module is not None:
        return module.get(identifier)
    if isinstance(identifier, str) and identifier in _ACCURACY_KINDS:
        return FunctionMetric(_accuracy_fn(_ACCURACY_KINDS[identifier]),
                              display or identifier)
    if isinstance(identifier, str) and identifier in _ERRORS:
        return FunctionMetric(_ERRORS[identifier], display or identifier)
    if callable(identifier) and not isinstance(identifier, type):
        return FunctionMetric(identifier, getattr(identifier, "__name__", "metric"))
    raise ValueError(f"unknown metric {identifier!r}; available: 'accuracy', "
                     f"{sorted(_ACCURACY_KINDS)} or a function fn(y_true, y_pred) returning "
                     f"per-sample values")


def takes_mask(metric):
    """Keras's MeanMetricWrapper (accuracy, the errors, ...) weights its per-step values by
    the predictions' mask; the confusion metrics and custom Metric classes see no mask."""
    module = _metrics_module()
    return module is not None and isinstance(metric, module.MeanMetricWrapper)


def masked_weights(mask, sample_weight):
    """The mask as metric weights (padded steps 0), times per-sample weights broadcast over
    the steps: a mean is then over the real steps only, as in Keras."""
    m = np.asarray(getattr(mask, "data", mask), dtype=np.float64)
    if sample_weight is None:
        return m
    sw = np.asarray(sample_weight, dtype=np.float64)
    return sw.reshape(sw.shape + (1,) * (m.ndim - sw.ndim)) * m if sw.ndim < m.ndim else sw * m


def per_output(value, output_names, what):
    """Spread a compile argument over the outputs: one value for every output, a list in
    output order, or a dict keyed by output name (missing names get None)."""
    n = len(output_names)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(output_names))
        if unknown:
            raise ValueError(f"compile({what}=...) names {unknown}, which are not outputs of "
                             f"the model; its outputs are {output_names}")
        return [value.get(name) for name in output_names]
    if isinstance(value, (list, tuple)) and what != "metrics":
        if len(value) != n:
            raise ValueError(f"compile({what}=...) has {len(value)} entries for a model with "
                             f"{n} outputs {output_names}")
        return list(value)
    return [value] * n


def metrics_per_output(metrics, output_names, what="metrics"):
    """Keras 3's forms: a list for a one-output model; for several outputs a list with one
    entry per output (a metric or a list of them) or a dict output name -> metric(s). A
    list of another length on a multi-output model is refused, as Keras refuses it."""
    n = len(output_names)
    if metrics is None:
        return [[] for _ in range(n)]
    if isinstance(metrics, dict):
        spread = per_output(metrics, output_names, what)
        return [[] if m is None else (list(m) if isinstance(m, (list, tuple)) else [m])
                for m in spread]
    metrics = list(metrics)
    if n <= 1:
        return [list(metrics) for _ in range(n)]
    if len(metrics) != n:
        raise ValueError(f"compile({what}={metrics!r:.120}) has {len(metrics)} entries for a "
                         f"model with {n} outputs {list(output_names)}: give one entry per "
                         f"output, in order (a metric, a list of them, or None), or a dict by "
                         f"output name; Keras refuses a list of another length too")
    return [[] if m is None else (list(m) if isinstance(m, (list, tuple)) else [m])
            for m in metrics]


def accepts_sample_weight(fn):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "sample_weight" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def check_targets(loss, y, y_pred, output_name):
    """A clear message when ``y`` cannot be the targets of ``y_pred`` for this loss."""
    y = np.asarray(y)
    p_shape = tuple(y_pred.shape)
    n = p_shape[0] if p_shape else 0
    name = loss_name(loss)
    where = f" for output {output_name!r}" if output_name else ""
    if name in _SPARSE_LOSSES:
        want = math.prod(p_shape[:-1])
        if y.size != want:
            per = "" if len(p_shape) == 2 else f" ({want // max(n, 1)} per sample)"
            raise ValueError(f"expected y{where} with {want} labels{per} for {n} samples; "
                             f"received shape {y.shape}")
    elif name in _ELEMENTWISE_LOSSES and y.size != math.prod(p_shape):
        raise ValueError(f"expected y{where} with the predictions' shape {p_shape} "
                         f"({math.prod(p_shape)} values for {n} samples); received shape "
                         f"{y.shape}")


def reduce_loss(value, sample_weight):
    """A loss function's result as a scalar Tensor: a scalar as is; per-sample values
    weighted and averaged over the batch (Keras's sum_over_batch_size)."""
    if not isinstance(value, Tensor):
        value = Tensor(np.asarray(value, dtype=np.float32))
    if sample_weight is not None:
        if value.ndim == 0:
            raise ValueError("this loss returns one value per batch, so sample_weight/"
                             "class_weight cannot be applied: use a loss that takes "
                             "sample_weight, or a function returning per-sample values")
        sw = np.asarray(sample_weight, dtype=value.dtype).reshape(
            (value.shape[0],) + (1,) * (value.ndim - 1))
        value = value * sw
    return value.mean() if value.ndim else value


def get_loss(identifier):
    return None if identifier is None else losses_mod.as_loss(identifier)
