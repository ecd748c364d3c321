"""``keras.ops`` for wsekern.nn: Keras 3's names, arguments and defaults over the autograd.

Every op takes Tensors, NumPy arrays or Python scalars (scalars are weakly typed:
``ops.multiply(float32_tensor, 2.0)`` stays float32) and returns a Tensor. Differentiable
ops carry gradients to their Tensor inputs; the ones Keras cannot differentiate either
(argmax, argsort, comparisons, one_hot, rounding, shape constructors) return constants.
"""
import builtins

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


def linspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
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
    return T.sqrt(x if x.dtype.kind == "f" else T.cast(x, FLOATX))


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
    return multiply(log(x), 1 / np.log(2))


def log10(x):
    return multiply(log(x), 1 / np.log(10))


def abs(x):      # noqa: A001  (Keras's name)
    return T.absolute(x)


absolute = abs


def sign(x):
    return Tensor(np.sign(as_tensor(x).data))


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
    """``x1`` where ``condition`` else ``x2``; with one argument, the indices (as Keras)."""
    if x1 is None and x2 is None:
        return tuple(Tensor(i.astype(np.int32)) for i in np.nonzero(as_tensor(condition).data))
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
    centred = subtract(x, mean(x, axis, keepdims=True))
    return mean(square(centred), axis, keepdims)


def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis, keepdims))


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
        x = T.extremum(x, initial, take_max=True)
    return T.reduce_extremum(x, axis, keepdims, take_max=True)


def min(x, axis=None, keepdims=False, initial=None):      # noqa: A001
    x = as_tensor(x)
    if initial is not None:
        if x.size == 0:
            return Tensor(np.asarray(np.min(x.data, axis=axis, keepdims=keepdims,
                                              initial=initial)))
        x = T.extremum(x, initial, take_max=False)
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
    order = np.moveaxis(np.arange(x.ndim), source, destination)
    return T.transpose(x, tuple(int(i) for i in order))


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
    return T.take_along_axis(x, np.argsort(x.data, axis=axis, kind="stable"), axis)


def argsort(x, axis=-1):
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


# keras.ops.nn / keras.ops.numpy namespaces point back here
class _Namespace:
    def __init__(self, module_globals):
        self.__dict__.update({k: v for k, v in module_globals.items() if not k.startswith("_")})


def __getattr__(name):
    if name in ("nn", "numpy", "math", "core", "linalg"):
        return _Namespace(globals())
    raise AttributeError(f"wsekern.nn.ops has no op {name!r}")
