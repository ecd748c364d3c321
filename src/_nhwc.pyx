# Channels-last (NHWC) loops for training: im2col / col2im and 2-D pooling.
#
# In NHWC one kernel tap reads C contiguous channels, so im2col is a memcpy per
# (pixel, tap) and its columns (B*OH*OW, kh*kw*C) times a Keras kernel
# (kh, kw, C, O) seen as (kh*kw*C, O) is the convolution, with no transpose.
# Padding is implicit (reads outside the image give zeros, or are skipped by
# pooling). The wrappers in wsekern/conv.py and wsekern/pool.py validate
# shapes; these loops never raise. Threads own disjoint images.
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memcpy, memset
from libc.stdint cimport int32_t
from libc.math cimport INFINITY
from cython cimport floating

cdef extern from "wsk_nhwc.h" nogil:
    void wsk_max_pool_f32(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, float*, int32_t*,
                          Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                          Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_max_pool_f64(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, double*,
                          int32_t*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                          Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_max_pool_back_apart_f32(const float*, const int32_t*, float*, Py_ssize_t,
                                     Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                     Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_max_pool_back_apart_f64(const double*, const int32_t*, double*, Py_ssize_t,
                                     Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                     Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_nhwc_init(int path) noexcept

import numpy as np


def simd_init(int path):
    """Select the clone of the max-pooling passes (src/wsk_nhwc.h): 1
    baseline, 2 avx2, 4 avx512 (the caller checked this CPU runs it; wsekern.simd_path)."""
    if path not in (1, 2, 4):
        raise ValueError(f"simd_init: path must be 1, 2 or 4; received {path}")
    wsk_nhwc_init(path)


def im2col(const floating[:, :, :, ::1] x, floating[:, ::1] cols, int kh, int kw,
           int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW,
           int n_threads=1):
    """cols[(b*OH + oh)*OW + ow, (i*kw + j)*C + c] = x[b, oh*sh - ph + i*dh,
    ow*sw - pw + j*dw, c], zero where that pixel lies in the padding."""
    cdef Py_ssize_t B = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t b, oh, ow, i, j, ih, iw, row, c
    cdef const floating* src
    cdef floating* dst
    if B * OH * OW * kh * kw * C == 0:
        return
    with nogil:
        for b in prange(B, num_threads=n_threads, schedule='static'):
            for oh in range(OH):
                for ow in range(OW):
                    row = (b * OH + oh) * OW + ow
                    dst = &cols[row, 0]
                    for i in range(kh):
                        ih = oh * sh - ph + i * dh
                        for j in range(kw):
                            iw = ow * sw - pw + j * dw
                            if 0 <= ih < H and 0 <= iw < W:
                                if C < 16:      # a call per few bytes costs more than a loop
                                    src = &x[b, ih, iw, 0]
                                    for c in range(C):
                                        dst[c] = src[c]
                                else:
                                    memcpy(dst, &x[b, ih, iw, 0], C * sizeof(floating))
                            else:
                                memset(dst, 0, C * sizeof(floating))
                            dst = dst + C


def col2im(const floating[:, ::1] cols, floating[:, :, :, ::1] gx, int kh, int kw,
           int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW,
           int n_threads=1):
    """The adjoint of im2col: gx[b, ih, iw, c] += cols[row, tap*C + c] for every
    read of that pixel; reads of the padding are dropped. ``gx`` must be zeroed."""
    cdef Py_ssize_t B = gx.shape[0], H = gx.shape[1], W = gx.shape[2], C = gx.shape[3]
    cdef Py_ssize_t b, oh, ow, i, j, ih, iw, c
    cdef const floating* src
    cdef floating* dst
    if B * OH * OW * kh * kw * C == 0:
        return
    with nogil:
        for b in prange(B, num_threads=n_threads, schedule='static'):
            for oh in range(OH):
                for ow in range(OW):
                    src = &cols[(b * OH + oh) * OW + ow, 0]
                    for i in range(kh):
                        ih = oh * sh - ph + i * dh
                        for j in range(kw):
                            iw = ow * sw - pw + j * dw
                            if 0 <= ih < H and 0 <= iw < W:
                                dst = &gx[b, ih, iw, 0]
                                for c in range(C):
                                    dst[c] += src[c]
                            src = src + C


def max_pool(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
             int32_t[:, :, :, ::1] arg, int kh, int kw, int sh, int sw, int ph, int pw,
             int n_threads=1):
    """out[b, oh, ow, c] = max over the window's pixels inside the image; ``arg`` gets
    the flat index ih * W + iw of the first maximum. NaN wins (the first NaN), as in
    torch; a window of -inf keeps its first pixel. A window wholly in the padding
    gives -inf and arg -1."""
    cdef Py_ssize_t B = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2], b
    if B * OH * OW * C == 0:
        return
    with nogil:
        for b in prange(B, num_threads=n_threads, schedule='static'):
            if floating is float:
                wsk_max_pool_f32(&x[b, 0, 0, 0], H, W, C, &out[b, 0, 0, 0], &arg[b, 0, 0, 0],
                                 OH, OW, kh, kw, sh, sw, ph, pw)
            else:
                wsk_max_pool_f64(&x[b, 0, 0, 0], H, W, C, &out[b, 0, 0, 0], &arg[b, 0, 0, 0],
                                 OH, OW, kh, kw, sh, sw, ph, pw)


def max_pool_backward(const floating[:, :, :, ::1] grad, const int32_t[:, :, :, ::1] arg,
                      floating[:, :, :, ::1] gx, int n_threads=1, int kh=0, int kw=0,
                      int sh=0, int sw=0):
    """gx[b, arg // W, arg % W, c] += grad[b, oh, ow, c]; ``gx`` must be zeroed.

    With the window (kh, kw) and stride (sh, sw) of unpadded windows that do not
    overlap (kh <= sh, kw <= sw) every pixel of ``gx`` is written instead (its window's
    gradient where ``arg`` names it, else 0): ``gx`` need not be zeroed, and ``arg`` is
    only compared, never used as an index."""
    cdef Py_ssize_t B = grad.shape[0], OH = grad.shape[1], OW = grad.shape[2]
    cdef Py_ssize_t C = grad.shape[3], H = gx.shape[1], W = gx.shape[2]
    cdef Py_ssize_t b, oh, ow, c, p
    cdef floating* base
    if (arg.shape[0] != B or arg.shape[1] != OH or arg.shape[2] != OW or arg.shape[3] != C
            or gx.shape[0] != B or gx.shape[3] != C):
        raise ValueError(f"max_pool_backward: grad {np.shape(grad)}, arg {np.shape(arg)} "
                         f"and gx {np.shape(gx)} must share the batch and channels, and arg "
                         f"must have grad's shape")
    if kh > 0 and kw > 0 and kh <= sh and kw <= sw:
        if B * H * W * C == 0:
            return
        with nogil:
            for b in prange(B, num_threads=n_threads, schedule='static'):
                if floating is float:
                    wsk_max_pool_back_apart_f32(&grad[b, 0, 0, 0], &arg[b, 0, 0, 0],
                                                &gx[b, 0, 0, 0], H, W, C, OH, OW, kh, kw, sh, sw)
                else:
                    wsk_max_pool_back_apart_f64(&grad[b, 0, 0, 0], &arg[b, 0, 0, 0],
                                                &gx[b, 0, 0, 0], H, W, C, OH, OW, kh, kw, sh, sw)
        return
    if B * OH * OW * C == 0 or W == 0:
        return
    cdef Py_ssize_t HW = H * W
    cdef int outside = 0
    with nogil:
        for b in prange(B, num_threads=n_threads, schedule='static'):
            base = &gx[b, 0, 0, 0]
            for oh in range(OH):
                for ow in range(OW):
                    for c in range(C):
                        p = arg[b, oh, ow, c]
                        if p >= HW:                 # not a pixel: refused below
                            outside |= 1
                        elif p >= 0:
                            base[p * C + c] += grad[b, oh, ow, c]
    if outside:
        raise ValueError(f"max_pool_backward: arg holds pixel indices beyond the image's "
                         f"{H}x{W} = {HW} pixels; received arg with maximum "
                         f"{np.asarray(arg).max()}")


cdef inline double _avg_scale(Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t w0, Py_ssize_t w1,
                              int kh, int kw, bint count_pad) noexcept nogil:
    """1 / the window's divisor: kh*kw with ``count_pad``, else its pixels inside the
    image; 0 for a window wholly in the padding (it has no pixel to average)."""
    cdef Py_ssize_t n = kh * kw if count_pad else max(h1 - h0, 0) * max(w1 - w0, 0)
    return 1.0 / n if n > 0 else 0.0


def avg_pool(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out, int kh, int kw,
             int sh, int sw, int ph, int pw, bint count_pad, int n_threads=1):
    """Mean over each window: the sum of its pixels inside the image divided by kh*kw
    (``count_pad``: padding counts as zeros, torch's default) or by the pixels inside
    (Keras's 'same')."""
    cdef Py_ssize_t B = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t b, oh, ow, ih, iw, c, h0, h1, w0, w1
    cdef floating scale
    cdef floating* o
    cdef const floating* src
    if B * OH * OW * C == 0:
        return
    with nogil:
        for b in prange(B, num_threads=n_threads, schedule='static'):
            for oh in range(OH):
                h0 = max(oh * sh - ph, 0)
                h1 = min(oh * sh - ph + kh, H)
                for ow in range(OW):
                    w0 = max(ow * sw - pw, 0)
                    w1 = min(ow * sw - pw + kw, W)
                    o = &out[b, oh, ow, 0]
                    memset(o, 0, C * sizeof(floating))
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            src = &x[b, ih, iw, 0]
                            for c in range(C):
                                o[c] += src[c]
                    scale = <floating>_avg_scale(h0, h1, w0, w1, kh, kw, count_pad)
                    for c in range(C):
                        o[c] = o[c] * scale


def avg_pool_backward(const floating[:, :, :, ::1] grad, floating[:, :, :, ::1] gx,
                      int kh, int kw, int sh, int sw, int ph, int pw, bint count_pad,
                      int n_threads=1):
    """The adjoint of avg_pool. ``gx`` must be zeroed."""
    cdef Py_ssize_t B = grad.shape[0], OH = grad.shape[1], OW = grad.shape[2]
    cdef Py_ssize_t C = grad.shape[3], H = gx.shape[1], W = gx.shape[2]
    cdef Py_ssize_t b, oh, ow, ih, iw, c, h0, h1, w0, w1
    cdef floating scale
    cdef floating* dst
    cdef const floating* g
    if B * OH * OW * C == 0:
        return
    with nogil:
        for b in prange(B, num_threads=n_threads, schedule='static'):
            for oh in range(OH):
                h0 = max(oh * sh - ph, 0)
                h1 = min(oh * sh - ph + kh, H)
                for ow in range(OW):
                    w0 = max(ow * sw - pw, 0)
                    w1 = min(ow * sw - pw + kw, W)
                    scale = <floating>_avg_scale(h0, h1, w0, w1, kh, kw, count_pad)
                    if scale == 0:
                        continue
                    g = &grad[b, oh, ow, 0]
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            dst = &gx[b, ih, iw, 0]
                            for c in range(C):
                                dst[c] += g[c] * scale


# -- a convolution's epilogues over its (pixels, channels) output ---------------------------
def bias_relu(floating[:, ::1] y, const floating[::1] bias, bint relu, int n_threads=1):
    """In place, one pass: y[r, c] += bias[c] (when bias is not empty), then ReLU when
    ``relu`` (a select the channel loop vectorises; NaN stays NaN, as NumPy's maximum)."""
    cdef Py_ssize_t N = y.shape[0], C = y.shape[1], r, c
    cdef bint has_bias = bias.shape[0] > 0
    cdef floating v
    cdef floating* row
    if N * C == 0:
        return
    with nogil:
        for r in prange(N, num_threads=n_threads, schedule='static'):
            row = &y[r, 0]
            if has_bias and relu:
                for c in range(C):
                    v = row[c] + bias[c]
                    row[c] = 0 if v < 0 else v
            elif has_bias:
                for c in range(C):
                    row[c] = row[c] + bias[c]
            elif relu:
                for c in range(C):
                    v = row[c]
                    row[c] = 0 if v < 0 else v


def relu_grad_bias(const floating[:, ::1] grad, const floating[:, ::1] y, bint relu,
                   floating[:, ::1] out, double[:, ::1] bias_acc, int n_threads=1):
    """One pass: out = grad where y > 0, else 0 (ReLU's derivative from its output: a NaN
    gradient where the ReLU was off gives 0, as torch and Keras) or a copy of grad, and
    bias_acc[t, c] += out[r, c] over the rows r thread t takes (sum bias_acc over its
    first axis: the bias gradient, in double). A non-finite grad where y <= 0 leaves NaN
    in bias_acc: then sum ``out`` instead (rare; out is right)."""
    cdef Py_ssize_t N = grad.shape[0], C = grad.shape[1], r, c, t
    cdef const floating* g
    cdef const floating* a
    cdef floating* o
    cdef double* acc
    cdef floating v
    cdef int bad
    if N * C == 0:
        return
    with nogil, parallel(num_threads=n_threads):
        t = threadid()
        acc = &bias_acc[t, 0]
        for r in prange(N, schedule='static'):
            g = &grad[r, 0]
            a = &y[r, 0]
            o = &out[r, 0]
            if relu:
                # the product vectorises (a select did not: 20x slower on random signs);
                # it is NaN only where g is NaN or inf: such rows are redone with a select
                bad = 0
                for c in range(C):
                    v = g[c] * (1 if a[c] > 0 else 0)
                    o[c] = v
                    acc[c] += v
                    bad = bad | (v != v)
                if bad:        # acc got the NaN too: the caller sums ``out`` again
                    for c in range(C):
                        if not a[c] > 0:
                            o[c] = 0
            else:
                for c in range(C):
                    o[c] = g[c]
                    acc[c] += g[c]
