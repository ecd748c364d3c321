# Declarations of the SIMD loops in wsk_simd.h (header-only).
from libc.stdint cimport int32_t, int64_t, uint8_t

cdef extern from "wsk_simd.h" nogil:
    void wsk_spmm_row_f32_i32(const float*, const int32_t*, Py_ssize_t,
                              const float*, Py_ssize_t, float*, Py_ssize_t) noexcept
    void wsk_spmm_row_f32_i64(const float*, const int64_t*, Py_ssize_t,
                              const float*, Py_ssize_t, float*, Py_ssize_t) noexcept
    void wsk_spmm_row_f64_i32(const double*, const int32_t*, Py_ssize_t,
                              const double*, Py_ssize_t, double*, Py_ssize_t) noexcept
    void wsk_spmm_row_f64_i64(const double*, const int64_t*, Py_ssize_t,
                              const double*, Py_ssize_t, double*, Py_ssize_t) noexcept
    void wsk_spmm_scatter_f32_i32(const float*, const int32_t*, Py_ssize_t, const float*,
                                  float*, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_spmm_scatter_f32_i64(const float*, const int64_t*, Py_ssize_t, const float*,
                                  float*, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_spmm_scatter_f64_i32(const double*, const int32_t*, Py_ssize_t, const double*,
                                  double*, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_spmm_scatter_f64_i64(const double*, const int64_t*, Py_ssize_t, const double*,
                                  double*, Py_ssize_t, Py_ssize_t) noexcept
    Py_ssize_t wsk_compact_f32(const float*, const uint8_t*, const int32_t*, Py_ssize_t,
                               float*, int32_t*) noexcept
    Py_ssize_t wsk_compact_f64(const double*, const uint8_t*, const int32_t*, Py_ssize_t,
                               double*, int32_t*) noexcept
    void wsk_plane_axpy_f32(Py_ssize_t, Py_ssize_t, float, const float*, Py_ssize_t,
                            const uint8_t*, float*, Py_ssize_t) noexcept
    void wsk_plane_axpy_f64(Py_ssize_t, Py_ssize_t, double, const double*, Py_ssize_t,
                            const uint8_t*, double*, Py_ssize_t) noexcept
    float wsk_plane_dot_f32(Py_ssize_t, Py_ssize_t, const float*, const float*, Py_ssize_t) noexcept
    double wsk_plane_dot_f64(Py_ssize_t, Py_ssize_t, const double*, const double*, Py_ssize_t) noexcept
    Py_ssize_t wsk_compact_csr_f32_i32(const float*, const int32_t*, Py_ssize_t, const int32_t*,
                                       int32_t, float*, int32_t*) noexcept
    Py_ssize_t wsk_compact_csr_f32_i64(const float*, const int64_t*, Py_ssize_t, const int64_t*,
                                       int64_t, float*, int64_t*) noexcept
    Py_ssize_t wsk_compact_csr_f64_i32(const double*, const int32_t*, Py_ssize_t, const int32_t*,
                                       int32_t, double*, int32_t*) noexcept
    Py_ssize_t wsk_compact_csr_f64_i64(const double*, const int64_t*, Py_ssize_t, const int64_t*,
                                       int64_t, double*, int64_t*) noexcept
    Py_ssize_t wsk_scan_f32(const float*, Py_ssize_t, int*) noexcept
    Py_ssize_t wsk_scan_f64(const double*, Py_ssize_t, int*) noexcept
    float wsk_dot_f32(const float*, const float*, Py_ssize_t) noexcept
    double wsk_dot_f64(const double*, const double*, Py_ssize_t) noexcept
    const char* wsk_simd_init(int path) noexcept
    int wsk_simd_available() noexcept
    const char* wsk_compiler() noexcept
    int wsk_openmp_enabled() noexcept
    int wsk_omp_max_threads() noexcept
