"""Callbacks with Keras's hook names: History, EarlyStopping, ModelCheckpoint,
LearningRateScheduler, ReduceLROnPlateau, CSVLogger, TerminateOnNaN, LambdaCallback, and
the tqdm progress bar."""
import csv
import math
import os
import warnings

import numpy as np


class Callback:
    """Keras's callback: every hook receives a ``logs`` dict. ``on_batch_begin``/
    ``on_batch_end`` are the aliases Keras calls from the train-batch hooks."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


def as_list(callbacks):
    """``callbacks=`` as a list: None, one Callback (Keras takes it alone too) or several."""
    if callbacks is None:
        return []
    return [callbacks] if isinstance(callbacks, Callback) else list(callbacks)


class CallbackList:
    """Calls a hook on every callback, always with a dict (a copy, so one callback's edits
    reach the next as in Keras, but not the caller's own dict)."""

    def __init__(self, callbacks, model, **params):
        self.callbacks = as_list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be nn.callbacks.Callback instances; received "
                                f"{type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(dict(params))

    def call(self, hook, *args, logs=None):
        logs = dict(logs or {})
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs=logs)
        return logs


class History(Callback):
    """``history.history``: a list per metric, one entry per epoch; ``history.epoch``."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _monitored(callback, logs, what):
    """The value of ``callback.monitor`` in ``logs``; when it is not there, None and a warning
    naming the metrics that are (as Keras warns: a callback watching a metric that never
    comes, "val_loss" without validation data say, silently does nothing)."""
    current = (logs or {}).get(callback.monitor)
    if current is None:
        warnings.warn(f"{type(callback).__name__} {what} metric {callback.monitor!r}, which is "
                      f"not available; available metrics are: "
                      f"{', '.join(sorted(logs or {})) or 'none'}", stacklevel=3)
    return current


def _monitor_mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; received {mode!r}")
    if mode == "auto":
        mode = "max" if ("acc" in monitor or monitor.startswith("fmeasure")) else "min"
    return mode


class EarlyStopping(Callback):
    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta = abs(min_delta) * (1 if self.mode == "max" else -1)
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch

    def _better(self, current, reference):
        if self.mode == "max":
            return current - self.min_delta > reference
        return current - self.min_delta < reference

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0
        self.best = -math.inf if self.mode == "max" else math.inf

    def on_epoch_end(self, epoch, logs=None):
        # Keras 3's rule: stop once `patience` epochs in a row brought no improvement.
        current = _monitored(self, logs, "is conditioned on")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._better(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping (best {self.monitor} "
                      f"{self.best:.4f} at epoch {self.best_epoch + 1})")

    def on_train_end(self, logs=None):
        # Keras 3 restores the best weights at the end of training, stopped early or not
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or its weights) at the end of each epoch, or every ``save_freq`` batches,
    optionally only when ``monitor`` improved. ``filepath`` may contain ``{epoch}``, ``{batch}``
    and log names (``"ckpt-{epoch:02d}-{val_loss:.3f}.keras"``), as in Keras 3.

    With an integer ``save_freq`` the logs are those of the last training batch, so
    ``save_best_only`` can only watch training metrics (Keras warns of the same)."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _monitor_mode(monitor, mode)
        if save_freq != "epoch" and not (isinstance(save_freq, (int, np.integer))
                                         and not isinstance(save_freq, bool) and save_freq > 0):
            raise ValueError(f"save_freq must be 'epoch' or a positive number of batches; "
                             f"received {save_freq!r}")
        self.save_freq = save_freq if save_freq == "epoch" else int(save_freq)
        if initial_value_threshold is not None:
            self.best = float(initial_value_threshold)
        else:
            self.best = -math.inf if self.mode == "max" else math.inf
        self._epoch, self._batches_seen = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs=logs)
        if self.save_freq == "epoch":
            return
        # Keras counts batches across epochs: every save_freq-th batch since training began.
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _save(self, epoch, batch, logs):
        fields = dict(logs, epoch=epoch + 1)
        if batch is not None:
            fields["batch"] = batch + 1
        try:
            path = self.filepath.format(**fields)
        except (KeyError, IndexError) as exc:
            raise KeyError(f"ModelCheckpoint filepath {self.filepath!r} names {exc} which is not "
                           f"among the logs {sorted(fields)}") from None
        if self.save_best_only:
            current = _monitored(self, logs, "saves the best model by")
            if current is None:
                return
            better = current > self.best if self.mode == "max" else current < self.best
            if not better:
                return
            self.best = current
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved to {path}")


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate from ``schedule(epoch, lr)`` before each epoch."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, self.model.optimizer.learning_rate))
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"the schedule returned learning rate {lr!r} for epoch {epoch}")
        self.model.optimizer.learning_rate = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {lr:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` once ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs; then wait ``cooldown`` epochs; never below
    ``min_lr``. Keras 3's rule, step for step (``logs["learning_rate"]`` is added each epoch)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        factor = float(factor)
        if not 0.0 <= factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau factor must be in [0, 1) (a reduction); "
                             f"received {factor!r}")
        self.monitor, self.factor, self.verbose = monitor, factor, verbose
        self.patience, self.cooldown = int(patience), int(cooldown)
        self.min_delta, self.min_lr = float(min_delta), float(min_lr)
        self.mode = _monitor_mode(monitor, mode)
        self._reset()

    def _reset(self):
        self.best = -math.inf if self.mode == "max" else math.inf
        self.wait, self.cooldown_counter = 0, 0

    def _improved(self, current):
        if self.mode == "max":
            return current > self.best + self.min_delta
        return current < self.best - self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()
        if callable(self.model.optimizer._learning_rate):
            raise TypeError("ReduceLROnPlateau needs a fixed learning rate to reduce; this "
                            "optimizer was built with a schedule. Use a float learning_rate, "
                            "or the schedule alone.")

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = float(optimizer.learning_rate)
        current = _monitored(self, logs, "is conditioned on")
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:      # Keras asks again: the last cooldown epoch counts
            self.wait += 1
            if self.wait >= self.patience:
                old = float(optimizer.learning_rate)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    optimizer.learning_rate = new
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new:.6g}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = str(filename), separator, append
        self._keys = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None
        self._header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._writer is None:
            self._keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self._keys,
                                          delimiter=self.sep)
            if not self._header_written:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "") for k in self._keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        self._file.close()


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (Keras's callback)."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from functions, as Keras's: ``on_epoch_begin``/``on_epoch_end``
    ``(epoch, logs)``, ``on_train_batch_begin``/``on_train_batch_end`` (``on_batch_*``
    too) ``(batch, logs)``, ``on_train_begin``/``on_train_end`` ``(logs)``, and any other
    hook by its name."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = dict(kwargs, on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not (name.startswith("on_") and callable(getattr(Callback, name, None))):
                raise TypeError(f"LambdaCallback got {name!r}, which is not a callback hook")
            if not callable(fn):
                raise TypeError(f"LambdaCallback {name} must be callable; received "
                                f"{type(fn).__name__}")
            setattr(self, name, self._wrap(name, fn))

    @staticmethod
    def _wrap(name, fn):
        # the hooks' own signatures: (logs) for begin/end of train/test/predict, else (i, logs)
        if name.endswith(("train_begin", "train_end", "test_begin", "test_end",
                          "predict_begin", "predict_end")):
            return lambda logs=None: fn(logs)
        return lambda i, logs=None: fn(i, logs)


class ProgbarLogger(Callback):
    """A tqdm progress bar per epoch with the running loss and metrics (verbose=1),
    or one line per epoch (verbose=2)."""

    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = verbose
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.verbose == 1:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=self.params.get("steps"), unit="batch", leave=True,
                             desc=f"Epoch {epoch + 1}/{self.params.get('epochs')}")

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items()}, refresh=False)
            self._bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        text = " - ".join(f"{k}: {v:.4f}" for k, v in (logs or {}).items())
        if self._bar is not None:
            self._bar.set_postfix_str(text)
            self._bar.close()
            self._bar = None
        elif self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')} - {text}")
