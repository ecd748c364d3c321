"""The data ``fit``/``evaluate``/``predict`` take, as batches: arrays (one, a list, or a dict
per input or output) cut into batches, or a PyDataset / generator / iterable of
``(x, y)`` or ``(x, y, sample_weight)`` batches."""
import numpy as np

from .. import utils


def _is_array_like(v):
    return isinstance(v, (np.ndarray, list, tuple, dict)) or np.isscalar(v) or \
        hasattr(v, "__array__")


def is_structure(v):
    """A dict, or a list/tuple of arrays: one entry per model input or output."""
    return isinstance(v, dict) or (isinstance(v, (list, tuple)) and len(v) > 0 and
                                   all(hasattr(i, "shape") or isinstance(i, dict) for i in v))


def map_arrays(fn, structure):
    if isinstance(structure, dict):
        return {k: map_arrays(fn, v) for k, v in structure.items()}
    if is_structure(structure):
        return [map_arrays(fn, v) for v in structure]
    return fn(structure)


def as_arrays(structure):
    return None if structure is None else map_arrays(np.asarray, structure)


def leaves(structure):
    out = []
    map_arrays(out.append, structure)
    return out


def check_sample_weight(sample_weight, n):
    """``sample_weight`` as float64 arrays of ``n`` finite weights each: one array, or (a
    multi-output model's, as Keras takes them) a dict by output name or a list of arrays
    in output order."""
    def one(w, where=""):
        w = np.asarray(w, dtype=np.float64)
        if w.shape[:1] != (n,) or not np.isfinite(w).all():
            raise ValueError(f"sample_weight{where} must hold one finite weight per sample "
                             f"({n}); received shape {w.shape}")
        return w
    if isinstance(sample_weight, dict):
        return {k: None if w is None else one(w, f"[{k!r}]") for k, w in sample_weight.items()}
    if isinstance(sample_weight, (list, tuple)) and sample_weight and all(
            isinstance(w, np.ndarray) or w is None for w in sample_weight):
        return [None if w is None else one(w, f"[{i}]") for i, w in enumerate(sample_weight)]
    return one(sample_weight)


def take_weights(sample_weight, idx):
    """The rows ``idx`` of each array of ``sample_weight`` (as :func:`check_sample_weight`
    gives it)."""
    if isinstance(sample_weight, dict):
        return {k: None if w is None else w[idx] for k, w in sample_weight.items()}
    if isinstance(sample_weight, list):
        return [None if w is None else w[idx] for w in sample_weight]
    return sample_weight[idx]


def unpack(batch):
    """(x, y, sample_weight) from a batch as a PyDataset or generator yields it."""
    if isinstance(batch, tuple):
        if not 1 <= len(batch) <= 3:
            raise ValueError(f"a batch must be x, (x,), (x, y) or (x, y, sample_weight); "
                             f"received a tuple of {len(batch)} items")
        return tuple(batch) + (None,) * (3 - len(batch))
    return batch, None, None


def class_sample_weight(y, class_weight):
    """Per-sample weights from {class: weight} and integer or one-hot labels; a class the
    dict does not name weighs 1.0 (Keras's class_weight_to_sample_weights)."""
    y = np.asarray(y)
    labels = y.argmax(axis=-1) if (y.ndim > 1 and y.shape[-1] > 1) else y.reshape(len(y), -1)[:, 0]
    if labels.dtype.kind == "f":
        labels = np.round(labels)
    labels = labels.astype(np.int64)
    table = {int(k): float(v) for k, v in class_weight.items()}
    # a class class_weight does not name weighs 1.0, as in Keras
    return np.array([table.get(int(c), 1.0) for c in labels], dtype=np.float64)


