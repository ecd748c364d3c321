"""``Model``: Keras's training API (compile / fit / evaluate / predict / summary / save) for
every kind of model - Sequential, functional (``Model(inputs, outputs)``) and subclassed
(``class M(Model)`` with ``__init__`` and ``call``)."""
import functools
import inspect
import time

import numpy as np

from ... import _threads
from ..._budget import check_expanded
from .. import callbacks as cbks
from .. import optimizers as optimizers_mod
from .. import placed
from ..layers.base import Layer
from ..tensor import Tensor
from . import compile_utils as cu
from .data import (
    ArrayBatches,
    as_arrays,
    check_sample_weight,
    is_structure,
    leaves,
    make_batches,
    map_arrays,
    take_weights,
)


def _make_functional(cls, functional):
    """Keras's ``inject_functional_model_class``: Model replaced by Functional in the
    bases of ``cls`` (and of its Model ancestors)."""
    if cls is Model:
        return functional
    if cls is functional or issubclass(cls, functional):
        return cls
    cls.__bases__ = tuple(_make_functional(b, functional) if issubclass(b, Model) else b
                          for b in cls.__bases__)
    return cls


class Model(Layer):
    """``keras.Model``. ``Model(inputs, outputs)`` builds a functional model; a subclass
    defines ``__init__`` (calling ``super().__init__()``) and ``call(inputs, training)``.

    Train with ``compile(optimizer, loss, metrics)`` then ``fit(x, y, batch_size, epochs,
    validation_split, validation_data, callbacks, verbose)`` (a ``History``), and use
    ``evaluate``, ``predict``, ``save`` and ``summary`` as in Keras. Built inside a
    :class:`~wsekern.WaferStrategy` scope, ``wafer_report()`` gives each step's wafer cost.

    Parameters
    ----------
    inputs : symbolic tensor, or a list or dict of them
        From :func:`~wsekern.nn.Input` (functional models).
    outputs : symbolic tensor, or a list or dict of them
        Layers called on ``inputs``.
    name : str, optional

    See Also
    --------
    Sequential, load_model
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional
            return Functional.__new__(Functional)
        return super().__new__(cls)

    # The CPU's training time (the wafer's costing left out) and samples the wafer report's
    # CPU rate comes from: fit's last epoch, plus the train_on_batch steps since (a custom
    # loop's steps alone when it never called fit).
    _cpu_seconds = 0.0
    _cpu_samples = 0
    _compile_metrics = None             # compile's CompileMetrics, when given metrics

    def __init__(self, *args, name=None, trainable=True, dtype=None, **kwargs):
        from .functional import Functional
        if not isinstance(self, Functional) and (
                len(args) == 2 or (len(args) == 1 and "outputs" in kwargs)
                or ("inputs" in kwargs and "outputs" in kwargs)):
            # a subclass made as `CustomModel(inputs, outputs)` (keras.io's custom
            # train_step) is a functional model: Keras puts Functional in its bases
            _make_functional(type(self), Functional)
            if dtype is not None:
                kwargs["dtype"] = dtype
            Functional.__init__(self, *args, name=name, trainable=trainable, **kwargs)
            return
        if args:
            raise TypeError(f"{type(self).__name__}() takes keyword arguments only (name=, "
                            f"trainable=); Model(inputs, outputs) makes a functional model")
        super().__init__(name=name, trainable=trainable, dtype=dtype or "float32", **kwargs)
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        from ..strategy import current_strategy
        self.strategy = current_strategy()

    # -- structure --------------------------------------------------------------
    @property
    def layers(self):
        return self._sublayers()

    def get_layer(self, name=None, index=None):
        """A layer by ``name`` or by ``index`` in ``model.layers``."""
        if index is not None:
            if not -len(self.layers) <= int(index) < len(self.layers):
                raise ValueError(f"index {index} is out of range: the model has "
                                 f"{len(self.layers)} layers")
            return self.layers[int(index)]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; the layers are "
                         f"{[l.name for l in self.layers]}")

    @property
    def output_names(self):
        return [self.name]

    def _placed(self):
        """Hand the built model to the wafer strategy (if one was active at creation)."""
        self._is_placed = True
        if self.strategy is not None:
            self.strategy.place(self)

    def __call__(self, *args, **kwargs):
        out = super().__call__(*args, **kwargs)
        if self.built and not self.__dict__.get("_is_placed"):
            from ..symbolic import any_symbolic
            if not any_symbolic(args, kwargs):
                self._placed()
        return out

    def build(self, input_shape=None):
        """A subclassed model builds its sub-layers by being called once on zeros."""
        if input_shape is not None and type(self).call is not Model.call:
            self.input_shape = input_shape
            shape = tuple(1 if s is None else int(s) for s in input_shape)
            self.built = True
            kwargs = {"training": False} if _accepts_training(self) else {}
            self.call(Tensor(np.zeros(shape, dtype=self.dtype)), **kwargs)
            self._losses = []
        self.built = True

    def call(self, inputs, training=False):
        raise NotImplementedError(f"{type(self).__name__} must define call(inputs) (or be "
                                  f"made as Model(inputs, outputs))")

    def count_params(self):
        return int(sum(np.prod(w.shape) for w in self.weights))

    def summary(self, line_length=None, positions=None, print_fn=None, **kwargs):
        """Keras's table: layer (type), output shape, params; then the param totals."""
        from .summary import print_summary
        print_summary(self, print_fn or print)

    # -- compile -------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Keras's compile: ``loss`` one for every output, a list, or a dict by output name;
        ``loss_weights`` likewise; ``metrics`` a list (one output), one entry per output
        (a metric, a list of them, or None), or a dict by output name, as in Keras 3.
        ``loss`` may be None when the model adds its own losses (``add_loss``)."""
        self.optimizer = optimizers_mod.get(optimizer)
        for leaf in _leaves_of(loss):               # unknown names fail here, not in fit
            cu.get_loss(leaf)
        for leaf in _leaves_of(metrics) + _leaves_of(weighted_metrics):
            cu.resolve_metric(leaf)
        self.loss = loss
        self.loss_weights = loss_weights
        self._metrics_arg = metrics
        self._weighted_metrics_arg = weighted_metrics
        self._compiled_outputs = None              # resolved on the first batch
        self._loss_tracker = cu.Mean("loss")
        # Keras's one container for the compiled metrics (None without any)
        self._compile_metrics = (cu.CompileMetrics(self) if metrics is not None
                                 or weighted_metrics is not None else None)
        self._output_loss_trackers = {}     # a recompile's outputs start afresh (an earlier
        #                                     compile's 'b_loss' was logged as 0.0 after)
        self.compiled = True
        self._compile_config = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics}

    def _check_compiled(self):
        if not self.compiled:
            raise RuntimeError("the model must be compiled before training or evaluation: "
                               "call model.compile(optimizer, loss, metrics)")

    def _resolve_outputs(self):
        """Per output: (name, loss, weight, [metrics]) from the compile arguments."""
        if self._compiled_outputs is not None:
            return self._compiled_outputs
        names = self.output_names
        losses = cu.per_output(self.loss, names, "loss")
        weights = cu.per_output(self.loss_weights, names, "loss_weights")
        metrics = cu.metrics_per_output(self._metrics_arg, names)
        weighted = cu.metrics_per_output(self._weighted_metrics_arg, names, "weighted_metrics")
        outs = []
        seen = {}                       # log keys so far: Keras's CompileMetrics.result names
        for name, loss, w, ms, wms in zip(names, losses, weights, metrics, weighted):
            loss = cu.get_loss(loss)
            if w is not None and not (isinstance(w, (int, float, np.floating, np.integer))
                                      and np.isfinite(w)):
                raise ValueError(f"loss_weights for output {name!r} must be a finite number; "
                                 f"received {w!r}")
            prefix = f"{name}_" if len(names) > 1 else ""
            resolved = []
            for m, weighted_flag in [(m, False) for m in ms] + [(m, True) for m in wms]:
                metric = cu.resolve_metric(m)
                key = prefix + metric.name
                if key in seen and weighted_flag:   # metrics=["acc"], weighted_metrics=["acc"]
                    key = prefix + "weighted_" + metric.name
                if key in seen:                     # the same name again: key_1, key_2, ...
                    seen[key] += 1
                    key = f"{key}_{seen[key] - 1}"
                else:
                    seen[key] = 1
                resolved.append((key, metric, weighted_flag))
            outs.append((name, loss, 1.0 if w is None else float(w), resolved))
        # Keras's CompileLoss tracks each output's loss when more than one output has one
        with_loss = [name for name, loss, _, _ in outs if loss is not None]
        self._output_loss_trackers = {name: cu.Mean(f"{name}_loss") for name in with_loss
                                      } if len(with_loss) > 1 else {}
        self._compiled_outputs = outs
        return outs

    @property
    def metrics(self):
        """As Keras 3: the loss tracker, the one ``CompileMetrics`` holding the compiled
        metrics (when compile was given any; its ``.metrics`` lists them), then each
        output's loss tracker (once the first batch has resolved the outputs, when more
        than one output has a loss)."""
        if not self.compiled:
            return []
        out = [self._loss_tracker]
        if self._compile_metrics is not None:
            out.append(self._compile_metrics)
        out.extend(self.__dict__.get("_output_loss_trackers", {}).values())
        return out

    @property
    def metrics_names(self):
        """``[m.name for m in model.metrics]``, as Keras 3 (so 'compile_metrics' stands for
        the compiled metrics; the logs name each one)."""
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    # -- losses and metrics of one batch ----------------------------------------------
    def _outputs_list(self, y_pred):
        if isinstance(y_pred, dict):
            return [y_pred[n] for n in self.output_names]
        if isinstance(y_pred, (list, tuple)):
            return list(y_pred)
        return [y_pred]

    def _by_output_name(self, values, what):
        """A dict keyed by output name as a list in output order (None where absent);
        refused when it names something that is not an output."""
        unknown = sorted(set(values) - set(self.output_names))
        if unknown:
            raise ValueError(f"{what} names {unknown}, which are not outputs of the model; "
                             f"its outputs are {self.output_names}")
        return [values.get(k) for k in self.output_names]

    def _targets_list(self, y):
        n = len(self.output_names)
        if y is None:
            return [None] * n
        if isinstance(y, dict):
            return self._by_output_name(y, "y")
        if is_structure(y) and n > 1:
            if len(y) != n:
                raise ValueError(f"y has {len(y)} entries for a model with {n} outputs "
                                 f"{self.output_names}")
            return list(y)
        return [y] if n == 1 else [y] * n

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled losses (weighted, summed over outputs) plus ``self.losses``."""
        outputs = self._outputs_list(y_pred)
        targets = self._targets_list(y)
        weights = self._weights_list(sample_weight)
        total = None
        self._last_output_losses = {}
        for (name, loss, weight, _), out, target, sample_weight in zip(
                self._resolve_outputs(), outputs, targets, weights):
            if loss is not None and target is None and isinstance(y, dict):
                raise ValueError(f"compile(loss=...) has a loss for output {name!r}, but y has "
                                 f"no target for it (y names {sorted(y)}): give "
                                 f"y[{name!r}], or compile with loss={{..., {name!r}: None}} "
                                 f"to leave that output out of the loss")
            if loss is None or target is None:
                continue
            cu.check_targets(loss, target, out, name if len(outputs) > 1 else None)
            if sample_weight is not None and cu.accepts_sample_weight(loss):
                value = loss(target, out, sample_weight=sample_weight)
                value = cu.reduce_loss(value, None)
            else:
                value = cu.reduce_loss(loss(target, out), sample_weight)
            self._last_output_losses[name] = float(value.data)
            tracker = self.__dict__.get("_output_loss_trackers", {}).get(name)
            if tracker is not None:     # Keras's CompileLoss: here, unweighted, by batch size
                tracker.update_state(float(value.data), sample_weight=out.shape[0])
            term = value * weight if weight != 1.0 else value
            total = term if total is None else total + term
        for extra in self._step_losses():
            extra = _additional_loss(extra)
            total = extra if total is None else total + extra
        if total is None:
            raise ValueError("there is no loss to minimise: compile(loss=...) with targets y, "
                             "or add losses in the model with self.add_loss(...)")
        return total

    def _weights_list(self, sample_weight):
        """The sample weights of each output: one array for all, or Keras's dict by output
        name / list in output order."""
        n = len(self.output_names)
        if isinstance(sample_weight, dict):
            return self._by_output_name(sample_weight, "sample_weight")
        if isinstance(sample_weight, list) and n > 1 and all(
                w is None or isinstance(w, np.ndarray) for w in sample_weight):
            if len(sample_weight) != n:
                raise ValueError(f"sample_weight has {len(sample_weight)} arrays for a model "
                                 f"with {n} outputs {self.output_names}: give one per output "
                                 f"(or a dict by output name)")
            return list(sample_weight)
        return [sample_weight] * n

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with this batch (Keras's
        ``CompileMetrics.update_state``); returns ``get_metrics_result()``."""
        if self._compile_metrics is not None:
            self._compile_metrics.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def get_metrics_result(self):
        """Each of ``model.metrics``'s results by name, the compiled metrics' dict spread
        out, as Keras."""
        self._resolve_outputs()
        logs = {}
        for metric in self.metrics:
            result = metric.result()
            if isinstance(result, dict):
                logs.update(result)
            else:
                logs[metric.name] = float(np.asarray(getattr(result, "data", result)))
        return logs

    def _track_loss(self, loss, batch_n):
        self._loss_tracker.update_state(float(loss.data), sample_weight=batch_n)

    # -- steps (override train_step / test_step as in Keras) ---------------------------
    def _walk_once(self):
        """What every step of ``fit`` walks the layer tree for, found once at its start:
        the trainable weights, the layers in the order of ``losses``, and the regularized
        trainable weights. A change of ``trainable`` made during fit (Keras asks for
        compile() after one) counts from the next fit."""
        memo = {}                       # each layer's attributes are read once
        if type(self).trainable_weights is Layer.trainable_weights:
            weights = self._dedup(self._walk_variables(True, memo=memo))
        else:                           # a subclass's own trainable_weights
            weights = self.trainable_weights
        regularized = [t for t in weights if getattr(t, "regularizer", None) is not None]
        return weights, self._flatten_layers(memo), regularized
    def _step_cache(self):
        """The walk ``fit`` keeps (None outside fit and train_on_batch); inside a
        ``train_on_batch`` step, made at its first use (after the forward, as the walks it
        replaces) and dropped when the step ends."""
        cache = self.__dict__.get("_fit_cache")
        if cache is _ONE_STEP:
            cache = self._fit_cache = self._walk_once()
        return cache

    def _step_weights(self):
        cache = self._step_cache()
        return cache[0] if cache else self.trainable_weights

    def _step_losses(self):
        """``self.losses``, through the structure found at fit's start when inside fit (or
        at the first use in a train_on_batch step)."""
        cache = self._step_cache()
        if not cache:
            return self.losses
        out = [loss for layer in cache[1] for loss in layer._losses]
        out.extend(t.regularizer(t) for t in cache[2])
        return out

    def zero_grad(self):
        for w in self._step_weights():
            w.grad = None

    def _compute_loss(self, x, y, y_pred, sample_weight, training):
        """``compute_loss`` called as Keras calls it: positionally, and given ``training``
        only when it takes it (an override written for Keras < 3.3, as keras.io's
        distillation example, has ``allow_empty`` instead)."""
        fn = self.compute_loss
        if _takes_training(getattr(fn, "__func__", fn)):
            return fn(x, y, y_pred, sample_weight, training=training)
        return fn(x, y, y_pred, sample_weight)

    def train_step(self, data):
        x, y, sample_weight = _unpack(data)
        y_pred = self(x, training=True)
        loss = self._compute_loss(x, y, y_pred, sample_weight, training=True)
        self.zero_grad()
        loss.backward()
        self.optimizer.apply_gradients(self._step_weights())
        self._track_loss(loss, _batch_size(x))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = _unpack(data)
        y_pred = self(x, training=False)
        loss = self._compute_loss(x, y, y_pred, sample_weight, training=False)
        self._track_loss(loss, _batch_size(x))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        x, _, _ = _unpack(data)
        return self(x, training=False)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One optimizer step; returns the batch's loss and metrics as Keras does: a float,
        a list in ``metrics_names`` order, or the logs dict with ``return_dict=True``."""
        self._check_compiled()
        _check_weights(y, sample_weight, class_weight)
        x = self._checked_x(x)
        self._ensure_built(x)
        if class_weight is not None:
            from .data import class_sample_weight
            sample_weight = class_sample_weight(leaves(as_arrays(y))[0], class_weight)
        self.reset_metrics()
        start = time.perf_counter()
        costing = self.strategy._cost_clock() if self.strategy is not None else 0.0
        # the step's three walks of the layers for weights and losses are done once (fit
        # keeps its own for all its steps: then it is left alone)
        one_step = self.__dict__.get("_fit_cache") is None
        if one_step:
            self._fit_cache = _ONE_STEP
        try:
            logs = self._train_step_placed(_pack(x, as_arrays(y), sample_weight))
        finally:
            if one_step:
                self._fit_cache = None
        self._after_step(x)
        if self.strategy is not None:
            costing = self.strategy._cost_clock() - costing     # its queue left queued
        self._cpu_seconds += time.perf_counter() - start - costing
        self._cpu_samples += _batch_size(x)
        return self._logs_as_returned(_floats(logs), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The batch's loss and metrics, returned as by ``train_on_batch``."""
        self._check_compiled()
        _check_weights(y, sample_weight)
        x = self._checked_x(x)
        self.reset_metrics()
        logs = _floats(self.test_step(_pack(x, as_arrays(y), sample_weight)))
        return self._logs_as_returned(logs, return_dict)

    def _logs_as_returned(self, logs, return_dict):
        """The dict as is, or a list in the order of Keras's ``_flatten_metrics_in_order``
        (one value alone as a float; ``loss, acc = model.train_on_batch(...)`` unpacked
        the dict's keys before): the loss; the logs named as a compiled metric's own name
        (so a multi-output model's "o1_accuracy" is not one of them); the outputs' losses;
        then every other key, sorted."""
        if return_dict:
            return logs
        order = [name for m in self.metrics for name in (
            [s.name for s in m.metrics] if isinstance(m, cu.CompileMetrics) else [m.name])]
        values = ([logs[k] for k in order if k in logs]
                  + [logs[k] for k in sorted(logs) if k not in order])
        return values[0] if len(values) == 1 else values

    def predict_on_batch(self, x):
        return _to_numpy(self.predict_step(_pack(self._checked_x(x))))

    def _train_step_placed(self, data):
        """``train_step``, its layers handing the step to this model's placement on the
        wafer (not to another model's placement of a layer they share)."""
        return placed.stepping(self.strategy._model(self) if self.strategy is not None
                               else None, self.train_step, data)

    def _after_step(self, x):
        if self.strategy is not None:
            self.strategy.record_step(self, _batch_size(x))

    # -- input checks -----------------------------------------------------------------
    def _input_specs(self):
        """[(shape without batch or None, dtype)] per input, where the model knows them."""
        return None

    def _checked_x(self, x, what="x"):
        x = as_arrays(x)
        specs = self._input_specs()
        arrays = leaves(x)
        if specs is not None and len(specs) != len(arrays):
            raise ValueError(f"the model has {len(specs)} inputs; received {what} with "
                             f"{len(arrays)} arrays")
        checked = [self._check_array(a, spec, what) for a, spec in
                   zip(arrays, specs or [(None, None)] * len(arrays))]
        it = iter(checked)
        return map_arrays(lambda _: next(it), x)

    def _check_array(self, x, spec, what):
        shape, dtype = spec
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{what} must be numeric; received dtype {x.dtype}")
        check_expanded(x, what)     # the checks below read a full-size copy of a broadcast x
        if dtype is not None and np.dtype(dtype).kind in "iu":       # token ids
            if x.dtype.kind == "f" and not np.all(x == np.round(x)):
                raise TypeError(f"{what} must hold integer ids (the model's Input has dtype "
                                f"{np.dtype(dtype)}); received non-integer values")
            x = x.astype(dtype, copy=False)
        else:
            x = x.astype(np.float32 if dtype is None else dtype, copy=False)
            if not np.isfinite(x).all():
                bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
                raise ValueError(f"{what} contains {bad} NaN or infinite values; clean the "
                                 f"data before training")
        if shape is not None:
            ok = x.ndim == len(shape) + 1 and all(
                s is None or s == d for s, d in zip(shape, x.shape[1:]))
            if not ok:
                raise ValueError(f"the model expects inputs of shape (batch,) + {tuple(shape)}; "
                                 f"received {what} with shape {x.shape}")
        return x

    def _ensure_built(self, x):
        if not self.built:
            self(_first_batch(x), training=False)

    # -- fit / evaluate / predict ---------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs``; returns a :class:`History` as Keras does."""
        self._check_compiled()
        verbose = 1 if verbose == "auto" else verbose
        if not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1); received {validation_split}")
        _check_weights(y, sample_weight, class_weight)
        if _is_arrays(x):
            x = self._checked_x(x)
            y = as_arrays(y)
            if y is None and self.loss is not None:
                raise ValueError("fit needs y (the targets) with x; received y=None")
            if validation_data is None and validation_split > 0:
                n = len(leaves(x)[0])
                split = int(n * (1 - validation_split))
                cut = lambda a, s: map_arrays(lambda v: v[s], a)         # noqa: E731
                validation_data = (cut(x, slice(split, None)),
                                   None if y is None else cut(y, slice(split, None)))
                x, y = cut(x, slice(0, split)), None if y is None else cut(y, slice(0, split))
                if sample_weight is not None:      # Keras weighs the held-out part too
                    if isinstance(sample_weight, dict) or (
                            isinstance(sample_weight, (list, tuple)) and sample_weight and all(
                                isinstance(w, np.ndarray) for w in sample_weight)):
                        sample_weight = check_sample_weight(sample_weight, n)   # per output
                    else:
                        given, sample_weight = sample_weight, np.asarray(sample_weight)
                        if sample_weight.shape[:1] != (n,):  # else a part of them is checked
                            raise ValueError(
                                f"sample_weight must hold one weight per sample ({n}); "
                                f"received {type(given).__name__} of shape "
                                f"{sample_weight.shape}")
                    validation_data += (take_weights(sample_weight, slice(split, None)),)
                    sample_weight = take_weights(sample_weight, slice(0, split))
            if len(leaves(x)[0]) == 0:
                raise ValueError("no training samples (x is empty, or validation_split left "
                                 "none)")
        elif validation_split:
            raise ValueError("validation_split needs arrays; give validation_data for a "
                             "dataset or generator")
        train = make_batches(x, y, sample_weight, batch_size, shuffle, steps_per_epoch,
                             class_weight)
        val = None
        if validation_data is not None:
            vx, vy, vsw = _unpack(tuple(validation_data)) if isinstance(
                validation_data, tuple) else (validation_data, None, None)
            if _is_arrays(vx):
                vx = self._checked_x(vx, "validation x")
                _check_weights(vy, vsw, what="validation_data's sample weights")
            val = make_batches(vx, as_arrays(vy) if _is_arrays(vx) else vy, vsw,
                               validation_batch_size or batch_size, False, validation_steps)
        history = cbks.History()
        cb_list = cbks.as_list(callbacks) + [history]
        if verbose:
            cb_list.append(cbks.ProgbarLogger(verbose))
        steps = train.n_steps()
        callbacks_ = cbks.CallbackList(cb_list, self, epochs=epochs, steps=steps,
                                       verbose=verbose)
        self.stop_training = False
        self._fit_cache = None
        callbacks_.call("on_train_begin")
        epoch_logs = {}
        try:
            if self.strategy is not None:
                # placed for the batch fit uses; an epoch's last, shorter batch with it
                self.strategy.fit_begins(self, *_epoch_batches(train))
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                callbacks_.call("on_epoch_begin", epoch)
                start = time.perf_counter()
                costing_before = (self.strategy.cost_seconds if self.strategy is not None
                                  else 0.0)
                self._epoch_build_seconds = 0.0
                with _threads.blas_limited_to_idle_cpus():
                    seen, logs = self._train_epoch(train, callbacks_)
                train.on_epoch_end()
                if seen == 0:
                    raise ValueError("the training data yielded no batch")
                costing = (self.strategy.cost_seconds - costing_before) if self.strategy else 0.0
                # CPU training work only: the wafer costing and a lazy build (and its
                # placement) left out, as train_on_batch leaves them out
                self._cpu_seconds = (time.perf_counter() - start - costing
                                     - self._epoch_build_seconds)
                self._cpu_samples = seen
                epoch_logs = dict(logs)
                if val is not None and (epoch + 1) % int(validation_freq) == 0:
                    val_logs = self._run_evaluation(val, callbacks_)
                    epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                epoch_logs = callbacks_.call("on_epoch_end", epoch, logs=_floats(epoch_logs))
                if self.stop_training:
                    break
        finally:
            self._fit_cache = None
            if self.strategy is not None:
                self.strategy.fit_ends(self)
        callbacks_.call("on_train_end", logs=epoch_logs)
        self.history = history
        return history

    def _train_epoch(self, train, callbacks_):
        """One pass over ``train``; returns (samples seen, the last step's logs as it
        returned them: Keras sorts the epoch's logs with a custom step's nested dict
        ('compile_metrics') at its own key)."""
        seen, logs = 0, {}
        for step, (bx, by, bsw) in enumerate(train.epoch()):
            callbacks_.call("on_train_batch_begin", step)
            if not isinstance(train, ArrayBatches):       # arrays were checked whole
                bx = self._checked_x(bx)
            if not self.built:
                built_at = time.perf_counter()
                self._ensure_built(bx)
                self._epoch_build_seconds += time.perf_counter() - built_at
            if self._fit_cache is None:
                self._fit_cache = self._walk_once()
            logs = self._train_step_placed(_pack(bx, by, bsw))
            self._after_step(bx)
            seen += _batch_size(bx)
            callbacks_.call("on_train_batch_end", step, logs=_floats(logs))
            if self.stop_training:
                break
        return seen, logs

    def _run_evaluation(self, batches, callbacks_):
        """Evaluate over ``batches`` with the on_test_* hooks; returns the logs."""
        self.reset_metrics()
        callbacks_.call("on_test_begin")
        logs, seen = {}, 0
        with _threads.blas_limited_to_idle_cpus():
            for step, (bx, by, bsw) in enumerate(batches.epoch()):
                callbacks_.call("on_test_batch_begin", step)
                bx = self._checked_x(bx)
                self._ensure_built(bx)
                logs = _floats(self.test_step(_pack(bx, by, bsw)))
                seen += _batch_size(bx)
                callbacks_.call("on_test_batch_end", step, logs=logs)
        if seen == 0:
            raise ValueError("evaluation received no samples: x is empty (Keras raises too); "
                             "give at least one sample")
        callbacks_.call("on_test_end", logs=logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss (and metrics) on (x, y): a float, or a list when there are metrics."""
        self._check_compiled()
        verbose = 1 if verbose == "auto" else verbose
        _check_weights(y, sample_weight)
        if _is_arrays(x):
            x = self._checked_x(x)
            if len(leaves(x)[0]) == 0:
                raise ValueError("evaluate received no samples: x is empty (Keras raises "
                                 "too); give at least one sample")
        batches = make_batches(x, as_arrays(y) if _is_arrays(x) else y, sample_weight,
                               batch_size, False, steps)
        callbacks_ = cbks.CallbackList(callbacks, self, steps=batches.n_steps(), verbose=verbose)
        logs = self._run_evaluation(batches, callbacks_)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        return self._logs_as_returned(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs on ``x`` as NumPy arrays (the outputs' structure)."""
        if _is_arrays(x):
            x = self._checked_x(x)
        batches = make_batches(x, None, None, batch_size, False, steps)
        callbacks_ = cbks.CallbackList(callbacks, self, steps=batches.n_steps())
        callbacks_.call("on_predict_begin")
        outs = []
        with _threads.blas_limited_to_idle_cpus():
            for step, (bx, _, _) in enumerate(batches.epoch()):
                callbacks_.call("on_predict_batch_begin", step)
                bx = self._checked_x(bx)
                self._ensure_built(bx)
                out = _to_numpy(self.predict_step(_pack(bx)))
                outs.append(out)
                callbacks_.call("on_predict_batch_end", step, logs={"outputs": out})
        callbacks_.call("on_predict_end")
        if not outs:
            if self.output_shape is not None and isinstance(self.output_shape, tuple) and \
                    self.output_shape and not isinstance(self.output_shape[0], tuple):
                return np.zeros((0,) + tuple(self.output_shape[1:]), dtype=np.float32)
            raise ValueError("predict received no samples: x is empty")
        return _concat(outs)

    # -- the simulated wafer ------------------------------------------------------------
    def wafer_report(self):
        """Per-layer placement, SRAM and cost on the wafer (needs a WaferStrategy scope)."""
        if self.strategy is None:
            raise RuntimeError("this model was not built inside a WaferStrategy scope: "
                               "with wsekern.WaferStrategy(config).scope(): model = ...")
        return self.strategy.report(self)

    # -- saving ---------------------------------------------------------------------------
    def save(self, filepath, overwrite=True, **kwargs):
        """Write the architecture (JSON), weights, sparsity masks and the optimizer with its
        state to one zip file, atomically; nothing in it runs code on load. A ``.keras``
        path gets Keras 3's format (Keras's ``load_model`` reads it) where Keras can rebuild
        the model, with our own config riding along; see the README's saving paragraph."""
        from ..saving import save_model
        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        from ..saving import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        from ..saving import load_weights
        load_weights(self, filepath)

    def to_json(self, **kwargs):
        """The architecture as JSON, without weights (``nn.models.model_from_json`` reads it
        back; ``kwargs`` go to ``json.dumps``)."""
        from .cloning import to_json
        return to_json(self, **kwargs)

    def get_config(self):
        """A subclassed model's arguments: override with what ``__init__`` takes (Keras
        needs the same for saving a subclassed model)."""
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """``cls(**config)``; a functional model's config (a Functional's get_config, as
        Keras's ``Model.from_config`` takes it) makes its graph with fresh weights."""
        if isinstance(config, dict) and "layers" in config and "nodes" in config:
            from ..registry import with_objects
            from ..saving.model_config import functional_from_config
            from .functional import Functional
            with with_objects(custom_objects):
                model = functional_from_config(config, custom_objects, f"{cls.__name__}"
                                               f".from_config")
            if cls in (Model, Functional):
                return model
            return cls(model._inputs_struct, model._outputs_struct, name=model.name)
        return cls(**config)


def _additional_loss(loss):
    """A regularizer's or add_loss's value as a scalar Tensor: summed when it has more than
    one element, as Keras does; refused by what it is when it is not a number."""
    if not isinstance(loss, Tensor):
        value = np.asarray(loss) if loss is not None else None
        if value is None or value.dtype.kind not in "biuf":
            raise TypeError(f"a loss in model.losses (from a regularizer, an activity "
                            f"regularizer or add_loss) must be a number or a Tensor; "
                            f"received {type(loss).__name__} {loss!r:.60}")
        loss = Tensor(value.astype(np.float32) if value.dtype.kind != "f" else value)
    return loss.sum() if loss.ndim else loss


def _check_weights(y, sample_weight, class_weight=None, what="sample_weight"):
    """Keras's rules for the sample weights beside ``y``: not with class_weight; on a
    multi-output ``y`` (a dict or a list), a dict of weights names every output y names
    (None leaves one unweighted) and one shared array has one weight per sample. (A list of
    weights with a dict y, or the reverse, is taken by output name and order; Keras
    refuses those.)"""
    if sample_weight is None:
        return
    if class_weight is not None:
        raise ValueError("class_weight and sample_weight cannot be given at the same time "
                         "(Keras refuses the pair too): fold the class weights into "
                         "sample_weight, e.g. sample_weight * np.array([class_weight[c] for c "
                         "in labels])")
    if isinstance(y, dict) and len(y) > 1 and isinstance(sample_weight, dict):
        missing = [k for k in y if k not in sample_weight]
        if missing and set(sample_weight) <= set(y):    # unknown names: said further on
            raise ValueError(f"{what} has no entry for the outputs {missing} that y gives "
                             f"(y names {list(y)}; {what} names {list(sample_weight)}): give "
                             f"one array per output in y, None for an output left unweighted "
                             f"(Keras refuses a partial dict too)")
    multi = (isinstance(y, dict) and len(y) > 1) or (
        isinstance(y, (list, tuple)) and len(y) > 1 and all(
            hasattr(v, "shape") for v in y))
    if multi and not isinstance(sample_weight, (dict, list, tuple)):
        shape = np.shape(sample_weight)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise ValueError(f"one {what} array for a model with several outputs holds one "
                             f"weight per sample, shape (samples,); received shape {shape}. "
                             f"For weights of another shape, give one array per output (a "
                             f"dict by output name), as Keras asks")


def _leaves_of(value):
    """The entries of a compile argument given as one, a list (of lists) or a dict."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [v for item in value.values() for v in _leaves_of(item)]
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _leaves_of(item)]
    return [value]


def _accepts_training(layer):
    from ..layers.base import _call_accepts
    return _call_accepts(type(layer), "training")


_ONE_STEP = ("walk at first use, for this train_on_batch step only",)   # see _step_cache


def _pack(x, y=None, sample_weight=None):
    """What a train/test/predict step receives, as Keras's ``pack_x_y_sample_weight``:
    ``x`` alone (``(x,)`` when x is a list or tuple), ``(x, y)``, or ``(x, y, sample_weight)``
    (so keras.io's ``x, y = data`` in a custom train_step works)."""
    if y is None and sample_weight is None:
        return (x,) if isinstance(x, (list, tuple)) else x
    return (x, y) if sample_weight is None else (x, y, sample_weight)


@functools.lru_cache(maxsize=256)
def _takes_training(compute_loss):
    try:
        return "training" in inspect.signature(compute_loss).parameters
    except (TypeError, ValueError):        # no signature to read: as Keras's default
        return True


def _unpack(data):
    if isinstance(data, tuple) and 1 <= len(data) <= 3:
        return tuple(data) + (None,) * (3 - len(data))
    return data, None, None


def _is_arrays(x):
    return isinstance(x, (np.ndarray, dict)) or is_structure(x) or (
        isinstance(x, (list, tuple)) and not (x and isinstance(x[0], tuple)))


def _epoch_batches(train):
    """(batch size, samples an epoch of ``train`` yields) where known before it runs (arrays
    cut into batches), else ()."""
    if not isinstance(train, ArrayBatches) or not train.batch_size:
        return ()
    return train.batch_size, min(train.n, train.n_steps() * train.batch_size)


def _batch_size(x):
    if type(x) is np.ndarray:                 # one input: every step asks, twice
        return len(x)
    found = leaves(x)
    first = found[0] if found else x
    return len(first.data if isinstance(first, Tensor) else first)


def _first_batch(x):
    return map_arrays(lambda a: a[:1] if hasattr(a, "shape") and np.ndim(a) else a, x)


def _floats(logs):
    """A step's logs as Keras's ``pythonify_logs``: sorted by key, a dict value (a
    ``CompileMetrics`` result a custom train_step returned) spread out, numbers as floats."""
    out = {}
    for k, v in sorted((logs or {}).items()):
        if isinstance(v, dict):
            out.update(_floats(v))
        else:
            out[k] = float(np.asarray(v.data if isinstance(v, Tensor) else v))
    return out


def _to_numpy(out):
    if isinstance(out, dict):
        return {k: _to_numpy(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return [_to_numpy(v) for v in out]
    return out.data if isinstance(out, Tensor) else np.asarray(out)


def _concat(parts):
    first = parts[0]
    if isinstance(first, dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    if isinstance(first, list):
        return [np.concatenate([p[i] for p in parts]) for i in range(len(first))]
    return np.concatenate(parts)
