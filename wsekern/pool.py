"""max_pool2d and avg_pool2d, forward and backward, with torch's semantics (NCHW).

Padding is implicit: -inf for max pooling, zeros counted in the average
(torch's count_include_pad=True). Output size floor((H + 2p - k) / s) + 1.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .conv import pair
from .sparse import check_float_dtype


def _geometry(x, kernel_size, stride, padding):
    x = np.asarray(x)
    check_float_dtype(x.dtype, "x")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W); received shape {x.shape}")
    k = pair(kernel_size, "kernel_size", 1)
    s = k if stride is None else pair(stride, "stride", 1)
    p = pair(padding, "padding", 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding must be at most half the kernel size (torch's rule); "
                         f"received padding={p}, kernel_size={k}")
    OH = (x.shape[2] + 2 * p[0] - k[0]) // s[0] + 1
    OW = (x.shape[3] + 2 * p[1] - k[1]) // s[1] + 1
    if OH <= 0 or OW <= 0:
        raise ValueError(f"the output would be {OH}x{OW}: kernel {k} does not fit the input "
                         f"{x.shape[2:]} padded by {p}")
    return x, k, s, p, OH, OW


def _windows(xp, k, s, OH, OW):
    """(N, C, OH, OW, kh, kw) view of the windows."""
    return sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]][:, :, :OH, :OW]


def _pad(x, p, value):
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=value)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    x, k, s, p, OH, OW = _geometry(x, kernel_size, stride, padding)
    win = _windows(_pad(x, p, -np.inf), k, s, OH, OW)
    return np.ascontiguousarray(win.max(axis=(4, 5)))


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0):
    """Gradient of max_pool2d: each window's gradient goes to its (first) maximum."""
    x, k, s, p, OH, OW = _geometry(x, kernel_size, stride, padding)
    grad_out = _check_grad(grad_out, x, OH, OW)
    win = _windows(_pad(x, p, -np.inf), k, s, OH, OW)
    flat = win.reshape(win.shape[:4] + (-1,))
    # NaN wins, as in torch: argmax over (value, isnan) picks the first NaN or maximum.
    arg = np.where(np.isnan(flat).any(axis=-1), np.isnan(flat).argmax(axis=-1),
                   flat.argmax(axis=-1))
    # A window whose inputs are all -inf: torch keeps its first input, never the padding.
    inside = _windows(_pad(np.ones(x.shape[2:], dtype=bool)[None, None], p, False), k, s,
                      OH, OW).reshape(1, 1, OH, OW, -1)
    lost = np.take_along_axis(~inside, arg[..., None], axis=-1)[..., 0]
    arg = np.where(lost, inside.argmax(axis=-1), arg)
    gxp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * p[0], x.shape[3] + 2 * p[1]),
                   dtype=grad_out.dtype)
    for t in range(k[0] * k[1]):
        i, j = divmod(t, k[1])
        gxp[:, :, i:i + s[0] * OH:s[0], j:j + s[1] * OW:s[1]] += np.where(arg == t, grad_out, 0)
    return gxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]].copy()


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    x, k, s, p, OH, OW = _geometry(x, kernel_size, stride, padding)
    win = _windows(_pad(x, p, 0), k, s, OH, OW)
    return np.ascontiguousarray(win.sum(axis=(4, 5)) / (k[0] * k[1])).astype(x.dtype)


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0):
    x, k, s, p, OH, OW = _geometry(x, kernel_size, stride, padding)
    grad_out = _check_grad(grad_out, x, OH, OW)
    gxp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * p[0], x.shape[3] + 2 * p[1]),
                   dtype=grad_out.dtype)
    share = grad_out / (k[0] * k[1])
    for i in range(k[0]):
        for j in range(k[1]):
            gxp[:, :, i:i + s[0] * OH:s[0], j:j + s[1] * OW:s[1]] += share
    return gxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]].copy()


def _check_grad(grad_out, x, OH, OW):
    grad_out = np.asarray(grad_out)
    check_float_dtype(grad_out.dtype, "grad_out")
    expected = (x.shape[0], x.shape[1], OH, OW)
    if grad_out.shape != expected:
        raise ValueError(f"grad_out must have the output's shape {expected}; received "
                         f"{grad_out.shape}")
    return grad_out.astype(np.result_type(x.dtype, grad_out.dtype), copy=False)
