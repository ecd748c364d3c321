"""A small reverse-mode autograd over NumPy arrays (micrograd's design, array-valued).

Each op returns a new Tensor holding its parents and a closure that, given the
gradient of the output, accumulates gradients into the parents. ``backward()`` walks
the graph in reverse topological order. Matmuls by sparse weights and convolutions
call the wsekern kernels (see ops in layers); everything else is NumPy.
"""
import numpy as np


class Tensor:
    """An array, its gradient, and how it was made."""
    # _keras_mask: None, or the mask a layer's output carries (set to None here: a getattr
    # on an empty slot raises inside, ~7x slower, and every layer call reads it)
    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "name", "_keras_mask")
    __array_priority__ = 100          # so ndarray + Tensor defers to Tensor.__radd__

    def __init__(self, data, requires_grad=False, parents=(), backward=None, name=None):
        self.data = data if isinstance(data, np.ndarray) else np.asarray(data)
        self.grad = None
        if not requires_grad:                  # every op makes one: a loop, no generator
            for p in parents:
                if p.requires_grad:
                    requires_grad = True
                    break
        requires_grad = bool(requires_grad)
        self.requires_grad = requires_grad
        self._parents = parents if requires_grad else ()
        self._backward = backward if requires_grad else None
        self.name = name
        self._keras_mask = None

    # -- basics --------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def T(self):
        return transpose(self)

    def numpy(self):
        return self.data

    def __repr__(self):
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, requires_grad={self.requires_grad})"

    def accumulate(self, g):
        """Add ``g`` to this tensor's gradient (the only way gradients are written)."""
        if self.requires_grad:
            self.grad = g if self.grad is None else self.grad + g

    def backward(self, grad=None):
        """Gradients of this tensor with respect to every tensor that requires them."""
        # Iterative DFS (deep graphs are fine), inputs after outputs in reverse; the visiting
        # order fixes the order in which gradients add up, so it must stay as it is. Nodes
        # without requires_grad have no parents and no backward: they are not visited.
        order, seen = [], set()
        stack = [(self, False)]
        pop, push, add = stack.pop, stack.append, seen.add
        while stack:
            node, expanded = pop()
            if expanded:
                order.append(node)
                continue
            key = id(node)
            if key in seen:
                continue
            add(key)
            push((node, True))
            for p in node._parents:
                if p.requires_grad and id(p) not in seen:
                    push((p, False))
        self.grad = np.ones_like(self.data) if grad is None else grad
        for node in reversed(order):
            if node._backward is not None and node.grad is not None:
                node._backward(node.grad)

    # -- operators -----------------------------------------------------------
    def __add__(self, other):
        return add(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return add(self, neg(lift(other, self)))

    def __rsub__(self, other):
        return add(lift(other, self), neg(self))

    def __mul__(self, other):
        return mul(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return divide(self, other)

    def __rtruediv__(self, other):
        return divide(lift(other, self), self)

    def __neg__(self):
        return neg(self)

    def __abs__(self):
        return absolute(self)

    def __pow__(self, p):
        return power(self, p)

    def __rpow__(self, base):
        return exp(mul(self, np.log(lift(base, self).data)))

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(lift(other, self), self)

    # comparisons give boolean tensors without gradient, elementwise as in Keras and
    # torch (``ops.cast(y_true == y_pred, "float32")`` is how Keras metrics are written);
    # hashing stays by identity, so find a tensor in a list with ``is``, not ``in``
    def __eq__(self, other):
        return Tensor(self.data == lift(other, self).data)

    def __ne__(self, other):
        return Tensor(self.data != lift(other, self).data)

    def __lt__(self, other):
        return _ordered(np.less, self, other, "<")

    def __le__(self, other):
        return _ordered(np.less_equal, self, other, "<=")

    def __gt__(self, other):
        return _ordered(np.greater, self, other, ">")

    def __ge__(self, other):
        return _ordered(np.greater_equal, self, other, ">=")

    __hash__ = object.__hash__

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __array__(self, dtype=None, copy=None):
        return array_protocol(self.data, dtype, copy)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __bool__(self):
        return bool(self.data)

    @property
    def size(self):
        return self.data.size

    def __getitem__(self, idx):
        return getitem(self, idx)

    def sum(self, axis=None, keepdims=False):
        return tsum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis, keepdims)

    def reshape(self, *shape):
        return reshape(self, shape[0] if len(shape) == 1 else shape)


def _ordered(fn, a, b, symbol):
    """``a < b`` and the like: refused on complex numbers as torch refuses them (NumPy
    orders them lexicographically: a silent answer Keras never gives)."""
    b = lift(b, a)
    if a.dtype.kind == "c" or b.dtype.kind == "c":
        raise ComplexInputError(
            f"tensor {symbol} tensor is not defined on complex numbers (received {a.dtype} "
            f"and {b.dtype}), as in Keras on torch; compare ops.real(x), ops.imag(x) or "
            "ops.abs(x)")
    return Tensor(fn(a.data, b.data))


def array_protocol(a, dtype=None, copy=None):
    """NumPy 2's ``__array__(dtype, copy)`` over the array ``a``: ``copy=True`` a fresh
    array (``np.array(t)`` must not alias the tensor), ``copy=False`` refuses a conversion
    that needs one (as NumPy documents), ``None`` copies only when it must."""
    if dtype is not None and np.dtype(dtype) != a.dtype:
        if copy is False:
            raise ValueError(f"a {a.dtype} tensor cannot be read as {np.dtype(dtype)} without "
                             "a copy, and copy=False was asked: pass copy=None (or True), or "
                             f"no dtype to get {a.dtype} without a copy")
        return a.astype(dtype)
    return a.copy() if copy else a


class VariableValue(np.ndarray):
    """``Variable.value``: the variable's array itself (a view: a write reaches the
    variable) with ``grad``, the variable's gradient, as Keras's ``value`` on torch (a
    Parameter) has one. An op takes it as the variable, so its gradient flows (as Keras's
    does); what NumPy computes from it is a plain array, and a part of it has no grad."""

    def __array_finalize__(self, obj):
        self._variable = None

    def __array_wrap__(self, array, context=None, return_scalar=False):
        array = array.view(np.ndarray)
        return array[()] if return_scalar else array

    def copy(self, order="C"):
        return self.view(np.ndarray).copy(order)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return self.view(np.ndarray).__reduce__()

    def _whole(self):
        if self._variable is None:
            raise AttributeError("this array is a part of a Variable's value, or computed "
                                 "from it: it has no grad; read the variable's .grad")
        return self._variable

    @property
    def grad(self):
        return self._whole().grad

    @grad.setter
    def grad(self, value):
        self._whole().grad = value


def as_tensor(x):
    if isinstance(x, Tensor):
        return x
    if type(x) is VariableValue and x._variable is not None:
        return x._variable
    return Tensor(np.asarray(x))


def lift(x, like):
    """``x`` as a Tensor; a Python scalar takes ``like``'s floating dtype, as Keras's
    weakly typed scalars do (``float32_tensor * 2.0`` stays float32)."""
    if isinstance(x, Tensor):
        return x
    like_dtype = like.dtype if isinstance(like, Tensor) else np.asarray(like).dtype
    if isinstance(x, (bool, int, float, complex)) and not isinstance(x, np.generic):
        if like_dtype.kind == "c":      # complex64 + 1 stays complex64, as torch
            return Tensor(np.asarray(x, dtype=like_dtype))
        if isinstance(x, complex):
            return as_tensor(x)
        if like_dtype.kind == "f":
            return Tensor(np.asarray(x, dtype=like_dtype))
        if isinstance(x, float) and like_dtype.kind in "iub":
            return Tensor(np.asarray(x, dtype=np.float32))
        if like_dtype.kind in "iu" and not isinstance(x, bool):
            return Tensor(np.asarray(x, dtype=like_dtype))
    return as_tensor(x)


def pair(a, b):
    """Both operands of a binary op as Tensors, Python scalars weakly typed."""
    if not isinstance(a, Tensor) and isinstance(b, Tensor):
        return lift(a, b), b
    a = as_tensor(a)
    return a, lift(b, a)


def _unbroadcast(g, shape):
    """Sum ``g`` down to ``shape`` (the adjoint of NumPy broadcasting)."""
    if g.shape == shape:
        return g
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, n in enumerate(shape):
        if n == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


# -- elementwise -------------------------------------------------------------------
def add(a, b):
    a, b = pair(a, b)

    def backward(g):
        a.accumulate(_unbroadcast(g, a.shape))
        b.accumulate(_unbroadcast(g, b.shape))
    return Tensor(a.data + b.data, parents=(a, b), backward=backward)


def mul(a, b):
    a, b = pair(a, b)

    def backward(g):
        a.accumulate(_unbroadcast(g * b.data, a.shape))
        b.accumulate(_unbroadcast(g * a.data, b.shape))
    return Tensor(a.data * b.data, parents=(a, b), backward=backward)


def neg(a):
    return Tensor(-a.data, parents=(a,), backward=lambda g: a.accumulate(-g))


def power(a, p):
    """``a ** p``; differentiable in ``a`` and, when it is a Tensor, in ``p``."""
    if isinstance(p, Tensor) and p.requires_grad:
        a, p = pair(a, p)
        out = a.data ** p.data

        def backward(g):
            a.accumulate(_unbroadcast(g * p.data * a.data ** (p.data - 1), a.shape))
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.where(a.data > 0, np.log(np.where(a.data > 0, a.data, 1)), 0)
            p.accumulate(_unbroadcast(g * out * logs, p.shape))
        return Tensor(out, parents=(a, p), backward=backward)
    a = as_tensor(a)
    p = lift(p, a).data
    out = a.data ** p
    return Tensor(out, parents=(a,),
                  backward=lambda g: a.accumulate(_unbroadcast(g * p * a.data ** (p - 1),
                                                               a.shape)))


def divide(a, b):
    a, b = pair(a, b)
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":      # true division of ints
        a, b = cast(a, np.float32), cast(b, np.float32)
    out = a.data / b.data

    def backward(g):
        a.accumulate(_unbroadcast(g / b.data, a.shape))
        if b.requires_grad:
            b.accumulate(_unbroadcast(-g * out / b.data, b.shape))
    return Tensor(out, parents=(a, b), backward=backward)


def _unary(a, out, dout):
    """A Tensor for the elementwise ``out = f(a)`` whose derivative is ``dout()``
    (computed lazily: inference never pays for it)."""
    a = as_tensor(a)
    return Tensor(out, parents=(a,),
                  backward=lambda g: a.accumulate((g * dout()).astype(a.dtype, copy=False)))


def sign_of(v):
    """np.sign of an array, 0 at NaN as torch's sign/sgn (Keras's on torch)."""
    s = np.sign(v)
    if s.dtype.kind in "fc":
        s[np.isnan(s)] = 0
    return s


def absolute(a):
    a = as_tensor(a)
    return _unary(a, np.abs(a.data), lambda: sign_of(a.data))     # 0 at NaN, as torch


def sin(a):
    a = as_tensor(a)
    return _unary(a, np.sin(a.data), lambda: np.cos(a.data))


def cos(a):
    a = as_tensor(a)
    return _unary(a, np.cos(a.data), lambda: -np.sin(a.data))


def log1p(a):
    a = as_tensor(a)
    return _unary(a, np.log1p(a.data), lambda: 1 / (1 + a.data))


def expm1(a):
    a = as_tensor(a)
    out = np.expm1(a.data)
    return _unary(a, out, lambda: out + 1)


def erf(a):
    from scipy.special import erf as _erf
    a = as_tensor(a)
    out = _erf(a.data).astype(a.dtype, copy=False)
    return _unary(a, out, lambda: (2 / np.sqrt(np.pi)) * np.exp(-a.data * a.data))


def clip(a, lo, hi):
    """``a`` limited to [lo, hi]; the gradient passes where lo <= a <= hi (as TF's)."""
    a = as_tensor(a)
    lo = lift(lo, a).data if lo is not None else None
    hi = lift(hi, a).data if hi is not None else None
    out = np.clip(a.data, lo, hi).astype(a.dtype, copy=False)

    def inside():
        m = np.ones(a.shape, dtype=bool)
        if lo is not None:
            m &= a.data >= lo
        if hi is not None:
            m &= a.data <= hi
        return m
    # where, not g * mask: 0 where clipped (and at NaN) even for a NaN/inf gradient (torch)
    return Tensor(out, parents=(a,),
                  backward=lambda g: a.accumulate(np.where(inside(), g, 0).astype(
                      a.dtype, copy=False)))


def extremum(a, b, take_max):
    """Elementwise maximum/minimum, NaN where either operand is; the gradient as torch's
    (Keras on torch): to the larger (smaller) operand, split evenly at a tie, and whole to
    both where either is NaN (no comparison holds there)."""
    a, b = pair(a, b)
    x, y = a.data, b.data
    out = np.maximum(x, y) if take_max else np.minimum(x, y)

    def backward(g):
        with np.errstate(invalid="ignore"):
            share = np.where(x == y, g * 0.5, g)
            if a.requires_grad:
                a.accumulate(_unbroadcast(np.where(x < y if take_max else x > y, 0, share),
                                          a.shape))
            if b.requires_grad:
                b.accumulate(_unbroadcast(np.where(x > y if take_max else x < y, 0, share),
                                          b.shape))
    return Tensor(out, parents=(a, b), backward=backward)


def cast(a, dtype):
    """``a`` as ``dtype``; gradients flow back to a floating ``a`` in its own dtype."""
    a = as_tensor(a)
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    keep = a.dtype.kind == "f" and dtype.kind == "f"
    return Tensor(a.data.astype(dtype), parents=(a,) if keep else (),
                  backward=lambda g: a.accumulate(g.astype(a.dtype)))


def stop_gradient(a):
    return Tensor(as_tensor(a).data)


def exp(a):
    a = as_tensor(a)
    out = np.exp(a.data)
    return Tensor(out, parents=(a,), backward=lambda g: a.accumulate(g * out))


def log(a):
    a = as_tensor(a)
    return Tensor(np.log(a.data), parents=(a,), backward=lambda g: a.accumulate(g / a.data))


def sqrt(a):
    a = as_tensor(a)
    out = np.sqrt(a.data)
    return Tensor(out, parents=(a,), backward=lambda g: a.accumulate(g * 0.5 / out))


def where(mask, a, b):
    mask = as_tensor(mask).data.astype(bool, copy=False)
    a, b = pair(a, b)

    def backward(g):
        a.accumulate(_unbroadcast(np.where(mask, g, 0), a.shape))
        b.accumulate(_unbroadcast(np.where(mask, 0, g), b.shape))
    return Tensor(np.where(mask, a.data, b.data), parents=(a, b), backward=backward)


# -- reductions and shapes ------------------------------------------------------------
def _axes(axis, ndim):
    """``axis`` (None, int or sequence) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    out = []
    for ax in axes:
        ax = int(ax)
        if not -ndim <= ax < max(ndim, 1):
            raise ValueError(f"axis {ax} is out of range for a tensor of rank {ndim}")
        out.append(ax % max(ndim, 1))
    return tuple(sorted(set(out)))


def _keep(g, a_shape, axis, keepdims):
    """Reshape a reduction's output gradient so it broadcasts against the input."""
    if keepdims:
        return g
    return np.expand_dims(g, _axes(axis, len(a_shape))) if len(a_shape) else g


def tsum(a, axis=None, keepdims=False):
    a = as_tensor(a)
    axis = None if axis is None else _axes(axis, a.ndim)

    def backward(g):
        g = _keep(g, a.shape, axis, keepdims)
        a.accumulate(np.broadcast_to(g, a.shape).astype(a.dtype, copy=False))
    return Tensor(np.asarray(a.data.sum(axis=axis, keepdims=keepdims)), parents=(a,),
                  backward=backward)


def mean(a, axis=None, keepdims=False):
    a = as_tensor(a)
    if a.dtype.kind in "iub":
        a = cast(a, np.float32)
    n = int(np.prod([a.shape[i] for i in _axes(axis, a.ndim)]))
    return mul(tsum(a, axis, keepdims), a.dtype.type(1.0 / n) if n else a.dtype.type(np.nan))


def reduce_extremum(a, axis=None, keepdims=False, take_max=True):
    """max/min over ``axis``; ties share the gradient equally (TF's and JAX's rule)."""
    a = as_tensor(a)
    axis = None if axis is None else _axes(axis, a.ndim)
    # only a reduced axis of length 0 has no answer; (0, 4) over its last axis gives (0,)
    if a.size == 0 and any(a.shape[i] == 0 for i in (range(a.ndim) if axis is None else axis)):
        raise ValueError(f"{'max' if take_max else 'min'} of an empty tensor of shape "
                         f"{a.shape} has no identity; pass initial= or a non-empty tensor")
    fn = np.max if take_max else np.min
    out = np.asarray(fn(a.data, axis=axis, keepdims=keepdims))

    def backward(g):
        full = fn(a.data, axis=axis, keepdims=True)
        # over every axis a NaN result's gradient goes to the NaNs (torch.max's, Keras on
        # torch); along axes it is NaN where the result is (torch.amax's)
        nan_out = axis is None and np.isnan(full).any()
        hit = (np.isnan(a.data) if nan_out else a.data == full).astype(a.dtype)
        hit /= hit.sum(axis=axis, keepdims=True)
        a.accumulate(hit * _keep(g, a.shape, axis, keepdims))
    return Tensor(out, parents=(a,), backward=backward)


def reshape(a, shape):
    a = as_tensor(a)
    return Tensor(a.data.reshape(shape), parents=(a,),
                  backward=lambda g: a.accumulate(g.reshape(a.shape)))


def transpose(a, axes=None):
    a = as_tensor(a)
    inverse = None if axes is None else np.argsort(axes)
    return Tensor(np.transpose(a.data, axes), parents=(a,),
                  backward=lambda g: a.accumulate(np.transpose(g, inverse)))


def broadcast_to(a, shape):
    a = as_tensor(a)
    return Tensor(np.broadcast_to(a.data, shape).copy(), parents=(a,),
                  backward=lambda g: a.accumulate(_unbroadcast(g, a.shape)))


def getitem(a, idx):
    a = as_tensor(a)
    if isinstance(idx, Tensor):
        idx = idx.data
    elif isinstance(idx, tuple):
        idx = tuple(i.data if isinstance(i, Tensor) else i for i in idx)

    def backward(g):
        full = np.zeros_like(a.data)
        np.add.at(full, idx, g)
        a.accumulate(full)
    return Tensor(a.data[idx], parents=(a,), backward=backward)


def take_along_axis(a, indices, axis):
    a = as_tensor(a)
    indices = np.asarray(as_tensor(indices).data)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers; received dtype {indices.dtype}")

    def backward(g):
        full = np.zeros_like(a.data)
        # put_along_axis overwrites repeated indices; add.at through explicit indices sums
        idx = list(np.indices(indices.shape, sparse=True))
        idx[axis % a.ndim] = indices
        np.add.at(full, tuple(idx), g)
        a.accumulate(full)
    return Tensor(np.take_along_axis(a.data, indices, axis=axis), parents=(a,),
                  backward=backward)


def concat(tensors, axis=-1):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate needs at least one tensor; received an empty list")
    sizes = np.cumsum([t.shape[axis] for t in tensors])[:-1]

    def backward(g):
        for t, part in zip(tensors, np.split(g, sizes, axis=axis)):
            t.accumulate(part)
    return Tensor(np.concatenate([t.data for t in tensors], axis=axis), parents=tuple(tensors),
                  backward=backward)


def stack(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack needs at least one tensor; received an empty list")
    out = np.stack([t.data for t in tensors], axis=axis)
    ax = axis % out.ndim

    def backward(g):
        for i, t in enumerate(tensors):
            t.accumulate(np.take(g, i, axis=ax))
    return Tensor(out, parents=tuple(tensors), backward=backward)


def pad(a, pad_width, constant_values=0):
    a = as_tensor(a)
    pad_width = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (a.ndim, 2))
    if (pad_width < 0).any():
        raise ValueError(f"pad widths must be >= 0; received {pad_width.tolist()}")
    out = np.pad(a.data, pad_width, constant_values=constant_values)
    crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad_width, a.shape))
    return Tensor(out, parents=(a,), backward=lambda g: a.accumulate(g[crop]))


