"""Keras 3's global state (``keras.src.backend.common.global_state``): one set per thread,
so that a model built in another thread meanwhile neither takes nor moves this thread's
names, seeds or custom objects; a new thread starts empty. ``utils.clear_session`` drops the
set of every thread at once, as Keras's does (it replaces its ``threading.local``)."""
import threading


class _State(threading.local):
    """What Keras keeps per thread and wsekern.nn has: the automatic-name counters
    (``object_name_uids``), the global generator (Keras's global ``SeedGenerator``: made
    at first use) and the innermost ``custom_object_scope``'s objects."""

    def __init__(self):
        self.name_counts = {}
        self.rng = None
        self.custom_objects = {}


_STATE = _State()


def state():
    """This thread's state (read it again after a ``clear``: that makes a new one)."""
    return _STATE


def clear():
    """Every thread's state back to a new thread's."""
    global _STATE
    _STATE = _State()
