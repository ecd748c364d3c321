"""A pruned channels-last convolution's training step on channel planes (stride 1).

The kernel is a Keras kernel (kh, kw, C, O) with a fixed pattern of kept weights. Each
image is copied once per product into C planes (padded pixel (h, w) at ``h * Wp + w``),
where a tap (i, j) is a shift of the whole plane; then

- the forward is, per (image, filter), one spmm row kernel call over the filter's kept
  weights computing the output plane "wide" (OH rows of Wp pixels),
- the input gradient is the same call per (image, input channel) on the output
  gradient's planes, padded so that each shifted read outside the output is a zero,
- the weight gradient is one plane dot product per (image, kept weight), nothing else.

Each product is ``nnz * B * (plane size)`` multiply-adds against ``K * O * B * OH * OW``
for im2col + GEMM; :func:`planes_pay` decides from this CPU's cost table. Zero weights
are not multiplied, which equals the masked dense product only while the operands are
finite: the callers take the dense path for a non-finite batch.
"""
from dataclasses import dataclass

import numpy as np

from . import _conv
from ._budget import check_memory
from ._threads import resolve_threads
from .conv import bias_relu_nhwc, relu_grad_bias_nhwc
from .costs import cost_table
from .simd_path import SIMD_PATH  # noqa: F401  (imported: selects _conv's SIMD path)

# Nanoseconds per element moved between NHWC and the planes (a transpose that also pads):
# measured on Zen 3 (1 thread) on the keras.io convnet's second layer, 0.4-0.6 ns.
MOVE_NS = 0.5
_ALIGN = 16           # plane lengths rounded up to whole vectors (no scalar tails)