class ArrayBatches:
    """Arrays cut into batches of ``batch_size`` (shuffled per epoch when asked)."""

    def __init__(self, x, y, sample_weight, batch_size, shuffle, class_weight=None,
                 steps=None):
        x, y = as_arrays(x), as_arrays(y)
        self.x, self.y = x, y
        if any(a.ndim == 0 for a in leaves(x) + (leaves(y) if y is not None else [])):
            raise ValueError("x and y must hold samples along their first axis; received a "
                             "scalar")
        sizes = {len(a) for a in leaves(y)} if y is not None else set()
        if len({len(a) for a in leaves(x)}) > 1:
            raise ValueError(f"all inputs must have the same number of samples; received "
                             f"{[len(a) for a in leaves(x)]}")
        self.n = len(leaves(x)[0]) if leaves(x) else 0
        if y is not None and sizes != {self.n}:
            raise ValueError(f"x has {self.n} samples but y has "
                             f"{[len(a) for a in leaves(y)]}: one label per sample is needed")
        if class_weight is not None:
            if y is None or len(leaves(y)) != 1:
                raise ValueError("class_weight needs a single output's labels y")
            if sample_weight is not None:      # Keras refuses the pair
                raise ValueError("class_weight and sample_weight cannot be given at the same "
                                 "time: fold the class weights into sample_weight")
            sample_weight = class_sample_weight(leaves(y)[0], class_weight)
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, self.n)
        self.sample_weight = sample_weight
        self.batch_size, self.shuffle, self.steps = batch_size, shuffle, steps

    def n_steps(self):
        whole = -(-self.n // self.batch_size)
        return whole if self.steps is None else min(whole, int(self.steps))

    def epoch(self):
        order = utils.rng().permutation(self.n) if self.shuffle else np.arange(self.n)
        for step in range(self.n_steps()):
            idx = order[step * self.batch_size:(step + 1) * self.batch_size]
            if not self.shuffle:
                idx = slice(step * self.batch_size, (step + 1) * self.batch_size)
            take = lambda a: a[idx]                                    # noqa: E731
            yield (map_arrays(take, self.x),
                   None if self.y is None else map_arrays(take, self.y),
                   None if self.sample_weight is None else take_weights(self.sample_weight,
                                                                        idx))

    def on_epoch_end(self):
        pass


class IterableBatches:
    """Batches from a PyDataset (``__len__``/``__getitem__``), a re-iterable object, or a
    generator (read ``steps`` batches per epoch; one pass when ``steps`` is None). A
    PyDataset's batches come in a new random order each epoch when ``shuffle`` (as Keras's
    fit does); a generator's in its own order."""

    def __init__(self, data, steps=None, shuffle=False):
        self.data, self.steps, self.shuffle = data, steps, shuffle
        self.indexed = hasattr(data, "__getitem__") and hasattr(data, "__len__")
        self.iterator = None if self.indexed or not hasattr(data, "__next__") else data
        if not (self.indexed or hasattr(data, "__iter__")):
            raise TypeError(f"x must be arrays, a PyDataset, a generator or an iterable of "
                            f"batches; received {type(data).__name__}")

    def n_steps(self):
        """Batches per epoch, or None when a generator decides."""
        if self.steps is not None:
            return int(self.steps)
        return len(self.data) if self.indexed else None

    def epoch(self):
        if self.indexed:
            n, size = self.n_steps(), len(self.data)
            order = utils.rng().permutation(size) if self.shuffle else range(size)
            for i in range(n):
                yield unpack(self.data[int(order[i % size])])
            return
        source = self.iterator if self.iterator is not None else iter(self.data)
        count = 0
        while self.steps is None or count < self.steps:
            try:
                batch = next(source)
            except StopIteration:
                if count == 0:
                    raise ValueError("the data generator is exhausted: it yielded no batch "
                                     "this epoch (give steps_per_epoch, or a PyDataset / "
                                     "re-iterable object for several epochs)") from None
                return
            count += 1
            yield unpack(batch)

    def on_epoch_end(self):
        hook = getattr(self.data, "on_epoch_end", None)
        if self.indexed and callable(hook):
            hook()


def make_batches(x, y=None, sample_weight=None, batch_size=None, shuffle=False, steps=None,
                 class_weight=None):
    """The batches of ``x`` (and ``y``), whatever form they take."""
    if x is None:
        raise ValueError("no data given: pass x (arrays, a PyDataset or a generator)")
    if _is_array_like(x) and not (isinstance(x, (list, tuple)) and x
                                  and isinstance(x[0], tuple)):
        bs = 32 if batch_size is None else batch_size
        if isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1:
            raise ValueError(f"batch_size must be a positive int; received {batch_size!r}")
        return ArrayBatches(x, y, sample_weight, int(bs), shuffle, class_weight, steps)
    if y is not None or sample_weight is not None:
        raise ValueError(f"when x is a {type(x).__name__}, y and sample_weight come from its "
                         f"batches: do not pass them separately")
    if class_weight is not None:
        raise ValueError("class_weight works with arrays; weight the batches of a dataset "
                         "with (x, y, sample_weight)")
    return IterableBatches(x, steps, shuffle)
