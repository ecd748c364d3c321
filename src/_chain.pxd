# The max-plus recurrence of one reduction chain over its rounds (src/_pipeline.pyx's
# grid_pipeline), shared by the kernels that feed it: grid_pipeline walks given arrays,
# _screen.ws_pipeline makes each chain's work as it goes (header-only, inlined).
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free

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


cdef inline double at(const char* base, Py_ssize_t i, Py_ssize_t si, Py_ssize_t j,
                      Py_ssize_t sj) noexcept nogil:
    # element (i, j) of a 2-D float64 array given by its byte strides
    return (<const double*> (base + i * si + j * sj))[0]


cdef inline double chain_round(Py_ssize_t n, const char* work, Py_ssize_t w_sc,
                               const char* first, Py_ssize_t a_sc, const char* last,
                               Py_ssize_t b_sc, bint shifted, double f, long Lg, Py_ssize_t P,
                               double hop, double ramp, double lat, double launch,
                               double task, double cushion, double* E, double* Gr,
                               double* free1, double* free2, double* free,
                               double* hist) noexcept nogil:
    """Round ``n`` of :func:`chain_rounds`: work, first and last are that round's P entries
    (byte strides w_sc, a_sc, b_sc); returns the round's completion D."""
    cdef double delta = hop + 2 * ramp + lat          # one reduction stage, router to router
    cdef double h, tl, start, D
    cdef long ahead, back
    cdef Py_ssize_t nb, c
    for c in range(P):
        if shifted:
            start = dmax(dmax(E[c], free2[c]), at(first, c, a_sc, 0, 0) + f)
            E[c] = dmax(start + at(work, c, w_sc, 0, 0), (at(last, c, b_sc, 0, 0) + f) + task)
        else:
            start = dmax(dmax(E[c], free2[c]), at(first, c, a_sc, 0, 0))
            E[c] = dmax(start + at(work, c, w_sc, 0, 0), at(last, c, b_sc, 0, 0) + task)
        Gr[c] = dmax(E[c], free1[c])
        hist[n * P + c] = Gr[c]
    if P == 1 or Lg == 0:
        for c in range(P):
            free[c] = Gr[c]
        D = Gr[P - 1] + task
        free[P - 1] = D
    else:
        h = Gr[0] + launch + ramp                # head leaving position 0
        tl = h + Lg - 1                          # tail leaving position 0
        free[0] = tl - ramp - lat + 1
        for c in range(1, P - 1):
            h = dmax(h + delta, Gr[c] + lat + ramp)
            tl = dmax(tl + delta, h + Lg - 1)
            free[c] = tl - ramp - lat + 1
        D = dmax(tl + hop + ramp, Gr[P - 1] + Lg - 1) + 1 + task
        free[P - 1] = D
        # a sender's last push of round n waits until its receiver has taken
        # all but ``cushion`` of the wavelets sent so far (rounds back to back)
        ahead = n * Lg + Lg - 1 - <long> cushion
        if ahead >= 0:
            nb = ahead // Lg
            back = ahead % Lg
            for c in range(P - 1):
                free[c] = dmax(free[c], hist[nb * P + c + 1] + back + 1)
    for c in range(P):
        free2[c] = free1[c]
        free1[c] = free[c]
    return D


cdef inline double chain_rounds(const char* work, Py_ssize_t w_sc, Py_ssize_t w_sn,
                                const char* first, Py_ssize_t a_sc, Py_ssize_t a_sn,
                                const char* last, Py_ssize_t b_sc, Py_ssize_t b_sn, bint shifted, double f, long Lg,
                                Py_ssize_t P, Py_ssize_t N, double hop, double ramp,
                                double lat, double launch, double task, double cushion,
                                double done, double* E, double* Gr, double* free1, double* free2,
                                double* free, double* hist) noexcept nogil:
    """``done`` or the last round's completion on one chain of P positions over N
    rounds, the later (max taken round by round, as over many chains): work
    (P x N, byte strides w_sc, w_sn), first and last (P x N, strides a_ and b_; plus f
    when shifted), L wavelets of sums per round. Scratch: E .. free of P, hist of N x P."""
    cdef Py_ssize_t c, n
    for c in range(P):
        E[c] = 0.0
        free1[c] = 0.0
        free2[c] = 0.0
    for n in range(N):
        done = dmax(done, chain_round(n, work + n * w_sn, w_sc, first + n * a_sn, a_sc,
                                      last + n * b_sn, b_sc, shifted, f, Lg, P, hop, ramp,
                                      lat, launch, task, cushion, E, Gr, free1, free2, free,
                                      hist))
    return done


