"""Reading a ``.keras`` file that Keras 3 wrote: ``metadata.json`` (``keras_version``),
``config.json`` (Keras's serialization) and ``model.weights.h5`` (HDF5).

The config is translated to wsekern.nn's (the ``module``/``class_name`` wrappers unwrapped,
``DTypePolicy`` to a dtype name, ``batch_shape`` kept, the functional ``inbound_nodes`` /
``keras_history`` to our node list) and built by the same checked builder as our own files;
a layer class wsekern.nn lacks is refused by name. The weights are read from the HDF5 file
layer by layer (nested models recursively), each dataset's shape checked against the built
layer before it is read, and set through ``set_weights``. The optimizer state is restored for
SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Lion and Nadam, whose variable order
in Keras's file is known; for another optimizer the weights load and a warning says the
state did not.

h5py is needed only here (``pip install 'wsekern[keras]'``); it is imported when such a file
is read. Nothing in the file is run.
"""
import io
import json
import re
import warnings

import numpy as np

from .. import layers as layers_mod
from .. import registry
from ..optimizers import KERAS_SLOT_GROUPS
from .model_config import ConfigError, model_from_config

KERAS_CONFIG_MAX_BYTES = 16 * 2**20       # Keras's config is verbose: ~2 KB a layer
METADATA_MAX_BYTES = 64 * 1024

# Keras config keys that mean nothing here when they hold this (Keras's default) value
# (the file's weights replace what an initializer would draw, but a non-default one is
# kept, so that the layer that refuses it says so)
_ZEROS, _ONES = {"class_name": "Zeros", "config": {}}, {"class_name": "Ones", "config": {}}
_NO_MEANING = {"quantization_config": None, "lora_rank": None, "lora_alpha": None,
               "sparse": False, "ragged": False, "optional": False, "synchronized": False,
               "noise_shape": None, "renorm": False, "renorm_clipping": None,
               "renorm_momentum": 0.99, "rms_scaling": False, "beta_initializer": _ZEROS,
               "gamma_initializer": _ONES, "moving_mean_initializer": _ZEROS,
               "moving_variance_initializer": _ONES, "output_padding": None}
# keras.ops nodes of a functional graph and our OpLayer's op for them
_OPS = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply", "Divide": "divide",
        "TrueDivide": "divide", "Matmul": "matmul", "Negative": "negative",
        # the mask ops: Embedding(mask_zero=True), Masking and merged masks record them
        "NotEqual": "not_equal", "Equal": "equal", "LogicalOr": "logical_or",
        "LogicalAnd": "logical_and", "LogicalNot": "logical_not", "Any": "any", "All": "all"}
# Keras's slot variables, in the groups its optimizers create them (each group interleaved
# per model variable): optimizer/vars/ is [iterations, learning_rate, group 1..., group 2...]
_SLOT_GROUPS = KERAS_SLOT_GROUPS
# scalars Keras keeps after the slots: Nadam's running product of its momentum schedule
# (ours recomputes it from the step count, so it is written but not read)
_TRAILING = {"Nadam": 1}
# a layer made of sublayers: the HDF5 groups holding its weights, in get_weights order
_SUBLAYER_GROUPS = {"MultiHeadAttention": ("query_dense", "key_dense", "value_dense",
                                          "output_dense"),
                    "TimeDistributed": ("layer",)}


def is_keras_archive(archive):
    """True when the zip is Keras's: a metadata.json naming keras_version."""
    if "metadata.json" not in archive.members:
        return False
    meta = _json_member(archive, "metadata.json", METADATA_MAX_BYTES)
    return isinstance(meta, dict) and "keras_version" in meta


def _json_member(archive, name, cap):
    info = archive.members.get(name)
    if info is None:
        raise ValueError(f"{archive.path} is a Keras file without {name}; it cannot be read")
    if info.file_size > cap:
        raise ValueError(f"{archive.path}: {name} declares {info.file_size:,} bytes; at most "
                         f"{cap:,} are read")
    raw = archive._read_capped(info, cap)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{archive.path}: {name} is not valid JSON ({type(e).__name__}: "
                         f"{str(e)[:100]})") from None


