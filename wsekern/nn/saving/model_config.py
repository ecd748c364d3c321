"""A model's architecture as JSON and back: Sequential (a list of layer configs), functional
(layers plus the calls between them), and registered subclassed models (their get_config).
Classes are resolved only among wsekern.nn's layers, registered custom objects and the
``custom_objects`` given; nothing else named in a file is imported or run."""
import copy
import json
import types

import numpy as np

from .. import layers as layers_mod
from .. import registry
from ..layers.base import Layer
from ..layers.input_layer import InputLayer
from ..layers.lambda_op import OpLayer
from ..symbolic import KerasTensor, flatten, map_structure


class ConfigError(ValueError):
    """A model file whose config is malformed: the message names the key."""


def need(mapping, key, kind, where):
    """``mapping[key]`` checked to be of ``kind``; a ConfigError naming the key otherwise."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where} must be a JSON object; received {type(mapping).__name__}")
    if key not in mapping:
        raise ConfigError(f"{where} has no key {key!r}")
    value = mapping[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}[{key!r}] must be {names}; received {value!r:.80}")
    return value


def class_name_of(obj):
    """The name a class is saved under: its registered 'package>name', else its own."""
    return registry.get_registered_name(type(obj))


def resolve_class(name, custom_objects, base, where):
    """The class ``name`` among registered/custom objects and wsekern.nn's layers."""
    from ..models import Functional, Sequential
    builtins = {n: getattr(layers_mod, n) for n in dir(layers_mod)}
    builtins.update({"Sequential": Sequential, "Functional": Functional,
                     "Model": Functional, "InputLayer": InputLayer, "OpLayer": OpLayer})
    cls = registry.get_registered_object(name, custom_objects, builtins)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        # name the reader the user called: `where` starts with it
        call = ("model_from_json(json_string" if where.startswith("model_from_json") else
                "load_model(filepath")
        raise ConfigError(f"{where}: unknown class {name!r}; a custom class must be "
                          f"registered with @nn.saving.register_keras_serializable() or "
                          f"passed as {call}, custom_objects={{{name!r}: cls}})")
    return cls


def layer_from_config(spec, custom_objects, where):
    name = need(spec, "class_name", str, where)
    config = need(spec, "config", dict, where)
    cls = resolve_class(name, custom_objects, Layer, where)
    if cls.__name__ in ("Sequential", "Functional"):
        return model_from_config(spec, custom_objects, where)
    config = dict(config)
    config.pop("sparsity", None)          # the saved mask restores the exact pattern
    with _config_errors(f"{where}: {name} cannot be made from its config"):
        return cls.from_config(config)


def layer_spec(layer):
    """{'class_name', 'config', 'name'}; refused when the config would not make the same
    layer. The name is kept beside the config, as Keras's functional config keeps it: a
    custom layer's ``get_config`` need not hold it."""
    from ..models import Functional, Sequential
    if isinstance(layer, (Sequential, Functional)):
        return model_spec(layer)
    try:
        config = layer.get_config()
    except NotImplementedError as e:
        raise ValueError(f"cannot save layer {layer.name!r}: {e}") from None
    from .objects import serialize_nested
    config = serialize_nested(config)
    check_round_trip(layer, config)
    return {"class_name": class_name_of(layer), "config": config, "name": layer.name}


def check_round_trip(layer, config):
    """Make the layer again from its (JSON-encoded) config at save time: a custom function
    (activation, ...) that would not come back is reported now, not at load."""
    from .archive import dumps
    try:
        encoded = json.loads(dumps(config))
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot save layer {layer.name!r} ({type(layer).__name__}): "
                         f"{e}") from None
    encoded.pop("sparsity", None)
    try:
        twin = type(layer).from_config(encoded)
    except Exception as e:                     # noqa: BLE001 - any failure means no restore
        raise ValueError(f"cannot save layer {layer.name!r} ({type(layer).__name__}): its "
                         f"config would not load back ({type(e).__name__}: {e}). Register "
                         f"custom functions and classes with "
                         f"@nn.saving.register_keras_serializable() and give them by that "
                         f"name, or save the weights only (save_weights)") from None
    for key, value in vars(layer).items():
        if isinstance(value, types.FunctionType) and not key.startswith("_"):
            other = vars(twin).get(key)
            if other is not value:
                raise ValueError(
                    f"cannot save layer {layer.name!r}: its {key} {value.__name__!r} is not "
                    f"one wsekern.nn can restore by name (it would load as "
                    f"{getattr(other, '__name__', other)!r}). Register it with "
                    f"@nn.saving.register_keras_serializable(), or save the weights only")


def model_spec(model):
    from ..models import Functional, Sequential
    if isinstance(model, Sequential):
        config = model.get_config()
        config["layers"] = [layer_spec(l) for l in model.layers]
        return {"class_name": "Sequential", "config": config}
    if isinstance(model, Functional):
        return {"class_name": "Functional", "config": functional_config(model)}
    config = model.get_config()
    check_round_trip(model, config)
    if model.input_shape is None:
        raise ValueError(f"cannot save subclassed model {model.name!r} before it is built: "
                         f"call it on data (or fit) first")
    return {"class_name": class_name_of(model), "config": config,
            "build_input_shape": model.input_shape}


