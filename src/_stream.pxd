# X's pass in the step kernels (src/wsk_stream.h), declared once for _step_cost and
# _screen: X's pattern as K x N contiguous bytes, one PE column's counts from it, and the
# columns' work, first and last per sample (baseline, and AVX-512 where it runs).
from libc.stdint cimport INT64_MAX, int64_t, uint8_t


cdef extern from "wsk_stream.h" nogil:
    const uint8_t* wsk_x_kmajor(const uint8_t* x, Py_ssize_t K, Py_ssize_t N, Py_ssize_t sk,
                                Py_ssize_t sn, uint8_t* scratch)
    void wsk_x_column(const uint8_t* xt, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t N, int nz,
                      int64_t* out, int64_t* A)
    void wsk_x_column_avx512(const uint8_t* xt, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t N,
                             int nz, int64_t* out, int64_t* A)
    int64_t wsk_ws_samples(Py_ssize_t N, Py_ssize_t C, const int64_t* a_cn,
                           const double* share, const double* tm, double eos, int64_t wpv,
                           double dt, int64_t rampL, int64_t* V, double* work, double* first,
                           double* last)
    int64_t wsk_ws_samples_avx512(Py_ssize_t N, Py_ssize_t C, const int64_t* a_cn,
                                  const double* share, const double* tm, double eos,
                                  int64_t wpv, double dt, int64_t rampL, int64_t* V,
                                  double* work, double* first, double* last)
    void wsk_dense_samples(Py_ssize_t N, Py_ssize_t C, const int64_t* a_cn, double tmax,
                           double eos, int64_t wpv, double dt, double fill, int64_t rampL,
                           int64_t* V, int64_t* Asum, double* work, double* first,
                           double* last)
    void wsk_dense_samples_avx512(Py_ssize_t N, Py_ssize_t C, const int64_t* a_cn,
                                  double tmax, double eos, int64_t wpv, double dt,
                                  double fill, int64_t rampL, int64_t* V, int64_t* Asum,
                                  double* work, double* first, double* last)
    int wsk_stream_avx512_runs()


cdef inline int check_wpv(str caller, long wpv, Py_ssize_t K, Py_ssize_t N) except -1:
    # the samples' pass sums v = a * wpv + 1 over N samples in int64, a <= 255 * K (a
    # column's bytes): refuse a wpv whose sums could wrap (255 * K * N itself too large,
    # as a broadcast view may give: only wpv 0)
    cdef int64_t d = 1, most
    if K > 0 and N > 0:
        d = 255 * K * N if K <= INT64_MAX // 255 // N else INT64_MAX
    most = (INT64_MAX - N) // d
    if wpv < 0 or wpv > most:
        raise ValueError(f"{caller}: wpv must be within 0..{most} for a {K} x {N} X (the "
                         f"wavelets' int64 sums); received {wpv}")
    return 0


cdef extern from "wsk_step_chain.h" nogil:
    # the per-sample pass and the chain in one loop (a kept step's run): row 3 * C
    # scratch, chain 4 * C + rows * C (rows: wsk_chain_rows); N, C >= 1
    Py_ssize_t wsk_chain_rows(Py_ssize_t N, long Lg, Py_ssize_t P, double cushion)
    void wsk_column_sums(Py_ssize_t N, Py_ssize_t C, const int64_t* a_cn, int64_t wpv,
                         int64_t* a_max, int64_t* v_max)
    void wsk_column_sums_avx512(Py_ssize_t N, Py_ssize_t C, const int64_t* a_cn,
                                int64_t wpv, int64_t* a_max, int64_t* v_max)
    int64_t wsk_ws_chain(Py_ssize_t N, Py_ssize_t C, const int64_t* a_cn,
                         const double* share, const double* tm, double eos, int64_t wpv,
                         double dt, double fill, int64_t rampL, int64_t* V, double* row,
                         long Lg,
                         double hop, double ramp, double lat, double launch, double task,
                         double cushion, long push, double* chain, Py_ssize_t rows,
                         int exact, double* done)
    int64_t wsk_ws_chain_avx512(Py_ssize_t N, Py_ssize_t C, const int64_t* a_cn,
                                const double* share, const double* tm, double eos,
                                int64_t wpv, double dt, double fill, int64_t rampL,
                                int64_t* V, double* row, long Lg, double hop, double ramp, double lat, double launch,
                                double task, double cushion, long push, double* chain,
                                Py_ssize_t rows, int exact, double* done)
    void wsk_dense_chain(Py_ssize_t N, Py_ssize_t C, const int64_t* a_cn, double tmax,
                         double eos, int64_t wpv, double dt, double fill, int64_t rampL,
                         int64_t* V, int64_t* Asum, double* row, long Lg, double hop, double ramp,
                         double lat, double launch, double task, double cushion,
                         long push, double* chain, Py_ssize_t rows, int exact, double* done)
    void wsk_dense_chain_avx512(Py_ssize_t N, Py_ssize_t C, const int64_t* a_cn,
                                double tmax, double eos, int64_t wpv, double dt, double fill,
                                int64_t rampL, int64_t* V, int64_t* Asum, double* row, long Lg, double hop,
                                double ramp, double lat, double launch, double task,
                                double cushion, long push, double* chain, Py_ssize_t rows,
                                int exact, double* done)


cdef struct StepChain:
    # a kept step's chain over the samples (src/_chain.pxd's chain_rounds' figures), run
    # in the samples' pass: wsk_step_chain.h
    long Lg
    double fill, hop, ramp, lat, launch, task, cushion
    int exact
    long push               # the first PE's send queue (chain_rounds'), -1 without
