"""``keras.ops`` for wsekern.nn: Keras 3's names, arguments and defaults over the autograd.

Every op takes Tensors, NumPy arrays or Python scalars (scalars are weakly typed:
``ops.multiply(float32_tensor, 2.0)`` stays float32) and returns a Tensor. Differentiable
ops carry gradients to their Tensor inputs; the ones Keras cannot differentiate either
(argmax, argsort, comparisons, one_hot, rounding, shape constructors) return constants.
"""
import builtins
import warnings

import numpy as np

from . import activations as _act
from . import tensor as T
from .tensor import Tensor, as_tensor

FLOATX = np.dtype(np.float32)


def _dtype(dtype):
    if dtype is None:
        return None
    try:
        return np.dtype(getattr(dtype, "name", dtype) if not isinstance(dtype, str) else dtype)
    except TypeError as exc:
        raise TypeError(f"unknown dtype {dtype!r}; expected a NumPy dtype name such as "
                        "'float32' or 'int32'") from exc


# -- conversion and construction -----------------------------------------------------
def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """A Tensor for ``x``; Python lists and scalars become float32 / int32 as in Keras."""
    dtype = _dtype(dtype)
    if isinstance(x, Tensor):
        return x if dtype is None else cast(x, dtype)
    if hasattr(x, "toarray") and callable(x.toarray):          # scipy.sparse
        x = x.toarray()
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        arr = np.asarray(x)
    else:
        arr = np.asarray(x)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(FLOATX)
        elif dtype is None and arr.dtype == np.int64:
            arr = arr.astype(np.int32)
    if arr.dtype == object:
        raise TypeError(f"cannot convert {type(x).__name__} to a tensor: it holds Python "
                        "objects (ragged nesting or mixed types)")
    return Tensor(arr if dtype is None else arr.astype(dtype))


def convert_to_numpy(x):
    return np.asarray(as_tensor(x).data)


def is_tensor(x):
    return isinstance(x, Tensor)


def shape(x):
    return tuple(np.shape(x.data if isinstance(x, Tensor) else x))


def ndim(x):
    return len(shape(x))


def size(x):
    return int(np.prod(shape(x)))


def dtype(x):
    return as_tensor(x).dtype.name


def cast(x, dtype):
    return T.cast(x, _dtype(dtype))


def stop_gradient(x):
    return T.stop_gradient(x)


def _floatx(dtype):
    return FLOATX if dtype is None else _dtype(dtype)


def zeros(shape, dtype=None):
    return Tensor(np.zeros(shape, dtype=_floatx(dtype)))


def ones(shape, dtype=None):
    return Tensor(np.ones(shape, dtype=_floatx(dtype)))


def full(shape, fill_value, dtype=None):
    return Tensor(np.full(shape, fill_value, dtype=_floatx(dtype)))


def zeros_like(x, dtype=None):
    return Tensor(np.zeros(shape(x), dtype=_dtype(dtype) or as_tensor(x).dtype))


def ones_like(x, dtype=None):
    return Tensor(np.ones(shape(x), dtype=_dtype(dtype) or as_tensor(x).dtype))


def full_like(x, fill_value, dtype=None):
    return Tensor(np.full(shape(x), fill_value, dtype=_dtype(dtype) or as_tensor(x).dtype))


def eye(N, M=None, k=0, dtype=None):
    return Tensor(np.eye(N, M, k, dtype=_floatx(dtype)))


identity = eye


def arange(start, stop=None, step=1, dtype=None):
    """Keras's arange: int32 for integer arguments, float32 otherwise."""
    if dtype is None:
        args = [v for v in (start, stop, step) if v is not None]
        ints = builtins.all(isinstance(v, (int, np.integer)) for v in args)
        dtype = np.int32 if ints else FLOATX
    if step == 0:
        raise ValueError("arange step must be non-zero; received 0")
    return Tensor(np.arange(start, stop, step).astype(_dtype(dtype)))


def _tracked(*values):
    return builtins.any(isinstance(v, Tensor) and v.requires_grad for v in values)


def _spaced(start, stop, num, endpoint, dtype, axis):
    """np.linspace built from ``start`` and ``stop`` with ops, so that a gradient reaches
    them (np.linspace would detach a Tensor)."""
    num = int(num)
    if num < 0:
        raise ValueError(f"linspace: num must be >= 0; received {num}")
    dt = _floatx(dtype)
    start, stop = T.cast(as_tensor(start), dt), T.cast(as_tensor(stop), dt)
    div = (num - 1 if endpoint else num) or 1
    shape_ = np.broadcast_shapes(start.shape, stop.shape)
    frac = (np.arange(num) / div).astype(dt).reshape((num,) + (1,) * len(shape_))
    out = add(start, multiply(subtract(stop, start), frac))
    return moveaxis(out, 0, axis) if out.ndim > 1 and axis != 0 else out


def linspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    if _tracked(start, stop):
        return _spaced(start, stop, num, endpoint, dtype, axis)
    return Tensor(np.linspace(start, stop, num, endpoint=endpoint, axis=axis,
                              dtype=_floatx(dtype)))


def tri(N, M=None, k=0, dtype=None):
    return Tensor(np.tri(N, M, k, dtype=_floatx(dtype)))


def triu(x, k=0):
    x = as_tensor(x)
    return multiply(x, np.triu(np.ones(x.shape[-2:], dtype=x.dtype), k))


def tril(x, k=0):
    x = as_tensor(x)
    return multiply(x, np.tril(np.ones(x.shape[-2:], dtype=x.dtype), k))


# -- arithmetic --------------------------------------------------------------------------
def add(x1, x2):
    return T.add(x1, x2)


def subtract(x1, x2):
    x1, x2 = T.pair(x1, x2)
    return T.add(x1, T.neg(x2))


def multiply(x1, x2):
    return T.mul(x1, x2)


def divide(x1, x2):
    return T.divide(x1, x2)


true_divide = divide


def divide_no_nan(x1, x2):
    x1, x2 = T.pair(x1, x2)
    zero = x2.data == 0
    safe = T.where(zero, T.lift(1, x2), x2)
    return T.where(zero, T.lift(0, x1), T.divide(x1, safe))


def floor_divide(x1, x2):
    x1, x2 = T.pair(x1, x2)
    return Tensor(np.floor_divide(x1.data, x2.data))


def mod(x1, x2):
    x1, x2 = T.pair(x1, x2)
    return Tensor(np.mod(x1.data, x2.data))


def negative(x):
    return T.neg(as_tensor(x))


def power(x1, x2):
    return T.power(x1, x2)


def square(x):
    x = as_tensor(x)
    return T.mul(x, x)


def sqrt(x):
    x = as_tensor(x)
    return T.sqrt(x if x.dtype.kind in "fc" else T.cast(x, FLOATX))


def rsqrt(x):
    return T.divide(1.0, sqrt(x))


def reciprocal(x):
    return T.divide(1.0, _float(x))


def _float(x):
    x = as_tensor(x)
    return x if x.dtype.kind in "fc" else T.cast(x, FLOATX)


def exp(x):
    return T.exp(_float(x))


def log(x):
    return T.log(_float(x))


def log1p(x):
    return T.log1p(_float(x))


def expm1(x):
    return T.expm1(_float(x))


def log2(x):
    return multiply(log(x), float(1 / np.log(2)))      # a Python float: weakly typed


def log10(x):
    return multiply(log(x), float(1 / np.log(10)))


def abs(x):      # noqa: A001  (Keras's name)
    return T.absolute(x)


absolute = abs


def sign(x):
    return Tensor(T.sign_of(as_tensor(x).data))


def sin(x):
    return T.sin(_float(x))


def cos(x):
    return T.cos(_float(x))


def tan(x):
    return divide(sin(x), cos(x))


def tanh(x):
    return _act.tanh(_float(x))


def erf(x):
    return T.erf(_float(x))


def maximum(x1, x2):
    return T.extremum(x1, x2, take_max=True)


def minimum(x1, x2):
    return T.extremum(x1, x2, take_max=False)


def clip(x, x_min, x_max):
    return T.clip(x, x_min, x_max)


def floor(x):
    return Tensor(np.floor(as_tensor(x).data))


def ceil(x):
    return Tensor(np.ceil(as_tensor(x).data))


def round(x, decimals=0):      # noqa: A001
    return Tensor(np.round(as_tensor(x).data, decimals))


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    x = as_tensor(x)
    bad = ~np.isfinite(x.data)
    fixed = np.nan_to_num(x.data, nan=nan, posinf=posinf, neginf=neginf)
    return T.where(bad, Tensor(fixed), x)


# -- comparisons and logic (no gradient) -------------------------------------------------------
def _compare(fn):
    def op(x1, x2):
        a, b = T.pair(x1, x2)
        return Tensor(fn(a.data, b.data))
    op.__name__ = fn.__name__
    return op


equal = _compare(np.equal)
not_equal = _compare(np.not_equal)
greater = _compare(np.greater)
greater_equal = _compare(np.greater_equal)
less = _compare(np.less)
less_equal = _compare(np.less_equal)
logical_and = _compare(np.logical_and)
logical_or = _compare(np.logical_or)
logical_xor = _compare(np.logical_xor)


def logical_not(x):
    return Tensor(np.logical_not(as_tensor(x).data))


def isnan(x):
    return Tensor(np.isnan(as_tensor(x).data))


def isinf(x):
    return Tensor(np.isinf(as_tensor(x).data))


def isfinite(x):
    return Tensor(np.isfinite(as_tensor(x).data))


def all(x, axis=None, keepdims=False):      # noqa: A001
    return Tensor(np.all(as_tensor(x).data, axis=axis, keepdims=keepdims))


def any(x, axis=None, keepdims=False):      # noqa: A001
    return Tensor(np.any(as_tensor(x).data, axis=axis, keepdims=keepdims))


def where(condition, x1=None, x2=None):
    """``x1`` where ``condition`` else ``x2``. With one argument, the indices where it
    holds as one int64 tensor of shape (ndim, count), as Keras on torch (a 0-d condition
    counts as shape (1,)); unpacks as NumPy's tuple, ``x[tuple(idx)]`` indexes as NumPy."""
    if x1 is None and x2 is None:
        c = np.atleast_1d(as_tensor(condition).data.astype(bool))
        return Tensor(np.stack(np.nonzero(c)).astype(np.int64))
    if x1 is None or x2 is None:
        raise ValueError("where takes both x1 and x2, or neither (to get indices)")
    return T.where(condition, x1, x2)


# -- reductions ------------------------------------------------------------------------------
def sum(x, axis=None, keepdims=False):      # noqa: A001
    return T.tsum(x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    return T.mean(x, axis, keepdims)


def var(x, axis=None, keepdims=False):
    x = _float(x)
    if x.dtype.kind == "c":         # mean |x - mean|^2 (not the complex square), as torch
        _no_complex_grad("var", x)  # ... cast back to complex as Keras on torch does
        return _const(np.var(x.data, axis=_complex_axes(axis, x.ndim),
                             keepdims=keepdims).astype(x.dtype))
    centred = subtract(x, mean(x, axis, keepdims=True))
    return mean(square(centred), axis, keepdims)


def std(x, axis=None, keepdims=False):
    x = _float(x)
    if x.dtype.kind == "c":         # real, as Keras on torch
        _no_complex_grad("std", x)
        return _const(np.std(x.data, axis=_complex_axes(axis, x.ndim), keepdims=keepdims))
    return sqrt(var(x, axis, keepdims))


def _complex_axes(axis, ndim):
    return None if axis is None else T._axes(axis, ndim)


def prod(x, axis=None, keepdims=False, dtype=None):
    """Product; the gradient is prod / x, computed without dividing when x has zeros."""
    x = as_tensor(x)
    axis_t = None if axis is None else T._axes(axis, x.ndim)
    out = np.prod(x.data, axis=axis_t, keepdims=keepdims)

    def backward(g):
        g = T._keep(g, x.shape, axis_t, keepdims)
        moved = np.moveaxis(x.data, axis_t or tuple(range(x.ndim)),
                            range(-len(axis_t or range(x.ndim)), 0))
        flat = moved.reshape(moved.shape[:moved.ndim - len(axis_t or range(x.ndim))] + (-1,))
        ones_ = np.ones_like(flat[..., :1])
        left = np.cumprod(np.concatenate([ones_, flat[..., :-1]], -1), -1)
        right = np.flip(np.cumprod(np.concatenate(
            [ones_, np.flip(flat, -1)[..., :-1]], -1), -1), -1)
        others = (left * right).reshape(moved.shape)
        others = np.moveaxis(others, range(-len(axis_t or range(x.ndim)), 0),
                             axis_t or tuple(range(x.ndim)))
        x.accumulate(others * g)
    res = Tensor(np.asarray(out), parents=(x,), backward=backward)
    return res if dtype is None else cast(res, dtype)


def max(x, axis=None, keepdims=False, initial=None):      # noqa: A001
    x = as_tensor(x)
    if initial is not None:
        if x.size == 0:
            return Tensor(np.asarray(np.max(x.data, axis=axis, keepdims=keepdims,
                                              initial=initial)))
        # after the reduction, as Keras: a tie with ``initial`` splits the reduced value's
        # gradient, not each element's
        return T.extremum(T.reduce_extremum(x, axis, keepdims, take_max=True), initial,
                          take_max=True)
    return T.reduce_extremum(x, axis, keepdims, take_max=True)


def min(x, axis=None, keepdims=False, initial=None):      # noqa: A001
    x = as_tensor(x)
    if initial is not None:
        if x.size == 0:
            return Tensor(np.asarray(np.min(x.data, axis=axis, keepdims=keepdims,
                                              initial=initial)))
        # after the reduction, as Keras: a tie with ``initial`` splits the reduced value's
        # gradient, not each element's
        return T.extremum(T.reduce_extremum(x, axis, keepdims, take_max=False), initial,
                          take_max=False)
    return T.reduce_extremum(x, axis, keepdims, take_max=False)


amax, amin = max, min


def argmax(x, axis=None, keepdims=False):
    return Tensor(np.asarray(np.argmax(as_tensor(x).data, axis=axis, keepdims=keepdims),
                             dtype=np.int32))


def argmin(x, axis=None, keepdims=False):
    return Tensor(np.asarray(np.argmin(as_tensor(x).data, axis=axis, keepdims=keepdims),
                             dtype=np.int32))


def logsumexp(x, axis=None, keepdims=False):
    return T.logsumexp(_float(x), axis, keepdims)


def cumsum(x, axis=None, dtype=None):
    out = T.cumsum(x, axis)
    return out if dtype is None else cast(out, dtype)


def norm(x, ord=None, axis=None, keepdims=False):      # noqa: A002
    """Vector 2-norm (or ord=1, inf) and the Frobenius norm, differentiable."""
    x = _float(x)
    if x.dtype.kind == "c":             # the norm of |x|: real, as NumPy, torch and Keras
        x = abs(x)
    if ord in (None, 2, "fro", "euclidean"):
        return sqrt(sum(square(x), axis, keepdims))
    if ord == 1:
        return sum(abs(x), axis, keepdims)
    if ord in (np.inf, "inf"):
        return max(abs(x), axis, keepdims)
    raise ValueError(f"norm supports ord None, 1, 2, 'fro' and inf; received {ord!r}")


# -- shapes --------------------------------------------------------------------------------
def reshape(x, newshape):
    return T.reshape(x, tuple(newshape) if np.ndim(newshape) else newshape)


def transpose(x, axes=None):
    return T.transpose(x, axes)


def swapaxes(x, axis1, axis2):
    x = as_tensor(x)
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return T.transpose(x, axes)


def moveaxis(x, source, destination):
    x = as_tensor(x)
    src = [_axis(a, x.ndim) for a in np.atleast_1d(source)]
    dst = [_axis(a, x.ndim) for a in np.atleast_1d(destination)]
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError(f"moveaxis needs as many distinct source as destination axes; "
                         f"received {source} and {destination}")
    # NumPy's rule: the other axes keep their order, the moved ones land at destination
    order = [n for n in range(x.ndim) if n not in src]
    for d, s_ in builtins.sorted(zip(dst, src)):
        order.insert(d, s_)
    return T.transpose(x, tuple(order))


def expand_dims(x, axis):
    x = as_tensor(x)
    return T.reshape(x, np.expand_dims(x.data, axis).shape)


def squeeze(x, axis=None):
    x = as_tensor(x)
    if axis is not None:
        for ax in np.atleast_1d(axis):
            if x.shape[int(ax)] != 1:
                raise ValueError(f"cannot squeeze axis {int(ax)} of size {x.shape[int(ax)]} "
                                 f"(shape {x.shape}); only size-1 axes can be squeezed")
    return T.reshape(x, np.squeeze(x.data, axis).shape)


def broadcast_to(x, shape):
    return T.broadcast_to(x, tuple(shape))


def concatenate(xs, axis=0):
    return T.concat(list(xs), axis=axis)


def append(x1, x2, axis=None):
    if axis is None:
        return T.concat([T.reshape(x1, (-1,)), T.reshape(x2, (-1,))], axis=0)
    return T.concat([x1, x2], axis=axis)


def stack(x, axis=0):
    return T.stack(list(x), axis=axis)


def unstack(x, num=None, axis=0):
    x = as_tensor(x)
    n = x.shape[axis]
    if num is not None and num != n:
        raise ValueError(f"unstack: num={num} does not match axis {axis} of size {n}")
    return [take(x, i, axis=axis) for i in range(n)]


def split(x, indices_or_sections, axis=0):
    """Parts of ``x`` along ``axis``, each a slice of it (so each carries gradient)."""
    x = as_tensor(x)
    ax = axis % x.ndim
    n = x.shape[ax]
    if np.ndim(indices_or_sections) == 0:
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ValueError(f"cannot split axis {axis} of size {n} into {k} equal parts; "
                             "pass a list of split indices instead")
        bounds = [i * (n // k) for i in range(k + 1)]
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
    head = (builtins.slice(None),) * ax
    return [T.getitem(x, head + (builtins.slice(lo, hi),))
            for lo, hi in zip(bounds[:-1], bounds[1:])]


def take(x, indices, axis=None):
    """Gather along ``axis`` (flattened when None); negative indices count from the end."""
    x = as_tensor(x)
    idx = np.asarray(as_tensor(indices).data)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers; received dtype {idx.dtype}")
    src = T.reshape(x, (-1,)) if axis is None else x
    ax = 0 if axis is None else axis % x.ndim
    n = src.shape[ax]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"take: indices must be in [-{n}, {n}) for axis {ax} of size {n}; "
                         f"received values from {idx.min()} to {idx.max()}")
    return T.getitem(src, (builtins.slice(None),) * ax + (idx,))


def take_along_axis(x, indices, axis=None):
    x = as_tensor(x)
    if axis is None:
        return T.take_along_axis(T.reshape(x, (-1,)), np.ravel(as_tensor(indices).data), 0)
    return T.take_along_axis(x, indices, axis)


def slice(inputs, start_indices, shape):      # noqa: A001
    """Keras's ``ops.slice``: ``shape`` elements from ``start_indices`` on each axis."""
    idx = tuple(builtins.slice(int(s), int(s) + int(n)) for s, n in zip(start_indices, shape))
    return T.getitem(inputs, idx)


def tile(x, repeats):
    return T.tile(x, repeats)


def repeat(x, repeats, axis=None):
    return T.repeat(x, repeats, axis)


def pad(x, pad_width, mode="constant", constant_values=None):
    if mode != "constant":
        raise NotImplementedError(f"pad mode {mode!r}: only 'constant' is implemented")
    return T.pad(x, pad_width, 0 if constant_values is None else constant_values)


def flip(x, axis=None):
    return T.flip(x, axis)


def roll(x, shift, axis=None):
    x = as_tensor(x)
    return Tensor(np.roll(x.data, shift, axis), parents=(x,),
                  backward=lambda g: x.accumulate(np.roll(g, -np.asarray(shift), axis)))


def sort(x, axis=-1):
    """Sorted values; differentiable (the gradient goes back to where each came from)."""
    x = as_tensor(x)
    if x.ndim == 0:                          # a 0-d tensor is sorted (Keras returns it)
        return x
    return T.take_along_axis(x, np.argsort(x.data, axis=axis, kind="stable"), axis)


def argsort(x, axis=-1):
    if as_tensor(x).ndim == 0:               # Keras: the index 0, 0-d
        return _const(np.zeros((), dtype=np.int32))
    return Tensor(np.argsort(as_tensor(x).data, axis=axis, kind="stable").astype(np.int32))


def top_k(x, k, sorted=True):      # noqa: A002
    """(values, indices) of the ``k`` largest entries on the last axis; values are
    differentiable. Ties keep the lower index first, as TF does."""
    x = as_tensor(x)
    n = x.shape[-1]
    if not 0 <= int(k) <= n:
        raise ValueError(f"top_k: k must be in [0, {n}] for a last axis of size {n}; "
                         f"received {k}")
    order = np.argsort(-x.data, axis=-1, kind="stable")[..., :int(k)]
    return T.take_along_axis(x, order, -1), Tensor(order.astype(np.int32))


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Keras's one_hot: out-of-range (and negative) indices give an all-zero row."""
    idx = np.asarray(as_tensor(x).data)
    if idx.dtype.kind not in "iu":
        if idx.dtype.kind == "f" and np.all(idx == np.round(idx)):
            idx = idx.astype(np.int64)
        else:
            raise TypeError(f"one_hot: indices must be integers; received dtype {idx.dtype}")
    out = (idx[..., None] == np.arange(int(num_classes))).astype(_floatx(dtype))
    if axis != -1:
        out = np.moveaxis(out, -1, axis)
    return Tensor(out)


def multi_hot(inputs, num_classes, axis=-1, dtype=None):
    oh = one_hot(inputs, num_classes, dtype=dtype).data
    return Tensor(oh.max(axis=-2) if oh.ndim > 1 else oh)


# -- linear algebra ----------------------------------------------------------------------------
def matmul(x1, x2):
    return T.matmul(x1, x2)


def dot(x1, x2):
    """NumPy's dot: scalars multiply, 1-D/2-D as matmul, N-D contracts x1's last axis
    with x2's second-to-last."""
    a, b = T.pair(x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        return T.mul(a, b)
    if b.ndim <= 2:
        return T.matmul(a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 2]))


def tensordot(x1, x2, axes=2):
    a, b = T.pair(x1, x2)
    if np.ndim(axes) == 0:
        ax_a, ax_b = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        ax_a, ax_b = [np.atleast_1d(v).tolist() for v in axes]
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    sa = [next(letters) for _ in range(a.ndim)]
    sb = [next(letters) for _ in range(b.ndim)]
    for i, j in zip(ax_a, ax_b):
        sb[j] = sa[i]
    out = [c for k, c in enumerate(sa) if k not in [i % a.ndim for i in ax_a]] + \
          [c for k, c in enumerate(sb) if k not in [j % b.ndim for j in ax_b]]
    return T.einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)


