"""``model.save`` / ``load_model`` / weights files, and custom objects by registered name
(``keras.saving``).

A model file is a zip: ``config.json`` (architecture, compile settings, optimizer config and
a manifest of every array with its shape and dtype) and ``.npy`` members (weights, sparsity
masks, optimizer state). Saving is atomic. Loading executes nothing from the file, resolves
classes only among wsekern.nn's and registered/custom objects, bounds what it reads by the
model the config describes (``max_bytes``), and checks every value it reads.

A ``.keras`` path gets Keras 3's format instead (:mod:`keras_writer`) where Keras can rebuild
the model, with the above riding along under ``wsekern/`` (the weights once, in Keras's
``model.weights.h5``); a ``.weights.h5`` path of ``save_weights`` gets Keras's HDF5 layout.
"""
import os
import warnings
import zipfile

import numpy as np

from ..._atomic import atomic_file
from .. import losses as losses_mod
from ..models.functional import file_layer_order
from ..registry import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
    with_objects,
)
from . import keras_format, keras_writer, optimizer_io
from .archive import Archive, dumps, npy_bytes, write_atomically
from .model_config import ConfigError, model_from_config, model_spec, need
from .objects import deserialize_keras_object, serialize_keras_object

FORMAT = "wsekern.nn/2"
OLD_FORMAT = "wsekern.nn/1"
DEFAULT_MAX_BYTES = 4 * 2**30
_STATE_DTYPES = {"float16", "float32", "float64", "int32", "int64"}

__all__ = ["save_model", "load_model", "save_weights", "load_weights",
           "register_keras_serializable", "get_custom_objects", "get_registered_name",
           "get_registered_object", "custom_object_scope", "CustomObjectScope",
           "serialize_keras_object",
           "deserialize_keras_object"]


def _sparsity_mask(layer):
    if getattr(layer, "pattern", None) is not None:
        return layer.mask
    return getattr(layer, "weight_mask", None)


def _sparsity_masks(layer, key):
    """(key, mask) of ``layer`` and, in a layer made of sublayers (MultiHeadAttention,
    TransformerBlock), of each sparse sublayer, keyed "layer/sublayer/..." by index."""
    mask = _sparsity_mask(layer)
    if mask is not None:
        yield key, mask
    elif getattr(layer, "built", False) and hasattr(layer, "sublayers"):
        for j, sub in enumerate(layer.sublayers):
            yield from _sparsity_masks(sub, f"{key}/{j}")


def _encode_callable(obj, what):
    """A loss or metric as the file keeps it: a name, or {'class_name', 'config'}."""
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (list, tuple)):
        return [_encode_callable(o, what) for o in obj]
    if isinstance(obj, dict):
        return {k: _encode_callable(v, what) for k, v in obj.items()}
    if isinstance(obj, type):
        return get_registered_name(obj)
    if hasattr(obj, "get_config") and not callable(getattr(obj, "__name__", None)):
        return {"class_name": get_registered_name(type(obj)), "config": obj.get_config()}
    return get_registered_name(obj)


def _compile_spec(model):
    cfg = getattr(model, "_compile_config", None)
    if not model.compiled or cfg is None:
        return None
    return {"loss": _encode_callable(cfg["loss"], "loss"),
            "loss_weights": cfg["loss_weights"],
            "metrics": _encode_callable(cfg["metrics"], "metric"),
            "weighted_metrics": _encode_callable(model._weighted_metrics_arg, "metric")}