def tile(a, reps):
    a = as_tensor(a)
    reps = (int(reps),) if np.ndim(reps) == 0 else tuple(int(r) for r in reps)
    out = np.tile(a.data, reps)
    ndim = out.ndim
    shape = (1,) * (ndim - a.ndim) + a.shape
    reps = (1,) * (ndim - len(reps)) + reps

    def backward(g):
        # (r0, s0, r1, s1, ...) -> sum over the repeat axes
        split = g.reshape([n for pair_ in zip(reps, shape) for n in pair_])
        a.accumulate(split.sum(axis=tuple(range(0, 2 * ndim, 2))).reshape(a.shape))
    return Tensor(out, parents=(a,), backward=backward)


def repeat(a, repeats, axis=None):
    a = as_tensor(a)
    src = a if axis is not None else reshape(a, (-1,))
    ax = 0 if axis is None else axis % max(a.ndim, 1)
    counts = np.broadcast_to(np.asarray(repeats, dtype=np.int64), (src.shape[ax],))
    owner = np.repeat(np.arange(src.shape[ax]), counts)       # output slot -> source index
    out = np.repeat(src.data, counts, axis=ax)

    def backward(g):
        full = np.zeros_like(src.data)
        np.add.at(np.moveaxis(full, ax, 0), owner, np.moveaxis(g, ax, 0))
        src.accumulate(full)
    return Tensor(out, parents=(src,), backward=backward)


