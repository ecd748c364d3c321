"""``keras.models.clone_model``, ``model.to_json`` and ``keras.models.model_from_json``.

A clone, like a model read back from JSON, has the architecture and fresh weights. For a
pruned layer (``sparsity=``) the pattern of kept weights is part of the architecture here:
it says which weights exist. So a clone keeps the original's pattern, with freshly drawn
values at its kept positions, and ``clone.set_weights(model.get_weights())`` then gives
the original model exactly (a clone pruned afresh by magnitude would keep other
positions, and ``set_weights`` would drop the original's values outside them).
"""
import base64
import json
import math
import types

import numpy as np

from .. import initializers, metrics, optimizers
from ..layers.base import Layer
from ..layers.input_layer import Input, InputLayer
from ..symbolic import KerasTensor, flatten, map_structure
from .functional import Functional
from .model import Model
from .sequential import Sequential

__all__ = ["clone_model", "model_from_json"]

_MASK_BYTES_MAX = 64 * 2**20        # a mask in a JSON string: 512 Mi kernel positions


def clone_model(model, input_tensors=None, clone_function=None, call_function=None,
                recursive=False, **kwargs):
    """A new model with ``model``'s architecture and freshly initialized weights
    (``keras.models.clone_model``).

    Parameters
    ----------
    model : Sequential, functional Model, or a subclassed Model with ``get_config``
    input_tensors : KerasTensor or structure of them, optional
        ``nn.Input(...)`` tensors to build the clone on (the structure of ``model.input``;
        one tensor for a Sequential model).
    clone_function : callable, optional
        ``layer -> new layer`` for every layer but the inputs; by default
        ``type(layer).from_config(layer.get_config())``. Return the layer itself to share
        it (and its weights) with the original.
    call_function : callable, optional
        ``(layer, *args, **kwargs) -> outputs`` for each call in a functional model.
    recursive : bool, default False
        Clone nested Sequential/functional models layer by layer with ``clone_function``.

    Returns
    -------
    Model
        Compiled as the original was, if it was (a new optimizer of the same config, new
        metric objects). A pruned layer keeps the original's pattern of kept weights,
        with fresh values there.
    """
    if kwargs:
        raise ValueError(f"clone_model got unexpected keyword arguments {sorted(kwargs)}")
    if not isinstance(model, Model):
        raise TypeError(f"clone_model expects a Model; received {type(model).__name__}")
    if clone_function is not None and not callable(clone_function):
        raise TypeError(f"clone_function must be callable; received {clone_function!r:.80}")
    if call_function is not None and not callable(call_function):
        raise TypeError(f"call_function must be callable; received {call_function!r:.80}")
    clone = _clone(model, input_tensors, clone_function, call_function, bool(recursive), {})
    _apply_sparsity(clone, _sparsity_record(model), "the clone", originals=_walk(model))
    if model.compiled and getattr(model, "_compile_config", None) is not None:
        _compile_like(clone, model)
    return clone


