"""Which layers a ``WaferStrategy`` placed: layer -> its LayerPlacement.

Kept by the strategy (nn/strategy.py), read by the layers that hand a training step to
it, so a layer carries no attribute written by the wafer. Weak keys: a layer that is
gone leaves no entry; a layer placed again maps to its latest placement.
"""
import weakref

_PLACED = weakref.WeakKeyDictionary()


def placement_of(layer):
    """The LayerPlacement a WaferStrategy gave ``layer``, or None: a placed layer calls
    its ``observe`` in a training step."""
    return _PLACED.get(layer)


def place(layer, placement):
    _PLACED[layer] = placement