def flip(a, axis=None):
    a = as_tensor(a)
    return Tensor(np.flip(a.data, axis), parents=(a,),
                  backward=lambda g: a.accumulate(np.flip(g, axis)))


def cumsum(a, axis=None):
    a = as_tensor(a)
    src = a if axis is not None else reshape(a, (-1,))
    ax = 0 if axis is None else axis
    out = np.cumsum(src.data, axis=ax)
    return Tensor(out, parents=(src,), backward=lambda g: src.accumulate(
        np.flip(np.cumsum(np.flip(g, ax), axis=ax), ax)))


def logsumexp(a, axis=None, keepdims=False):
    a = as_tensor(a)
    axis = None if axis is None else _axes(axis, a.ndim)
    m = np.max(a.data, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(a.data - m)
    s = e.sum(axis=axis, keepdims=True)
    out_keep = np.log(s) + m
    out = out_keep if keepdims else np.squeeze(out_keep, axis=axis)

    def backward(g):
        a.accumulate(e / s * _keep(g, a.shape, axis, keepdims))
    return Tensor(np.asarray(out), parents=(a,), backward=backward)


def log_softmax(a, axis=-1):
    a = as_tensor(a)
    z = a.data - a.data.max(axis=axis, keepdims=True)
    out = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))

    def backward(g):
        a.accumulate(g - np.exp(out) * g.sum(axis=axis, keepdims=True))
    return Tensor(out, parents=(a,), backward=backward)


