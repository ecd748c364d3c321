# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The analytic model's max-plus recurrence over rounds (samples) and chain positions.

A mapping streams rounds into the PEs of a reduction chain; position c finishes the
compute of round n at E[c, n], then the round's partial sums (L wavelets) are reduced
along the chain into its last position. Accumulators are double-buffered, so the
compute of round n waits for the reduction of round n - 2 to leave that PE.
O(positions * rounds) time, O(positions) memory.
"""
import numpy as np

cdef inline double dmax(double a, double b) noexcept nogil:
    return a if a > b else b


def chain_pipeline(double[:, :] work, double[:, :] first, double[:, :] last, int L,
                   double hop, double ramp, double lat, double launch, double task,
                   double cushion):
    """Completion cycle of the last round at the chain's root.

    work[c, n]   compute of round n at position c, its end-of-stream task included
    first[c, n]  arrival of round n's first wavelet at position c
    last[c, n]   arrival of its end-of-stream marker
    L            wavelets of partial sums per round
    hop, ramp    link latencies; lat: a reducer's turnaround (stage - 2 ramp)
    launch       task + DSD setup before the chain's first PE sends its sums
    task         a task activation (end of stream, the root's end of message)
    cushion      wavelets that fit between two reducers (queues and links)
    """
    cdef Py_ssize_t P = work.shape[0], N = work.shape[1], c, n
    cdef double[:] E = np.zeros(P)
    cdef double[:] G = np.zeros(P)
    cdef double[:] free1 = np.zeros(P)
    cdef double[:] free2 = np.zeros(P)
    cdef double[:] free = np.zeros(P)
    cdef double delta = hop + 2 * ramp + lat          # one reduction stage, router to router
    cdef double h, tl, start, D, done = 0.0
    with nogil:
        for n in range(N):
            for c in range(P):
                start = dmax(dmax(E[c], free2[c]), first[c, n])
                E[c] = dmax(start + work[c, n], last[c, n] + task)
                G[c] = dmax(E[c], free1[c])
            if P == 1 or L == 0:
                for c in range(P):
                    free[c] = G[c]
                D = G[P - 1] + task
                free[P - 1] = D
            else:
                h = G[0] + launch + ramp                 # head leaving position 0
                tl = h + L - 1                           # tail leaving position 0
                free[0] = tl - ramp - lat + 1
                for c in range(1, P - 1):
                    h = dmax(h + delta, G[c] + lat + ramp)
                    tl = dmax(tl + delta, h + L - 1)
                    free[c] = tl - ramp - lat + 1
                D = dmax(tl + hop + ramp, G[P - 1] + L - 1) + 1 + task
                free[P - 1] = D
                # a sender cannot finish before its receiver has taken all but a cushion
                for c in range(P - 1):
                    free[c] = dmax(free[c], G[c + 1] + L - cushion)
            for c in range(P):
                free2[c] = free1[c]
                free1[c] = free[c]
            done = dmax(done, D)
    return done
