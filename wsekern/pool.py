"""max_pool2d and avg_pool2d, forward and backward: torch's semantics (NCHW) and the
channels-last (NHWC) loops the Keras layers use, both on the Cython kernels of _nhwc.

Padding is implicit: -inf for max pooling, zeros counted in the average
(torch's count_include_pad=True). Output size floor((H + 2p - k) / s) + 1.
An NCHW array is pooled as NHWC with one channel: (N*C, H, W, 1), no copy.
"""
import numpy as np

from . import _nhwc
from ._budget import check_expanded
from ._threads import resolve_threads
from .conv import NhwcGeometry, pair
from .sparse import check_float_dtype, native_order


def _geometry(x, kernel_size, stride, padding):
    x = native_order(np.asarray(x), "x")
    check_float_dtype(x.dtype, "x")
    check_expanded(x, "x")
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
    N, C, H, W = x.shape
    g = NhwcGeometry.of((N * C, H, W, 1), k, s, ((p[0],) * 2, (p[1],) * 2))
    return np.ascontiguousarray(x).reshape(N * C, H, W, 1), g


def _nchw(y, x_shape):
    return y.reshape(x_shape[0], x_shape[1], y.shape[1], y.shape[2])


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """The maximum of each window, as ``torch.nn.functional.max_pool2d`` (NaN wins).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        float32 or float64 input.
    kernel_size : int or (int, int)
        Window height and width.
    stride : int or (int, int), optional
        Step between windows; the kernel size when None (torch's default).
    padding : int or (int, int), default 0
        Implicit padding on each side, at most half the kernel.

    Returns
    -------
    ndarray, shape (N, C, OH, OW)
        ``OH = (H + 2 * padding - kernel) // stride + 1``, likewise OW; x's dtype.

    Raises
    ------
    ValueError
        x not 4-D, padding above half the kernel, or a window that does not fit.

    Examples
    --------
    >>> import numpy as np, wsekern
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> wsekern.max_pool2d(x, 2)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """
    xs, g = _geometry(x, kernel_size, stride, padding)
    return _nchw(max_pool_nhwc(xs, g)[0], np.shape(x))


def max_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0):
    """Gradient of :func:`max_pool2d`: each window's gradient goes to its (first) maximum,
    the first NaN when there is one; a window of -inf gives it to its first input.

    Parameters
    ----------
    grad_out : ndarray, shape (N, C, OH, OW)
        The gradient of the pooled output.
    x, kernel_size, stride, padding
        As given to :func:`max_pool2d`.

    Returns
    -------
    ndarray, shape (N, C, H, W)
        The gradient of x.
    """
    xs, g = _geometry(x, kernel_size, stride, padding)
    grad = _check_grad(grad_out, xs, g, np.shape(x))
    _, arg = max_pool_nhwc(xs, g)
    return _nchw(max_pool_nhwc_backward(grad, arg, g), np.shape(x))


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """The mean of each window, as ``torch.nn.functional.avg_pool2d`` (padding zeros are
    counted: ``count_include_pad=True``).

    Parameters
    ----------
    x, kernel_size, stride, padding
        As for :func:`max_pool2d`.

    Returns
    -------
    ndarray, shape (N, C, OH, OW)
        x's dtype.

    Raises
    ------
    ValueError
        x not 4-D, padding above half the kernel, or a window that does not fit.
    """
    xs, g = _geometry(x, kernel_size, stride, padding)
    return _nchw(avg_pool_nhwc(xs, g, count_pad=True), np.shape(x))


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0):
    """Gradient of :func:`avg_pool2d`: each window's gradient shared equally by its inputs.

    Parameters
    ----------
    grad_out : ndarray, shape (N, C, OH, OW)
        The gradient of the pooled output.
    x, kernel_size, stride, padding
        As given to :func:`avg_pool2d`.

    Returns
    -------
    ndarray, shape (N, C, H, W)
        The gradient of x.
    """
    xs, g = _geometry(x, kernel_size, stride, padding)
    grad = _check_grad(grad_out, xs, g, np.shape(x))
    return _nchw(avg_pool_nhwc_backward(grad, g, count_pad=True), np.shape(x))