def _round_up(n, m=_ALIGN):
    return -(-n // m) * m


@dataclass(frozen=True)
class PlaneGeometry:
    """Sizes of one stride-1 convolution on channel planes: input (H, W, C) padded by
    ``pads`` to (Hp, Wp), kernel (kh, kw) dilated by ``dilation``, O filters."""
    H: int
    W: int
    C: int
    O: int
    kh: int
    kw: int
    pads: tuple
    dilation: tuple
    Hp: int
    Wp: int
    OH: int
    OW: int

    @classmethod
    def of(cls, x_shape, kernel_shape, pads, dilation):
        _, H, W, C = (int(n) for n in x_shape)
        kh, kw, Ck, O = (int(n) for n in kernel_shape)
        if Ck != C:
            raise ValueError(f"the kernel {tuple(kernel_shape)} expects {Ck} input channels; "
                             f"received x of shape {tuple(x_shape)}")
        (t, b), (l, r) = pads
        dh, dw = dilation
        Hp, Wp = H + t + b, W + l + r
        OH, OW = Hp - (kh - 1) * dh, Wp - (kw - 1) * dw
        if OH <= 0 or OW <= 0:
            raise ValueError(f"kernel {kh}x{kw} dilated {dilation} does not fit the input "
                             f"{H}x{W} padded by {pads}")
        return cls(H, W, C, O, kh, kw, ((t, b), (l, r)), (dh, dw), Hp, Wp, OH, OW)

    @property
    def reach(self):
        """The largest tap shift (i * dh * Wp + j * dw)."""
        return (self.kh - 1) * self.dilation[0] * self.Wp + (self.kw - 1) * self.dilation[1]

    @property
    def n_out(self):
        """Elements of a wide output plane computed (OH rows of Wp, whole vectors)."""
        return _round_up(self.OH * self.Wp)

    @property
    def n_in(self):
        """Elements of a padded input plane computed by the input gradient."""
        return _round_up(self.Hp * self.Wp)

    @property
    def x_stride(self):
        """Plane length of the input: every shifted read of a wide output plane inside."""
        return _round_up(max(self.reach + self.n_out, self.n_in))

    @property
    def g_stride(self):
        """Plane length of the output gradient: ``reach`` zeros, the OH x Wp plane, zeros
        after, so the input gradient's shifted reads all land inside."""
        return _round_up(self.reach + self.n_in)

    def tap_shift(self, i, j):
        return i * self.dilation[0] * self.Wp + j * self.dilation[1]

    @property
    def fits_int32(self):
        """Whether every offset into one image's planes fits the loops' int32 indices."""
        return max(self.C * self.x_stride, self.O * self.g_stride) < 2**31


class PlanePattern:
    """A kernel's kept weights (a boolean mask (kh, kw, C, O)) as the planes loops read
    them, for one geometry: by filter (forward, weight gradient) and by input channel
    (input gradient). Built once per mask and geometry; only the values change a step."""

    def __init__(self, mask, g):
        if not g.fits_int32:
            raise ValueError(f"one image's planes ({g.C} x {g.x_stride} input, {g.O} x "
                             f"{g.g_stride} gradient elements) are too large for int32 "
                             f"offsets; use the dense path or smaller images")
        kh, kw, C, O = mask.shape
        i, j, c, o = np.nonzero(mask)
        shift = g.tap_shift(i, j)
        by_o = np.lexsort((shift, c, o))                  # filter, then input channel, tap
        self.flat_o = np.ravel_multi_index((i, j, c, o), mask.shape)[by_o]
        self.x_off = (c[by_o] * g.x_stride + shift[by_o]).astype(np.int32)
        self.o_ptr = np.zeros(O + 1, dtype=np.int32)
        np.cumsum(np.bincount(o, minlength=O), out=self.o_ptr[1:])
        by_c = np.lexsort((shift, o, c))
        self.flat_c = np.ravel_multi_index((i, j, c, o), mask.shape)[by_c]
        self.g_off = (o[by_c] * g.g_stride + g.reach - shift[by_c]).astype(np.int32)
        self.c_ptr = np.zeros(C + 1, dtype=np.int32)
        np.cumsum(np.bincount(c, minlength=C), out=self.c_ptr[1:])
        self.mask = mask.copy()
        self.geometry = g
        self.nnz = len(self.flat_o)

    @classmethod
    def cached(cls, holder, mask, g):
        """The pattern kept on ``holder`` (a dict) when its mask and geometry still match,
        else a new one stored there (a pruning schedule may change the mask in place)."""
        p = holder.get("pattern")
        if p is None or p.geometry != g or not np.array_equal(p.mask, mask):
            p = holder["pattern"] = cls(mask, g)
        return p


def planes_pay(x_shape, g, nnz, input_grad=True, cost=None):
    """Whether the planes step (forward, weight gradient, input gradient when
    ``input_grad``) is cheaper than im2col + three GEMMs on the masked kernel, from this
    CPU's cost table and the layout moves each needs."""
    if not g.fits_int32:
        return False
    cost = cost or cost_table()
    B = x_shape[0]
    products = 3 if input_grad else 2
    K = g.kh * g.kw * g.C
    pixels = B * g.OH * g.OW
    dense = (products * K * g.O * pixels * cost.blas_mac
             + (1 + input_grad) * pixels * K * MOVE_NS)             # im2col (+ col2im)
    sparse = (nnz * B * (2 * g.n_out + input_grad * g.n_in) * cost.spmm_mac
              + B * (g.C * g.x_stride + 2 * g.O * g.OH * g.OW
                     + input_grad * (g.O * g.g_stride + g.C * g.H * g.W)) * MOVE_NS)
    return sparse < dense


def _threads(n_threads, work):
    return resolve_threads(n_threads, work)


def _expect(name, a, shape, dtype=None):
    """The loops below read and write without bounds checks: every operand is checked
    against the geometry first, naming what was received."""
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 ndarray; received "
                        f"{getattr(a, 'dtype', type(a).__name__)}")
    if a.shape != tuple(shape) or (dtype is not None and a.dtype != dtype):
        want = f"{np.dtype(dtype)} " if dtype is not None else ""
        raise ValueError(f"{name} must be a {want}array of shape {tuple(shape)} for this "
                         f"geometry; received {a.dtype} {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")


def to_planes(x, g, n_threads=None):
    """The padded input planes (B, C, x_stride) of the channels-last ``x``."""
    B = x.shape[0] if getattr(x, "ndim", 0) == 4 else -1
    _expect("x", x, (B, g.H, g.W, g.C))
    check_memory(B * g.C * g.x_stride * x.itemsize, f"input planes of x {x.shape}",
                 "lower the batch or the image size")
    planes = np.empty((B, g.C, g.x_stride), dtype=x.dtype)
    (t, _), (l, _) = g.pads
    _conv.nhwc_to_planes(x, planes, t * g.Wp + l, g.Wp, _threads(n_threads, planes.size))
    return planes


