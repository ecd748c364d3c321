"""Custom objects by name, as keras.saving keeps them.

``register_keras_serializable`` files a class or function under ``"package>name"``;
``get_custom_objects()`` is the live dict that every ``get()`` resolver (activations,
losses, optimizers, initializers, metrics, regularizers) and ``load_model`` consult;
``custom_object_scope`` makes entries visible for the duration of a ``with`` block, in its
own thread only and without adding them to that dict, as Keras 3's (whose inner scope
replaces an outer one's entries rather than adding to them).
"""
from . import session

_GLOBAL_CUSTOM_OBJECTS = {}
_GLOBAL_CUSTOM_NAMES = {}


def register_keras_serializable(package="Custom", name=None):
    """Decorator: register ``obj`` as ``f"{package}>{name or obj.__name__}"``."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"package must be a string without '>'; received {package!r}")

    def decorator(obj):
        if not callable(obj):
            raise TypeError(f"only classes and functions can be registered; received {obj!r}")
        short = obj.__name__ if name is None else name
        if not isinstance(short, str) or not short:
            raise ValueError(f"name must be a non-empty string; received {short!r}")
        key = f"{package}>{short}"
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise ValueError(f"cannot register {obj.__name__} as {key!r}: a class must "
                             "implement get_config() to be serializable")
        _GLOBAL_CUSTOM_OBJECTS[key] = obj
        _GLOBAL_CUSTOM_NAMES[obj] = key
        return obj
    return decorator


def get_custom_objects():
    """The live registry dict (name -> object); editing it registers or removes objects."""
    return _GLOBAL_CUSTOM_OBJECTS


def get_registered_name(obj):
    """``"package>name"`` if ``obj`` was registered, else its ``__name__``."""
    if obj in _GLOBAL_CUSTOM_NAMES:
        return _GLOBAL_CUSTOM_NAMES[obj]
    return getattr(obj, "__name__", type(obj).__name__)


def get_registered_object(name, custom_objects=None, module_objects=None):
    """Look ``name`` up in ``custom_objects``, then this thread's ``custom_object_scope``,
    the registry, then ``module_objects``.

    A registered ``"package>name"`` is also found by its short ``name`` (Keras does this
    so that files saved with a bare class name still load)."""
    scope = session.state().custom_objects
    for table in (custom_objects or {}, scope, _GLOBAL_CUSTOM_OBJECTS, module_objects or {}):
        if name in table:
            return table[name]
    if isinstance(name, str) and ">" not in name:
        matches = [v for k, v in {**_GLOBAL_CUSTOM_OBJECTS, **scope}.items()
                   if ">" in k and k.split(">", 1)[1] == name]
        if len(matches) == 1:
            return matches[0]
    return None


def scoped_objects():
    """The objects this thread's innermost ``custom_object_scope`` makes visible."""
    return session.state().custom_objects


class CustomObjectScope:
    """``with custom_object_scope({"MyLayer": MyLayer}):`` — the entries are visible to
    every resolver inside the block, in this thread, and gone on exit. As in Keras 3 an
    inner scope's entries replace the outer's until it exits (give both dicts to one scope
    to see both: ``custom_object_scope(outer, inner)``)."""

    def __init__(self, *scopes, custom_objects=None):
        objects = {}
        for scope in scopes + (custom_objects,):
            if scope is None:
                continue
            if not isinstance(scope, dict):
                raise TypeError(f"custom_object_scope takes dicts; received "
                                f"{type(scope).__name__}")
            objects.update(scope)
        self.custom_objects = objects
        self.backup = None

    def __enter__(self):
        state = session.state()
        self.backup = dict(state.custom_objects)
        state.custom_objects = dict(self.custom_objects)
        return self

    def __exit__(self, *exc):
        session.state().custom_objects = dict(self.backup)


custom_object_scope = CustomObjectScope


def with_objects(custom_objects):
    """A scope for nn's own loaders: ``custom_objects`` visible on top of the scope already
    open (so a user's ``with custom_object_scope`` still holds inside ``load_model``)."""
    return CustomObjectScope(scoped_objects(), custom_objects or {})


def resolve(identifier, base, kind, *, by_name, deserialize, from_callable=None, expected):
    """What every module's ``get()`` does: an instance of ``base`` as is, a subclass of it
    instantiated, a serialized dict through ``deserialize``, a string through ``by_name``
    (``None`` when unknown) and then the registry, and any other callable through
    ``from_callable`` (``None``: refused). The ValueError names the ``kind`` and what is
    ``expected``."""
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        found = by_name(identifier)
        if found is not None:
            return found
        found = get_registered_object(identifier)
        if found is not None:
            return resolve(found, base, kind, by_name=by_name, deserialize=deserialize,
                           from_callable=from_callable, expected=expected)
    elif from_callable is not None and callable(identifier):
        found = from_callable(identifier)
        if found is not None:
            return found
    raise ValueError(f"unknown {kind} {identifier!r}; available: {expected}")


def instance_by_name(*tables):
    """A ``by_name`` for ``resolve``: a new instance of the class the first table names."""
    def by_name(name):
        for table in tables:
            if name in table:
                return table[name]()
        return None
    return by_name


def serialize_object(obj, builtins):
    """``{"class_name": ..., "config": obj.get_config()}``: a built-in class by its name,
    a registered one by ``"package>name"``."""
    cls = type(obj)
    name = cls.__name__ if builtins.get(cls.__name__) is cls else get_registered_name(cls)
    return {"class_name": name, "config": obj.get_config()}


def deserialize_object(config, builtins, kind, custom_objects=None):
    """Rebuild what ``serialize_object`` wrote, looking the class up in ``custom_objects``,
    the registry, then ``builtins``; a ValueError names the ``kind`` and what is known."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"a serialized {kind} is {{'class_name': ..., 'config': {{...}}}}; "
                         f"received {config!r}")
    cls = get_registered_object(config["class_name"], custom_objects, builtins)
    if cls is None:
        raise ValueError(f"unknown {kind} {config['class_name']!r}; known: {sorted(builtins)} "
                         "or one registered with register_keras_serializable / passed in "
                         "custom_objects")
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ValueError(f"the config of {kind} {config['class_name']!r} must be a dict; "
                         f"received {inner!r}")
    try:
        return cls.from_config(dict(inner))
    except TypeError as err:        # unknown or missing arguments in a file: its fault, say so
        raise ValueError(f"cannot rebuild {kind} {config['class_name']!r} from config "
                         f"{inner!r}: {err}") from err
