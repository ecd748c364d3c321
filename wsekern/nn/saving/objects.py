"""``keras.saving.serialize_keras_object`` / ``deserialize_keras_object`` (and
``keras.layers.serialize`` / ``deserialize``): any object a config may hold as Keras 3 writes
it, ``{"module", "class_name", "config", "registered_name"}`` -- a layer, regularizer,
initializer, constraint, loss, metric, optimizer or schedule, a registered custom class or
function, and lists and dicts of them; plain values as they are."""
import types

import numpy as np

from .. import (
    activations,
    constraints,
    initializers,
    losses,
    metrics,
    optimizers,
    registry,
    regularizers,
    schedules,
)
from .. import layers as layers_mod

_PLAIN = (str, int, float, bool)


def _kinds():
    """(base class, Keras's module, wsekern.nn's classes by name) of each kind."""
    from ..models import Functional, Model, Sequential
    layer_table = {n: getattr(layers_mod, n) for n in dir(layers_mod)
                   if isinstance(getattr(layers_mod, n), type)}
    layer_table.update(Sequential=Sequential, Functional=Functional, Model=Model)
    return ((layers_mod.Layer, "keras.layers", layer_table),
            (regularizers.Regularizer, "keras.regularizers", regularizers._CLASSES),
            (initializers.Initializer, "keras.initializers", initializers._CLASSES),
            (constraints.Constraint, "keras.constraints", constraints._CLASSES),
            (losses.Loss, "keras.losses", losses._CLASSES),
            (metrics.Metric, "keras.metrics", metrics._CLASSES),
            (optimizers.Optimizer, "keras.optimizers", optimizers._CLASSES),
            (schedules.LearningRateSchedule, "keras.optimizers.schedules",
             schedules._SCHEDULES))


def serialize_keras_object(obj):
    """``obj`` as Keras 3's config dict (see the module docstring)."""
    if obj is None or isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, np.generic):             # a NumPy number, as Keras: its Python value
        return obj.item()
    if isinstance(obj, (list, tuple)):
        out = [serialize_keras_object(x) for x in obj]
        return tuple(out) if isinstance(obj, tuple) else out
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        name = activations.name_of(obj)
        if activations._ACTIVATIONS.get(name) is obj:
            return {"module": "keras.activations", "class_name": "function", "config": name,
                    "registered_name": name}
        name = registry.get_registered_name(obj)
        return {"module": obj.__module__, "class_name": "function", "config": name,
                "registered_name": name}
    if not hasattr(obj, "get_config"):
        raise TypeError(f"cannot serialize {obj!r}: a config holds plain values, lists, dicts "
                        f"and objects with get_config() (layers, regularizers, ... or a "
                        f"registered custom class)")
    cls = type(obj)
    module = next((m for base, m, table in _kinds()
                   if isinstance(obj, base) and table.get(cls.__name__) is cls), None)
    registered = None
    if module is None:                  # a custom class: its own module, as Keras writes it
        module, registered = cls.__module__, registry.get_registered_name(cls)
    from ..models import Functional, Sequential
    if isinstance(obj, Functional) and not isinstance(obj, Sequential):
        from .model_config import functional_config
        config = functional_config(obj)
    else:
        config = serialize_keras_object(obj.get_config())
    return {"module": module, "class_name": cls.__name__, "config": config,
            "registered_name": registered}


def serialize_nested(value):
    """``value`` (a layer's config) with the objects in it (a sublayer, a regularizer...)
    serialized as Keras's functional config serializes them; other values as they are."""
    if isinstance(value, dict):
        return {k: serialize_nested(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(serialize_nested(v) for v in value)
    if hasattr(value, "get_config") and not isinstance(value, type):
        return serialize_keras_object(value)
    return value


def _class(config, custom_objects, module_objects):
    """The class a serialized object names: its registered name, then its class name among
    ``custom_objects``, the scope, the registry, ``module_objects`` and wsekern.nn's kind
    of its module."""
    for key in (config.get("registered_name"), config["class_name"]):
        if isinstance(key, str):
            found = registry.get_registered_object(key, custom_objects, module_objects)
            if found is not None:
                return found
    for _, module, table in _kinds():
        if config.get("module") in (module, None) and config["class_name"] in table:
            return table[config["class_name"]]
    return None


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object ``serialize_keras_object`` described (Keras's ``module_objects`` keyword
    is taken too); a string is looked up among the custom objects, else returned as is."""
    module_objects = kwargs.pop("module_objects", None)
    if kwargs:
        raise TypeError(f"deserialize_keras_object got unexpected arguments {sorted(kwargs)}")
    try:
        return _deserialize(config, custom_objects or {}, safe_mode, module_objects)
    except RecursionError:
        raise ValueError("cannot deserialize a config nested deeper than Python's recursion "
                         "limit") from None


def _names_checked(config):
    """``config`` (a dict of serialize_keras_object) with its names strings, as Keras
    writes them; a hostile one is refused naming what it held."""
    names = {"class_name": config["class_name"], "registered_name": config.get("registered_name")}
    if names["class_name"] == "function":
        names["config"] = config["config"]
    for key, value in names.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"a serialized object's {key!r} must be a string; received "
                             f"{type(value).__name__} {value!r:.80}")
    return config


def _deserialize(config, custom_objects, safe_mode, module_objects=None):
    if config is None:
        return None
    if isinstance(config, str):
        found = registry.get_registered_object(config, custom_objects)
        return config if found is None else found
    if isinstance(config, _PLAIN):
        return config
    if isinstance(config, (list, tuple)):
        return [_deserialize(x, custom_objects, safe_mode) for x in config]
    if not isinstance(config, dict):
        raise TypeError(f"cannot deserialize {config!r}: expected a dict of "
                        f"serialize_keras_object, a list or a plain value")
    if "class_name" not in config or "config" not in config:
        return {k: _deserialize(v, custom_objects, safe_mode) for k, v in config.items()}
    _names_checked(config)
    if config["class_name"] == "function":
        name = config.get("registered_name") or config["config"]
        found = registry.get_registered_object(name, custom_objects, module_objects)
        if found is None and isinstance(config["config"], str):
            found = (registry.get_registered_object(config["config"], custom_objects)
                     or activations._ACTIVATIONS.get(config["config"])
                     or losses._FUNCTIONS.get(config["config"]))
        if found is None:
            raise ValueError(f"unknown function {name!r}: register it with "
                             f"register_keras_serializable or pass it in custom_objects")
        return found
    cls = _class(config, custom_objects, module_objects)
    if cls is None:
        raise ValueError(f"unknown class {config['class_name']!r} (module "
                         f"{config.get('module')!r}): a custom class must be registered with "
                         f"register_keras_serializable or passed in custom_objects")
    inner = config["config"]
    from ..models import Functional, Sequential
    if isinstance(cls, type) and issubclass(cls, Functional) and \
            not issubclass(cls, Sequential) and isinstance(inner, dict) and "nodes" in inner:
        from .model_config import functional_from_config
        with registry.with_objects(custom_objects):
            return functional_from_config(inner, custom_objects, "deserialize_keras_object")
    if not isinstance(inner, dict):
        raise ValueError(f"the config of {config['class_name']!r} must be a dict; received "
                         f"{inner!r:.80}")
    with registry.with_objects(custom_objects):
        return cls.from_config(dict(inner))
