# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The analytic model's max-plus recurrence over rounds (samples) and chain positions.

A mapping streams rounds into the PEs of reduction chains; position c of chain g
finishes the compute of round n at E[g, c, n], then the round's partial sums (L
wavelets) are reduced along the chain into its last position. Accumulators are
double-buffered, so the compute of round n waits for the reduction of round n - 2 to
leave that PE. The chains share their streams but not their pace: the queues of a
multicast let one chain's PEs run samples ahead of another's (the event simulation
shows them drift). O(chains * positions * rounds) time, O(positions) memory.
"""
import numpy as np

from _chain cimport chain_rounds, check_chain_args, dmax


def grid_pipeline(const double[:, :, :] work, const double[:, :, :] first,
                  const double[:, :, :] last,
                  long[:] L, double hop, double ramp, double lat,
                  double launch, double task, double cushion, fill=None, double dt=1.0,
                  long push=-1):
    """Completion cycle of the last round over G independent reduction chains.

    work[g, c, n]  compute of round n at position c of chain g, end-of-stream included
    first[g, c, n] when round n's first wavelet reaches that core
    last[g, c, n]  when its end-of-stream marker does
    L[g]           wavelets of partial sums per round on chain g
    hop, ramp      link latencies; lat: a reducer's turnaround (stage - 2 ramp)
    launch         task + DSD setup before a chain's first PE sends its sums
    task           a task activation (end of stream, the root's end of message)
    cushion        wavelets that fit between two reducers (queues and links)
    fill[g]        (optional) added to first and last of chain g: they may then be one
                   array for every chain (a stride-0 view), not G copies
    dt             cycles a link holds a wavelet (1 / its rate): sums go max(dt, 1) apart
                   (a reducer takes one a cycle); a core's ramp takes its first sums of
                   a round dt after that round's end of stream
    push           (optional, >= 0) wavelets a chain's first PE's router queues for it to
                   send (its queue depth and those in flight): that PE is free once its
                   last wavelet of a round is in the queue, not once the link has taken
                   it; -1 (the default): as the link takes it. The same floats where dt
                   <= 1 (the queue then drains as fast as it is filled)
    """
    cdef Py_ssize_t G = work.shape[0], P = work.shape[1], N = work.shape[2], g
    cdef double[::1] scratch = np.zeros(5 * P + N * P)
    cdef double* E = &scratch[0] if P > 0 else NULL
    cdef double done = 0.0
    cdef bint shifted = fill is not None
    cdef double[:] fill_g = np.ascontiguousarray(fill if shifted else np.zeros(G), np.float64)
    # the loop below runs without bounds checks
    for name, a in (("first", first), ("last", last)):
        if a.shape[0] != G or a.shape[1] != P or a.shape[2] != N:
            raise ValueError(f"grid_pipeline: {name} has shape {tuple(a.shape)[:3]}; work has "
                             f"{(G, P, N)}: they must match")
    if L.shape[0] != G or fill_g.shape[0] != G:
        raise ValueError(f"grid_pipeline: L ({L.shape[0]}) and fill ({fill_g.shape[0]}) need "
                         f"one entry per chain ({G})")
    check_chain_args("grid_pipeline", L, cushion)
    if not 0.0 < dt < float("inf"):
        raise ValueError(f"grid_pipeline: dt must be a number of cycles > 0 (1 / the link "
                         f"rate); received {dt}")
    if P == 0 or N == 0:
        return done
    with nogil:
        for g in range(G):
            done = chain_rounds(<const char*> &work[g, 0, 0], work.strides[1], work.strides[2],
                                <const char*> &first[g, 0, 0], first.strides[1], first.strides[2],
                                <const char*> &last[g, 0, 0], last.strides[1], last.strides[2],
                                shifted, fill_g[g], L[g],
                                P, N, hop, ramp, lat, launch, task, cushion, done,
                                E, E + P, E + 2 * P, E + 3 * P, E + 4 * P, E + 5 * P,
                                dt, push)
    return done


def multicast_column(double[:, :] cost, double hop, double ramp, double dt,
                     long cap_link, long cap_ramp, long cap_edge):
    """End of every wavelet's task on every row of one multicast column.

    cost[i, r]  task cycles of stream wavelet i on PE row r (rows top to bottom)
    The stream enters router 0 from the edge and each router forwards a wavelet south
    and up its ramp at once, when both have room: a router's queue holds ``cap_link``
    wavelets (in flight included), a core's input queue ``cap_ramp``, the entry queue
    ``cap_edge``; a wavelet leaves a core's queue when its task starts. So a slow row
    holds the rows below it at once and the rows above it once the queues between
    fill — a max-plus recurrence over wavelets and rows, O(wavelets * rows).
    Returns (when each wavelet reaches each row's core, when its task ends), each
    wavelets x rows.
    """
    cdef Py_ssize_t n_items = cost.shape[0], R = cost.shape[1], i, r
    cdef long width = max(cap_link, cap_ramp, cap_edge) + 1
    cdef double[:, :] fwd = np.zeros((width, R))         # when wavelet i left router r
    cdef double[:, :] start = np.zeros((width, R))       # when its task started on row r
    cdef double[:] done = np.zeros(R)
    out = np.zeros((n_items, R))
    reach = np.zeros((n_items, R))
    cdef double[:, :] end = out
    cdef double[:, :] at_core = reach
    cdef double enter = -dt, f, arrive
    with nogil:
        for i in range(n_items):
            enter = enter + dt
            if i >= cap_edge:
                enter = dmax(enter, fwd[(i - cap_edge) % width, 0])
            arrive = enter + hop
            for r in range(R):
                f = arrive
                if i > 0:
                    f = dmax(f, fwd[(i - 1) % width, r] + dt)
                if i >= cap_ramp:
                    f = dmax(f, start[(i - cap_ramp) % width, r])
                if r + 1 < R and i >= cap_link:
                    f = dmax(f, fwd[(i - cap_link) % width, r + 1])
                fwd[i % width, r] = f
                at_core[i, r] = f + ramp
                start[i % width, r] = dmax(f + ramp, done[r])
                done[r] = start[i % width, r] + cost[i, r]
                end[i, r] = done[r]
                arrive = f + hop
    return reach, out