def save_model(model, filepath, overwrite=True):
    """Write ``model`` to ``filepath`` atomically (see the module docstring). A ``.keras``
    path gets Keras 3's format where Keras can rebuild the model (see :func:`_write_keras`);
    otherwise, and for any other path, wsekern.nn's own."""
    with file_layer_order(model):         # the files' order, as before session 20
        spec = model_spec(model)
        weights = model.get_weights()
        arrays = {f"weights/{i}.npy": w for i, w in enumerate(weights)}
        masks = {}
        for i, layer in enumerate(model.layers):
            for key, mask in _sparsity_masks(layer, str(i)):
                arrays[f"masks/{_member_key(key)}.npy"] = np.asarray(mask, dtype=bool)
                masks[key] = list(np.shape(mask))
        trainable = model.trainable_weights
    meta = {"format": FORMAT, "model": spec,
            "weights": [[list(w.shape), w.dtype.name] for w in weights], "masks": masks,
            "compile": _compile_spec(model)}
    if model.compiled and model.optimizer is not None:
        meta["optimizer"] = optimizer_io.serialize(model.optimizer)
        state = optimizer_io.state_arrays(model.optimizer, trainable)
        meta["optimizer_state"] = {k: [list(np.shape(v)), np.asarray(v).dtype.name]
                                   for k, v in state.items()}
        arrays.update({f"optimizer/{_member_key(k)}.npy": v for k, v in state.items()})
    if os.fspath(filepath).endswith(".keras"):
        why = _write_keras(model, filepath, overwrite, meta, arrays)
        if why is None:
            return
        warnings.warn(f"{os.fspath(filepath)} is written in wsekern.nn's own format, which "
                      f"nn.load_model reads but Keras cannot: {why}", stacklevel=3)
    write_atomically(filepath, meta, arrays, overwrite=overwrite)


def _write_keras(model, filepath, overwrite, meta, arrays):
    """Keras 3's ``.keras`` zip (metadata.json, config.json, model.weights.h5), with our own
    config, masks and optimizer state under ``wsekern/`` (Keras ignores them; load_model
    reads them, so the file loads back here exactly, weights from model.weights.h5). Returns
    None, or why Keras could not read the model (the caller then writes our format)."""
    try:
        kspec = keras_writer.model_config(meta["model"], model)
    except keras_writer.NotKerasWritable as e:
        return str(e)
    try:
        keras_writer._import_h5py()
    except ImportError:
        return "h5py is not installed (pip install 'wsekern[keras]' to write Keras's format)"
    compiled = model.compiled and model.optimizer is not None
    cc, cc_reason = keras_writer.compile_config(model, meta["compile"] if compiled else None,
                                                meta.get("optimizer"))
    if cc is not None:
        kspec["compile_config"] = cc
    try:
        h5, opt_reason = keras_writer.weights_h5(model, kspec, cc is not None)
    except keras_writer.NotKerasWritable as e:
        return str(e)
    path = os.fspath(filepath)
    if compiled and cc_reason:
        warnings.warn(f"{path}: Keras will load the model uncompiled: {cc_reason}; "
                      f"nn.load_model restores the compile settings", stacklevel=4)
    elif opt_reason:
        warnings.warn(f"{path}: Keras will load the weights with a fresh optimizer: "
                      f"{opt_reason}; nn.load_model restores the state", stacklevel=4)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    native = {**meta, "weights_in": "model.weights.h5"}
    members = {"metadata.json": keras_writer.metadata(),
               "config.json": dumps(kspec).encode(), "model.weights.h5": h5,
               keras_writer.NATIVE_PREFIX + "config.json": dumps(native).encode()}
    members.update({keras_writer.NATIVE_PREFIX + k: npy_bytes(v) for k, v in arrays.items()
                    if not k.startswith("weights/")})
    with atomic_file(path, suffix=".keras") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(name, data)
    return None


def _member_key(key):
    return key.replace("/", "-")


def save_weights(model, filepath, overwrite=True):
    """The weights alone: a ``.weights.h5`` path gets Keras 3's HDF5 layout (Keras's
    ``load_weights`` reads it) where Keras can rebuild the model; otherwise our zip."""
    path = os.fspath(filepath)
    if path.endswith(".weights.h5"):
        why = _write_keras_weights(model, path, overwrite)
        if why is None:
            return
        warnings.warn(f"{path} is written in wsekern.nn's own format, which load_weights "
                      f"reads but Keras cannot: {why}", stacklevel=3)
    with file_layer_order(model):
        weights = model.get_weights()
    write_atomically(filepath, {"format": FORMAT, "weights_only": True,
                                "weights": [[list(w.shape), w.dtype.name] for w in weights]},
                     {f"weights/{i}.npy": w for i, w in enumerate(weights)}, overwrite=overwrite)


