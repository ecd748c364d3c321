"""The transposes one training step's sparse Dense layers hand each other.

A sparse Dense runs its products on the batch transposed (features x batch): its forward
product yields its output that way, and its backward product yields its input gradient
that way, each also written batch-major for the graph. When the next sparse layer reads
that output (an MLP's hidden layers, a transformer's two MLP projections), or the previous
one receives that gradient, it takes the transpose from here instead of transposing again.

Only arrays a sparse Dense wrote itself are registered (never a caller's array, which may
be refilled in place between steps), and an entry is found only while the array that owns
the memory is alive: a view of it with the same start, shape and strides finds it (the
graph reshapes between layers), a new array at a reused address does not. Layers called in
inference register nothing (their outputs go back to the caller).

Several sparse layers reading one tensor (an attention's q, k and v
projections, called inside :func:`reading_one_input`) share the transpose the first of them
made of it (:func:`share_input`): found by that tensor object itself, and only within that
block. A lock guards the table of outputs and gradients (models may run in several
threads); the shared input is per thread.
"""
import contextlib
import threading
import weakref

import numpy as np

_LIMIT = 64                 # entries kept at most (the oldest go first)
_entries = {}               # key -> (weakref to the owning array, the transpose)
_lock = threading.RLock()      # re-entrant: a weakref callback may run inside a deletion


def _owner(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _key(a, gradient):
    return (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str, gradient)


def register(a, at, gradient=False):
    """Record ``at`` (C-contiguous) as ``a.T``; ``a`` was written by a sparse Dense, as an
    output or (``gradient``) as an input gradient. Only a gradient's transpose is ever
    taken and overwritten, so an output's (which a next layer keeps for its backward) is
    never handed out as one, even if the same array came back as a gradient."""
    key = _key(a, gradient)

    def forget(ref):          # the owner died: its memory (and address) may be reused
        with _lock:
            if _entries.get(key, (None,))[0] is ref:
                del _entries[key]
    ref = weakref.ref(_owner(a), forget)
    with _lock:
        while len(_entries) >= _LIMIT:
            del _entries[next(iter(_entries))]
        _entries[key] = (ref, at)


def find(a, take=False):
    """``a.T`` when a sparse Dense wrote ``a`` and registered it (None otherwise). With
    ``take`` only a gradient's is found, and its entry removed: the caller may overwrite
    the transpose."""
    if a.size == 0 or a.ndim != 2:
        return None
    key = _key(a, take)
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            return None
        ref, at = entry
        if ref() is None or at.shape != a.shape[::-1]:
            del _entries[key]
            return None
        if take:
            del _entries[key]
        return at


_shared = threading.local()   # per thread: .on (inside reading_one_input), .input


@contextlib.contextmanager
def reading_one_input():
    """Inside: sparse layers that read the same tensor (an attention's q, k and v) share
    the transpose the first of them made of it; none is kept past the block, so a tensor
    whose data a caller later changes in place is never read from a stale transpose."""
    _shared.on, _shared.input = True, None
    try:
        yield
    finally:
        _shared.on, _shared.input = False, None


def share_input(x, xt):
    """Offer ``xt``, the transpose of the 2-D view of tensor ``x``'s data, to the next
    sparse layers in this :func:`reading_one_input` block that read ``x`` itself (read
    only: the products never write it). Outside a block: nothing."""
    if getattr(_shared, "on", False):
        _shared.input = (x, xt)


def shared_input(x, shape):
    """The transpose :func:`share_input` offered for the tensor ``x`` (the same object) in
    this block, when its shape is ``shape``; None otherwise."""
    entry = getattr(_shared, "input", None)
    if entry is not None and entry[0] is x and entry[1].shape == shape:
        return entry[1]
    return None


def clear():
    with _lock:
        _entries.clear()
    _shared.input = None
