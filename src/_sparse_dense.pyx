# Typed loops of the sparse-weight Dense training step.
#
# A layer multiplies a dense batch by a sparse kernel W whose pattern is fixed and whose
# values change every step.  Every product of its step is one of two shapes here, on
# operands laid out so the inner loop runs over a contiguous row (the batch):
#   rows_times_dense:  out[i, :] = sum_p vals[p] * X[cols[p], :]   (Y^T = W^T X^T, dX^T)
#   sampled_dots:      out[p] = A[i, :] . B[cols[p], :]            (dW at W's pattern)
# rows_times_dense also adds the bias and applies GELU or ReLU (keeping the derivative) to each
# output segment while it is in L1; the transposes between the batch-major activations and
# this layout go by register tiles (wsk_transpose.h), the backward's one fused with the
# GELU derivative and the bias gradient (scale_rowsum).
#   rows_times_dense_t: rows_times_dense, its output also written batch-major
#                       (out_t[:, i] = out[i, :]), each column block transposed while in L2
# The wrappers (wsekern/sparse_dense.py) validate; these loops trust them and never raise.
from cython.parallel cimport prange
from libc.math cimport erf, exp, sqrt
from libc.string cimport memcpy, memset
from libc.stdint cimport int32_t, int64_t
from cython cimport floating

import numpy as np

from _fused cimport index_t
from _rows cimport spmm_row
from _simd cimport wsk_simd_init

cdef extern from "wsk_sampled.h" nogil:
    void wsk_sampled_dots_f32_i32(const float*, const float*, Py_ssize_t, const int32_t*,
                                  Py_ssize_t, float*, Py_ssize_t) noexcept
    void wsk_sampled_dots_f32_i64(const float*, const float*, Py_ssize_t, const int64_t*,
                                  Py_ssize_t, float*, Py_ssize_t) noexcept
    void wsk_sampled_dots_f64_i32(const double*, const double*, Py_ssize_t, const int32_t*,
                                  Py_ssize_t, double*, Py_ssize_t) noexcept
    void wsk_sampled_dots_f64_i64(const double*, const double*, Py_ssize_t, const int64_t*,
                                  Py_ssize_t, double*, Py_ssize_t) noexcept
    void wsk_sampled_dots8_i32(const float*, const float*, Py_ssize_t, const int32_t*,
                               Py_ssize_t, float*, Py_ssize_t, int) noexcept
    void wsk_sampled_dots8_i64(const float*, const float*, Py_ssize_t, const int64_t*,
                               Py_ssize_t, float*, Py_ssize_t, int) noexcept
    void wsk_sampled_init(int avx2) noexcept

cdef extern from "wsk_csr_check.h" nogil:
    Py_ssize_t wsk_first_out_of_range_i32(const int32_t*, Py_ssize_t, int64_t) noexcept
    Py_ssize_t wsk_first_out_of_range_i64(const int64_t*, Py_ssize_t, int64_t) noexcept
    void wsk_csr_check_init(int avx2) noexcept

cdef extern from "wsk_transpose.h" nogil:
    void wsk_transpose_f32(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                           float*, Py_ssize_t) noexcept
    void wsk_transpose_f64(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                           double*, Py_ssize_t) noexcept
    void wsk_transpose_init(int avx2) noexcept
    void wsk_scale_rowsum_f32(float*, const float*, Py_ssize_t, float*) noexcept
    void wsk_scale_rowsum_f64(double*, const double*, Py_ssize_t, double*) noexcept
    void wsk_transpose_scale_f32(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                 Py_ssize_t, float*, Py_ssize_t, const float*,
                                 float*) noexcept

cdef extern from "wsk_vmath.h" nogil:
    const char* wsk_vmath_use(int)
    void wsk_gelu_f32(const float*, float*, float*, Py_ssize_t) noexcept

# destination rows per band of transpose: a band (32 x 2048 float32: 256 KiB) is still in
# L2 when it is scaled and summed
cdef Py_ssize_t BAND = 32

cdef double INV_SQRT2 = 1.0 / sqrt(2.0)
cdef double INV_SQRT_2PI = 1.0 / sqrt(2.0 * 3.14159265358979323846)