def _import_h5py(what="a .keras file in Keras's format (written by Keras, or by "
                       "wsekern.nn's save where h5py was installed)"):
    try:
        import h5py
    except ImportError:
        raise ImportError(f"reading {what} needs h5py (its weights are HDF5), an optional "
                          "extra of wsekern: pip install 'wsekern[keras]' (or pip install "
                          "h5py); files in wsekern.nn's own format need nothing more") \
            from None
    return h5py


# -- the config -----------------------------------------------------------------------------
def _snake(name):
    """Keras's naming.to_snake_case: the HDF5 group a layer's weights are saved under."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _is_wrapped(v):
    return isinstance(v, dict) and "class_name" in v and "config" in v


def _value(v, where):
    """A config value with Keras's wrappers unwrapped to what our resolvers take."""
    if isinstance(v, list):
        return [_value(x, where) for x in v]
    if not isinstance(v, dict):
        return v
    if not _is_wrapped(v):
        return {k: _value(x, f"{where}[{k!r}]") for k, x in v.items()}
    cn, cfg = v["class_name"], v["config"]
    if not isinstance(cn, str):
        raise ConfigError(f"{where}: class_name must be a string; received {cn!r:.80}")
    if cn in ("DTypePolicy", "FloatDTypePolicy"):
        name = cfg.get("name") if isinstance(cfg, dict) else cfg
        if not isinstance(name, str):
            raise ConfigError(f"{where}: a DTypePolicy needs a name; received {cfg!r:.80}")
        if name.startswith("mixed_"):
            # float32 variables but float16 math: run in float32 it would predict otherwise
            raise ConfigError(f"{where}: the layer uses Keras's mixed precision policy "
                              f"{name!r}, which wsekern.nn does not run (its layers compute "
                              f"in their variables' dtype); save the model from Keras with "
                              f"the float32 policy to load it here")
        return name
    if cn == "__tuple__":
        return _value(cfg.get("value") if isinstance(cfg, dict) else cfg, where)
    if cn.startswith("__"):
        raise ConfigError(f"{where}: the file holds a {cn} value (Python code or data Keras "
                          f"wrote in its own form), which wsekern.nn does not load")
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: the config of {cn} must be an object")
    cfg = {k: _value(x, f"{where}[{k!r}]") for k, x in cfg.items()
           if not (k in ("input_axes", "output_axes") and x is None)}
    reg = v.get("registered_name")
    return {"class_name": reg if isinstance(reg, str) and ">" in reg else cn, "config": cfg}


def _class(spec, where):
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be an object; received {type(spec).__name__}")
    cn = spec.get("class_name")
    if not isinstance(cn, str):
        raise ConfigError(f"{where} has no class_name")
    reg = spec.get("registered_name")
    return reg if isinstance(reg, str) and ">" in reg else cn


def _is_op(spec):
    module = spec.get("module")
    return isinstance(module, str) and module.startswith(("keras.src.ops", "keras.ops"))


def _layer_config(spec, where):
    config = spec.get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"{where}['config'] must be an object")
    out = {}
    for k, x in config.items():
        if k == "layer" and _is_wrapped(x):          # TimeDistributed's layer
            out[k] = _translate_layer(x, f"{where}['config']['layer']")
            continue
        x = _value(x, f"{where}['config'][{k!r}]")
        if k in _NO_MEANING and x == _NO_MEANING[k] or (k == "data_format"
                                                        and x == "channels_last"):
            continue
        if k == "axis" and isinstance(x, list) and len(x) == 1:
            x = x[0]                     # LayerNormalization writes its axis as a list
        out[k] = x
    return out


def translate_model(spec, where="config.json"):
    """Keras's serialized model (Sequential or Functional) as our model spec."""
    cn = _class(spec, where)
    if cn == "Sequential":
        return _sequential(spec, where)
    if cn in ("Functional", "Model"):
        return _functional(spec, where)
    raise ConfigError(f"{where}: the model is a {cn!r}; a Keras file wsekern.nn reads holds a "
                      f"Sequential or functional model (a subclassed keras.Model's code is not "
                      f"in the file)")