def einsum(subscripts, *operands):
    return T.einsum(subscripts, *operands)


def outer(x1, x2):
    return T.einsum("i,j->ij", reshape(x1, (-1,)), reshape(x2, (-1,)))


def vdot(x1, x2):
    return sum(multiply(reshape(x1, (-1,)), reshape(x2, (-1,))))


# -- neural-network ops (keras.ops.nn, exposed at top level as in Keras) --------------------
def relu(x):
    return _act.relu(x)


def relu6(x):
    return _act.relu6(x)


def sigmoid(x):
    return _act.sigmoid(_float(x))


def softplus(x):
    return _act.softplus(_float(x))


def softsign(x):
    return _act.softsign(_float(x))


def silu(x):
    return _act.silu(_float(x))


swish = silu


def leaky_relu(x, negative_slope=0.2):
    return _act.leaky_relu(x, negative_slope)


def elu(x, alpha=1.0):
    return _act.elu(_float(x), alpha)


def selu(x):
    return _act.selu(_float(x))


def gelu(x, approximate=True):
    """keras.ops.gelu defaults to the tanh approximation (keras.activations.gelu does not)."""
    return _act.gelu(_float(x), approximate=approximate)


def hard_sigmoid(x):
    return _act.hard_sigmoid(_float(x))


def hard_silu(x):
    return _act.hard_silu(_float(x))


hard_swish = hard_silu


def softmax(x, axis=-1):
    return _act.softmax(_float(x), axis=axis)


def log_softmax(x, axis=-1):
    return T.log_softmax(_float(x), axis=axis)


def log_sigmoid(x):
    return negative(softplus(negative(x)))


def normalize(x, axis=-1, order=2, epsilon=None):
    """``x`` divided by its ``order``-norm along ``axis`` (Keras's ops.normalize)."""
    x = _float(x)
    n = norm(x, ord=order, axis=axis, keepdims=True)
    return divide(x, maximum(n, 1e-12 if epsilon is None else epsilon))