def _fresh(obj):
    """Metric objects made anew (a metric keeps state); names, functions and Loss objects
    (which keep none) as given."""
    if isinstance(obj, (list, tuple)):
        return type(obj)(_fresh(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _fresh(v) for k, v in obj.items()}
    if type(obj) is metrics.MeanMetricWrapper:
        return metrics.MeanMetricWrapper(obj._fn, name=obj.name, **obj._fn_kwargs)
    if isinstance(obj, metrics.Metric):
        try:
            return type(obj).from_config(obj.get_config())
        except (TypeError, ValueError, NotImplementedError) as e:
            raise ValueError(f"clone_model: metric {obj.name!r} ({type(obj).__name__}) "
                             f"cannot be made anew from its get_config() ({e}); compile "
                             f"the clone yourself") from None
    return obj


def _compile_like(clone, model):
    """Keras compiles the clone of a compiled model with the same settings: a new optimizer
    of the same config, the losses, and new metric objects."""
    cfg = model._compile_config
    try:
        optimizer = optimizers.deserialize(optimizers.serialize(model.optimizer))
    except (TypeError, ValueError) as e:
        raise ValueError(f"clone_model: model {model.name!r} is compiled with an optimizer "
                         f"whose config cannot be copied ({e}); compile the model after "
                         f"cloning instead") from None
    clone.compile(optimizer=optimizer, loss=_fresh(cfg["loss"]),
                  loss_weights=cfg["loss_weights"], metrics=_fresh(cfg["metrics"]),
                  weighted_metrics=_fresh(model._weighted_metrics_arg))


def _clone(model, input_tensors, clone_function, call_function, recursive, cache):
    if isinstance(model, Sequential):
        if call_function is not None:
            raise ValueError("clone_model: call_function is for functional models; a "
                             "Sequential model's layers are listed, not called, when it "
                             "is made")
        return _clone_sequential(model, input_tensors,
                                 _layer_cloner(clone_function, recursive, cache))
    if isinstance(model, Functional):
        return _clone_functional(model, input_tensors, call_function,
                                 _layer_cloner(clone_function, recursive, cache))
    if input_tensors is not None or clone_function is not None or call_function is not None:
        raise ValueError(f"clone_model: input_tensors, clone_function and call_function are "
                         f"only for Sequential and functional models; {model.name!r} is a "
                         f"subclassed {type(model).__name__}")
    try:
        clone = type(model).from_config(model.get_config())
    except Exception as e:                   # noqa: BLE001 - say which model and why
        raise ValueError(f"clone_model: subclassed model {model.name!r} "
                         f"({type(model).__name__}) cannot be made from its get_config() "
                         f"({type(e).__name__}: {e}); give it a get_config that returns "
                         f"its __init__ arguments") from None
    if model.built and model.input_shape is not None and isinstance(model.input_shape,
                                                                     tuple):
        dims = tuple(1 if d is None else d for d in model.input_shape)
        clone(np.zeros(dims, dtype=model.dtype))      # built as the original, for its masks
    return clone


def _default_clone(layer):
    """``type(layer).from_config(layer.get_config())``; a function the layer holds (an
    activation of your own, say) is handed over as the function, not by its name (which
    names nothing registered): a clone, unlike a file, stays in this process."""
    config = layer.get_config()
    mixed = _mixed_leaves(layer)
    if mixed:
        # its config's one sparsity would prune every projection alike: built dense, its
        # leaves get the original's patterns in _apply_sparsity (as load_model does)
        config["sparsity"] = 0.0
    handed = [key for key, value in config.items() if isinstance(value, str) and
              isinstance(layer.__dict__.get(key), types.FunctionType)]
    if not handed:
        new = type(layer).from_config(config)
    else:
        config.update({key: layer.__dict__[key] for key in handed})
        try:
            new = type(layer).from_config(config)
        except (TypeError, ValueError):          # a from_config that looks the name up
            new = type(layer)(**config)
    if mixed:
        new._clone_leaf_patterns = True
    return new


def _mixed_leaves(layer):
    """True for a layer holding pruned layers (attention, a block) whose pruned leaves do
    not all have its sparsity (one projection pruned by hand, say)."""
    sparsity = getattr(layer, "sparsity", None)
    if not (getattr(layer, "built", False) and hasattr(layer, "sublayers")
            and isinstance(sparsity, float) and hasattr(layer, "set_sparsity")):
        return False
    leaves = [sub for sub in _walk(layer)[1:] if hasattr(sub, "set_sparsity")
              and not hasattr(sub, "sublayers")]
    return any(getattr(sub, "sparsity", 0.0) != sparsity for sub in leaves)


def _layer_cloner(clone_function, recursive, cache):
    """``layer -> clone``, once per layer (a shared layer stays shared in the clone);
    a nested Sequential/functional model is cloned as a model."""
    def clone(layer):
        if id(layer) in cache:
            return cache[id(layer)]
        if isinstance(layer, (Sequential, Functional)) and (recursive or
                                                             clone_function is None):
            new = _clone(layer, None, clone_function if recursive else None, None,
                         recursive, cache)
        else:
            new = (clone_function or _default_clone)(layer)
            if not isinstance(new, Layer):
                raise TypeError(f"clone_function returned {type(new).__name__} for layer "
                                f"{layer.name!r}; it must return a layer")
        cache[id(layer)] = new
        return new
    return clone


def _clone_sequential(model, input_tensors, clone_layer):
    clone = Sequential(name=model.name, trainable=model.trainable)
    clone._build_on_add = False
    if input_tensors is not None:
        if isinstance(input_tensors, (list, tuple)):
            if len(input_tensors) != 1:
                raise ValueError(f"clone_model: a Sequential model takes one input tensor; "
                                 f"received {len(input_tensors)}")
            input_tensors = input_tensors[0]
        if not (isinstance(input_tensors, KerasTensor) and
                isinstance(input_tensors.node.layer, InputLayer)
                and not input_tensors.node.args):
            raise ValueError("clone_model: input_tensors for a Sequential model must be one "
                             "nn.Input(...) tensor")
        clone.add(input_tensors)
    elif model._input_shape is not None and not (
            model.layers and model.layers[0]._input_shape_arg is not None):
        clone.add(Input(shape=model._input_shape, dtype=model._input_dtype.name))
    for layer in model.layers:
        clone.add(clone_layer(layer))
    clone._build_on_add = True
    if clone.layers and clone._input_shape is not None:
        clone.build()
    return clone


def _clone_functional(model, input_tensors, call_function, clone_layer):
    if input_tensors is None:
        new_inputs = map_structure(
            lambda t: Input(shape=t.shape[1:], batch_size=t.shape[0], dtype=t.dtype.name
                            if hasattr(t.dtype, "name") else t.dtype, name=t.node.layer.name),
            model.input)
    else:
        new_inputs = input_tensors
        given = flatten(input_tensors) if isinstance(input_tensors, (list, tuple, dict)) \
            else [input_tensors]
        if len(given) != len(model.inputs) or not all(
                isinstance(t, KerasTensor) for t in given):
            raise ValueError(f"clone_model: input_tensors must be {len(model.inputs)} "
                             f"symbolic tensor(s) (nn.Input), as model.input is; received "
                             f"{input_tensors!r:.120}")
        for old, new in zip(model.inputs, given):
            if len(old.shape) != len(new.shape) or any(
                    a is not None and b is not None and a != b
                    for a, b in zip(old.shape[1:], new.shape[1:])):
                raise ValueError(f"clone_model: input {old.node.layer.name!r} has shape "
                                 f"{old.shape}; the tensor given for it has {new.shape}")
    given = flatten(new_inputs) if isinstance(new_inputs, (list, tuple, dict)) \
        else [new_inputs]
    mapped = {id(old): new for old, new in zip(model.inputs, given)}
    read = lambda v: mapped[id(v)] if isinstance(v, KerasTensor) else v   # noqa: E731
    for node in model._nodes:
        if isinstance(node.layer, InputLayer) and not node.args:
            continue
        layer = clone_layer(node.layer)
        args, kwargs = map_structure(read, list(node.args)), map_structure(read, node.kwargs)
        out = call_function(layer, *args, **kwargs) if call_function is not None \
            else layer(*args, **kwargs)
        produced, expected = flatten(out), flatten(node.outputs)
        if len(produced) != len(expected):
            raise ValueError(f"clone_model: the clone of layer {node.layer.name!r} returned "
                             f"{len(produced)} tensors where the original gave "
                             f"{len(expected)}")
        for old, new in zip(expected, produced):
            mapped[id(old)] = new
    return Functional(new_inputs, map_structure(read, model.output), name=model.name,
                      trainable=model.trainable)


# -- pruning patterns --------------------------------------------------------------------
def _walk(layer):
    """The model and every layer in it, depth first, in a fixed order."""
    out = [layer]
    subs = layer.layers if isinstance(layer, (Sequential, Functional)) else layer._sublayers()
    for sub in subs:
        out.extend(_walk(sub))
    return out


def _mask_of(layer):
    if getattr(layer, "pattern", None) is not None:
        return np.asarray(layer.mask, dtype=bool)
    mask = getattr(layer, "weight_mask", None)
    return None if mask is None else np.asarray(mask, dtype=bool)


def _sparsity_record(model):
    """[(position in _walk, sparsity, mask or None)] of the pruned layers: leaves with a
    pattern give their mask; layers holding pruned layers (attention, blocks) their
    sparsity."""
    record = []
    for i, layer in enumerate(_walk(model)):
        sparsity = getattr(layer, "sparsity", 0.0)
        if not hasattr(layer, "set_sparsity") or not isinstance(sparsity, float):
            continue
        mask = _mask_of(layer)
        if sparsity > 0 or mask is not None:
            record.append((i, sparsity, mask))
    return record


def _apply_sparsity(model, record, what, originals=None):
    """Give ``model``'s layers the record's sparsity and patterns; a patterned layer's kept
    positions get fresh values from its kernel initializer. With ``originals`` (a clone's
    source, walked), a layer shared with the original, or one the clone function made of
    another class or sparsity, is left as it is."""
    layers = _walk(model)
    exact = _in_marked(model) if originals is not None else set()
    for i, sparsity, mask in record:
        if i in exact:                  # inside a holder cloned dense: leaves get patterns
            if mask is None:
                continue
        elif originals is not None and (i >= len(layers) or layers[i] is originals[i] or
                                        type(layers[i]) is not type(originals[i]) or
                                        getattr(layers[i], "sparsity", None) != sparsity):
            continue
        if i >= len(layers) or not hasattr(layers[i], "set_sparsity"):
            raise ValueError(f"{what}: layer {i} of the model (depth first) should be a "
                             f"pruned layer; the architecture has none there")
        layer = layers[i]
        if mask is None:
            if not layer.built:
                layer.sparsity = sparsity            # its build prunes it
            elif layer.sparsity != sparsity:
                layer.set_sparsity(sparsity)
            continue
        if not layer.built:
            raise ValueError(f"{what}: pruned layer {layer.name!r} is not built, so its "
                             f"pattern cannot be set; give the model an input shape")
        weights = layer.get_weights()
        if weights[0].shape != mask.shape:
            raise ValueError(f"{what}: layer {layer.name!r} has a kernel of shape "
                             f"{weights[0].shape}; its pattern has shape {mask.shape}")
        init = initializers.get(getattr(layer, "kernel_initializer", "glorot_uniform"))
        kernel = np.asarray(init(mask.shape, dtype=weights[0].dtype), weights[0].dtype)
        layer.set_sparsity(sparsity, mask=mask.copy())
        weights[0] = kernel * mask
        layer.set_weights(weights)
    for layer in reversed(layers):              # holders of pruned layers re-read them
        if hasattr(layer, "_refresh_variables"):
            layer._refresh_variables()
    for i in sorted(exact):                     # ... and keep their original's sparsity
        if hasattr(layers[i], "sublayers") and isinstance(
                getattr(originals[i], "sparsity", None), float):
            layers[i].sparsity = originals[i].sparsity
        layers[i].__dict__.pop("_clone_leaf_patterns", None)


def _in_marked(model):
    """Positions in ``_walk(model)`` of the layers cloned dense for their leaves' patterns
    (see _default_clone) and of everything inside them."""
    out, stack = set(), [(model, False)]
    position = 0
    while stack:
        layer, inside = stack.pop()
        inside = inside or layer.__dict__.get("_clone_leaf_patterns", False)
        if inside:
            out.add(position)
        position += 1
        subs = layer.layers if isinstance(layer, (Sequential, Functional)) else \
            layer._sublayers()
        stack.extend((sub, inside) for sub in reversed(list(subs)))
    return out


# -- JSON --------------------------------------------------------------------------------
def to_json(model, **kwargs):
    """The architecture as a JSON string (no weights): what ``model_from_json`` reads.
    Pruned layers' patterns are written too (bit-packed), as part of the architecture."""
    from ..saving.archive import dumps
    from ..saving.model_config import model_spec
    spec = dict(model_spec(model))
    record = _sparsity_record(model)
    if record:
        spec["wsekern_sparsity"] = [
            {"layer": i, "sparsity": s} if m is None else
            {"layer": i, "sparsity": s, "shape": list(m.shape),
             "bits": base64.b64encode(np.packbits(m.ravel())).decode("ascii")}
            for i, s, m in record]
    return json.dumps(json.loads(dumps(spec)), **kwargs)


def model_from_json(json_string, custom_objects=None):
    """A model of the architecture ``to_json`` wrote, with fresh weights
    (``keras.models.model_from_json``). Classes are resolved as ``load_model`` does:
    wsekern.nn's, registered ones and ``custom_objects``; nothing named is imported."""
    from ..registry import with_objects
    from ..saving.model_config import ConfigError, model_from_config
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError(f"model_from_json takes a JSON string; received "
                        f"{type(json_string).__name__}")
    try:
        spec = json.loads(json_string)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"model_from_json: not valid JSON ({e})") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"model_from_json: the JSON must hold an object; received "
                          f"{type(spec).__name__}")
    if "module" in spec or "registered_name" in spec:
        raise ConfigError("model_from_json: this JSON was written by Keras itself (it names "
                          "a 'module'); wsekern.nn reads what its own model.to_json() "
                          "writes. Build the model with wsekern.nn (the same code, with the "
                          "import changed) and copy the weights with set_weights")
    spec = dict(spec)
    record = _decode_record(spec.pop("wsekern_sparsity", []))
    with with_objects(custom_objects):
        model = model_from_config(spec, custom_objects, "model_from_json")
    _apply_sparsity(model, record, "model_from_json")
    return model