def _translate_layer(spec, where):
    cn = _class(spec, where)
    if cn in ("Sequential", "Functional", "Model"):
        return translate_model(spec, where)
    if cn == "InputLayer":
        config = _layer_config(spec, where)
        return {"class_name": "InputLayer", "config": config}
    module = spec.get("module")
    if isinstance(module, str) and module.split(".")[0] == "keras" and \
            not hasattr(layers_mod, cn) and registry.get_registered_object(cn) is None:
        name = spec.get("name") or (spec.get("config") or {}).get("name") or cn
        raise ConfigError(f"{where}: layer {name!r} is Keras's {cn}, which "
                          f"wsekern.nn does not have (its layers are listed in the README); "
                          f"pass custom_objects={{{cn!r}: cls}} to give one")
    return {"class_name": cn, "config": _layer_config(spec, where)}


def _sequential(spec, where):
    config = spec.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ConfigError(f"{where}['config'] must be an object with a 'layers' list")
    layers, first = list(config["layers"]), 0
    out = {"name": config.get("name") or "sequential", "layers": []}
    if layers and isinstance(layers[0], dict) and layers[0].get("class_name") == "InputLayer":
        inp, first = _layer_config(layers.pop(0), f"{where}['config']['layers'][0]"), 1
        shape = inp.get("batch_shape")
        if not isinstance(shape, list) or not shape:
            raise ConfigError(f"{where}: the InputLayer needs a batch_shape list; received "
                              f"{shape!r:.80}")
        out["input_shape"] = shape[1:]
        out["input_dtype"] = inp.get("dtype") or "float32"
    elif isinstance(config.get("build_input_shape"), list) and config["build_input_shape"]:
        out["input_shape"] = config["build_input_shape"][1:]
    for i, layer in enumerate(layers, start=first):
        out["layers"].append(_translate_layer(layer, f"{where}['config']['layers'][{i}]"))
    return {"class_name": "Sequential", "config": out}


def _is_history(v):
    return (isinstance(v, list) and len(v) == 3 and isinstance(v[0], str)
            and all(isinstance(x, int) and not isinstance(x, bool) for x in v[1:]))


