# Direct convolution kernels that skip zero weights (and zero input rows).
#
# The padded input is split into stride phases (polyphase), so every kernel
# tap reads a contiguous run of each input row whatever the stride and
# dilation: P[b, c, phase(tap), oh + qi(tap), ow + qj(tap)] = xpad[b, c,
# oh*sh + i*dh, ow*sw + j*dw].  Weights are CSR over (output channel) x
# (input channel within the group * taps): only kept weights are visited.
# The wrappers in wsekern/conv.py validate everything.
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memcmp, memcpy, memset
from libc.stdint cimport int32_t, uint8_t
from cython cimport floating

from _simd cimport (wsk_plane_axpy_f32, wsk_plane_axpy_f64,
                    wsk_plane_dot_f32, wsk_plane_dot_f64,
                    wsk_spmm_row_f32_i32, wsk_spmm_row_f64_i32, wsk_simd_init,
                    wsk_compact_f32, wsk_compact_f64)

cdef extern from "wsk_conv_small.h" nogil:
    void wsk_small_forward_f32(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*,
                               Py_ssize_t, Py_ssize_t, Py_ssize_t, const Py_ssize_t*,
                               const float*, int, float*) noexcept
    void wsk_small_forward_f64(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                               const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                               const Py_ssize_t*, const double*, int, double*) noexcept
    void wsk_small_grad_weight_f32(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                   const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                   const Py_ssize_t*, float*) noexcept
    void wsk_small_grad_weight_f64(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                   const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                   const Py_ssize_t*, double*) noexcept
    void wsk_small_init(int path) noexcept

cdef extern from "wsk_conv_planes.h" nogil:
    void wsk_planes_gw_f32(const float*, Py_ssize_t, const float*, Py_ssize_t, Py_ssize_t,
                           Py_ssize_t, Py_ssize_t, const int32_t*, const int32_t*, Py_ssize_t,
                           Py_ssize_t, float*, float*) noexcept
    void wsk_planes_gw_f64(const double*, Py_ssize_t, const double*, Py_ssize_t, Py_ssize_t,
                           Py_ssize_t, Py_ssize_t, const int32_t*, const int32_t*, Py_ssize_t,
                           Py_ssize_t, double*, double*) noexcept
    void wsk_planes_row_f32(const float*, const int32_t*, Py_ssize_t, const float*, float*,
                            Py_ssize_t) noexcept
    void wsk_planes_row_f64(const double*, const int32_t*, Py_ssize_t, const double*,
                            double*, Py_ssize_t) noexcept
    enum: WSK_PLANES_LANES_BYTES
    void wsk_planes_init(int path) noexcept

cdef extern from "wsk_conv_tile.h" nogil:
    void wsk_tile_rows_f32(const float*, const int32_t*, Py_ssize_t, const float*, Py_ssize_t,
                           Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, float*, int) noexcept
    void wsk_tile_rows_f64(const double*, const int32_t*, Py_ssize_t, const double*,
                           Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                           double*, int) noexcept
    Py_ssize_t wsk_scan_f32(const float*, Py_ssize_t, int*) noexcept
    Py_ssize_t wsk_scan_f64(const double*, Py_ssize_t, int*) noexcept
    void wsk_tile_init(int path) noexcept

import numpy as np


def simd_init(int path=0):
    """Select this module's SIMD path (the dispatch tables are per extension module)."""
    name = wsk_simd_init(path).decode()
    path = {"avx2": 2, "avx512": 4}.get(name, 1)
    wsk_small_init(path)
    wsk_tile_init(path)
    wsk_planes_init(path)
    global _tile_rows, _blocks_f32, _shifted_f32
    _tile_rows = {2: 3, 4: 4}.get(path, 2)
    _blocks_f32 = path == 2
    _shifted_f32 = path == 4
    return name


# forward_pad's channel blocks are sized with the output rows of the selected path's
# register tile (src/wsk_conv_tile.h: baseline 2 x 4, AVX2 3 x 4, AVX-512 4 x 2 in float64;
# float32 runs AVX-512 without blocks, its 8 x 2 tile is not counted here). On Zen 4
# at 80 % zeros they gained on every path in float64 (AVX2 1.18-1.21x, AVX-512 1.12-1.15x,
# baseline 1.04-1.07x) and in float32 on AVX2 (1.05-1.07x); float32 lost 2-4 % on AVX-512
# and was unchanged on the baseline, so there it runs one pass per filter.
cdef Py_ssize_t _tile_rows = 2
cdef bint _blocks_f32 = False
# forward_pad's shifted copies (see _forward_shifted): float32 on the AVX-512 path, where
# they were measured (Zen 5)
cdef bint _shifted_f32 = False


cdef inline void _row(const floating* vals, const int32_t* rows, Py_ssize_t nnz,
                      const floating* base, floating* y, Py_ssize_t n,
                      Py_ssize_t ldx=1) noexcept nogil:
    # y[0:n] = sum_p vals[p] * base[rows[p] * ldx + 0:n]  (the spmm row kernel)
    if nnz == 0:
        memset(y, 0, n * sizeof(floating))
    elif floating is float:
        wsk_spmm_row_f32_i32(vals, rows, nnz, base, ldx, y, n)
    else:
        wsk_spmm_row_f64_i32(vals, rows, nnz, base, ldx, y, n)


cdef inline void _axpy(Py_ssize_t rows, Py_ssize_t n, floating a, const floating* x,
                       Py_ssize_t ldx, const uint8_t* flags, floating* y,
                       Py_ssize_t ldy) noexcept nogil:
    if floating is float:
        wsk_plane_axpy_f32(rows, n, a, x, ldx, flags, y, ldy)
    else:
        wsk_plane_axpy_f64(rows, n, a, x, ldx, flags, y, ldy)


cdef inline floating _dot(Py_ssize_t rows, Py_ssize_t n, const floating* y,
                          const floating* x, Py_ssize_t ldx) noexcept nogil:
    if floating is float:
        return wsk_plane_dot_f32(rows, n, y, x, ldx)
    else:
        return wsk_plane_dot_f64(rows, n, y, x, ldx)


