"""Keras's automatic names: one table a thread (session.py), by snake-case name, from
which layers, models, optimizers and unnamed variables are named alike (dense, dense_1,
adam, variable_1, ...), and which ``utils.clear_session`` empties; and Keras's variable
paths, from the layers being built (or called for the first time) when a variable is made."""
import contextlib
import re
import threading

from . import session


class _Building(threading.local):
    """The layers whose build (or first call) is running in this thread, outermost first:
    a model built in another thread meanwhile has its own."""

    def __init__(self):
        self.stack = []


_BUILDING = _Building()


def building_stack():
    """This thread's stack of layers being built (a list to push and pop)."""
    return _BUILDING.stack


def auto_name(cls_name):
    """Keras's default name for an object of class ``cls_name`` (Conv2D -> conv2d,
    MaxPooling2D -> max_pooling2d, RMSprop -> rm_sprop), then _1, _2..."""
    snake = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", cls_name))
    snake = re.sub("([a-z])([A-Z])", r"\1_\2", snake).lower()
    counts = session.state().name_counts
    n = counts.get(snake, 0)
    counts[snake] = n + 1
    return snake if n == 0 else f"{snake}_{n}"


def get_uid(prefix=""):
    """Keras's ``backend.get_uid``: 1, 2, ... for ``prefix``, from the counters the
    automatic names take (``get_uid("dense")`` after one Dense is 2)."""
    counts = session.state().name_counts
    counts[prefix] = counts.get(prefix, 0) + 1
    return counts[prefix]


@contextlib.contextmanager
def building(layer):
    """``layer``'s build runs inside: the variables made meanwhile have it in their path."""
    stack = _BUILDING.stack
    pushed = not stack or stack[-1] is not layer
    if pushed:
        stack.append(layer)
    try:
        yield
    finally:
        if pushed:
            stack.pop()


def variable_path(name):
    """Keras's ``Variable.path`` of a variable named ``name`` made now: the names of the
    layers being built around it, outermost first, then its own name (``sequential/dense/
    kernel``). A layer's variables are named ``<layer name>/<weight>`` here, and a layer
    inside another may be named ``<outer name>/<its own>`` (MultiHeadAttention's query):
    such a head is said once."""
    stack = _BUILDING.stack
    if not stack:
        return name
    parts, outer = [], None
    for layer in stack:
        own = str(layer.name)
        if outer is not None and own.startswith(outer + "/"):
            own = own[len(outer) + 1:]
        parts.append(own)
        outer = str(layer.name)
    if name.startswith(outer + "/"):
        name = name[len(outer) + 1:]
    return "/".join(parts + [name])