# -- linear algebra -----------------------------------------------------------------
def matmul(a, b):
    """Dense a @ b (batched over leading axes), BLAS through NumPy; 1-D operands are
    vectors as in NumPy."""
    a, b = pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs operands of rank >= 1; received shapes {a.shape} "
                         f"and {b.shape} (use multiply for scalars)")
    if a.ndim == 1 or b.ndim == 1:           # lift vectors to matrices, then drop the axis
        a2 = reshape(a, (1, -1)) if a.ndim == 1 else a
        b2 = reshape(b, (-1, 1)) if b.ndim == 1 else b
        out = matmul(a2, b2)
        shape = out.shape[:-2] + (out.shape[-2:] if a.ndim > 1 and b.ndim > 1 else
                                  out.shape[-2:-1] if b.ndim == 1 and a.ndim > 1 else
                                  out.shape[-1:] if a.ndim == 1 and b.ndim > 1 else ())
        return reshape(out, shape)

    def backward(g):
        if a.requires_grad:
            a.accumulate(_unbroadcast(g @ np.swapaxes(b.data, -1, -2), a.shape))
        if b.requires_grad:
            b.accumulate(_unbroadcast(np.swapaxes(a.data, -1, -2) @ g, b.shape))
    return Tensor(a.data @ b.data, parents=(a, b), backward=backward)