def _write_keras_weights(model, path, overwrite):
    try:
        kspec = keras_writer.model_config(model_spec(model), model)
        keras_writer._import_h5py()
    except keras_writer.NotKerasWritable as e:
        return str(e)
    except ImportError:
        return "h5py is not installed (pip install 'wsekern[keras]' to write Keras's format)"
    data, _ = keras_writer.weights_h5(model, kspec, with_optimizer=False)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    with atomic_file(path, suffix=".h5") as f:
        f.write(data)
    return None


def _manifest(meta, path):
    """[(shape, dtype)] of the weights the file declares, checked for form."""
    entries = need(meta, "weights", list, "config.json")
    out = []
    for i, entry in enumerate(entries):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list)
                and isinstance(entry[1], str)):
            raise ConfigError(f"{path}: config.json['weights'][{i}] must be [shape, dtype]; "
                              f"received {entry!r:.80}")
        shape, dtype = entry
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape):
            raise ConfigError(f"{path}: config.json['weights'][{i}] has a bad shape {shape}")
        if dtype not in ("float16", "float32", "float64", "int32", "int64", "bool"):
            raise ConfigError(f"{path}: config.json['weights'][{i}] has dtype {dtype!r}; "
                              f"weights are float16/32/64, int32/64 or bool")
        out.append((tuple(shape), dtype))
    return out


def _nbytes(entries):
    return sum(int(np.prod(s, dtype=np.int64)) * np.dtype(d).itemsize for s, d in entries)


def _bound_config_sizes(spec, bound, path, where="model"):
    """Refuse a config whose sizes (units, filters, dims...) exceed what the file's weights
    could hold: building such a model would allocate far more than the file declares."""
    if isinstance(spec, dict):
        for k, v in spec.items():
            if "seed" in str(k):
                continue
            _bound_config_sizes(v, bound, path, f"{where}[{k!r}]")
    elif isinstance(spec, list):
        for i, v in enumerate(spec):
            _bound_config_sizes(v, bound, path, f"{where}[{i}]")
    elif isinstance(spec, int) and not isinstance(spec, bool) and spec > bound:
        raise ConfigError(f"{path}: {where} = {spec:,} is larger than any size the file's "
                          f"{bound:,} weight values allow; refusing to build the model")


def _read_weights(archive, meta, fmt, expected):
    """The weight arrays, each read with the size and dtype the built model expects."""
    out = []
    for i, (shape, dtype) in enumerate(expected):
        name = f"weights/{i}.npy" if fmt == FORMAT else f"weight_{i}.npy"
        out.append(archive.array(name, shape, dtype))
    return out


def _expected_weights(model, declared, path):
    """The (shape, dtype) of each array to read: the model's, or the file's where it holds
    the same values in another shape (an attention kernel written flat, (d, heads*key_dim),
    before session 17), which the layer's set_weights takes or refuses."""
    current = [(tuple(w.shape), w.dtype.name) for w in model.get_weights()]
    if declared is not None and len(declared) == len(current) and all(
            d == c or (dt == ct and np.prod(d, dtype=np.int64) == np.prod(c, dtype=np.int64))
            for (d, dt), (c, ct) in zip(declared, current)):
        return declared
    if declared is not None and current != declared:
        raise ValueError(f"{path}: the file declares {len(declared)} weight arrays "
                         f"{[s for s, _ in declared][:4]}...; its architecture builds "
                         f"{len(current)} {[s for s, _ in current][:4]}...")
    return current


