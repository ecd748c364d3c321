# CSR -> dense over the columns of W that meet X's live rows (spmm's densified route).
#
# The caller (wsekern/kernels.py) checks shapes, dtypes and index bounds; the loops are
# `noexcept nogil` and never raise.
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset
from cython cimport floating

from _fused cimport index_t

import math

import numpy as np

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* p0 to p1 of a CSR row added into row (a live column: slot 2 r) or scratch (a dropped
       column k: slot 2 k + 1), the destination picked by arithmetic */
    #define WSK_ADD_ROW(NAME, F, I) \
    static inline void NAME(const F* vals, const I* cols, const ptrdiff_t* slot, \
                            ptrdiff_t p0, ptrdiff_t p1, F* row, F* scratch) { \
        F* base[2] = {row, scratch}; \
        for (ptrdiff_t p = p0; p < p1; p++) { \
            ptrdiff_t c = slot[cols[p]]; \
            base[c & 1][c >> 1] += vals[p]; \
        } \
    }
    WSK_ADD_ROW(wsk_add_row_f32_i32, float, int32_t)
    WSK_ADD_ROW(wsk_add_row_f32_i64, float, int64_t)
    WSK_ADD_ROW(wsk_add_row_f64_i32, double, int32_t)
    WSK_ADD_ROW(wsk_add_row_f64_i64, double, int64_t)
    """
    void wsk_add_row_f32_i32(const float*, const int32_t*, const Py_ssize_t*, Py_ssize_t,
                             Py_ssize_t, float*, float*) noexcept nogil
    void wsk_add_row_f32_i64(const float*, const int64_t*, const Py_ssize_t*, Py_ssize_t,
                             Py_ssize_t, float*, float*) noexcept nogil
    void wsk_add_row_f64_i32(const double*, const int32_t*, const Py_ssize_t*, Py_ssize_t,
                             Py_ssize_t, double*, double*) noexcept nogil
    void wsk_add_row_f64_i64(const double*, const int64_t*, const Py_ssize_t*, Py_ssize_t,
                             Py_ssize_t, double*, double*) noexcept nogil


def csr_to_dense_live(const floating[::1] data, const index_t[::1] indices,
                      const index_t[::1] indptr, const index_t[::1] remap,
                      floating[:, ::1] out, int n_threads=1):
    """out = the live columns of the dense form of a CSR matrix of K = ``len(remap)``
    columns, duplicates summed in stored order (``out``'s values are those of
    ``_spmm.csr_to_dense`` bit for bit): column k goes to column ``remap[k]`` of ``out``
    (M, k_live), or is dropped when ``remap[k] >= k_live`` (``_spmm.live_map``'s dead rows).

    Returns whether every dropped column of the dense form is finite. Where no row's sum can
    reach inf (every weight finite, the largest times the longest row well below the type's
    maximum: the usual case) that is known before the pass; otherwise each dropped column is
    summed as the dense form would hold it (two finite duplicates may overflow to inf) in a
    scratch row per thread, read and cleared after each row."""
    cdef Py_ssize_t M = out.shape[0], k_live = out.shape[1], K = remap.shape[0]
    cdef Py_ssize_t t, k, n_chunks, chunk
    if M == 0:
        return True
    cdef bint exact = not _sums_bounded(data, indptr, M)
    n_threads = max(1, min(n_threads, M))
    chunk = (M + n_threads - 1) // n_threads
    n_chunks = (M + chunk - 1) // chunk
    cdef floating[:, ::1] scratch = np.zeros((n_chunks, max(K, 1)), dtype=np.asarray(out).dtype)
    cdef Py_ssize_t[::1] bad = np.zeros(n_chunks, dtype=np.intp)
    # Where column k goes, as one integer: 2 * remap[k] (a column of out) or 2 * k + 1 (the
    # scratch row), so the loop picks its destination by arithmetic, not by a branch
    cdef Py_ssize_t[::1] slot = np.empty(max(K, 1), dtype=np.intp)
    with nogil:
        for k in range(K):
            slot[k] = 2 * remap[k] if remap[k] < k_live else 2 * k + 1
        for t in prange(n_chunks, num_threads=n_threads, schedule='static'):
            bad[t] = _densify_rows(&data[0] if data.shape[0] else NULL,
                                   &indices[0] if indices.shape[0] else NULL, &indptr[0],
                                   &slot[0], t * chunk, min(M, (t + 1) * chunk), k_live,
                                   &out[0, 0], &scratch[t, 0], exact)
    return not np.asarray(bad).any()


cdef bint _sums_bounded(const floating[::1] data, const index_t[::1] indptr, Py_ssize_t M):
    # Whether no sum of a row's weights can be inf or NaN: all finite, and a row of L
    # weights of magnitude <= m sums (rounded, partial sums included) to at most
    # L m (1 + u)^L < 1.07 L m for L <= 2^20; bounded by half the type's maximum. NumPy's
    # max and min (its SIMD loops: 0.04 ns a weight fp32 on Zen 5, a C loop here 0.2-0.35).
    cdef Py_ssize_t i, longest = 0
    with nogil:
        for i in range(M):
            longest = max(longest, <Py_ssize_t>(indptr[i + 1] - indptr[i]))
    if longest > (1 << 20):
        return False
    if data.shape[0] == 0:
        return True
    values = np.asarray(data)
    m = max(float(values.max()), -float(values.min()))
    return math.isfinite(m) and m * longest <= float(np.finfo(values.dtype).max) / 2


cdef Py_ssize_t _densify_rows(const floating* vals, const index_t* cols, const index_t* ip,
                              const Py_ssize_t* slot, Py_ssize_t i0, Py_ssize_t i1,
                              Py_ssize_t k_live, floating* out, floating* scratch,
                              bint exact) noexcept nogil:
    # Rows i0 to i1: each weight added where it goes, a live column of out or its column of
    # the scratch row, chosen without a branch (X's dead rows fall at random: a branch on
    # them mispredicted about one weight in two, 4.8 ns a weight on Zen 5 against 0.3-0.6
    # for csr_to_dense). ``exact``: the row's scratch entries then read (a live column's
    # stays 0) and cleared; the number of non-finite dropped entries (else 0, and the
    # scratch row is never read).
    cdef Py_ssize_t i, p, c
    cdef Py_ssize_t n_bad = 0
    cdef floating* row
    cdef floating v
    for i in range(i0, i1):
        row = out + i * k_live
        if k_live:
            memset(row, 0, k_live * sizeof(floating))
        if floating is float:
            if index_t is int32_t:
                wsk_add_row_f32_i32(vals, cols, slot, ip[i], ip[i + 1], row, scratch)
            else:
                wsk_add_row_f32_i64(vals, cols, slot, ip[i], ip[i + 1], row, scratch)
        else:
            if index_t is int32_t:
                wsk_add_row_f64_i32(vals, cols, slot, ip[i], ip[i + 1], row, scratch)
            else:
                wsk_add_row_f64_i64(vals, cols, slot, ip[i], ip[i + 1], row, scratch)
        if exact:
            for p in range(ip[i], ip[i + 1]):
                c = cols[p]
                v = scratch[c]
                n_bad += not (v - v == 0)
                scratch[c] = 0
    return n_bad

