# Typed loops of the sparse-weight Dense training step.
#
# A layer multiplies a dense batch by a sparse kernel W whose pattern is fixed and whose
# values change every step.  Every product of its step is one of two shapes here, on
# operands laid out so the inner loop runs over a contiguous row (the batch):
#   rows_times_dense:  out[i, :] = sum_p vals[p] * X[cols[p], :]   (Y^T = W^T X^T, dX^T)
#   sampled_dots:      out[p] = A[i, :] . B[cols[p], :]            (dW at W's pattern)
# The wrappers (wsekern/sparse_dense.py) validate; these loops trust them and never raise.
from cython.parallel cimport prange, parallel, threadid
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
    void wsk_sampled_init(int avx2) noexcept


def simd_init(int path=0):
    """Select this module's SIMD path (the dispatch table is per extension module)."""
    name = wsk_simd_init(path).decode()
    wsk_sampled_init(name in ("avx2", "avx512"))      # its widest clone is AVX2
    return name


def rows_times_dense(const floating[::1] vals, const index_t[::1] cols,
                     const index_t[::1] indptr, const floating[:, ::1] X,
                     floating[:, ::1] out, int n_threads=1, Py_ssize_t n_block=0):
    """out[i, :] = sum over row i's stored positions p of vals[p] * X[cols[p], :].

    With 0 < ``n_block`` < N the columns go in blocks of ``n_block``, each first copied
    into a contiguous (K, n_block) buffer: the rows of X one block spans stay in L2 while
    every row of W passes over them, and do not share cache sets through a power-of-two
    row pitch (at K = 128, N = 2048 fp32, in place: 0.14 ns a multiply-add, twice the
    time per multiply-add at N = 128). Work O(nnz * N) plus O(K * N) for the copies; threads own disjoint rows.
    """
    cdef Py_ssize_t M = out.shape[0], N = out.shape[1], K = X.shape[0], i, k, j0 = 0, nb
    if M == 0 or N == 0:
        return
    if K == 0 or vals.shape[0] == 0:
        out[:, :] = 0
        return
    if n_block <= 0 or n_block > N:
        n_block = N
    cdef floating[:, ::1] block = np.empty((K if n_block < N else 1, n_block),
                                           dtype=np.asarray(vals).dtype)
    cdef const floating* x = &X[0, 0]
    cdef const floating* b = x if n_block == N else &block[0, 0]
    cdef Py_ssize_t ldb = N if n_block == N else n_block
    cdef const floating* v = &vals[0]
    cdef const index_t* c = &cols[0]
    with nogil:
        while j0 < N:
            nb = min(n_block, N - j0)
            if n_block < N:
                for k in range(K):
                    memcpy(&block[0, 0] + k * ldb, x + k * N + j0, nb * sizeof(floating))
            for i in prange(M, num_threads=n_threads, schedule='dynamic', chunksize=8):
                spmm_row(v + indptr[i], c + indptr[i], indptr[i + 1] - indptr[i],
                     b if n_block < N else x + j0, ldb, &out[i, j0], nb)
            j0 += nb


def sampled_dots(const floating[:, ::1] A, const floating[:, ::1] B,
                 const index_t[::1] cols, const index_t[::1] indptr,
                 floating[::1] out, int n_threads=1):
    """out[p] = A[i, :] . B[cols[p], :] for every stored position p of row i.

    Work O(nnz * D): four dots at a time share A's row (wsk_sampled.h).
    """
    cdef Py_ssize_t M = indptr.shape[0] - 1, D = A.shape[1], i
    if out.shape[0] == 0:
        return
    if D == 0:
        out[:] = 0
        return
    cdef const floating* b = &B[0, 0]
    with nogil:
        for i in prange(M, num_threads=n_threads, schedule='dynamic', chunksize=8):
            _dots(&A[i, 0], b, D, &cols[0] + indptr[i], indptr[i + 1] - indptr[i],
                  &out[0] + indptr[i], D)


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


def transpose(const floating[:, ::1] src, floating[:, ::1] dst, int n_threads=1):
    """dst[j, i] = src[i, j], eight source rows at a time: their cache lines stay in L1
    (one per way of a set even when the row pitch is a power of two) while each line is
    read 16 (8) times, and each destination row gets 8 contiguous values per visit. A
    plain strided copy misses the cache on every read once the rows outnumber L1's lines."""
    cdef Py_ssize_t R = src.shape[0], C = src.shape[1], t, i0, i, j, i1
    cdef Py_ssize_t n_tiles = (R + 7) // 8
    if R == 0 or C == 0:
        return
    with nogil:
        for t in prange(n_tiles, num_threads=n_threads, schedule='static'):
            i0 = t * 8
            i1 = min(i0 + 8, R)
            if i1 - i0 == 8:
                for j in range(C):
                    for i in range(8):
                        dst[j, i0 + i] = src[i0 + i, j]
            else:
                for j in range(C):
                    for i in range(i0, i1):
                        dst[j, i] = src[i, j]