def functional_config(model):
    layers = model.layers
    index = {id(l): i for i, l in enumerate(layers)}
    node_index = {id(n): i for i, n in enumerate(model._nodes)}

    def encode(v):
        if isinstance(v, KerasTensor):
            return {"__tensor__": [node_index[id(v.node)], flatten(v.node.outputs).index(v)]}
        if isinstance(v, (str, int, float, bool)) or v is None:
            return v
        raise ValueError(f"cannot save model {model.name!r}: a layer call takes an argument "
                         f"of type {type(v).__name__}, which a config cannot hold")
    nodes = [{"layer": index[id(n.layer)], "args": map_structure(encode, list(n.args)),
              "kwargs": map_structure(encode, n.kwargs)} for n in model._nodes]
    return {"name": model.name, "layers": [layer_spec(l) for l in layers], "nodes": nodes,
            "inputs": map_structure(encode, model._inputs_struct),
            "outputs": map_structure(encode, model._outputs_struct)}


def model_from_config(spec, custom_objects=None, where="model"):
    from ..models import Functional, Sequential
    name = need(spec, "class_name", str, where)
    config = need(spec, "config", dict, where)
    if name == "Sequential":
        return sequential_from_config(config, custom_objects, where)
    if name in ("Functional", "Model"):
        return functional_from_config(config, custom_objects, where)
    cls = resolve_class(name, custom_objects, Layer, where)
    from ..models import Model
    if not issubclass(cls, Model) or issubclass(cls, (Sequential, Functional)):
        raise ConfigError(f"{where}: class {name!r} is not a model")
    with _config_errors(f"{where}: {name} cannot be made from its config"):
        model = cls.from_config(dict(config))
    shape = need(spec, "build_input_shape", list, where)
    dims = [check_dim(s, f"{where}['build_input_shape']", allow_none=True) for s in shape]
    with _config_errors(f"{where}: building {name} failed"):
        model(np.zeros(tuple(1 if d is None else d for d in dims), dtype=model.dtype))
    return model


def check_dim(value, where, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where} must hold positive ints; received {value!r:.40}")
    return value


def sequential_from_config(config, custom_objects, where):
    from ..layers.input_layer import Input
    from ..models import Sequential
    model = Sequential(name=need(config, "name", str, where + "['config']"))
    shape = config.get("input_shape") or []
    if not isinstance(shape, list):
        raise ConfigError(f"{where}['config']['input_shape'] must be a list; received "
                          f"{shape!r:.80}")
    dtype = config.get("input_dtype", "float32")
    if dtype not in ("float32", "float64", "int32", "int64"):
        raise ConfigError(f"{where}['config']['input_dtype'] must be float32/float64/int32/"
                          f"int64; received {dtype!r:.40}")
    if shape:
        model.add(Input(shape=tuple(check_dim(s, f"{where}['config']['input_shape']",
                                              allow_none=True) for s in shape), dtype=dtype))
    specs = need(config, "layers", list, where + "['config']")
    for i, spec in enumerate(specs):
        at = f"{where}['config']['layers'][{i}]"
        layer = layer_from_config(spec, custom_objects, at)
        with _config_errors(f"{at}: building {type(layer).__name__} failed"):
            model.add(layer)
    if not model.built and model._input_shape is not None:
        with _config_errors(f"{where}: building the model failed"):
            model.build()
    return model


_BUILD_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError)


class _config_errors:
    """Errors while making or building layers from a file's config become ConfigErrors
    (ValueErrors) that say where, never a bare KeyError/TypeError."""

    def __init__(self, where):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and issubclass(kind, _BUILD_ERRORS) and \
                not isinstance(exc, ConfigError):
            raise ConfigError(f"{self.where}: {type(exc).__name__}: {exc}") from None
        return False


def functional_from_config(config, custom_objects, where):
    from ..models import Functional
    where = where + "['config']"
    specs = need(config, "layers", list, where)
    layers = [layer_from_config(s, custom_objects, f"{where}['layers'][{i}]")
              for i, s in enumerate(specs)]
    produced = []                          # per node: its flat output tensors

    def decode(v, at):
        if isinstance(v, dict) and "__tensor__" in v:
            ref = v["__tensor__"]
            if not (isinstance(ref, list) and len(ref) == 2 and all(
                    isinstance(r, int) and not isinstance(r, bool) for r in ref)):
                raise ConfigError(f"{at}: a tensor reference must be [node, index]; received "
                                  f"{ref!r:.80}")
            n, k = ref
            if not (0 <= n < len(produced) and 0 <= k < len(produced[n])):
                raise ConfigError(f"{at}: tensor reference {ref} points to no earlier node "
                                  f"output")
            return produced[n][k]
        if isinstance(v, list):
            return [decode(x, at) for x in v]
        if isinstance(v, dict):
            return {k: decode(x, at) for k, x in v.items()}
        return v
    for i, node in enumerate(need(config, "nodes", list, where)):
        at = f"{where}['nodes'][{i}]"
        li = need(node, "layer", int, at)
        if not 0 <= li < len(layers):
            raise ConfigError(f"{at}['layer'] = {li} names no layer (there are {len(layers)})")
        layer = layers[li]
        if isinstance(layer, InputLayer):
            produced.append([layer._tensor])
            continue
        args = decode(need(node, "args", list, at), at)
        kwargs = decode(need(node, "kwargs", dict, at), at)
        with _config_errors(f"{at}: calling layer {layer.name!r} failed"):
            out = layer(*args, **kwargs)
        produced.append(flatten(out))
    inputs = decode(copy.deepcopy(config.get("inputs")), f"{where}['inputs']")
    outputs = decode(copy.deepcopy(config.get("outputs")), f"{where}['outputs']")
    name = need(config, "name", str, where)
    with _config_errors(f"{where}: the saved graph does not form a model"):
        return Functional(inputs, outputs, name=name)
