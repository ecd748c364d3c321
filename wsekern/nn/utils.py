"""``to_categorical``, ``pad_sequences``, ``normalize``, ``PyDataset``, ``plot_model``,
``set_random_seed``, ``clear_session`` and the seeded generator every layer draws from.

As in Keras 3, ``np.random.seed`` alone does not make wsekern.nn reproducible (weights,
dropout and shuffling draw from wsekern.nn's own generator): call
``wsekern.nn.utils.set_random_seed(seed)``, which seeds Python, NumPy and that generator.
The generator is one a thread, as Keras's global ``SeedGenerator``, made at the thread's
first draw: the first made after ``set_random_seed(seed)`` (in whichever thread) from
``seed``, any other from Python's ``random`` (which ``set_random_seed`` seeds), as Keras
seeds its generators; so a program repeats after ``set_random_seed`` in whichever thread it
runs, and draws in one thread never move another's.
"""
import gc
import random
import threading

import numpy as np

from . import session
from .registry import (  # noqa: F401 - keras.utils has them too
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    register_keras_serializable,
)

_PENDING = {"seed": None}          # set_random_seed's seed, until a generator takes it
_PENDING_LOCK = threading.Lock()


def set_random_seed(seed):
    """Seed Python's and NumPy's generators (the process's) and wsekern.nn's (weights,
    dropout, shuffling): this thread's next draw, or another thread's first, starts from
    ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; received {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    with _PENDING_LOCK:
        _PENDING["seed"] = int(seed)
    session.state().rng = None


def rng():
    """This thread's generator, made at its first draw (after a ``set_random_seed`` or a
    ``clear_session``, the next one): from the pending ``set_random_seed`` seed, else from
    Python's ``random``."""
    state = session.state()
    if state.rng is None:
        with _PENDING_LOCK:
            seed, _PENDING["seed"] = _PENDING["seed"], None
        if seed is None:
            seed = random.randint(1, 10**9)
        state.rng = np.random.default_rng(seed)
    return state.rng


def clear_session(free_memory=True):
    """Keras's: forget the automatic names given so far, so that the next Dense is named
    "dense" again and the next unnamed Adam "adam", the generators (the next draw makes one,
    see ``rng``) and the open ``custom_object_scope``'s objects, in every thread;
    ``free_memory`` also collects garbage. Models already made keep their names and
    weights."""
    session.clear()
    if free_memory:
        gc.collect()


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer labels, as keras.utils.to_categorical."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise ValueError(f"labels must be integers; received dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    n = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if y.size and (y.min() < 0 or y.max() >= n):
        raise ValueError(f"labels must be in [0, {n}); received values from {y.min()} to {y.max()}")
    out = np.zeros(y.shape + (n,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Keras's pad_sequences: a (n, maxlen, ...) array; sequences longer than maxlen lose
    their start ("pre") or end ("post"); shorter ones are padded before or after."""
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError(f"padding and truncating must be 'pre' or 'post'; received "
                         f"padding={padding!r}, truncating={truncating!r}")
    if not hasattr(sequences, "__len__"):
        raise ValueError(f"sequences must be a list of sequences; received "
                         f"{type(sequences).__name__}")
    seqs = [np.asarray(s) for s in sequences]
    lengths = [len(s) if s.ndim else None for s in seqs]
    if any(n is None for n in lengths):
        raise ValueError("every entry of sequences must be a sequence (received a scalar at "
                         f"index {lengths.index(None)})")
    if maxlen is None:
        maxlen = max(lengths, default=0)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"maxlen must be None or an int >= 0; received {maxlen!r}")
    sample_shape = next((s.shape[1:] for s in seqs if len(s)), ())
    dt = np.dtype(dtype)
    is_str = dt.kind in "USO"
    if isinstance(value, str) and not is_str:
        raise ValueError(f"padding value {value!r} is a string but dtype is {dt}; pass "
                         "dtype=object or a numeric value")
    out = np.full((len(seqs), maxlen) + sample_shape, value, dtype=dt)
    for i, s in enumerate(seqs):
        if not len(s) or not maxlen:
            continue
        if s.shape[1:] != sample_shape:
            raise ValueError(f"sequence {i} has elements of shape {s.shape[1:]}; the others "
                             f"have {sample_shape}")
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "post":
            out[i, :len(trunc)] = trunc
        else:
            out[i, maxlen - len(trunc):] = trunc
    return out


def normalize(x, axis=-1, order=2):
    """``x`` divided by its ``order``-norm along ``axis`` (zero vectors stay zero)."""
    x = np.asarray(x, dtype=np.float64 if np.asarray(x).dtype.kind not in "f" else None)
    norm = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


class PyDataset:
    """Keras's PyDataset: subclasses define ``__len__`` (batches per epoch) and
    ``__getitem__(index) -> (x, y)`` or ``(x, y, sample_weight)``; ``on_epoch_end`` runs
    after each epoch. ``workers``/``use_multiprocessing`` are accepted for compatibility;
    batches are produced in the calling thread."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers, self._use_multiprocessing = workers, use_multiprocessing
        self._max_queue_size = max_queue_size

    @property
    def workers(self):
        return self._workers

    @property
    def use_multiprocessing(self):
        return self._use_multiprocessing

    @property
    def max_queue_size(self):
        return self._max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    @property
    def num_batches(self):
        try:
            return len(self)
        except NotImplementedError:
            return None

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


Sequence = PyDataset


def plot_model(model, to_file="model.png", **kwargs):
    """Draw the model's layer graph (``keras.utils.plot_model``); see
    :func:`wsekern.nn.models.plot.plot_model` for the formats and what each needs."""
    from .models.plot import plot_model as draw
    return draw(model, to_file=to_file, **kwargs)


def model_to_dot(model, **kwargs):
    """The model's layer graph as Graphviz DOT source text."""
    from .models.plot import model_to_dot as dot
    return dot(model, **kwargs)
