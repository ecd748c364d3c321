"""Merge layers (Keras's names and arguments): Add, Subtract, Multiply, Average, Maximum,
Minimum, Concatenate, Dot, and their functional forms ``add``, ``concatenate``, ..."""
import numpy as np

from .. import tensor as T
from .base import Layer, mask_array


def _broadcast_shape(shapes, layer):
    """The broadcast of shapes that may hold None (any size); a clear error otherwise."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        known = {d for d in dims if d not in (None, 1)}
        if len(known) > 1:
            raise ValueError(f"{type(layer).__name__} layer {layer.name!r}: inputs have "
                             f"incompatible shapes {[tuple(s) for s in shapes]}")
        out.append(known.pop() if known else (None if None in dims else 1))
    return tuple(out)


class _Merge(Layer):
    """Elementwise merge of a list of at least ``min_inputs`` tensors of one shape."""
    supports_masking = True
    min_inputs, max_inputs = 2, None

    def _check_inputs(self, shapes):
        if not isinstance(shapes, list) or (shapes and not isinstance(shapes[0], (tuple, list))):
            raise ValueError(f"{type(self).__name__} layer {self.name!r} must be called on a "
                             f"list of tensors; received a single input of shape {shapes}")
        n = len(shapes)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            want = (f"exactly {self.max_inputs}" if self.max_inputs == self.min_inputs
                    else f"at least {self.min_inputs}")
            raise ValueError(f"{type(self).__name__} layer {self.name!r} needs {want} inputs; "
                             f"received {n}")

    def build(self, input_shape):
        self._check_inputs(input_shape)
        _broadcast_shape([tuple(s) for s in input_shape], self)

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        return _broadcast_shape([tuple(s) for s in input_shape], self)

    def call(self, inputs):
        self._check_inputs([tuple(t.shape) for t in inputs])
        return self._merge([T.as_tensor(t) for t in inputs])

    def compute_mask(self, inputs, mask=None):
        """A step is real where it is real in every input that has a mask (Keras)."""
        if mask is None or all(m is None for m in mask):
            return None
        present = [mask_array(m) for m in mask if m is not None]
        out = present[0]
        for m in present[1:]:
            out = out & m
        return out


class Add(_Merge):
    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Subtract(_Merge):
    min_inputs = max_inputs = 2

    def _merge(self, xs):
        return xs[0] - xs[1]


class Multiply(_Merge):
    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Average(_Merge):
    def _merge(self, xs):
        return Add._merge(self, xs) * (1.0 / len(xs))


class Maximum(_Merge):
    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = T.where(out.data >= x.data, out, x)
        return out


class Minimum(_Merge):
    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = T.where(out.data <= x.data, out, x)
        return out


class Concatenate(_Merge):
    """Join along ``axis``; every other dimension must agree."""
    min_inputs = 1

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"axis must be an int; received {axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        shapes = [tuple(s) for s in input_shape]
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not -rank <= self.axis < rank:
            raise ValueError(f"Concatenate layer {self.name!r} (axis={self.axis}) needs inputs "
                             f"of one rank with that axis; received shapes {shapes}")
        axis = self.axis % rank
        out = list(shapes[0])
        for i in range(rank):
            dims = [s[i] for s in shapes]
            if i == axis:
                out[i] = None if None in dims else int(sum(dims))
            elif len({d for d in dims if d is not None}) > 1:
                raise ValueError(f"Concatenate layer {self.name!r} (axis={self.axis}) needs "
                                 f"inputs that match except on that axis; received shapes "
                                 f"{shapes}")
        return tuple(out)

    build = compute_output_shape

    def _merge(self, xs):
        self.compute_output_shape([tuple(x.shape) for x in xs])
        return T.concat(xs, axis=self.axis)

    def compute_mask(self, inputs, mask=None):
        """Along the steps, the masks are joined (an input without one is all real);
        along the features, a step is real where it is real in every input."""
        if mask is None or all(m is None for m in mask):
            return None
        rank = inputs[0].ndim
        axis = self.axis % rank
        steps = [mask_array(m) if m is not None else np.ones(x.shape[:rank - 1], dtype=bool)
                 for x, m in zip(inputs, mask)]
        if axis < rank - 1:
            return np.concatenate(steps, axis=axis)
        return np.logical_and.reduce(steps)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _l2_normalize(x, axis):
    norm = T.sqrt(T.tsum(x * x, axis=axis, keepdims=True) + 1e-12)
    return x / norm


class Dot(_Merge):
    supports_masking = False               # the steps are reduced away, as in Keras

    """Dot product of two tensors along ``axes`` (per sample), as ``keras.layers.Dot``:
    2-D inputs (batch, n) give (batch, 1); 3-D inputs give a batched matrix product."""
    min_inputs = max_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = tuple(axes) if isinstance(axes, (list, tuple)) else (axes, axes)
        if len(pair) != 2 or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                                     for a in pair):
            raise ValueError(f"axes must be an int or a pair of ints; received {axes!r}")
        self.axes = tuple(int(a) for a in pair)
        self.normalize = bool(normalize)

    def _axes(self, shapes):
        self._check_inputs(shapes)
        (a, b), (ra, rb) = self.axes, (len(shapes[0]), len(shapes[1]))
        if ra != rb or ra not in (2, 3):
            raise ValueError(f"Dot layer {self.name!r} supports two inputs of rank 2 or 3 "
                             f"(batch first); received shapes {shapes}")
        a, b = a % ra, b % rb
        if a == 0 or b == 0:
            raise ValueError(f"Dot layer {self.name!r} cannot contract the batch axis; "
                             f"received axes={self.axes}")
        da, db = shapes[0][a], shapes[1][b]
        if da is not None and db is not None and da != db:
            raise ValueError(f"Dot layer {self.name!r}: axis {a} of the first input ({da}) and "
                             f"axis {b} of the second ({db}) must match; received shapes "
                             f"{shapes}")
        return a, b, ra

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        a, b, rank = self._axes(shapes)
        if rank == 2:
            return (shapes[0][0], 1)
        return (shapes[0][0], shapes[0][3 - a], shapes[1][3 - b])

    build = compute_output_shape

    def _merge(self, xs):
        x, y = xs
        a, b, rank = self._axes([tuple(x.shape), tuple(y.shape)])
        if self.normalize:
            x, y = _l2_normalize(x, a), _l2_normalize(y, b)
        if rank == 2:
            return T.tsum(x * y, axis=1, keepdims=True)                     # (B, 1)
        if a == 1:
            x = T.transpose(x, (0, 2, 1))                                    # (B, m, n)
        if b == 2:
            y = T.transpose(y, (0, 2, 1))                                    # (B, n, p)
        return T.matmul(x, y)

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes), "normalize": self.normalize}


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