def _open_config(archive, path, what):
    meta = archive.config()
    fmt = meta.get("format")
    if fmt not in (FORMAT, OLD_FORMAT):
        raise ValueError(f"{path} is not a wsekern.nn {what} file (format {fmt!r:.40})")
    return meta, fmt


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True,
               max_bytes=DEFAULT_MAX_BYTES):
    """Rebuild a model saved with ``model.save``: architecture, weights, sparsity masks and
    (``compile=True``) the compile settings with the optimizer and its state, so training
    resumes exactly. ``max_bytes`` bounds what the file may make this process allocate.

    Nothing in the file is run: classes are looked up among wsekern.nn's, those registered
    with ``register_keras_serializable`` and ``custom_objects``.

    Parameters
    ----------
    filepath : str or path-like
        A file written by ``model.save``, or a ``.keras`` file Keras 3 wrote (a Sequential
        or functional model of layers wsekern.nn has; reading it needs h5py,
        ``pip install 'wsekern[keras]'``).
    custom_objects : dict, optional
        Name -> class or function for custom layers, losses, activations.
    compile : bool, default True
        Restore the compile settings and the optimizer state.
    safe_mode : bool, default True
        As in Keras (no code is ever loaded from the file).
    max_bytes : int, default 4 GiB
        Refuse a file whose arrays would allocate more.

    Returns
    -------
    Model
    """
    path = str(filepath)
    with Archive(path) as archive:
        keras_weights = None
        if keras_format.is_keras_archive(archive) and \
                keras_writer.NATIVE_PREFIX + "config.json" in archive.members:
            # written by wsekern: our own config rides along; the weights are Keras's
            archive.prefix = keras_writer.NATIVE_PREFIX
            keras_weights = keras_format.weights_loader(archive, max_bytes)
        elif keras_format.is_keras_archive(archive):
            def restore(model, optimizer, cfg):
                model.compile(optimizer=optimizer,
                              loss=_resolve_loss(cfg["loss"], custom_objects, path),
                              loss_weights=cfg["loss_weights"],
                              metrics=_resolve_metrics(cfg["metrics"], custom_objects, path),
                              weighted_metrics=_resolve_metrics(cfg["weighted_metrics"],
                                                                custom_objects, path))
            return keras_format.load_keras_model(archive, custom_objects, compile, max_bytes,
                                                 restore, _bound_config_sizes)
        meta, fmt = _open_config(archive, path, "model")
        if meta.get("weights_only"):
            raise ValueError(f"{path} holds weights only; build the model and call "
                             f"load_weights")
        declared = _manifest(meta, path) if fmt == FORMAT else None
        state_spec = meta.get("optimizer_state") or {}
        if not isinstance(state_spec, dict):
            raise ConfigError(f"{path}: config.json['optimizer_state'] must be an object")
        estimate = _nbytes(declared or [])
        if estimate > max_bytes:
            raise ValueError(f"{path} declares {estimate:,} bytes of weights, beyond "
                             f"max_bytes={max_bytes:,}; raise max_bytes to load it")
        spec = meta.get("model") if fmt == FORMAT else {"class_name": "Sequential",
                                                         "config": meta.get("model")}
        if declared is not None:
            elements = sum(int(np.prod(s, dtype=np.int64)) for s, _ in declared)
            _bound_config_sizes(spec, max(elements, 2**16), path)
        with with_objects(custom_objects):
            model = model_from_config(spec, custom_objects, "config.json['model']")
            with file_layer_order(model):             # the files' order (see there)
                expected = _expected_weights(model, declared, path)
                _restore_masks(archive, meta, model, fmt, path)
                if keras_weights is None:
                    model.set_weights(_read_weights(archive, meta, fmt, expected))
            if keras_weights is not None:
                keras_weights(model)
            compile_cfg = meta.get("compile")
            if compile and compile_cfg:
                _restore_compile(archive, meta, model, compile_cfg, fmt, custom_objects, path)
    return model


def _restore_masks(archive, meta, model, fmt, path):
    layers = model.layers
    if fmt == FORMAT:
        masks = meta.get("masks") or {}
        if not isinstance(masks, dict):
            raise ConfigError(f"{path}: config.json['masks'] must be an object")
        keys = list(masks)
    else:
        keys = [n[len("mask_"):-4] for n in archive.members if n.startswith("mask_")
                and n.endswith(".npy")]
    containers = {}
    for key in keys:
        layer, owners = _masked_layer(layers, key, path)
        if not hasattr(layer, "set_sparsity") or hasattr(layer, "sublayers"):
            raise ConfigError(f"{path}: a sparsity mask is given for layer {layer.name!r}, "
                              f"which cannot be sparse")
        shape = layer.get_weights()[0].shape
        name = f"masks/{_member_key(key)}.npy" if fmt == FORMAT else f"mask_{key}.npy"
        mask = archive.array(name, shape, bool)            # exactly the kernel's shape
        layer.set_sparsity(1.0 - float(mask.mean()), mask=mask)
        containers.update((id(o), o) for o in owners)
    # deepest first, each container told that sublayers of it were re-pruned (its hook
    # re-reads their variables and its sparsity)
    for owner in reversed(list(containers.values())):
        owner.sublayers_changed()


