"""The dense ``x @ kernel + bias`` of a Dense layer as one graph node, GELU fused in.

x (..., K) is multiplied as its 2-D view (rows, K) by one GEMM into a fresh array, the bias
is added in place and the exact GELU (when it is the activation) overwrites that array,
keeping its derivative. Backward: dx = dy W^T and dW = X^T dy, one GEMM each on the 2-D
views (no transposed copies), db the column sums of dy. Autograd-wise this is what
reshape, matmul, add and gelu compose to, in one node and without their temporaries.

"""
import numpy as np

from ... import _activations
from ..._threads import resolve_threads
from ..tensor import Tensor


def linear_applies(x, kernel, bias):
    """Whether :func:`linear` computes this product: float32 or float64 throughout."""
    dt = x.dtype
    return (dt in (np.float32, np.float64) and kernel.dtype == dt and x.ndim >= 2
            and (bias is None or bias.dtype == dt))


def add_bias_activation(y, bias=None, activation=None):
    """``y += bias`` and ``y = act(y)`` in place (y a fresh C-contiguous float array) for
    ``activation`` ``"gelu"`` (exact) or ``"relu"``; returns the activation's derivative at
    the pre-activation (None without one)."""
    if bias is not None:
        y += bias
    if activation is None or not y.size:
        return None
    if activation == "relu":
        d = (y > 0).astype(y.dtype)
        np.maximum(y, 0, out=y)                # NaN stays NaN, as the relu op keeps it
        return d
    flat = y.reshape(-1)
    d = np.empty_like(flat)
    _activations.gelu(flat, flat, d, resolve_threads(None, flat.size * 8))
    return d.reshape(y.shape)


def linear(x, kernel, bias=None, gelu=False):
    """``gelu(x @ kernel + bias)`` (or without the GELU) for x (..., K), kernel (K, units)."""
    xd = x.data
    K, units = kernel.shape
    rows = int(np.prod(xd.shape[:-1]))          # not -1: K = 0 (no features) is valid
    x2 = xd.reshape(rows, K)                                               # (rows, K)
    y = x2 @ kernel.data                                                   # (rows, units)
    d = add_bias_activation(y, None if bias is None else bias.data, "gelu" if gelu else None)
    parents = (x, kernel) if bias is None else (x, kernel, bias)

    def backward(g):
        # in the model's dtype, as the unfused ops keep it (a float64 upstream gradient)
        g2 = g.reshape(rows, units).astype(kernel.data.dtype, copy=False)  # (rows, units)
        db = None
        if d is not None:               # d has the model's dtype: so has the product
            out = np.empty_like(g2)
            if (bias is not None and bias.requires_grad and units > 1 and g2.flags.c_contiguous
                    and d.dtype == g2.dtype and d.flags.c_contiguous):
                db = np.empty(units, g2.dtype)     # the product and its column sums at once
                # (NumPy's bits: rows added in order; one column it sums pairwise)
                _activations.scale_column_sums(g2, d, out, db)
                g2 = out
            else:
                g2 = np.multiply(g2, d, out=out)
        if x.requires_grad:
            x.accumulate((g2 @ kernel.data.T).reshape(xd.shape))
        if kernel.requires_grad:
            kernel.accumulate(x2.T @ g2)
        if bias is not None and bias.requires_grad:
            bias.accumulate(g2.sum(axis=0) if db is None else db)
    return Tensor(y.reshape(xd.shape[:-1] + (units,)), parents=parents, backward=backward)