def simd_init(int path=0):
    """Select this module's SIMD path (the dispatch table is per extension module)."""
    name = wsk_simd_init(path).decode()
    wide = name in ("avx2", "avx512")                   # their widest clones are AVX2
    wsk_sampled_init(wide)
    wsk_csr_check_init(wide)
    wsk_transpose_init(wide)
    wsk_vmath_use(2 if name == "avx512" else 1 if wide else 0)
    return name


def rows_times_dense(const floating[::1] vals, const index_t[::1] cols,
                     const index_t[::1] indptr, const floating[:, ::1] X,
                     floating[:, ::1] out, int n_threads=1, Py_ssize_t n_block=0,
                     const floating[::1] bias=None, floating[:, ::1] d=None,
                     int relu=0):
    """out[i, :] = sum over row i's stored positions p of vals[p] * X[cols[p], :] for the
    M = len(indptr) - 1 rows of out (M, N), X (K, N) (+ bias[i] when given; then, when
    ``d`` (M, N) is given, the exact GELU, or the ReLU with ``relu``, in place and its
    derivative into ``d``).

    With 0 < ``n_block`` < N the columns go in blocks of ``n_block``, each first copied
    into a contiguous (K, n_block) buffer: the rows of X one block spans stay in L2 while
    every row of W passes over them, and do not share cache sets through a power-of-two
    row pitch (at K = 128, N = 2048 fp32, in place: 0.14 ns a multiply-add, twice the
    time per multiply-add at N = 128). Work O(nnz * N) plus O(K * N) for the copies;
    threads own disjoint rows.
    """
    cdef floating* no_t = NULL
    _check_product(vals, cols, indptr, X, out, bias, d)
    _blocked_product(vals, cols, indptr, X, out, no_t, n_threads, n_block, bias, d, relu)


def rows_times_dense_t(const floating[::1] vals, const index_t[::1] cols,
                       const index_t[::1] indptr, const floating[:, ::1] X,
                       floating[:, ::1] out_t, floating[:, ::1] out, int n_threads=1,
                       Py_ssize_t n_block=0, const floating[::1] bias=None,
                       floating[:, ::1] d=None, int relu=0):
    """rows_times_dense into ``out`` (M, N), and the same written batch-major into ``out_t``
    (N, M): the row-major result is the next layer's input in the layout its own product
    reads, the batch-major one the layer's output.

    Each column block of ``out`` is transposed into whole rows of ``out_t`` right after it
    is computed, while it is still in L2 (a transpose of the finished ``out`` reads it back
    from memory). Work O(nnz * N) plus O(M * N) for the transposes; threads own disjoint
    rows, then disjoint bands of columns.
    """
    _check_product(vals, cols, indptr, X, out, bias, d)
    if out_t.shape[0] != out.shape[1] or out_t.shape[1] != out.shape[0]:
        raise ValueError(f"out_t must have shape (N, M) = ({out.shape[1]}, {out.shape[0]}); "
                         f"received ({out_t.shape[0]}, {out_t.shape[1]})")
    if out_t.shape[0] and out_t.shape[1]:             # (else nothing to write)
        _blocked_product(vals, cols, indptr, X, out, &out_t[0, 0], n_threads, n_block, bias,
                         d, relu)


cdef _check_product(const floating[::1] vals, const index_t[::1] cols,
                    const index_t[::1] indptr, const floating[:, ::1] X,
                    floating[:, ::1] out, const floating[::1] bias, floating[:, ::1] d):
    # the nogil loops read and write these unchecked
    cdef Py_ssize_t M = indptr.shape[0] - 1, N = out.shape[1]
    _checked_nnz(indptr, cols.shape[0], vals.shape[0], "vals")
    if out.shape[0] != M or X.shape[1] != N:
        raise ValueError(f"expected out of shape (len(indptr) - 1, N) = ({M}, {X.shape[1]}) "
                         f"for X of shape ({X.shape[0]}, {X.shape[1]}); received out of "
                         f"shape ({out.shape[0]}, {out.shape[1]})")
    _check_rows("rows_times_dense", vals, cols, indptr, M, X.shape[0])
    if bias is not None and bias.shape[0] != M:
        raise ValueError(f"bias must have out's {M} rows; received {bias.shape[0]}")
    if d is not None and (d.shape[0] != M or d.shape[1] != N):
        raise ValueError(f"d must have out's shape ({M}, {N}); received "
                         f"({d.shape[0]}, {d.shape[1]})")


