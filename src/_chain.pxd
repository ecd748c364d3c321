# The max-plus recurrence of one reduction chain over its rounds (src/_pipeline.pyx's
# grid_pipeline), shared by the kernels that feed it: grid_pipeline walks given arrays,
# _screen.ws_pipeline makes each chain's work as it goes (header-only, inlined).
from libc.math cimport fabs, floor
from libc.stdlib cimport free, malloc


cdef extern from "wsk_chain.h" nogil:
    # the recurrence below, in C: one body built for the baseline and for AVX-512
    double wsk_chain_rounds(const char* work, Py_ssize_t w_sc, Py_ssize_t w_sn,
                            const char* first, Py_ssize_t a_sc, Py_ssize_t a_sn,
                            const char* last, Py_ssize_t b_sc, Py_ssize_t b_sn, int shifted,
                            double f, long Lg, Py_ssize_t P, Py_ssize_t N, double hop,
                            double ramp, double lat, double launch, double task,
                            double cushion, double done, double* E, double* free1,
                            double* free2, double* free_, double* hist, double dt)
    double wsk_chain_rounds_push(const char* work, Py_ssize_t w_sc, Py_ssize_t w_sn,
                                 const char* first, Py_ssize_t a_sc, Py_ssize_t a_sn,
                                 const char* last, Py_ssize_t b_sc, Py_ssize_t b_sn,
                                 int shifted, double f, long Lg, Py_ssize_t P, Py_ssize_t N,
                                 double hop, double ramp, double lat, double launch,
                                 double task, double cushion, double done, double* E,
                                 double* free1, double* free2, double* free_, double* hist,
                                 double dt, long push)
    double wsk_chain_cols(const char* work, Py_ssize_t w_sn, const char* first,
                          Py_ssize_t a_sn, const char* last, Py_ssize_t b_sn, int shifted,
                          double f, long Lg, Py_ssize_t P, Py_ssize_t N, double hop,
                          double ramp, double lat, double launch, double task,
                          double cushion, double done, double* E, double* free1,
                          double* free2, double* free_, double* hist, double dt, int exact)
    double wsk_chain_cols_avx512(const char* work, Py_ssize_t w_sn, const char* first,
                                 Py_ssize_t a_sn, const char* last, Py_ssize_t b_sn,
                                 int shifted, double f, long Lg, Py_ssize_t P, Py_ssize_t N,
                                 double hop, double ramp, double lat, double launch,
                                 double task, double cushion, double done, double* E,
                                 double* free1, double* free2, double* free_, double* hist,
                                 double dt, int exact)

cdef inline int check_chain_args(str caller, const long[:] L, double cushion) except -1:
    # the recurrence reads hist[n - (cushion + 1) / L] unchecked: cushion below 0 (or NaN)
    # reads past round n, a negative L anywhere
    if not cushion >= 0:
        raise ValueError(f"{caller}: cushion must be a number >= 0 (wavelets); received "
                         f"{cushion}")
    cdef Py_ssize_t g
    for g in range(L.shape[0]):
        if L[g] < 0:
            raise ValueError(f"{caller}: L[{g}] is {L[g]}; wavelets per round must be >= 0")
    return 0


cdef inline double dmax(double a, double b) noexcept nogil:
    return a if a > b else b


cdef inline double chain_rounds(const char* work, Py_ssize_t w_sc, Py_ssize_t w_sn,
                                const char* first, Py_ssize_t a_sc, Py_ssize_t a_sn,
                                const char* last, Py_ssize_t b_sc, Py_ssize_t b_sn, bint shifted, double f, long Lg,
                                Py_ssize_t P, Py_ssize_t N, double hop, double ramp,
                                double lat, double launch, double task, double cushion,
                                double done, double* E, double* Gr, double* free1, double* free2,
                                double* free, double* hist, double dt=1.0,
                                long push=-1) noexcept nogil:
    """``done`` or the last round's completion on one chain of P positions over N
    rounds, the later (max taken round by round, as over many chains): work
    (P x N, byte strides w_sc, w_sn), first and last (P x N, strides a_ and b_; plus f
    when shifted), L wavelets of sums per round. Scratch: E, free1, free2, free of P (Gr
    unused: each round's G is its row of hist), hist of N x P. ``dt``: cycles a link
    holds a wavelet (1 / its rate): the sums go max(dt, 1) apart (a reducer takes one a
    cycle), and a core's ramp takes its first sums dt after the round's end of stream.
    ``push`` >= 0: the chain's first PE is free once its last wavelet is in its router's
    send queue of ``push`` wavelets, not once the link has taken it (wsk_chain_rounds_push)."""
    if push >= 0:
        return wsk_chain_rounds_push(work, w_sc, w_sn, first, a_sc, a_sn, last, b_sc, b_sn,
                                     shifted, f, Lg, P, N, hop, ramp, lat, launch, task,
                                     cushion, done, E, free1, free2, free, hist, dt, push)
    return wsk_chain_rounds(work, w_sc, w_sn, first, a_sc, a_sn, last, b_sc, b_sn, shifted, f,
                            Lg, P, N, hop, ramp, lat, launch, task, cushion, done, E, free1,
                            free2, free, hist, dt)