def einsum(subscripts, *operands):
    """``np.einsum`` with gradients: the adjoint for operand i is an einsum of the output
    gradient with the other operands, broadcast over labels only operand i carries."""
    ops = [as_tensor(o) for o in operands]
    ins, out_subs = _einsum_explicit(subscripts, [o.ndim for o in ops])
    result = np.einsum(subscripts, *[o.data for o in ops])
    sizes = {}
    for sub, o in zip(ins, ops):
        for ch, n in zip(sub, o.shape):
            sizes[ch] = max(sizes.get(ch, 1), n)

    def backward(g):
        for i, o in enumerate(ops):
            if not o.requires_grad:
                continue
            sub = ins[i]
            if len(set(sub)) != len(sub):
                raise NotImplementedError(f"einsum gradient for operand {i} with a repeated "
                                          f"label ({sub!r}, a diagonal) is not supported")
            others = [ins[j] for j in range(len(ops)) if j != i]
            present = set(out_subs).union(*others) if others else set(out_subs)
            kept = "".join(ch for ch in sub if ch in present)
            spec = ",".join([out_subs] + others) + "->" + kept
            gi = np.einsum(spec, g, *[ops[j].data for j in range(len(ops)) if j != i])
            # labels summed only inside operand i: broadcast back along them
            gi = gi.reshape([sizes[ch] if ch in present else 1 for ch in sub])
            o.accumulate(_unbroadcast(np.broadcast_to(gi, [sizes[ch] for ch in sub]), o.shape))
    return Tensor(np.asarray(result), parents=tuple(ops), backward=backward)