cdef Py_ssize_t _checked_nnz(const index_t[::1] indptr, Py_ssize_t n_cols, Py_ssize_t n_vals,
                             str vals_name) except -1:
    # indptr[-1] (the stored count) after checking indptr against cols and the values
    cdef Py_ssize_t M = indptr.shape[0] - 1
    if M < 0:
        raise ValueError("indptr must hold at least one entry (0); received an empty indptr")
    if indptr[0] != 0 or indptr[M] < 0 or indptr[M] > n_cols or indptr[M] > n_vals:
        raise ValueError(f"indptr must start at 0 and end at most at len(cols) = {n_cols} and "
                         f"len({vals_name}) = {n_vals}; received indptr[0] = {indptr[0]}, "
                         f"indptr[-1] = {indptr[M]}")
    return indptr[M]


cdef _blocked_product(const floating[::1] vals, const index_t[::1] cols,
                      const index_t[::1] indptr, const floating[:, ::1] X,
                      floating[:, ::1] out, floating* ot, int n_threads,
                      Py_ssize_t n_block, const floating[::1] bias, floating[:, ::1] d,
                      int relu):
    # rows_times_dense's loop on checked operands; ot (out_t's data, when not NULL) gets
    # each column block of out transposed while it is in L2
    cdef Py_ssize_t M = out.shape[0], N = out.shape[1], K = X.shape[0]
    cdef Py_ssize_t i, j0 = 0, nb, k, t, c0, c1, n_bands, ldb
    if M == 0 or N == 0:
        return
    cdef bint empty = K == 0 or indptr[M] == 0       # no product: act(bias) everywhere
    if n_block <= 0 or n_block > N or empty:
        n_block = N
    cdef floating[:, ::1] block = np.empty((K if n_block < N else 1, n_block),
                                           dtype=np.asarray(out).dtype)
    cdef const floating* x = NULL if empty else &X[0, 0]
    cdef const floating* b
    ldb = N if n_block == N else n_block
    cdef const floating* v = NULL if empty else &vals[0]
    cdef const index_t* c = NULL if empty else &cols[0]
    cdef const floating* bp = NULL if bias is None else &bias[0]
    cdef floating* dp = NULL if d is None else &d[0, 0]
    cdef floating* op = &out[0, 0]
    with nogil:
        while j0 < N:
            nb = min(n_block, N - j0)
            if n_block < N:
                for k in range(K):
                    memcpy(&block[0, 0] + k * ldb, x + k * N + j0, nb * sizeof(floating))
                b = &block[0, 0]
            else:
                b = x + j0 if x != NULL else NULL
            for i in prange(M, num_threads=n_threads, schedule='dynamic', chunksize=8):
                if empty:
                    memset(op + i * N + j0, 0, nb * sizeof(floating))
                else:
                    spmm_row(v + indptr[i], c + indptr[i], indptr[i + 1] - indptr[i],
                             b, ldb, op + i * N + j0, nb)
                if bp != NULL or dp != NULL:
                    _bias_act(op + i * N + j0, nb, bp[i] if bp != NULL else 0,
                              dp + i * N + j0 if dp != NULL else NULL, relu)
            if ot != NULL:
                # out[:, j0:j0 + nb] -> out_t[j0:j0 + nb, :], whole rows of out_t
                n_bands = (nb + BAND - 1) // BAND
                for t in prange(n_bands, num_threads=n_threads, schedule='static'):
                    c0 = t * BAND
                    c1 = min(c0 + BAND, nb)
                    if floating is float:
                        wsk_transpose_f32(op + j0, M, N, c0, c1, ot + j0 * M, M)
                    else:
                        wsk_transpose_f64(op + j0, M, N, c0, c1, ot + j0 * M, M)
            j0 += nb