def moments(x, axes, keepdims=False):
    m = mean(x, axes, keepdims=True)
    v = mean(square(subtract(x, m)), axes, keepdims=keepdims)
    return (m if keepdims else squeeze(m, axes)), v


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise binary cross-entropy (Keras's ops.binary_crossentropy)."""
    t = _float(target)
    if from_logits:
        z = _float(output)
        return add(subtract(relu(z), multiply(z, t)), log1p(exp(negative(abs(z)))))
    p = clip(_float(output), 1e-7, 1 - 1e-7)
    return negative(add(multiply(t, log(p)), multiply(subtract(1.0, t), log(subtract(1.0, p)))))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    t = _float(target)
    if from_logits:
        return negative(sum(multiply(t, log_softmax(output, axis)), axis))
    p = _float(output)
    p = divide(p, sum(p, axis, keepdims=True))
    return negative(sum(multiply(t, log(clip(p, 1e-7, 1 - 1e-7))), axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    t = one_hot(target, shape(output)[axis], dtype=as_tensor(output).dtype)
    return categorical_crossentropy(t, output, from_logits, axis)


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """1-D or 2-D convolution, channels last, kernel ``(*window, in / groups, out)`` as
    keras.ops.conv, through wsekern.conv2d (grouped when the kernel has fewer input
    channels than the inputs)."""
    from .layers.conv import conv2d_nhwc, same_pads
    if data_format not in (None, "channels_last"):
        raise ValueError(f"only data_format='channels_last' is supported; received "
                         f"{data_format!r}")
    x, k = as_tensor(inputs), as_tensor(kernel)
    one_d = x.ndim == 3
    if x.ndim not in (3, 4) or k.ndim != x.ndim:
        raise ValueError(f"conv takes (batch, *spatial, channels) inputs of rank 3 or 4 and a "
                         f"kernel of the same rank; received shapes {x.shape} and {k.shape}")
    if one_d:
        x = T.reshape(x, (x.shape[0], 1) + x.shape[1:])
        k = T.reshape(k, (1,) + k.shape)
    nd = 2
    strides = (strides,) * nd if np.ndim(strides) == 0 else (1,) * one_d + tuple(strides)
    dilation = (dilation_rate,) * nd if np.ndim(dilation_rate) == 0 else \
        (1,) * one_d + tuple(dilation_rate)
    if one_d:
        strides, dilation = (1, strides[-1]), (1, dilation[-1])
    if x.shape[-1] % k.shape[-2]:
        raise ValueError(f"kernel input channels ({k.shape[-2]}) must divide the inputs' "
                         f"channels ({x.shape[-1]})")
    groups = x.shape[-1] // k.shape[-2]
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same'; received {padding!r}")
    pads = tuple((0, 0) if padding == "valid" else same_pads(n, kk, s, d) for n, kk, s, d in
                 zip(x.shape[1:3], k.shape[:2], strides, dilation))
    y = conv2d_nhwc(x, k, None, strides, pads, dilation, groups)
    return T.reshape(y, (y.shape[0],) + y.shape[2:]) if one_d else y

# -- helpers for the ops below ----------------------------------------------------------------
def _no_grad(name, out, *inputs):
    """``out`` as a Tensor whose backward refuses (a gradient Keras has but wsekern does
    not compute), instead of silently passing zero to ``inputs``."""
    inputs = tuple(t for t in inputs if isinstance(t, Tensor))

    def backward(g):
        raise NotImplementedError(f"the gradient of ops.{name} is not implemented in "
                                  "wsekern.nn.ops; wrap its inputs in ops.stop_gradient if "
                                  "no gradient is needed through it")
    return Tensor(out, parents=inputs, backward=backward)


def _const(out):
    """A result without gradient (as in Keras: integer, boolean or piecewise constant)."""
    return Tensor(np.asarray(out))


def _int_indices(x, name):
    idx = np.asarray(as_tensor(x).data)
    if idx.dtype.kind not in "iu":
        if idx.dtype.kind == "f" and idx.size and np.all(idx == np.round(idx)):
            return idx.astype(np.int64)
        if idx.size:
            raise TypeError(f"{name}: indices must be integers; received dtype {idx.dtype}")
        return idx.astype(np.int64)
    return idx


def _promote(a, b):
    """Both operands in Keras's common dtype: an integer meeting a float takes the
    float's dtype (NumPy would widen int32 + float32 to float64)."""
    if a.dtype == b.dtype:
        return a, b
    fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
    dt = a.dtype if fa and not fb else b.dtype if fb and not fa else \
        np.result_type(a.dtype, b.dtype)
    return T.cast(a, dt), T.cast(b, dt)


def _float_pair(x1, x2):
    a, b = T.pair(x1, x2)
    if a.dtype.kind not in "fc" and b.dtype.kind not in "fc":
        return T.cast(a, FLOATX), T.cast(b, FLOATX)
    return _promote(a, b)


def _same_int(out, x):
    """``out`` back in ``x``'s integer dtype (NumPy's sums and products widen int32;
    Keras's keep it)."""
    x = as_tensor(x)
    return cast(out, x.dtype) if x.dtype.kind in "iu" and out.dtype != x.dtype else out


def _keras_int(out, x, widen_small=False):
    """Keras-on-torch's integer result dtype: a bool input gives int32 (and with
    ``widen_small``, as its sums and products, so do int8/int16/uint8); other integer
    inputs keep their dtype."""
    kind = as_tensor(x).dtype
    if kind == np.bool_ or (widen_small and kind in (np.int8, np.int16, np.uint8)):
        return cast(out, np.int32) if out.dtype != np.int32 else out
    return _same_int(out, x)


def _unary_op(name, f, df, doc):
    """An elementwise op on floats: ``f`` the value, ``df(x, out)`` its derivative."""
    def op(x):
        x = _float(x)
        with np.errstate(all="ignore"):
            out = np.asarray(f(x.data)).astype(x.dtype, copy=False)

        def deriv():
            with np.errstate(all="ignore"):
                return df(x.data, out)
        return T._unary(x, out, deriv)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


def _binary_op(name, f, dfa, dfb, doc):
    """A broadcasting op on floats: ``dfa(a, b, out)`` and ``dfb`` its partials."""
    def op(x1, x2):
        a, b = _float_pair(x1, x2)
        with np.errstate(all="ignore"):
            out = np.asarray(f(a.data, b.data)).astype(a.dtype, copy=False)

        def backward(g):
            with np.errstate(all="ignore"):
                if a.requires_grad:
                    a.accumulate(T._unbroadcast(g * dfa(a.data, b.data, out), a.shape)
                                 .astype(a.dtype, copy=False))
                if b.requires_grad:
                    b.accumulate(T._unbroadcast(g * dfb(a.data, b.data, out), b.shape)
                                 .astype(b.dtype, copy=False))
        return Tensor(out, parents=(a, b), backward=backward)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


def _axis(axis, ndim):
    return T._axes(axis, ndim)[0]


# -- shapes and indexing (Keras 3 numpy ops) -------------------------------------------------
def ravel(x):
    return T.reshape(as_tensor(x), (-1,))


def _atleast(x, n):
    x = as_tensor(x)
    if x.ndim >= n:
        return x
    if n == 1 or n == 2:
        return T.reshape(x, (1,) * (n - x.ndim) + x.shape)
    return T.reshape(x, {0: (1, 1, 1), 1: (1,) + x.shape + (1,), 2: x.shape + (1,)}[x.ndim])


def vstack(xs):
    return T.concat([_atleast(x, 2) for x in xs], axis=0)


def hstack(xs):
    xs = [_atleast(x, 1) for x in xs]
    return T.concat(xs, axis=0 if xs and xs[0].ndim == 1 else 1)


def dstack(xs):
    return T.concat([_atleast(x, 3) for x in xs], axis=2)


def array_split(x, indices_or_sections, axis=0):
    """Like split, but ``sections`` need not divide the axis: the first ``n % sections``
    parts are one longer (NumPy's rule)."""
    x = as_tensor(x)
    if np.ndim(indices_or_sections) == 0:
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError(f"array_split: the number of sections must be > 0; received {k}")
        n = x.shape[_axis(axis, x.ndim)]
        sizes = [n // k + (i < n % k) for i in range(k)]
        indices_or_sections = np.cumsum(sizes)[:-1].tolist()
    return split(x, indices_or_sections, axis)


def _split_on(x, indices_or_sections, axis, name, min_ndim):
    x = as_tensor(x)
    if x.ndim < min_ndim:
        raise ValueError(f"{name} needs a tensor of rank >= {min_ndim}; received shape "
                         f"{x.shape}")
    return split(x, indices_or_sections, axis)


def hsplit(x, indices_or_sections):
    x = as_tensor(x)
    return _split_on(x, indices_or_sections, 0 if x.ndim == 1 else 1, "hsplit", 1)


def vsplit(x, indices_or_sections):
    return _split_on(x, indices_or_sections, 0, "vsplit", 2)


def dsplit(x, indices_or_sections):
    return _split_on(x, indices_or_sections, 2, "dsplit", 3)


def fliplr(x):
    return flip(x, 1)


def flipud(x):
    return flip(x, 0)


def rot90(array, k=1, axes=(0, 1)):
    """``array`` turned by 90 degrees ``k`` times in the plane of ``axes`` (NumPy's)."""
    x = as_tensor(array)
    a0, a1 = (int(a) % builtins.max(x.ndim, 1) for a in axes)
    if x.ndim < 2 or a0 == a1:
        raise ValueError(f"rot90 needs two different axes of a tensor of rank >= 2; received "
                         f"axes={tuple(axes)} for shape {x.shape}")
    k = int(k) % 4
    if k == 0:
        return copy(x)
    if k == 2:
        return flip(flip(x, a0), a1)
    return swapaxes(flip(x, a1), a0, a1) if k == 1 else flip(swapaxes(x, a0, a1), a1)


def diagonal(x, offset=0, axis1=0, axis2=1):
    """The ``offset`` diagonal over ``axis1``, ``axis2``, as a new last axis (NumPy's)."""
    x = as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"diagonal needs a tensor of rank >= 2; received shape {x.shape}")
    moved = moveaxis(x, (axis1, axis2), (-2, -1))
    n, m = moved.shape[-2:]
    offset = int(offset)
    rows = np.arange(builtins.max(0, -offset), n)
    rows = rows[rows + offset < m]
    return T.getitem(moved, (Ellipsis, rows, rows + offset))


def diag(x, k=0):
    """The ``k``-th diagonal of a matrix, or a matrix with a vector on it."""
    x = as_tensor(x)
    if x.ndim == 2:
        return diagonal(x, k)
    if x.ndim != 1:
        raise ValueError(f"diag takes a 1-D or 2-D tensor; received shape {x.shape}")
    k = int(k)
    return Tensor(np.diag(x.data, k), parents=(x,),
                  backward=lambda g: x.accumulate(np.diagonal(g, k).copy()))


def diagflat(x, k=0):
    return diag(ravel(x), k)


def trace(x, offset=0, axis1=0, axis2=1):
    x = as_tensor(x)
    d = diagonal(x, offset, axis1, axis2)
    if x.dtype.kind == "b" or x.dtype in (np.int8, np.int16, np.uint8):
        d = T.cast(d, np.int32)
    return cast(sum(d, -1), d.dtype)       # NumPy's sum widens int32; Keras's does not


def meshgrid(*x, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid indexing must be 'xy' or 'ij'; received {indexing!r}")
    xs = [ravel(v) for v in x]
    full = [v.shape[0] for v in xs]
    if indexing == "xy" and len(xs) >= 2:
        full[0], full[1] = full[1], full[0]
    out = []
    for i, v in enumerate(xs):
        pos = i if indexing == "ij" or len(xs) < 2 or i > 1 else 1 - i
        shape_ = [1] * len(xs)
        shape_[pos] = v.shape[0]
        out.append(T.broadcast_to(T.reshape(v, tuple(shape_)), tuple(full)))
    return out


def kron(x1, x2):
    a, b = _promote(*T.pair(x1, x2))
    nd = builtins.max(a.ndim, b.ndim)
    a = T.reshape(a, (1,) * (nd - a.ndim) + a.shape)
    b = T.reshape(b, (1,) * (nd - b.ndim) + b.shape)
    la = "abcdefghijklm"[:nd]
    lb = "nopqrstuvwxyz"[:nd]
    if nd > 13:
        raise ValueError(f"kron supports tensors of rank <= 13; received rank {nd}")
    out = T.einsum(f"{la},{lb}->{''.join(p + q for p, q in zip(la, lb))}", a, b)
    return T.reshape(out, tuple(p * q for p, q in zip(a.shape, b.shape)))


def inner(x1, x2):
    a, b = _promote(*T.pair(x1, x2))        # Keras: int32 with float32 gives float32
    if a.ndim == 0 or b.ndim == 0:
        return T.mul(a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 1]))


def cross(x1, x2, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Cross product of 2- or 3-vectors along the given axes (NumPy's)."""
    a, b = _float_pair(x1, x2) if as_tensor(x1).dtype.kind == "f" or \
        as_tensor(x2).dtype.kind == "f" else T.pair(x1, x2)
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = moveaxis(a, axisa, -1), moveaxis(b, axisb, -1)
    if a.shape[-1] not in (2, 3) or b.shape[-1] not in (2, 3):
        raise ValueError(f"cross needs vectors of length 2 or 3 along the axis; received "
                         f"shapes {a.shape} and {b.shape} (vectors last)")

    def comp(v, i):
        return T.getitem(v, (Ellipsis, i)) if i < v.shape[-1] else None

    a0, a1, a2 = (comp(a, i) for i in range(3))
    b0, b1, b2 = (comp(b, i) for i in range(3))

    def mul_(p, q):
        return None if p is None or q is None else T.mul(p, q)

    def sub_(p, q):
        if p is None and q is None:
            return None
        if q is None:
            return p
        return T.neg(q) if p is None else subtract(p, q)

    z = sub_(mul_(a0, b1), mul_(a1, b0))
    if a.shape[-1] == 2 and b.shape[-1] == 2:
        return z
    x = sub_(mul_(a1, b2), mul_(a2, b1))
    y = sub_(mul_(a2, b0), mul_(a0, b2))
    shape_ = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    parts = [T.broadcast_to(p, shape_) if p is not None else Tensor(np.zeros(shape_, z.dtype))
             for p in (x, y, z)]
    return moveaxis(T.stack(parts, axis=-1), -1, axisc)


def get_item(x, key):
    return T.getitem(x, key)


def copy(x):
    x = as_tensor(x)
    return Tensor(x.data.copy(), parents=(x,), backward=x.accumulate)


def array(x, dtype=None):
    return convert_to_tensor(x, dtype=dtype)


def empty(shape, dtype=None):
    return zeros(shape, dtype)


def empty_like(x, dtype=None):
    return zeros_like(x, dtype)


def _index_tuple(indices, shape_, name):
    """(k, ...) index arrays of ``indices`` (..., k) into the first k axes of ``shape_``,
    checked in range (negative indices count from the end)."""
    idx = _int_indices(indices, name)
    if idx.ndim == 0:
        idx = idx.reshape(1)
    k = idx.shape[-1]
    if k > len(shape_):
        raise ValueError(f"{name}: indices index {k} axes but the target has shape "
                         f"{tuple(shape_)}")
    for j in range(k):
        n = shape_[j]
        col = idx[..., j]
        if col.size and (col.min() < -n or col.max() >= n):
            raise IndexError(f"{name}: indices along axis {j} must be in [-{n}, {n}); "
                             f"received values from {col.min()} to {col.max()}")
    return tuple(idx[..., j] for j in range(k))


def scatter(indices, values, shape):
    """Zeros of ``shape`` with ``values`` added at ``indices`` (duplicates sum, as Keras on
    torch)."""
    v = as_tensor(values)
    shape_ = tuple(int(s) for s in np.atleast_1d(shape))
    idx = _index_tuple(indices, shape_, "scatter")
    out = np.zeros(shape_, dtype=v.dtype)
    np.add.at(out, idx, v.data)
    return Tensor(out, parents=(v,), backward=lambda g: v.accumulate(g[idx]))


def scatter_update(inputs, indices, updates, reduction=None):
    """``inputs`` with ``updates`` written at ``indices`` (reduction None: replace, the last
    of duplicates wins; 'add', 'max', 'min', 'mul': combined, as Keras on torch)."""
    x = as_tensor(inputs)
    u = T.cast(as_tensor(updates), x.dtype)
    idx = _index_tuple(indices, x.shape, "scatter_update")
    out = x.data.copy()
    if reduction is None:
        # which update lands where: write update numbers, the last duplicate wins
        owner = np.full(x.shape[:len(idx)], -1, dtype=np.int64)
        owner[idx] = np.arange(idx[0].size).reshape(idx[0].shape)
        out[idx] = u.data
        won = owner[idx] == np.arange(idx[0].size).reshape(idx[0].shape)
        written = owner >= 0

        def backward(g):
            if x.requires_grad:
                x.accumulate(np.where(written.reshape(written.shape + (1,) * (
                    x.ndim - written.ndim)), 0, g).astype(x.dtype, copy=False))
            if u.requires_grad:
                gu = g[idx]
                u.accumulate(np.where(won.reshape(won.shape + (1,) * (gu.ndim - won.ndim)),
                                      gu, 0).astype(u.dtype, copy=False))
        return Tensor(out, parents=(x, u), backward=backward)
    ufunc = {"add": np.add, "max": np.maximum, "min": np.minimum,
             "mul": np.multiply}.get(reduction)
    if ufunc is None:
        raise ValueError(f"scatter_update reduction must be None, 'add', 'max', 'min' or "
                         f"'mul'; received {reduction!r}")
    ufunc.at(out, idx, u.data)
    if reduction == "add":
        def backward(g):
            x.accumulate(g)
            u.accumulate(g[idx])
        return Tensor(out, parents=(x, u), backward=backward)
    return _no_grad(f"scatter_update(reduction={reduction!r})", out, x, u)


def slice_update(inputs, start_indices, updates):
    """``inputs`` with the block ``updates`` written from ``start_indices`` on."""
    x = as_tensor(inputs)
    u = T.cast(as_tensor(updates), x.dtype)
    start = [int(s) for s in np.atleast_1d(as_tensor(start_indices).data)]
    if len(start) != x.ndim or u.ndim != x.ndim:
        raise ValueError(f"slice_update needs one start index per axis and updates of the "
                         f"inputs' rank; received inputs {x.shape}, start {start}, updates "
                         f"{u.shape}")
    for s, n, m in zip(start, x.shape, u.shape):
        if s < 0 or s + m > n:
            raise ValueError(f"slice_update: updates of shape {u.shape} from {start} do "
                             f"not fit inputs of shape {x.shape}")
    widths = [(s, n - s - m) for s, n, m in zip(start, x.shape, u.shape)]
    inside = np.pad(np.ones(u.shape, dtype=bool), widths)
    return T.where(inside, T.pad(u, widths), x)


def _segments(data, segment_ids, num_segments, name):
    x = as_tensor(data)
    ids = _int_indices(segment_ids, name)
    if ids.ndim != 1 or x.ndim < 1 or ids.shape[0] != x.shape[0]:
        raise ValueError(f"{name}: segment_ids must be 1-D with one id per row of data; "
                         f"received segment_ids of shape {ids.shape} for data of shape "
                         f"{x.shape}")
    n = int(num_segments) if num_segments is not None else \
        (int(ids.max()) + 1 if ids.size else 0)
    keep = (ids >= 0) & (ids < n)        # out-of-range ids are dropped (as Keras on torch)
    return x, ids, n, keep


def segment_sum(data, segment_ids, num_segments=None, sorted=False):      # noqa: A002
    x, ids, n, keep = _segments(data, segment_ids, num_segments, "segment_sum")
    out = np.zeros((n,) + x.shape[1:], dtype=x.dtype)
    np.add.at(out, ids[keep], x.data[keep])

    def backward(g):
        full = np.zeros_like(x.data)
        full[keep] = g[ids[keep]]
        x.accumulate(full)
    return Tensor(out, parents=(x,), backward=backward)


def _segment_extremum(data, segment_ids, num_segments, take_max):
    name = "segment_max" if take_max else "segment_min"
    x, ids, n, keep = _segments(data, segment_ids, num_segments, name)
    dt = x.dtype
    info = np.finfo(dt) if dt.kind == "f" else np.iinfo(dt) if dt.kind in "iu" else None
    if info is None:
        raise TypeError(f"{name} takes numbers; received dtype {dt}")
    fill = (-np.inf if take_max else np.inf) if dt.kind == "f" else \
        (info.min if take_max else info.max)
    out = np.full((n,) + x.shape[1:], fill, dtype=dt)
    (np.maximum if take_max else np.minimum).at(out, ids[keep], x.data[keep])

    def backward(g):
        # ties share the gradient equally (torch's rule for amax/amin)
        hit = np.zeros(x.shape, dtype=dt)
        hit[keep] = x.data[keep] == out[ids[keep]]
        count = np.zeros_like(out)
        np.add.at(count, ids[keep], hit[keep])
        full = np.zeros(x.shape, dtype=dt)
        full[keep] = hit[keep] * g[ids[keep]] / np.where(count == 0, 1, count)[ids[keep]]
        x.accumulate(full.astype(x.dtype, copy=False))
    return Tensor(out, parents=(x,), backward=backward)


def segment_max(data, segment_ids, num_segments=None, sorted=False):      # noqa: A002
    """Max per segment; an empty segment gives -inf (as Keras on torch)."""
    return _segment_extremum(data, segment_ids, num_segments, True)


def segment_min(data, segment_ids, num_segments=None, sorted=False):      # noqa: A002
    """Min per segment; an empty segment gives +inf (as Keras on torch)."""
    return _segment_extremum(data, segment_ids, num_segments, False)


def segment_prod(data, segment_ids, num_segments=None, sorted=False):      # noqa: A002
    """Product per segment (1 for an empty one), differentiable with zeros in the data."""
    x, ids, n, keep = _segments(data, segment_ids, num_segments, "segment_prod")
    parts = []
    for s in range(n):
        rows = np.flatnonzero(keep & (ids == s))
        parts.append(prod(T.getitem(x, rows), axis=0) if rows.size else
                     Tensor(np.ones(x.shape[1:], dtype=x.dtype)))
    if not parts:
        return Tensor(np.ones((0,) + x.shape[1:], dtype=x.dtype))
    return T.stack(parts, axis=0)


def select(condlist, choicelist, default=0):
    """The first choice whose condition holds, else ``default`` (NumPy's select)."""
    if len(condlist) != len(choicelist):
        raise ValueError(f"select needs as many conditions as choices; received "
                         f"{len(condlist)} and {len(choicelist)}")
    if not len(condlist):
        raise ValueError("select needs at least one condition and choice")
    choices = [as_tensor(c) for c in choicelist]
    out = T.lift(default, choices[0])
    for cond_, choice in zip(reversed(condlist), reversed(choices)):
        out = T.where(as_tensor(cond_).data.astype(bool), choice, out)
    shape_ = np.broadcast_shapes(*[np.shape(as_tensor(c).data) for c in condlist],
                                 *[c.shape for c in choices])
    return T.broadcast_to(out, shape_) if out.shape != shape_ else out


def switch(index, branches, *operands):
    """``branches[index](*operands)``, ``index`` clamped to the valid range (as Keras)."""
    i = int(np.clip(int(as_tensor(index).data), 0, len(branches) - 1))
    return branches[i](*operands)


def searchsorted(sorted_sequence, values, side="left"):
    seq = np.asarray(as_tensor(sorted_sequence).data)
    if seq.ndim != 1:
        raise ValueError(f"searchsorted needs a 1-D sorted_sequence; received shape "
                         f"{seq.shape}")
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted side must be 'left' or 'right'; received {side!r}")
    out = np.searchsorted(seq, as_tensor(values).data, side=side)
    return _const(np.asarray(out, dtype=np.int32 if seq.size < 2 ** 31 else np.int64))


def digitize(x, bins):
    b = np.asarray(as_tensor(bins).data)
    if b.ndim != 1:
        raise ValueError(f"digitize needs 1-D bins; received shape {b.shape}")
    return _const(np.digitize(as_tensor(x).data, b).astype(np.int32))


def bincount(x, weights=None, minlength=0, sparse=False):
    """Counts of each non-negative integer (per row for a 2-D ``x``); with ``weights``,
    their sums, differentiable in the weights."""
    if sparse:
        raise ValueError("bincount(sparse=True) is not supported: wsekern tensors are dense")
    idx = _int_indices(x, "bincount")
    if idx.ndim not in (1, 2):
        raise ValueError(f"bincount takes a 1-D or 2-D x; received shape {idx.shape}")
    if idx.size and idx.min() < 0:
        raise ValueError(f"bincount needs non-negative values; received {idx.min()}")
    n = builtins.max(int(minlength), int(idx.max()) + 1 if idx.size else 0)
    rows = idx.reshape(-1, idx.shape[-1]) if idx.ndim == 2 else idx.reshape(1, -1)
    pos = (np.arange(rows.shape[0])[:, None], rows)
    if weights is None:
        out = np.zeros((rows.shape[0], n), dtype=np.int32)
        np.add.at(out, pos, 1)
        return _const(out if idx.ndim == 2 else out[0])
    w = as_tensor(weights)
    if w.shape != idx.shape:
        raise ValueError(f"bincount weights must have x's shape {idx.shape}; received "
                         f"{w.shape}")
    if w.dtype.kind not in "f":
        w = T.cast(w, np.result_type(w.dtype, np.int32))
    wd = w.data.reshape(rows.shape)
    out = np.zeros((rows.shape[0], n), dtype=w.dtype)
    np.add.at(out, pos, wd)
    return Tensor(out if idx.ndim == 2 else out[0], parents=(w,),
                  backward=lambda g: w.accumulate(
                      np.asarray(g).reshape(rows.shape[0], n)[pos].reshape(w.shape)))


def nonzero(x):
    """The indices of the nonzero entries as one int32 tensor of shape (ndim, count), as
    Keras on torch (torch.nonzero(x).T: a 0-d x gives shape (0, 1) or (0, 0))."""
    return Tensor(np.ascontiguousarray(np.argwhere(as_tensor(x).data).T, dtype=np.int32))


def isin(x1, x2, assume_unique=False, invert=False):
    return _const(np.isin(as_tensor(x1).data, as_tensor(x2).data,
                          assume_unique=assume_unique, invert=invert))


def unravel_index(indices, shape):
    idx = _int_indices(indices, "unravel_index")
    size_ = int(np.prod(shape))
    if idx.size and (idx.min() < 0 or idx.max() >= size_):
        raise ValueError(f"unravel_index: indices must be in [0, {size_}) for shape "
                         f"{tuple(shape)}; received values from {idx.min()} to {idx.max()}")
    return tuple(_const(i.astype(np.int32)) for i in np.unravel_index(idx, shape))


def view(x, dtype=None):
    """The same bytes seen as ``dtype`` (no gradient: a bit reinterpretation)."""
    x = as_tensor(x)
    if dtype is None:
        return copy(x)
    dt = _dtype(dtype)
    if x.ndim == 0 and dt.itemsize != x.dtype.itemsize:
        raise ValueError(f"view of a 0-d {x.dtype} tensor as {dt} changes its size")
    return _const(np.ascontiguousarray(x.data).view(dt))


def argpartition(x, kth, axis=-1):
    return _const(np.argpartition(as_tensor(x).data, kth, axis=axis).astype(np.int32))


def unique(x, sorted=True, return_index=False, return_inverse=False,      # noqa: A002
           return_counts=False, axis=None, size=None, fill_value=None):
    """NumPy's unique (sorted); ``size`` pads or truncates the values to that length with
    ``fill_value`` (default: the smallest value)."""
    x = as_tensor(x)
    res = np.unique(x.data, return_index=return_index, return_inverse=return_inverse,
                    return_counts=return_counts, axis=axis)
    res = list(res) if isinstance(res, tuple) else [res]
    if size is not None:
        vals = res[0]
        n = int(size)
        fill = (vals.min() if vals.size else 0) if fill_value is None else fill_value
        pad_ = np.full((builtins.max(n - vals.shape[0], 0),) + vals.shape[1:], fill,
                       dtype=vals.dtype)
        res[0] = np.concatenate([vals[:n], pad_])
    out = [Tensor(res[0])] + [_const(r.astype(np.int64)) for r in res[1:]]   # torch's
    return out[0] if len(out) == 1 else tuple(out)


def depth_to_space(x, block_size, data_format="channels_last"):
    """(b, h, w, c * bs * bs) -> (b, h * bs, w * bs, c), TensorFlow's order (DCR)."""
    x = as_tensor(x)
    bs = int(block_size)
    if data_format != "channels_last":
        x = transpose(x, (0, 2, 3, 1))
    b, h, w, c = x.shape
    if c % (bs * bs):
        raise ValueError(f"depth_to_space: channels ({c}) must be a multiple of "
                         f"block_size**2 ({bs * bs})")
    y = T.reshape(x, (b, h, w, bs, bs, c // (bs * bs)))
    y = T.reshape(transpose(y, (0, 1, 3, 2, 4, 5)), (b, h * bs, w * bs, c // (bs * bs)))
    return y if data_format == "channels_last" else transpose(y, (0, 3, 1, 2))


def space_to_depth(x, block_size, data_format="channels_last"):
    """(b, h * bs, w * bs, c) -> (b, h, w, c * bs * bs), the inverse of depth_to_space."""
    x = as_tensor(x)
    bs = int(block_size)
    if data_format != "channels_last":
        x = transpose(x, (0, 2, 3, 1))
    b, h, w, c = x.shape
    if h % bs or w % bs:
        raise ValueError(f"space_to_depth: height and width ({h}, {w}) must be multiples of "
                         f"block_size ({bs})")
    y = T.reshape(x, (b, h // bs, bs, w // bs, bs, c))
    y = T.reshape(transpose(y, (0, 1, 3, 2, 4, 5)), (b, h // bs, w // bs, bs * bs * c))
    return y if data_format == "channels_last" else transpose(y, (0, 3, 1, 2))


def extract_sequences(x, sequence_length, sequence_stride):
    """Frames of ``sequence_length`` every ``sequence_stride`` steps of the last axis."""
    x = as_tensor(x)
    n, L, s = x.shape[-1], int(sequence_length), int(sequence_stride)
    if L <= 0 or s <= 0 or L > n:
        raise ValueError(f"extract_sequences needs 0 < sequence_length <= {n} and a "
                         f"positive stride; received {L} and {s}")
    starts = np.arange(0, n - L + 1, s)
    return T.getitem(x, (Ellipsis, starts[:, None] + np.arange(L)))


# -- more elementwise math -----------------------------------------------------------------------
def _erfinv(v):
    from scipy.special import erfinv as f
    return f(v)


def _erfc(v):
    from scipy.special import erfc as f
    return f(v)


def _sinc_grad(x, out):
    px = np.pi * x
    return np.where(x == 0, 0.0, (np.cos(px) - out) / np.where(x == 0, 1, x))


arcsin = _unary_op("arcsin", np.arcsin, lambda x, o: 1 / np.sqrt(1 - x * x), "Inverse sine.")
arccos = _unary_op("arccos", np.arccos, lambda x, o: -1 / np.sqrt(1 - x * x), "Inverse cosine.")
arctan = _unary_op("arctan", np.arctan, lambda x, o: 1 / (1 + x * x), "Inverse tangent.")
arcsinh = _unary_op("arcsinh", np.arcsinh, lambda x, o: 1 / np.sqrt(x * x + 1),
                    "Inverse hyperbolic sine.")
arccosh = _unary_op("arccosh", np.arccosh, lambda x, o: 1 / np.sqrt(x * x - 1),
                    "Inverse hyperbolic cosine.")
arctanh = _unary_op("arctanh", np.arctanh, lambda x, o: 1 / (1 - x * x),
                    "Inverse hyperbolic tangent.")
sinh = _unary_op("sinh", np.sinh, lambda x, o: np.cosh(x), "Hyperbolic sine.")
cosh = _unary_op("cosh", np.cosh, lambda x, o: np.sinh(x), "Hyperbolic cosine.")
cbrt = _unary_op("cbrt", np.cbrt, lambda x, o: 1 / (3 * o * o), "Cube root.")
exp2 = _unary_op("exp2", np.exp2, lambda x, o: o * np.log(2), "2 to the power x.")
deg2rad = _unary_op("deg2rad", np.deg2rad, lambda x, o: np.pi / 180, "Degrees to radians.")
rad2deg = _unary_op("rad2deg", np.rad2deg, lambda x, o: 180 / np.pi, "Radians to degrees.")
erfc = _unary_op("erfc", _erfc, lambda x, o: -2 / np.sqrt(np.pi) * np.exp(-x * x),
                 "Complementary error function.")
erfinv = _unary_op("erfinv", _erfinv, lambda x, o: np.sqrt(np.pi) / 2 * np.exp(o * o),
                   "Inverse error function.")
sinc = _unary_op("sinc", np.sinc, _sinc_grad, "Normalised sinc, sin(pi x) / (pi x).")


def _i0(v):
    from scipy.special import i0 as f
    return f(v)


def _i1(v):
    from scipy.special import i1 as f
    return f(v)


_i0_float = _unary_op("i0", _i0, lambda x, o: _i1(x), "Modified Bessel function of order 0.")


def i0(x):
    """Modified Bessel function of order 0, in Keras's dtype: float64 for int64 and
    float64 input, float16 kept, else float32; complex input by its real part (Keras on
    torch casts it to float32, discarding the imaginary part, with torch's warning)."""
    x = convert_to_tensor(x)                # Python ints as int32 (float32 out), as Keras
    if x.dtype.kind == "c":                 # complex128 too gives float32, as Keras
        x = T.cast(_real_part("i0", x), FLOATX)
    dt = np.float64 if x.dtype in (np.int64, np.float64) else \
        x.dtype if x.dtype == np.float16 else FLOATX
    return _i0_float(T.cast(x, dt))


def _real_part(name, x):
    """A complex ``x``'s real part, as Keras on torch's cast of it to a real dtype: with
    torch's warning, as the imaginary part is dropped (and no gradient)."""
    _no_complex_grad(name, x)
    warnings.warn(f"ops.{name} of a complex tensor ({x.dtype}) uses its real part, as Keras "
                  "on torch does (it casts the input to a real dtype): the imaginary part is "
                  "discarded", UserWarning, stacklevel=3)
    return _const(np.real(x.data))


arctan2 = _binary_op("arctan2", np.arctan2, lambda y, x, o: x / (x * x + y * y),
                     lambda y, x, o: -y / (x * x + y * y), "Angle of (x2, x1), elementwise.")
hypot = _binary_op("hypot", np.hypot, lambda a, b, o: a / o, lambda a, b, o: b / o,
                   "sqrt(x1**2 + x2**2) without overflow.")
_logaddexp_float = _binary_op("logaddexp", np.logaddexp, lambda a, b, o: np.exp(a - o),
                              lambda a, b, o: np.exp(b - o), "log(exp(x1) + exp(x2)), stably.")


def logaddexp(x1, x2):
    """log(exp(x1) + exp(x2)), stably. Complex input as Keras on torch: both operands in
    complex64 (Keras's result dtype for any complex pair), torch's formula (the operand of
    the larger real part taken out), no gradient."""
    a, b = T.pair(x1, x2)
    if a.dtype.kind != "c" and b.dtype.kind != "c":
        return _logaddexp_float(a, b)
    _no_complex_grad("logaddexp", a, b)
    return _const(_logaddexp_complex(a.data.astype(np.complex64), b.data.astype(np.complex64)))


def _logaddexp_complex(x, y):
    """torch's complex logaddexp (ATen's _log_add_exp_helper), elementwise: with ``mx`` the
    operand of the larger real part (``x`` at ties), log1p(exp(mn - mx)) + mx; NaN in
    either part of either operand gives NaN + NaN j; equal infinite real parts give ``mn``
    (-inf) or, at +inf, log(exp(mn) + exp(mx)) (inf + 0j for two inf + 0j)."""
    x, y = np.broadcast_arrays(x, y)
    swap = x.real < y.real
    mx, mn = np.where(swap, y, x), np.where(swap, x, y)
    with np.errstate(all="ignore"):
        out = np.log1p(np.exp(mn - mx)) + mx
        both_inf = np.isinf(mn.real) & (mn.real == mx.real)
        out = np.where(both_inf & (mn.real < 0), mn, out)
        out = np.where(both_inf & (mn.real > 0), np.log(np.exp(mn) + np.exp(mx)), out)
    nan = np.isnan(x) | np.isnan(y)          # NaN in either part (np.isnan of complex)
    return np.where(nan, np.complex64(complex(np.nan, np.nan)), out).astype(np.complex64)


logaddexp2 = _binary_op("logaddexp2", np.logaddexp2, lambda a, b, o: np.exp2(a - o),
                        lambda a, b, o: np.exp2(b - o), "log2(2**x1 + 2**x2), stably.")


def fmod(x1, x2):
    """C's fmod (the sign of x1); differentiable for floats (d/dx2 = -trunc(x1 / x2))."""
    a, b = T.pair(x1, x2)
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        return _const(np.fmod(a.data, b.data))
    return _binary_op("fmod", np.fmod, lambda p, q, o: np.ones_like(o),
                      lambda p, q, o: -np.trunc(p / q), "")(a, b)


def _fextremum(x1, x2, take_max):
    a, b = _promote(*T.pair(x1, x2))
    # NaN-ignoring: pick a where it wins or b is NaN
    pick_a = (a.data >= b.data if take_max else a.data <= b.data) | np.isnan(b.data) \
        if a.dtype.kind == "f" else (a.data >= b.data if take_max else a.data <= b.data)
    return T.where(pick_a, a, b)


def fmax(x1, x2):
    """Elementwise maximum that ignores NaN (NaN only where both are)."""
    return _fextremum(x1, x2, True)


def fmin(x1, x2):
    """Elementwise minimum that ignores NaN (NaN only where both are)."""
    return _fextremum(x1, x2, False)


def fabs(x):
    return abs(_float(x))


def trunc(x):
    return _const(np.trunc(as_tensor(x).data))


def heaviside(x1, x2):
    a, b = _float_pair(x1, x2)
    return _const(np.heaviside(a.data, b.data))


def signbit(x):
    return _const(np.signbit(as_tensor(x).data))


def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    a, b = T.pair(x1, x2)
    return _const(np.isclose(a.data, b.data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    a, b = T.pair(x1, x2)
    return _const(np.allclose(a.data, b.data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def isposinf(x):
    return _const(np.isposinf(as_tensor(x).data))


def isneginf(x):
    return _const(np.isneginf(as_tensor(x).data))


def isreal(x):
    return _const(np.isreal(as_tensor(x).data))


def real(x):
    x = as_tensor(x)
    return copy(x) if x.dtype.kind != "c" else _const(np.real(x.data))


def imag(x):
    x = as_tensor(x)
    return _const(np.imag(x.data) if x.dtype.kind == "c" else np.zeros_like(x.data))


def conjugate(x):
    x = as_tensor(x)
    return copy(x) if x.dtype.kind != "c" else _const(np.conj(x.data))


conj = conjugate


def angle(x):
    x = as_tensor(x)
    return _const(np.angle(x.data).astype(x.dtype if x.dtype.kind == "f" else FLOATX))


def _ints(name, fn):
    def op(x, y=None):
        a = as_tensor(x)
        if y is None:
            return _const(fn(a.data))
        a, b = T.pair(a, y)
        return _const(fn(a.data, b.data))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"NumPy's {fn.__name__} (integers and booleans; no gradient)."
    return op


bitwise_and = _ints("bitwise_and", np.bitwise_and)
bitwise_or = _ints("bitwise_or", np.bitwise_or)
bitwise_xor = _ints("bitwise_xor", np.bitwise_xor)
bitwise_left_shift = left_shift = _ints("left_shift", np.left_shift)
bitwise_right_shift = right_shift = _ints("right_shift", np.right_shift)
gcd = _ints("gcd", np.gcd)
lcm = _ints("lcm", np.lcm)


def bitwise_invert(x):
    return _const(np.invert(as_tensor(x).data))


bitwise_not = bitwise_invert


def ldexp(x1, x2):
    """x1 * 2**x2 (differentiable in x1)."""
    a = _float(x1)
    e = _int_indices(x2, "ldexp")
    return multiply(a, Tensor(np.ldexp(np.ones((), a.dtype), e).astype(a.dtype)))


def nextafter(x1, x2):
    """The next float after ``x1`` towards ``x2``, in the operands' float dtype. Complex
    input as Keras on torch: the real parts' next float64 (the imaginary parts dropped,
    with a warning), returned as complex64."""
    a, b = T.pair(x1, x2)
    if a.dtype.kind == "c" or b.dtype.kind == "c":
        _no_complex_grad("nextafter", a, b)
        _real_part("nextafter", a if a.dtype.kind == "c" else b)       # one warning
        return _const(np.nextafter(np.real(a.data).astype(np.float64),
                                   np.real(b.data).astype(np.float64)).astype(np.complex64))
    a, b = _float_pair(a, b)
    return _const(np.nextafter(a.data, b.data))


def saturate_cast(x, dtype):
    """Cast with values clipped to the target's range (no wrap-around)."""
    x = as_tensor(x)
    dt = _dtype(dtype)
    if dt.kind in "iu" and x.dtype.kind in "fiu":
        info = np.iinfo(dt)
        lo = builtins.max(float(info.min), float(np.finfo(np.float64).min))
        x = clip(x, lo if x.dtype.kind == "f" else info.min,
                 float(info.max) if x.dtype.kind == "f" else info.max) \
            if x.dtype.kind == "f" else Tensor(np.clip(x.data, info.min, info.max))
    elif dt.kind == "f" and x.dtype.kind == "f" and dt.itemsize < x.dtype.itemsize:
        info = np.finfo(dt)
        x = clip(x, float(info.min), float(info.max))
    return cast(x, dt)


# -- reductions and scans ---------------------------------------------------------------------
def count_nonzero(x, axis=None):
    return _const(np.asarray(np.count_nonzero(as_tensor(x).data, axis=axis), dtype=np.int32))


def ptp(x, axis=None, keepdims=False):
    return subtract(max(x, axis, keepdims), min(x, axis, keepdims))


def cumprod(x, axis=None, dtype=None):
    """Cumulative product, its gradient exact where x has zeros (no division)."""
    x = as_tensor(x)
    src = x if axis is not None else T.reshape(x, (-1,))
    ax = 0 if axis is None else _axis(axis, x.ndim)
    out = np.cumprod(src.data, axis=ax)

    def backward(g):
        # d out_j / d x_i = prod_{k<i} x_k * prod_{i<k<=j} x_k: with S_i = g_i + x_{i+1}
        # S_{i+1} (from the end), the gradient is exclusive_cumprod_i * S_i
        xm, gm = np.moveaxis(src.data, ax, 0), np.moveaxis(np.asarray(g), ax, 0)
        n = xm.shape[0]
        s = np.zeros(np.broadcast_shapes(xm.shape, gm.shape), dtype=out.dtype)
        if n:
            s[n - 1] = gm[n - 1]
            for i in range(n - 2, -1, -1):
                s[i] = gm[i] + xm[i + 1] * s[i + 1]
            excl = np.concatenate([np.ones_like(xm[:1]), np.cumprod(xm[:-1], axis=0)])
            s *= excl
        src.accumulate(np.moveaxis(s, 0, ax).astype(src.dtype, copy=False))
    res = Tensor(out, parents=(src,), backward=backward)
    return _keras_int(res, x) if dtype is None else cast(res, dtype)


def diff(a, n=1, axis=-1):
    x = as_tensor(a)
    ax = _axis(axis, x.ndim)
    head = (builtins.slice(None),) * ax
    for _ in range(int(n)):
        if x.dtype == np.bool_:              # torch.diff of bools: whether neighbours differ
            x = _const(np.diff(x.data, axis=ax))
            continue
        x = subtract(T.getitem(x, head + (builtins.slice(1, None),)),
                     T.getitem(x, head + (builtins.slice(None, -1),)))
    return x


def average(x, axis=None, weights=None):
    """Weighted mean; 1-D ``weights`` along ``axis`` or weights of ``x``'s shape."""
    x = _float(x)
    if weights is None:
        return mean(x, axis)
    w = as_tensor(weights)
    if w.dtype != x.dtype:
        dt = np.result_type(x.dtype, w.dtype if w.dtype.kind == "f" else x.dtype)
        x, w = T.cast(x, dt), T.cast(w, dt)
    if w.shape != x.shape:
        if axis is None or w.ndim != 1:
            raise ValueError(f"average: weights must have x's shape {x.shape}, or be 1-D "
                             f"along the given axis; received {w.shape} with axis={axis}")
        ax = _axis(axis, x.ndim)
        if w.shape[0] != x.shape[ax]:
            raise ValueError(f"average: 1-D weights of length {w.shape[0]} do not match axis "
                             f"{ax} of size {x.shape[ax]}")
        w = T.reshape(w, tuple(x.shape[ax] if i == ax else 1 for i in range(x.ndim)))
        w = T.broadcast_to(w, x.shape)
    return divide(sum(multiply(x, w), axis), sum(w, axis))


def logspace(start, stop, num=50, endpoint=True, base=10, dtype=None, axis=0):
    if _tracked(start, stop):
        return power(float(base), _spaced(start, stop, num, endpoint, dtype, axis))
    e = np.linspace(start, stop, num, endpoint=endpoint, axis=axis)
    return Tensor(np.power(float(base), e).astype(_floatx(dtype)))


def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    if _tracked(start, stop):
        sign = np.sign(np.asarray(as_tensor(start).data))
        if np.any(sign == 0) or np.any(sign != np.sign(np.asarray(as_tensor(stop).data))):
            raise ValueError("geomspace: start and stop must be non-zero and of one sign")
        return multiply(sign, exp(_spaced(log(multiply(start, sign)), log(multiply(stop, sign)),
                                          num, endpoint, dtype, axis)))
    return Tensor(np.geomspace(start, stop, num, endpoint=endpoint, axis=axis)
                  .astype(_floatx(dtype)))


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """Integral of ``y`` along ``axis`` by the trapezoidal rule."""
    y = _float(y)
    ax = _axis(axis, y.ndim)
    head = (builtins.slice(None),) * ax
    lo = T.getitem(y, head + (builtins.slice(None, -1),))
    hi = T.getitem(y, head + (builtins.slice(1, None),))
    if x is None:
        return multiply(sum(add(lo, hi), ax), 0.5 * dx)
    x = as_tensor(x)
    dt = np.result_type(y.dtype, x.dtype)
    y, x = T.cast(y, dt), T.cast(x, dt)
    lo, hi = T.cast(lo, dt), T.cast(hi, dt)
    d = diff(x, axis=-1 if x.ndim == 1 else ax)
    if x.ndim == 1:
        d = T.reshape(d, tuple(d.shape[0] if i == ax else 1 for i in range(y.ndim)))
    return multiply(sum(multiply(add(lo, hi), d), ax), 0.5)


def vander(x, N=None, increasing=False):
    x = as_tensor(x)
    if x.ndim != 1:
        raise ValueError(f"vander takes a 1-D tensor; received shape {x.shape}")
    n = x.shape[0] if N is None else int(N)
    powers = range(n) if increasing else range(n - 1, -1, -1)
    cols = [T.power(x, p) if p else Tensor(np.ones_like(x.data)) for p in powers]
    return T.stack(cols, axis=1) if cols else Tensor(np.zeros((x.shape[0], 0), x.dtype))


def _window(fn, name):
    def op(x):
        return Tensor(fn(int(as_tensor(x).data)).astype(FLOATX))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"NumPy's {name} window of length x (float32)."
    return op


bartlett = _window(np.bartlett, "bartlett")
blackman = _window(np.blackman, "blackman")
hamming = _window(np.hamming, "hamming")
hanning = _window(np.hanning, "hanning")


def kaiser(x, beta):
    return Tensor(np.kaiser(int(as_tensor(x).data), float(beta)).astype(FLOATX))


def _quantile(x, q, axis, method, keepdims, skip_nan, name):
    """Quantiles through a sort (so differentiable: each comes from one or two entries),
    NumPy's methods; with ``skip_nan`` the NaNs are left out per slice."""
    methods = ("linear", "lower", "higher", "midpoint", "nearest")
    if method not in methods:
        raise ValueError(f"{name} method must be one of {methods}; received {method!r}")
    x = _float(x)
    qa = np.asarray(as_tensor(q).data, dtype=np.float64)
    if qa.size and (np.nanmin(qa) < 0 or np.nanmax(qa) > 1):
        raise ValueError(f"{name}: q must be in [0, 1] ([0, 100] for percentiles); "
                         f"received {qa.min()} to {qa.max()}")
    nd = x.ndim
    axes = T._axes(axis, nd)
    rest = [i for i in range(nd) if i not in axes]
    moved = transpose(x, tuple(rest + list(axes))) if nd else x
    lead = tuple(x.shape[i] for i in rest)
    flat = T.reshape(moved, lead + (-1,))
    n = flat.shape[-1]
    if n == 0:
        raise ValueError(f"{name} of an empty axis of shape {x.shape}")
    order = np.argsort(flat.data, axis=-1, kind="stable")        # NaNs sort last
    srt = T.take_along_axis(flat, order, -1)
    nan_count = np.isnan(flat.data).sum(-1, keepdims=True)
    valid = n - nan_count if skip_nan else np.full_like(nan_count, n)
    pos = qa.reshape(qa.shape + (1,) * len(lead) + (1,)) * np.maximum(valid - 1, 0)
    lo_i = np.floor(pos).astype(np.int64)
    hi_i = np.ceil(pos).astype(np.int64)
    frac = pos - lo_i
    if method == "lower":
        hi_i, frac = lo_i, np.zeros_like(frac)
    elif method == "higher":
        lo_i, frac = hi_i, np.zeros_like(frac)
    elif method == "nearest":
        near = np.round(pos).astype(np.int64)       # half to even, as NumPy
        lo_i = hi_i = near
        frac = np.zeros_like(frac)
    elif method == "midpoint":
        frac = np.where(hi_i > lo_i, 0.5, 0.0)
    nq = qa.ndim
    bshape = qa.shape + lead + (1,)

    def gather(i):
        idx = np.broadcast_to(i, bshape)
        src = T.broadcast_to(T.reshape(srt, (1,) * nq + srt.shape), qa.shape + srt.shape) \
            if nq else srt
        return T.getitem(T.take_along_axis(src, idx, -1), (Ellipsis, 0))
    lo, hi = gather(lo_i), gather(hi_i)
    fr = np.broadcast_to(frac, bshape)[..., 0].astype(x.dtype)
    out = add(lo, multiply(subtract(hi, lo), Tensor(fr)))
    bad = (valid == 0) if skip_nan else (nan_count > 0)      # all-NaN / any-NaN slices
    bad = np.broadcast_to(bad[..., 0], out.shape)
    if bad.any():
        out = T.where(bad, Tensor(np.asarray(np.nan, dtype=x.dtype)), out)
    if keepdims:
        out = T.reshape(out, qa.shape + tuple(1 if i in axes else x.shape[i]
                                              for i in range(nd)))
    return out


def quantile(x, q, axis=None, method="linear", keepdims=False):
    """The q-th quantiles (q in [0, 1]) along ``axis``; an array ``q`` adds its axes first
    (NumPy's layout); a slice holding NaN gives NaN."""
    return _quantile(x, q, axis, method, keepdims, False, "quantile")


def percentile(x, q, axis=None, method="linear", keepdims=False):
    return _quantile(x, np.asarray(as_tensor(q).data, np.float64) / 100, axis, method,
                     keepdims, False, "percentile")


def median(x, axis=None, keepdims=False):
    return _quantile(x, 0.5, axis, "linear", keepdims, False, "median")


def nanquantile(x, q, axis=None, method="linear", keepdims=False):
    return _quantile(x, q, axis, method, keepdims, True, "nanquantile")


def nanpercentile(x, q, axis=None, method="linear", keepdims=False):
    return _quantile(x, np.asarray(as_tensor(q).data, np.float64) / 100, axis, method,
                     keepdims, True, "nanpercentile")


def nanmedian(x, axis=None, keepdims=False):
    return _quantile(x, 0.5, axis, "linear", keepdims, True, "nanmedian")


def _nan_filled(x, value):
    x = as_tensor(x)
    if x.dtype.kind != "f":
        return x, np.zeros(x.shape, dtype=bool)
    bad = np.isnan(x.data)
    return T.where(bad, T.lift(value, x), x), bad


def nansum(x, axis=None, keepdims=False):
    return _keras_int(sum(_nan_filled(x, 0.0)[0], axis, keepdims), x, widen_small=True)


def nanprod(x, axis=None, keepdims=False):
    return _keras_int(prod(_nan_filled(x, 1.0)[0], axis, keepdims), x, widen_small=True)


def nancumsum(x, axis=None, dtype=None):
    out = cumsum(_nan_filled(x, 0.0)[0], axis, dtype)
    return _keras_int(out, x) if dtype is None else out


def nancumprod(x, axis=None, dtype=None):
    return cumprod(_nan_filled(x, 1.0)[0], axis, dtype)


def nanmean(x, axis=None, keepdims=False):
    x = _float(x)
    filled, bad = _nan_filled(x, 0.0)
    count = np.sum(~bad, axis=None if axis is None else T._axes(axis, x.ndim),
                   keepdims=keepdims)
    with np.errstate(all="ignore"):
        return divide(sum(filled, axis, keepdims), Tensor(np.asarray(count, dtype=x.dtype)))


def nanvar(x, axis=None, keepdims=False):
    x = _float(x)
    filled, bad = _nan_filled(x, 0.0)
    m = nanmean(x, axis, keepdims=True)
    # squares of the filled values (a NaN there would poison the gradient), NaNs left out
    sq = T.where(bad, T.lift(0.0, x), square(subtract(filled, m)))
    count = np.sum(~bad, axis=None if axis is None else T._axes(axis, x.ndim),
                   keepdims=keepdims)
    with np.errstate(all="ignore"):
        return divide(sum(sq, axis, keepdims), Tensor(np.asarray(count, dtype=x.dtype)))


def nanstd(x, axis=None, keepdims=False):
    return sqrt(nanvar(x, axis, keepdims))


def _nanextremum(x, axis, keepdims, take_max):
    x = as_tensor(x)
    if x.dtype.kind != "f":
        return (max if take_max else min)(x, axis, keepdims)
    filled, bad = _nan_filled(x, -np.inf if take_max else np.inf)
    out = (max if take_max else min)(filled, axis, keepdims)
    ax = None if axis is None else T._axes(axis, x.ndim)
    all_bad = np.all(bad, axis=ax, keepdims=keepdims)
    return T.where(all_bad, T.lift(np.nan, out), out) if np.any(all_bad) else out


def nanmax(x, axis=None, keepdims=False):
    """Max ignoring NaN (NaN where a slice is all NaN)."""
    return _nanextremum(x, axis, keepdims, True)


def nanmin(x, axis=None, keepdims=False):
    """Min ignoring NaN (NaN where a slice is all NaN)."""
    return _nanextremum(x, axis, keepdims, False)


def nanargmax(x, axis=None, keepdims=False):
    x = as_tensor(x)
    data = np.where(np.isnan(x.data), -np.inf, x.data) if x.dtype.kind == "f" else x.data
    return argmax(data, axis, keepdims)


def nanargmin(x, axis=None, keepdims=False):
    x = as_tensor(x)
    data = np.where(np.isnan(x.data), np.inf, x.data) if x.dtype.kind == "f" else x.data
    return argmin(data, axis, keepdims)


def histogram(x, bins=10, range=None):      # noqa: A002
    """(counts, bin edges) of a 1-D tensor, NumPy's binning, the counts float32 as Keras
    on torch (no gradient)."""
    x = as_tensor(x)
    if x.ndim != 1:
        raise ValueError(f"histogram takes a 1-D tensor; received shape {x.shape}")
    counts, edges = np.histogram(x.data, bins=int(bins), range=range)
    return (_const(counts.astype(FLOATX)),
            _const(edges.astype(x.dtype if x.dtype.kind == "f" else FLOATX)))


def correlate(x1, x2, mode="valid"):
    """Cross-correlation of two 1-D tensors (NumPy's correlate, real inputs)."""
    a, b = _float_pair(x1, x2)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"correlate takes two 1-D tensors; received {a.shape} and {b.shape}")
    if mode not in ("valid", "same", "full"):
        raise ValueError(f"correlate mode must be 'valid', 'same' or 'full'; received {mode!r}")
    n, m = a.shape[0], b.shape[0]
    if n == 0 or m == 0:
        raise ValueError("correlate needs non-empty inputs")
    full_len = n + m - 1
    # out[k] = sum_j a[k + j - (m - 1)] * b[j] over the full range, then cropped
    ap = T.pad(a, [(m - 1, m - 1)])
    idx = np.arange(full_len)[:, None] + np.arange(m)[None, :]
    out = T.einsum("kj,j->k", T.getitem(ap, idx), b)
    size_ = {"full": full_len, "same": builtins.max(n, m),
             "valid": builtins.max(n, m) - builtins.min(n, m) + 1}[mode]
    start = (full_len - size_) // 2 if mode != "same" else (full_len - size_) // 2
    return T.getitem(out, builtins.slice(start, start + size_))


def corrcoef(x):
    """Pearson correlation coefficients of the rows of ``x``."""
    x = _float(x)
    if x.dtype.kind == "c":             # c c^H over its real diagonal, both parts clipped
        _no_complex_grad("corrcoef", x)  # ... to [-1, 1]: NumPy's and torch's definition
        with np.errstate(all="ignore"):
            return _const(np.asarray(np.corrcoef(x.data)).astype(x.dtype, copy=False))
    if x.ndim == 1:
        x = T.reshape(x, (1, -1))
    c = subtract(x, mean(x, 1, keepdims=True))
    cov = matmul(c, transpose(c))
    d = sqrt(diagonal(cov))
    return clip(divide(divide(cov, T.reshape(d, (-1, 1))), T.reshape(d, (1, -1))), -1, 1)


def cdist(x, y):
    """Euclidean distances between the rows of x (..., P, M) and y (..., R, M); the
    gradient at distance 0 is 0 (torch's)."""
    a, b = _float_pair(x, y)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"cdist needs inputs of rank >= 2 with the same last axis; "
                         f"received {a.shape} and {b.shape}")
    diffs = a.data[..., :, None, :] - b.data[..., None, :, :]
    out = np.sqrt(np.sum(diffs * diffs, -1))

    def backward(g):
        with np.errstate(all="ignore"):
            w = np.where(out > 0, g / np.where(out > 0, out, 1), 0)[..., None] * diffs
        if a.requires_grad:
            a.accumulate(T._unbroadcast(w.sum(-2), a.shape))
        if b.requires_grad:
            b.accumulate(T._unbroadcast(-w.sum(-3), b.shape))
    return Tensor(out, parents=(a, b), backward=backward)


# -- control flow (eager, as Keras on torch) ----------------------------------------------------
def _flatten(tree):
    """Leaves of a nest of tuples, lists and dicts (dicts by sorted key), and a rebuilder."""
    if isinstance(tree, (tuple, list)):
        parts = [_flatten(t) for t in tree]
        leaves = [leaf for p in parts for leaf in p[0]]

        def pack(flat, parts=parts, kind=type(tree)):
            out, i = [], 0
            for p_leaves, p_pack in parts:
                out.append(p_pack(flat[i:i + len(p_leaves)]))
                i += len(p_leaves)
            return kind(out) if kind in (tuple, list) else kind(*out)
        return leaves, pack
    if isinstance(tree, dict):
        keys = builtins.sorted(tree)
        vals, pack_vals = _flatten([tree[k] for k in keys])
        return vals, lambda flat: dict(zip(keys, pack_vals(flat)))
    return [tree], lambda flat: flat[0]


def cond(pred, true_fn, false_fn):
    return true_fn() if bool(as_tensor(pred).data) else false_fn()


def fori_loop(lower, upper, body_fun, init_val):
    val = init_val
    for i in range(int(lower), int(upper)):
        val = body_fun(i, val)
    return val


def while_loop(cond, body, loop_vars, maximum_iterations=None):      # noqa: A002
    """``body`` while ``cond`` holds (at most ``maximum_iterations`` times), Keras's rules:
    a tuple or list of loop variables is passed unpacked."""
    is_tuple = isinstance(loop_vars, (tuple, list))
    loop_vars = tuple(loop_vars) if is_tuple else (loop_vars,)
    leaves, pack = _flatten(loop_vars)          # Python numbers become tensors, as in Keras
    loop_vars = pack([v if isinstance(v, Tensor) else convert_to_tensor(v) for v in leaves])
    i = 0
    while (maximum_iterations is None or i < maximum_iterations) and \
            bool(as_tensor(cond(*loop_vars)).data):
        loop_vars = body(*loop_vars)
        loop_vars = tuple(loop_vars) if isinstance(loop_vars, (tuple, list)) else (loop_vars,)
        i += 1
    return loop_vars if is_tuple else loop_vars[0]


def _stack_tree(items):
    """Stack a list of equally nested results leaf by leaf along a new first axis."""
    flats = [_flatten(it) for it in items]
    pack = flats[0][1]
    columns = zip(*[f[0] for f in flats])
    return pack([T.stack(list(col), axis=0) for col in columns])


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """JAX's scan: ``carry, y = f(carry, x)`` over the first axis of ``xs``; returns the
    final carry and the stacked ys."""
    if not callable(f):
        raise TypeError(f"scan: f must be callable; received {f!r}")
    if xs is None and length is None:
        raise ValueError("scan needs xs to scan over or a length")
    if xs is None:
        xs_flat, pack_xs, n = [], None, int(length)
    else:
        xs_flat, pack_xs = _flatten(xs)
        xs_flat = [as_tensor(v) for v in xs_flat]
        n = int(length) if length is not None else xs_flat[0].shape[0]
    carry, ys = init, []
    steps = range(n - 1, -1, -1) if reverse else range(n)
    for i in steps:
        x_i = pack_xs([T.getitem(v, i) for v in xs_flat]) if xs_flat else None
        carry, y = f(carry, x_i)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys or builtins.all(y is None for y in ys):
        return carry, None
    return carry, _stack_tree(ys)


def map(f, xs):      # noqa: A001  (Keras's name)
    """``f`` applied to each slice of ``xs`` along its first axis, the results stacked."""
    flat, pack = _flatten(xs)
    flat = [as_tensor(v) for v in flat]
    if not flat or flat[0].ndim == 0 or flat[0].shape[0] == 0:
        raise ValueError("map needs xs with a non-empty first axis; received shapes "
                         f"{[v.shape for v in flat]}")
    return _stack_tree([f(pack([T.getitem(v, i) for v in flat]))
                        for i in range(flat[0].shape[0])])


def vectorized_map(function, elements):
    return map(function, elements)


def associative_scan(f, elems, reverse=False, axis=0):
    """Inclusive scan of the associative ``f`` along ``axis`` (computed in order; ``f``
    sees slices that keep the axis, of length 1)."""
    flat, pack = _flatten(elems)
    flat = [as_tensor(v) for v in flat]
    ax = _axis(axis, flat[0].ndim)
    n = flat[0].shape[ax]
    if builtins.any(v.shape[ax] != n for v in flat):
        raise ValueError(f"associative_scan: the inputs differ in length along axis {ax}: "
                         f"{[v.shape for v in flat]}")
    if n == 0:
        return elems
    order = range(n - 1, -1, -1) if reverse else range(n)
    head = (builtins.slice(None),) * ax
    acc, outs = None, []
    for i in order:
        cur = [T.getitem(v, head + (builtins.slice(i, i + 1),)) for v in flat]
        acc = cur if acc is None else [as_tensor(c) for c in _flatten(
            f(pack(acc), pack(cur)) if not reverse else f(pack(cur), pack(acc)))[0]]
        outs.append(acc)
    if reverse:
        outs.reverse()
    return pack([T.concat([o[j] for o in outs], axis=ax) for j in range(len(flat))])


def vectorize(pyfunc, *, excluded=None, signature=None):
    """``pyfunc`` applied elementwise over broadcast tensor arguments (a Python loop)."""
    if signature is not None:
        raise NotImplementedError("vectorize(signature=...) is not implemented in "
                                  "wsekern.nn.ops; use ops.map over the leading axis")
    excluded = set(excluded or ())

    def wrapped(*args, **kwargs):
        pos = [i for i in range(len(args)) if i not in excluded]
        ts = [as_tensor(args[i]) for i in pos]
        shape_ = np.broadcast_shapes(*[t.shape for t in ts]) if ts else ()
        ts = [T.broadcast_to(t, shape_) if t.shape != shape_ else t for t in ts]
        outs = []
        for ix in np.ndindex(*shape_):
            call = list(args)
            for i, t in zip(pos, ts):
                call[i] = T.getitem(t, ix)
            outs.append(as_tensor(pyfunc(*call, **kwargs)))
        if not outs:
            return Tensor(np.zeros(shape_, dtype=FLOATX))
        return T.reshape(T.stack(outs, 0), shape_ + outs[0].shape)
    return wrapped


def _takes_upstream(fn):
    import inspect
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    p = params.get("upstream")
    if p is None:
        return False
    # ``grad(upstream)`` alone takes it positionally; ``grad(x, upstream=None)`` and
    # ``grad(*args, upstream=None)`` are written for Keras's keyword call
    return p.kind == inspect.Parameter.KEYWORD_ONLY or (
        p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD and list(params)[0] != "upstream")


def custom_gradient(f):
    """Decorator: ``f(*args)`` returns ``(output, grad_fn)`` and ``grad_fn`` gives the
    gradients of the Tensor arguments (one, or a tuple with one per argument).

    ``grad_fn`` is called as Keras on torch calls it, ``grad_fn(*args, upstream=g)``, when it
    has an ``upstream`` keyword after other parameters; otherwise ``grad_fn(g)``."""
    import functools

    @functools.wraps(f)
    def wrapped(*args):
        tensors = [a for a in args if isinstance(a, Tensor)]
        # f runs on detached copies: only grad_fn says how gradients flow
        detached = [Tensor(a.data) if isinstance(a, Tensor) else a for a in args]
        out, grad_fn = f(*detached)
        out = as_tensor(out)

        def backward(g):
            # Keras on torch calls grad_fn(*inputs, upstream=g); one written for that (its
            # upstream keyword-only, or its *args read as the inputs) gets the same call here
            if _takes_upstream(grad_fn):
                grads = grad_fn(*detached, upstream=Tensor(g))
            else:
                grads = grad_fn(Tensor(g))
            grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
            if len(grads) != len(tensors):
                raise ValueError(f"custom_gradient: the gradient function returned "
                                 f"{len(grads)} gradients for {len(tensors)} tensor "
                                 "arguments")
            for t, gt in zip(tensors, grads):
                if gt is not None:
                    gt = np.asarray(as_tensor(gt).data)
                    t.accumulate(np.broadcast_to(gt, t.shape).astype(t.dtype, copy=False))
        return Tensor(out.data, parents=tuple(tensors), backward=backward)
    return wrapped


# -- neural-network ops ----------------------------------------------------------------------------
def celu(x, alpha=1.0):
    return _act.celu(_float(x), alpha)


def glu(x, axis=-1):
    a, b = split(x, 2, axis)
    return multiply(a, sigmoid(b))


def hard_tanh(x):
    x = as_tensor(x)
    if x.dtype.kind in "iu":                 # Keras on torch keeps integer dtypes
        return _const(np.clip(x.data, -1, 1).astype(x.dtype))
    return _act._hard_tanh(_float(x), -1.0, 1.0)       # torch's: 0 at the bounds


def hard_shrink(x, threshold=0.5):
    x = _float(x)
    # NaN stays NaN (as torch's hardshrink, Keras's oracle here), not a silent 0
    return T.where((np.abs(x.data) > threshold) | np.isnan(x.data), x, T.lift(0.0, x))


def soft_shrink(x, threshold=0.5):
    x = _float(x)
    zero = T.lift(0.0, x)
    return T.where((x.data > threshold) | np.isnan(x.data), subtract(x, threshold),
                   T.where(x.data < -threshold, add(x, threshold), zero))


def tanh_shrink(x):
    x = _float(x)
    return subtract(x, tanh(x))


def sparse_plus(x):
    """0 below -1, x above 1, (x + 1)**2 / 4 between."""
    x = _float(x)
    mid = multiply(square(add(x, 1.0)), 0.25)
    return T.where(x.data <= -1, T.lift(0.0, x), T.where(x.data >= 1, x, mid))


def sparse_sigmoid(x):
    """0 below -1, 1 above 1, (x + 1) / 2 between; Keras's where: the gradient is 0 at
    the bounds and 1/2 at NaN."""
    x = _float(x)
    v = x.data
    flat = (v <= -1) | (v >= 1)
    return _act._elementwise(x, np.where(v <= -1, 0, np.where(v >= 1, 1, 0.5 * (v + 1))),
                             np.where(flat, 0.0, 0.5), flat=flat)


def squareplus(x, b=4):
    x = _float(x)
    return multiply(add(x, sqrt(add(square(x), float(b)))), 0.5)


def threshold(x, threshold, default_value):
    x = as_tensor(x)
    return T.where(x.data > threshold, x, T.lift(default_value, x))


def sparsemax(x, axis=-1):
    """The Euclidean projection of ``x`` onto the simplex along ``axis`` (Martins and
    Astudillo 2016), with its gradient."""
    x = _float(x)
    ax = _axis(axis, x.ndim)
    z = np.moveaxis(x.data, ax, -1)
    zs = -np.sort(-z, axis=-1)
    k = np.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    cums = np.cumsum(zs, -1)
    support = 1 + k * zs > cums
    kz = support.sum(-1, keepdims=True)
    tau = (np.take_along_axis(cums, kz - 1, -1) - 1) / kz
    p = np.maximum(z - tau, 0).astype(x.dtype, copy=False)
    out = np.moveaxis(p, -1, ax)

    def backward(g):
        gm = np.moveaxis(g, ax, -1)
        s = (p > 0).astype(p.dtype)
        v = (gm * s).sum(-1, keepdims=True) / s.sum(-1, keepdims=True)
        x.accumulate(np.moveaxis(s * (gm - v), -1, ax).astype(x.dtype, copy=False))
    return Tensor(out, parents=(x,), backward=backward)


def psnr(x1, x2, max_val):
    """Peak signal-to-noise ratio in dB, 20 log10(max_val) - 10 log10(mse)."""
    a, b = _float_pair(x1, x2)
    if a.shape != b.shape:
        raise ValueError(f"psnr needs inputs of the same shape; received {a.shape} and "
                         f"{b.shape}")
    mse = mean(square(subtract(a, b)))
    return subtract(multiply(log10(T.lift(max_val, a)), 20.0), multiply(log10(mse), 10.0))


def in_top_k(targets, predictions, k):
    """Whether each target's prediction is at least the k-th largest (ties count, as
    Keras on torch)."""
    t = _int_indices(targets, "in_top_k")
    p = np.asarray(as_tensor(predictions).data)
    if p.ndim != 2 or t.shape != p.shape[:1]:
        raise ValueError(f"in_top_k takes targets (batch,) and predictions (batch, classes); "
                         f"received {t.shape} and {p.shape}")
    k = int(k)
    if k <= 0:
        return _const(np.zeros(t.shape, dtype=bool))
    kth = -np.sort(-p, axis=-1)[:, builtins.min(k, p.shape[-1]) - 1]
    return _const(p[np.arange(len(t)), t] >= kth)


def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """(x - mean) / sqrt(variance + epsilon) * scale + offset, the 1-D statistics laid
    along ``axis``."""
    x = _float(x)
    ax = _axis(axis, x.ndim)
    shape_ = tuple(x.shape[ax] if i == ax else 1 for i in range(x.ndim))

    def along(v):
        v = T.cast(as_tensor(v), x.dtype)
        return T.reshape(v, shape_) if v.ndim == 1 else v
    inv = divide(1.0, sqrt(add(along(variance), epsilon)))
    if scale is not None:
        inv = multiply(inv, along(scale))
    out = multiply(subtract(x, along(mean)), inv)
    return add(out, along(offset)) if offset is not None else out


def _axes_shape(x, axis):
    axes = T._axes(axis, x.ndim)
    return axes, tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))


def _param(v, x, axes, bshape):
    v = T.cast(as_tensor(v), x.dtype)
    if v.ndim != x.ndim and list(axes) != [x.ndim - 1]:
        v = T.reshape(v, bshape)
    return v


def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, **kwargs):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over ``axis`` (epsilon 1e-7 by
    default, Keras's backend epsilon)."""
    if kwargs.pop("rms_scaling", False):
        raise NotImplementedError("layer_normalization(rms_scaling=True) is deprecated in "
                                  "Keras; use ops.rms_normalization")
    if kwargs:
        raise TypeError(f"layer_normalization got unexpected arguments {sorted(kwargs)}")
    x = _float(x)
    eps = 1e-7 if epsilon is None else epsilon
    axes, bshape = _axes_shape(x, axis)
    m, v = moments(x, axes, keepdims=True)
    out = divide(subtract(x, m), sqrt(add(v, eps)))
    if gamma is not None:
        out = multiply(out, _param(gamma, x, axes, bshape))
    if beta is not None:
        out = add(out, _param(beta, x, axes, bshape))
    return out


def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    """x / sqrt(mean(x**2) + epsilon) * scale over ``axis`` (epsilon 1e-7 by default)."""
    x = _float(x)
    if x.ndim == 0:
        x = T.reshape(x, (1,))
    eps = 1e-7 if epsilon is None else epsilon
    axes, bshape = _axes_shape(x, axis)
    out = divide(x, sqrt(add(mean(square(x), axes, keepdims=True), eps)))
    return multiply(out, _param(scale, x, axes, bshape)) if scale is not None else out


def dot_product_attention(query, key, value, bias=None, mask=None, scale=None,
                          is_causal=False, flash_attention=None, attn_logits_soft_cap=None):
    """softmax(q k^T * scale + bias, masked) v for (batch, steps, heads, head_dim) inputs;
    grouped-query attention where key and value have fewer heads."""
    q, k, v = as_tensor(query), as_tensor(key), as_tensor(value)
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"dot_product_attention takes 4-D (batch, steps, heads, head_dim) "
                         f"inputs; received {q.shape}, {k.shape}, {v.shape}")
    if bias is not None and mask is not None:
        raise ValueError("dot_product_attention takes bias or mask, not both")
    if flash_attention:
        raise ValueError("flash_attention=True is not available: wsekern runs on the CPU")
    dt = np.result_type(q.dtype, k.dtype, v.dtype)
    dt = dt if dt.kind == "f" else FLOATX
    q, k, v = T.cast(q, dt), T.cast(k, dt), T.cast(v, dt)
    nq, nk = q.shape[2], k.shape[2]
    if nq != nk:
        if nk == 0 or nq % nk:
            raise ValueError(f"query heads ({nq}) must be a multiple of key heads ({nk})")
        k, v = T.repeat(k, nq // nk, axis=2), T.repeat(v, nq // nk, axis=2)
    s = float(1.0 / np.sqrt(q.shape[-1])) if scale is None else float(scale)
    logits = multiply(T.einsum("btnh,bsnh->bnts", q, k), s)          # (b, n, t, s)
    if attn_logits_soft_cap is not None:
        cap = float(attn_logits_soft_cap)
        logits = multiply(tanh(divide(logits, cap)), cap)
    if bias is not None:
        logits = add(logits, T.cast(as_tensor(bias), dt))
    keep = None
    if mask is not None:
        keep = np.asarray(as_tensor(mask).data).astype(bool)
    if is_causal:
        causal = np.tril(np.ones((q.shape[1], k.shape[1]), dtype=bool))
        keep = causal if keep is None else keep & causal
    if keep is not None:
        # Keras on torch adds a large negative number, not -inf: a fully masked row
        # gets uniform weights, never NaN
        logits = T.where(np.broadcast_to(keep, logits.shape), logits,
                         Tensor(np.asarray(-0.7 * 3.38953e38, dtype=dt)))
    weights = softmax(logits, axis=-1)
    return T.einsum("bnts,bsnh->btnh", weights, v)


def _spatial(inputs, kernel_rank_name, data_format):
    """(x as rank 4 NHWC, whether it was 1-D) for the pooling and conv ops."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f"only data_format='channels_last' is supported; received "
                         f"{data_format!r}")
    x = as_tensor(inputs)
    if x.ndim not in (3, 4):
        raise ValueError(f"{kernel_rank_name} takes (batch, *spatial, channels) inputs of "
                         f"rank 3 or 4; received shape {x.shape}")
    one_d = x.ndim == 3
    return (T.reshape(x, (x.shape[0], 1) + x.shape[1:]) if one_d else x), one_d


def _window2(v, one_d, name):
    if np.ndim(v) == 0:
        v = (int(v),) * (1 if one_d else 2)
    v = tuple(int(i) for i in v)
    if len(v) != (1 if one_d else 2) or builtins.min(v) <= 0:
        raise ValueError(f"{name} must be a positive int or one per spatial axis; "
                         f"received {v}")
    return (1,) + v if one_d else v


def _pool(inputs, pool_size, strides, padding, data_format, mode):
    from .. import conv as conv_kernels
    from .. import pool as pool_kernels
    from .layers.conv import same_pads
    x, one_d = _spatial(inputs, f"{mode}_pool", data_format)
    size_ = _window2(pool_size, one_d, "pool_size")
    stride = size_ if strides is None else _window2(strides, one_d, "strides")
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same'; received {padding!r}")
    pads = tuple((0, 0) if padding == "valid" else same_pads(n, k, s, 1)
                 for n, k, s in zip(x.shape[1:3], size_, stride))
    for n, k, p in zip(x.shape[1:3], size_, pads):
        if n + builtins.sum(p) < k:
            raise ValueError(f"pool window {size_} does not fit inputs of shape {x.shape}")
    g = conv_kernels.NhwcGeometry.of(x.shape, size_, stride, pads)
    data = np.ascontiguousarray(x.data, dtype=np.result_type(x.dtype, np.float32))
    if mode == "max":
        y, arg = pool_kernels.max_pool_nhwc(data, g)
    else:
        y = pool_kernels.avg_pool_nhwc(data, g, count_pad=False)

    def backward(grad):
        grad = np.ascontiguousarray(grad, dtype=y.dtype)
        if mode == "max":
            gx = pool_kernels.max_pool_nhwc_backward(grad, arg, g, check_arg=False)
        else:
            gx = pool_kernels.avg_pool_nhwc_backward(grad, g, count_pad=False)
        x.accumulate(gx.astype(x.dtype, copy=False))
    out = Tensor(y, parents=(x,), backward=backward)
    return T.reshape(out, (out.shape[0],) + out.shape[2:]) if one_d else out


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max pooling over 1-D or 2-D windows, channels last."""
    return _pool(inputs, pool_size, strides, padding, data_format, "max")


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling over 1-D or 2-D windows, channels last ('same' padding averages
    over the pixels inside the input, as Keras)."""
    return _pool(inputs, pool_size, strides, padding, data_format, "avg")


def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """Each input channel convolved with its own filters; kernel
    ``(*window, in, multiplier)``, output channel ``c * multiplier + m`` (Keras's order)."""
    x, k = as_tensor(inputs), as_tensor(kernel)
    if k.ndim != x.ndim or k.shape[-2] != x.shape[-1]:
        raise ValueError(f"depthwise_conv needs a kernel (*window, {x.shape[-1]}, multiplier) "
                         f"of the inputs' rank; received inputs {x.shape}, kernel {k.shape}")
    c, m = k.shape[-2:]
    k = T.reshape(k, k.shape[:-2] + (1, c * m))
    return conv(x, k, strides, padding, data_format, dilation_rate)


def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid",
                   data_format=None, dilation_rate=1):
    y = depthwise_conv(inputs, depthwise_kernel, strides, padding, data_format, dilation_rate)
    return conv(y, pointwise_kernel, 1, "valid", data_format, 1)


def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None,
                   data_format=None, dilation_rate=1):
    """Transposed convolution, 1-D or 2-D, channels last, kernel ``(*window, out, in)`` as
    keras.ops.conv_transpose; output ``n * stride`` (+ ``max(k - stride, 0)`` for 'valid')."""
    from .layers.conv import same_pads
    from .layers.conv_extra import conv2d_transpose_nhwc
    x, one_d = _spatial(inputs, "conv_transpose", data_format)
    k = as_tensor(kernel)
    if k.ndim != (3 if one_d else 4) or k.shape[-1] != x.shape[-1]:
        raise ValueError(f"conv_transpose needs a kernel (*window, out_channels, "
                         f"{x.shape[-1]}) of the inputs' rank; received inputs "
                         f"{as_tensor(inputs).shape}, kernel {k.shape}")
    if one_d:
        k = T.reshape(k, (1,) + k.shape)
    if output_padding is not None or np.any(np.asarray(dilation_rate) != 1):
        raise NotImplementedError("conv_transpose with output_padding or dilation_rate > 1 "
                                  "is not implemented in wsekern.nn.ops")
    stride = _window2(strides, one_d, "strides")
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same'; received {padding!r}")
    crops = []
    for n, kk, s in zip(x.shape[1:3], k.shape[:2], stride):
        full = (n - 1) * s + kk
        before = same_pads(n * s, kk, s, 1)[0] if padding == "same" else 0
        length = n * s if padding == "same" else n * s + builtins.max(kk - s, 0)
        crops.append((before, full - before - length))
    dt = np.result_type(x.dtype, k.dtype)
    y = conv2d_transpose_nhwc(T.cast(x, dt), T.cast(k, dt), stride, tuple(crops))
    return T.reshape(y, (y.shape[0],) + y.shape[2:]) if one_d else y


# -- linear algebra --------------------------------------------------------------------------------
def _square(x, name):
    x = _float(x)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name} needs (..., n, n) square matrices; received shape {x.shape}")
    return x


def _mT(a):
    return np.swapaxes(a, -1, -2)


def inv(x):
    x = _square(x, "inv")
    y = np.linalg.inv(x.data)
    return Tensor(y, parents=(x,), backward=lambda g: x.accumulate(-_mT(y) @ g @ _mT(y)))


def det(x):
    x = _square(x, "det")
    d = np.linalg.det(x.data)
    # d det / dA = det * A^-T (A must be invertible for this gradient)
    return Tensor(np.asarray(d), parents=(x,), backward=lambda g: x.accumulate(
        (np.asarray(g * d)[..., None, None] * _mT(np.linalg.inv(x.data))).astype(x.dtype)))


def slogdet(x):
    """(sign, log|det|); log|det| is differentiable."""
    x = _square(x, "slogdet")
    s, ld = np.linalg.slogdet(x.data)
    ld_t = Tensor(np.asarray(ld), parents=(x,), backward=lambda g: x.accumulate(
        (np.asarray(g)[..., None, None] * _mT(np.linalg.inv(x.data))).astype(x.dtype)))
    return _const(np.asarray(s)), ld_t


def logdet(x):
    """log(det(x)): NaN for a negative determinant, -inf for a singular matrix (torch's)."""
    s, ld = slogdet(x)
    if s.dtype.kind == "c":         # complex: log|det| + i arg(det), as Keras on torch
        _no_complex_grad("logdet", as_tensor(x))
        return _const((np.log(s.data) + ld.data).astype(s.dtype))
    return T.where(s.data < 0, Tensor(np.asarray(np.nan, dtype=ld.dtype)), ld)


def solve(a, b):
    """x with a @ x = b; ``b`` (..., n, k) or a vector (..., n)."""
    a = _square(a, "solve")
    b = T.cast(as_tensor(b), a.dtype)
    vec = b.ndim == a.ndim - 1
    bm = b.data[..., None] if vec else b.data
    xm = np.linalg.solve(a.data, bm)

    def backward(g):
        gm = g[..., None] if vec else g
        gb = np.linalg.solve(_mT(a.data), gm)
        if a.requires_grad:
            a.accumulate(T._unbroadcast(-gb @ _mT(xm), a.shape))
        if b.requires_grad:
            b.accumulate(T._unbroadcast(gb[..., 0] if vec else gb, b.shape))
    return Tensor(xm[..., 0] if vec else xm, parents=(a, b), backward=backward)


def _tri(a, lower):
    return np.tril(a) if lower else np.triu(a)


def solve_triangular(a, b, lower=False):
    """x with a @ x = b, reading only the lower (or upper) triangle of ``a``."""
    a = _square(a, "solve_triangular")
    b = T.cast(as_tensor(b), a.dtype)
    vec = b.ndim == a.ndim - 1
    t = _tri(a.data, lower)
    bm = b.data[..., None] if vec else b.data
    xm = np.linalg.solve(t, bm)

    def backward(g):
        gm = g[..., None] if vec else g
        gb = np.linalg.solve(_mT(t), gm)
        if a.requires_grad:
            a.accumulate(T._unbroadcast(_tri(-gb @ _mT(xm), lower), a.shape))
        if b.requires_grad:
            b.accumulate(T._unbroadcast(gb[..., 0] if vec else gb, b.shape))
    return Tensor(xm[..., 0] if vec else xm, parents=(a, b), backward=backward)


def cholesky(x, upper=False):
    """The Cholesky factor L (x = L L^T, from x's lower triangle), or L^T when ``upper``;
    a matrix that is not positive definite is an error."""
    x = _square(x, "cholesky")
    try:
        L = np.linalg.cholesky(x.data)
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"cholesky: the matrix is not positive definite ({exc})") from None

    def backward(gl):
        # Murray 2016: S = L^-T Phi(L^T gL) L^-1, Phi keeps the lower triangle and halves
        # the diagonal; the gradient reads only the lower triangle of x
        P = np.tril(_mT(L) @ gl)
        P = P - 0.5 * np.eye(L.shape[-1], dtype=L.dtype) * P
        Linv = np.linalg.inv(L)
        S = _mT(Linv) @ P @ Linv
        x.accumulate(np.tril(S + _mT(S)) - np.eye(L.shape[-1], dtype=L.dtype) * S)
    out = Tensor(L, parents=(x,), backward=backward)
    return Tensor(_mT(L).copy(), parents=(out,), backward=lambda g: out.accumulate(_mT(g))) \
        if upper else out


def cholesky_inverse(x, upper=False):
    """The inverse of L L^T (or U^T U when ``upper``) from its Cholesky factor."""
    f = _square(x, "cholesky_inverse")
    # only the factor's triangle is read, as torch.cholesky_inverse; complex: L L^H
    f = triu(f) if upper else tril(f)
    ft = transpose(f, tuple(range(f.ndim - 2)) + (f.ndim - 1, f.ndim - 2))
    if ft.dtype.kind == "c":
        ft = conjugate(ft)
    return inv(matmul(ft, f) if upper else matmul(f, ft))


def eigh(x):
    """(eigenvalues ascending, eigenvectors) of symmetric matrices, from the lower
    triangle; differentiable where the eigenvalues are distinct."""
    x = _square(x, "eigh")
    w, V = np.linalg.eigh(x.data)
    n = w.shape[-1]
    eye_ = np.eye(n, dtype=V.dtype)

    def to_x(inner_):
        # dA = V inner V^T, symmetrised, then folded onto the lower triangle eigh reads
        G = V @ inner_ @ _mT(V)
        G = 0.5 * (G + _mT(G))
        x.accumulate(np.tril(G + _mT(G)) - eye_ * G)

    def back_w(g):          # the two outputs' parts are linear: each adds its own
        to_x(np.asarray(g)[..., :, None] * eye_)

    def back_v(g):
        with np.errstate(divide="ignore"):
            F = 1.0 / (w[..., None, :] - w[..., :, None])
        F[..., np.arange(n), np.arange(n)] = 0
        to_x(F * (_mT(V) @ g))
    return Tensor(w, parents=(x,), backward=back_w), Tensor(V, parents=(x,), backward=back_v)


def svd(x, full_matrices=True, compute_uv=True):
    """(u, s, vh), or s alone with ``compute_uv=False``; the singular values are
    differentiable (dA = U diag(gs) V^T), the singular vectors are not."""
    x = _float(x)
    if x.ndim < 2:
        raise ValueError(f"svd needs (..., m, n) matrices; received shape {x.shape}")
    if not compute_uv:
        u, s, vh = np.linalg.svd(x.data, full_matrices=False)
        return Tensor(s, parents=(x,), backward=lambda g: x.accumulate(
            (u * np.asarray(g)[..., None, :]) @ vh))
    u, s, vh = np.linalg.svd(x.data, full_matrices=full_matrices)
    k = s.shape[-1]
    s_t = Tensor(s, parents=(x,), backward=lambda g: x.accumulate(
        (u[..., :, :k] * np.asarray(g)[..., None, :]) @ vh[..., :k, :]))
    return _no_grad("svd (singular vectors)", u, x), s_t, \
        _no_grad("svd (singular vectors)", vh, x)


def qr(x, mode="reduced"):
    x = _float(x)
    if mode not in ("reduced", "complete"):
        raise ValueError(f"qr mode must be 'reduced' or 'complete'; received {mode!r}")
    q, r = np.linalg.qr(x.data, mode=mode)
    return _no_grad("qr", q, x), _no_grad("qr", r, x)


def lstsq(a, b, rcond=None):
    a, b = _float(a), _float(b)
    if a.ndim != 2 or b.ndim not in (1, 2):
        raise ValueError(f"lstsq takes a 2-D a and a 1-D or 2-D b; received {a.shape} and "
                         f"{b.shape}")
    sol = np.linalg.lstsq(a.data, b.data.astype(a.dtype), rcond=rcond)[0]
    return _no_grad("lstsq", sol, a, b)


def pinv(x, rcond=None):
    x = _float(x)
    out = np.linalg.pinv(x.data) if rcond is None else np.linalg.pinv(x.data, rcond=rcond)
    return _no_grad("pinv", out, x)


def matrix_rank(x, tol=None):
    return _const(np.asarray(np.linalg.matrix_rank(_float(x).data, tol=tol), dtype=np.int32))


def lu_factor(x):
    """(LU, pivots) of a square matrix, as scipy.linalg.lu_factor (pivots 0-based int32)."""
    import scipy.linalg
    x = _square(x, "lu_factor")
    if x.ndim != 2:
        lus, pivs = zip(*[scipy.linalg.lu_factor(m) for m in x.data.reshape(
            (-1,) + x.shape[-2:])])
        return (_no_grad("lu_factor", np.stack(lus).reshape(x.shape), x),
                _const(np.stack(pivs).astype(np.int32).reshape(x.shape[:-1])))
    lu, piv = scipy.linalg.lu_factor(x.data)
    return _no_grad("lu_factor", lu, x), _const(piv.astype(np.int32))


# -- CTC (keras.ops.ctc_loss / ctc_decode, as Keras on torch) ---------------------------------
def _lengths(v, n, name, upper):
    v = _int_indices(v, name).reshape(-1)
    if v.shape != (n,):
        raise ValueError(f"{name} must hold one length per batch entry ({n}); received "
                         f"shape {v.shape}")
    if v.size and (v.min() < 0 or v.max() > upper):
        raise ValueError(f"{name} must lie in [0, {upper}]; received {v.tolist()}")
    return v.astype(np.int64)


def _ctc_nll(lp, target, tlen, olen, blank):
    """-log p(target | lp) per batch entry from log-probabilities ``lp`` (B, T, C), by the
    alpha-beta recursions in log space; an impossible alignment gives +inf and no gradient
    (Keras on torch: inf and NaN gradients)."""
    B, Tm, C = lp.shape
    S = target.shape[1]
    Sp = 2 * S + 1
    ext = np.full((B, Sp), blank, dtype=np.int64)          # blank, l1, blank, l2, ..., blank
    ext[:, 1::2] = target
    pos = np.arange(Sp)
    ext = np.where(pos[None, :] < 2 * tlen[:, None] + 1, ext, blank)
    skip = np.zeros((B, Sp), dtype=bool)                  # s may come from s - 2
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    ninf = -np.inf
    no_skip = np.where(skip, 0.0, ninf)                   # added to the s - 2 term
    lpd = lp.data.astype(np.float64)
    em = np.take_along_axis(lpd, np.broadcast_to(ext[:, None, :], (B, Tm, Sp)), axis=2)
    # alpha with two -inf columns in front: alpha(s - 1) and alpha(s - 2) are views of it
    apad = np.full((B, Tm, Sp + 2), ninf)
    alpha = apad[:, :, 2:]
    with np.errstate(invalid="ignore", divide="ignore"):
        if Tm:
            alpha[:, 0, 0] = em[:, 0, 0]
            if Sp > 1:
                alpha[:, 0, 1] = np.where(tlen > 0, em[:, 0, 1], ninf)
        for t in range(1, Tm):
            prev = apad[:, t - 1]
            np.logaddexp(np.logaddexp(prev[:, 2:], prev[:, 1:-1]), prev[:, :-2] + no_skip,
                         out=alpha[:, t])
            alpha[:, t] += em[:, t]
        last = np.maximum(olen - 1, 0)
        rows = np.arange(B)
        a_end = alpha[rows, last] if Tm else np.full((B, Sp), ninf)      # last frames
        end = 2 * tlen
        ll = np.logaddexp(a_end[rows, end],
                          np.where(tlen > 0, a_end[rows, np.maximum(end - 1, 0)], ninf))
        ll = np.where(olen == 0, np.where(tlen == 0, 0.0, ninf), ll)
    loss = -ll

    def backward(g):
        # beta with two -inf columns behind: beta(s + 1) and beta(s + 2) are views of it
        bpad = np.full((B, Tm, Sp + 2), ninf)
        beta = bpad[:, :, :Sp]
        no_skip2 = np.full((B, Sp), ninf)                 # s + 2 may be reached from s
        no_skip2[:, :-2] = no_skip[:, 2:]
        end1 = np.maximum(end - 1, 0)
        has_label = tlen > 0
        # the rows whose last frame is t, and those t is at or beyond the last frame of
        starts_at = {int(t): np.flatnonzero(olen - 1 == t) for t in np.unique(olen - 1)}
        done = np.arange(Tm)[:, None] >= (olen - 1)[None, :]               # (Tm, B)
        any_done = done.any(axis=1)
        no_rows = np.zeros(0, dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            for t in range(Tm - 1, -1, -1):
                if t + 1 < Tm:
                    nxt = bpad[:, t + 1]
                    np.logaddexp(np.logaddexp(nxt[:, :Sp], nxt[:, 1:Sp + 1]),
                                 nxt[:, 2:] + no_skip2, out=beta[:, t])
                    beta[:, t] += em[:, t]
                    if any_done[t]:
                        beta[done[t], t] = ninf            # at or beyond a row's end
                starts = starts_at.get(t, no_rows)         # a row's last frame
                if starts.size:
                    init = np.full((starts.size, Sp), ninf)
                    r, e, e1 = starts, end[starts], end1[starts]
                    init[np.arange(r.size), e] = em[r, t, e]
                    init[np.arange(r.size), e1] = np.where(has_label[r], em[r, t, e1],
                                                           init[np.arange(r.size), 0])
                    beta[r, t] = init
            # occupation of each extended state, over p: exp(alpha + beta - em - log p)
            occ = np.exp(alpha + beta - em + loss[:, None, None])
        occ = np.where(np.isfinite(loss)[:, None, None], np.nan_to_num(occ), 0.0)
        # sum the states of each label: a batched product with the states' one-hot labels
        onehot = np.zeros((B, Sp, C))
        np.put_along_axis(onehot, ext[:, :, None], 1.0, axis=2)
        grad = -np.matmul(occ, onehot)
        gs = np.where(np.isfinite(loss), np.asarray(g, dtype=np.float64), 0.0)
        lp.accumulate((grad * gs[:, None, None]).astype(lp.dtype))
    return Tensor(loss.astype(lp.dtype), parents=(lp,), backward=backward)


def ctc_loss(target, output, target_length, output_length, mask_index=0):
    """Connectionist temporal classification loss per batch entry, as Keras on torch.

    ``output``: logits (batch, time, classes) (a log-softmax is applied); ``target``: padded
    labels (batch, max_label_length), only the first ``target_length`` of each row read;
    ``mask_index``: the blank class. An alignment that cannot exist (labels longer than the
    frames allow) gives +inf, as Keras, with a zero gradient where Keras on torch gives NaN.
    The loss is float32 for every input dtype, as Keras's (a float64 input is computed, and
    differentiated, in float64 and its loss rounded to float32).
    """
    x = as_tensor(output)
    if x.dtype.kind != "f" or x.dtype.itemsize < 4:
        x = T.cast(x, FLOATX)
    if x.ndim != 3:
        raise ValueError(f"ctc_loss: output must be logits of shape (batch, time, classes); "
                         f"received shape {x.shape}")
    B, Tm, C = x.shape
    tgt = _int_indices(target, "ctc_loss target")
    if tgt.ndim != 2 or tgt.shape[0] != B:
        raise ValueError(f"ctc_loss: target must be (batch, max_label_length) labels with "
                         f"batch {B}; received shape {tgt.shape}")
    blank = int(mask_index)
    if not 0 <= blank < C:
        raise ValueError(f"ctc_loss: mask_index must be a class in [0, {C}); received {blank}")
    tlen = _lengths(target_length, B, "ctc_loss target_length", tgt.shape[1])
    olen = _lengths(output_length, B, "ctc_loss output_length", Tm)
    used = np.arange(tgt.shape[1])[None, :] < tlen[:, None]
    bad = used & ((tgt < 0) | (tgt >= C) | (tgt == blank))
    if bad.any():
        b, s = np.argwhere(bad)[0]
        raise ValueError(f"ctc_loss: target[{b}, {s}] = {int(tgt[b, s])} is not a label: "
                         f"labels lie in [0, {C}) and differ from mask_index={blank} (the "
                         "blank) within target_length")
    loss = _ctc_nll(T.log_softmax(x, axis=-1), np.where(used, tgt, 0).astype(np.int64),
                    tlen, olen, blank)
    return T.cast(loss, FLOATX)


def _unique_padded(paths, size, pad):
    """The rows of ``paths`` once each (in the order of a polynomial hash, as Keras on
    torch, whose tie-breaking depends on it), padded with ``pad`` rows to ``size``, and
    each row's index among them."""
    n, t = paths.shape
    mod = 1 << 64
    powers = [pow(2654435769, i, mod) for i in range(t)]
    powers = np.array([p - mod if p >= 1 << 63 else p for p in powers], dtype=np.int64)
    with np.errstate(over="ignore"):
        hashes = ((paths.astype(np.int64) + 1) * powers).sum(axis=1)
    order = np.argsort(hashes, kind="stable")
    sp, sh = paths[order], hashes[order]
    dup = (sh[1:] == sh[:-1]) & (sp[1:] == sp[:-1]).all(axis=1)
    first = np.concatenate([[True], ~dup])
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    unique = sp[first]
    if unique.shape[0] < size:
        unique = np.concatenate([unique, np.full((size - unique.shape[0], t), pad,
                                                 dtype=unique.dtype)])
    return unique, inverse


def _merge_scores(inverse, scores, n):
    with np.errstate(invalid="ignore", divide="ignore"):
        top = scores.max()
        out = np.zeros(n, dtype=scores.dtype)
        np.add.at(out, inverse, np.exp(scores - top))
        return np.log(out) + top


# ctc_decode's beam search: one step's candidate paths above this many bytes are refused
_BEAM_STEP_LIMIT = 4 * 2**30


def _ctc_beam(x, seq_len, beam_width, top_paths, mask_index):
    """Keras's beam search (a port of its JAX/torch code: the same tie-breaking)."""
    B, Tm, C = x.shape
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        lp = x - x.max(axis=-1, keepdims=True)
        lp = (lp - np.log(np.exp(lp).sum(axis=-1, keepdims=True))).astype(x.dtype)
    lp = lp[:, :, ::-1]
    mask_index = C - mask_index - 1
    pad = -1
    n_init = builtins.min(C, beam_width)
    all_paths, all_scores = [], []
    for b in range(B):
        xb = lp[b]
        paths = np.full((2 * beam_width, Tm), pad, dtype=np.int32)
        best = np.argsort(xb[0], kind="stable")[-n_init:]
        paths[:n_init, 0] = np.where(best == mask_index, pad, best)
        scores = np.full(2 * beam_width, -np.inf, dtype=xb.dtype)
        scores[:n_init] = xb[0, best]
        masked = paths[:, 0] == pad
        for t in range(1, int(seq_len[b])):
            # extend every beam by every class
            paths = np.repeat(paths, C, axis=0)
            scores = np.repeat(scores, C)
            prev_masked = np.repeat(masked, C)
            tail = np.argmax(paths == pad, axis=1)
            rows = np.arange(paths.shape[0])
            tails = np.where(tail == 0, pad, paths[rows, tail - 1])
            classes = np.arange(C, dtype=paths.dtype)
            classes[mask_index] = pad
            classes = np.tile(classes, paths.shape[0] // C)
            masked = classes == pad
            classes = np.where(~prev_masked & (tails == classes), pad, classes)
            paths[rows, tail] = classes
            scores = scores + np.tile(xb[t], paths.shape[0] // C)
            # merge equal paths, keep the best beam_width (emit, blank) tracks
            uniq, inv = _unique_padded(paths, 2 * C * beam_width, pad)
            emit = _merge_scores(inv, np.where(masked, -np.inf, scores), uniq.shape[0])
            blank_ = _merge_scores(inv, np.where(masked, scores, -np.inf), uniq.shape[0])
            with np.errstate(invalid="ignore"):
                total = np.logaddexp(emit, blank_)
            top = np.argsort(total, kind="stable")[-beam_width:]
            paths = np.tile(uniq[top], (2, 1))
            scores = np.concatenate([emit[top], blank_[top]])
            masked = np.concatenate([np.zeros(beam_width, bool), np.ones(beam_width, bool)])
        uniq, inv = _unique_padded(paths, 2 * C * beam_width, pad)
        merged = _merge_scores(inv, scores, uniq.shape[0])
        top = np.argsort(merged, kind="stable")[-top_paths:][::-1]
        all_paths.append(uniq[top])
        all_scores.append(merged[top])
    paths = np.stack(all_paths) if B else np.zeros((0, top_paths, Tm), np.int32)
    scores = np.stack(all_scores) if B else np.zeros((0, top_paths), x.dtype)
    paths = np.where(paths == pad, pad, C - paths - 1).astype(np.int32)
    return np.transpose(paths, (1, 0, 2)), scores


def ctc_decode(inputs, sequence_lengths, strategy="greedy", beam_width=100, top_paths=1,
               merge_repeated=True, mask_index=0):
    """Decoded label sequences, as Keras on torch: ``(paths, scores)`` with paths of shape
    (top_paths, batch, time) padded with -1 (greedy: top_paths 1) and scores (batch,
    top_paths), float32 as Keras's: greedy gives minus the sum of the best logit per frame,
    beam search the log-probabilities of the paths. No gradient."""
    x = T.cast(as_tensor(inputs), FLOATX)
    if x.ndim != 3:
        raise ValueError(f"ctc_decode: inputs must be (batch, time, classes); received shape "
                         f"{x.shape}")
    B, Tm, C = x.shape
    seq = _lengths(sequence_lengths, B, "ctc_decode sequence_lengths", Tm)
    mask_index = C - 1 if mask_index is None else int(mask_index)
    if not 0 <= mask_index < C:
        raise ValueError(f"ctc_decode: mask_index must be a class in [0, {C}); received "
                         f"{mask_index}")
    data = x.data
    if strategy == "greedy":
        idx = np.argmax(data, axis=-1).astype(np.int32) if C else np.zeros((B, Tm), np.int32)
        best = np.max(data, axis=-1) if C else np.zeros((B, Tm), data.dtype)
        beyond = np.arange(Tm)[None, :] >= seq[:, None]
        idx = np.where(beyond, mask_index, idx)
        best = np.where(beyond, 0, best).astype(data.dtype)
        if merge_repeated and Tm:
            rep = np.zeros_like(beyond)
            rep[:, 1:] = idx[:, 1:] == idx[:, :-1]
            idx = np.where(rep, mask_index, idx)
        blank = idx == mask_index
        idx = np.where(blank, -1, idx).astype(np.int32)
        order = np.argsort(np.where(blank, Tm, np.arange(Tm)[None, :]), axis=-1, kind="stable")
        idx = np.take_along_axis(idx, order, axis=-1)
        return _const(idx[None]), _const(-best.sum(axis=1, keepdims=True))
    if strategy == "beam_search":
        if int(beam_width) < 1 or int(top_paths) < 1 or int(top_paths) > int(beam_width):
            raise ValueError(f"ctc_decode: need 1 <= top_paths <= beam_width; received "
                             f"top_paths={top_paths}, beam_width={beam_width}")
        if Tm == 0:
            raise ValueError("ctc_decode: beam search needs at least one time step; "
                             f"received inputs of shape {x.shape}")
        # each step extends 2 x beam_width tracks by every class: that many paths of Tm
        # int32 steps, their int64 hashes and sort order (about 24 bytes per path entry)
        step_bytes = 2 * int(beam_width) * builtins.max(C, 1) * Tm * 24
        if step_bytes > _BEAM_STEP_LIMIT:
            raise ValueError(
                f"ctc_decode: beam search with beam_width={beam_width} over {C} classes and "
                f"{Tm} time steps extends {2 * int(beam_width) * C} paths per step, "
                f"~{step_bytes / 2**30:.1f} GiB (limit {_BEAM_STEP_LIMIT / 2**30:.0f} GiB); "
                f"use a smaller beam_width")
        paths, scores = _ctc_beam(data, seq, int(beam_width), int(top_paths), mask_index)
        return _const(paths), _const(scores)
    raise ValueError(f"Invalid strategy {strategy}. Supported values are 'greedy' and "
                     "'beam_search'.")



# -- Fourier transforms on (real, imag) pairs (keras.ops.fft ...; as Keras on torch) ---------
def _complex_pair(x, name):
    """(real, imag) Tensors of one floating dtype, as Keras's fft ops take them."""
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise ValueError(f"{name}: x must be a tuple of two tensors, the real and imaginary "
                         f"parts; received {type(x).__name__}")
    re, im = as_tensor(x[0]), as_tensor(x[1])
    if re.shape != im.shape:
        raise ValueError(f"{name}: the real and imaginary parts must have the same shape; "
                         f"received {re.shape} and {im.shape}")
    if re.dtype.kind != "f" or im.dtype.kind != "f":
        raise ValueError(f"{name}: both parts must be floating tensors; received "
                         f"{re.dtype} and {im.dtype}")
    dt = np.result_type(re.dtype, im.dtype, np.float32)
    return T.cast(re, dt), T.cast(im, dt)


def _linear_complex(parts, forward, adjoint, real_out=False):
    """The outputs of a linear map of ``z = re + i im`` (``parts``: (re, im), or (x,) for a
    real input). Its backward is the adjoint: ``adjoint(G)`` maps an output gradient
    ``G = g_re + i g_im`` to the input's ``g_re + i g_im`` (real part only for a real
    input). Each output part is its own node; the map is linear, so their adjoints add."""
    dt = parts[0].dtype
    z = parts[0].data if len(parts) == 1 else parts[0].data + 1j * parts[1].data
    y = forward(z)

    def node(value, unit):
        def backward(g):
            gin = adjoint(unit * np.asarray(g, dtype=np.float64))
            parts[0].accumulate(np.ascontiguousarray(np.real(gin)).astype(dt))
            if len(parts) == 2:
                parts[1].accumulate(np.ascontiguousarray(np.imag(gin)).astype(dt))
        return Tensor(np.ascontiguousarray(value).astype(dt), parents=tuple(parts),
                      backward=backward)
    if real_out:
        return node(np.real(y), 1.0)
    return node(np.real(y), 1.0), node(np.imag(y), 1j)


def fft(x):
    """FFT along the last axis of ``x = (real, imag)``; returns (real, imag)."""
    re, im = _complex_pair(x, "fft")
    if re.ndim == 0:
        raise ValueError("fft needs tensors of rank >= 1; received scalars")
    n = re.shape[-1]
    return _linear_complex((re, im), lambda z: np.fft.fft(z, axis=-1),
                           lambda G: np.fft.ifft(G, axis=-1) * n)


def fft2(x):
    """2-D FFT over the last two axes of ``x = (real, imag)``; returns (real, imag)."""
    re, im = _complex_pair(x, "fft2")
    if re.ndim < 2:
        raise ValueError(f"fft2 needs tensors of rank >= 2; received shape {re.shape}")
    n = re.shape[-1] * re.shape[-2]
    return _linear_complex((re, im), lambda z: np.fft.fft2(z, axes=(-2, -1)),
                           lambda G: np.fft.ifft2(G, axes=(-2, -1)) * n)


def ifft2(x):
    """Inverse 2-D FFT over the last two axes of ``x = (real, imag)``."""
    re, im = _complex_pair(x, "ifft2")
    if re.ndim < 2:
        raise ValueError(f"ifft2 needs tensors of rank >= 2; received shape {re.shape}")
    n = re.shape[-1] * re.shape[-2]
    return _linear_complex((re, im), lambda z: np.fft.ifft2(z, axes=(-2, -1)),
                           lambda G: np.fft.fft2(G, axes=(-2, -1)) / builtins.max(n, 1))


def _fit_last(a, n):
    """``a`` cut or zero-padded to length ``n`` on its last axis (and its adjoint)."""
    m = a.shape[-1]
    if m >= n:
        return a[..., :n]
    return np.concatenate([a, np.zeros(a.shape[:-1] + (n - m,), dtype=a.dtype)], axis=-1)


# an absurd length would end in NumPy's MemoryError (or swapping) after the allocation is
# tried; refuse it first, naming the argument. The estimate is the output's own size
# (NumPy's FFTs keep float32 as complex64), so a call Keras runs is not refused
_FFT_LIMIT = 4 * 2**30


def _fft_budget(rows, samples, itemsize, name, what, value, default=None, hint=None):
    rows = builtins.max(int(rows), 1)
    need = int(itemsize) * rows * int(samples)
    if need > _FFT_LIMIT:
        given = (f"{what}={value}" if value is not None
                 else f"{what}=None (the input's last axis, {default})")
        raise ValueError(f"{name}: {given} asks for {rows} x {samples} output samples, "
                         f"~{need / 2**30:.1f} GiB (limit {_FFT_LIMIT / 2**30:.0f} GiB); "
                         + (hint or f"use a smaller {what} or fewer rows at a time"))


def _fft_length(fft_length, default, name):
    n = default if fft_length is None else int(fft_length)
    if n < 1:
        raise ValueError(f"{name}: fft_length must be >= 1; received {fft_length}"
                         + (f" (the default from the input's last axis is {n})"
                            if fft_length is None else ""))
    return n


def rfft(x, fft_length=None):
    """FFT of the real ``x`` along its last axis (cut or zero-padded to ``fft_length``):
    the ``fft_length // 2 + 1`` non-negative frequencies as (real, imag)."""
    x = as_tensor(x)
    if x.dtype.kind != "f":
        x = T.cast(x, FLOATX)
    if x.ndim == 0:
        raise ValueError("rfft needs a tensor of rank >= 1; received a scalar")
    m = x.shape[-1]
    n = _fft_length(fft_length, m, "rfft")
    k = n // 2 + 1
    # the spectrum: k complex values a row (complex64 for float32), as the (re, im) pair
    _fft_budget(np.prod(x.shape[:-1]), k, np.result_type(x.dtype, np.complex64).itemsize,
                "rfft", "fft_length", fft_length, m)

    def adjoint(G):
        full = np.zeros(G.shape[:-1] + (n,), dtype=np.complex128)
        full[..., :k] = G
        return _fit_last(np.fft.ifft(full, axis=-1) * n, m)
    return _linear_complex((x,), lambda z: np.fft.rfft(z, n=n, axis=-1), adjoint)


def irfft(x, fft_length=None):
    """Real inverse FFT of the half spectrum ``x = (real, imag)`` along the last axis; the
    output has ``fft_length`` samples (default 2 * (bins - 1))."""
    re, im = _complex_pair(x, "irfft")
    if re.ndim == 0:
        raise ValueError("irfft needs tensors of rank >= 1; received scalars")
    m = re.shape[-1]
    n = _fft_length(fft_length, 2 * (m - 1), "irfft")
    k = n // 2 + 1
    _fft_budget(np.prod(re.shape[:-1]), n, np.result_type(re.dtype, np.float32).itemsize,
                "irfft", "fft_length", fft_length, 2 * (m - 1))
    # bins 1..ceil(n/2)-1 appear twice in the real signal (with their conjugates)
    weight = np.full(k, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0

    def adjoint(g):
        G = np.fft.rfft(np.real(g), n=n, axis=-1) * weight / n
        # irfft reads only the real part of bin 0 (and of bin n/2 for even n)
        G = np.real(G) + 1j * np.imag(G) * (weight != 1.0)
        return _fit_last(G, m)
    return _linear_complex((re, im), lambda z: np.fft.irfft(z, n=n, axis=-1), adjoint,
                           real_out=True)


def _stft_window(window, sequence_length, dtype, name):
    if window is None:
        return None
    if isinstance(window, str):
        if window not in ("hann", "hamming"):
            raise ValueError(f'If a string is passed to `window`, it must be one of "hann", '
                             f'"hamming". Received: window={window}')
        a = 0.5 if window == "hann" else 0.54        # periodic, as torch's windows
        n = np.arange(sequence_length)
        return Tensor((a - (1 - a) * np.cos(2 * np.pi * n / sequence_length)).astype(dtype))
    win = T.cast(as_tensor(window), dtype)
    if win.shape != (sequence_length,):
        raise ValueError(f"{name}: the shape of `window` must be equal to [sequence_length] "
                         f"= [{sequence_length}]; received window shape {win.shape}")
    return win


def _overlap_add(frames, hop):
    """Frames (..., n, L) summed at offsets 0, hop, 2 hop, ... into (..., hop (n-1) + L)."""
    n, L = frames.shape[-2:]
    total = hop * (n - 1) + L if n else 0
    idx = np.arange(n)[:, None] * hop + np.arange(L)[None, :]
    out = np.zeros(frames.shape[:-2] + (total,), dtype=frames.dtype)
    for j in range(n):
        out[..., j * hop:j * hop + L] += frames.data[..., j, :]

    def backward(g):
        frames.accumulate(np.asarray(g)[..., idx].astype(frames.dtype, copy=False))
    return Tensor(out, parents=(frames,), backward=backward)


def _check_stft_sizes(sequence_length, sequence_stride, fft_length, name):
    for v, what in ((sequence_length, "sequence_length"), (sequence_stride, "sequence_stride"),
                    (fft_length, "fft_length")):
        if int(v) < 1:
            raise ValueError(f"{name}: {what} must be >= 1; received {v}")
    if fft_length < sequence_length:
        raise ValueError(f"{name}: `fft_length` must equal or larger than `sequence_length`. "
                         f"Received: sequence_length={sequence_length}, "
                         f"fft_length={fft_length}")


def stft(x, sequence_length, sequence_stride, fft_length, window="hann", center=True):
    """Short-time Fourier transform of the real ``x`` along its last axis, as Keras on torch
    (torch.stft: reflect padding by ``fft_length // 2`` when ``center``, the window centred
    in each ``fft_length`` frame): (real, imag) of shape (..., frames, fft_length // 2 + 1).
    """
    x = as_tensor(x)
    if x.dtype.name not in ("float32", "float64"):
        raise TypeError(f"Invalid input type. Expected `float32` or `float64`. Received: "
                        f"input type={x.dtype}")
    sequence_length, sequence_stride = int(sequence_length), int(sequence_stride)
    fft_length = int(fft_length)
    _check_stft_sizes(sequence_length, sequence_stride, fft_length, "stft")
    win = _stft_window(window, sequence_length, x.dtype, "stft")
    if win is None:                    # torch.stft's default: ones over sequence_length
        win = Tensor(np.ones(sequence_length, dtype=x.dtype))
    if x.ndim == 0:
        raise ValueError("stft needs a tensor of rank >= 1; received a scalar")
    n = x.shape[-1]
    if center:
        p = fft_length // 2
        if p >= n:
            raise ValueError(f"stft: center=True reflects fft_length // 2 = {p} samples at "
                             f"each end, which needs more than {p} samples; received {n}")
        x = T.getitem(x, (Ellipsis, np.pad(np.arange(n), p, mode="reflect")))
        n += 2 * p
    if n < fft_length:
        raise ValueError(f"stft: the signal ({n} samples{' after padding' if center else ''})"
                         f" is shorter than fft_length={fft_length}")
    frames = 1 + (n - fft_length) // sequence_stride
    # the frames gathered (and their spectrum) before rfft's own estimate: refuse first
    _fft_budget(np.prod(x.shape[:-1]) * frames, fft_length // 2 + 1,
                np.result_type(x.dtype, np.complex64).itemsize, "stft", "sequence_stride",
                sequence_stride, hint=f"use a larger sequence_stride ({frames} frames a "
                f"signal) or fewer signals at a time")
    idx = np.arange(frames)[:, None] * sequence_stride + np.arange(fft_length)[None, :]
    left = (fft_length - sequence_length) // 2
    win = T.pad(win, [(left, fft_length - sequence_length - left)])
    return rfft(T.mul(T.getitem(x, (Ellipsis, idx)), win), fft_length)


def istft(x, sequence_length, sequence_stride, fft_length, length=None, window="hann",
          center=True):
    """Inverse of :func:`stft`, as Keras on torch: torch.istft (overlap-add divided by the
    overlap-added squared window) when ``sequence_length == fft_length``, ``center`` and a
    window; otherwise Keras's own overlap-add with the window over its summed squares."""
    re, im = _complex_pair(x, "istft")
    sequence_length, sequence_stride = int(sequence_length), int(sequence_stride)
    fft_length = int(fft_length)
    _check_stft_sizes(sequence_length, sequence_stride, fft_length, "istft")
    if re.ndim < 2:
        raise ValueError(f"istft needs (..., frames, bins) tensors; received shape {re.shape}")
    win = _stft_window(window, sequence_length, re.dtype, "istft")
    frames = irfft((re, im), fft_length)                   # (..., n, fft_length)
    n = frames.shape[-2]
    expected = fft_length + sequence_stride * (n - 1)
    if sequence_length == fft_length and center and win is not None:
        y = _overlap_add(T.mul(frames, win), sequence_stride)
        env = _overlap_add(T.broadcast_to(T.mul(win, win), (n, fft_length)), sequence_stride)
        start = fft_length // 2
        end = start + int(length) if length is not None else expected - fft_length // 2
        if length is not None:                 # torch pads the output to ``length``
            _fft_budget(np.prod(re.shape[:-2]), int(length), re.dtype.itemsize, "istft",
                        "length", length)
        stop = builtins.min(end, expected)
        env_part = env.data[start:stop]
        if env_part.size and np.abs(env_part).min() < 1e-11:
            raise ValueError("istft: the window's overlap-added squares vanish inside the "
                             "output (the NOLA condition fails): choose a window or "
                             "sequence_stride whose frames overlap")
        y = T.divide(T.getitem(y, (Ellipsis, builtins.slice(start, stop))),
                     T.getitem(env, builtins.slice(start, stop)))
        if end > stop:                                     # torch pads to ``length``
            y = T.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, end - stop)])
        return y
    if sequence_stride > fft_length:
        raise ValueError(f"istft: `sequence_stride` must equal or less than fft_length. "
                         f"Received: sequence_stride={sequence_stride}, "
                         f"fft_length={fft_length}")
    if n and sequence_stride < fft_length / n:
        raise ValueError(f"istft: `sequence_stride` must equal or greater than fft_length / "
                         f"frames. Received: sequence_stride={sequence_stride}, "
                         f"fft_length={fft_length}, frames={n}")
    if win is not None:
        left = (fft_length - sequence_length) // 2
        win = T.pad(win, [(left, fft_length - sequence_length - left)])
        over = -(-fft_length // sequence_stride)
        sq = T.pad(T.mul(win, win), [(0, over * sequence_stride - fft_length)])
        denom = T.tsum(T.reshape(sq, (over, sequence_stride)), axis=0)
        denom = T.reshape(T.tile(denom, (over,)), (-1,))
        win = T.divide(win, T.getitem(denom, builtins.slice(0, fft_length)))
        frames = T.mul(frames, win)
    y = _overlap_add(frames, sequence_stride)
    start = 0 if not center else fft_length // 2
    if length is not None:
        end = start + int(length)
    elif center:
        end = -(fft_length // 2)
    else:
        end = expected
    return T.getitem(y, (Ellipsis, builtins.slice(start, end)))


# -- adaptive pooling, fold / unfold (as Keras on torch) ----------------------------------------
def _adaptive_setup(inputs, output_size, data_format, name):
    x = as_tensor(inputs)
    fmt = "channels_last" if data_format is None else str(data_format).lower()
    if fmt not in ("channels_first", "channels_last"):
        raise ValueError(f"{name}: data_format must be 'channels_first' or 'channels_last'; "
                         f"received {data_format!r}")
    nsp = x.ndim - 2
    if nsp not in (1, 2, 3):
        raise ValueError(f"{name} takes inputs of rank 3, 4 or 5 (batch, spatial axes, "
                         f"channels); received shape {x.shape}")
    sizes = (int(output_size),) * nsp if np.ndim(output_size) == 0 else \
        tuple(int(s) for s in output_size)
    if len(sizes) != nsp or builtins.min(sizes) < 1:
        raise ValueError(f"{name}: output_size must be a positive int or {nsp} positive ints; "
                         f"received {output_size!r}")
    axes = tuple(range(1, 1 + nsp)) if fmt == "channels_last" else tuple(range(2, 2 + nsp))
    for ax in axes:
        if x.shape[ax] == 0:
            raise ValueError(f"{name}: spatial axes must be non-empty; received shape "
                             f"{x.shape}")
    return x, sizes, axes


def _bins(n, out):
    """torch's adaptive-pool bins: [floor(i n / out), ceil((i + 1) n / out))."""
    i = np.arange(out)
    return (i * n) // out, -((-(i + 1) * n) // out)


def adaptive_average_pool(inputs, output_size, data_format=None):
    """Average over torch's adaptive bins on each spatial axis (1-D, 2-D or 3-D)."""
    x, sizes, axes = _adaptive_setup(inputs, output_size, data_format, "adaptive_average_pool")
    if x.dtype.kind != "f":
        x = T.cast(x, FLOATX)
    # a mean over a box is the mean over each axis in turn: one averaging matrix per axis
    for ax, out in zip(axes, sizes):
        n = x.shape[ax]
        lo, hi = _bins(n, out)
        j = np.arange(n)
        m = ((j >= lo[:, None]) & (j < hi[:, None])) / (hi - lo)[:, None]
        x = moveaxis(T.matmul(moveaxis(x, ax, -1), m.T.astype(x.dtype)), -1, ax)
    return x


def adaptive_max_pool(inputs, output_size, data_format=None):
    """Max over torch's adaptive bins on each spatial axis (1-D, 2-D or 3-D); the gradient
    goes to one element per bin, the first in row-major order (as torch)."""
    x, sizes, axes = _adaptive_setup(inputs, output_size, data_format, "adaptive_max_pool")
    # the max over a box is the max over each axis in turn; reducing the last spatial axis
    # first makes the first maximum of each row, then the first such row, win: torch's pick
    for ax, out in reversed(list(zip(axes, sizes))):
        n = x.shape[ax]
        lo, hi = _bins(n, out)
        # each bin's indices, its last one repeated to the longest bin's length (a repeat
        # after the first maximum never wins argmax's first pick)
        idx = np.minimum(lo[:, None] + np.arange(int((hi - lo).max())), hi[:, None] - 1)
        win = np.take(x.data, idx, axis=ax)                 # (..., out, width, ...)
        first = np.expand_dims(np.argmax(win, axis=ax + 1), ax + 1)   # NaN wins, as torch
        pick = np.take_along_axis(np.broadcast_to(
            np.expand_dims(idx, tuple(range(ax)) + tuple(range(ax + 2, win.ndim))),
            win.shape), first, axis=ax + 1)
        x = T.take_along_axis(x, np.squeeze(pick, ax + 1), ax)
    return x


def _pair2(v, name, minimum):
    v = (int(v),) * 2 if np.ndim(v) == 0 else tuple(int(i) for i in v)
    if len(v) != 2 or builtins.min(v) < minimum:
        raise ValueError(f"{name} must be an int or two ints >= {minimum}; received {v}")
    return v


def _im2col_index(hw, kernel_size, dilation, padding, stride, name):
    k = _pair2(kernel_size, f"{name}: kernel_size", 1)
    d = _pair2(dilation, f"{name}: dilation", 1)
    p = _pair2(padding, f"{name}: padding", 0)
    s = _pair2(stride, f"{name}: stride", 1)
    blocks = [(n + 2 * pp - dd * (kk - 1) - 1) // ss + 1 for n, kk, dd, pp, ss in
              zip(hw, k, d, p, s)]
    if builtins.min(blocks) < 1:
        raise ValueError(f"{name}: kernel_size {k} with dilation {d} does not fit a spatial "
                         f"size {tuple(hw)} padded by {p}")
    rows = (np.arange(k[0]) * d[0])[:, None, None, None] + \
        (np.arange(blocks[0]) * s[0])[None, None, :, None]
    cols = (np.arange(k[1]) * d[1])[None, :, None, None] + \
        (np.arange(blocks[1]) * s[1])[None, None, None, :]
    return k, p, blocks, rows, cols                         # (kh, kw, oh, ow) index grids


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """torch's F.unfold (im2col) on channels-first ``(N, C, H, W)``: ``(N, C*kh*kw, L)``
    blocks."""
    x = as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"unfold takes a 4-D (N, C, H, W) tensor; received shape {x.shape}")
    N, C, H, W = x.shape
    k, p, blocks, rows, cols = _im2col_index((H, W), kernel_size, dilation, padding, stride,
                                             "unfold")
    xp = T.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])]) if builtins.max(p) else x
    patches = T.getitem(xp, (builtins.slice(None), builtins.slice(None), rows, cols))
    return T.reshape(patches, (N, C * k[0] * k[1], blocks[0] * blocks[1]))


def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """torch's F.fold (col2im): ``(N, C*kh*kw, L)`` blocks summed into ``(N, C, *output_size)``;
    the adjoint of :func:`unfold`."""
    x = as_tensor(x)
    if x.ndim != 3:
        raise ValueError(f"fold takes a 3-D (N, C*kh*kw, L) tensor; received shape {x.shape}")
    H, W = _pair2(output_size, "fold: output_size", 1)
    k, p, blocks, rows, cols = _im2col_index((H, W), kernel_size, dilation, padding, stride,
                                             "fold")
    N, CK, L = x.shape
    if CK % (k[0] * k[1]) or L != blocks[0] * blocks[1]:
        raise ValueError(f"fold: input of shape {x.shape} does not match kernel_size {k} "
                         f"(axis 1 a multiple of {k[0] * k[1]}) and {blocks[0]} x {blocks[1]} "
                         f"= {blocks[0] * blocks[1]} blocks on axis 2")
    C = CK // (k[0] * k[1])
    shape6 = (N, C, k[0], k[1], blocks[0], blocks[1])
    full = np.zeros((N, C, H + 2 * p[0], W + 2 * p[1]), dtype=x.dtype)
    np.add.at(full, (builtins.slice(None), builtins.slice(None), rows, cols),
              x.data.reshape(shape6))
    crop = (Ellipsis, builtins.slice(p[0], p[0] + H), builtins.slice(p[1], p[1] + W))

    def backward(g):
        gp = np.zeros(full.shape, dtype=x.dtype)
        gp[crop] = g
        x.accumulate(gp[:, :, rows, cols].reshape(x.shape))
    return Tensor(np.ascontiguousarray(full[crop]), parents=(x,), backward=backward)


# -- rearrange (einops) --------------------------------------------------------------------------
def _einops_side(side, name):
    import re
    tokens = re.findall(r"\.\.\.|\(|\)|[^\s()]+", side)
    groups, cur = [], None
    for tok in tokens:
        if tok == "(":
            if cur is not None:
                raise ValueError(f"rearrange: nested parentheses in {side!r}")
            cur = []
        elif tok == ")":
            if cur is None:
                raise ValueError(f"rearrange: unbalanced ')' in {side!r}")
            groups.append(cur)
            cur = None
        else:
            if tok != "..." and not tok.isidentifier():
                raise ValueError(f"rearrange: axis name {tok!r} in {side!r} is not an "
                                 "identifier (numbers and anonymous axes are not supported)")
            (groups.append([tok]) if cur is None else cur.append(tok))
    if cur is not None:
        raise ValueError(f"rearrange: unbalanced '(' in {side!r}")
    flat = [a for g in groups for a in g]
    if len(set(flat)) != len(flat):
        raise ValueError(f"rearrange: an axis is repeated in {side!r}")
    return groups, flat


def rearrange(tensor, pattern, **axes_lengths):
    """einops' rearrange: ``'b (h h1) w c -> b h (w h1) c'`` with axis names, parenthesised
    groups (split or merged axes, lengths from ``axes_lengths`` or inferred, one unknown per
    group) and ``...`` for the axes in between; a reshape, a transpose and a reshape."""
    x = as_tensor(tensor)
    if not isinstance(pattern, str) or pattern.count("->") != 1:
        raise ValueError(f"rearrange: pattern must be 'input axes -> output axes'; received "
                         f"{pattern!r}")
    left, right = pattern.split("->")
    lgroups, lflat = _einops_side(left, "input")
    rgroups, rflat = _einops_side(right, "output")
    if set(lflat) != set(rflat):
        raise ValueError(f"rearrange: the axes of both sides must be the same; {pattern!r} "
                         f"has {sorted(set(lflat) ^ set(rflat))} on one side only")
    n_ell = x.ndim - (len(lgroups) - (1 if ["..."] in lgroups else 0))
    if builtins.any("..." in g and len(g) > 1 for g in lgroups):
        raise ValueError("rearrange: '...' inside parentheses on the input side is not "
                         "supported")
    if ("..." in lflat and n_ell < 0) or ("..." not in lflat and n_ell != 0):
        raise ValueError(f"rearrange: the input pattern {left.strip()!r} names "
                         f"{len(lgroups)} axes; the tensor has rank {x.ndim}")
    sizes = {k: int(v) for k, v in axes_lengths.items()}
    dims = iter(x.shape)
    ell_shape = ()
    decomposed = []
    for g in lgroups:
        if g == ["..."]:
            ell_shape = tuple(next(dims) for _ in range(n_ell))
            decomposed += ["..."]
            continue
        n = next(dims)
        unknown = [a for a in g if a not in sizes]
        known = int(np.prod([sizes[a] for a in g if a in sizes]))
        if len(unknown) > 1:
            raise ValueError(f"rearrange: cannot infer both {unknown} of length-{n} group "
                             f"({' '.join(g)}); pass their lengths as keyword arguments")
        if unknown:
            if known == 0 or n % known:
                raise ValueError(f"rearrange: axis of length {n} cannot be split as "
                                 f"({' '.join(g)}) with {axes_lengths}")
            sizes[unknown[0]] = n // known
        elif known != n:
            raise ValueError(f"rearrange: axis of length {n} does not match ({' '.join(g)}) "
                             f"= {known} with {axes_lengths}")
        decomposed += g
    shape_in = [s for a in decomposed for s in (ell_shape if a == "..." else (sizes[a],))]
    # positions of each name in the decomposed tensor ('...' spans n_ell axes)
    pos, i = {}, 0
    for a in decomposed:
        pos[a] = list(range(i, i + (n_ell if a == "..." else 1)))
        i += n_ell if a == "..." else 1
    perm = [p for a in rflat for p in pos[a]]
    out_shape = []
    for g in rgroups:
        if g == ["..."]:
            out_shape += list(ell_shape)
        else:
            out_shape.append(int(np.prod([int(np.prod(ell_shape)) if a == "..." else sizes[a]
                                          for a in g])))
    y = T.reshape(x, tuple(shape_in))
    y = T.transpose(y, tuple(perm))
    return T.reshape(y, tuple(out_shape))


# -- jvp ------------------------------------------------------------------------------------------
# jvp's estimate: one backward pass per output entry, each touching every element of the
# graph plus a fixed per-node overhead (Python and NumPy call costs, in element operations)
_JVP_NODE_COST = 1000
_JVP_MAX_WORK = 1e11


def jvp(fun, primals, tangents, has_aux=False):
    """Jacobian-vector product ``(fun(*primals), J tangents)`` (Keras's ``(outputs,
    tangents_out[, aux])``), exact: the autograd is reverse-mode, so each output entry's
    Jacobian row comes from one backward pass (cost: one pass per output entry; fine for the
    small outputs jvp is used on, slow for large ones; refused with a ValueError before any
    pass when the estimate passes about 1e11 element operations)."""
    p_leaves, p_rebuild = _flatten(primals)
    t_leaves, _ = _flatten(tangents)
    if len(p_leaves) != len(t_leaves):
        raise ValueError(f"jvp: primals and tangents must have the same structure; received "
                         f"{len(p_leaves)} and {len(t_leaves)} leaves")
    inputs = []
    for p, t in zip(p_leaves, t_leaves):
        p = as_tensor(p) if isinstance(p, Tensor) else convert_to_tensor(p)
        t = np.asarray(as_tensor(t).data)
        if t.shape != p.shape:
            raise ValueError(f"jvp: a tangent of shape {t.shape} for a primal of shape "
                             f"{p.shape}; each tangent must have its primal's shape")
        inputs.append((Tensor(p.data, requires_grad=p.dtype.kind == "f"), t))
    res = fun(*p_rebuild([t_ for t_, _ in inputs]))
    out, aux = (res[0], res[1]) if has_aux else (res, None)
    o_leaves, o_rebuild = _flatten(out)
    o_leaves = [as_tensor(o) for o in o_leaves]
    graphs = [_graph(o) if o.requires_grad and o.dtype.kind == "f" else None
              for o in o_leaves]
    # one backward per output entry: estimate it before spending it
    work = builtins.sum(o.size * builtins.sum(n.size + _JVP_NODE_COST for n in g)
                        for o, g in zip(o_leaves, graphs) if g is not None)
    if work > _JVP_MAX_WORK:
        sizes = [o.size for o, g in zip(o_leaves, graphs) if g is not None]
        raise ValueError(
            f"jvp: {builtins.sum(sizes)} output entries (per output: {sizes}) each need one "
            f"backward pass through a graph of up to "
            f"{builtins.max(builtins.sum(n.size for n in g) for g in graphs if g)} elements: "
            f"~{work:.2g} element operations, over the {_JVP_MAX_WORK:.0e} allowed (wsekern's "
            "autograd is reverse-mode only). Ask for fewer output entries (slice the output "
            "inside fun) or take a vector-Jacobian product with the gradient instead")
    tan_out = []
    for o, nodes in zip(o_leaves, graphs):
        flat = np.zeros(o.size, dtype=o.dtype if o.dtype.kind == "f" else FLOATX)
        if nodes is not None:
            kept = [n.grad for n in nodes]       # gradients held before (weights' too)
            for k in range(o.size):
                for node in nodes:
                    node.grad = None
                seed = np.zeros(o.size, dtype=o.dtype)
                seed[k] = 1
                o.backward(seed.reshape(o.shape))
                flat[k] = builtins.sum(float(np.sum(t_ * x_.grad)) for x_, t_ in inputs
                                       if x_.grad is not None)
            for node, g in zip(nodes, kept):
                node.grad = g
        tan_out.append(Tensor(flat.reshape(o.shape)))
    o_detached = [Tensor(o.data) for o in o_leaves]
    result = (o_rebuild(o_detached), o_rebuild(tan_out))
    return result + (aux,) if has_aux else result


def _graph(t):
    """Every Tensor ``t`` depends on (with gradients), ``t`` included."""
    seen, stack, nodes = set(), [t], []
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        nodes.append(n)
        stack.extend(p for p in n._parents if p.requires_grad)
    return nodes


# -- complex tensors (keras.ops.view_as_complex, view_as_real, polar, eig) -----------------
# A complex result is a Tensor of NumPy complex values, as Keras on torch returns a complex
# tensor: ops.real/imag/conj/angle/abs, arithmetic and view_as_real take it. wsekern's
# autograd is real-valued, so an input that needs a gradient is refused (by name), never
# given a silent zero gradient.
def _no_complex_grad(name, *xs):
    if builtins.any(t.requires_grad for t in xs):
        raise NotImplementedError(
            f"ops.{name}: a complex result cannot carry a gradient in wsekern.nn (its autograd "
            f"is real-valued), and this input needs one. Differentiable instead: keep the real "
            f"and imaginary parts as two real tensors (x[..., 0] and x[..., 1]; ops.fft, rfft, "
            f"stft and their inverses take and return such (real, imag) pairs); or pass "
            f"ops.stop_gradient(x) where no gradient is wanted")


def _complex(re, im, ctype):
    """``re + i im`` of ``ctype``, part by part (``re + 1j * im`` turns an infinite
    imaginary part into a NaN real one, and loses the sign of a zero)."""
    re, im = np.broadcast_arrays(re, im)
    out = np.empty(re.shape, dtype=ctype)
    out.real, out.imag = re, im
    return out


def view_as_complex(x):
    """Pairs of real values on the last axis (of size 2, real part first) as complex64
    values, as Keras on torch (complex64 whatever the floating input). No gradient."""
    x = as_tensor(x)
    _no_complex_grad("view_as_complex", x)
    if x.ndim == 0 or x.shape[-1] != 2:
        raise ValueError(f"ops.view_as_complex: the last dimension of the input must be 2 "
                         f"(real and imaginary); received shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"ops.view_as_complex needs real numbers; received {x.dtype}")
    d = x.data.astype(np.float32)
    return _const(_complex(d[..., 0], d[..., 1], np.complex64))


def view_as_real(x):
    """A complex tensor as real values on a new last axis of size 2 (real part first),
    float32 for complex64 and float64 for complex128, as Keras on torch."""
    x = as_tensor(x)
    if x.dtype.kind != "c":
        raise ValueError(f"ops.view_as_real needs a complex tensor (from ops.view_as_complex, "
                         f"ops.polar or ops.eig, or a NumPy complex array); received {x.dtype}. "
                         f"A real x is ops.stack([x, ops.zeros_like(x)], axis=-1)")
    return _const(np.stack([np.real(x.data), np.imag(x.data)], axis=-1))


def polar(abs_, angle):
    """``abs * (cos(angle) + i sin(angle))``, broadcast; complex128 when either input is
    float64, else complex64, as Keras on torch. No gradient."""
    r, a = as_tensor(abs_), as_tensor(angle)
    _no_complex_grad("polar", r, a)
    for t, what in ((r, "abs_"), (a, "angle")):
        if t.dtype.kind not in "fiub":
            raise ValueError(f"ops.polar: {what} must be real; received {t.dtype}")
    ft = np.float64 if np.float64 in (r.dtype, a.dtype) else np.float32
    rd, ad = r.data.astype(ft), a.data.astype(ft)
    return _const(_complex(rd * np.cos(ad), rd * np.sin(ad),
                           np.complex128 if ft is np.float64 else np.complex64))


def eig(x):
    """Eigenvalues and eigenvectors of general square matrices (a batch of them on the
    leading axes), real or complex, as complex (complex128 for float64 and complex128,
    complex64 otherwise) as Keras on torch;
    each eigenvector of unit norm (LAPACK's geev, as torch). No gradient (for symmetric
    matrices ops.eigh is differentiable)."""
    x = as_tensor(x)
    _no_complex_grad("eig", x)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"ops.eig needs (..., n, n) square matrices; received shape {x.shape}")
    if x.dtype.kind == "c":             # complex matrices as they are (torch's geev too)
        ct = np.complex128 if x.dtype == np.complex128 else np.complex64
        w, v = np.linalg.eig(x.data.astype(ct, copy=False))
        return _const(w.astype(ct)), _const(v.astype(ct))
    if x.dtype.kind not in "fiub":
        raise ValueError(f"ops.eig needs real or complex matrices; received {x.dtype}")
    ct = np.complex128 if x.dtype == np.float64 else np.complex64
    w, v = np.linalg.eig(x.data.astype(np.float64 if ct is np.complex128 else np.float32))
    return _const(w.astype(ct)), _const(v.astype(ct))


# keras.ops.nn / keras.ops.numpy namespaces point back here
class _Namespace:
    def __init__(self, module_globals):
        self.__dict__.update({k: v for k, v in module_globals.items() if not k.startswith("_")})

    def __getattr__(self, name):          # only for names it lacks: the module's message
        return __getattr__(name)


# keras.ops callables wsekern does not implement, and why (named in the AttributeError)
_NOT_IMPLEMENTED = {}


def __getattr__(name):
    if name in ("nn", "numpy", "math", "core", "linalg"):
        return _Namespace(globals())
    if name in _NOT_IMPLEMENTED:
        raise AttributeError(
            f"keras.ops.{name} is not implemented in wsekern.nn.ops: {_NOT_IMPLEMENTED[name]}. "
            "The ops it has are listed by dir(wsekern.nn.ops) and in the API reference "
            "(docs/api.rst, wsekern.nn.ops)")
    raise AttributeError(f"wsekern.nn.ops has no op {name!r}: it follows keras.ops' names "
                         "(Keras 3); the ops it has are listed by dir(wsekern.nn.ops)")


# -- complex input (probe: /work/notes/s23/keras23/probe_complex.py against Keras 3 on torch) --
# Keras on torch refuses complex input to these; NumPy would answer (lexicographic order,
# a complex sign or round) or drop the imaginary part with only a warning
_REAL_ONLY = (
    "amax", "amin", "argmax", "argmin", "argsort", "arctan2", "categorical_crossentropy",
    "cbrt", "ceil", "celu", "deg2rad", "elu", "erf", "erfc", "erfinv", "fabs", "floor",
    "floor_divide", "fmax", "fmin", "fmod", "gelu", "geomspace", "glu", "greater",
    "greater_equal", "hard_shrink", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh",
    "heaviside", "hypot", "isin", "isneginf", "isposinf", "layer_normalization",
    "leaky_relu", "less", "less_equal", "linspace", "log_sigmoid", "log_softmax",
    "logaddexp2", "logspace", "max", "maximum", "median", "min", "minimum", "mod",
    "nanargmax", "nanargmin", "nanmax", "nanmean", "nanmedian", "nanmin", "nanstd",
    "nansum", "nanvar", "normalize", "ptp", "rad2deg", "relu", "relu6", "rfft", "round",
    "selu", "sign", "signbit", "soft_shrink", "softmax", "softplus", "sort", "sparse_plus",
    "sparse_sigmoid", "sparsemax", "trunc", "unique")
# Keras on torch computes these on complex input, wsekern does not yet: refused by name
_COMPLEX_NOT_YET = ()


def _refuse_complex():
    g = globals()
    for names, keras_has in ((_REAL_ONLY, False), (_COMPLEX_NOT_YET, True)):
        for n in names:                   # one per name (max, amax): the message names it
            g[n] = T.real_only(g[n], "ops." + n, supported_by_keras=keras_has)


_refuse_complex()
