# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Discrete-event simulation of the fabric at wavelet granularity.

The grid is *logical*: streams enter at the top of each logical column from the edge
and are multicast south by the routes; partial results are reduced along logical rows
by the reducers' topology. The Python side (wsekern/wafer/event.py) builds the routes,
the streams and the topology of each mapping and maps logical to physical directions.

Time runs in whole cycles. Agents, each woken at the cycle it can next act (a calendar
of WINDOW one-cycle buckets and a heap beyond the window). The agents due in one cycle run
in descending agent order, which is address order, so that consecutive visits touch
neighbouring records; wakes for the cycle that is running run after them, sorted the same
way. Only ties are ordered so (the machine does them at once). Descending, the collectives
and the golden runs keep their cycles; ascending, the reductions (which flow west, to
lower addresses) ended earlier, the 512-PE tree of test_event in 590 cycles, not 603
(both in colour order, before round-robin; 599 in turn).
Not ties: colours whose wavelets wait for one router out-port in the same cycle take it
in turn (``params["arbitration"]``: "round-robin", the colour after the port's last user
first; "colour-order", the higher colour first, the engine's order before wafer21; the
vendor documents no rule, so round-robin is the neutral choice; event.ARBITRATION):
  router queue (pe, colour)  forwards its head wavelet to every port of its route at
                             once when every target link is free this cycle and every
                             target queue has room (credit); otherwise it waits
                             (back-pressure) and the target's pop wakes it
  main thread (pe)           one data task per arriving stream wavelet: an AXPY into
                             the accumulator of the current round (sample), or an
                             end-of-stream task that closes the round. Weight-stationary
                             (W's blocks holding a quarter of a weight a column or more),
                             a task only prices itself and the round's AXPYs are replayed
                             in their order when it closes (no value decides a time), as
                             long as the PE takes its column's stream item by item
  reducer (pe)               adds its children's streams into the accumulator at one
                             wavelet per cycle, forwarding the last child's stream as it
                             goes (cut-through) or storing it first (store-and-forward),
                             or sends its own accumulator; the root writes the result
  edge injector (column)     feeds a column's stream into the top router
An event in the count is one wavelet crossing one link (router to router, a ramp, or
the edge into the region).
"""
cimport cython
import numpy as np
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memset, memcpy, memcmp
from libc.math cimport ceil, INFINITY
from libc.stdint cimport int64_t, int32_t, int16_t, uint8_t

# The protocol with the Python side, defined here once: cpdef enums are Python IntEnums
# too (``from wsekern._event import Port, Mode, Wavelet, Colour``), read by event.py.
cpdef enum Port:      # a router's ports: a route's rx, and the bits of its tx mask
    NORTH = 0
    EAST = 1
    SOUTH = 2
    WEST = 3
    RAMP = 4
    EDGE = 5
    RAMP_DOWN = 5     # link counter slot of the core -> router ramp
    NO_PORT = -1      # a route's rx where the colour has no route at this PE

cpdef enum Mode:
    MODE_NONE = 0     # no main thread: the accumulators are given (collectives)
    MODE_WS = 1       # weight-stationary: stream x, AXPY over W's column k in the block
    MODE_AS = 2       # activation-stationary: stream w, AXPY over X's row k in the block

cpdef enum Wavelet:   # a stream item's idx when it is not an element index
    EOS = -1          # end of stream: closes a round
    INDEX_HALF = -2   # the index wavelet ahead of an fp32 sparse value

cpdef enum Colour:
    NO_COLOUR = -1    # a reducer that sends nothing (the root of its chain)

cdef extern from "wsk_mem.h" nogil:
    void* wsk_aligned_alloc(size_t alignment, size_t size)
    void wsk_aligned_free(void* p)
    void wsk_prefetch(const void* addr)
    # 2 MiB pages for a big array not yet touched: the agents visit the PEs in time
    # order, at random addresses, so 4 KiB pages would miss the TLB at every step
    void wsk_advise_huge(void* p, size_t n)


cdef object _huge_array(Py_ssize_t n, dtype, fill):
    """np.full(n, fill, dtype) in memory advised for huge pages before it is written."""
    a = np.empty(max(n, 1), dtype)[:n]
    if n > 0:
        wsk_advise_huge(<void*> <size_t> a.ctypes.data, <size_t> a.nbytes)
    a.fill(fill)
    return a

DEF WINDOW = 4096                  # cycles of the calendar; later wakes wait in the heap
DEF TRACE_WINDOWS = 256            # time windows of a trace; they double in length as needed
DEF CUR_SCAN = 8                   # entries a data task steps over from its PE's cursor
DEF SORT_SMALL = 48                # a bucket this short is sorted by insertion, not by radix
DEF RADIX_BITS = 12                # at most this many bits of the agent per radix pass
DEF AHEAD = 8                      # the run loop prefetches the state of the agent this far on

cdef inline double dmax(double a, double b) noexcept nogil:
    return a if a > b else b


cdef struct Slot:
    double ready             # when the wavelet is at the head of its queue (arrived)
    double v0
    double v1
    int32_t idx


cdef struct Queue:              # 32 bytes: two to a cache line
    double head_ready        # its head slot's ready, kept here: a reader that wakes too
                             # early need not touch the slots (a cache miss on big grids)
    double bp_since          # blocked by a full downstream queue since (-1: not blocked)
    double sched             # the wake time of its router (rq), or of its PE's main
                             # thread (the cq of x_colour): whoever pushes into a queue
                             # wakes its reader without touching one more cache line
    int16_t count            # wavelets held, those in flight to it included
    int16_t head
    uint8_t wait             # its feeder waits for room
    uint8_t gave             # (cycle % 255) + 1 of the cycle its router gave its turn at
                             # (round-robin; 0: none): it does not go then, so no colour
                             # waits for it (two that share two ports would wait for each
                             # other for ever in one cycle)


cdef struct Pe:                # what a PE's main thread and reducer read, two cache lines
    # main thread
    double main_end          # its task runs until; idle since then (wait_data counts
                             # from it), moved on to when an end-of-stream closes a round
    double main_buf_since    # waits for a free accumulator since (-1: does not)
    double busy              # task cycles
    double wait_data         # stall figures
    double backpressure
    int32_t main_round       # the round its tasks add into
    int32_t red_round        # the round its reducer works on
    int32_t acc_ready        # the last round whose sums are complete (-1: none)
    int32_t nz_cur           # WS: where its last data task stopped in its block's list
    uint8_t eos_pending      # an end-of-stream task ran: its round closes next
    uint8_t compressed       # WS: its block is stored compressed (scalar loop)
    uint8_t direct           # WS: its tasks add into its accumulator as they run (its
                             # stream is not its column's, so no replay is possible; or
                             # the engine does not defer: Engine.defer, Engine.replay)
    # reducer
    double red_end
    double red_since         # blocked since (-1: not blocked)
    double red_busy
    int32_t acc_off          # its accumulators in acc (at most 2**31 - 1 values in all)
    int32_t item_pos         # WS: the next item of its column's stream it takes (at most
                             # 2**31 - 1 items in all)
    int64_t nz_lo            # WS: its block's weights in nz_k, nz_r, nz_v
    int32_t nz_n
    int32_t acc_len
    int32_t child_lo         # its children's colours at child_col[child_lo:][:child_n]
    int32_t send_col         # NO_COLOUR: the root
    int32_t red_j            # the wavelet of the vector being reduced or sent
    int16_t child_n          # at most one child per colour (colours < 2**15)
    int16_t red_ci           # the child being reduced


cdef struct Event:
    double t
    int64_t seq
    int32_t agent


@cython.final                   # no subclass: its cdef methods are called directly (and
cdef class Engine:              # inlined), not through a table
    # geometry and parameters
    cdef int R, C, P, NC, Q, S, cap_link, cap_ramp, cap_push, cap_edge, mode, vpw, store_fwd, x_colour, rounds
    cdef double hop, ramp, turn, link_dt, lat, setup, task, scalar, fmac
    # calendar of one-cycle buckets, and the heap beyond it
    cdef int32_t* bucket[WINDOW]
    cdef int64_t bucket_n[WINDOW]
    cdef int64_t bucket_cap[WINDOW]
    # buffers of the buckets whose cycle has run, most recent last: a bucket that needs
    # room takes one rather than growing its own (each cycle's bucket is a new one, and
    # growing them all would take fresh memory for every cycle of the window)
    cdef int32_t* spare[WINDOW]
    cdef int64_t spare_cap[WINDOW]
    cdef int spare_n
    cdef int64_t now, in_window
    cdef int32_t* sort_tmp                # the radix sort's second buffer
    cdef int64_t sort_cap
    cdef int sort_passes, sort_bits       # radix passes over the agent, bits in each
    cdef bint logging                     # record every agent's run (tests: time order)
    cdef bint rr                          # round-robin between colours that contend for a
                                          # router's out-port (False: descending colour)
    cdef int16_t[::1] link_last           # per (PE, port): the colour that used it last
    cdef uint8_t[::1] link_users          # per (PE, port): colours routed out through it (to 2)
    cdef bint replay                      # WS: sums wait for the round's end (False: every
                                          #   task adds at once, as a reference for tests)
    cdef bint defer                       # WS: they wait here, W's blocks holding a quarter
                                          #   of a weight a column or more (sparser, a task
                                          #   seldom meets a weight: a replay costs more)
    cdef list visit_t, visit_a
    cdef Event* heap
    cdef int64_t heap_n, heap_cap, seq
    cdef double[::1] sched                # wake times of the reducers and injectors
                                          #   (routers' and main threads' are in Queue)
    cdef int n_agents, a_main, a_red, a_inj
    # routes
    cdef uint8_t[::1] route_tx
    cdef signed char[::1] route_rx
    cdef uint8_t[::1] consumer            # per colour: 0 main thread, 1 reducer
    # router queues and core input queues: ring buffers of depth Q
    # (one struct per queue and per slot: a wavelet's move touches few cache lines)
    cdef Queue* rq
    cdef Queue* cq
    cdef Slot* rq_slot
    cdef Slot* cq_slot
    cdef double[::1] link_free
    cdef int64_t[::1] link_count
    cdef int64_t edge_count
    cdef int64_t n_events                # wavelet-link events so far (links, ramps, edge)
    # the state of each PE's main thread and reducer, one 128-byte record per PE
    cdef Pe* pe
    cdef int32_t[::1] child_col
    # accumulators: per PE, nbuf buffers (two when there is a next round to overlap,
    # one otherwise) of acc_len values each, packed at acc_off (CSR-style)
    cdef int nbuf
    cdef double[::1] acc
    # outputs
    cdef double[:] Y
    cdef int64_t[::1] out_lo
    cdef int64_t y_si, y_sn
    # per-PE, per-round times (compact trace of small runs; 0 x 0 when off)
    cdef double[:, :] trace_ready, trace_done
    cdef int64_t[:, :] trace_links           # (PE * 6 link slots) x windows
    cdef double[:, :] trace_busy             # PE x windows: task cycles started there
    cdef double trace_window
    cdef bint tracing
    # stats
    cdef double t_done
    cdef int64_t macs, tasks
    # streams
    cdef int64_t[::1] item_ptr, inj_pos
    cdef int32_t[::1] item_idx
    cdef double[::1] item_val, inj_next, inj_dt
    # operands of the main thread
    # WS: each PE's block, by column then row, PE p's at [pe.nz_lo:][:pe.nz_n]; a data
    # task reads only the columns (to find and count its weights: 16 to a cache line),
    # the rows and values are read in order when the round's sums are needed
    cdef int32_t* nz_k
    cdef int32_t* nz_r
    cdef double* nz_v
    # WS: where it is the smaller, how many weights each column of each PE's block holds
    # (PE p's column col_lo[c] + j at nz_cnt[p * cnt_w + j]; cnt_w 0: not kept): a task of
    # a compressed block prices itself from one byte, 64 columns to a cache line
    cdef uint8_t[::1] nz_cnt
    cdef int64_t cnt_w
    cdef int64_t[::1] col_lo
    cdef double[:, ::1] Xd
    cdef int64_t[::1] blk_lo, blk_hi        # per logical row: W rows (WS) / X columns (AS)

    def __cinit__(self):
        cdef int b
        self.heap = NULL
        self.sort_tmp = NULL
        self.sort_cap = 0
        self.rq = NULL
        self.cq = NULL
        self.rq_slot = NULL
        self.cq_slot = NULL
        self.nz_k = NULL
        self.nz_r = NULL
        self.nz_v = NULL
        self.pe = NULL
        for b in range(WINDOW):
            self.bucket[b] = NULL
            self.bucket_n[b] = 0
            self.bucket_cap[b] = 0
        self.spare_n = 0

    def __dealloc__(self):
        cdef int b
        if self.heap != NULL:
            free(self.heap)
        free(self.sort_tmp)
        free(self.rq)
        free(self.cq)
        free(self.rq_slot)
        free(self.cq_slot)
        free(self.nz_k)
        free(self.nz_r)
        free(self.nz_v)
        wsk_aligned_free(self.pe)
        for b in range(WINDOW):
            free(self.bucket[b])
        for b in range(self.spare_n):
            free(self.spare[b])

    def __init__(self, int R, int C, int n_colours, int queue_depth, dict params):
        if not 1 <= n_colours < 2**15:
            raise ValueError(f"the engine routes 1 to {2**15 - 1} colours; received {n_colours}")
        self.R, self.C, self.P, self.NC, self.Q = R, C, R * C, n_colours, queue_depth
        self.hop = params["hop"]
        self.ramp = params["ramp"]
        self.turn = params["turn"]
        self.link_dt = 1.0 / params["link_rate"]
        self.lat = params["lat"]
        self.setup = params["setup"]
        self.task = params["task"]
        self.scalar = params["scalar"]
        self.fmac = params["fmac"]
        self.vpw = params["vpw"]
        self.store_fwd = params["store_forward"]
        self.rounds = params["rounds"]
        self.mode = params["mode"]
        self.x_colour = params.get("x_colour", 0)
        self.replay = params.get("replay", True)
        arb = params.get("arbitration", "round-robin")
        if arb not in ("colour-order", "round-robin"):
            raise ValueError(f"arbitration must be 'colour-order' or 'round-robin'; received "
                             f"{arb!r}")
        self.rr = arb == "round-robin"
        self.defer = False
        if not 0 <= self.x_colour < n_colours:
            raise ValueError(f"x_colour {self.x_colour} is not one of the {n_colours} colours")
        cdef int P = self.P, NQ = self.P * n_colours, i
        # A queue holds Q wavelets plus those in flight on the link feeding it: latency
        # costs no throughput (credits cover the round trip).
        # checked in double before the casts: a latency past int's range (or inf, NaN)
        # would wrap to a negative capacity
        in_flight = (ceil(self.hop + self.turn), ceil(self.ramp), ceil(self.lat + self.ramp),
                     ceil(self.hop))
        if not all(0 <= f <= 2**15 - 1 - queue_depth for f in in_flight):
            raise ValueError(f"the engine holds at most {2**15 - 1} wavelets a queue; "
                             f"queue_depth {self.Q} and the latencies (hop {self.hop}, turn "
                             f"{self.turn}, ramp {self.ramp}, lat {self.lat}) need "
                             f"{self.Q} + these in flight: {in_flight}")
        self.cap_link = queue_depth + <int> in_flight[0]
        self.cap_ramp = queue_depth + <int> in_flight[1]
        self.cap_push = queue_depth + <int> in_flight[2]
        self.cap_edge = queue_depth + <int> in_flight[3]
        self.S = max(self.cap_link, self.cap_ramp, self.cap_push, self.cap_edge)
        queue_depth = self.S
        self.heap_cap = 1024
        self.heap = <Event*> malloc(self.heap_cap * sizeof(Event))
        if self.heap == NULL:
            raise MemoryError()
        self.heap_n = 0
        self.seq = 0
        self.now = 0
        self.in_window = 0
        self.a_main = NQ
        self.a_red = NQ + P
        self.a_inj = NQ + 2 * P
        self.n_agents = NQ + 2 * P + C
        bits = max(1, (self.n_agents - 1).bit_length())
        self.sort_passes = -(-bits // RADIX_BITS)
        self.sort_bits = -(-bits // self.sort_passes)
        self.sched = _huge_array(P + C, np.float64, np.inf)     # reducers, then injectors
        self.route_tx = np.zeros(NQ, np.uint8)
        self.route_rx = np.full(NQ, NO_PORT, np.int8)
        self.consumer = np.ones(n_colours, np.uint8)
        self.rq = <Queue*> calloc(NQ, sizeof(Queue))
        self.cq = <Queue*> calloc(NQ, sizeof(Queue))
        self.rq_slot = <Slot*> calloc(<size_t> NQ * queue_depth, sizeof(Slot))
        self.cq_slot = <Slot*> calloc(<size_t> NQ * queue_depth, sizeof(Slot))
        if self.rq == NULL or self.cq == NULL or self.rq_slot == NULL or self.cq_slot == NULL:
            raise MemoryError(f"event simulation: queues of {NQ:,} (PE, colour) pairs do not fit")
        wsk_advise_huge(self.rq, NQ * sizeof(Queue))
        wsk_advise_huge(self.cq, NQ * sizeof(Queue))
        wsk_advise_huge(self.rq_slot, <size_t> NQ * queue_depth * sizeof(Slot))
        wsk_advise_huge(self.cq_slot, <size_t> NQ * queue_depth * sizeof(Slot))
        for i in range(NQ):
            self.rq[i].bp_since = -1.0
            self.cq[i].bp_since = -1.0
            self.rq[i].sched = INFINITY
            self.cq[i].sched = INFINITY
        self.link_free = _huge_array(P * 5, np.float64, 0.0)
        self.link_users = np.zeros(P * 5, np.uint8)
        self.link_last = np.full(P * 5, -1, np.int16)
        self.link_count = _huge_array(P * 6, np.int64, 0)
        self.edge_count = 0
        self.n_events = 0
        self.pe = <Pe*> wsk_aligned_alloc(64, <size_t> P * sizeof(Pe))
        if self.pe == NULL:
            raise MemoryError(f"event simulation: the state of {P:,} PEs does not fit")
        wsk_advise_huge(self.pe, <size_t> P * sizeof(Pe))
        memset(self.pe, 0, <size_t> P * sizeof(Pe))
        for i in range(P):
            self.pe[i].main_buf_since = -1.0
            self.pe[i].acc_ready = -1
            self.pe[i].red_since = -1.0
            self.pe[i].send_col = NO_COLOUR
        self.t_done = 0.0
        self.macs = 0
        self.tasks = 0
        self.tracing = params.get("trace", False)
        shape = (int(P), int(self.rounds)) if self.tracing else (0, 0)
        self.trace_ready = np.zeros(shape)
        self.trace_done = np.zeros(shape)
        n_win = TRACE_WINDOWS if self.tracing else 0
        self.trace_links = np.zeros((int(P) * 6 if self.tracing else 0, n_win), np.int64)
        self.trace_busy = np.zeros((int(P) if self.tracing else 0, n_win))
        self.trace_window = 16.0
        self.inj_pos = np.zeros(C, np.int64)
        self.inj_next = np.zeros(C)
        self.inj_dt = np.ones(C)

    # -- set-up from Python -------------------------------------------------------
    def set_routes(self, tx, rx, consumer):
        self.route_tx = np.ascontiguousarray(tx, np.uint8)
        self.route_rx = np.ascontiguousarray(rx, np.int8)
        self.consumer = np.ascontiguousarray(consumer, np.uint8)
        # per (PE, port): how many colours leave through it (more than one: they contend;
        # counted to 2, as a byte would wrap at 256 colours and call such a port free)
        bits = (np.asarray(self.route_tx).reshape(self.P, self.NC)[:, :, None]
                >> np.arange(5, dtype=np.uint8)) & 1
        self.link_users = np.ascontiguousarray(
            np.minimum(bits.sum(axis=1, dtype=np.int64), 2).ravel(), np.uint8)
        self.link_last = np.full(self.P * 5, -1, np.int16)

    def set_reduction(self, child_ptr, child_col, send_col, acc_len, acc0=None):
        """Children (colours, in the order they are reduced) and the send colour of
        each PE (NO_COLOUR: the root); ``acc0`` (P x 2 x A) gives the accumulators of
        collectives, which are then ready before the first cycle."""
        cdef int64_t[::1] cp = np.ascontiguousarray(child_ptr, np.int64)
        cdef int32_t[::1] sc = np.ascontiguousarray(send_col, np.int32)
        cdef int p
        self.child_col = np.ascontiguousarray(child_col, np.int32)
        lens = np.ascontiguousarray(acc_len, np.int32)
        if lens.shape != (self.P,) or (lens < 0).any():
            raise ValueError(f"acc_len must hold {self.P} lengths >= 0")
        if cp.shape[0] != self.P + 1 or sc.shape[0] != self.P:
            raise ValueError(f"child_ptr and send_col must cover {self.P} PEs")
        self.nbuf = 2 if self.rounds > 1 else 1
        off = np.zeros(self.P + 1, np.int64)
        np.cumsum(lens.astype(np.int64) * self.nbuf, out=off[1:])
        if off[self.P] > 2**31 - 2:             # int32 offsets, and one spare value
            raise ValueError(f"the engine holds at most {2**31 - 2:,} accumulator values; "
                             f"acc_len (x {self.nbuf} buffers) needs {int(off[self.P]):,}")
        cdef int32_t[::1] ln = lens
        cdef int64_t[::1] of = off
        for p in range(self.P):
            self.pe[p].child_lo = <int32_t> cp[p]
            if not 0 <= cp[p + 1] - cp[p] <= self.NC or cp[p + 1] > 2**31 - 1:
                raise ValueError(f"PE {p}: {cp[p + 1] - cp[p]} children; at most one per colour")
            self.pe[p].child_n = <int16_t> (cp[p + 1] - cp[p])
            self.pe[p].send_col = sc[p]
            self.pe[p].acc_len = ln[p]
            self.pe[p].acc_off = <int32_t> of[p]
        if acc0 is None:
            self.acc = _huge_array(int(off[self.P]) + 1, np.float64, 0.0)
        else:
            a0 = np.asarray(acc0, np.float64)
            A = a0.size // (2 * self.P) if self.P else 0
            a0 = a0.reshape(self.P, 2, A)[:, :self.nbuf, :]
            keep = np.broadcast_to(np.arange(A)[None, None, :] < lens[:, None, None], a0.shape)
            self.acc = np.ascontiguousarray(np.append(a0[keep], 0.0))
            for p in range(self.P):
                self.pe[p].acc_ready = self.rounds - 1

    def set_output(self, Y, out_lo, int64_t y_si, int64_t y_sn):
        self.Y = Y.reshape(-1)
        self.out_lo = np.ascontiguousarray(out_lo, np.int64)
        self.y_si, self.y_sn = y_si, y_sn

    def set_streams(self, item_ptr, item_idx, item_val, inj_dt):
        ptr = np.ascontiguousarray(item_ptr, np.int64)
        if ptr.shape != (self.C + 1,):
            raise ValueError(f"set_streams: item_ptr must bound {self.C} streams")
        if ptr[self.C] > 2**31 - 1:             # a PE's place in them is an int32
            raise ValueError(f"the engine streams at most {2**31 - 1:,} items; "
                             f"received {int(ptr[self.C]):,}")
        if ptr[0] != 0 or (np.diff(ptr) < 0).any() or ptr[self.C] != len(item_idx) \
                or len(item_val) != len(item_idx):
            raise ValueError(f"set_streams: item_ptr must bound {self.C} streams of the "
                             f"{len(item_idx)} items (and as many values)")
        dt = np.ascontiguousarray(inj_dt, np.float64)
        if dt.shape != (self.C,) or not (np.isfinite(dt) & (dt >= 0)).all():
            # the injector reads inj_dt[c] per column, unchecked; a NaN or negative step
            # would send a wavelet before the last
            raise ValueError(f"set_streams: inj_dt must hold one finite step >= 0 per "
                             f"column ({self.C}); received shape {dt.shape}")
        self.item_ptr = ptr
        self.item_idx = np.ascontiguousarray(item_idx, np.int32)
        self.item_val = np.ascontiguousarray(item_val, np.float64)
        self.inj_dt = dt

    def set_weights(self, indptr, indices, data, blk_lo, blk_hi, compressed, col_bounds):
        """W in CSC with sorted rows; its row blocks (per logical row) and column blocks
        (``col_bounds``, per logical column) cut it into one block per PE, which the PE
        keeps as its own list (a data task reads only its PE's few weights)."""
        cdef int64_t[::1] ip = np.ascontiguousarray(indptr, np.int64)
        cdef int32_t[::1] ix = np.ascontiguousarray(indices, np.int32)
        cdef double[::1] dv = np.ascontiguousarray(data, np.float64)
        cdef int64_t[::1] lo = np.ascontiguousarray(blk_lo, np.int64)
        cdef int64_t[::1] hi = np.ascontiguousarray(blk_hi, np.int64)
        cdef int64_t[::1] kb = np.ascontiguousarray(col_bounds, np.int64)
        cdef int K = ip.shape[0] - 1, k, c, lr, p
        cdef int64_t j, pos, n
        if lo.shape[0] != self.R or hi.shape[0] != self.R or kb.shape[0] != self.C + 1 \
                or kb[0] != 0 or kb[self.C] != K:
            raise ValueError("set_weights: block bounds do not match the grid and W")
        # logical row of each row of W (rows outside every block belong to none)
        row_lr = np.full(max(1, int(np.max(hi, initial=0))), -1, np.int32)
        for lr in range(self.R):
            row_lr[lo[lr]:hi[lr]] = lr
        cdef int32_t[::1] rlr = row_lr
        cdef int64_t[::1] cursor = np.zeros(self.P + 1, np.int64)
        for c in range(self.C):                 # count, then place (a counting sort by PE
            for k in range(kb[c], kb[c + 1]):   # that keeps CSC's column, row order)
                for j in range(ip[k], ip[k + 1]):
                    if ix[j] < rlr.shape[0] and rlr[ix[j]] >= 0:
                        cursor[rlr[ix[j]] * self.C + c + 1] += 1
        cdef int64_t[::1] nz_ptr = np.cumsum(cursor)
        cdef uint8_t[::1] comp = np.ascontiguousarray(compressed, np.uint8)
        if comp.shape[0] != self.P:
            raise ValueError(f"compressed must cover {self.P} PEs")
        cursor[:] = nz_ptr
        free(self.nz_k)
        free(self.nz_r)
        free(self.nz_v)
        n = max(1, nz_ptr[self.P])
        self.nz_k = <int32_t*> malloc(n * sizeof(int32_t))
        self.nz_r = <int32_t*> malloc(n * sizeof(int32_t))
        self.nz_v = <double*> malloc(n * sizeof(double))
        if self.nz_k == NULL or self.nz_r == NULL or self.nz_v == NULL:
            raise MemoryError()
        wsk_advise_huge(self.nz_k, n * sizeof(int32_t))
        wsk_advise_huge(self.nz_r, n * sizeof(int32_t))
        wsk_advise_huge(self.nz_v, n * sizeof(double))
        for p in range(self.P):
            self.pe[p].nz_lo = nz_ptr[p]
            self.pe[p].nz_n = <int32_t> (nz_ptr[p + 1] - nz_ptr[p])
            self.pe[p].nz_cur = 0
            self.pe[p].compressed = comp[p]
        # the sums wait for the round's end, and the column counts are kept, where the
        # counts are smaller than nz_k (and, the counts, where none passes 255)
        cdef int64_t cw = int(np.max(np.diff(kb), initial=0)), ci
        cdef bint counting = 0 < self.P * cw <= nz_ptr[self.P] * <int64_t> sizeof(int32_t)
        self.defer = counting
        self.nz_cnt = np.zeros(self.P * cw if counting else 0, np.uint8)
        for c in range(self.C):
            for k in range(kb[c], kb[c + 1]):
                for j in range(ip[k], ip[k + 1]):
                    if ix[j] < rlr.shape[0] and rlr[ix[j]] >= 0:
                        lr = rlr[ix[j]]
                        p = lr * self.C + c
                        if counting:
                            ci = p * cw + k - kb[c]
                            if self.nz_cnt[ci] == 255:
                                counting = False
                            else:
                                self.nz_cnt[ci] += 1
                        pos = cursor[p]
                        cursor[p] = pos + 1
                        self.nz_k[pos] = k
                        self.nz_r[pos] = <int32_t> (ix[j] - lo[lr])
                        self.nz_v[pos] = dv[j]
        self.blk_lo = np.ascontiguousarray(blk_lo, np.int64)
        self.blk_hi = np.ascontiguousarray(blk_hi, np.int64)
        self.col_lo = kb
        self.cnt_w = cw if counting else 0
        if not counting:
            self.nz_cnt = np.zeros(0, np.uint8)

    def set_activations(self, X, blk_lo, blk_hi):
        self.Xd = np.ascontiguousarray(X, np.float64)
        self.blk_lo = np.ascontiguousarray(blk_lo, np.int64)
        self.blk_hi = np.ascontiguousarray(blk_hi, np.int64)

    # -- the heap -----------------------------------------------------------------
    cdef inline bint _before(self, Event* a, Event* b) noexcept nogil:
        return a.t < b.t or (a.t == b.t and a.seq < b.seq)

    cdef int _push(self, double t, int agent) except -1:
        cdef Event* grown
        cdef int64_t i, parent
        cdef Event e
        if self.heap_n == self.heap_cap:
            grown = <Event*> realloc(self.heap, 2 * self.heap_cap * sizeof(Event))
            if grown == NULL:
                raise MemoryError()
            self.heap = grown
            self.heap_cap *= 2
        e.t = t
        e.seq = self.seq
        e.agent = agent
        self.seq += 1
        i = self.heap_n
        self.heap_n += 1
        while i > 0:
            parent = (i - 1) >> 1
            if self._before(&e, &self.heap[parent]):
                self.heap[i] = self.heap[parent]
                i = parent
            else:
                break
        self.heap[i] = e
        return 0

    cdef Event _pop(self) noexcept nogil:
        cdef Event top = self.heap[0]
        cdef Event last
        cdef int64_t i = 0, child, n
        self.heap_n -= 1
        n = self.heap_n
        if n > 0:
            last = self.heap[n]
            while True:
                child = 2 * i + 1
                if child >= n:
                    break
                if child + 1 < n and self._before(&self.heap[child + 1], &self.heap[child]):
                    child += 1
                if self._before(&self.heap[child], &last):
                    self.heap[i] = self.heap[child]
                    i = child
                else:
                    break
            self.heap[i] = last
        return top

    cdef int _bucket_add(self, int64_t t, int agent) except -1:
        cdef int b = t % WINDOW
        cdef int32_t* grown
        cdef int64_t n = self.bucket_n[b]
        if n == self.bucket_cap[b]:
            if self.spare_n > 0 and self.spare_cap[self.spare_n - 1] > n:
                self.spare_n -= 1           # a spare buffer with room: the most recent
                grown = self.spare[self.spare_n]
                if n > 0:
                    memcpy(grown, self.bucket[b], n * sizeof(int32_t))
                free(self.bucket[b])
                self.bucket[b] = grown
                self.bucket_cap[b] = self.spare_cap[self.spare_n]
            else:
                grown = <int32_t*> realloc(self.bucket[b], max(16, 2 * n) * sizeof(int32_t))
                if grown == NULL:
                    raise MemoryError()
                self.bucket[b] = grown
                self.bucket_cap[b] = max(16, 2 * n)
        self.bucket[b][self.bucket_n[b]] = agent
        self.bucket_n[b] += 1
        self.in_window += 1
        return 0

    cdef int _sort_agents(self, int32_t* a, int64_t n) except -1:
        """Sort a[:n] (agents, each in [0, n_agents)) descending: LSD radix over
        n_agents - 1 - agent in sort_passes passes of sort_bits bits, insertion when short."""
        cdef int64_t i, j, total, c
        cdef int32_t v
        cdef int32_t* src = a
        cdef int32_t* dst
        cdef int32_t* grown
        cdef int pass_, shift, nd = 1 << self.sort_bits, mask = nd - 1
        cdef int32_t top = self.n_agents - 1
        cdef int64_t count[1 << RADIX_BITS]
        if n < SORT_SMALL:
            for i in range(1, n):
                v = a[i]
                j = i - 1
                while j >= 0 and a[j] < v:
                    a[j + 1] = a[j]
                    j -= 1
                a[j + 1] = v
            return 0
        if n > self.sort_cap:
            grown = <int32_t*> realloc(self.sort_tmp, 2 * n * sizeof(int32_t))
            if grown == NULL:
                raise MemoryError()
            self.sort_tmp = grown
            self.sort_cap = 2 * n
        dst = self.sort_tmp
        for pass_ in range(self.sort_passes):
            shift = pass_ * self.sort_bits
            memset(count, 0, nd * sizeof(int64_t))
            for i in range(n):
                count[((top - src[i]) >> shift) & mask] += 1
            total = 0
            for j in range(nd):
                c = count[j]
                count[j] = total
                total += c
            for i in range(n):
                v = src[i]
                c = ((top - v) >> shift) & mask
                dst[count[c]] = v
                count[c] += 1
            src, dst = dst, src
        if src != a:
            memcpy(a, src, n * sizeof(int32_t))
        return 0

    cdef inline double* _sched(self, int agent) noexcept nogil:
        """Where the wake time of ``agent`` is kept."""
        if agent < self.a_main:
            return &self.rq[agent].sched
        if agent < self.a_red:
            return &self.cq[(agent - self.a_main) * self.NC + self.x_colour].sched
        return &self.sched[agent - self.a_red]

    cdef inline int _wake(self, int agent, double t) except -1:
        """Run ``agent`` at cycle ceil(t) unless it already runs earlier (it then
        re-derives what it waits for, so a later wake is never needed)."""
        cdef int64_t ti = <int64_t> t            # ceil(t), without a call to libm (x86-64
        if <double> ti < t:                     # has no rounding instruction before SSE4.1)
            ti += 1
        cdef double* sched = self._sched(agent)
        if ti < self.now:
            ti = self.now
        if ti < sched[0]:
            sched[0] = ti
            if ti < self.now + WINDOW:
                self._bucket_add(ti, agent)
            else:
                self._push(<double> ti, agent)
        return 0

    # -- geometry -------------------------------------------------------------------
    cdef inline int _neighbour(self, int p, int d) noexcept nogil:
        cdef int r = p // self.C, c = p % self.C
        if d == NORTH:
            return p - self.C if r > 0 else -1
        if d == SOUTH:
            return p + self.C if r < self.R - 1 else -1
        if d == EAST:
            return p + 1 if c < self.C - 1 else -1
        return p - 1 if c > 0 else -1

    cdef inline double _turn(self, int rx, int d) noexcept nogil:
        if rx < 4 and (rx & 1) != (d & 1):
            return self.turn
        return 0.0

    # -- waking whoever feeds a queue ---------------------------------------------------
    cdef int _wake_upstream(self, int q, double t) except -1:
        cdef int rx = self.route_rx[q]
        cdef int p = q // self.NC, col = q % self.NC, nb
        if rx < RAMP and rx != NO_PORT:
            nb = self._neighbour(p, rx)
            if nb >= 0:
                self._wake(nb * self.NC + col, t)
        elif rx == RAMP:
            self._wake(self.a_red + p, t)
        elif rx == EDGE:
            self._wake(self.a_inj + (p % self.C), t)
        return 0

    cdef inline bint _enqueue(self, Queue* queue, Slot* slots, int q, double ready, int32_t idx,
                              double v0, double v1) noexcept nogil:
        """Append a wavelet to ring q; True when it is now the head (its reader must wake)."""
        cdef Slot* slot = &slots[<int64_t> q * self.S + (queue[q].head + queue[q].count) % self.S]
        slot.ready = ready
        slot.idx = idx
        slot.v0 = v0
        slot.v1 = v1
        queue[q].count += 1
        if queue[q].count == 1:
            queue[q].head_ready = ready
            return True
        return False

    cdef inline void _dequeue(self, Queue* queue, Slot* slots, int q) noexcept nogil:
        """Drop the head of ring q; the next one's ready time moves into the queue."""
        queue[q].head = (queue[q].head + 1) % self.S
        queue[q].count -= 1
        if queue[q].count > 0:
            queue[q].head_ready = slots[<int64_t> q * self.S + queue[q].head].ready

    cdef inline int _rq_push(self, int q, double ready, int32_t idx, double v0, double v1) except -1:
        if self._enqueue(self.rq, self.rq_slot, q, ready, idx, v0, v1):
            self._wake(q, ready)
        return 0

    cdef inline int _block(self, int q, double t) noexcept nogil:
        if self.rq[q].bp_since < 0:
            self.rq[q].bp_since = t
        return 0

    cdef inline int _unblock(self, int q, double t) noexcept nogil:
        if self.rq[q].bp_since >= 0:
            self.pe[q // self.NC].backpressure += t - self.rq[q].bp_since
            self.rq[q].bp_since = -1.0
        return 0

    # -- router ---------------------------------------------------------------------------
    cdef int _route(self, int q, double t) except -1:
        cdef int p, col, d, nb, dq, rx
        cdef int64_t s
        cdef double latest, ready
        cdef uint8_t tx
        cdef int32_t idx
        cdef double v0, v1
        self.rq[q].gave = 0
        if self.rq[q].count == 0:
            return 0
        if self.rq[q].head_ready > t:
            self._wake(q, self.rq[q].head_ready)
            return 0
        p = q // self.NC
        col = q % self.NC
        tx = self.route_tx[q]
        latest = t
        for d in range(5):
            if tx & (1 << d) and self.link_free[p * 5 + d] > latest:
                latest = self.link_free[p * 5 + d]
        if latest > t:
            self._wake(q, latest)
            return 0
        for d in range(4):
            if tx & (1 << d):
                nb = self._neighbour(p, d)
                dq = nb * self.NC + col
                if self.rq[dq].count >= self.cap_link:
                    self.rq[dq].wait = 1
                    self._block(q, t)
                    return 0
        if tx & (1 << RAMP) and self.cq[q].count >= self.cap_ramp:
            self.cq[q].wait = 1
            self._block(q, t)
            return 0
        if self.rr and self._yields(q, p, col, tx, t):
            self.rq[q].gave = <uint8_t> (self.now % 255 + 1)
            self._wake(q, t + 1.0)
            return 0
        self._unblock(q, t)
        # pop the head and send it on every port of the route
        s = <int64_t> q * self.S + self.rq[q].head
        idx, v0, v1 = self.rq_slot[s].idx, self.rq_slot[s].v0, self.rq_slot[s].v1
        self._dequeue(self.rq, self.rq_slot, q)
        rx = self.route_rx[q]
        for d in range(4):
            if tx & (1 << d):
                nb = self._neighbour(p, d)
                self.link_free[p * 5 + d] = t + self.link_dt
                self.link_last[p * 5 + d] = <int16_t> col
                self._count(p, d, t)
                self._rq_push(nb * self.NC + col, t + self.hop + self._turn(rx, d), idx, v0, v1)
        if tx & (1 << RAMP):
            self.link_free[p * 5 + RAMP] = t + self.link_dt
            self.link_last[p * 5 + RAMP] = <int16_t> col
            self._count(p, RAMP, t)
            ready = t + self.ramp
            if self._enqueue(self.cq, self.cq_slot, q, ready, idx, v0, v1):
                if self.consumer[col] == 0:
                    self._wake(self.a_main + p, ready)
                else:
                    self._wake(self.a_red + p, ready)
        if self.rq[q].wait:
            self.rq[q].wait = 0
            self._wake_upstream(q, t)
        if self.rq[q].count > 0:
            self._wake(q, max(self.rq[q].head_ready, t + self.link_dt))
        return 0

    cdef inline bint _can_go(self, int q, double t) noexcept nogil:
        """Whether router queue q could forward its head at cycle t: due, every port of its
        route free and every queue it feeds with room (what _route checks)."""
        cdef int p = q // self.NC, col = q % self.NC, d, nb
        cdef uint8_t tx = self.route_tx[q]
        if self.rq[q].count == 0 or self.rq[q].head_ready > t:
            return False
        for d in range(5):
            if tx & (1 << d) and self.link_free[p * 5 + d] > t:
                return False
        for d in range(4):
            if tx & (1 << d):
                nb = self._neighbour(p, d)
                if self.rq[nb * self.NC + col].count >= self.cap_link:
                    return False
        if tx & (1 << RAMP) and self.cq[q].count >= self.cap_ramp:
            return False
        return True

    cdef inline bint _yields(self, int q, int p, int col, uint8_t tx, double t) except -1:
        """Round-robin: whether queue q (free to go at t) leaves a port it shares to a
        colour whose turn comes first after the port's last user and which could go too
        (and has not given its turn this cycle); that colour is woken for this cycle."""
        cdef int d, c2, q2, last, mine
        cdef uint8_t now = <uint8_t> (self.now % 255 + 1)
        for d in range(5):
            if not (tx & (1 << d)) or self.link_users[p * 5 + d] < 2:
                continue
            last = self.link_last[p * 5 + d]
            mine = (col - last - 1 + 2 * self.NC) % self.NC
            for c2 in range(self.NC):
                if c2 == col or not (self.route_tx[p * self.NC + c2] & (1 << d)):
                    continue
                if (c2 - last - 1 + 2 * self.NC) % self.NC < mine:
                    q2 = p * self.NC + c2
                    if self.rq[q2].gave != now and self._free(q2, p, t):
                        self._wake(q2, t)
                        return True
        return False

    cdef inline bint _free(self, int q, int p, double t) noexcept nogil:
        """Whether queue q could go at t and no colour whose turn comes before q's on one of
        q's shared ports could go too: q then takes its ports this cycle, so yielding to
        it makes progress (two colours sharing two ports, each first on one, would
        otherwise yield to each other for ever)."""
        cdef int d, c3, last, mine, col = q % self.NC
        cdef uint8_t tx = self.route_tx[q]
        if not self._can_go(q, t):
            return False
        for d in range(5):
            if not (tx & (1 << d)) or self.link_users[p * 5 + d] < 2:
                continue
            last = self.link_last[p * 5 + d]
            mine = (col - last - 1 + 2 * self.NC) % self.NC
            for c3 in range(self.NC):
                if c3 == col or not (self.route_tx[p * self.NC + c3] & (1 << d)):
                    continue
                if (c3 - last - 1 + 2 * self.NC) % self.NC < mine and \
                        self._can_go(p * self.NC + c3, t):
                    return False
        return True

    cdef int _window(self, double t) noexcept nogil:
        """The trace window of cycle t, halving the resolution until it fits."""
        cdef Py_ssize_t i, j
        while t >= self.trace_window * TRACE_WINDOWS:
            for i in range(self.trace_links.shape[0]):
                for j in range(TRACE_WINDOWS // 2):
                    self.trace_links[i, j] = self.trace_links[i, 2 * j] + self.trace_links[i, 2 * j + 1]
                for j in range(TRACE_WINDOWS // 2, TRACE_WINDOWS):
                    self.trace_links[i, j] = 0
            for i in range(self.trace_busy.shape[0]):
                for j in range(TRACE_WINDOWS // 2):
                    self.trace_busy[i, j] = self.trace_busy[i, 2 * j] + self.trace_busy[i, 2 * j + 1]
                for j in range(TRACE_WINDOWS // 2, TRACE_WINDOWS):
                    self.trace_busy[i, j] = 0.0
            self.trace_window *= 2
        return <int> (t / self.trace_window)

    cdef inline void _count(self, int p, int slot, double t) noexcept nogil:
        self.link_count[p * 6 + slot] += 1
        self.n_events += 1
        if self.tracing:
            self.trace_links[p * 6 + slot, self._window(t)] += 1

    cdef inline int _cq_pop(self, int q, double t) except -1:
        self._dequeue(self.cq, self.cq_slot, q)
        if self.cq[q].wait:
            self.cq[q].wait = 0
            self._wake(q, t)
        return 0

    # -- edge injector ------------------------------------------------------------------
    cdef int _inject(self, int c, double t) except -1:
        cdef int64_t pos = self.inj_pos[c]
        cdef int q = c * self.NC + self.x_colour
        if pos >= self.item_ptr[c + 1] - self.item_ptr[c]:
            return 0
        if self.inj_next[c] > t:
            self._wake(self.a_inj + c, self.inj_next[c])
            return 0
        if self.rq[q].count >= self.cap_edge:
            self.rq[q].wait = 1
            return 0
        pos += self.item_ptr[c]
        self._rq_push(q, t + self.hop, self.item_idx[pos], self.item_val[pos], 0.0)
        self.edge_count += 1
        self.n_events += 1
        self.inj_pos[c] += 1
        # fractional intervals keep their average rate on whole cycles
        self.inj_next[c] = (self.inj_next[c] if self.inj_next[c] > t - 1 else t) + self.inj_dt[c]
        self._wake(self.a_inj + c, self.inj_next[c])
        return 0

    # -- main thread: data tasks ---------------------------------------------------------
    cdef inline int64_t _acc_base(self, int p, int n) noexcept nogil:
        """Where PE p's accumulator of round n starts."""
        return self.pe[p].acc_off + (n & (self.nbuf - 1)) * <int64_t> self.pe[p].acc_len

    cdef inline int64_t _first_at(self, int64_t lo, int64_t end, int64_t i,
                                  int32_t k) noexcept nogil:
        """The first entry of column k or later in the sorted nz_k[lo:end]. A round's
        stream meets a PE's columns in increasing order, so the search starts at i (where
        the PE's last task stopped) when the entry before it is before column k, and steps
        over the few entries of the columns the stream skipped; a far column, or a new
        round, is bisected."""
        cdef int64_t a = lo, b = end, mid
        if i > lo and self.nz_k[i - 1] < k:
            a = i
            while a < end and a < i + CUR_SCAN and self.nz_k[a] < k:
                a += 1
            if a == end or self.nz_k[a] >= k:
                b = a
        while a < b:
            mid = (a + b) >> 1
            if self.nz_k[mid] < k:
                a = mid + 1
            else:
                b = mid
        return a

    cdef double _axpy(self, int p, int32_t k, double x, double* acc) noexcept nogil:
        """acc += x * (the operand's row k in this PE's block); returns the task's cycles.
        WS with acc NULL: the sums are left to _replay, the task only finds (and counts)
        its weights."""
        cdef int lr = p // self.C, c
        cdef int64_t lo = self.blk_lo[lr], hi = self.blk_hi[lr], a, b, i, end, n
        if self.mode == MODE_AS:
            for i in range(hi - lo):
                acc[i] += x * self.Xd[k, lo + i]
            self.macs += hi - lo
            return self.task + self.setup + ceil((hi - lo) / self.fmac)
        if acc == NULL:                 # the sums wait: only the price is needed here
            if not self.pe[p].compressed:
                self.macs += hi - lo
                return self.task + self.setup + ceil((hi - lo) / self.fmac)
            if self.cnt_w > 0:
                c = p % self.C
                i = k - self.col_lo[c]
                n = self.nz_cnt[p * self.cnt_w + i] if 0 <= i < self.col_lo[c + 1] - self.col_lo[c] else 0
                self.macs += n
                return self.task + self.scalar * n
        a = self.pe[p].nz_lo
        end = a + self.pe[p].nz_n
        a = self._first_at(a, end, a + self.pe[p].nz_cur, k)
        b = a
        if acc != NULL:
            while b < end and self.nz_k[b] == k:
                acc[self.nz_r[b]] += x * self.nz_v[b]
                b += 1
        else:
            while b < end and self.nz_k[b] == k:
                b += 1
        self.pe[p].nz_cur = <int32_t> (b - self.pe[p].nz_lo)
        if self.pe[p].compressed:
            self.macs += b - a
            return self.task + self.scalar * (b - a)
        self.macs += hi - lo
        return self.task + self.setup + ceil((hi - lo) / self.fmac)

    cdef void _replay(self, int p, int n, int64_t stop) noexcept nogil:
        """WS: add the data tasks PE p's main thread ran in round n, up to item ``stop`` of
        its column's stream (the round's items end there), into the round's accumulator,
        in the order they ran: the same products summed in the same order as when each
        task adds at once, but over the PE's lists in turn rather than one miss a task."""
        cdef int64_t first = self.item_ptr[p % self.C], start = stop, pos, a, lo, end, cur
        cdef int32_t k
        cdef double x
        cdef double* acc = &self.acc[self._acc_base(p, n)]
        while start > first and self.item_idx[start - 1] != EOS:
            start -= 1
        lo = self.pe[p].nz_lo
        end = lo + self.pe[p].nz_n
        cur = lo
        for pos in range(start, stop):
            k = self.item_idx[pos]
            if k < 0:                   # an index wavelet
                continue
            x = self.item_val[pos]
            a = self._first_at(lo, end, cur, k)
            while a < end and self.nz_k[a] == k:
                acc[self.nz_r[a]] += x * self.nz_v[a]
                a += 1
            cur = a

    cdef inline void _took(self, int p, int64_t s) noexcept nogil:
        """WS: PE p's main thread takes the wavelet in slot s. Its tasks' sums wait for
        _replay while the wavelets it takes are its column's stream, item by item (as the
        routes make them); from a wavelet that is not, it adds what waited and then adds
        each task as it runs."""
        cdef int64_t pos = self.pe[p].item_pos
        cdef int c = p % self.C
        if self.pe[p].direct:
            return
        if pos < self.item_ptr[c + 1] and self.item_idx[pos] == self.cq_slot[s].idx and \
                memcmp(&self.item_val[pos], &self.cq_slot[s].v0, sizeof(double)) == 0:
            self.pe[p].item_pos = <int32_t> (pos + 1)
            return
        self._replay(p, self.pe[p].main_round, pos)
        self.pe[p].direct = 1

    cdef int _main(self, int p, double t) except -1:
        cdef int q = p * self.NC + self.x_colour
        cdef int64_t s
        cdef int32_t idx, n
        cdef double cost
        if self.pe[p].main_end > t:
            self._wake(self.a_main + p, self.pe[p].main_end)
            return 0
        if self.pe[p].eos_pending:
            self.pe[p].eos_pending = 0
            if self.mode == MODE_WS and not self.pe[p].direct:
                self._replay(p, self.pe[p].main_round, self.pe[p].item_pos - 1)
            self.pe[p].acc_ready = self.pe[p].main_round
            if self.tracing:
                self.trace_ready[p, self.pe[p].main_round] = t
            self.pe[p].main_round += 1
            self._wake(self.a_red + p, t)
            self.pe[p].main_end = t
        while True:
            if self.pe[p].main_round >= self.rounds or self.cq[q].count == 0:
                return 0
            if self.cq[q].head_ready > t:
                self._wake(self.a_main + p, self.cq[q].head_ready)
                return 0
            s = <int64_t> q * self.S + self.cq[q].head
            idx = self.cq_slot[s].idx
            if idx == INDEX_HALF:
                if self.mode == MODE_WS:
                    self._took(p, s)
                self._cq_pop(q, t)
                continue
            n = self.pe[p].main_round
            if n > self.pe[p].red_round + 1:       # both accumulators still being reduced
                if self.pe[p].main_buf_since < 0:
                    self.pe[p].main_buf_since = t
                return 0
            if self.pe[p].main_buf_since >= 0:
                self.pe[p].backpressure += t - self.pe[p].main_buf_since
                self.pe[p].main_buf_since = -1.0
            else:
                self.pe[p].wait_data += t - self.pe[p].main_end
            if self.mode == MODE_WS:
                self._took(p, s)
            if idx == EOS:                      # the round's sums are done
                cost = self.task
                self.pe[p].eos_pending = 1
            else:
                cost = self._axpy(p, idx, self.cq_slot[s].v0,
                                  &self.acc[self._acc_base(p, n)]
                                  if self.mode == MODE_AS or self.pe[p].direct else NULL)
                self.tasks += 1
            self._cq_pop(q, t)
            self.pe[p].busy += cost
            if self.tracing:
                self.trace_busy[p, self._window(t)] += cost
            self.pe[p].main_end = t + cost
            self._wake(self.a_main + p, t + cost)
            return 0

    # -- reducer ----------------------------------------------------------------------
    cdef int _red(self, int p, double t) except -1:
        cdef int n, ci, nch, col, cq, sq, j, L, e, lr = p // self.C
        cdef int64_t s, base, y0
        cdef bint stream
        cdef double v0, v1, send_lat
        while True:
            if self.pe[p].red_end > t:
                self._wake(self.a_red + p, self.pe[p].red_end)
                return 0
            n = self.pe[p].red_round
            if n >= self.rounds or self.pe[p].acc_ready < n:
                return 0
            L = (self.pe[p].acc_len + self.vpw - 1) // self.vpw
            base = self._acc_base(p, n)
            ci = self.pe[p].red_ci
            nch = <int> (self.pe[p].child_n)
            sq = p * self.NC + self.pe[p].send_col if self.pe[p].send_col != NO_COLOUR else -1
            if ci < nch and L > 0:
                col = self.child_col[self.pe[p].child_lo + ci]
                cq = p * self.NC + col
                if self.cq[cq].count == 0:
                    return 0
                if self.cq[cq].head_ready > t:
                    self._wake(self.a_red + p, self.cq[cq].head_ready)
                    return 0
                s = <int64_t> cq * self.S + self.cq[cq].head
                stream = ci == nch - 1 and sq >= 0 and not self.store_fwd
                if stream and self.rq[sq].count >= self.cap_push:
                    self.rq[sq].wait = 1
                    if self.pe[p].red_since < 0:
                        self.pe[p].red_since = t
                    return 0
                self._red_unblock(p, t)
                j = self.pe[p].red_j
                v0, v1 = self.cq_slot[s].v0, self.cq_slot[s].v1
                e = j * self.vpw
                self.acc[base + e] += v0
                if self.vpw == 2 and e + 1 < self.pe[p].acc_len:
                    self.acc[base + e + 1] += v1
                self._cq_pop(cq, t)
                if stream:
                    v1 = self.acc[base + e + 1] if self.vpw == 2 and e + 1 < self.pe[p].acc_len else 0.0
                    self._rq_push(sq, t + self.lat + self.ramp, j, self.acc[base + e], v1)
                    self._count(p, RAMP_DOWN, t)
                self.pe[p].red_j = j + 1
                if j + 1 == L:
                    self.pe[p].red_j = 0
                    self.pe[p].red_ci = ci + 1
                self.pe[p].red_busy += 1.0
                self.pe[p].red_end = t + 1.0
                continue
            if sq >= 0 and (nch == 0 or self.store_fwd) and self.pe[p].red_j < L:
                if self.rq[sq].count >= self.cap_push:
                    self.rq[sq].wait = 1
                    if self.pe[p].red_since < 0:
                        self.pe[p].red_since = t
                    return 0
                self._red_unblock(p, t)
                j = self.pe[p].red_j
                e = j * self.vpw
                v1 = self.acc[base + e + 1] if self.vpw == 2 and e + 1 < self.pe[p].acc_len else 0.0
                # a send of a stored vector is launched by a task that sets up a DSD; a
                # relay turns the stored message round in the stage latency
                send_lat = (self.task + self.setup if nch == 0 else self.lat) if j == 0 else self.lat
                self._rq_push(sq, t + send_lat + self.ramp, j, self.acc[base + e], v1)
                self._count(p, RAMP_DOWN, t)
                self.pe[p].red_j = j + 1
                self.pe[p].red_busy += 1.0
                self.pe[p].red_end = t + 1.0 + (send_lat - self.lat if j == 0 else 0.0)
                continue
            # the round is complete: the root writes its rows of the result, in a task
            # that sees the end of the message
            if sq < 0:
                y0 = self.out_lo[lr] * self.y_si + <int64_t> n * self.y_sn
                for e in range(self.pe[p].acc_len):
                    self.Y[y0 + e * self.y_si] = self.acc[base + e]
                self.pe[p].red_end = t + self.task
                self.pe[p].red_busy += self.task
                if t + self.task > self.t_done:
                    self.t_done = t + self.task
            if n + self.nbuf < self.rounds:     # the buffer serves round n + nbuf
                for e in range(self.pe[p].acc_len):
                    self.acc[base + e] = 0.0
            if self.tracing:
                self.trace_done[p, n] = dmax(t, self.pe[p].red_end)
            self.pe[p].red_round = n + 1
            self.pe[p].red_ci = 0
            self.pe[p].red_j = 0
            if self.pe[p].main_buf_since >= 0:
                self._wake(self.a_main + p, t)

    cdef inline int _red_unblock(self, int p, double t) noexcept nogil:
        if self.pe[p].red_since >= 0:
            self.pe[p].backpressure += t - self.pe[p].red_since
            self.pe[p].red_since = -1.0
        return 0

    # -- the loop -------------------------------------------------------------------------
    cdef inline void _prefetch2(self, int a) noexcept nogil:
        """Second stage, once what _prefetch asked for has arrived: a queue's head slot,
        the links it may use and, when its head is due, the link counters and the queues
        it sends into; a main thread's head slot and the weights at its cursor."""
        cdef int p, q, d, nb, col
        cdef uint8_t tx
        if a < self.a_main:
            if self.rq[a].count > 0:
                p = a // self.NC
                wsk_prefetch(&self.rq_slot[<int64_t> a * self.S + self.rq[a].head])
                wsk_prefetch(&self.link_free[p * 5])
                if self.rq[a].head_ready <= <double> self.now:
                    wsk_prefetch(&self.link_count[p * 6])
                    wsk_prefetch(&self.link_count[p * 6 + 5])
                    tx = self.route_tx[a]
                    col = a - p * self.NC
                    for d in range(4):
                        if tx & (1 << d):
                            nb = self._neighbour(p, d)
                            if nb >= 0:
                                wsk_prefetch(&self.rq[nb * self.NC + col])
                    if tx & (1 << RAMP):
                        wsk_prefetch(&self.cq[a])
        elif a < self.a_red:
            p = a - self.a_main
            q = p * self.NC + self.x_colour
            if self.cq[q].count > 0:
                wsk_prefetch(&self.cq_slot[<int64_t> q * self.S + self.cq[q].head])
                if self.mode == MODE_WS and self.pe[p].compressed:
                    if self.cnt_w > 0:          # its block's column counts
                        wsk_prefetch(&self.nz_cnt[p * self.cnt_w])
                        wsk_prefetch(&self.nz_cnt[p * self.cnt_w + self.cnt_w - 1])
                    else:                       # the columns at its cursor
                        wsk_prefetch(&self.nz_k[self.pe[p].nz_lo + self.pe[p].nz_cur])

    cdef inline void _prefetch(self, int a) noexcept nogil:
        """Start loading what agent a reads first (a hint: it changes no result)."""
        cdef int p
        if a < self.a_main:
            wsk_prefetch(&self.rq[a])
        elif a < self.a_red:
            p = a - self.a_main
            wsk_prefetch(&self.pe[p])
            wsk_prefetch(&self.pe[p].red_end)   # its block's and accumulators' offsets
            wsk_prefetch(&self.cq[p * self.NC + self.x_colour])
        else:
            wsk_prefetch(&self.sched[a - self.a_red])
        if self.a_red <= a < self.a_inj:
            p = a - self.a_red
            wsk_prefetch(&self.pe[p])
            wsk_prefetch(&self.pe[p].red_end)

    def run(self, int64_t max_events=-1, progress=None, int64_t every=1 << 20):
        """Run to completion; returns the cycle at which the last result was written.
        ``progress(events)`` (optional) is called with the wavelet-link events so far,
        about every ``every`` events, and once at the end."""
        cdef Event e
        cdef int a, p, b
        cdef int64_t i, sorted_to
        cdef int64_t next_report = every if progress is not None else -1
        cdef double t
        cdef double* sp
        cdef int NQ = self.P * self.NC
        if self.mode != MODE_NONE and self.item_ptr.shape[0] != self.C + 1:
            raise ValueError("run: the streams are not set (set_streams)")
        if self.mode == MODE_WS:                 # each PE takes its column's stream
            for p in range(self.P):
                self.pe[p].item_pos = <int32_t> self.item_ptr[p % self.C]
                self.pe[p].direct = not (self.replay and self.defer)
        if self.mode == MODE_NONE:
            for p in range(self.P):
                self._wake(self.a_red + p, 0.0)
        else:
            for p in range(self.C):
                self._wake(self.a_inj + p, 0.0)
        while True:
            if self.in_window == 0:                 # jump over idle cycles to the heap
                if self.heap_n == 0:
                    break
                self.now = <int64_t> self.heap[0].t
            while self.heap_n > 0 and self.heap[0].t < self.now + WINDOW:
                e = self._pop()
                self._bucket_add(<int64_t> e.t, e.agent)
            b = self.now % WINDOW
            i = 0
            sorted_to = 0
            while i < self.bucket_n[b]:             # wakes at this cycle append here
                if i == sorted_to:                  # agent order: neighbouring records
                    self._sort_agents(self.bucket[b] + i, self.bucket_n[b] - i)
                    sorted_to = self.bucket_n[b]
                if i + AHEAD < sorted_to:           # the records of the agents due next
                    self._prefetch(self.bucket[b][i + AHEAD])
                if i + AHEAD // 2 < sorted_to:
                    self._prefetch2(self.bucket[b][i + AHEAD // 2])
                a = self.bucket[b][i]
                i += 1
                sp = self._sched(a)
                if sp[0] != self.now:
                    continue                        # superseded by an earlier wake
                sp[0] = INFINITY
                t = <double> self.now
                if self.logging:
                    self.visit_t.append(self.now)
                    self.visit_a.append(a)
                if a < NQ:
                    self._route(a, t)
                elif a < self.a_red:
                    self._main(a - self.a_main, t)
                elif a < self.a_inj:
                    self._red(a - self.a_red, t)
                else:
                    self._inject(a - self.a_inj, t)
            self.in_window -= self.bucket_n[b]
            self.bucket_n[b] = 0
            if self.bucket[b] != NULL:          # its buffer serves the next bucket to grow
                self.spare[self.spare_n] = self.bucket[b]
                self.spare_cap[self.spare_n] = self.bucket_cap[b]
                self.spare_n += 1
                self.bucket[b] = NULL
                self.bucket_cap[b] = 0
            self.now += 1
            if 0 <= next_report <= self.n_events:
                progress(self.n_events)
                next_report = self.n_events + every
        if progress is not None:
            progress(self.n_events)
        return self.t_done

    def calendar_buffers(self):
        """(buffers, bytes) the calendar's buckets hold, their spares included."""
        cdef int b
        cdef int64_t n = 0, nbytes = 0
        for b in range(WINDOW):
            if self.bucket[b] != NULL:
                n += 1
                nbytes += self.bucket_cap[b] * sizeof(int32_t)
        for b in range(self.spare_n):
            nbytes += self.spare_cap[b] * sizeof(int32_t)
        return int(n + self.spare_n), int(nbytes)

    def log_visits(self):
        """Record each agent's run in the next ``run`` (small runs: a Python list)."""
        self.logging = True
        self.visit_t, self.visit_a = [], []

    def visits(self):
        """(cycles, agents) of the runs recorded, in the order they ran, and the first
        agent of each kind: (main threads, reducers, injectors), the routers before them."""
        return (np.array(self.visit_t or [], np.int64), np.array(self.visit_a or [], np.int64),
                (self.a_main, self.a_red, self.a_inj))

    cdef _pe_field(self, int which):
        """An R x C array of one of the PEs' figures."""
        out = np.empty(self.P)
        cdef double[::1] o = out
        cdef int p
        for p in range(self.P):
            o[p] = (self.pe[p].busy if which == 0 else self.pe[p].red_busy if which == 1
                    else self.pe[p].wait_data if which == 2 else self.pe[p].backpressure)
        return out.reshape(self.R, self.C)

    def direct_pes(self):
        """How many PEs' tasks added at once (WS: their wavelets were not their column's
        stream, or replay is off)."""
        return sum(int(self.pe[p].direct) for p in range(self.P))

    def check_drained(self):
        """(rounds every reducer finished, the smallest) — a deadlock shows here."""
        rr = np.array([self.pe[p].red_round for p in range(self.P)], np.int32)
        return int(rr.min(initial=self.rounds)), self.rounds

    def stats(self):
        return {
            "link_count": np.asarray(self.link_count).reshape(self.R, self.C, 6).copy(),
            "edge_wavelets": int(self.edge_count),
            "busy": self._pe_field(0),
            "reducer_busy": self._pe_field(1),
            "wait_data": self._pe_field(2),
            "backpressure": self._pe_field(3),
            "macs": int(self.macs),
            "tasks": int(self.tasks),
            "trace": {"sums_ready": np.asarray(self.trace_ready).reshape(self.R, self.C, -1).copy(),
                      "reduced": np.asarray(self.trace_done).reshape(self.R, self.C, -1).copy(),
                      "window_cycles": self.trace_window,
                      "links": np.asarray(self.trace_links).reshape(self.R, self.C, 6, -1).copy(),
                      "busy": np.asarray(self.trace_busy).reshape(self.R, self.C, -1).copy()}
            if self.tracing else None,
        }