cdef inline void _bias_act(floating* y, Py_ssize_t n, floating b, floating* d,
                           int relu) noexcept nogil:
    # y += b; then, when d is given, the activation in place and its derivative into d:
    # ReLU (NaN stays NaN, as np.maximum keeps it; derivative 0 there, as x > 0 says), or
    # the exact GELU (x * Phi(x)) as wsekern._activations.gelu computes it (wsk_vmath.h for
    # float32, libm for float64)
    cdef Py_ssize_t k
    cdef double t, phi
    if b != 0:
        for k in range(n):
            y[k] += b
    if d == NULL:
        return
    if relu:
        _relu(y, d, n)
    elif floating is float:
        wsk_gelu_f32(y, y, d, n)
    else:
        for k in range(n):
            t = y[k]
            phi = 0.5 * (1.0 + erf(t * INV_SQRT2))
            d[k] = phi + t * INV_SQRT_2PI * exp(-0.5 * t * t)
            y[k] = t * phi


cdef inline void _relu(floating* y, floating* d,
                       Py_ssize_t n) noexcept nogil:
    # branch-free (the signs are random: a branch mispredicted on every other value made
    # this loop 20x the product at 128 x 512, B = 2048); y and d never overlap
    cdef Py_ssize_t k
    cdef floating t, pos
    for k in range(n):
        t = y[k]
        pos = t > 0
        d[k] = pos
        y[k] = t if not t <= 0 else 0      # NaN stays NaN, as np.maximum keeps it


def sampled_dots(const floating[:, ::1] A, const floating[:, ::1] B,
                 const index_t[::1] cols, const index_t[::1] indptr,
                 floating[::1] out, int n_threads=1, Py_ssize_t d_block=0):
    """out[p] = A[i, :] . B[cols[p], :] for every stored position p of row i (len(indptr)
    - 1 = A's rows; cols index B's rows, checked here like indptr).

    float32: eight dots at a time share A's row (wsk_sampled.h), and with 0 < ``d_block``
    < D the columns go in blocks of ``d_block``, every row of A passing over one block of
    B's rows (kept in L2: a B of 512 x 2048 float32 is 4 MiB) before the next; the wrapper
    passes 0 (blocks measured no faster). float64: four dots at a time, unblocked. Work
    O(nnz * D).
    """
    cdef Py_ssize_t M = indptr.shape[0] - 1, D = A.shape[1], i, nnz, d0 = 0, nd
    # the nogil loops read and write these unchecked
    nnz = _checked_nnz(indptr, cols.shape[0], out.shape[0], "out")
    if A.shape[0] != M or B.shape[1] != D:
        raise ValueError(f"expected A of shape (len(indptr) - 1, D) = ({M}, D) and B of shape "
                         f"(rows, D); received A ({A.shape[0]}, {A.shape[1]}), "
                         f"B ({B.shape[0]}, {B.shape[1]})")
    if out.shape[0] != nnz:
        raise ValueError(f"out must hold indptr[-1] = {nnz} values; received {out.shape[0]}")
    if nnz == 0:
        return
    if D == 0:
        out[:] = 0
        return
    if B.shape[0] == 0:
        raise ValueError(f"B must have rows for cols to index; received B of shape "
                         f"(0, {D}) with {nnz} stored positions")
    _check_rows("sampled_dots", out, cols, indptr, M, B.shape[0], "B")
    cdef const floating* b = &B[0, 0]
    cdef const floating* a = &A[0, 0]
    cdef floating* o = &out[0]
    if floating is double:
        with nogil:
            for i in prange(M, num_threads=n_threads, schedule='dynamic', chunksize=8):
                _dots(a + i * D, b, D, &cols[0] + indptr[i], indptr[i + 1] - indptr[i],
                      o + indptr[i], D)
        return
    if d_block <= 0 or d_block > D:
        d_block = D
    with nogil:
        while d0 < D:
            nd = min(d_block, D - d0)
            for i in prange(M, num_threads=n_threads, schedule='dynamic', chunksize=8):
                if indptr[i + 1] > indptr[i]:
                    if index_t is int32_t:
                        wsk_sampled_dots8_i32(a + i * D + d0, b + d0, D, &cols[0] + indptr[i],
                                              indptr[i + 1] - indptr[i], o + indptr[i], nd,
                                              d0 > 0)
                    else:
                        wsk_sampled_dots8_i64(a + i * D + d0, b + d0, D, &cols[0] + indptr[i],
                                              indptr[i + 1] - indptr[i], o + indptr[i], nd,
                                              d0 > 0)
            d0 += nd