def _decode_record(entries):
    from ..saving.model_config import ConfigError, check_dim, need
    where = "model_from_json: ['wsekern_sparsity']"
    if not isinstance(entries, list):
        raise ConfigError(f"{where} must be a list")
    record = []
    for k, entry in enumerate(entries):
        at = f"{where}[{k}]"
        i = need(entry, "layer", int, at)
        s = need(entry, "sparsity", (int, float), at)
        if i < 0 or isinstance(s, bool) or not 0 <= s < 1:
            raise ConfigError(f"{at}: layer must be >= 0 and sparsity in [0, 1)")
        mask = None
        if "bits" in entry:
            shape = tuple(check_dim(d, f"{at}['shape']")
                          for d in need(entry, "shape", list, at))
            n = math.prod(shape)    # exact: an int64 product of huge dims wraps (to 0)
            if n > 8 * _MASK_BYTES_MAX:
                raise ConfigError(f"{at}: shape {shape} has {n} positions; a pattern in "
                                  f"JSON holds at most {8 * _MASK_BYTES_MAX}")
            bits = need(entry, "bits", str, at)
            if len(bits) > 4 * ((n + 7) // 8 + 2) // 3 + 4:
                raise ConfigError(f"{at}: the pattern is longer than its shape {shape} needs")
            try:
                raw = np.frombuffer(base64.b64decode(bits, validate=True), dtype=np.uint8)
            except ValueError as e:
                raise ConfigError(f"{at}['bits'] is not base64 ({e})") from None
            if len(raw) != (n + 7) // 8:
                raise ConfigError(f"{at}['bits'] holds {len(raw)} bytes; shape {shape} "
                                  f"needs {(n + 7) // 8}")
            mask = np.unpackbits(raw, count=n).astype(bool).reshape(shape)
        record.append((i, float(s), mask))
    return record