def _einsum_explicit(subscripts, ndims):
    """Input label strings and the output label string, with ``...`` spelled out and the
    implicit output (labels seen once, sorted) made explicit."""
    spec = subscripts.replace(" ", "")
    lhs, arrow, rhs = spec.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(ndims):
        raise ValueError(f"einsum subscripts {subscripts!r} name {len(ins)} operands; "
                         f"received {len(ndims)}")
    used = set(spec) - set(".,->")
    free = iter(ch for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                if ch not in used)
    n_ell = max([nd - (len(s) - 3) for s, nd in zip(ins, ndims) if "..." in s] or [0])
    ell = "".join(next(free) for _ in range(n_ell))
    ins = [s.replace("...", ell[n_ell - (nd - (len(s) - 3)):]) if "..." in s else s
           for s, nd in zip(ins, ndims)]
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {}
        for ch in "".join(ins):
            counts[ch] = counts.get(ch, 0) + 1
        out = ell + "".join(sorted(ch for ch, n in counts.items() if n == 1 and ch not in ell))
    return ins, out


def tap(t, on_grad):
    """``t``, calling ``on_grad(g)`` with its gradient in the backward pass before that
    gradient goes on (how layers hand their output gradients to the wafer strategy).
    ``t`` must be an op's output that only the caller holds yet (else the hook would see
    other uses' gradients too): its own backward is hooked, no node added (one Tensor and
    one graph visit fewer a placed layer and step); a tensor made by no op gets a node."""
    backward = t._backward
    if backward is None:
        def passed_on(g):
            on_grad(g)
            t.accumulate(g)
        return Tensor(t.data, parents=(t,), backward=passed_on)

    def hooked(g):
        on_grad(g)
        backward(g)
    t._backward = hooked
    return t