cdef inline void _dots(const floating* a, const floating* B, Py_ssize_t ldb,
                       const index_t* cols, Py_ssize_t nnz, floating* out,
                       Py_ssize_t D) noexcept nogil:
    if nnz == 0:
        return
    if floating is float:
        if index_t is int32_t:
            wsk_sampled_dots_f32_i32(a, B, ldb, cols, nnz, out, D)
        else:
            wsk_sampled_dots_f32_i64(a, B, ldb, cols, nnz, out, D)
    else:
        if index_t is int32_t:
            wsk_sampled_dots_f64_i32(a, B, ldb, cols, nnz, out, D)
        else:
            wsk_sampled_dots_f64_i64(a, B, ldb, cols, nnz, out, D)


def transpose(const floating[:, ::1] src, floating[:, ::1] dst, int n_threads=1,
              const floating[:, ::1] scale=None, floating[::1] row_sums=None):
    """dst[j, i] = src[i, j] (times scale[j, i] when given; row_sums[j] = the sum of dst's
    row j when given: the caller checked the shapes). Bands of BAND destination rows, each
    copied by register tiles (wsk_transpose.h) and then, while the band is in L2, scaled
    and summed (float32 on the AVX2 path: scaled and summed as each run leaves the tiles'
    L1 buffer, in one pass; the same bits). A plain strided copy misses the cache on every read once the rows
    outnumber L1's lines (2048 x 512 float32: 0.36 ms here, NumPy's copy of a.T 4.5 ms)."""
    cdef Py_ssize_t R = src.shape[0], C = src.shape[1], t, c0, c1, j
    cdef Py_ssize_t band = BAND, n_bands = (C + band - 1) // band
    # the loops below write dst and row_sums and read scale unchecked (O(1) checks)
    if dst.shape[0] != C or dst.shape[1] != R:
        raise ValueError(f"dst must have shape ({C}, {R}); received ({dst.shape[0]}, "
                         f"{dst.shape[1]})")
    if scale is not None and (scale.shape[0] != C or scale.shape[1] != R):
        raise ValueError(f"scale must have shape ({C}, {R}); received ({scale.shape[0]}, "
                         f"{scale.shape[1]})")
    if row_sums is not None and row_sums.shape[0] != C:
        raise ValueError(f"row_sums must have {C} entries; received {row_sums.shape[0]}")
    if C == 0:
        return
    if R == 0:
        if row_sums is not None:
            row_sums[:] = 0
        return
    cdef const floating* sp = NULL if scale is None else &scale[0, 0]
    cdef floating* rs = NULL if row_sums is None else &row_sums[0]
    with nogil:
        for t in prange(n_bands, num_threads=n_threads, schedule='static'):
            c0 = t * band
            c1 = min(c0 + band, C)
            if floating is float:
                if sp != NULL or rs != NULL:            # one pass (the same bits as two)
                    wsk_transpose_scale_f32(&src[0, 0], R, C, c0, c1, &dst[0, 0], R, sp, rs)
                else:
                    wsk_transpose_f32(&src[0, 0], R, C, c0, c1, &dst[0, 0], R)
            else:
                wsk_transpose_f64(&src[0, 0], R, C, c0, c1, &dst[0, 0], R)
                if sp != NULL or rs != NULL:
                    for j in range(c0, c1):
                        wsk_scale_rowsum_f64(&dst[j, 0], sp + j * R if sp != NULL else NULL,
                                             R, rs + j if rs != NULL else NULL)