def _masked_layer(layers, key, path):
    """The layer a mask's key names ("3", or "3/1/0" for a sublayer of a sublayer of layer
    3) and the containers on the way, outermost first."""
    parts = key.split("/")
    # ASCII digits only: '²'.isdigit() is true but int('²') fails
    if not all(p.isascii() and p.isdigit() for p in parts) or int(parts[0]) >= len(layers):
        raise ConfigError(f"{path}: a sparsity mask names layer {key!r}; the model has "
                          f"{len(layers)} layers")
    layer, owners = layers[int(parts[0])], []
    for p in parts[1:]:
        subs = getattr(layer, "sublayers", None) if getattr(layer, "built", False) else None
        if subs is None or int(p) >= len(subs):
            raise ConfigError(f"{path}: a sparsity mask names sublayer {key!r}; layer "
                              f"{layer.name!r} has {len(subs or [])} sublayers")
        owners.append(layer)
        layer = subs[int(p)]
    return layer, owners


def _resolve_loss(spec, custom_objects, path):
    if spec is None:
        return None
    if isinstance(spec, list):
        return [_resolve_loss(s, custom_objects, path) for s in spec]
    if isinstance(spec, dict) and "class_name" not in spec:
        return {k: _resolve_loss(v, custom_objects, path) for k, v in spec.items()}
    if isinstance(spec, dict):
        name = need(spec, "class_name", str, "config.json['compile']['loss']")
        config = need(spec, "config", dict, "config.json['compile']['loss']")
        cls = get_registered_object(name, custom_objects,
                                    {n: getattr(losses_mod, n) for n in dir(losses_mod)})
        if not (isinstance(cls, type) and issubclass(cls, losses_mod.Loss)):
            raise ConfigError(f"{path}: unknown loss class {name!r}; pass custom_objects= or "
                              f"load_model(..., compile=False)")
        config = {k: v for k, v in config.items() if k != "name" or "name" in
                  cls.__init__.__code__.co_varnames}
        try:
            return cls(**config)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{path}: loss {name} cannot be made from its config: {e}") \
                from None
    if not isinstance(spec, str):
        raise ConfigError(f"{path}: config.json['compile']['loss'] must be a name; received "
                          f"{spec!r:.80}")
    found = get_registered_object(spec, custom_objects)
    if found is not None:
        return found
    try:
        return losses_mod.get(spec)
    except ValueError:
        raise ConfigError(f"{path}: the model was compiled with loss {spec!r}, which is not a "
                          f"known loss: pass custom_objects={{{spec!r}: fn}} or "
                          f"load_model(..., compile=False)") from None


def _resolve_metrics(spec, custom_objects, path):
    if spec is None or isinstance(spec, (str, int, float)):
        if isinstance(spec, str):
            return get_registered_object(spec, custom_objects) or spec
        return spec
    if isinstance(spec, list):
        return [_resolve_metrics(s, custom_objects, path) for s in spec]
    if isinstance(spec, dict) and "class_name" in spec:
        name = need(spec, "class_name", str, "config.json['compile']['metrics']")
        try:
            from .. import metrics as metrics_mod
        except ImportError:
            metrics_mod = None
        cls = get_registered_object(name, custom_objects, None if metrics_mod is None else
                                    {n: getattr(metrics_mod, n) for n in dir(metrics_mod)})
        if not isinstance(cls, type) or not hasattr(cls, "update_state"):
            raise ConfigError(f"{path}: unknown metric class {name!r}; pass custom_objects= "
                              f"or load_model(..., compile=False)")
        return cls.from_config(need(spec, "config", dict, "metric")) \
            if hasattr(cls, "from_config") else cls(**spec["config"])
    if isinstance(spec, dict):
        return {k: _resolve_metrics(v, custom_objects, path) for k, v in spec.items()}
    raise ConfigError(f"{path}: config.json['compile']['metrics'] has an entry {spec!r:.80}")


