"""What a placed layer hands the wafer strategy about one training step, without forming
an im2col: the nonzero pattern of its streamed operand (features as rows, samples as
columns) or only what the cost model reads of it.

The strategy reads a step's operand through :func:`row_counts` (the nonzeros of each row:
all a weight-streaming step reads) and :func:`pattern` (the K x N bool pattern: what a
layer-pipelined step reads), and its shape. A plain array stands for itself; the classes
here work either out from the layer's own tensors:

- :class:`ConvColumns`: a Conv2D's im2col columns from its NHWC input. The row counts are
  window sums of the per-pixel nonzero counts (O(B H W C + kh kw OH OW C)); the pattern is
  one bool copy of a strided view of the padded input's pattern.
- :class:`SampleMajor`: an (N x K) array read as its (K x N) transpose, with an optional
  keep-mask: the pre-activation gradient of a fused ReLU is ``(g != 0) & (out > 0)``
  (the ReLU's backward passes ``g`` where its input was > 0, else 0).

Rows are in the order the layer's im2col (NCHW, (channel, kernel row, kernel column))
and samples in the order of its output pixels (b, oh, ow): the counts are exactly those of
``im2col(x) != 0``.
"""
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._step_glue import nonzero_pattern, relu_grad_pattern


def row_counts(a):
    """The nonzeros of each row of the K x N operand ``a`` (int64, length K)."""
    if hasattr(a, "row_counts"):
        return a.row_counts()
    return column_counts(a.T != 0)


def column_counts(nz):
    """``np.count_nonzero(nz, axis=0)`` as int64, flattened, for a bool array ``nz``: the
    sum over the first axis taken 255 rows at a time in bytes (each partial count fits
    one), which runs over contiguous memory: about 50x faster than count_nonzero's
    reduction to intp on a (86528, 32) pattern."""
    nz = np.ascontiguousarray(nz, dtype=np.bool_)
    N = nz.shape[0]
    flat = nz.reshape(N, math.prod(nz.shape[1:]))
    M = flat.shape[1]
    q = min(255, N)
    if q == 0 or M == 0:
        return np.zeros(M, np.int64)
    r = N // q
    head = flat[:q * r].view(np.uint8).reshape(q, r * M)
    part = np.add.reduce(head, axis=0, dtype=np.uint8)              # each <= q <= 255
    out = part.reshape(r, M).sum(axis=0, dtype=np.int64)
    if q * r < N:
        out += np.count_nonzero(flat[q * r:], axis=0)
    return out


def pattern(a):
    """The K x N bool pattern of ``a`` (``a != 0``)."""
    if hasattr(a, "pattern"):
        return a.pattern()
    return a != 0


def pattern_nnz(a):
    """(:func:`pattern` of ``a``, its nonzeros as an int where they come with it, else
    None): a float array's in one pass (src/_step_glue.pyx). What a training step's
    costing reads of each operand; a caller that needs the count takes one where it is
    None."""
    if hasattr(a, "pattern_nnz"):
        return a.pattern_nnz()
    if hasattr(a, "pattern"):
        return a.pattern(), None
    got = nonzero_pattern(a)
    return got if got is not None else (a != 0, None)


def taken(a):
    """``a`` as the costing will read it: a float array's pattern and count
    (:class:`Nonzeros`), taken now, while a layer hands it over and its values are still in
    the cache; anything else as it comes."""
    got = nonzero_pattern(a)
    return a if got is None else Nonzeros(*got)


class Nonzeros:
    """A K x N operand known by its nonzero pattern ``nz`` (bool) and their count."""
    __slots__ = ("nz", "nnz", "shape")

    def __init__(self, nz, nnz):
        self.nz, self.nnz, self.shape = nz, int(nnz), nz.shape

    def row_counts(self):
        return column_counts(self.nz.T)

    def pattern(self):
        return self.nz

    def pattern_nnz(self):
        return self.nz, self.nnz