def _functional(spec, where):
    config = spec.get("config")
    where = where + "['config']"
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ConfigError(f"{where} must be an object with a 'layers' list")
    specs = config["layers"]
    layers, pending, names = [], [], {}
    for i, s in enumerate(specs):
        at = f"{where}['layers'][{i}]"
        if not isinstance(s, dict):
            raise ConfigError(f"{at} must be an object")
        name = s.get("name") or (s.get("config") or {}).get("name")
        if not isinstance(name, str) or name in names:
            raise ConfigError(f"{at}: a layer needs a unique name; received {name!r:.80}")
        names[name] = i
        if _is_op(s):
            cn = _class(s, at)
            if cn not in _OPS:
                raise ConfigError(f"{at}: the graph applies keras.ops.{_snake(cn)}, which "
                                  f"wsekern.nn cannot rebuild from a file (it rebuilds "
                                  f"{', '.join(sorted(_OPS))})")
            op_config = {"name": name, "op": _OPS[cn]}
            if cn in ("Any", "All"):
                kc = s.get("config") if isinstance(s.get("config"), dict) else {}
                op_config.update(axis=kc.get("axis"), keepdims=kc.get("keepdims", False))
            layers.append({"class_name": "OpLayer", "config": op_config})
        else:
            layers.append(_translate_layer(s, at))
        nodes = s.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise ConfigError(f"{at}['inbound_nodes'] must be a list")
        if _class(s, at) == "InputLayer":
            nodes = [{"args": [], "kwargs": {}}]
        pending.extend((i, k, n, f"{at}['inbound_nodes'][{k}]") for k, n in enumerate(nodes))
    ours, placed = [], {}                   # our nodes; (layer index, node index) -> ours

    def ref(v, at, missing):
        if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
            hist = (v.get("config") or {}).get("keras_history")
            if not _is_history(hist) or hist[0] not in names:
                raise ConfigError(f"{at}: a tensor's keras_history {hist!r:.80} names no layer")
            key = (names[hist[0]], hist[1])
            if key not in placed:
                missing.append(key)
                return None
            return {"__tensor__": [placed[key], hist[2]]}
        if isinstance(v, list):
            return [ref(x, at, missing) for x in v]
        if isinstance(v, dict):
            return {k: ref(x, at, missing) for k, x in v.items()}
        return v
    # nodes in an order where each one's inputs come first (as Keras rebuilds them)
    while pending:
        progress = []
        for item in pending:
            i, k, node, at = item
            missing = []
            if not isinstance(node, dict):
                raise ConfigError(f"{at} must be an object with args and kwargs")
            args = ref(node.get("args", []), at, missing)
            kwargs = ref(node.get("kwargs", {}), at, missing)
            if missing:
                continue
            if layers[i]["class_name"] == "OpLayer":
                args, kwargs = _op_args(layers[i], args, kwargs, at)
            placed[(i, k)] = len(ours)
            ours.append({"layer": i, "args": list(args),
                         "kwargs": {kk: x for kk, x in kwargs.items()
                                    if not (kk == "mask" and x is None)}})
            progress.append(item)
        if not progress:
            raise ConfigError(f"{where}: the layers' inbound nodes name tensors that no node "
                              f"makes (or form a cycle)")
        pending = [p for p in pending if p not in progress]

    def io_refs(v, at):
        if _is_history(v):
            if v[0] not in names or (names[v[0]], v[1]) not in placed:
                raise ConfigError(f"{at}: {v!r:.80} names no node of the graph")
            return {"__tensor__": [placed[(names[v[0]], v[1])], v[2]]}
        if isinstance(v, list):
            return [io_refs(x, at) for x in v]
        if isinstance(v, dict):
            return {k: io_refs(x, at) for k, x in v.items()}
        raise ConfigError(f"{at} must name [layer, node, tensor]; received {v!r:.80}")
    return {"class_name": "Functional", "config": {
        "name": config.get("name") or "functional", "layers": layers, "nodes": ours,
        "inputs": io_refs(config.get("input_layers"), f"{where}['input_layers']"),
        "outputs": io_refs(config.get("output_layers"), f"{where}['output_layers']")}}


_BOOL_CONST_OPS = ("not_equal", "equal", "logical_or", "logical_and")


def _op_args(layer, args, kwargs, at):
    """A keras.ops node's arguments as OpLayer takes them: tensors, or one tensor and a
    number (``reverse`` when the number is the left operand)."""
    if kwargs:
        raise ConfigError(f"{at}: keras.ops.{layer['config']['op']} with keyword arguments "
                          f"{sorted(kwargs)} is not rebuilt")
    tensors = [a for a in args if isinstance(a, dict) and "__tensor__" in a]
    consts = [a for a in args if not (isinstance(a, dict) and "__tensor__" in a)]
    if len(consts) == 1 and len(args) == 2 and isinstance(consts[0], (int, float)) \
            and (not isinstance(consts[0], bool) or layer["config"]["op"] in _BOOL_CONST_OPS):
        layer["config"]["constant"] = consts[0]
        layer["config"]["reverse"] = args[0] is consts[0]
        return tensors, {}
    if consts:
        raise ConfigError(f"{at}: keras.ops.{layer['config']['op']} takes tensors or one "
                          f"number here; received {consts!r:.80}")
    return tensors, {}


# -- the weights ----------------------------------------------------------------------------
def _layer_groups(specs, sequential):
    """(keras spec, HDF5 group name) of a container's layers, as Keras names them: the
    class's snake_case name, _1, _2... for the next of the same class."""
    used, out = {}, []
    for s in specs:
        if _is_op(s) or (sequential and s.get("class_name") == "InputLayer"):
            continue
        name = _snake(s.get("class_name") or "")
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        out.append((s, name))
    return out