def _check_grad(grad_out, xs, g, x_shape):
    grad_out = native_order(np.asarray(grad_out), "grad_out")
    check_float_dtype(grad_out.dtype, "grad_out")
    check_expanded(grad_out, "grad_out")
    expected = (x_shape[0], x_shape[1], g.OH, g.OW)
    if grad_out.shape != expected:
        raise ValueError(f"grad_out must have the output's shape {expected}; received "
                         f"{grad_out.shape}")
    dtype = np.result_type(xs.dtype, grad_out.dtype)
    return np.ascontiguousarray(grad_out, dtype=dtype).reshape(g.B, g.OH, g.OW, 1)


# -- channels-last, on a validated NhwcGeometry ---------------------------------------------
def _threads(g):
    return resolve_threads(None, g.rows * g.C * g.kh * g.kw)


def _nhwc_operand(a, shape, name, dtype=None):
    """``a`` as a C-contiguous float32/float64 array of ``shape``, else a clear error."""
    a = np.asarray(a)
    check_float_dtype(a.dtype if dtype is None else dtype, name)
    check_expanded(a, name)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (the geometry's); received {a.shape}")
    return np.ascontiguousarray(a, dtype=dtype)


def max_pool_nhwc(x, g):
    """(out, arg): the window maxima (B, OH, OW, C) and, per output, the flat pixel
    index ih * W + iw of the maximum the gradient goes to."""
    x = _nhwc_operand(x, (g.B, g.H, g.W, g.C), "x")
    out = np.empty((g.B, g.OH, g.OW, g.C), dtype=x.dtype)
    arg = np.empty(out.shape, dtype=np.int32)
    (sh, sw), (ph, pw) = g.stride, g.pad
    _nhwc.max_pool(x, out, arg, g.kh, g.kw, sh, sw, ph, pw, _threads(g))
    return out, arg


def max_pool_nhwc_backward(grad, arg, g, *, check_arg=True):
    """The gradient of :func:`max_pool_nhwc` onto x. ``check_arg=False`` skips the scan of
    ``arg``'s range (two passes over it) for a caller that holds max_pool_nhwc's own."""
    grad = _nhwc_operand(grad, (g.B, g.OH, g.OW, g.C), "grad")
    arg = np.ascontiguousarray(arg)
    if arg.shape != grad.shape or arg.dtype != np.int32:
        raise ValueError(f"arg must be the int32 array max_pool_nhwc returned, of shape "
                         f"{grad.shape}; received {arg.dtype} of shape {arg.shape}")
    if check_arg and arg.size and (arg.min() < -1 or arg.max() >= g.H * g.W):
        raise ValueError(f"arg holds pixel indices outside [-1, {g.H * g.W}); it must come "
                         f"from max_pool_nhwc with this geometry")
    (kh, kw), (sh, sw) = (g.kh, g.kw), g.stride
    if g.pad == (0, 0) and kh <= sh and kw <= sw:       # windows apart: every pixel written
        gx = np.empty((g.B, g.H, g.W, g.C), dtype=grad.dtype)
        _nhwc.max_pool_backward(grad, arg, gx, _threads(g), kh, kw, sh, sw)
    else:
        gx = np.zeros((g.B, g.H, g.W, g.C), dtype=grad.dtype)
        _nhwc.max_pool_backward(grad, arg, gx, _threads(g))
    return gx


def avg_pool_nhwc(x, g, count_pad):
    """Window means; ``count_pad``: the padding counts as zeros (torch), else only the
    pixels inside are averaged (Keras's 'same')."""
    x = _nhwc_operand(x, (g.B, g.H, g.W, g.C), "x")
    out = np.empty((g.B, g.OH, g.OW, g.C), dtype=x.dtype)
    (sh, sw), (ph, pw) = g.stride, g.pad
    _nhwc.avg_pool(x, out, g.kh, g.kw, sh, sw, ph, pw, count_pad, _threads(g))
    return out


def avg_pool_nhwc_backward(grad, g, count_pad):
    grad = _nhwc_operand(grad, (g.B, g.OH, g.OW, g.C), "grad")
    gx = np.zeros((g.B, g.H, g.W, g.C), dtype=grad.dtype)
    (sh, sw), (ph, pw) = g.stride, g.pad
    _nhwc.avg_pool_backward(grad, gx, g.kh, g.kw, sh, sw, ph, pw, count_pad, _threads(g))
    return gx