cdef inline void _tile(const floating* vals, const int32_t* offs, Py_ssize_t nnz,
                       const floating* P, Py_ssize_t limit, Py_ssize_t Wq, Py_ssize_t oh0,
                       Py_ssize_t oh1, Py_ssize_t OW, floating* out, int add) noexcept nogil:
    if floating is float:
        wsk_tile_rows_f32(vals, offs, nnz, P, limit, Wq, oh0, oh1, OW, out, add)
    else:
        wsk_tile_rows_f64(vals, offs, nnz, P, limit, Wq, oh0, oh1, OW, out, add)


cdef inline void _filter_plane(const floating* wval, const int32_t* woff,
                               const int32_t* wchan, Py_ssize_t lo, Py_ssize_t hi,
                               const uint8_t* alive, bint all_alive, floating* vb, int32_t* ob,
                               int32_t* cb, Py_ssize_t cblock, const floating* src,
                               Py_ssize_t limit, Py_ssize_t Wq, Py_ssize_t oh0, Py_ssize_t oh1,
                               Py_ssize_t OW, floating* out) noexcept nogil:
    """Rows oh0..oh1 of one filter's output plane from one image's planes ``src``: its kept
    weights lo..hi, or, unless every input channel is alive, those on an alive channel
    (any nonzero flag), copied to vb, ob (and their channels to cb) first.

    cblock > 0: the weights run in blocks of input channels (wchan // cblock), each block's
    tiles added to the previous blocks' (the caller checked that every filter's channels
    never decrease, so the sums are the one-call sums, in the same order). A block's input
    rows stay in L1 while the tiles move down the plane. cblock 0: one call."""
    cdef Py_ssize_t p, q = 0, start, end, blk
    cdef const floating* v = wval + lo
    cdef const int32_t* f = woff + lo
    cdef const int32_t* ch = wchan + lo
    if all_alive:
        q = hi - lo
    else:
        for p in range(lo, hi):
            vb[q] = wval[p]
            ob[q] = woff[p]
            cb[q] = wchan[p]
            q = q + (alive[wchan[p]] != 0)
        v = vb
        f = ob
        ch = cb
    if cblock <= 0 or q == 0:
        _tile(v, f, q, src, limit, Wq, oh0, oh1, OW, out, 0)
        return
    start = 0
    while start < q:
        blk = ch[start] // cblock
        end = start + 1
        while end < q and ch[end] // cblock == blk:
            end = end + 1
        _tile(v + start, f + start, end - start, src, limit, Wq, oh0, oh1, OW, out, start > 0)
        start = end


def forward(const floating[:, :, :, :, ::1] P, const uint8_t[:, ::1] channel_alive,
            const floating[::1] wval, const int32_t[::1] woff, const int32_t[::1] wchan,
            const int32_t[::1] wptr, floating[:, :, :, ::1] out, int n_threads=1,
            Py_ssize_t band=0):
    """out[b, o, oh, :] = sum over kept weights p of filter o of
    wval[p] * P[b].flat[woff[p] + oh * Wq : ... + OW].

    Weights on input channels that are entirely zero for image b
    (``channel_alive[b, c] == 0``) are dropped first. Each output plane is computed by
    register tiles of a few output rows x a few vectors of columns (src/wsk_conv_tile.h):
    the tile stays in registers while the filter's kept weights stream past, and is
    stored once. Work units are (image, band of ``band`` output rows; 0: all of them),
    every filter inside one unit, so the band's input rows stay in cache while all the
    filters read them. Work: O(B * nnz(w) * OH * OW); threads own (b, band) units.
    """
    cdef Py_ssize_t B = out.shape[0], O = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t Wq = P.shape[4], max_row = 0
    cdef Py_ssize_t plane = P.shape[1] * P.shape[2] * P.shape[3] * P.shape[4]
    cdef Py_ssize_t u, b, o, t, c, oh0, oh1, n_bands, limit
    if B * O * OH * OW == 0:
        return
    if band <= 0 or band > OH:
        band = OH
    n_bands = (OH + band - 1) // band
    for o in range(O):
        max_row = max(max_row, wptr[o + 1] - wptr[o])
    cdef uint8_t[::1] all_alive = np.ones(B, dtype=np.uint8)
    for b in range(B):
        for c in range(channel_alive.shape[1]):
            if not channel_alive[b, c]:
                all_alive[b] = 0
                break
    cdef floating[:, ::1] vbuf = np.empty((n_threads, max_row + 1), dtype=np.asarray(wval).dtype)
    cdef int32_t[:, ::1] obuf = np.empty((n_threads, max_row + 1), dtype=np.int32)
    cdef int32_t[:, ::1] cbuf = np.empty((n_threads, max_row + 1), dtype=np.int32)
    cdef floating* vb
    cdef int32_t* ob
    cdef int32_t* cb
    with nogil, parallel(num_threads=n_threads):
        t = threadid()
        vb = &vbuf[t, 0]
        ob = &obuf[t, 0]
        cb = &cbuf[t, 0]
        for u in prange(B * n_bands, schedule='dynamic'):
            b = u // n_bands
            oh0 = (u % n_bands) * band
            oh1 = min(OH, oh0 + band)
            limit = (B - b) * plane          # elements readable from P[b] on
            for o in range(O):
                _filter_plane(&wval[0], &woff[0], &wchan[0], wptr[o], wptr[o + 1],
                              &channel_alive[b, 0], all_alive[b], vb, ob, cb, 0,
                              &P[b, 0, 0, 0, 0], limit, Wq, oh0, oh1, OW, &out[b, o, 0, 0])


