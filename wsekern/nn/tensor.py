"""A small reverse-mode autograd over NumPy arrays (micrograd's design, array-valued).

Each op returns a new Tensor holding its parents and a closure that, given the
gradient of the output, accumulates gradients into the parents. ``backward()`` walks
the graph in reverse topological order. Matmuls by sparse weights and convolutions
call the wsekern kernels (see ops in layers); everything else is NumPy.
"""
import numpy as np


class Tensor:
    """An array, its gradient, and how it was made."""
    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "name")
    __array_priority__ = 100          # so ndarray + Tensor defers to Tensor.__radd__

    def __init__(self, data, requires_grad=False, parents=(), backward=None, name=None):
        self.data = data if isinstance(data, np.ndarray) else np.asarray(data)
        self.grad = None
        self.requires_grad = requires_grad or any(p.requires_grad for p in parents)
        self._parents = parents if self.requires_grad else ()
        self._backward = backward if self.requires_grad else None
        self.name = name

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
        order, seen = [], set()
        stack = [(self, False)]
        while stack:                                 # iterative DFS: deep graphs are fine
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if id(p) not in seen)
        self.grad = np.ones_like(self.data) if grad is None else grad
        for node in reversed(order):
            if node._backward is not None and node.grad is not None:
                node._backward(node.grad)

    # -- operators -----------------------------------------------------------
    def __add__(self, other):
        return add(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return add(self, neg(as_tensor(other)))

    def __rsub__(self, other):
        return add(as_tensor(other), neg(self))

    def __mul__(self, other):
        return mul(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return mul(self, power(as_tensor(other), -1.0))

    def __rtruediv__(self, other):
        return mul(as_tensor(other), power(self, -1.0))

    def __neg__(self):
        return neg(self)

    def __pow__(self, p):
        return power(self, p)

    def __matmul__(self, other):
        return matmul(self, other)

    def __getitem__(self, idx):
        return getitem(self, idx)

    def sum(self, axis=None, keepdims=False):
        return tsum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis, keepdims)

    def reshape(self, *shape):
        return reshape(self, shape[0] if len(shape) == 1 else shape)


def as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


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
    a, b = as_tensor(a), as_tensor(b)

    def backward(g):
        a.accumulate(_unbroadcast(g, a.shape))
        b.accumulate(_unbroadcast(g, b.shape))
    return Tensor(a.data + b.data, parents=(a, b), backward=backward)


def mul(a, b):
    a, b = as_tensor(a), as_tensor(b)

    def backward(g):
        a.accumulate(_unbroadcast(g * b.data, a.shape))
        b.accumulate(_unbroadcast(g * a.data, b.shape))
    return Tensor(a.data * b.data, parents=(a, b), backward=backward)


def neg(a):
    return Tensor(-a.data, parents=(a,), backward=lambda g: a.accumulate(-g))


def power(a, p):
    a = as_tensor(a)
    out = a.data ** p
    return Tensor(out, parents=(a,), backward=lambda g: a.accumulate(g * p * a.data ** (p - 1)))


def exp(a):
    out = np.exp(a.data)
    return Tensor(out, parents=(a,), backward=lambda g: a.accumulate(g * out))


def log(a):
    return Tensor(np.log(a.data), parents=(a,), backward=lambda g: a.accumulate(g / a.data))


def sqrt(a):
    out = np.sqrt(a.data)
    return Tensor(out, parents=(a,), backward=lambda g: a.accumulate(g * 0.5 / out))


def where(mask, a, b):
    a, b = as_tensor(a), as_tensor(b)

    def backward(g):
        a.accumulate(_unbroadcast(np.where(mask, g, 0), a.shape))
        b.accumulate(_unbroadcast(np.where(mask, 0, g), b.shape))
    return Tensor(np.where(mask, a.data, b.data), parents=(a, b), backward=backward)


# -- reductions and shapes ------------------------------------------------------------
def tsum(a, axis=None, keepdims=False):
    def backward(g):
        if axis is not None and not keepdims:
            g = np.expand_dims(g, axis)
        a.accumulate(np.broadcast_to(g, a.shape).astype(a.dtype, copy=False))
    return Tensor(a.data.sum(axis=axis, keepdims=keepdims), parents=(a,), backward=backward)


def mean(a, axis=None, keepdims=False):
    n = a.data.size if axis is None else np.prod([a.shape[i] for i in np.atleast_1d(axis)])
    return tsum(a, axis, keepdims) * (1.0 / n)


def reshape(a, shape):
    return Tensor(a.data.reshape(shape), parents=(a,),
                  backward=lambda g: a.accumulate(g.reshape(a.shape)))


def transpose(a, axes=None):
    inverse = None if axes is None else np.argsort(axes)
    return Tensor(np.transpose(a.data, axes), parents=(a,),
                  backward=lambda g: a.accumulate(np.transpose(g, inverse)))


def getitem(a, idx):
    def backward(g):
        full = np.zeros_like(a.data)
        np.add.at(full, idx, g)
        a.accumulate(full)
    return Tensor(a.data[idx], parents=(a,), backward=backward)


def concat(tensors, axis=-1):
    sizes = np.cumsum([t.shape[axis] for t in tensors])[:-1]

    def backward(g):
        for t, part in zip(tensors, np.split(g, sizes, axis=axis)):
            t.accumulate(part)
    return Tensor(np.concatenate([t.data for t in tensors], axis=axis), parents=tuple(tensors),
                  backward=backward)


# -- linear algebra -----------------------------------------------------------------
def matmul(a, b):
    """Dense a @ b (batched over leading axes), BLAS through NumPy."""
    a, b = as_tensor(a), as_tensor(b)

    def backward(g):
        if a.requires_grad:
            a.accumulate(_unbroadcast(g @ np.swapaxes(b.data, -1, -2), a.shape))
        if b.requires_grad:
            b.accumulate(_unbroadcast(np.swapaxes(a.data, -1, -2) @ g, b.shape))
    return Tensor(a.data @ b.data, parents=(a, b), backward=backward)


def tap(t, on_grad):
    """``t`` unchanged, calling ``on_grad(g)`` with its gradient in the backward pass
    (how layers hand their output gradients to the wafer strategy)."""
    def backward(g):
        on_grad(g)
        t.accumulate(g)
    return Tensor(t.data, parents=(t,), backward=backward)