cdef inline double chain_columns(str caller, const long[:] L, const double[:, ::1] work,
                                 const double[:, ::1] first, const double[:, ::1] last,
                                 bint shifted, double f, double hop, double ramp, double lat,
                                 double launch, double task, double cushion) except? -1.0:
    """:func:`chain_rounds` on one chain whose positions are the columns of samples-major
    (N x C) work, first and last (the step kernels' ``pipeline=`` option): the last round's
    completion, 0.0 when there is none. ``L`` must hold one entry."""
    if L.shape[0] != 1:
        raise ValueError(f"pipeline: L must have one entry (one chain); received "
                         f"{L.shape[0]}")
    check_chain_args(caller, L, cushion)
    cdef Py_ssize_t N = work.shape[0], C = work.shape[1]
    cdef double done = 0.0
    if C == 0 or N == 0:
        return done
    cdef double* E = <double*> calloc(5 * C + N * C, sizeof(double))
    if E == NULL:
        raise MemoryError(f"{caller}: the chain's scratch of {5 * C + N * C} floats")
    with nogil:
        # the positions' stride is a constant (C-contiguous rows): the compiler sees
        # the rounds' loops over positions as runs of adjacent floats
        done = chain_rounds(<const char*> &work[0, 0], sizeof(double), work.strides[0],
                            <const char*> &first[0, 0], sizeof(double), first.strides[0],
                            <const char*> &last[0, 0], sizeof(double), last.strides[0],
                            shifted, f, L[0], C, N, hop, ramp, lat, launch, task, cushion,
                            done, E, E + C, E + 2 * C, E + 3 * C, E + 4 * C, E + 5 * C)
    free(E)
    return done


cdef inline double chain_counts(str caller, const long[:] L, const int64_t[:, ::1] a_cn,
                                const double* share, const double* tm, Py_ssize_t tm_step,
                                double eos, long wpv, double dt, double f, double hop,
                                double ramp, double lat, double launch, double task,
                                double cushion, int64_t* v_max) except? -1.0:
    """:func:`chain_columns` of the step kernels' work, first and last as they would make
    them from the per-sample counts ``a_cn`` (C x N activations per PE column and sample),
    each round's row made just before the round, in memory the size of one row, so the
    C x N arrays are never written: sample n's work in column c is
    ``dmax(a * share[c], a * tm[c * tm_step]) + eos`` (``a * tm[...] + eos`` where share
    is NULL), its wavelets v = a * wpv + 1, and with cum = (the column's v summed up to n)
    * dt, first = cum - v * dt and last = cum - dt, the chain adding ``f`` (shifted): the
    same operations in the same order, so the same float. ``v_max`` receives the largest
    column sum of v. ``L`` must hold one entry."""
    if L.shape[0] != 1:
        raise ValueError(f"pipeline: L must have one entry (one chain); received "
                         f"{L.shape[0]}")
    check_chain_args(caller, L, cushion)
    cdef Py_ssize_t C = a_cn.shape[0], N = a_cn.shape[1], n, c
    cdef double done = 0.0, cum, w
    cdef int64_t a, v
    v_max[0] = 0
    if C == 0:
        return done
    cdef double* E = <double*> calloc(8 * C + N * C, sizeof(double))
    cdef int64_t* v_sum = <int64_t*> calloc(C, sizeof(int64_t))
    if E == NULL or v_sum == NULL:
        free(E)
        free(v_sum)
        raise MemoryError(f"{caller}: the chain's scratch of {8 * C + N * C} floats")
    cdef double* wr = E + 5 * C
    cdef double* fr = E + 6 * C
    cdef double* lr = E + 7 * C
    with nogil:
        for n in range(N):
            for c in range(C):
                a = a_cn[c, n]
                if share != NULL:
                    w = dmax(<double> a * share[c], <double> a * tm[c * tm_step])
                else:
                    w = <double> a * tm[c * tm_step]
                wr[c] = w + eos
                v = a * wpv + 1
                v_sum[c] += v
                cum = <double> v_sum[c] * dt
                fr[c] = cum - <double> v * dt
                lr[c] = cum - dt
            done = dmax(done, chain_round(n, <const char*> wr, sizeof(double),
                                          <const char*> fr, sizeof(double),
                                          <const char*> lr, sizeof(double), True, f, L[0], C,
                                          hop, ramp, lat, launch, task, cushion, E, E + C,
                                          E + 2 * C, E + 3 * C, E + 4 * C, E + 8 * C))
        for c in range(C):
            if v_sum[c] > v_max[0]:
                v_max[0] = v_sum[c]
    free(E)
    free(v_sum)
    return done