def _restore_compile(archive, meta, model, cfg, fmt, custom_objects, path):
    where = "config.json['compile']"
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: {where} must be an object")
    if fmt == OLD_FORMAT:                        # /1 kept the optimizer's name and rate only
        opt = need(cfg, "optimizer", dict, where)
        spec = {"class_name": {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}.get(
            need(opt, "name", str, where + "['optimizer']"), "?"),
            "config": {"learning_rate": opt.get("learning_rate", 0.001)}}
        if cfg.get("loss") == "custom":
            return
    else:
        spec = meta.get("optimizer")
    optimizer = optimizer_io.deserialize(spec, custom_objects)
    loss_weights = cfg.get("loss_weights")
    if loss_weights is not None and not isinstance(loss_weights, (list, dict, int, float)):
        raise ConfigError(f"{path}: {where}['loss_weights'] must be a list or an object")
    model.compile(optimizer=optimizer, loss=_resolve_loss(cfg.get("loss"), custom_objects, path),
                  loss_weights=loss_weights,
                  metrics=_resolve_metrics(cfg.get("metrics"), custom_objects, path),
                  weighted_metrics=_resolve_metrics(cfg.get("weighted_metrics"), custom_objects,
                                                    path))
    if fmt != FORMAT:
        return
    state_spec = meta.get("optimizer_state") or {}
    with file_layer_order(model):                 # its keys index them in the files' order
        variables = model.trainable_weights
    arrays = {}
    for key, entry in state_spec.items():
        at = f"config.json['optimizer_state'][{key!r}]"
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list)
                and isinstance(entry[1], str) and entry[1] in _STATE_DTYPES):
            raise ConfigError(f"{path}: {at} must be [shape, dtype]; received {entry!r:.80}")
        shape = tuple(entry[0])
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape):
            raise ConfigError(f"{path}: {at} has a bad shape {list(shape)}")
        if key == "iterations":
            limit = 1
        else:
            i = key.split("/", 1)[0]
            if not (i.isascii() and i.isdigit()) or int(i) >= len(variables):
                raise ConfigError(f"{path}: optimizer state {key!r} names no variable (the "
                                  f"model has {len(variables)} trainable variables)")
            limit = max(int(np.prod(variables[int(i)].shape)), 1)
        if int(np.prod(shape, dtype=np.int64)) > limit:
            raise ConfigError(f"{path}: optimizer state {key!r} declares shape {list(shape)}, "
                              f"larger than its variable")
        arrays[key] = archive.array(f"optimizer/{_member_key(key)}.npy", shape, entry[1])
    if arrays:
        optimizer_io.load_state_arrays(model.optimizer, variables, arrays)


def load_weights(model, filepath, max_bytes=DEFAULT_MAX_BYTES):
    """Weights from a ``save_weights`` or ``save`` file into ``model`` (same architecture):
    ours, a ``.weights.h5`` file in Keras's layout (Keras's ``save_weights`` or ours), or a
    ``.keras`` file (Keras's or ours)."""
    path = str(filepath)
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic == b"\x89HDF\r\n\x1a\n":             # HDF5: Keras's weights layout
        size = os.path.getsize(path)
        if size > max_bytes:
            raise ValueError(f"{path} is {size:,} bytes, beyond max_bytes={max_bytes:,}")
        h5py = keras_format._import_h5py(f"{path}, an HDF5 weights file in Keras's layout,")
        try:
            kspec = keras_writer.model_config(model_spec(model), model)
        except keras_writer.NotKerasWritable as e:
            raise ValueError(f"{path} holds weights in Keras's layout, which this model "
                             f"cannot take: {e}") from None
        try:
            h5 = h5py.File(path, "r")
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} is not a readable HDF5 file ({str(e)[:120]})") from None
        with h5:
            keras_format.load_container_weights(h5, path, model, kspec)
        return
    with Archive(path) as archive:
        if keras_format.is_keras_archive(archive):
            info = keras_format._weights_member(archive, {}, max_bytes)
            kspec = keras_writer.model_config(model_spec(model), model)
            with keras_format._open_h5(archive, info) as h5:
                keras_format.load_container_weights(h5, path, model, kspec)
            return
        meta, fmt = _open_config(archive, path, "weights")
        declared = _manifest(meta, path) if fmt == FORMAT else None
        with file_layer_order(model):
            expected = _expected_weights(model, declared, path)
            model.set_weights(_read_weights(archive, meta, fmt, expected))