cdef inline bint whole_number(double v) noexcept nogil:
    # a whole number well inside float64's exact integers (NaN and the infinities are not)
    return v == floor(v) and fabs(v) <= 4503599627370496.0        # 2**52


cdef inline bint chain_exact(Py_ssize_t N, Py_ssize_t P, double inputs, double f, long Lg,
                             double hop, double ramp, double lat, double launch,
                             double task, double dt=1.0) noexcept nogil:
    """Whether every value the chain's recurrence makes over N rounds of P positions is a
    whole number below 2**52 in magnitude (so every sum it takes is exact: wsk_chain.h's
    ``exact``), given that its work, first and last are whole numbers of magnitude at most
    ``inputs`` (the caller's bound; negative: not known to be whole). Each value is the
    largest of sums along paths through the recurrence: at most 8 nodes per round and
    position, 3 terms each, every term a constant here or an input."""
    if not inputs >= 0 or Lg < 0 or P >= 2147483647 or not (whole_number(f) and whole_number(hop) and whole_number(ramp)
                                         and whole_number(lat) and whole_number(launch) and whole_number(task)
                                         and whole_number(dt)):
        return False
    cdef double m = dmax(dmax(dmax(inputs, fabs(f)), dmax(fabs(hop), fabs(ramp))),
                         dmax(dmax(fabs(lat), fabs(launch)),
                              dmax(fabs(task), <double> Lg * dmax(fabs(dt), 1.0))))
    m = dmax(m, 1.0)
    return 32.0 * (<double> N + 2) * (<double> P + 2) * m <= 1125899906842624.0   # 2**50


cdef inline double chain_columns(str caller, const long[:] L, const double[:, ::1] work,
                                 const double[:, ::1] first, const double[:, ::1] last,
                                 bint shifted, double f, double hop, double ramp, double lat,
                                 double launch, double task, double cushion,
                                 bint avx512=False, double inputs=-1.0,
                                 double dt=1.0, long push=-1) except? -1.0:
    """:func:`chain_rounds` on one chain whose positions are the columns of samples-major
    (N x C) work, first and last (the step kernels' ``pipeline=`` option): the last round's
    completion, 0.0 when there is none. ``L`` must hold one entry. With ``avx512`` (the
    caller has checked that the CPU runs it: _step_cost's wsk_step_avx512_runs, _screen's
    wsk_stream_avx512_runs) the positions run 8 lanes wide: the same floats. ``dt``
    and ``push`` as in :func:`chain_rounds`: where the send queue can free the first
    position earlier (push >= 0 on a link slower than a wavelet a cycle) the chain runs
    through chain_rounds (serial, not exact), else the floats and path are push's -1."""
    if L.shape[0] != 1:
        raise ValueError(f"pipeline: L must have one entry (one chain); received "
                         f"{L.shape[0]}")
    check_chain_args(caller, L, cushion)
    cdef Py_ssize_t N = work.shape[0], C = work.shape[1]
    cdef double done = 0.0
    if C == 0 or N == 0:
        return done
    # not zeroed: the recurrence writes each scratch value before it reads it
    cdef int exact = chain_exact(N, C, inputs, f if shifted else 0.0, L[0], hop, ramp, lat,
                                 launch, task, dt)
    cdef double* E = <double*> malloc((5 * C + N * C) * sizeof(double))
    if E == NULL:
        raise MemoryError(f"{caller}: the chain's scratch of {5 * C + N * C} floats")
    with nogil:
        # the positions' stride is a constant (C-contiguous rows): the compiler sees
        # the rounds' loops over positions as runs of adjacent floats
        if push >= 0 and dt > 1.0:
            done = chain_rounds(<const char*> &work[0, 0], sizeof(double), work.strides[0],
                                <const char*> &first[0, 0], sizeof(double), first.strides[0],
                                <const char*> &last[0, 0], sizeof(double), last.strides[0],
                                shifted, f, L[0], C, N, hop, ramp, lat, launch, task,
                                cushion, done, E, E + C, E + 2 * C, E + 3 * C, E + 4 * C,
                                E + 5 * C, dt, push)
        elif avx512:
            done = wsk_chain_cols_avx512(
                <const char*> &work[0, 0], work.strides[0], <const char*> &first[0, 0],
                first.strides[0], <const char*> &last[0, 0], last.strides[0], shifted, f,
                L[0], C, N, hop, ramp, lat, launch, task, cushion, done, E, E + 2 * C,
                E + 3 * C, E + 4 * C, E + 5 * C, dt, exact)
        else:
            done = wsk_chain_cols(
                <const char*> &work[0, 0], work.strides[0], <const char*> &first[0, 0],
                first.strides[0], <const char*> &last[0, 0], last.strides[0], shifted, f,
                L[0], C, N, hop, ramp, lat, launch, task, cushion, done, E, E + 2 * C,
                E + 3 * C, E + 4 * C, E + 5 * C, dt, exact)
    free(E)
    return done