class _Weights:
    """The weights in model.weights.h5, read per layer with every shape checked first."""

    def __init__(self, h5file, path):
        self.f, self.path = h5file, path

    def _get(self, where):
        """The object at ``where``, reached through hard links only: an HDF5 soft or
        external link (which Keras never writes) could read another file on this machine."""
        obj = self.f
        for part in [p for p in where.split("/") if p]:
            link = obj.get(part, getlink=True) if hasattr(obj, "keys") else None
            if link is None:
                return None
            if type(link).__name__ != "HardLink":
                raise ValueError(f"{self.path}: model.weights.h5 holds {where} through a "
                                 f"{type(link).__name__} (Keras writes none); refusing the file")
            obj = obj[part]
        return obj

    def group(self, where):
        g = self._get(where)
        return g if g is not None and hasattr(g, "keys") else None

    def vars_of(self, where):
        """The datasets of group ``where``/vars, in their numeric order."""
        g = self.group(f"{where}/vars")
        if g is None:
            return []
        keys = sorted(g.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if any(not k.isdigit() for k in keys) or keys != [str(i) for i in range(len(keys))]:
            raise ValueError(f"{self.path}: model.weights.h5 group {where}/vars holds "
                             f"{keys[:6]}; Keras writes 0, 1, 2...")
        return [self._get(f"{where}/vars/{k}") for k in keys]

    def read(self, dataset, shape, dtype, what):
        """The dataset as an array of ``shape`` (same size: Keras's MHA kernels are 3-D where
        ours may be flat), checked before a byte is read."""
        if not hasattr(dataset, "shape") or not hasattr(dataset, "dtype"):
            raise ValueError(f"{self.path}: {what} is not an HDF5 dataset")
        # its bytes must be in this file: external raw storage or a virtual dataset reads
        # other files (a FIFO there hangs the read; a missing source reads as zeros)
        if getattr(dataset, "external", None) or getattr(dataset, "is_virtual", False):
            raise ValueError(f"{self.path}: {what} keeps its data outside model.weights.h5 "
                             f"({'external storage' if dataset.external else 'a virtual dataset'}"
                             f"; Keras writes its weights inside); refusing the file")
        got = tuple(dataset.shape)
        if got != tuple(shape) and int(np.prod(got, dtype=np.int64)) != \
                int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{self.path}: {what} has shape {got}; the model built from the "
                             f"file's config needs {tuple(shape)}")
        if dataset.dtype.kind not in "fiub":
            raise ValueError(f"{self.path}: {what} has dtype {dataset.dtype}; weights are "
                             f"numbers")
        try:
            arr = np.asarray(dataset[()])
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"{self.path}: {what} cannot be read ({e})") from None
        return arr.astype(dtype, copy=False).reshape(got)


def _find_layer(model, name, error=ValueError, which="the model built from the file"):
    """``model``'s layer ``name`` (the reader's and keras_writer's; each its own error)."""
    for layer in model.layers:
        if layer.name == name:
            return layer
    raise error(f"{which} has no layer {name!r}")


def _load_container(store, model, kspec, where):
    """The weights of a Sequential or functional model's layers; returns its trainable
    variables in Keras's order (its layers' order in the file, nested models recursively),
    which is the order of Keras's optimizer variables."""
    cn = _class(kspec, where)
    config = kspec["config"]
    trainable, seen = [], set()
    for s, group in _layer_groups(config["layers"], cn == "Sequential"):
        name = s.get("name") or (s.get("config") or {}).get("name")
        at = f"layers/{group}" if not where else f"{where}/layers/{group}"
        if s.get("class_name") == "InputLayer":
            continue
        layer = _find_layer(model, name)
        if _class(s, at) in ("Sequential", "Functional", "Model"):
            variables = _load_container(store, layer, s, at)
        else:
            _load_layer(store, layer, _class(s, at), at)
            variables = layer.trainable_weights
        for v in variables if model.trainable else ():
            if id(v) not in seen:
                seen.add(id(v))
                trainable.append(v)
    return trainable


