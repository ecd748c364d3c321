# wsk_simd.h's row kernel for every (value, index) type pair, shared by the kernels that
# multiply CSR rows into dense rows (header-only).
from libc.stdint cimport int32_t
from libc.string cimport memset
from cython cimport floating

from _fused cimport index_t
from _simd cimport (wsk_spmm_row_f32_i32, wsk_spmm_row_f32_i64,
                    wsk_spmm_row_f64_i32, wsk_spmm_row_f64_i64)


cdef inline void spmm_row(const floating* vals, const index_t* cols, Py_ssize_t nnz,
                          const floating* X, Py_ssize_t ldx, floating* y,
                          Py_ssize_t n) noexcept nogil:
    # y[0:n] = sum_p vals[p] * X[cols[p] * ldx + 0:n]
    if nnz == 0:
        memset(y, 0, n * sizeof(floating))
    elif floating is float:
        if index_t is int32_t:
            wsk_spmm_row_f32_i32(vals, cols, nnz, X, ldx, y, n)
        else:
            wsk_spmm_row_f32_i64(vals, cols, nnz, X, ldx, y, n)
    else:
        if index_t is int32_t:
            wsk_spmm_row_f64_i32(vals, cols, nnz, X, ldx, y, n)
        else:
            wsk_spmm_row_f64_i64(vals, cols, nnz, X, ldx, y, n)
