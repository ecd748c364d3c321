"""An optimizer's whole config and its state (slots, step count) to and from a model file.

Uses ``optimizers.serialize/deserialize`` and ``opt.state_arrays/load_state_arrays`` where the
optimizers provide them; otherwise reads the constructor's arguments and the per-variable
state directly, with the same checks."""
import inspect
import math

import numpy as np

from .. import optimizers as optimizers_mod


def serialize(opt):
    if hasattr(optimizers_mod, "serialize"):
        return optimizers_mod.serialize(opt)
    config = {"name": type(opt).__name__.lower()}
    for name, p in inspect.signature(type(opt).__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        value = opt._learning_rate if name == "learning_rate" else getattr(opt, name, p.default)
        if callable(value):
            raise ValueError(f"cannot save optimizer {type(opt).__name__}: its {name} is a "
                             f"{type(value).__name__}, which this version cannot write")
        config[name] = value
    for name in ("weight_decay", "clipnorm"):
        config.setdefault(name, getattr(opt, name, None))
    return {"class_name": type(opt).__name__, "config": config}


def deserialize(spec, custom_objects=None):
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str) or \
            not isinstance(spec.get("config"), dict):
        raise ValueError(f"the optimizer entry must be {{'class_name': str, 'config': dict}}; "
                         f"received {spec!r:.200}")
    if hasattr(optimizers_mod, "deserialize"):
        return optimizers_mod.deserialize(spec, custom_objects=custom_objects)
    cls = getattr(optimizers_mod, spec["class_name"], None)
    if not (isinstance(cls, type) and issubclass(cls, optimizers_mod.Optimizer)):
        raise ValueError(f"unknown optimizer class {spec['class_name']!r}")
    params = inspect.signature(cls.__init__).parameters
    kwargs = {}
    for key, value in spec["config"].items():
        if key == "name":
            continue
        if key not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            raise ValueError(f"optimizer {spec['class_name']} has no argument {key!r}")
        if value is not None and not isinstance(value, (bool, int, float)):
            raise ValueError(f"optimizer {spec['class_name']} argument {key!r} must be a "
                             f"number; received {value!r:.80}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"optimizer {spec['class_name']} argument {key!r} must be "
                             f"finite; received {value!r}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"optimizer {spec['class_name']} cannot be made from the file's "
                         f"config: {e}") from None


def state_arrays(opt, variables):
    if hasattr(opt, "state_arrays"):
        return opt.state_arrays(variables)
    out = {"iterations": np.asarray(opt.iterations, dtype=np.int64)}
    for i, v in enumerate(variables):
        entry = opt._state.get(id(v))
        if entry is None or entry[0] is not v:
            continue
        for j, slot in enumerate(entry[1]):
            out[f"{i}/{j}"] = np.asarray(slot, dtype=np.int64 if isinstance(slot, list)
                                         else None).copy()
    return out


def load_state_arrays(opt, variables, arrays):
    if hasattr(opt, "load_state_arrays"):
        return opt.load_state_arrays(variables, arrays)
    expected = {"iterations"}
    fresh = {}
    for i, v in enumerate(variables):
        if any(k.startswith(f"{i}/") for k in arrays):
            fresh[i] = opt._init_state(v.data)
            expected |= {f"{i}/{j}" for j in range(len(fresh[i]))}
    if set(arrays) != expected:
        extra, missing = sorted(set(arrays) - expected), sorted(expected - set(arrays))
        raise ValueError(f"optimizer state keys do not match the model: unexpected "
                         f"{extra[:5]}, missing {missing[:5]}")
    for i, slots in fresh.items():
        restored = []
        for j, slot in enumerate(slots):
            arr = arrays[f"{i}/{j}"]
            like = np.asarray(slot)
            if arr.shape != like.shape or arr.dtype.kind != like.dtype.kind:
                raise ValueError(f"optimizer state {i}/{j} has shape {arr.shape} and dtype "
                                 f"{arr.dtype}; variable {i} needs {like.shape} {like.dtype}")
            if isinstance(slot, list):
                restored.append([int(x) for x in arr.reshape(-1)])
            else:
                slot[...] = arr
                restored.append(slot)
        opt._state[id(variables[i])] = (variables[i], tuple(restored))
    it = arrays["iterations"]
    if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
        raise ValueError(f"optimizer state 'iterations' must be a non-negative integer scalar; "
                         f"received {it.dtype} {it.shape}")
    opt.iterations = int(it)