class ConvColumns:
    """A convolution's im2col columns (C*kh*kw x B*OH*OW), known by its NHWC input.

    ``x`` (B, H, W, C) unpadded; ``pads`` ((top, bottom), (left, right)); ``kernel``
    (kh, kw); ``strides``, ``dilation`` pairs. Groups do not change the order: the
    grouped im2col's rows, group after group, are (channel, kh, kw) too."""

    def __init__(self, x, pads, kernel, strides, dilation):
        self.nz = x != 0                                   # (B, H, W, C), bool
        self.pads = tuple(tuple(int(v) for v in p) for p in pads)
        self.kernel = tuple(int(v) for v in kernel)
        self.strides = tuple(int(v) for v in strides)
        self.dilation = tuple(int(v) for v in dilation)
        B, H, W, C = x.shape
        (t, b), (l, r) = self.pads
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.strides, self.dilation
        self.OH = (H + t + b - ((kh - 1) * dh + 1)) // sh + 1
        self.OW = (W + l + r - ((kw - 1) * dw + 1)) // sw + 1
        self.shape = (C * kh * kw, B * self.OH * self.OW)
        self._counts = None

    def _padded(self, a):
        (t, b), (l, r) = self.pads
        if not (t or b or l or r):
            return a
        width = [(0, 0)] * (a.ndim - 3) + [(t, b), (l, r), (0, 0)]
        return np.pad(a, width)

    def row_counts(self):
        """Nonzeros per im2col row: for channel c and tap (i, j), the nonzero inputs the
        tap reads over every output pixel of every sample."""
        if self._counts is None:
            (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.strides, self.dilation
            OH, OW = self.OH, self.OW
            per_pixel = self._padded(column_counts(self.nz).reshape(self.nz.shape[1:]))
            counts = np.empty((per_pixel.shape[2], kh, kw), np.int64)
            for i in range(kh):
                for j in range(kw):
                    win = per_pixel[i * dh:i * dh + (OH - 1) * sh + 1:sh,
                                    j * dw:j * dw + (OW - 1) * sw + 1:sw]
                    counts[:, i, j] = win.sum(axis=(0, 1), dtype=np.int64)
            self._counts = counts.reshape(-1)
        return self._counts

    def pattern(self):
        """``im2col(x) != 0`` as a C-contiguous K x N bool array, from one copy."""
        nz = np.ascontiguousarray(self._padded(self.nz))            # (B, Hp, Wp, C)
        B, _, _, C = nz.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.strides, self.dilation
        sB, sH, sW, sC = nz.strides
        view = as_strided(nz, (C, kh, kw, B, self.OH, self.OW),
                          (sC, dh * sH, dw * sW, sB, sh * sH, sw * sW), writeable=False)
        return np.ascontiguousarray(view).reshape(self.shape)


class SampleMajor:
    """The K x N operand given as its N x K transpose ``a`` (samples as rows, as a layer's
    output gradient comes), nonzero where ``a != 0`` and, with ``keep`` (N x K bool),
    where ``keep`` is set too; or, with ``relu`` (N x K, a fused ReLU's output), where
    ``relu > 0`` (the ReLU passes ``a`` there), in one pass for float arrays."""

    def __init__(self, a, keep=None, relu=None):
        # now: ``a`` may be reused once the step is over
        self.nnz = None
        if relu is not None:
            got = relu_grad_pattern(a, relu)
            if got is not None:
                self.nz, self.nnz = got
            else:
                keep = relu > 0
        if self.nnz is None:
            nz = a != 0
            self.nz = nz if keep is None else np.logical_and(nz, keep, out=nz)   # (N, K)
        self.shape = a.shape[::-1]

    def row_counts(self):
        return column_counts(self.nz)

    def pattern(self):
        return self.nz.T

    def pattern_nnz(self):
        return self.nz.T, self.nnz
