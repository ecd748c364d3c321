# The max-plus recurrence of one reduction chain over its rounds (src/_pipeline.pyx's
# grid_pipeline), shared by the kernels that feed it: grid_pipeline walks given arrays,
# _screen.ws_pipeline makes each chain's work as it goes (header-only, inlined).
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
    when shifted), L wavelets of sums per round. Scratch: E, free1, free2, free of P (Gr
    unused: each round's G is its row of hist), hist of N x P."""
    cdef double delta = hop + 2 * ramp + lat          # one reduction stage, router to router
    cdef double h, tl, start, D
    cdef double* spare
    cdef long ahead, back
    cdef Py_ssize_t nb, c, n
    for c in range(P):
        E[c] = 0.0
        free1[c] = 0.0
        free2[c] = 0.0
    for n in range(N):
        # the round's G, written once where the later rounds read it (``Gr`` unused)
        Gr = hist + n * P
        for c in range(P):
            if shifted:
                start = dmax(dmax(E[c], free2[c]), at(first, c, a_sc, n, a_sn) + f)
                E[c] = dmax(start + at(work, c, w_sc, n, w_sn),
                            (at(last, c, b_sc, n, b_sn) + f) + task)
            else:
                start = dmax(dmax(E[c], free2[c]), at(first, c, a_sc, n, a_sn))
                E[c] = dmax(start + at(work, c, w_sc, n, w_sn), at(last, c, b_sc, n, b_sn) + task)
            Gr[c] = dmax(E[c], free1[c])
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
        # the next round's free2 is this free1, its free1 this free: the arrays change
        # names (free is written whole before it is read in every round)
        spare = free2
        free2 = free1
        free1 = free
        free = spare
        done = dmax(done, D)
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