def _load_layer(store, layer, cn, at):
    expected = [np.asarray(w) for w in layer.get_weights()]
    if cn in _SUBLAYER_GROUPS:
        datasets = [d for sub in _SUBLAYER_GROUPS[cn] for d in store.vars_of(f"{at}/{sub}")]
    else:
        datasets = store.vars_of(at)
    if store.group(at) is None and expected:
        raise ValueError(f"{store.path}: model.weights.h5 has no group {at} for layer "
                         f"{layer.name!r}")
    if len(datasets) != len(expected):
        raise ValueError(f"{store.path}: model.weights.h5 holds {len(datasets)} arrays for "
                         f"layer {layer.name!r} ({cn}); the layer built from the config has "
                         f"{len(expected)}")
    if expected:
        layer.set_weights([store.read(d, e.shape, e.dtype, f"{at} weight {i}")
                           for i, (d, e) in enumerate(zip(datasets, expected))])


def _load_optimizer_state(store, model, opt_class, variables):
    """Keras's optimizer variables (``variables``: the model's trainable ones in Keras's
    order) into ours, or a warning saying they were not."""
    opt = model.optimizer
    name = type(opt).__name__
    ours = {id(v): i for i, v in enumerate(model.trainable_weights)}
    if len(ours) != len(variables) or any(id(v) not in ours for v in variables):
        warnings.warn("the weights were loaded but not the optimizer state: the model's "
                      "trainable variables do not match Keras's one for one; training "
                      "resumes with fresh optimizer state", stacklevel=4)
        return
    found = store.vars_of("optimizer")
    groups = _SLOT_GROUPS.get(name) if name == opt_class else None
    if groups is None:
        warnings.warn(f"the weights were loaded but not the state of the {opt_class} "
                      f"optimizer (its variable order in a Keras file is known for "
                      f"{', '.join(sorted(_SLOT_GROUPS))} only): training resumes with fresh "
                      f"optimizer state", stacklevel=4)
        return
    active = list(opt._active_slots())
    layout = [(j_names, v) for grp in groups for j_names in [[n for n in grp if n in active]]
              if j_names for v in range(len(variables))]
    scalars = 1 + (not callable(opt._learning_rate))     # iterations, the learning rate
    n_slots = sum(len(names) for names, _ in layout) + _TRAILING.get(name, 0)
    if len(found) != scalars + n_slots:
        warnings.warn(f"the weights were loaded but not the optimizer state: the file holds "
                      f"{len(found)} optimizer variables where {name} on this model keeps "
                      f"{scalars + n_slots}; training resumes with fresh optimizer state",
                      stacklevel=4)
        return
    arrays = {"iterations": store.read(found[0], (), np.int64, "optimizer iterations")}
    k = scalars
    for names, v in layout:
        var = variables[v]
        for n in names:
            arr = store.read(found[k], var.data.shape, var.data.dtype, f"optimizer/vars/{k}")
            arrays[f"{ours[id(var)]}/{active.index(n)}"] = arr.reshape(var.data.shape)
            k += 1
    opt.load_state_arrays(model.trainable_weights, arrays)


# -- compile --------------------------------------------------------------------------------
def _compile_args(cc, where):
    from .. import optimizers as optimizers_mod
    opt_spec = cc.get("optimizer")
    if isinstance(opt_spec, str):
        optimizer = optimizers_mod.get(opt_spec)
        opt_class = type(optimizer).__name__
    else:
        if not _is_wrapped(opt_spec):
            raise ConfigError(f"{where}['optimizer'] must be a name or a serialized optimizer")
        opt_class = _class(opt_spec, where + "['optimizer']")
        unwrapped = _value(opt_spec, where + "['optimizer']")
        try:
            optimizer = optimizers_mod.deserialize(unwrapped)
        except (TypeError, ValueError, NotImplementedError) as e:
            raise ConfigError(f"{where}: the {opt_class} optimizer cannot be made here "
                              f"({e}); load_model(..., compile=False) loads the model "
                              f"without it") from None
    return optimizer, opt_class


