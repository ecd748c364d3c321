"""``Sequential``: Keras's model API (compile / fit / evaluate / predict / save) over wsekern.nn."""
import io
import json
import time
import zipfile

import numpy as np

from . import callbacks as cbks
from . import layers as layers_mod
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from . import utils
from .layers.base import Layer
from .layers.core import InputLayer
from .tensor import Tensor

FORMAT = "wsekern.nn/1"


class Sequential:
    """A linear stack of layers, used as ``keras.Sequential``."""

    def __init__(self, layers=None, name=None):
        self.name = name or "sequential"
        self.layers = []
        self._input_shape = None           # without the batch dimension
        self._input_dtype = np.dtype(np.float32)   # Input(dtype=...): int64 for token ids
        self.built = False
        self.optimizer = None
        self.loss = None
        self.metrics_names = []
        self._metric_kind = None
        self.stop_training = False
        self.history = None
        from ..wafer.strategy import current_strategy
        self.strategy = current_strategy()
        for layer in layers or []:
            self.add(layer)

    # -- structure --------------------------------------------------------------
    def add(self, layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer; received {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self.layers or self._input_shape is not None:
                raise ValueError("an Input can only be the first element of a Sequential model")
            self._input_shape = layer.shape
            self._input_dtype = layer.dtype
            return
        if not self.layers and self._input_shape is None and layer._input_shape_arg is not None:
            self._input_shape = layer._input_shape_arg
        self.layers.append(layer)
        if self._input_shape is not None:
            self.built = False
            self.build()

    def build(self, input_shape=None):
        """Build every layer for ``input_shape`` (with or without the batch dimension)."""
        if input_shape is not None:
            shape = tuple(input_shape)
            self._input_shape = shape[1:] if shape and shape[0] is None else shape
        if self._input_shape is None:
            raise ValueError("the model's input shape is unknown: give the first layer "
                             "input_shape=..., start with nn.Input(shape=...), or call build()")
        shape = (None,) + tuple(self._input_shape)
        for layer in self.layers:
            shape = layer._build(shape) if not layer.built else layer.output_shape
        self.built = True
        if self.strategy is not None:
            self.strategy.place(self)
        return shape

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.built and self.layers else None

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights]

    def get_weights(self):
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"the model has {expected} weight arrays; received {len(weights)}")
        i = 0
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(weights[i:i + n])
            i += n

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print):
        if not self.built:
            self.build()
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            rows.append((f"{layer.name} ({type(layer).__name__})", str(layer.output_shape),
                         f"{layer.count_params():,}"))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "-" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        for i, r in enumerate(rows):
            print_fn("".join(c.ljust(w) for c, w in zip(r, widths)))
            if i == 0:
                print_fn("=" * sum(widths))
        print_fn(line)
        print_fn(f"Total params: {self.count_params():,}")

    # -- forward ------------------------------------------------------------------
    def __call__(self, x, training=False):
        if not self.built:
            self.build((None,) + tuple(np.shape(x)[1:]))
        out = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=self._input_dtype))
        for layer in self.layers:
            out = layer(out, training=training)
        return out

    # -- training -----------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        self.optimizer = optimizers_mod.get(optimizer)
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        self.loss = losses_mod.get(loss)
        metrics = list(metrics or [])
        for m in metrics:
            if m not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {m!r}; available: 'accuracy'")
        self.metrics_names = ["loss"] + (["accuracy"] if metrics else [])
        name = getattr(self.loss, "name", None)
        self._metric_kind = {"sparse_categorical_crossentropy": "sparse",
                             "categorical_crossentropy": "categorical",
                             "binary_crossentropy": "binary"}.get(name, "sparse")
        self._compile_config = {"optimizer": self.optimizer.get_config(),
                                "loss": name or "custom", "metrics": metrics}

    def _check_compiled(self):
        if self.optimizer is None or self.loss is None:
            raise RuntimeError("the model must be compiled before training or evaluation: "
                               "call model.compile(optimizer, loss, metrics)")

    def _check_x(self, x, what="x"):
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{what} must be numeric; received dtype {x.dtype}")
        if self._input_dtype.kind in "iu":               # token ids
            if x.dtype.kind == "f" and not np.all(x == np.round(x)):
                raise TypeError(f"{what} must hold integer ids (the model's Input has dtype "
                                f"{self._input_dtype}); received non-integer values")
            return self._check_shape(x.astype(self._input_dtype, copy=False), what)
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
            raise ValueError(f"{what} contains {bad} NaN or infinite values; clean the data "
                             f"before training")
        return self._check_shape(x, what)

    def _check_shape(self, x, what):
        expected = self._input_shape
        if expected is not None and tuple(x.shape[1:]) != tuple(expected):
            raise ValueError(f"the model expects inputs of shape (batch,) + {tuple(expected)}; "
                             f"received {what} with shape {x.shape}")
        return x

    def _check_y(self, y, n, what="y"):
        y = np.asarray(y)
        if len(y) != n:
            raise ValueError(f"{what} has {len(y)} samples but x has {n}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError(f"{what} contains NaN or infinite values")
        return y

    def _accuracy(self, y, p):
        if self._metric_kind == "binary":
            return float(np.mean((p > 0.5) == (np.asarray(y).reshape(p.shape) > 0.5)))
        pred = p.argmax(axis=-1)
        if self._metric_kind == "categorical":
            return float(np.mean(pred == np.asarray(y).argmax(axis=-1)))
        y = np.asarray(y)
        if y.ndim == pred.ndim + 1:
            y = y[..., 0]
        return float(np.mean(pred == y))

    def train_on_batch(self, x, y):
        """One optimizer step; returns the batch's logs (loss and metrics)."""
        out = self(Tensor(x), training=True)
        loss = self.loss(y, out)
        for w in self.trainable_weights:
            w.grad = None
        loss.backward()
        self.optimizer.apply_gradients(self.trainable_weights)
        logs = {"loss": float(loss.data)}
        if "accuracy" in self.metrics_names:
            logs["accuracy"] = self._accuracy(y, out.data)
        if self.strategy is not None:
            self.strategy.record_step(self, len(x))
        return logs

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Train for ``epochs``; returns a :class:`History` as Keras does."""
        self._check_compiled()
        if x is None or y is None:
            raise ValueError("fit needs x and y")
        if not self.built:
            self.build((None,) + tuple(np.shape(x)[1:]))
        x = self._check_x(x)
        y = self._check_y(y, len(x))
        batch_size = 32 if batch_size is None else int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive; received {batch_size}")
        if not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1); received {validation_split}")
        if validation_data is None and validation_split > 0:
            split = int(len(x) * (1 - validation_split))
            x, y, validation_data = x[:split], y[:split], (x[split:], y[split:])
        if validation_data is not None:
            vx = self._check_x(validation_data[0], "validation x")
            vy = self._check_y(validation_data[1], len(vx), "validation y")
        if len(x) == 0:
            raise ValueError("no training samples left (check validation_split)")
        steps = -(-len(x) // batch_size)
        history = cbks.History()
        cb_list = list(callbacks or []) + [history]
        if verbose:
            cb_list.append(cbks.ProgbarLogger(verbose))
        for cb in cb_list:
            cb.set_model(self)
            cb.set_params({"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        for cb in cb_list:
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in cb_list:
                cb.on_epoch_begin(epoch)
            order = utils.rng().permutation(len(x)) if shuffle else np.arange(len(x))
            totals, seen = {}, 0
            start = time.perf_counter()
            costing_before = self.strategy.cost_seconds if self.strategy is not None else 0.0
            for step in range(steps):
                idx = order[step * batch_size:(step + 1) * batch_size]
                for cb in cb_list:
                    cb.on_train_batch_begin(step)
                logs = self.train_on_batch(x[idx], y[idx])
                seen += len(idx)
                for k, v in logs.items():
                    totals[k] = totals.get(k, 0.0) + v * len(idx)
                running = {k: v / seen for k, v in totals.items()}
                for cb in cb_list:
                    cb.on_train_batch_end(step, running)
            costing = (self.strategy.cost_seconds - costing_before) if self.strategy else 0.0
            self._last_epoch_seconds = time.perf_counter() - start - costing   # CPU work only
            self._last_epoch_samples = seen
            epoch_logs = {k: v / seen for k, v in totals.items()}
            if validation_data is not None:
                for k, v in zip(self.metrics_names, self._evaluate(vx, vy, batch_size)):
                    epoch_logs["val_" + k] = v
            for cb in cb_list:
                cb.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        for cb in cb_list:
            cb.on_train_end()
        self.history = history
        return history

    def _evaluate(self, x, y, batch_size):
        totals = np.zeros(len(self.metrics_names))
        for s in range(0, len(x), batch_size):
            xb, yb = x[s:s + batch_size], y[s:s + batch_size]
            out = self(Tensor(xb), training=False)
            vals = [float(self.loss(yb, out).data)]
            if "accuracy" in self.metrics_names:
                vals.append(self._accuracy(yb, out.data))
            totals += np.asarray(vals) * len(xb)
        return [float(v) for v in totals / max(len(x), 1)]

    def evaluate(self, x=None, y=None, batch_size=None, verbose=1, return_dict=False):
        """Loss (and metrics) on (x, y): a float, or a list when there are metrics."""
        self._check_compiled()
        x = self._check_x(x)
        y = self._check_y(y, len(x))
        values = self._evaluate(x, y, 32 if batch_size is None else int(batch_size))
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in zip(self.metrics_names, values)))
        if return_dict:
            return dict(zip(self.metrics_names, values))
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose=0):
        x = self._check_x(x)
        batch_size = 32 if batch_size is None else int(batch_size)
        outs = [self(Tensor(x[s:s + batch_size]), training=False).data
                for s in range(0, len(x), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0,) + tuple(self.output_shape[1:]))

    # -- the simulated wafer ------------------------------------------------------------
    def wafer_report(self):
        """Per-layer placement, SRAM and cost on the wafer (needs a WaferStrategy scope)."""
        if self.strategy is None:
            raise RuntimeError("this model was not built inside a WaferStrategy scope: "
                               "with wsekern.WaferStrategy(config).scope(): model = ...")
        return self.strategy.report(self)

    # -- saving -------------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "input_shape": list(self._input_shape or []),
                "input_dtype": self._input_dtype.name,
                "layers": [{"class_name": type(l).__name__, "config": l.get_config()}
                           for l in self.layers]}

    def save(self, filepath):
        """Write the config (JSON) and the weights (arrays) to one zip file; nothing that runs
        code on load."""
        arrays = {f"weight_{i}": w for i, w in enumerate(self.get_weights())}
        for i, layer in enumerate(self.layers):
            mask = _layer_mask(layer)
            if mask is not None:
                arrays[f"mask_{i}"] = mask
        meta = {"format": FORMAT, "model": self.get_config(),
                "compile": getattr(self, "_compile_config", None)}
        _write_zip(filepath, meta, arrays)

    def save_weights(self, filepath):
        _write_zip(filepath, {"format": FORMAT, "weights_only": True},
                   {f"weight_{i}": w for i, w in enumerate(self.get_weights())})

    def load_weights(self, filepath):
        _, arrays = _read_zip(filepath)
        n = len([k for k in arrays if k.startswith("weight_")])
        self.set_weights([arrays[f"weight_{i}"] for i in range(n)])


def _layer_mask(layer):
    if getattr(layer, "pattern", None) is not None:
        return layer.mask
    return getattr(layer, "weight_mask", None)


def _write_zip(filepath, meta, arrays):
    with zipfile.ZipFile(filepath, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps(meta))
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.asarray(arr), allow_pickle=False)
            z.writestr(f"{name}.npy", buf.getvalue())


def _read_zip(filepath):
    with zipfile.ZipFile(filepath) as z:
        meta = json.loads(z.read("config.json"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{filepath} is not a wsekern.nn model file (format "
                             f"{meta.get('format')!r})")
        arrays = {name[:-4]: np.load(io.BytesIO(z.read(name)), allow_pickle=False)
                  for name in z.namelist() if name.endswith(".npy")}
    return meta, arrays


def load_model(filepath, compile=True):
    """Rebuild a model saved with ``model.save``: layers from the JSON config, weights,
    sparsity patterns and (optionally) the compile settings. No code is executed."""
    meta, arrays = _read_zip(filepath)
    if meta.get("weights_only"):
        raise ValueError(f"{filepath} holds weights only; build the model and call load_weights")
    config = meta["model"]
    model = Sequential(name=config["name"])
    if config["input_shape"]:
        model.add(layers_mod.Input(shape=tuple(config["input_shape"]),
                                   dtype=config.get("input_dtype", "float32")))
    for i, spec in enumerate(config["layers"]):
        cls = getattr(layers_mod, spec["class_name"], None)
        if cls is None or not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise ValueError(f"unknown layer class {spec['class_name']!r} in {filepath}")
        layer_config = dict(spec["config"])
        layer_config.pop("sparsity", None)      # the saved mask restores the exact pattern
        model.add(cls.from_config(layer_config))
    if not model.built:
        model.build()
    for i, layer in enumerate(model.layers):
        mask = arrays.get(f"mask_{i}")
        if mask is not None:
            layer.set_sparsity(1.0 - float(mask.mean()), mask=mask.astype(bool))
    n = len([k for k in arrays if k.startswith("weight_")])
    model.set_weights([arrays[f"weight_{i}"] for i in range(n)])
    compile_cfg = meta.get("compile")
    if compile and compile_cfg:
        opt = compile_cfg["optimizer"]
        optimizer = optimizers_mod.get(opt["name"])
        if isinstance(opt.get("learning_rate"), (int, float)):
            optimizer.learning_rate = opt["learning_rate"]
        if compile_cfg["loss"] != "custom":
            model.compile(optimizer, compile_cfg["loss"], compile_cfg["metrics"])
    return model


from .gpt import GPT, GPTConfig  # noqa: E402,F401  (GPT is a Sequential, defined above)