def scale_rows(floating[:, ::1] a, const floating[:, ::1] scale=None,
               floating[::1] row_sums=None, int n_threads=1):
    """a *= scale in place (when given) and row_sums[j] = the sum of a's row j (when given):
    transpose's scale and row sums, on an array already transposed. Work O(a.size)."""
    cdef Py_ssize_t R = a.shape[0], C = a.shape[1], j
    # the loop below reads scale and writes row_sums unchecked (O(1) checks)
    if scale is not None and (scale.shape[0] != R or scale.shape[1] != C):
        raise ValueError(f"scale must have a's shape ({R}, {C}); received ({scale.shape[0]}, "
                         f"{scale.shape[1]})")
    if row_sums is not None and row_sums.shape[0] != R:
        raise ValueError(f"row_sums must have {R} entries; received {row_sums.shape[0]}")
    if R == 0 or (scale is None and row_sums is None):
        return
    if C == 0:
        if row_sums is not None:
            row_sums[:] = 0
        return
    cdef const floating* sp = NULL if scale is None else &scale[0, 0]
    cdef floating* rs = NULL if row_sums is None else &row_sums[0]
    with nogil:
        for j in prange(R, num_threads=n_threads, schedule='static'):
            if floating is float:
                wsk_scale_rowsum_f32(&a[j, 0], sp + j * C if sp != NULL else NULL, C,
                                     rs + j if rs != NULL else NULL)
            else:
                wsk_scale_rowsum_f64(&a[j, 0], sp + j * C if sp != NULL else NULL, C,
                                     rs + j if rs != NULL else NULL)


cdef int _check_rows(str caller, const floating[::1] vals, const index_t[::1] cols,
                     const index_t[::1] indptr, Py_ssize_t M, Py_ssize_t K,
                     str dense="X") except -1:
    """Rows i < M of a CSR matrix with K columns, as the products read them unchecked:
    indptr of M + 1 entries from 0, nondecreasing, within cols and vals, and every column
    below K. O(M + nnz), small next to the O(nnz * N) product."""
    cdef Py_ssize_t i, p, nnz
    if indptr.shape[0] != M + 1:
        raise ValueError(f"{caller}: indptr must have {M + 1} entries (rows + 1); received "
                         f"{indptr.shape[0]}")
    nnz = indptr[M]
    if indptr[0] != 0 or nnz > cols.shape[0] or nnz > vals.shape[0]:
        raise ValueError(f"{caller}: indptr must start at 0 and end at most at len(cols) = "
                         f"{cols.shape[0]} and len(vals) = {vals.shape[0]}; received "
                         f"indptr[0] = {indptr[0]}, indptr[-1] = {nnz}")
    for i in range(M):
        if indptr[i] > indptr[i + 1]:
            raise ValueError(f"{caller}: indptr must be nondecreasing; received indptr[{i}]"
                             f" = {indptr[i]} > indptr[{i + 1}] = {indptr[i + 1]}")
    p = _first_out_of_range(cols, nnz, K)
    if p >= 0:
        raise ValueError(f"{caller}: columns must lie in 0..{K - 1} ({dense} has {K} rows); "
                         f"received {cols[p]} at position {p}")
    return 0


cdef Py_ssize_t _first_out_of_range(const index_t[::1] cols, Py_ssize_t nnz,
                                    Py_ssize_t K) noexcept:
    # the first p < nnz with cols[p] outside 0..K - 1, or -1 (wsk_csr_check.h: vector
    # compares, 5x the scalar loop with its early exit)
    if nnz == 0:
        return -1
    if index_t is int32_t:
        return wsk_first_out_of_range_i32(&cols[0], nnz, K)
    else:
        return wsk_first_out_of_range_i64(&cols[0], nnz, K)


cimport numpy as cnp
cnp.import_array()


def data_offset(cnp.ndarray a not None, Py_ssize_t align):
    """The address of ``a``'s first byte modulo ``align`` (> 0): ``a.ctypes.data % align``
    without ctypes' ~1 us a call (wsekern/sparse_dense.py aligns small outputs by it)."""
    if align <= 0:
        raise ValueError(f"align must be > 0; received {align}")
    return <size_t>cnp.PyArray_DATA(a) % <size_t>align