# -- complex input where Keras on torch refuses it ------------------------------------------
class ComplexInputError(TypeError, NotImplementedError):
    """A complex tensor given to an op that is not defined on complex numbers. Keras on
    torch raises NotImplementedError, RuntimeError or TypeError for these (by op); this one
    is all three, so a program catching any of them behaves the same."""


def _is_complex(v):
    if isinstance(v, complex):
        return True
    dt = getattr(v, "dtype", None)
    if dt is not None:
        try:
            return np.dtype(dt).kind == "c"
        except TypeError:                   # a foreign dtype (torch's): ask its name
            return "complex" in str(dt)
    return False


def real_only(fn, name, supported_by_keras=False):
    """``fn`` refusing complex input by ``name`` (NumPy would answer lexicographically, or
    drop the imaginary part with only a warning: a silent wrong answer). One check for
    every op listed in ops._REAL_ONLY and activations._REAL_ONLY."""
    import functools

    if getattr(fn, "_real_only", False):
        return fn

    @functools.wraps(fn)
    def op(*args, **kwargs):
        for v in args + tuple(kwargs.values()):
            if _is_complex(v) or (isinstance(v, (list, tuple))
                                  and any(_is_complex(u) for u in v)):
                dt = getattr(v, "dtype", None) or type(v).__name__
                if supported_by_keras:
                    raise ComplexInputError(
                        f"{name} of a complex tensor ({dt}) is not implemented in wsekern.nn "
                        "(Keras on torch computes it); apply it to ops.real(x) and "
                        "ops.imag(x), or to ops.abs(x), as the maths allows")
                raise ComplexInputError(
                    f"{name} is not defined on complex numbers (received {dt}), as in Keras "
                    "on torch; apply it to ops.real(x), ops.imag(x) or ops.abs(x)")
        return fn(*args, **kwargs)
    op._real_only = True
    return op
