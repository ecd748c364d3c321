"""Which layers a ``WaferStrategy`` placed: layer -> its LayerPlacement.

Kept by the strategy (nn/strategy.py), read by the layers that hand a training step to
it, so a layer carries no attribute written by the wafer. Weak keys: a layer that is
gone leaves no entry; a layer placed again maps to its latest placement. Weak values: a
placement lives as long as its strategy holds it (while the model it places does), so
the map keeps no layer, placement or strategy alive. During a
model's training step (``stepping``) a layer hands its step to that model's placement
of it: a layer two models share (an encoder inside a classifier) counts for the model
being trained.
"""
import contextlib
import threading
import weakref

_PLACED = weakref.WeakKeyDictionary()


class _Stepping(threading.local):
    """The ModelPlacement of each model whose training step runs in this thread (None:
    none), innermost last: a step in another thread hands its layers to its own model."""

    def __init__(self):
        self.stack = []


_STEPPING = _Stepping()


def placement_of(layer):
    """The LayerPlacement a WaferStrategy gave ``layer``, or None: a placed layer calls
    its ``observe`` in a training step."""
    stack = _STEPPING.stack
    if stack:
        model = stack[-1]
        return None if model is None else model.placement_for(layer)
    ref = _PLACED.get(layer)
    return None if ref is None else ref()


def place(layer, placement):
    _PLACED[layer] = weakref.ref(placement)


def stepping(model_placement, step, *args):
    """``step(*args)``, the layers handing their operands to ``model_placement`` (None:
    to no placement, the model being on no wafer)."""
    stack = _STEPPING.stack
    stack.append(model_placement)
    try:
        return step(*args)
    finally:
        stack.pop()


@contextlib.contextmanager
def kept(layers):
    """The layers map to the placements they had once the block ends: a placement made
    inside is looked at, not handed steps. (The entries are weak references.)"""
    before = [(layer, _PLACED.get(layer)) for layer in layers]
    try:
        yield
    finally:
        for layer, placement in before:
            if placement is None:
                _PLACED.pop(layer, None)
            else:
                _PLACED[layer] = placement