def _weights_member(archive, meta, max_bytes):
    info = archive.members.get("model.weights.h5")
    if info is None:
        raise ValueError(f"{archive.path} is a Keras {meta.get('keras_version')!s:.20} file "
                         f"without model.weights.h5 (Keras 3 writes its weights there); it "
                         f"cannot be read")
    if info.file_size > max_bytes:        # the file is the weights and HDF5's headers
        raise ValueError(f"{archive.path}: model.weights.h5 declares {info.file_size:,} "
                         f"bytes, beyond max_bytes={max_bytes:,}; raise max_bytes to load it")
    return info


def _open_h5(archive, info):
    """The member as an open read-only HDF5 file (read into memory, at most its declared
    size)."""
    h5py = _import_h5py()
    data = archive._read_capped(info, info.file_size)
    try:
        return h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError) as e:
        raise ValueError(f"{archive.path}: model.weights.h5 is not a readable HDF5 file "
                         f"({str(e)[:120]})") from None


def load_container_weights(h5, path, model, kspec):
    """Keras's HDF5 layout (``h5``: an open file or group) into ``model``, whose Keras
    serialization is ``kspec``; every dataset's shape is checked before it is read."""
    try:
        return _load_container(_Weights(h5, path), model, kspec, "")
    except (KeyError, OSError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: the weights cannot be read ({type(e).__name__}: "
                         f"{str(e)[:120]})") from None


def weights_loader(archive, max_bytes):
    """For a ``.keras`` file wsekern wrote: a function that loads model.weights.h5 into the
    model built from our own config (which rides along in the file)."""
    meta = _json_member(archive, "metadata.json", METADATA_MAX_BYTES)
    kspec = _json_member(archive, "config.json", KERAS_CONFIG_MAX_BYTES)
    info = _weights_member(archive, meta, max_bytes)
    _import_h5py()                 # before the model is built: a clear error, nothing done

    def load(model):
        with _open_h5(archive, info) as h5:
            load_container_weights(h5, archive.path, model, kspec)
    return load


def load_keras_model(archive, custom_objects, compile, max_bytes, restore_compile,
                     bound_sizes):
    """The model in a Keras-written archive (see the module docstring); ``restore_compile``
    and ``bound_sizes`` are load_model's (passed in: this module does not import its
    package)."""
    path = archive.path
    meta = _json_member(archive, "metadata.json", METADATA_MAX_BYTES)
    kspec = _json_member(archive, "config.json", KERAS_CONFIG_MAX_BYTES)
    info = _weights_member(archive, meta, max_bytes)
    from ..registry import with_objects
    where = f"{path}: config.json"
    with with_objects(custom_objects):
        try:
            spec = translate_model(kspec, where)
        except RecursionError:
            raise ConfigError(f"{where} nests deeper than a model config does") from None
    # sizes in the config (units, filters...) bounded by what the weights file can hold
    bound_sizes(spec, max(info.file_size // 4, 2**16), path)
    h5 = _open_h5(archive, info)
    with h5, with_objects(custom_objects):
        model = model_from_config(spec, custom_objects, where)
        store = _Weights(h5, path)
        try:
            variables = _load_container(store, model, kspec, "")
        except (KeyError, OSError) as e:
            raise ValueError(f"{path}: model.weights.h5 cannot be read ({type(e).__name__}: "
                             f"{str(e)[:120]})") from None
        cc = kspec.get("compile_config")
        if compile and isinstance(cc, dict) and cc.get("optimizer") is not None:
            optimizer, opt_class = _compile_args(cc, "config.json['compile_config']")
            restore_compile(model, optimizer, {k: _value(cc.get(k), f"compile_config[{k!r}]")
                                               for k in ("loss", "loss_weights", "metrics",
                                                         "weighted_metrics")})
            if store.group("optimizer") is not None:
                _load_optimizer_state(store, model, opt_class, variables)
    return model
