"""conv2d forward and backward (NCHW, OIHW; torch.nn.functional.conv2d semantics)."""
import operator
import os
import threading
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sps
from numpy.lib.stride_tricks import sliding_window_view

from . import _conv, _nhwc
from ._budget import check_expanded, check_memory
from ._threads import resolve_threads
from .costs import cost_table
from .sparse import PackedSparse, check_float_dtype, native_order

# Time of each zero-skipping path relative to im2col + BLAS, as fixed + per-density cost:
# from this CPU's cost table (wsekern.costs) unless set here (tests force paths this way).
DIRECT_FIXED = DIRECT_COST = None        # weight-sparse direct path, per kept-weight fraction
INPUT_FIXED = INPUT_COST = None          # input-stationary path, per nonzero-pixel fraction
INPUT_MIN_CHANNELS = 16                  # channels per group the input-stationary path needs


def _path_costs():
    """(direct fixed, direct per density, input fixed, input per density)."""
    table = cost_table()
    (df, dc), (i_f, ic) = table.conv_direct, table.conv_input
    return tuple(d if v is None else v for v, d in ((DIRECT_FIXED, df), (DIRECT_COST, dc),
                                                    (INPUT_FIXED, i_f), (INPUT_COST, ic)))


def pair(v, name, minimum):
    if type(v) is int and minimum <= v < 2**31:      # the common case (bool is refused below)
        return v, v
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v), int(v))
    try:                # whole numbers only: 1.9 or "12" must not become 1 or (1, 2)
        if isinstance(v, str) or any(isinstance(x, bool) for x in v):
            raise TypeError
        a, b = (operator.index(x) for x in v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a pair of ints; received {v!r}") from None
    if a < minimum or b < minimum:
        raise ValueError(f"{name} must be >= {minimum}; received {(a, b)}")
    if max(a, b) >= 2**31:                          # the kernels index with C ints
        raise ValueError(f"{name} must be below 2**31; received {(a, b)}")
    return a, b


@dataclass(frozen=True)
class ConvGeometry:
    """Sizes of one convolution, validated once, and the tap -> phase map of the kernels."""
    B: int
    C: int
    H: int
    W: int
    O: int
    kh: int
    kw: int
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    OH: int
    OW: int

    @property
    def depth_per_filter(self):
        """Weights per output channel: w as a (O, depth) matrix (reshape(O, -1) fails at O=0)."""
        return self.C // self.groups * self.kh * self.kw

    @classmethod
    def of(cls, x_shape, w_shape, stride, padding, dilation, groups):
        if len(x_shape) != 4:
            raise ValueError(f"x must be 4-D (N, C, H, W); received shape {tuple(x_shape)}")
        if len(w_shape) != 4:
            raise ValueError(f"w must be 4-D (C_out, C_in/groups, kh, kw); received shape "
                             f"{tuple(w_shape)}")
        stride = pair(stride, "stride", 1)
        padding = pair(padding, "padding", 0)
        dilation = pair(dilation, "dilation", 1)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"groups must be a positive int; received {groups!r}")
        B, C, H, W = x_shape
        O, Cg, kh, kw = w_shape
        if C % groups or O % groups:
            raise ValueError(f"groups={groups} must divide both input channels ({C}) and output "
                             f"channels ({O}); received x.shape={tuple(x_shape)}, "
                             f"w.shape={tuple(w_shape)}")
        if Cg != C // groups:
            raise ValueError(f"expected w with {C // groups} input channels per group "
                             f"(x has {C} channels, groups={groups}); received "
                             f"w.shape={tuple(w_shape)}, x.shape={tuple(x_shape)}")
        OH = (H + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        OW = (W + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        if OH <= 0 or OW <= 0 or kh == 0 or kw == 0:
            raise ValueError(f"the output would be {OH}x{OW}: kernel {kh}x{kw} with dilation "
                             f"{dilation} does not fit the input {H}x{W} padded by {padding}; "
                             f"received x.shape={tuple(x_shape)}, w.shape={tuple(w_shape)}")
        return cls(B, C, H, W, O, kh, kw, stride, padding, dilation, int(groups), OH, OW)

    def phases(self):
        """(row phases, column phases) some tap reads: the input's stride phases that are
        used. At most kh and kw of them, so the work follows the kernel, not the stride."""
        (sh, sw), (dh, dw) = self.stride, self.dilation
        # i * dh % sh repeats with a period dividing sh: min(kh, sh) taps give every phase
        # (a set in Python: np.unique cost 9 us a call, most of a warm conv2d's setup)
        return (sorted({i * dh % sh for i in range(min(self.kh, sh))}),
                sorted({j * dw % sw for j in range(min(self.kw, sw))}))

    def taps(self):
        """(phase, qi, qj) int32 arrays, one entry per tap i * kw + j; ``phase`` numbers
        the used phases of :meth:`phases` row-major."""
        (sh, sw), (dh, dw) = self.stride, self.dilation
        rows, cols = self.phases()
        i, j = np.divmod(np.arange(self.kh * self.kw), self.kw)
        ri, rj = i * dh, j * dw
        phase = np.searchsorted(rows, ri % sh) * len(cols) + np.searchsorted(cols, rj % sw)
        return (phase.astype(np.int32), (ri // sh).astype(np.int32), (rj // sw).astype(np.int32))

    def padded_size(self):
        (ph, pw) = self.padding
        return self.B * self.C * (self.H + 2 * ph) * (self.W + 2 * pw)

    def padding_dominates(self):
        """Whether the padding alone outweighs the input and the im2col columns (a padding
        far larger than what the windows read): then only im2col by gathering, which never
        builds the padding, keeps the work proportional to the input and the output."""
        x_size = self.B * self.C * self.H * self.W
        cols = self.B * self.C * self.kh * self.kw * self.OH * self.OW
        return self.padded_size() - x_size > x_size + cols

    def check_memory(self, itemsize, im2col, backward=False):
        """Refuse (MemoryError naming the estimate) a convolution whose output, padded input
        (or its phases) and im2col columns, where that path is taken, would not fit."""
        (ph, pw), (sh, sw) = self.padding, self.stride
        out = self.B * self.O * self.OH * self.OW
        cols = self.B * self.C * self.kh * self.kw * self.OH * self.OW if im2col else 0
        padded = (self.padded_size() if not self.padding_dominates()
                  else self.B * self.C * (self.H + 2) * (self.W + 2))
        n = (2 * out + 2 * padded + cols) if backward else (out + 2 * padded + cols)
        check_memory(n * itemsize, f"conv2d{'_backward' if backward else ''} of x "
                     f"{(self.B, self.C, self.H, self.W)} with w "
                     f"{(self.O, self.C // self.groups, self.kh, self.kw)}, stride "
                     f"{(sh, sw)}, padding {(ph, pw)} (output {self.OH}x{self.OW})",
                     "lower the padding, the batch or the image size, or raise the stride")

    def phase_shape(self):
        (sh, sw), (ph, pw) = self.stride, self.padding
        rows, cols = self.phases()
        Hq = -(-(self.H + 2 * ph) // sh)
        Wq = -(-(self.W + 2 * pw) // sw)
        return (self.B, self.C, len(rows) * len(cols), Hq, Wq)


def _pad(x, g):
    ph, pw = g.padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _phases(x, g):
    """The padded input split into the used stride phases: contiguous rows for every tap."""
    xp = _pad(x, g)
    sh, sw = g.stride
    if sh == 1 and sw == 1:
        return np.ascontiguousarray(xp)[:, :, None]
    rows, cols = g.phases()
    P = np.zeros(g.phase_shape(), dtype=x.dtype)
    for n_a, a in enumerate(rows):
        for n_e, e in enumerate(cols):
            sub = xp[:, :, a::sh, e::sw]
            P[:, :, n_a * len(cols) + n_e, :sub.shape[2], :sub.shape[3]] = sub
    return P


def _unphase(gP, g):
    """Inverse of _phases for gradients: fold phases back and crop the padding."""
    (sh, sw), (ph, pw) = g.stride, g.padding
    Hp, Wp = g.H + 2 * ph, g.W + 2 * pw
    if sh == 1 and sw == 1:
        gxp = gP[:, :, 0]
    else:
        rows, cols = g.phases()
        gxp = np.zeros((g.B, g.C, Hp, Wp), dtype=gP.dtype)   # unused phases: no gradient
        for n_a, a in enumerate(rows):
            for n_e, e in enumerate(cols):
                h, w = len(range(a, Hp, sh)), len(range(e, Wp, sw))
                gxp[:, :, a::sh, e::sw] = gP[:, :, n_a * len(cols) + n_e, :h, :w]
    return np.ascontiguousarray(gxp[:, :, ph:ph + g.H, pw:pw + g.W])


def _filter_csr(w2, keep=None):
    """CSR (int32) over rows = output channels, columns = (c_local * T + tap)."""
    mask = (w2 != 0) if keep is None else keep
    counts = mask.sum(axis=1)
    wptr = np.zeros(w2.shape[0] + 1, dtype=np.int32)
    np.cumsum(counts, out=wptr[1:])
    rows, cols = np.nonzero(mask)
    return np.ascontiguousarray(w2[rows, cols]), cols.astype(np.int32), wptr


def _filter_offsets(w2, g, phase_shape):
    """Kept weights per filter as (values, offset into one image's phases, channel, indptr)."""
    _, S, Hq, Wq = phase_shape[1:]
    if phase_shape[1] * S * Hq * Wq >= 2**31:
        raise ValueError(f"one image's padded input has too many elements for the direct "
                         f"path ({phase_shape}); split the batch or the channels")
    wval, widx, wptr = _filter_csr(w2)
    T = g.kh * g.kw
    phase, qi, qj = g.taps()
    o = np.repeat(np.arange(g.O), np.diff(wptr))
    c = (o // (g.O // g.groups)) * (g.C // g.groups) + widx // T
    tap = widx % T
    off = ((c * S + phase[tap]) * Hq + qi[tap]) * Wq + qj[tap]
    return wval, off.astype(np.int32), c.astype(np.int32), wptr


# The weights the direct path ran lately, most recently used first: a net calls conv2d
# with each layer's weights in turn, batch after batch. Rebuilding a layer's offsets
# (nonzero, sort, index arithmetic) cost 0.3-0.4 ms a call on 64x64x3x3, and counting its
# zeros and checking it finite 0.02 ms, against a few microseconds to compare its bytes
# (memcmp) with the cached copy. A hit moves to the front, so the layers of a net run in
# turn all stay cached while they fit. The bounds: _OFFSETS_KEPT weight arrays,
# _GEOMETRIES_KEPT geometries (image size, padding, stride...) each, and _OFFSETS_BUDGET
# bytes in all, counting each weight's private copy and its offsets (values + two int32
# per kept weight, and an int32 per filter). 64 MiB holds, for example, 20 layers of
# 11 M float32 weights in all (ResNet-18's convolutions) at 10 % density: 45 MB of copies
# and 13 MB of offsets. A weight whose copy and offsets alone exceed the budget is not
# kept (nor does it evict the others).
_OFFSETS_CACHE = []
_OFFSETS_KEPT = 64           # weight arrays kept
_GEOMETRIES_KEPT = 4         # geometries kept for each weight array
_OFFSETS_BUDGET = 64 << 20   # bytes kept in all: the weights' copies and their offsets
_OFFSETS_LOCK = threading.Lock()     # calls from several threads share the cache


def _fresh_lock_after_fork():
    """A child forked while another thread held the lock (a worker process started
    mid-call) gets its own: no thread of the child would ever release the parent's."""
    global _OFFSETS_LOCK
    _OFFSETS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_after_fork)


class _KeptWeights:
    """What conv2d needs to know about one weight array: its density, whether it is
    finite, and (once cached) its bytes and the direct path's offsets per geometry,
    least recently used first; ``nbytes`` counts the copy and the offsets."""
    __slots__ = ("key", "head", "w_bytes", "density", "finite", "offsets", "nbytes")

    def __init__(self, w2):
        self.key = (w2.dtype.str, w2.shape)
        self.head = _head(w2.reshape(-1).view(np.uint8))
        self.w_bytes = None
        self.density = np.count_nonzero(w2) / w2.size
        self.finite = bool(np.isfinite(w2).all())
        self.offsets = {}
        self.nbytes = 0

    def drop_oldest_geometry(self):
        """Forget the least recently used geometry; returns the bytes freed."""
        freed = sum(a.nbytes for a in self.offsets.pop(next(iter(self.offsets))))
        self.nbytes -= freed
        return freed


def _head(w_bytes):
    """The first bytes of a weight array's bytes: most cached weights that differ from a
    call's differ there, and comparing them is cheaper than a call of same_bytes."""
    return w_bytes[:64].tobytes()


def _weights_seen(w2):
    """The cache entry holding ``w2``'s bytes (C-contiguous w2), bit for bit (NaN
    payloads and -0.0 included: never an id or a hash), else None. A hit moves to the
    front (the most recently used)."""
    key, w_bytes = (w2.dtype.str, w2.shape), w2.reshape(-1).view(np.uint8)
    head = _head(w_bytes)
    cache = _OFFSETS_CACHE          # read without the lock: a list is never torn
    for i, entry in enumerate(cache):
        if entry.key == key and entry.head == head and _conv.same_bytes(entry.w_bytes, w_bytes):
            if i:
                with _OFFSETS_LOCK:
                    if entry in cache:                  # not evicted meanwhile
                        cache.remove(entry)
                        cache.insert(0, entry)
            return entry
    return None


def _filter_offsets_cached(w2, g, phase_shape, entry=None):
    """:func:`_filter_offsets`, reused while ``w2``'s values (and the geometry but the
    batch) are those of a recent call; ``entry`` is ``w2``'s from :func:`_weights_seen`
    (None: looked up). The arrays returned are shared: read only."""
    w2 = np.ascontiguousarray(w2)
    if entry is None:
        entry = _weights_seen(w2) or _KeptWeights(w2)
    gkey = (phase_shape[1:], g.kh, g.kw, g.stride, g.dilation, g.groups)
    offsets = entry.offsets.get(gkey)
    if offsets is not None:
        if len(entry.offsets) > 1:
            with _OFFSETS_LOCK:                         # the most recent geometry last
                if entry.offsets.pop(gkey, None) is not None:
                    entry.offsets[gkey] = offsets
        return offsets
    # Built from the bytes the entry keeps (a copy taken first), never from w2 itself:
    # another thread writing w2 meanwhile (an optimizer step) would leave offsets of one
    # set of values kept under the bytes of another, wrong for every later call.
    w_bytes = entry.w_bytes
    if w_bytes is None and w2.nbytes <= _OFFSETS_BUDGET:
        w_bytes = w2.reshape(-1).view(np.uint8).copy()
    w_kept = w2 if w_bytes is None else w_bytes.view(w2.dtype).reshape(w2.shape)
    offsets = _filter_offsets(w_kept, g, phase_shape)
    if w_bytes is not None:
        _keep_offsets(entry, w_kept, w_bytes, gkey, offsets)
    return offsets


def _keep_offsets(entry, w_kept, w_bytes, gkey, offsets):
    """Cache ``offsets`` (built from ``w_kept``, the array of ``w_bytes``) under ``entry``
    (moved to the front), then evict the least recently used weights, and this weight's
    oldest geometries, down to the bounds."""
    size = sum(a.nbytes for a in offsets)
    if w_bytes.nbytes + size > _OFFSETS_BUDGET:
        return                                          # too large to keep on its own
    if entry.w_bytes is None:       # what the entry says of the weights, from the copy too
        # (the offsets' values are its nonzeros, NaN and inf among them: cheaper than a
        # pass over all the weights)
        fresh = (_head(w_bytes), offsets[0].size / max(w_kept.size, 1),
                 bool(np.isfinite(offsets[0]).all()))
    with _OFFSETS_LOCK:
        cache = _OFFSETS_CACHE
        if entry.w_bytes is None:
            entry.head, entry.density, entry.finite = fresh
            entry.w_bytes = w_bytes
            entry.nbytes = w_bytes.nbytes
        if entry.w_bytes is not w_bytes and not np.array_equal(entry.w_bytes, w_bytes):
            return                                      # built from other bytes: not kept
        if gkey in entry.offsets:                       # another thread built them too
            return
        entry.offsets[gkey] = offsets
        entry.nbytes += size
        while len(entry.offsets) > _GEOMETRIES_KEPT:
            entry.drop_oldest_geometry()
        if entry in cache:
            cache.remove(entry)
        cache.insert(0, entry)
        del cache[_OFFSETS_KEPT:]
        total = sum(e.nbytes for e in cache)
        while total > _OFFSETS_BUDGET:
            if len(cache) > 1:
                total -= cache.pop().nbytes
            else:                                       # this weight alone: its old geometries
                total -= entry.drop_oldest_geometry()


def _input_sparse(x, w2, g, threads):
    """Input-stationary convolution in channels-last layout; returns NCHW (a view)."""
    T, G = g.kh * g.kw, g.groups
    Og, Cg = g.O // G, g.C // G
    xpad = np.ascontiguousarray(_pad(x, g).transpose(0, 2, 3, 1))          # (B, Hp, Wp, C)
    # (G, Og, Cg, T) -> (G, T, Cg, Og) -> rows tap * Cg + c
    Wt = np.ascontiguousarray(w2.reshape(G, Og, Cg, T).transpose(0, 3, 2, 1)).reshape(G, T * Cg, Og)
    i, j = np.divmod(np.arange(T, dtype=np.int32), g.kw)
    out = np.empty((g.B, g.OH, g.OW, g.O), dtype=x.dtype)
    _conv.forward_input_sparse(xpad, Wt, (i * g.dilation[0]).astype(np.int32),
                               (j * g.dilation[1]).astype(np.int32),
                               np.arange(T * Cg, dtype=np.int32), np.ones(Cg, dtype=np.uint8),
                               g.stride[0], g.stride[1], out, threads)
    return out.transpose(0, 3, 1, 2)


def _window_index(g):
    """(rows, cols) into x padded by one zero pixel, broadcasting to (OH, OW, kh, kw): each
    window's reads, every read of the padding sent to that zero border."""
    (sh, sw), (dh, dw), (ph, pw) = g.stride, g.dilation, g.padding
    r = np.arange(g.OH)[:, None] * sh + np.arange(g.kh)[None, :] * dh - ph      # (OH, kh)
    c = np.arange(g.OW)[:, None] * sw + np.arange(g.kw)[None, :] * dw - pw      # (OW, kw)
    r = np.where((r >= 0) & (r < g.H), r + 1, 0)
    c = np.where((c >= 0) & (c < g.W), c + 1, 0)
    return r[:, None, :, None], c[None, :, None, :]


def im2col(x, g):
    """(groups, C_g * kh * kw, B * OH * OW) columns: one GEMM per group covers the batch."""
    (sh, sw), (dh, dw) = g.stride, g.dilation
    if g.padding_dominates():
        r, c = _window_index(g)
        win = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))[:, :, r, c]
    else:
        xp = _pad(x, g)
        win = sliding_window_view(xp, ((g.kh - 1) * dh + 1, (g.kw - 1) * dw + 1), axis=(2, 3))
        win = win[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :g.OH, :g.OW]   # (B, C, OH, OW, kh, kw)
    Cg = g.C // g.groups
    cols = win.reshape(g.B, g.groups, Cg, g.OH, g.OW, g.kh, g.kw)
    cols = cols.transpose(1, 2, 5, 6, 0, 3, 4)                    # (G, Cg, kh, kw, B, OH, OW)
    return np.ascontiguousarray(cols).reshape(g.groups, Cg * g.kh * g.kw, g.B * g.OH * g.OW)


def _per_group(a, b, transpose_a=False, transpose_b=False):
    """a[i] @ b[i] for each group as 2-D GEMMs (BLAS takes transposed views for free;
    NumPy's stacked matmul does not)."""
    out = [(a[i].T if transpose_a else a[i]) @ (b[i].T if transpose_b else b[i])
           for i in range(len(a))]
    return np.stack(out) if len(out) > 1 else out[0][None]


def _to_groups(y, g):
    """(B, O, OH, OW) -> (G, O_g, B * OH * OW), the layout of the GEMMs."""
    Og = g.O // g.groups
    return np.ascontiguousarray(
        y.reshape(g.B, g.groups, Og, g.OH * g.OW).transpose(1, 2, 0, 3)).reshape(g.groups, Og, -1)


def _from_groups(y, g):
    """(G, O_g, B * OH * OW) -> (B, O, OH, OW)."""
    Og = g.O // g.groups
    return y.reshape(g.groups, Og, g.B, g.OH, g.OW).transpose(2, 0, 1, 3, 4).reshape(
        g.B, g.O, g.OH, g.OW)


def _as_float(a, name):
    if sps.issparse(a) or isinstance(a, PackedSparse):
        raise TypeError(f"{name} must be a dense NumPy array (conv2d skips its zeros itself); "
                        f"received a sparse {type(a).__name__}. Pass {name}.toarray() "
                        f"reshaped to NCHW / OIHW")
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    a = native_order(a, name)
    check_float_dtype(a.dtype, name)
    return a


def string_padding(x, w, padding, stride, dilation):
    """torch's ``padding="valid"|"same"`` as (x, symmetric padding, input size to crop a
    gradient back to or None). 'same' keeps the input size at stride 1; an odd total puts
    the extra zero after (bottom, right), as torch does, by padding x here."""
    if padding == "valid":
        return x, 0, None
    if padding != "same":
        raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid'; "
                         f"received {padding!r}")
    if pair(stride, "stride", 1) != (1, 1):
        raise ValueError(f"padding='same' needs stride 1 (as in torch: the output keeps the "
                         f"input's size only then); received stride={stride!r}; give the "
                         f"padding as ints for a strided convolution")
    x, w = _as_float(x, "x"), _as_float(w, "w")
    if x.ndim != 4 or w.ndim != 4:
        return x, 0, None               # ConvGeometry names the shape error
    totals = [d * (k - 1) for d, k in zip(pair(dilation, "dilation", 1), w.shape[2:])]
    extra = [t % 2 for t in totals]
    if any(extra):
        crop = x.shape[2:]
        x = np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
        return x, (totals[0] // 2, totals[1] // 2), crop
    return x, (totals[0] // 2, totals[1] // 2), None


def conv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, n_threads=None):
    """2-D cross-correlation as ``torch.nn.functional.conv2d``: NCHW input, OIHW weights.

    Zero weights are never multiplied and all-zero input rows are skipped on the
    direct path (weights compressed per filter, input split into stride phases, no
    im2col); im2col + BLAS is used when the kept work is large enough that it wins.
    float32/float64; mixed inputs promote as NumPy does. Work follows the output size
    and the nonzeros, not the stride (only the input phases some tap reads are built).

    NaN and inf: every path returns the dense cross-correlation's answer in IEEE
    arithmetic, as torch does: a zero weight times an inf input is NaN, and so is an
    inf or NaN weight times a zero input (padding included). A zero is skipped only
    where that is exact: zero weights when x is finite, zero pixels when w is finite.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
        The input.
    w : ndarray, shape (C_out, C_in / groups, kh, kw)
        The weights; their zeros are skipped.
    bias : ndarray, shape (C_out,), optional
        Added to each output channel.
    stride, padding, dilation : int or (int, int)
        As in torch: ``padding`` zeros on each side, or ``"valid"`` (none) or
        ``"same"`` (stride 1 only; output the input's size, an odd total padding's
        extra zero after, as torch).
    groups : int, default 1
        C_in and C_out are split into this many independent groups.
    n_threads : int, optional
        OpenMP threads (None: wsekern's thread policy).

    Returns
    -------
    ndarray, shape (N, C_out, OH, OW)
        ``OH = (H + 2 * padding - dilation * (kh - 1) - 1) // stride + 1``, likewise OW.

    Raises
    ------
    ValueError
        Shapes or dtypes that do not fit together, or an output of zero size.

    See Also
    --------
    conv2d_backward, conv2d_path

    Examples
    --------
    >>> import numpy as np, wsekern
    >>> x = np.ones((1, 2, 5, 5), np.float32)
    >>> w = np.zeros((3, 2, 3, 3), np.float32); w[:, :, 1, 1] = 1
    >>> wsekern.conv2d(x, w, padding=1).shape
    (1, 3, 5, 5)
    """
    if isinstance(padding, str):
        x, padding, _ = string_padding(x, w, padding, stride, dilation)
    return _conv2d(x, w, bias, stride, padding, dilation, groups, n_threads)[0]


def conv2d_path(x, w, *, stride=1, padding=0, dilation=1, groups=1):
    """The path :func:`conv2d` takes for these operands.

    Parameters
    ----------
    x, w, stride, padding, dilation, groups
        As for :func:`conv2d`.

    Returns
    -------
    str
        ``"direct"`` (zero weights skipped), ``"input-sparse"`` (only nonzero input pixels
        multiplied) or ``"im2col-blas"`` (dense wins).
    """
    if isinstance(padding, str):
        x, padding, _ = string_padding(x, w, padding, stride, dilation)
    return _conv2d(x, w, None, stride, padding, dilation, groups, 1)[1]


def conv_operands(x, w, bias, stride, padding, dilation, groups):
    """Validated (x, w, bias, geometry, result dtype) of a conv2d call."""
    x, w = _as_float(x, "x"), _as_float(w, "w")
    g = ConvGeometry.of(x.shape, w.shape, stride, padding, dilation, groups)
    dtype = np.result_type(x.dtype, w.dtype)
    if bias is not None:
        bias = _as_float(bias, "bias")
        if bias.shape != (g.O,):
            raise ValueError(f"bias must have shape ({g.O},) to match w.shape={w.shape}; "
                             f"received {bias.shape}")
        dtype = np.result_type(dtype, bias.dtype)
    # before any copy: x (and the output) as the least any path takes; w by itself (a
    # broadcast view's copy may be far larger than its memory)
    g.check_memory(np.dtype(dtype).itemsize, im2col=False)
    check_expanded(w, "w")
    return x, w, bias, g, dtype


def _conv2d(x, w, bias, stride, padding, dilation, groups, n_threads):
    x, w, bias, g, dtype = conv_operands(x, w, bias, stride, padding, dilation, groups)
    x = np.ascontiguousarray(x, dtype=dtype)
    w2 = np.ascontiguousarray(w, dtype=dtype).reshape(g.O, g.depth_per_filter)
    if g.B * g.O * g.OH * g.OW == 0 or w2.shape[1] == 0:
        out = np.empty((g.B, g.O, g.OH, g.OW), dtype=dtype)
        out[...] = 0 if bias is None else bias[:, None, None]
        return out, "empty"
    weights = _weights_seen(w2) or _KeptWeights(w2)
    w_density, w_finite = weights.density, weights.finite
    direct_fixed, direct_cost, input_fixed, input_cost = _path_costs()
    alive = np.empty((g.B, g.C), dtype=np.uint8)           # channels with a nonzero pixel
    x_nonzeros, x_finite = _conv.scan_planes(x.reshape(g.B, g.C, -1), alive)
    x_density = x_nonzeros / x.size
    cost = {"im2col-blas": 1.0}
    # Skipping a zero weight would hide its product with an inf/NaN pixel (NaN); and the
    # other paths build the padded input, which a huge padding makes the larger part.
    padding_dominates = g.padding_dominates()
    if x_finite and not padding_dominates:
        cost["direct"] = direct_fixed + w_density * direct_cost
    # Skipping a zero pixel would hide inf * 0 = NaN; and the receptive-field compaction
    # works a vector of channels at a time, so it needs at least one vector of them.
    if w_finite and g.C // g.groups >= INPUT_MIN_CHANNELS and not padding_dominates:
        cost["input-sparse"] = input_fixed + x_density * input_cost
    path = min(cost, key=cost.get)
    if path == "im2col-blas":       # conv_operands checked the other paths' memory
        g.check_memory(np.dtype(dtype).itemsize, im2col=True)
    out = np.empty((g.B, g.O, g.OH, g.OW), dtype=dtype)
    threads = resolve_threads(n_threads, g.B * g.O * g.OH * g.OW * w2.shape[1] * cost[path])
    if path == "direct":
        # An input channel that is zero for a whole image is skipped (exact when w is finite).
        if not w_finite:
            alive[...] = 1
        if g.stride == (1, 1):      # each thread pads one image at a time, kept in cache
            wval, woff, wchan, wptr = _filter_offsets_cached(w2, g, g.phase_shape(), weights)
            _conv.forward_pad(x, *g.padding, alive, wval, woff, wchan, wptr, out, threads)
        else:
            P = _phases(x, g)
            wval, woff, wchan, wptr = _filter_offsets_cached(w2, g, P.shape, weights)
            _conv.forward(P, alive, wval, woff, wchan, wptr, out, threads)
    elif path == "input-sparse":
        out[...] = _input_sparse(x, w2, g, threads)
    else:
        wg = w2.reshape(g.groups, g.O // g.groups, -1)                 # (G, Og, K)
        out[...] = _from_groups(_per_group(wg, im2col(x, g)), g)      # (G, Og, B*OH*OW)
    if bias is not None:
        out += bias[:, None, None]
    return out, path


def conv2d_backward(grad_out, x, w, *, stride=1, padding=0, dilation=1, groups=1,
                    weight_mask=None, n_threads=None):
    """Gradients of conv2d: ``(grad_x, grad_w, grad_b)``.

    With ``weight_mask`` (boolean, w's shape) grad_w is computed only at the kept
    weights and is zero elsewhere; the zero weights are also skipped in grad_x.

    Parameters
    ----------
    grad_out : ndarray, shape (N, C_out, OH, OW)
        The gradient of conv2d's output.
    x, w, stride, padding, dilation, groups, n_threads
        As given to :func:`conv2d`.
    weight_mask : ndarray of bool, w's shape, optional
        The kept weights of a pruned layer.

    Returns
    -------
    grad_x : ndarray, x's shape
    grad_w : ndarray, w's shape
    grad_b : ndarray, shape (C_out,)
    """
    crop = None
    if isinstance(padding, str):
        x, padding, crop = string_padding(x, w, padding, stride, dilation)
    if crop is not None:        # 'same' with an odd total: x was padded after, crop its gradient
        grad_x, grad_w, grad_b = conv2d_backward(
            grad_out, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
            weight_mask=weight_mask, n_threads=n_threads)
        return np.ascontiguousarray(grad_x[:, :, :crop[0], :crop[1]]), grad_w, grad_b
    x, w = _as_float(x, "x"), _as_float(w, "w")
    grad_out = _as_float(grad_out, "grad_out")
    g = ConvGeometry.of(x.shape, w.shape, stride, padding, dilation, groups)
    if grad_out.shape != (g.B, g.O, g.OH, g.OW):
        raise ValueError(f"grad_out must have the output's shape {(g.B, g.O, g.OH, g.OW)}; "
                         f"received {grad_out.shape}")
    dtype = np.result_type(x.dtype, w.dtype, grad_out.dtype)
    g.check_memory(np.dtype(dtype).itemsize, im2col=False, backward=True)  # the least any path
    check_expanded(w, "w")
    x = np.ascontiguousarray(x, dtype=dtype)
    w2 = np.ascontiguousarray(w, dtype=dtype).reshape(g.O, g.depth_per_filter)
    grad = np.ascontiguousarray(grad_out, dtype=dtype)
    if weight_mask is not None:
        weight_mask = np.asarray(weight_mask)
        if weight_mask.shape != w.shape or weight_mask.dtype != bool:
            raise ValueError(f"weight_mask must be a boolean array of w's shape {w.shape}; "
                             f"received {weight_mask.dtype} array of shape {weight_mask.shape}")
        keep = weight_mask.reshape(g.O, g.depth_per_filter)
    else:
        keep = np.ones(w2.shape, dtype=bool)
    grad_b = grad.sum(axis=(0, 2, 3))
    grad_x = np.zeros(x.shape, dtype=dtype)
    grad_w = np.zeros(w2.shape, dtype=dtype)
    if grad.size == 0 or w2.shape[1] == 0:
        return grad_x, grad_w.reshape(w.shape), grad_b
    keep_density = np.count_nonzero(keep) / keep.size
    w_density = np.count_nonzero(w2) / w2.size
    direct_fixed, direct_cost = _path_costs()[:2]
    blas_w = direct_fixed + keep_density * direct_cost >= 1.0
    # The direct grad_x skips zero weights, exact only while grad_out is finite; the direct
    # paths build the padded input, which a huge padding makes the larger part.
    blas_x = (direct_fixed + w_density * direct_cost >= 1.0
              or not np.isfinite(grad).all() or g.padding_dominates())
    blas_w = blas_w or g.padding_dominates()
    g.check_memory(np.dtype(dtype).itemsize, im2col=blas_w or blas_x, backward=True)
    threads = resolve_threads(n_threads, g.B * w2.size * g.OH * g.OW * max(keep_density, w_density))
    if blas_w or blas_x:
        grad_g = _to_groups(grad, g)                                   # (G, Og, B*OH*OW)
    if not (blas_w and blas_x):
        P = _phases(x, g)
        phase, qi, qj = g.taps()

    if blas_w:
        cols = im2col(x, g)                                           # (G, K, B*OH*OW)
        grad_w = np.where(keep, _per_group(grad_g, cols, transpose_b=True)
                          .reshape(g.O, g.depth_per_filter), 0)
    else:   # at the kept weights only: one plane dot product per image
        _, widx, wptr = _filter_csr(w2, keep)
        vals = np.empty(len(widx), dtype=dtype)
        _conv.grad_weight(P, grad, widx, wptr, phase, qi, qj, vals,
                          g.O // g.groups, g.C // g.groups, threads)
        grad_w[np.repeat(np.arange(g.O), np.diff(wptr)), widx] = vals

    if blas_x:
        wg = w2.reshape(g.groups, g.O // g.groups, -1)                 # (G, Og, K)
        grad_cols = _per_group(wg, grad_g, transpose_a=True)           # (G, K, B*OH*OW)
        grad_x = _col2im(grad_cols, g)
    else:   # the transposed convolution over the nonzero weights, by input channel
        cval, cidx, cptr = _by_input_channel(w2, g)
        gP = np.zeros(P.shape, dtype=dtype)
        _conv.grad_input(grad, cval, cidx, cptr, phase, qi, qj, gP, threads)
        grad_x = _unphase(gP, g)
    return grad_x, grad_w.reshape(w.shape), grad_b


def _col2im(grad_cols, g):
    """Sum im2col-shaped gradients back onto the input (the adjoint of im2col)."""
    (sh, sw), (dh, dw), (ph, pw) = g.stride, g.dilation, g.padding
    cols = grad_cols.reshape(g.C, g.kh, g.kw, g.B, g.OH, g.OW)       # groups' channels in order
    if g.padding_dominates():
        gz = np.zeros((g.B, g.C, g.H + 2, g.W + 2), dtype=grad_cols.dtype)
        r, c = _window_index(g)
        np.add.at(gz, (slice(None), slice(None), r, c), cols.transpose(3, 0, 4, 5, 1, 2))
        return np.ascontiguousarray(gz[:, :, 1:-1, 1:-1])
    gxp = np.zeros((g.B, g.C, g.H + 2 * ph, g.W + 2 * pw), dtype=grad_cols.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            gxp[:, :, i * dh:i * dh + sh * (g.OH - 1) + 1:sh,
                j * dw:j * dw + sw * (g.OW - 1) + 1:sw] += cols[:, i, j].transpose(1, 0, 2, 3)
    return np.ascontiguousarray(gxp[:, :, ph:ph + g.H, pw:pw + g.W])


def _by_input_channel(w2, g):
    """Nonzero weights as CSR over input channels, entries o * T + tap."""
    T = g.kh * g.kw
    Og, Cg = g.O // g.groups, g.C // g.groups
    o, col = np.nonzero(w2)
    c = (o // Og) * Cg + col // T
    order = np.lexsort((o, c))
    c, o, col = c[order], o[order], col[order]
    cptr = np.zeros(g.C + 1, dtype=np.int32)
    np.cumsum(np.bincount(c, minlength=g.C), out=cptr[1:])
    return (np.ascontiguousarray(w2[o, col]), (o * T + col % T).astype(np.int32), cptr)


# -- channels-last im2col for training (Keras's NHWC layout, kernels (kh, kw, C, O)) ---------
@dataclass(frozen=True)
class NhwcGeometry:
    """One channels-last window geometry, validated once: input (B, H, W, C), window
    (kh, kw), stride, dilation, the padding before each axis (top, left) and the output
    size; padding after is whatever the output size implies (Keras's 'same' may be
    asymmetric)."""
    B: int
    H: int
    W: int
    C: int
    kh: int
    kw: int
    stride: tuple
    pad: tuple
    dilation: tuple
    OH: int
    OW: int

    @classmethod
    def of(cls, x_shape, kernel_size, stride=1, pads=((0, 0), (0, 0)), dilation=1):
        """``pads`` = ((top, bottom), (left, right))."""
        if len(x_shape) != 4:
            raise ValueError(f"x must be 4-D (batch, height, width, channels); received shape "
                             f"{tuple(x_shape)}")
        kh, kw = pair(kernel_size, "kernel_size", 1)
        stride = pair(stride, "stride", 1)
        dilation = pair(dilation, "dilation", 1)
        (t, b), (l, r) = (pair(p, "padding", 0) for p in pads)
        B, H, W, C = (int(n) for n in x_shape)
        OH = (H + t + b - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        OW = (W + l + r - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        if OH <= 0 or OW <= 0:
            raise ValueError(f"the output would be {OH}x{OW}: window {kh}x{kw} with dilation "
                             f"{dilation} does not fit the input {H}x{W} padded by "
                             f"{((t, b), (l, r))}")
        if max(H, W) * max(H, W) >= 2**31:
            raise ValueError(f"an image of {H}x{W} pixels is too large for the int32 "
                             f"indices of the pooling kernels")
        return cls(B, H, W, C, kh, kw, stride, (t, l), dilation, OH, OW)

    @property
    def rows(self):
        return self.B * self.OH * self.OW

    @property
    def depth(self):
        return self.kh * self.kw * self.C

    def args(self):
        """The geometry as the Cython loops take it."""
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.pad, self.dilation
        return self.kh, self.kw, sh, sw, ph, pw, dh, dw, self.OH, self.OW


def _nhwc_float(x, name):
    x = _as_float(x, name)
    check_expanded(x, name)
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def im2col_nhwc(x, g, n_threads=None):
    """(B*OH*OW, kh*kw*C) columns of the channels-last ``x``, row (b, oh, ow), column
    (i, j, c): times a Keras kernel reshaped to (kh*kw*C, O) this is the convolution.
    Reads of the padding are zeros. Work and memory O(B*OH*OW*kh*kw*C)."""
    x = _nhwc_float(x, "x")
    if x.shape != (g.B, g.H, g.W, g.C):
        raise ValueError(f"x has shape {x.shape}; the geometry expects {(g.B, g.H, g.W, g.C)}")
    check_memory(g.rows * g.depth * x.itemsize,
                 f"im2col columns {g.rows}x{g.depth} of x {x.shape}",
                 "lower the batch or the image size, or raise the stride")
    cols = np.empty((g.rows, g.depth), dtype=x.dtype)
    _nhwc.im2col(x, cols, *g.args(), resolve_threads(n_threads, cols.size))
    return cols


def col2im_nhwc(cols, g, n_threads=None):
    """The adjoint of :func:`im2col_nhwc`: each column entry summed onto the pixel it read
    (entries that read the padding are dropped); returns (B, H, W, C)."""
    cols = _nhwc_float(cols, "cols")
    if cols.shape != (g.rows, g.depth):
        raise ValueError(f"cols has shape {cols.shape}; the geometry expects "
                         f"{(g.rows, g.depth)}")
    gx = np.zeros((g.B, g.H, g.W, g.C), dtype=cols.dtype)
    _nhwc.col2im(cols, gx, *g.args(), resolve_threads(n_threads, cols.size))
    return gx


def conv2d_small_nhwc(x, kernel, g, bias=None, relu=False, n_threads=None):
    """The channels-last convolution of ``x`` (B, H, W, C) with a Keras ``kernel``
    (kh, kw, C, O) (+ ``bias``, then ReLU when ``relu``) without im2col: for few input
    channels, where im2col writes kh*kw*C values a pixel and a GEMM that shallow runs far
    below BLAS's rate. Every multiply-add of the dense convolution is done. Returns
    (B, OH, OW, O) in x's dtype (kernel and bias are cast to it)."""
    x = _nhwc_float(x, "x")
    if x.shape != (g.B, g.H, g.W, g.C) or np.shape(kernel)[:3] != (g.kh, g.kw, g.C):
        raise ValueError(f"x {x.shape} and kernel {np.shape(kernel)} do not match the "
                         f"geometry: x {(g.B, g.H, g.W, g.C)}, kernel ({g.kh}, {g.kw}, "
                         f"{g.C}, O)")
    w = np.ascontiguousarray(kernel, dtype=x.dtype)
    b = np.empty(0, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    shape = (g.B, g.OH, g.OW, w.shape[3])
    check_memory(int(np.prod(shape)) * x.itemsize, f"conv output {shape}",
                 "lower the batch or the image size")
    y = np.empty(shape, dtype=x.dtype)
    (sh, sw), (ph, pw), (dh, dw) = g.stride, g.pad, g.dilation
    _conv.small_forward(x, w, b, bool(relu), y, sh, sw, ph, pw, dh, dw,
                        resolve_threads(n_threads, y.size * g.depth))
    return y


def conv2d_small_grad_weight_nhwc(x, grad, g, n_threads=None):
    """d loss / d kernel (kh, kw, C, O) of :func:`conv2d_small_nhwc` from the output
    gradient ``grad`` (B, OH, OW, O); images summed in double, returned in grad's dtype."""
    x = _nhwc_float(x, "x")
    grad = np.ascontiguousarray(grad, dtype=x.dtype)
    if x.shape != (g.B, g.H, g.W, g.C) or grad.shape[:3] != (g.B, g.OH, g.OW):
        raise ValueError(f"x {x.shape} and grad {grad.shape} do not match the geometry: "
                         f"x {(g.B, g.H, g.W, g.C)}, grad {(g.B, g.OH, g.OW)} + (O,)")
    gw = np.zeros((g.kh, g.kw, g.C, grad.shape[3]))
    (sh, sw), (ph, pw), (dh, dw) = g.stride, g.pad, g.dilation
    _conv.small_grad_weight(x, grad, gw, sh, sw, ph, pw, dh, dw,
                            resolve_threads(n_threads, grad.size * g.depth))
    return gw.astype(x.dtype)


def bias_relu_nhwc(y, bias=None, relu=False, n_threads=None):
    """In place on a convolution's output ``y`` (pixels, channels), one pass:
    ``y += bias``, then ``max(y, 0)`` when ``relu``; returns y."""
    if not (isinstance(y, np.ndarray) and y.ndim == 2 and y.flags.c_contiguous
            and y.dtype in (np.float32, np.float64)):
        raise ValueError(f"y must be a C-contiguous 2-D float32/float64 array; received "
                         f"{type(y).__name__} {getattr(y, 'dtype', '')} "
                         f"{getattr(y, 'shape', '')}")
    b = np.empty(0, y.dtype) if bias is None else np.ascontiguousarray(bias, dtype=y.dtype)
    if b.shape not in ((0,), (y.shape[1],)):
        raise ValueError(f"bias must have shape ({y.shape[1]},); received {b.shape}")
    _nhwc.bias_relu(y, b, bool(relu), resolve_threads(n_threads, y.size))
    return y


def relu_grad_bias_nhwc(grad, y, relu, n_threads=None):
    """(grad through the ReLU whose output is ``y`` (or grad itself), the bias gradient):
    one pass over (pixels, channels) arrays; the bias gradient summed in double."""
    grad = np.ascontiguousarray(grad)
    y = np.ascontiguousarray(y, dtype=grad.dtype)
    if grad.ndim != 2 or y.shape != grad.shape or grad.dtype not in (np.float32, np.float64):
        raise ValueError(f"grad and y must be float32/float64 arrays of one 2-D shape; "
                         f"received {grad.dtype} {grad.shape} and {y.dtype} {y.shape}")
    threads = resolve_threads(n_threads, grad.size)
    out = np.empty_like(grad)
    acc = np.zeros((threads, grad.shape[1]))
    _nhwc.relu_grad_bias(grad, y, bool(relu), out, acc, threads)
    db = acc.sum(axis=0)
    if relu and np.isnan(db).any():    # a non-finite grad met the ReLU's zeros: see above
        db = out.sum(axis=0, dtype=np.float64)
    return out, db.astype(grad.dtype)