def forward(X, values, pattern, bias=None, relu=False, n_threads=None):
    """The convolution of the input planes ``X`` with the kept ``values`` (in
    ``pattern.flat_o`` order), channels-last (B, OH, OW, O), + bias, then ReLU."""
    g = pattern.geometry
    B = X.shape[0] if getattr(X, "ndim", 0) == 3 else -1
    _expect("X (input planes)", X, (B, g.C, g.x_stride))
    _expect("values", values, (pattern.nnz,), X.dtype)
    if bias is not None and np.shape(bias) != (g.O,):
        raise ValueError(f"bias must have shape ({g.O},); received {np.shape(bias)}")
    wide = np.empty((B, g.O, g.n_out), dtype=X.dtype)
    threads = _threads(n_threads, pattern.nnz * B * g.n_out)
    _conv.planes_rows(X, values, pattern.x_off, pattern.o_ptr, wide, g.n_out, threads)
    y = np.empty((B, g.OH, g.OW, g.O), dtype=X.dtype)
    b = np.empty(0, X.dtype) if bias is None else np.ascontiguousarray(bias, dtype=X.dtype)
    _conv.planes_to_nhwc(wide, y, 0, g.Wp, b, _threads(n_threads, y.size))
    if relu:
        bias_relu_nhwc(y.reshape(-1, g.O), None, True)
    return y


def grad_planes(grad, y, relu, g, n_threads=None):
    """(the output gradient (B, OH, OW, O) through ReLU's derivative (from its output
    ``y``) when ``relu``, as padded planes (B, O, g_stride); the bias gradient)."""
    B = grad.shape[0] if getattr(grad, "ndim", 0) == 4 else -1
    _expect("grad", grad, (B, g.OH, g.OW, g.O))
    _expect("y", y, grad.shape, grad.dtype)
    masked, db = relu_grad_bias_nhwc(grad.reshape(-1, g.O), y.reshape(-1, g.O), relu)
    out = np.empty((B, g.O, g.g_stride), dtype=grad.dtype)
    _conv.nhwc_to_planes(masked.reshape(grad.shape), out, g.reach, g.Wp,
                         _threads(n_threads, out.size))
    return out, db


def grad_weight(X, G, pattern, n_threads=None):
    """d loss / d kernel at the kept weights (``pattern.flat_o`` order)."""
    g = pattern.geometry
    B = X.shape[0] if getattr(X, "ndim", 0) == 3 else -1
    _expect("X (input planes)", X, (B, g.C, g.x_stride))
    _expect("G (gradient planes)", G, (B, g.O, g.g_stride), X.dtype)
    threads = _threads(n_threads, pattern.nnz * X.shape[0] * g.OH * g.Wp)
    acc = np.zeros((threads, pattern.nnz), dtype=X.dtype)
    # n_out: whole vectors; the gradient planes are zero past each output row
    _conv.planes_grad_weight(X, G, pattern.x_off, pattern.o_ptr, g.reach, g.n_out, acc,
                             threads)
    return acc.sum(axis=0) if threads > 1 else acc[0]


def grad_input(G, values_c, pattern, n_threads=None):
    """d loss / d x, channels-last (B, H, W, C), from the output gradient's planes and
    the kept values in ``pattern.flat_c`` order."""
    g = pattern.geometry
    B = G.shape[0] if getattr(G, "ndim", 0) == 3 else -1
    _expect("G (gradient planes)", G, (B, g.O, g.g_stride))
    _expect("values_c", values_c, (pattern.nnz,), G.dtype)
    gx_planes = np.empty((B, g.C, g.n_in), dtype=G.dtype)
    _conv.planes_rows(G, values_c, pattern.g_off, pattern.c_ptr, gx_planes, g.n_in,
                      _threads(n_threads, pattern.nnz * B * g.n_in))
    gx = np.empty((B, g.H, g.W, g.C), dtype=G.dtype)
    (t, _), (l, _) = g.pads
    _conv.planes_to_nhwc(gx_planes, gx, t * g.Wp + l, g.Wp, np.empty(0, G.dtype),
                         _threads(n_threads, gx.size))
    return gx