def forward_pad(const floating[:, :, :, ::1] x, int ph, int pw,
                const uint8_t[:, ::1] channel_alive, const floating[::1] wval,
                const int32_t[::1] woff, const int32_t[::1] wchan, const int32_t[::1] wptr,
                floating[:, :, :, ::1] out, int n_threads=1, Py_ssize_t cblock=-1,
                int shifted=-1):
    """:func:`forward` at stride 1 from the unpadded x (B, C, H, W): each thread pads one
    image at a time into its own buffer (C, H + 2 ph, W + 2 pw), whose border is zeroed
    once, and the filters read it there while it is in cache; woff are offsets into that
    one image's padded planes. No padded copy of the whole batch is written. Work units
    are images. Checks its operands itself (the kernels read without bounds checks).

    When the input rows one row of register tiles reads from all C channels (the tile's
    height plus the kernel's row reach, each row's 64-byte lines) pass 32 KiB (L1d), and
    each filter's kept weights come in channel order, a filter's weights run in blocks of
    ``cblock`` input channels, each block a full pass down the plane added to the last
    (the same sums in the same order): the rows a tile shares with the tile below it are
    then still in L1. A block pass loads and stores each output tile once more, so blocks
    pay only with at least 1.5 kept weights per filter and input channel (80 % zeros of a
    3x3 kernel is 1.8: 1.05-1.07x on Zen 4's AVX2 path; 90 % is 0.9, 0.90-0.96x with
    blocks); above 3 (under 67 % zeros of a 3x3 kernel) they were not measured reliably,
    so they are used only between the two. ``cblock`` -1 chooses so (float64, and float32
    on the AVX2 path: see ``_tile_rows``); 0 is one pass; > 0 forces that many channels a
    block.

    ``shifted`` -1 (float32 on the AVX-512 path, from 1.5 kept weights a filter and input
    channel: at 90 % zeros of a 3x3 kernel, 0.9, it was 0-3 % slower) or 1: when every
    input channel of every image is alive, the weights come in channel order, cblock is
    -1, the kernel reads at most 3 columns to the right and the copies' offsets fit int32,
    runs :func:`_forward_shifted` instead (the same sums in the same order); 0 never."""
    cdef Py_ssize_t B = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t O = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    if ph < 0 or pw < 0:
        raise ValueError(f"forward_pad: padding must be >= 0; received ph={ph}, pw={pw}")
    cdef Py_ssize_t Hq = H + 2 * <Py_ssize_t>ph, Wq = W + 2 * <Py_ssize_t>pw
    cdef Py_ssize_t plane = C * Hq * Wq, n = wval.shape[0]
    if (out.shape[0] != B or OH > Hq or OW > Wq or channel_alive.shape[0] != B
            or channel_alive.shape[1] != C or wptr.shape[0] != O + 1 or woff.shape[0] != n
            or wchan.shape[0] != n):
        raise ValueError(f"forward_pad: x {(B, C, H, W)} padded by ({ph}, {pw}) needs out "
                         f"({B}, O, <= {Hq}, <= {Wq}), alive {(B, C)}, wptr (O + 1,) and "
                         f"woff, wchan of wval's length {n}; received out "
                         f"{tuple(out.shape[i] for i in range(4))}, alive "
                         f"{(channel_alive.shape[0], channel_alive.shape[1])}, wptr "
                         f"({wptr.shape[0]},), woff ({woff.shape[0]},), wchan ({wchan.shape[0]},)")
    cdef Py_ssize_t b, o, p, t, c, h, max_row = 0, max_off = 0, reach = 0, n_blocks, lines
    if wptr[0] != 0 or wptr[O] != n:
        raise ValueError(f"forward_pad: wptr must run from 0 to {n}; received "
                         f"{wptr[0]} .. {wptr[O]}")
    for o in range(O):
        if wptr[o + 1] < wptr[o]:
            raise ValueError(f"forward_pad: wptr must not decrease; received "
                             f"wptr[{o}] = {wptr[o]} > wptr[{o + 1}] = {wptr[o + 1]}")
        max_row = max(max_row, wptr[o + 1] - wptr[o])
    for p in range(n):
        if woff[p] < 0 or wchan[p] < 0 or wchan[p] >= C:
            raise ValueError(f"forward_pad: kept weight {p} has offset {woff[p]} and channel "
                             f"{wchan[p]}; offsets must be >= 0 and channels below {C}")
        max_off = max(max_off, woff[p])
    if B * O * OH * OW == 0:
        return
    if n > 0 and max_off + (OH - 1) * Wq + OW > plane:
        raise ValueError(f"forward_pad: an offset of {max_off} reads past one image's padded "
                         f"planes ({plane} elements) for an output of {OH}x{OW}")
    cdef bint auto_blocks = cblock < 0
    if cblock < 0 and ((floating is float and not _blocks_f32) or 2 * n < 3 * O * C
                       or n > 3 * O * C):
        cblock = 0                      # outside 1.5-3 kept weights a filter and channel
    elif cblock < 0:
        for p in range(n):              # rows below a tile's first that a weight reads
            reach = max(reach, (woff[p] % (Hq * Wq)) // Wq)
        lines = Wq * <Py_ssize_t>sizeof(floating) // 64 + 1     # an unaligned row spans
        n_blocks = (C * (_tile_rows + reach) * lines * 64 + 32767) // 32768
        cblock = (C + n_blocks - 1) // n_blocks if n_blocks > 1 else 0
    cdef bint ordered = True
    for o in range(O):
        for p in range(wptr[o] + 1, wptr[o + 1]):
            if wchan[p] < wchan[p - 1]:
                cblock = 0              # not in channel order: one pass per filter
                ordered = False
    cdef Py_ssize_t max_j = 0
    for p in range(n):
        max_j = max(max_j, (woff[p] % (Hq * Wq)) % Wq)
    if shifted < 0:                     # measured to pay from 1.5 kept weights a filter
        shifted = (floating is float and _shifted_f32 and auto_blocks   # and channel on
                   and 2 * n >= 3 * O * C)                               # (80 % zeros: 1.8)
    cdef Py_ssize_t copies = (max_j + 1) * C * Hq * ((OW + 15) // 16 * 16)
    if (shifted and ordered and max_j < 3 and C > 0 and copies < 2**31 - 64
            and np.asarray(channel_alive).all()):
        _forward_shifted(x, ph, pw, wval, woff, wchan, wptr, out, n_threads, max_j + 1)
        return
    # slack past the planes, zero: a tile's last whole vector may read there (its lanes
    # past OW are dropped), so no tile falls back to the scalar loop at the end
    cdef Py_ssize_t slack = 64, limit = plane + slack
    cdef uint8_t[::1] all_alive = np.ones(B, dtype=np.uint8)
    for b in range(B):
        for c in range(C):
            if not channel_alive[b, c]:
                all_alive[b] = 0
                break
    n_threads = max(1, min(n_threads, B))
    cdef floating[:, ::1] buf = np.zeros((n_threads, plane + slack), dtype=np.asarray(wval).dtype)
    cdef floating[:, ::1] vbuf = np.empty((n_threads, max_row + 1), dtype=np.asarray(wval).dtype)
    cdef int32_t[:, ::1] obuf = np.empty((n_threads, max_row + 1), dtype=np.int32)
    cdef int32_t[:, ::1] cbuf = np.empty((n_threads, max_row + 1), dtype=np.int32)
    cdef floating* vb
    cdef int32_t* ob
    cdef int32_t* cb
    cdef floating* xb
    with nogil, parallel(num_threads=n_threads):
        t = threadid()
        vb = &vbuf[t, 0]
        ob = &obuf[t, 0]
        cb = &cbuf[t, 0]
        xb = &buf[t, 0]
        for b in prange(B, schedule='dynamic'):
            for c in range(C):          # the interior only: the border stays zero
                for h in range(H):
                    memcpy(xb + (c * Hq + ph + h) * Wq + pw, &x[b, c, h, 0],
                           W * sizeof(floating))
            for o in range(O):
                _filter_plane(&wval[0], &woff[0], &wchan[0], wptr[o], wptr[o + 1],
                              &channel_alive[b, 0], all_alive[b], vb, ob, cb, cblock, xb,
                              limit, Wq, 0, OH, OW, &out[b, o, 0, 0])


# _forward_shifted's register tile rows (AVX-512 float32: 8) and channels a block
cdef Py_ssize_t _SHIFT_BAND = 8, _SHIFT_CBLOCK = 16


cdef void _forward_shifted(const floating[:, :, :, ::1] x, int ph, int pw,
                           const floating[::1] wval, const int32_t[::1] woff,
                           const int32_t[::1] wchan, const int32_t[::1] wptr,
                           floating[:, :, :, ::1] out, int n_threads, Py_ssize_t J):
    """forward_pad's sums from J copies of each padded image, copy j shifted left by j
    columns, rows of ``pitch`` (OW rounded up to 16) elements: tap (c, i, j) then reads
    copy j at c's plane and row i, so with a 64-byte aligned buffer every vector load is
    aligned (a load crossing a 64-byte line costs two; on Zen 5 16 FMAs take 2.4 ns from
    aligned L1 lines, 4.0 ns from unaligned ones). Output rows go in bands of a tile's
    height and the weights in blocks of 16 input channels, every filter per (band,
    block), each block's tiles added to the last: the block's input rows stay in L1 while
    all the filters read them. The caller checked that every channel is alive, weights
    come in channel order and their columns are below J."""
    cdef Py_ssize_t B = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t O = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t Hq = H + 2 * <Py_ssize_t>ph, Wq = W + 2 * <Py_ssize_t>pw
    cdef Py_ssize_t pitch = (OW + 15) // 16 * 16, n = wval.shape[0]
    cdef Py_ssize_t nb = (C + _SHIFT_CBLOCK - 1) // _SHIFT_CBLOCK
    cdef Py_ssize_t size = J * C * Hq * pitch, slack = 64, limit = size + slack
    cdef Py_ssize_t b, o, p, k, c, h, j, t, u, lo, hi, wlo, whi, oh0
    cdef int32_t[::1] off = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] bptr = np.empty(O * (nb + 1), dtype=np.int32)
    for p in range(n):
        c = woff[p] // (Hq * Wq)
        h = (woff[p] % (Hq * Wq)) // Wq
        j = (woff[p] % (Hq * Wq)) % Wq
        off[p] = <int32_t>(((j * C + c) * Hq + h) * pitch)
    for o in range(O):                  # bptr[o, k]: filter o's first weight in block k
        p = wptr[o]
        for k in range(nb + 1):
            while p < wptr[o + 1] and wchan[p] < k * _SHIFT_CBLOCK:
                p = p + 1
            bptr[o * (nb + 1) + k] = <int32_t>p
    n_threads = max(1, min(n_threads, B))
    # 64 bytes of alignment past numpy's own: the planes start at an aligned element
    raw = np.zeros(n_threads * (limit + 16) + 16, dtype=np.asarray(wval).dtype)
    cdef Py_ssize_t first = (-(raw.ctypes.data // sizeof(floating))) % 16
    cdef floating[::1] buf = raw[first:first + n_threads * (limit + 16)]
    cdef floating* xb
    with nogil, parallel(num_threads=n_threads):
        t = threadid()
        xb = &buf[t * (limit + 16)]
        for b in prange(B, schedule='dynamic'):
            for c in range(C):          # columns a copy never takes from x stay zero
                for h in range(H):
                    for j in range(J):
                        wlo = max(0, pw - j)
                        whi = min(pitch, W + pw - j)
                        if whi > wlo:
                            memcpy(xb + ((j * C + c) * Hq + ph + h) * pitch + wlo,
                                   &x[b, c, h, wlo + j - pw], (whi - wlo) * sizeof(floating))
            for u in range((OH + _SHIFT_BAND - 1) // _SHIFT_BAND):
                oh0 = u * _SHIFT_BAND
                for k in range(nb):
                    for o in range(O):
                        lo = bptr[o * (nb + 1) + k]
                        hi = bptr[o * (nb + 1) + k + 1]
                        if k == 0 or hi > lo:
                            _tile(&wval[0] + lo, &off[0] + lo, hi - lo, xb, limit, pitch, oh0,
                                  min(OH, oh0 + _SHIFT_BAND), OW, &out[b, o, 0, 0], k > 0)


def grad_weight(const floating[:, :, :, :, ::1] P, const floating[:, :, :, ::1] grad,
                const int32_t[::1] widx, const int32_t[::1] wptr,
                const int32_t[::1] tap_phase, const int32_t[::1] tap_qi,
                const int32_t[::1] tap_qj, floating[::1] out,
                int out_per_group, int in_per_group, int n_threads=1):
    """out[p] = d loss / d w for each stored weight p only: a plane dot product per image."""
    cdef Py_ssize_t B = grad.shape[0], O = grad.shape[1], OH = grad.shape[2], OW = grad.shape[3]
    cdef Py_ssize_t T = tap_phase.shape[0], Wq = P.shape[4]
    cdef Py_ssize_t b, o, c, p, t, tap
    cdef floating s
    with nogil:
        for o in prange(O, num_threads=n_threads, schedule='dynamic'):
            for p in range(wptr[o], wptr[o + 1]):
                t = widx[p]
                c = (o // out_per_group) * in_per_group + t // T
                tap = t % T
                s = 0
                for b in range(B):
                    s = s + _dot(OH, OW, &grad[b, o, 0, 0],
                                 &P[b, c, tap_phase[tap], tap_qi[tap], tap_qj[tap]], Wq)
                out[p] = s


def grad_input(const floating[:, :, :, ::1] grad, const floating[::1] cval,
               const int32_t[::1] cidx, const int32_t[::1] cptr,
               const int32_t[::1] tap_phase, const int32_t[::1] tap_qi,
               const int32_t[::1] tap_qj, floating[:, :, :, :, ::1] gP, int n_threads=1):
    """gP[b, c] += w * grad[b, o] at each stored weight's shift (the transposed convolution).

    Weights come grouped by input channel (CSR over channels, entries o * T + tap),
    so threads own disjoint (b, c) input planes. ``gP`` must be zeroed.
    """
    cdef Py_ssize_t B = grad.shape[0], OH = grad.shape[2], OW = grad.shape[3]
    cdef Py_ssize_t C = gP.shape[1], T = tap_phase.shape[0], Wq = gP.shape[4]
    cdef Py_ssize_t bc, b, c, o, p, tap
    with nogil:
        for bc in prange(B * C, num_threads=n_threads, schedule='dynamic'):
            b = bc // C
            c = bc % C
            for p in range(cptr[c], cptr[c + 1]):
                o = cidx[p] // T
                tap = cidx[p] % T
                _axpy(OH, OW, cval[p], &grad[b, o, 0, 0], OW, NULL,
                      &gP[b, c, tap_phase[tap], tap_qi[tap], tap_qj[tap]], Wq)


def forward_input_sparse(const floating[:, :, :, ::1] xpad, const floating[:, :, ::1] Wt,
                         const int32_t[::1] tap_dh, const int32_t[::1] tap_dw,
                         const int32_t[::1] remap, const uint8_t[::1] ones,
                         int sh, int sw, floating[:, :, :, ::1] out, int n_threads=1):
    """Input-stationary path: only nonzero input pixels are multiplied.

    ``xpad`` is the padded input channels-last (B, Hp, Wp, C); ``Wt[g]`` is
    group g's weight as (taps * C_g, O_g), row tap * C_g + c; ``out`` is
    channels-last (B, OH, OW, O).  For each output pixel the receptive field
    (taps runs of C_g contiguous channels) is compacted to its nonzeros (SIMD
    compress), then one spmm row kernel call sums those rows of Wt with the
    accumulators in registers.  Work: O(B * OH * OW * (taps * C + nnz_field * O)).
    Weights must be finite (a skipped zero pixel would hide inf * 0).
    """
    cdef Py_ssize_t B = out.shape[0], OH = out.shape[1], OW = out.shape[2], O = out.shape[3]
    cdef Py_ssize_t G = Wt.shape[0], Og = Wt.shape[2], C = xpad.shape[3]
    cdef Py_ssize_t T = tap_dh.shape[0], Cg = C // G
    cdef Py_ssize_t boh, b, oh, ow, g, tap, q, t
    if B * OH * OW * O == 0:
        return
    cdef floating[:, ::1] vbuf = np.empty((n_threads, T * Cg + 16), dtype=np.asarray(Wt).dtype)
    cdef int32_t[:, ::1] ibuf = np.empty((n_threads, T * Cg + 16), dtype=np.int32)
    cdef floating* vb
    cdef int32_t* ib
    with nogil, parallel(num_threads=n_threads):
        t = threadid()
        vb = &vbuf[t, 0]
        ib = &ibuf[t, 0]
        for boh in prange(B * OH, schedule='dynamic'):
            b = boh // OH
            oh = boh % OH
            for ow in range(OW):
                for g in range(G):
                    q = 0
                    for tap in range(T):
                        q = q + _compact(&xpad[b, oh * sh + tap_dh[tap], ow * sw + tap_dw[tap], g * Cg],
                                         &ones[0], &remap[tap * Cg], Cg, vb + q, ib + q)
                    _row(vb, ib, q, &Wt[g, 0, 0], &out[b, oh, ow, g * Og], Og, Og)


cdef inline Py_ssize_t _compact(const floating* x, const uint8_t* alive, const int32_t* remap,
                                Py_ssize_t n, floating* vout, int32_t* iout) noexcept nogil:
    if floating is float:
        return wsk_compact_f32(x, alive, remap, n, vout, iout)
    else:
        return wsk_compact_f64(x, alive, remap, n, vout, iout)


# -- channel planes: a pruned Conv2D's training step (stride 1) ------------------------------
# Each image is held as C planes of S elements: padded pixel (h, w) at h * Wp + w, zeros
# after Hp * Wp. Tap (i, j) is then one shift i * dh * Wp + j * dw of the whole plane, so
# an output plane computed "wide" (OH rows of Wp pixels, the last Wp - OW of each row not
# part of the output) is one spmm row kernel call over the filter's kept weights: rows of
# a few hundred elements, accumulators in registers, no im2col. The input gradient is the
# same call on the output gradient's planes (padded so every shifted read is a zero where
# no output pixel was); the weight gradient is one plane dot product per kept weight.

def nhwc_to_planes(const floating[:, :, :, ::1] x, floating[:, :, ::1] out, int start,
                   int Wp, int n_threads=1):
    """out[b, c, start + h * Wp + w] = x[b, h, w, c]; every other element of out zeroed."""
    cdef Py_ssize_t B = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t S = out.shape[2], b, h, w, c
    cdef const floating* src
    cdef floating* dst
    if B * C * S == 0:
        return
    with nogil:
        for b in prange(B, num_threads=n_threads, schedule='static'):
            memset(&out[b, 0, 0], 0, C * S * sizeof(floating))
            for h in range(H):
                for w in range(W):
                    src = &x[b, h, w, 0]
                    dst = &out[b, 0, start + h * Wp + w]
                    for c in range(C):
                        dst[c * S] = src[c]


def planes_to_nhwc(const floating[:, :, ::1] planes, floating[:, :, :, ::1] out, int start,
                   int Wp, const floating[::1] bias, int n_threads=1):
    """out[b, h, w, c] = planes[b, c, start + h * Wp + w] (+ bias[c] when bias is not
    empty). (ReLU is left to NumPy's vectorised maximum: a branch per element here
    mispredicts half the time.)"""
    cdef Py_ssize_t B = out.shape[0], H = out.shape[1], W = out.shape[2], C = out.shape[3]
    cdef Py_ssize_t S = planes.shape[2], b, h, w, c
    cdef const floating* src
    cdef floating* dst
    if B * H * W * C == 0:
        return
    with nogil:
        for b in prange(B, num_threads=n_threads, schedule='static'):
            for h in range(H):
                for w in range(W):
                    src = &planes[b, 0, start + h * Wp + w]
                    dst = &out[b, h, w, 0]
                    if bias.shape[0] > 0:
                        for c in range(C):
                            dst[c] = src[c * S] + bias[c]
                    else:
                        for c in range(C):
                            dst[c] = src[c * S]


def planes_rows(const floating[:, :, ::1] X, const floating[::1] val, const int32_t[::1] off,
                const int32_t[::1] ptr, floating[:, :, ::1] Y, Py_ssize_t n,
                int n_threads=1):
    """Y[b, r, 0:n] = sum over p in ptr[r]:ptr[r + 1] of val[p] * X[b].flat[off[p] + 0:n]
    (the forward with rows = filters, the input gradient with rows = input channels), a
    row's vectors in registers (src/wsk_conv_planes.h); n must be whole 16-element blocks
    and every read inside the planes (the wrapper's geometry). Work O(B * nnz * n);
    threads own (b, r) planes."""
    cdef Py_ssize_t B = Y.shape[0], R = Y.shape[1], br, b, r
    if n % 16 or n < 0 or n > Y.shape[2]:
        raise ValueError(f"planes_rows: n must be a multiple of 16 within Y's rows of "
                         f"{Y.shape[2]}; received {n}")
    if ptr.shape[0] != R + 1 or ptr[R] > off.shape[0] or off.shape[0] != val.shape[0]:
        raise ValueError(f"planes_rows: ptr must have {R + 1} entries and val and off one "
                         f"per kept weight; received ptr of {ptr.shape[0]}, val of "
                         f"{val.shape[0]}, off of {off.shape[0]}")
    if B * R * n == 0:
        return
    _check_offsets("planes_rows", ptr, off, n, X.shape[1] * X.shape[2])
    with nogil:
        for br in prange(B * R, num_threads=n_threads, schedule='static'):
            b = br // R
            r = br % R
            if floating is float:
                wsk_planes_row_f32(&val[0] + ptr[r], &off[0] + ptr[r], ptr[r + 1] - ptr[r],
                                   &X[b, 0, 0], &Y[b, r, 0], n)
            else:
                wsk_planes_row_f64(&val[0] + ptr[r], &off[0] + ptr[r], ptr[r + 1] - ptr[r],
                                   &X[b, 0, 0], &Y[b, r, 0], n)


def planes_grad_weight(const floating[:, :, ::1] X, const floating[:, :, ::1] G,
                       const int32_t[::1] xoff, const int32_t[::1] optr, Py_ssize_t start,
                       Py_ssize_t n, floating[:, ::1] acc, int n_threads=1):
    """acc[t, p] += sum over the images b thread t takes of
    G[b, o, start + 0:n] . X[b].flat[xoff[p] + 0:n] for the kept weights p of each filter
    o (optr: CSR over filters): the weight gradient at the kept weights only (sum acc over
    its first axis). Each kept weight sums vectors of lanes over all the thread's images
    and reduces them once (src/wsk_conv_planes.h); n must be whole 16-element blocks and
    every read inside the planes (the wrapper's geometry)."""
    cdef Py_ssize_t B = X.shape[0], O = G.shape[1], P = xoff.shape[0], t, lo, hi
    if n % 16 or n < 0 or start < 0 or start + n > G.shape[2]:
        raise ValueError(f"planes_grad_weight: n must be a multiple of 16 and start + n "
                         f"within G's planes of {G.shape[2]}; received start {start}, n {n}")
    if optr.shape[0] != O + 1 or optr[O] != P or acc.shape[1] != P or acc.shape[0] < n_threads:
        raise ValueError(f"planes_grad_weight: optr must have {O + 1} entries ending at "
                         f"{P} kept weights and acc ({n_threads}, {P}); received optr of "
                         f"{optr.shape[0]}, acc {(acc.shape[0], acc.shape[1])}")
    if B * P * n == 0:
        return
    _check_offsets("planes_grad_weight", optr, xoff, n, X.shape[1] * X.shape[2])
    cdef Py_ssize_t lane_n = P * (WSK_PLANES_LANES_BYTES // sizeof(floating))
    cdef floating[:, ::1] lanes = np.empty((n_threads, lane_n), dtype=np.asarray(acc).dtype)
    with nogil:           # part t: its images, its lanes, its row of acc (whatever thread)
        for t in prange(n_threads, num_threads=n_threads, schedule='static'):
            lo = B * t // n_threads
            hi = B * (t + 1) // n_threads
            if hi > lo:
                if floating is float:
                    wsk_planes_gw_f32(&X[lo, 0, 0], X.shape[1] * X.shape[2], &G[lo, 0, 0],
                                      G.shape[1] * G.shape[2], G.shape[2], start, hi - lo,
                                      &xoff[0], &optr[0], O, n, &lanes[t, 0], &acc[t, 0])
                else:
                    wsk_planes_gw_f64(&X[lo, 0, 0], X.shape[1] * X.shape[2], &G[lo, 0, 0],
                                      G.shape[1] * G.shape[2], G.shape[2], start, hi - lo,
                                      &xoff[0], &optr[0], O, n, &lanes[t, 0], &acc[t, 0])


def _check_offsets(str name, const int32_t[::1] ptr, const int32_t[::1] off, Py_ssize_t n,
                   Py_ssize_t size):
    """ptr a CSR from 0, never decreasing; every read off[p] + 0:n of its entries inside
    one image's planes of ``size`` elements."""
    cdef Py_ssize_t p, lo = 0, hi = 0
    for p in range(ptr.shape[0] - 1):
        if ptr[p + 1] < ptr[p]:
            raise ValueError(f"{name}: the row pointers must not decrease; received "
                             f"{ptr[p]} then {ptr[p + 1]}")
    if ptr[0] != 0:
        raise ValueError(f"{name}: the row pointers must start at 0; received {ptr[0]}")
    off = off[:ptr[ptr.shape[0] - 1]]
    for p in range(off.shape[0]):
        lo = min(lo, off[p])
        hi = max(hi, off[p])
    if lo < 0 or hi + n > size:
        raise ValueError(f"{name}: offsets {lo}..{hi} + n {n} reach outside one image's "
                         f"planes of {size} elements")


def scan_planes(const floating[:, :, ::1] x, uint8_t[:, ::1] alive):
    """One pass over x (B, C, H*W): alive[b, c] = 1 where plane (b, c) has a nonzero (or a
    NaN); returns (nonzeros, whether every element is finite). The conv2d dispatcher's
    three questions about x (density, finiteness, dead channels) in one read, on the
    selected SIMD path's clone (src/wsk_conv_tile.h wsk_scan). Checks its operands."""
    cdef Py_ssize_t B = x.shape[0], C = x.shape[1], N = x.shape[2], b, c
    cdef Py_ssize_t nnz = 0, k
    cdef int bad = 0
    if alive.shape[0] != B or alive.shape[1] != C:
        raise ValueError(f"scan_planes: x of {B} x {C} planes needs alive {(B, C)}; "
                         f"received {(alive.shape[0], alive.shape[1])}")
    if B * C == 0:
        return 0, True
    with nogil:
        for b in range(B):
            for c in range(C):
                if floating is float:
                    k = wsk_scan_f32(&x[b, c, 0], N, &bad) if N > 0 else 0
                else:
                    k = wsk_scan_f64(&x[b, c, 0], N, &bad) if N > 0 else 0
                nnz = nnz + k
                alive[b, c] = k > 0
    return nnz, bad == 0


def same_bytes(const uint8_t[::1] a, const uint8_t[::1] b):
    """Whether a and b hold the same bytes (memcmp: no temporary, stops at the first
    difference). The direct path's weight cache compares a call's weights with it."""
    if a.shape[0] != b.shape[0]:
        return False
    if a.shape[0] == 0:
        return True
    cdef int r
    with nogil:
        r = memcmp(&a[0], &b[0], a.shape[0])
    return r == 0


def pad_scan(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out, int ph, int pw,
             uint8_t[:, ::1] alive):
    """One pass over x (B, C, H, W): out[b, c, ph + h, pw + w] = x[b, c, h, w] with only
    the border zeroed (out is (B, C, H + 2 ph, W + 2 pw)), and scan_planes's answers:
    alive[b, c] = 1 where plane (b, c) has a nonzero (or a NaN); returns (nonzeros,
    whether every element is finite). The direct path's padded input and the
    dispatcher's questions about x in one read. Checks its operands itself."""
    cdef Py_ssize_t B = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    if ph < 0 or pw < 0:
        raise ValueError(f"pad_scan: padding must be >= 0; received ph={ph}, pw={pw}")
    cdef Py_ssize_t Hp = H + 2 * <Py_ssize_t>ph, Wp = W + 2 * <Py_ssize_t>pw   # no int wrap
    if (out.shape[0] != B or out.shape[1] != C or out.shape[2] != Hp or out.shape[3] != Wp
            or alive.shape[0] != B or alive.shape[1] != C):
        raise ValueError(f"pad_scan: x {(B, C, H, W)} padded by ({ph}, {pw}) needs out "
                         f"{(B, C, Hp, Wp)} and alive {(B, C)}; received out "
                         f"{(out.shape[0], out.shape[1], out.shape[2], out.shape[3])} and "
                         f"alive {(alive.shape[0], alive.shape[1])}")
    cdef Py_ssize_t b, c, h, i, nnz = 0, k
    cdef int bad = 0
    cdef const floating* src
    cdef floating* dst
    cdef floating v
    with nogil:
        for b in range(B):
            for c in range(C):
                k = 0
                if ph > 0:
                    memset(&out[b, c, 0, 0], 0, ph * Wp * sizeof(floating))
                    memset(&out[b, c, ph + H, 0], 0, ph * Wp * sizeof(floating))
                for h in range(H):
                    src = &x[b, c, h, 0]
                    dst = &out[b, c, ph + h, 0]
                    for i in range(pw):
                        dst[i] = 0
                        dst[pw + W + i] = 0
                    dst = dst + pw
                    for i in range(W):     # integer reductions: the loop vectorises
                        v = src[i]
                        dst[i] = v
                        k = k + (v != 0)
                        bad = bad | (v - v != 0)    # v - v is NaN for inf and NaN, else 0
                nnz = nnz + k
                alive[b, c] = k > 0
    return nnz, bad == 0


# -- few input channels, channels-last: no im2col (wsk_conv_small.h) -------------------------
cdef _small_check(str name, Py_ssize_t B, Py_ssize_t C, Py_ssize_t[4] wshape,
                  Py_ssize_t[4] yshape, int sh, int sw, int ph, int pw, int dh, int dw):
    if min(sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{name}: strides and dilations must be >= 1 and paddings >= 0; "
                         f"received strides ({sh}, {sw}), dilation ({dh}, {dw}), "
                         f"padding ({ph}, {pw})")
    if wshape[2] != C or yshape[0] != B or yshape[3] != wshape[3]:
        raise ValueError(f"{name}: x of {B} images with {C} channels and a kernel (kh, kw, "
                         f"{C}, O) need an output (gradient) ({B}, OH, OW, O); received kernel "
                         f"{tuple(wshape[i] for i in range(4))}, output "
                         f"{tuple(yshape[i] for i in range(4))}")


def small_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                  const floating[::1] bias, bint relu, floating[:, :, :, ::1] y,
                  int sh, int sw, int ph, int pw, int dh, int dw, int n_threads=1):
    """y[b, oh, ow, :] = bias + sum over taps (i, j), channels c of
    x[b, oh * sh - ph + i * dh, ow * sw - pw + j * dw, c] * w[i, j, c, :] (reads of the
    padding skipped), then ReLU when ``relu``: x (B, H, W, C), w (kh, kw, C, O),
    y (B, OH, OW, O), bias (O,) or empty. Every multiply-add of the dense convolution is
    done (zeros included, so IEEE's inf * 0 stays NaN), with no im2col. Work
    O(B * OH * OW * kh * kw * C * O); threads own images. Checks its operands itself."""
    cdef Py_ssize_t B = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t O = w.shape[3], b
    _small_check("small_forward", B, C, w.shape, y.shape, sh, sw, ph, pw, dh, dw)
    if bias.shape[0] not in (0, O):
        raise ValueError(f"small_forward: bias must have {O} values or none; received "
                         f"{bias.shape[0]}")
    cdef Py_ssize_t[8] geo = [sh, sw, ph, pw, dh, dw, y.shape[1], y.shape[2]]
    cdef const floating* bp = &bias[0] if bias.shape[0] > 0 else NULL
    if B * y.shape[1] * y.shape[2] * O == 0:
        return
    if w.shape[0] * w.shape[1] * C == 0:
        fill = np.asarray(bias) if bp != NULL else 0       # no taps: bias (then ReLU) only
        np.asarray(y)[...] = np.maximum(fill, 0) if relu else fill
        return
    with nogil:
        for b in prange(B, num_threads=n_threads, schedule='static'):
            if floating is float:
                wsk_small_forward_f32(&x[b, 0, 0, 0], H, W, C, &w[0, 0, 0, 0], w.shape[0],
                                      w.shape[1], O, geo, bp, relu, &y[b, 0, 0, 0])
            else:
                wsk_small_forward_f64(&x[b, 0, 0, 0], H, W, C, &w[0, 0, 0, 0], w.shape[0],
                                      w.shape[1], O, geo, bp, relu, &y[b, 0, 0, 0])


def small_grad_weight(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] gy,
                      double[:, :, :, ::1] gw, int sh, int sw, int ph, int pw, int dh,
                      int dw, int n_threads=1):
    """gw[i, j, c, :] += sum over images and output pixels of x[b, ih, iw, c] *
    gy[b, oh, ow, :] (the adjoint of small_forward in w; reads of the padding skipped):
    each image summed in x's precision, the images in double. Checks its operands."""
    cdef Py_ssize_t B = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t O = gw.shape[3], n = gw.shape[0] * gw.shape[1] * gw.shape[2] * gw.shape[3]
    cdef Py_ssize_t b, t, k
    _small_check("small_grad_weight", B, C, gw.shape, gy.shape, sh, sw, ph, pw, dh, dw)
    cdef Py_ssize_t[8] geo = [sh, sw, ph, pw, dh, dw, gy.shape[1], gy.shape[2]]
    if B * gy.shape[1] * gy.shape[2] * n == 0:
        return
    n_threads = max(1, min(n_threads, B))
    cdef floating[:, ::1] part = np.empty((n_threads, n), dtype=np.asarray(gy).dtype)
    cdef double[:, ::1] acc = np.zeros((n_threads, n))
    with nogil, parallel(num_threads=n_threads):
        t = threadid()
        for b in prange(B, schedule='static'):
            memset(&part[t, 0], 0, n * sizeof(floating))
            if floating is float:
                wsk_small_grad_weight_f32(&x[b, 0, 0, 0], H, W, C, &gy[b, 0, 0, 0],
                                          gw.shape[0], gw.shape[1], O, geo, &part[t, 0])
            else:
                wsk_small_grad_weight_f64(&x[b, 0, 0, 0], H, W, C, &gy[b, 0, 0, 0],
                                          gw.shape[0], gw.shape[1], O, geo, &part[t, 0])
            for k in range(n):
                acc[t, k] += part[t, k]
    cdef double* out = &gw[0, 0, 0, 0]
    for t in range(n_threads):
        for k in range(n):
            out[k] += acc[t, k]
