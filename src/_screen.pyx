# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Weight-stationary's cost, in single passes instead of NumPy temporaries: one training
step's input stream into a region whose blocks are all dense (``dense_stream``, for
wafer/analytic.py ``dense_screen_cycles``); the placer's summed-area tables and its price
of a candidate's format choice (``summed_area_fill``, ``ws_screen_columns``); the exact
model's work per PE and sample (``ws_block_work``).

Each float is the NumPy expression's: one rounded operation at a time, in its order (the
extension is built with -ffp-contract=off, so no multiply-add is fused).
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport INFINITY, ceil, fabs
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc

from _chain cimport (chain_columns, chain_exact, chain_rounds, check_chain_args, dmax,
                    whole_number)
from _step_init cimport (XBytes, bytes_2d, check_step_init, one_chain, py_max, py_min,
                        ramp_floor_L, with_push)
from _stream cimport (StepChain, check_wpv, wsk_chain_rows, wsk_column_sums,
                     wsk_column_sums_avx512, wsk_dense_chain,
                     wsk_dense_chain_avx512, wsk_dense_samples, wsk_dense_samples_avx512,
                     wsk_stream_avx512_runs, wsk_x_column, wsk_x_column_avx512, wsk_x_kmajor)


cnp.import_array()

cdef bint _AVX512_RUNS = wsk_stream_avx512_runs()
cdef bint _use_avx512 = _AVX512_RUNS


def use_simd_path(path):
    """Run :func:`dense_stream`'s passes (its counts, its per-sample figures and its chain)
    and :func:`any_zero`'s scan on ``path``: "avx512" (8 lanes, where this CPU runs it;
    else the baseline) or "baseline"/"avx2" (the baseline build); the same figures either
    way. Returns the path in use. WSEKERN_SIMD sets it at import (wsekern/simd_path.py);
    tests call it to check each."""
    global _use_avx512
    if path not in ("avx512", "avx2", "baseline"):
        raise ValueError(f"path must be 'avx512', 'avx2' or 'baseline'; received {path!r}")
    _use_avx512 = path == "avx512" and _AVX512_RUNS
    return "avx512" if _use_avx512 else "baseline"


cdef int _check_bounds(const long[:] k_b, Py_ssize_t K) except -1:
    """dense_stream's check of the C + 1 bounds ``k_b`` on X's K rows."""
    cdef Py_ssize_t C = k_b.shape[0] - 1, c
    if C < 0 or (C > 0 and (k_b[0] < 0 or k_b[C] > K)):
        raise ValueError(f"k_b must be {C + 1} bounds within 0..{K}; received "
                         f"{np.asarray(k_b)!r}")
    for c in range(C):
        if k_b[c] > k_b[c + 1]:
            raise ValueError(f"k_b must be nondecreasing; received {np.asarray(k_b)!r}")
    return 0


cdef int _dense_run(const unsigned char* x, Py_ssize_t K, Py_ssize_t N, Py_ssize_t x_s0,
                    Py_ssize_t x_s1, const char* k_b, Py_ssize_t k_st, Py_ssize_t C,
                    double tmax, double eos, long wpv, double dt, double fill, double* work,
                    double* first, double* last, int64_t* a_max_out,
                    int64_t* v_max_out, StepChain* ch=NULL,
                    double* done_out=NULL, int64_t rampL=0) noexcept nogil:
    """dense_stream's passes over X (K x N at ``x``, strides ``x_s0``, ``x_s1``) for the C
    + 1 bounds at ``k_b`` (``k_st`` bytes apart): the samples-major (N x C) work, first and
    last and the largest column sums of a and v; -1 where its scratch cannot be had.
    With ``ch`` (a kept step's chain; ``ch.exact`` is filled here, from the sums), each
    sample's row goes to the chain at once (src/wsk_step_chain.h) instead: work, first
    and last are not read, and the chain's completion goes to ``done_out``. ``rampL``:
    the ramp floor's sums a round (src/wsk_stream.h; 0: none)."""
    cdef Py_ssize_t c
    cdef int64_t a_max = 0, v_max = 0
    # scratch, each value written before it is read: per column its sums of v and of a,
    # and its a per sample (C x N); X K-major when it is not already
    cdef Py_ssize_t copy = 0 if x_s1 == 1 and x_s0 == N else K * N
    # with the chain: two samples' rows (6 x C) and its own scratch (4 x C, the rounds
    # of its history it reads back, rows x C, and the counts sample by sample, N x C)
    cdef Py_ssize_t rows = wsk_chain_rows(N, ch.Lg, C, ch.cushion) if ch != NULL else 0
    cdef Py_ssize_t fused = 10 * C + rows * C + N * C if ch != NULL else 0
    cdef int64_t* V = <int64_t*> malloc(8 * (2 * C + C * N + fused) + copy + 8)
    if V == NULL:
        return -1
    cdef int64_t* A_sum = V + C
    cdef int64_t* a_cn = A_sum + C
    cdef double* row = <double*> (a_cn + C * N)
    cdef uint8_t* xs = <uint8_t*> (row + fused)
    cdef double done = 0.0
    cdef const uint8_t* xt = NULL
    cdef long k0, k1
    if K and N:
        xt = wsk_x_kmajor(x, K, N, x_s0, x_s1, xs)
    if N:                   # every column's row (K = 0: no k, each row 0)
        for c in range(C):
            k0 = (<const long*> (k_b + c * k_st))[0]
            k1 = (<const long*> (k_b + (c + 1) * k_st))[0]
            if _use_avx512:
                wsk_x_column_avx512(xt, k0, k1, N, 0, a_cn + c * N, NULL)
            else:
                wsk_x_column(xt, k0, k1, N, 0, a_cn + c * N, NULL)
    if ch != NULL:
        # the largest column sums of a and of v, known before the chain: its bound
        if N and _use_avx512:
            wsk_column_sums_avx512(N, C, a_cn, wpv, &a_max, &v_max)
        elif N:
            wsk_column_sums(N, C, a_cn, wpv, &a_max, &v_max)
        ch.exact = chain_exact(N, C, _exact_inputs(K, a_max, v_max, tmax, eos, dt, fill),
                               0.0, ch.Lg, ch.hop, ch.ramp, ch.lat, ch.launch, ch.task, dt)
    # sample after sample across the columns (each column's samples in order, so the
    # cumulative sums are the same)
    if N and C and ch != NULL and _use_avx512:
        wsk_dense_chain_avx512(N, C, a_cn, tmax, eos, wpv, dt, fill, rampL, V, A_sum, row,
                               ch.Lg,
                               ch.hop, ch.ramp, ch.lat, ch.launch, ch.task, ch.cushion,
                               ch.push, row + 6 * C, rows, ch.exact, &done)
    elif N and C and ch != NULL:
        wsk_dense_chain(N, C, a_cn, tmax, eos, wpv, dt, fill, rampL, V, A_sum, row, ch.Lg,
                        ch.hop,
                        ch.ramp, ch.lat, ch.launch, ch.task, ch.cushion, ch.push,
                        row + 6 * C, rows, ch.exact, &done)
    elif N and C and _use_avx512:
        wsk_dense_samples_avx512(N, C, a_cn, tmax, eos, wpv, dt, fill, rampL, V, A_sum,
                                 work, first, last)
    elif N and C:
        wsk_dense_samples(N, C, a_cn, tmax, eos, wpv, dt, fill, rampL, V, A_sum,
                          work, first, last)
    for c in range(C if N and ch == NULL else 0):
        if A_sum[c] > a_max:
            a_max = A_sum[c]
        if V[c] > v_max:
            v_max = V[c]
    free(V)
    a_max_out[0], v_max_out[0] = a_max, v_max
    if done_out != NULL:
        done_out[0] = done
    return 0


cdef double _exact_inputs(Py_ssize_t K, int64_t a_max, int64_t v_max, double tmax,
                          double eos, double dt, double fill) noexcept nogil:
    # where tmax, eos, dt and fill are whole numbers, so are work (a * tmax + eos) and
    # first and last ((cum - v * dt) + fill, (cum - dt) + fill, cum = V * dt): bounded (a
    # sums X's bytes, up to 255 each, so 0 <= a <= min(255 K, a_max); 1 <= v <= V <= v_max),
    # the chain takes its exact scan (src/wsk_chain.h; the same floats)
    if whole_number(tmax) and whole_number(eos) and whole_number(dt) and whole_number(fill):
        return max(min(255.0 * <double> K, <double> a_max) * fabs(tmax) + fabs(eos),
                   2.0 * <double> v_max * fabs(dt) + fabs(fill))
    return -1.0


def dense_stream(const unsigned char[:, :] x_nz, const long[:] k_b, double tmax, double eos,
                 long wpv, double dt, double fill, pipeline=None):
    """The stream of X's nonzero pattern ``x_nz`` (K x N, 0/1, any strides) down the C
    PE columns whose rows of X are ``k_b[c]:k_b[c + 1]`` (C + 1 bounds, 0 <= ... <= K).

    With a[n, c] the nonzeros of sample n in column c and v = a * wpv + 1 its wavelets
    (the values, then an end-of-stream marker), returns (work, first, last, a_max, v_max):
    N x C float64 arrays ``a * tmax + eos``, ``(cumsum(v) * dt - v * dt) + fill`` and
    ``(cumsum(v) * dt - dt) + fill`` (cumulative over the samples), and the largest
    column sums over the batch of a and of v (ints). O(K * N + C * N).

    ``pipeline`` = (L, hop, ramp, lat, launch, task, cushion) adds a sixth figure: the
    columns' chain over the samples (src/_pipeline.pyx's grid_pipeline of work, first and
    last as one chain of C positions, ``L`` (one entry) wavelets per round, each link
    holding a wavelet ``dt`` cycles, grid_pipeline's ``dt``), run here on the arrays
    just made: the same recurrence (src/_chain.pxd), so the same float. An eighth entry
    ``push`` is grid_pipeline's (the first position's send queue; -1 without it), a
    ninth ``shared`` the ramp floor (:func:`_step_cost.ws_step_columns`' ninth: ``last``
    is at least ``((V + (n - 1) * L) * dt - dt) + fill`` past the first column).

    X is read K-major (src/wsk_stream.h), copied first where it is not laid out so; the
    per-sample figures go sample after sample across the columns (each column's samples
    in order), 8 columns wide on the AVX-512 path (:func:`use_simd_path`): the same
    figures on each path.
    """
    cdef Py_ssize_t K = x_nz.shape[0], N = x_nz.shape[1], C = k_b.shape[0] - 1
    _check_bounds(k_b, K)
    check_wpv("dense_stream", wpv, K, N)
    cdef int64_t rampL = 0
    if pipeline is not None:
        L_, hop, ramp, lat, launch, task, cushion, push, shared = with_push(pipeline)
        rampL = ramp_floor_L("dense_stream", shared, one_chain(L_), N, K, wpv)
    work_a = np.empty((N, C))
    first_a = np.empty((N, C))
    last_a = np.empty((N, C))
    cdef double[:, ::1] work = work_a
    cdef double[:, ::1] first = first_a
    cdef double[:, ::1] last = last_a
    cdef int64_t a_max = 0, v_max = 0
    cdef int rc
    with nogil:
        rc = _dense_run(&x_nz[0, 0], K, N, x_nz.strides[0], x_nz.strides[1],
                        <const char*> &k_b[0], k_b.strides[0], C, tmax, eos, wpv, dt, fill,
                        &work[0, 0], &first[0, 0], &last[0, 0], &a_max, &v_max, NULL,
                        NULL, rampL)
    if rc < 0:
        raise MemoryError(f"dense_stream: scratch for X's {K} x {N} pattern")
    if pipeline is None:
        return work_a, first_a, last_a, int(a_max), int(v_max)
    cdef double inputs = _exact_inputs(K, a_max, v_max, tmax, eos, dt, fill)
    # the chain 8 positions wide on the AVX-512 path (the same floats)
    cdef double done = chain_columns("dense_stream", L_, work, first, last, False, 0.0, hop,
                                     ramp, lat, launch, task, cushion, _use_avx512, inputs,
                                     dt, push)
    return work_a, first_a, last_a, int(a_max), int(v_max), float(done)


cdef class DenseStep:
    """:func:`dense_stream` with everything but X given once: ``DenseStep(K, k_b, tmax,
    eos, wpv, dt, fill, pipeline)`` takes its arguments after ``x_nz`` (the same, the same
    checks) with X's rows ``K`` and a ``pipeline``; ``step.run(x_nz)`` then gives
    dense_stream's ``(a_max, v_max, done)`` for a K x N X: the same passes and chain, so the
    same figures, without checking and taking ``k_b`` again every step. The step reads its
    own read-only copy of ``k_b`` (made once, here, after the check): the caller may free or
    write to its own afterwards."""
    cdef const long[:] k_b
    cdef const long[:] L
    cdef object keep
    cdef Py_ssize_t K
    cdef double tmax, eos, dt, fill, hop, ramp, lat, launch, task, cushion
    cdef long wpv, push
    cdef bint shared

    def __init__(self, Py_ssize_t K, const long[:] k_b, double tmax, double eos, long wpv,
                 double dt, double fill, pipeline=None):
        check_step_init("DenseStep", "dense_stream's", self.keep, pipeline, K)
        _check_bounds(k_b, K)
        L_, hop, ramp, lat, launch, task, cushion, push, shared = with_push(pipeline)
        cdef const long[:] L = one_chain(L_)
        # the fields replaced only once every check passed (a refused second __init__
        # leaves the step as it was), on copies the caller cannot write to: the bounds
        # checked above are the bounds the step reads
        kb = np.array(k_b, copy=True)
        kb.flags.writeable = False
        Lc = np.array(L, copy=True)
        Lc.flags.writeable = False
        self.k_b, self.K, self.L = kb, K, Lc
        self.keep = (kb, Lc)
        self.tmax, self.eos, self.wpv, self.dt, self.fill = tmax, eos, wpv, dt, fill
        self.hop, self.ramp, self.lat, self.launch = hop, ramp, lat, launch
        self.task, self.cushion, self.push, self.shared = task, cushion, push, shared

    def run(self, x_nz):
        """``(a_max, v_max, done)`` of dense_stream for X's pattern ``x_nz`` (K x N bytes,
        any strides)."""
        cdef int64_t a_max = 0, v_max = 0
        cdef double done = 0.0
        self._run(x_nz, &a_max, &v_max, &done)
        return int(a_max), int(v_max), float(done)

    def cycles_many(self, patterns, double task, double hop, long L, bint chained):
        """analytic.dense_screen_cycles' ``(cycles, lower bound)`` for each of
        ``patterns`` (X's, K x N bytes each, in order) as two float64 arrays, from
        :meth:`run`'s figures (its ``tmax`` and ``dt``, and ``task``, ``hop``, ``L``,
        ``chained`` as there), and a uint8 array: 1 where the ramp term could bind, a
        figure the caller takes from dense_screen_cycles instead (its pass over X). Each
        float is the one Python's expression gives there (max and min as Python's)."""
        cdef Py_ssize_t n = len(patterns), i, N
        est_a, low_a, ramp_a = np.empty(n), np.empty(n), np.zeros(n, np.uint8)
        cdef double[::1] est_o = est_a
        cdef double[::1] low_o = low_a
        cdef uint8_t[::1] ramp_o = ramp_a
        cdef int64_t a_max, v_max
        cdef double done, busy_max, lower
        for i in range(n):
            a_max = v_max = 0
            done = 0.0
            N = self._run(patterns[i], &a_max, &v_max, &done)
            busy_max = <double> a_max * self.tmax + <double> N * task
            lower = py_max(hop + busy_max, hop + <double> v_max * self.dt)
            lower = py_max(lower, <double> N * (<double> L + task) if chained else 0.0)
            lower = lower + task
            if chained and L > 0 and \
                    hop + <double> (v_max + N * L - 1) * self.dt + task > py_min(lower, done):
                ramp_o[i] = 1
            est_o[i], low_o[i] = done, py_min(lower, done)
        return est_a, low_a, ramp_a

    cdef Py_ssize_t _run(self, x_nz, int64_t* a_max, int64_t* v_max,
                         double* done) except -1:
        """:meth:`run`'s figures into ``a_max``, ``v_max``, ``done``; returns X's
        samples (N)."""
        # an ndarray of bytes read in place (src/_step_init.pxd), else through a typed view
        cdef const unsigned char[:, :] view
        cdef XBytes X
        if not bytes_2d(x_nz, &X):
            view = x_nz
            X.x, X.K, X.N = &view[0, 0], view.shape[0], view.shape[1]
            X.s0, X.s1 = view.strides[0], view.strides[1]
        cdef Py_ssize_t K = X.K, N = X.N, C = self.k_b.shape[0] - 1
        if K != self.K:
            raise ValueError(f"x_nz must have the step's {self.K} rows; received shape "
                             f"({K}, {N})")
        check_wpv("dense_stream", self.wpv, K, N)
        # chain_columns' checks, before the pass that now runs the chain
        check_chain_args("dense_stream", self.L, self.cushion)
        cdef int64_t rampL = ramp_floor_L("dense_stream", self.shared, self.L, N, K,
                                          self.wpv)
        # the chain of dense_stream's pipeline= (unshifted; its exact scan where
        # _exact_inputs shows it, as there; the send queue's serial rounds where push
        # binds, as there), each sample's row taken as made
        cdef StepChain ch
        ch.Lg, ch.fill, ch.hop, ch.ramp = self.L[0], 0.0, self.hop, self.ramp
        ch.lat, ch.launch, ch.task = self.lat, self.launch, self.task
        ch.cushion, ch.exact, ch.push = self.cushion, 0, self.push
        cdef int rc
        with nogil:
            rc = _dense_run(X.x, K, N, X.s0, X.s1,
                            <const char*> &self.k_b[0], self.k_b.strides[0], C, self.tmax,
                            self.eos, self.wpv, self.dt, self.fill, NULL, NULL, NULL,
                            a_max, v_max, &ch, done, rampL)
        if rc < 0:
            raise MemoryError(f"dense_stream: scratch for X's {K} x {N} pattern")
        return N


ctypedef fused table_t:
    int32_t
    int64_t


def summed_area_fill(table_t[:, ::1] T, const int64_t[::1] rows, const int64_t[::1] cols,
                     const int64_t[::1] values):
    """Fill the zeroed (M + 1) x (K + 1) ``T`` with T[i, j] = the sum of ``values`` at
    (row < i, col < j), in T's integer type, in one pass over the table: the two
    cumulative sums of NumPy's way, without their copies. Raises OverflowError, before
    writing, when a partial sum could leave T's integer type."""
    cdef Py_ssize_t M = T.shape[0] - 1, K = T.shape[1] - 1, n = rows.shape[0]
    cdef Py_ssize_t i, j
    cdef table_t run
    if cols.shape[0] != n or values.shape[0] != n:
        raise ValueError(f"rows, cols and values must have one length; received "
                         f"{n}, {cols.shape[0]}, {values.shape[0]}")
    if M < 0 or K < 0:
        raise ValueError("T must have at least one row and one column")
    cdef int64_t top = 2147483647 if table_t is int32_t else 9223372036854775807
    cdef int64_t pos = 0, neg = 0, v
    for i in range(n):
        if not (0 <= rows[i] < M and 0 <= cols[i] < K):
            raise ValueError(f"entry {i} at ({rows[i]}, {cols[i]}) lies outside {M}x{K}")
        # every entry of T is a partial sum: it lies within [neg, pos]
        v = values[i]
        if (v > 0 and pos > top - v) or (v < 0 and neg < -top - v):
            raise OverflowError(
                f"the values' partial sums reach beyond the table's {T.itemsize * 8}-bit "
                f"integers (at entry {i}); use an int64 table, or smaller values")
        if v > 0:
            pos += v
        else:
            neg += v
    with nogil:
        for i in range(n):
            T[rows[i] + 1, cols[i] + 1] += <table_t> values[i]
        for i in range(1, M + 1):
            run = 0
            for j in range(1, K + 1):
                run = run + T[i, j]
                T[i, j] = T[i - 1, j] + run


def ws_screen_columns(const table_t[:, ::1] nnz_table, const table_t[:, ::1] work_table,
                      const int64_t[::1] m_b, const int64_t[::1] k_b,
                      const int64_t[::1] A_c, const double[::1] t_dense, int64_t elem,
                      int64_t fifo, int64_t data_bytes, double task, double scalar,
                      bint counted=True):
    """Weight-stationary's format choice on the R x C blocks between bounds ``m_b`` and
    ``k_b`` (placement.weight_stationary), reduced to what the placer's screen reads of it,
    from the summed-area tables of W's nonzeros and of their scalar work (Operands.tables).

    Per block: dense (M_r K_c elem bytes, ``A_c t_dense[r]`` cycles over the batch) or
    compressed (nnz (elem + 2) + 2 (K_c + 1) bytes, ``A_c task + scalar * work``), the faster
    that fits beside the buffers (input FIFO, double-buffered accumulators, the reduction
    buffer east of column 0), else the smaller. Returns (tmax, cmax, any_comp, overflow):
    per column the largest ``t_dense`` of its dense blocks (-inf if none) and the largest
    batch time of its compressed blocks (0 if none), whether any block is compressed, and
    whether some PE's SRAM overflows. O(R * C); each float as NumPy's expression rounds it.
    ``counted`` False: each block taken as full (M_r K_c nonzeros) for its bytes, and
    ``nnz_table`` not read; the caller has checked that every block fits either way (the
    formats and the fit are then those of its true count).
    """
    cdef Py_ssize_t R = m_b.shape[0] - 1, C = k_b.shape[0] - 1
    cdef Py_ssize_t r, c, m0, m1, k0, k1
    cdef int64_t M_r, K_c, nnz, dense_bytes, comp_bytes, buf, room, chosen
    cdef double sw, comp_time, dense_time
    cdef bint dense_fits, comp_fits, use_comp, any_comp = False, overflow = False
    if R < 1 or C < 1 or A_c.shape[0] != C or t_dense.shape[0] != R:
        raise ValueError(f"expected R, C >= 1 bounds with A_c of C and t_dense of R values; "
                         f"received {R + 1} and {C + 1} bounds, {A_c.shape[0]} and "
                         f"{t_dense.shape[0]} values")
    if (m_b[0] < 0 or m_b[R] >= nnz_table.shape[0] or k_b[0] < 0
            or k_b[C] >= nnz_table.shape[1] or work_table.shape[0] != nnz_table.shape[0]
            or work_table.shape[1] != nnz_table.shape[1]):
        raise ValueError("bounds must lie within the tables, and the tables share a shape")
    for r in range(R):
        if m_b[r] > m_b[r + 1]:
            raise ValueError("m_b must be nondecreasing")
    for c in range(C):
        if k_b[c] > k_b[c + 1]:
            raise ValueError("k_b must be nondecreasing")
    tmax_a = np.full(C, -np.inf)
    cmax_a = np.zeros(C)
    cdef double[::1] tmax = tmax_a
    cdef double[::1] cmax = cmax_a
    # the room left beside the buffers of the fullest PE (placement._ws_static)
    room = 0
    for r in range(R):
        M_r = m_b[r + 1] - m_b[r]
        buf = fifo + 2 * M_r * elem + (M_r * elem if C > 1 else 0)
        if r == 0 or buf > room:
            room = buf
    room = data_bytes - room
    with nogil:
        for r in range(R):
            m0, m1 = m_b[r], m_b[r + 1]
            M_r = m1 - m0
            for c in range(C):
                k0, k1 = k_b[c], k_b[c + 1]
                K_c = k1 - k0
                if counted:
                    nnz = ((<int64_t> nnz_table[m1, k1] - <int64_t> nnz_table[m0, k1])
                           - <int64_t> nnz_table[m1, k0]) + <int64_t> nnz_table[m0, k0]
                else:
                    nnz = M_r * K_c
                sw = <double> (((<int64_t> work_table[m1, k1] - <int64_t> work_table[m0, k1])
                                - <int64_t> work_table[m1, k0]) + <int64_t> work_table[m0, k0])
                dense_bytes = M_r * K_c * elem
                comp_bytes = nnz * (elem + 2) + (K_c + 1) * 2
                dense_fits = dense_bytes <= room
                comp_fits = comp_bytes <= room
                comp_time = <double> A_c[c] * task + scalar * sw
                dense_time = <double> A_c[c] * t_dense[r]
                if dense_fits or comp_fits:
                    use_comp = comp_fits and (not dense_fits or comp_time < dense_time)
                else:
                    use_comp = comp_bytes < dense_bytes
                chosen = comp_bytes if use_comp else dense_bytes
                buf = fifo + 2 * M_r * elem + (M_r * elem if c > 0 else 0)
                if chosen + buf > data_bytes:
                    overflow = True
                if use_comp:
                    any_comp = True
                    if comp_time > cmax[c]:
                        cmax[c] = comp_time
                elif t_dense[r] > tmax[c]:
                    tmax[c] = t_dense[r]
    return tmax_a, cmax_a, bool(any_comp), bool(overflow)


cdef void _row_work(Py_ssize_t r, Py_ssize_t C, Py_ssize_t N, const double[::1] t_dense,
                    const int64_t[:, ::1] a_nc, const unsigned char[::1] comp,
                    const int64_t[::1] indptr, const int32_t[::1] indices,
                    const int32_t[::1] counts, const unsigned char[:, ::1] x_nz, double task,
                    float fscalar, double eos, int64_t[::1] visited, double[:, ::1] row,
                    double[:, ::1] work_nc) noexcept nogil:
    """PE row r's work per sample and column into ``row`` (N x C: a round's positions
    side by side, as the chain recurrence reads them), and work_nc's max over rows."""
    cdef Py_ssize_t b, j, n, k, c
    cdef int32_t cnt
    cdef double v, t = t_dense[r]
    for n in range(N):
        for c in range(C):
            row[n, c] = t * <double> a_nc[n, c] + eos       # dense; compressed ones below
    for c in range(C):
        b = r * C + c
        if not comp[b]:
            continue
        for n in range(N):
            visited[n] = 0
        for j in range(indptr[b], indptr[b + 1]):
            k = indices[j]
            cnt = counts[j]
            for n in range(N):
                visited[n] += cnt * x_nz[k, n]
        for n in range(N):
            row[n, c] = (<double> a_nc[n, c] * task
                         + <double> (fscalar * <float> visited[n])) + eos
    for n in range(N):
        for c in range(C):
            v = row[n, c]
            if r == 0 or v > work_nc[n, c]:
                work_nc[n, c] = v


def _check_block_work(Py_ssize_t R, Py_ssize_t C, Py_ssize_t N, const double[::1] t_dense,
                      const int64_t[:, ::1] a_cn, const unsigned char[::1] comp,
                      const int64_t[::1] indptr, const int32_t[::1] indices,
                      const int32_t[::1] counts, const unsigned char[:, ::1] x_nz,
                      double[:, ::1] work_cn):
    """The shapes and indices _row_work's unchecked loops assume."""
    cdef Py_ssize_t K = x_nz.shape[0], B = R * C, b, j
    cdef int64_t total
    if (t_dense.shape[0] != R or a_cn.shape[0] != C or a_cn.shape[1] != N
            or comp.shape[0] != B or indptr.shape[0] != B + 1 or x_nz.shape[1] != N
            or work_cn.shape[0] != C or work_cn.shape[1] != N):
        raise ValueError(f"shapes disagree: work {(R, C, N)}, t_dense "
                         f"{t_dense.shape[0]}, a_cn {a_cn.shape[0]}x{a_cn.shape[1]}, "
                         f"{comp.shape[0]} flags, {indptr.shape[0]} bounds, x_nz "
                         f"{K}x{x_nz.shape[1]}, work_cn {work_cn.shape[0]}x{work_cn.shape[1]}")
    total = indptr[B]
    if indptr[0] != 0 or total < 0 or indices.shape[0] < total or counts.shape[0] < total:
        raise ValueError("indptr must start at 0 and end within indices and counts")
    for b in range(B):
        if indptr[b] > indptr[b + 1]:
            raise ValueError("indptr must be nondecreasing")
    for j in range(total):
        if not 0 <= indices[j] < K:
            raise ValueError(f"column {indices[j]} lies outside 0..{K - 1}")


def ws_block_work(const double[::1] t_dense, const int64_t[:, ::1] a_cn,
                  const unsigned char[::1] comp, const int64_t[::1] indptr,
                  const int32_t[::1] indices, const int32_t[::1] counts,
                  const unsigned char[:, ::1] x_nz, double task, double scalar, double eos,
                  double[:, :, :] work, double[:, ::1] work_cn):
    """The exact weight-stationary model's work per PE and sample (analytic._ws_work), in
    one pass: ``work[r, c, n]`` (R x C x N, any strides) and its largest over the PE rows,
    ``work_cn[c, n]``.

    A dense block (``comp[r * C + c]`` 0) costs ``t_dense[r] * a_cn[c, n]``; a compressed
    one ``a_cn[c, n] * task + scalar * visited``, with visited its nonzeros whose activation
    x_nz[k, n] is nonzero: block b holds ``counts[j]`` nonzeros of W in column
    ``indices[j]`` for j in ``indptr[b]:indptr[b + 1]``. Then the end-of-stream task
    ``eos``. Each float as NumPy rounds it: the scalar product in float32 (visited counted
    by wsekern.spmm in float32, exact below 2**24), the rest in float64 one operation at
    a time. O(nnz * N + R * C * N).
    """
    cdef Py_ssize_t R = work.shape[0], C = work.shape[1], N = work.shape[2], n, r, c
    _check_block_work(R, C, N, t_dense, a_cn, comp, indptr, indices, counts, x_nz, work_cn)
    visited_a = np.zeros(N, np.int64)
    cdef int64_t[::1] visited = visited_a
    cdef int64_t[:, ::1] a_nc = np.ascontiguousarray(np.asarray(a_cn).T)
    row_a = np.empty((N, C))                 # one PE row's work, copied out in the order
    cdef double[:, ::1] row = row_a          # of work's memory (it may be positions-inner)
    cdef double[:, ::1] work_nc = np.empty((N, C))
    cdef bint positions_inner = work.strides[1] < work.strides[2]
    with nogil:
        for r in range(R):
            _row_work(r, C, N, t_dense, a_nc, comp, indptr, indices, counts, x_nz, task,
                      <float> scalar, eos, visited, row, work_nc)
            if positions_inner:
                for n in range(N):
                    for c in range(C):
                        work[r, c, n] = row[n, c]
            else:
                for c in range(C):
                    for n in range(N):
                        work[r, c, n] = row[n, c]
        if R:
            for c in range(C):
                for n in range(N):
                    work_cn[c, n] = work_nc[n, c]
    return work, work_cn


def ws_pipeline(const double[::1] t_dense, const int64_t[:, ::1] a_cn,
                const unsigned char[::1] comp, const int64_t[::1] indptr,
                const int32_t[::1] indices, const int32_t[::1] counts,
                const unsigned char[:, ::1] x_nz, double task, double scalar, double eos,
                const double[:, :] first, const double[:, :] last,
                const double[::1] fill, const long[::1] L, double hop, double ramp,
                double lat, double launch, double cushion, double[:, ::1] work_cn,
                double dt=1.0, long push=-1, const double[:, :] vcum=None):
    """:func:`ws_block_work` followed by _pipeline.grid_pipeline on its work (each PE row a
    chain, rounds arriving at ``first`` / ``last`` (C x N, any strides: samples-major, a
    transposed N x C array, reads fastest) plus ``fill[r]``), one PE row at a time, so the
    R x C x N work is never held: the same cycles, and work_cn. ``dt`` (1 / the link
    rate) and ``push`` (each row's first PE's send queue, wavelets) as in grid_pipeline.
    ``vcum`` (C x N, any strides: each column's running sum of its stream's wavelets):
    each row floors ``last`` past the first column by its ramp's load with its own
    ``L[r]`` (analytic._ramp_floor's floats: (vcum + max(0, n - 1) L) dt - dt), rows of
    more sums later than the rows' fewest would have them.
    O(nnz * N + R * C * N) time, O(C * N) memory."""
    cdef Py_ssize_t R = t_dense.shape[0], C = a_cn.shape[0], N = a_cn.shape[1], r, c, n
    _check_block_work(R, C, N, t_dense, a_cn, comp, indptr, indices, counts, x_nz, work_cn)
    if (first.shape[0] != C or first.shape[1] != N or last.shape[0] != C
            or last.shape[1] != N or fill.shape[0] != R or L.shape[0] != R):
        raise ValueError(f"first and last must be {C}x{N}, fill and L of {R}; received "
                         f"{first.shape[0]}x{first.shape[1]}, {last.shape[0]}x{last.shape[1]}, "
                         f"{fill.shape[0]} and {L.shape[0]}")
    cdef bint floored = vcum is not None
    if floored and (vcum.shape[0] != C or vcum.shape[1] != N):
        raise ValueError(f"vcum must be {C}x{N} as first and last; received "
                         f"{vcum.shape[0]}x{vcum.shape[1]}")
    check_chain_args("ws_pipeline", L, cushion)
    if not 0.0 < dt < float("inf"):
        raise ValueError(f"ws_pipeline: dt must be a number of cycles > 0 (1 / the link "
                         f"rate); received {dt}")
    cdef double done = 0.0
    if R == 0 or C == 0 or N == 0:
        return done
    visited_a = np.zeros(N, np.int64)
    cdef int64_t[::1] visited = visited_a
    cdef int64_t[:, ::1] a_nc = np.ascontiguousarray(np.asarray(a_cn).T)
    row_a = np.empty((N, C))                 # a round's positions side by side
    cdef double[:, ::1] row = row_a
    cdef double[:, ::1] work_nc = np.empty((N, C))
    cdef double[::1] scratch = np.zeros(5 * C + N * C)
    cdef double* E = &scratch[0]
    cdef Py_ssize_t f_c = first.strides[0], f_n = first.strides[1]
    cdef Py_ssize_t l_c = last.strides[0], l_n = last.strides[1]
    cdef const char* last_p = <const char*> &last[0, 0]
    cdef double[:, ::1] own                  # a row's own floored last, samples-major
    cdef double fl
    if floored:
        own = np.empty((N, C))
    with nogil:
        for r in range(R):
            _row_work(r, C, N, t_dense, a_nc, comp, indptr, indices, counts, x_nz, task,
                      <float> scalar, eos, visited, row, work_nc)
            if floored:
                for n in range(N):
                    own[n, 0] = last[0, n]
                    for c in range(1, C):
                        fl = last[c, n]
                        if L[r] > 0:
                            fl = dmax(fl, (vcum[c, n] + <double> (n - 1 if n > 1 else 0)
                                           * <double> L[r]) * dt - dt)
                        own[n, c] = fl
                last_p, l_c, l_n = <const char*> &own[0, 0], sizeof(double), C * sizeof(double)
            done = chain_rounds(<const char*> &row[0, 0], sizeof(double), C * sizeof(double),
                                <const char*> &first[0, 0], f_c, f_n,
                                last_p, l_c, l_n,
                                True, fill[r], L[r], C, N, hop, ramp, lat, launch, task,
                                cushion, done, E, E + C, E + 2 * C, E + 3 * C, E + 4 * C,
                                E + 5 * C, dt, push)
        for c in range(C):
            for n in range(N):
                work_cn[c, n] = work_nc[n, c]
    return done


cdef inline Py_ssize_t _widest(const int64_t[::1] b, Py_ssize_t start,
                               Py_ssize_t n) noexcept nogil:
    """The first i of the largest b[start + i + 1] - b[start + i], i < n (n >= 1)."""
    cdef Py_ssize_t i, best = 0
    for i in range(1, n):
        if b[start + i + 1] - b[start + i] > b[start + best + 1] - b[start + best]:
            best = i
    return best


def ws_screen_bounds(const table_t[:, ::1] work_table, const int64_t[::1] m_bounds,
                     const int64_t[::1] m_off, const int64_t[::1] k_bounds,
                     const int64_t[::1] k_off, const int64_t[::1] A, Py_ssize_t N,
                     double task, double setup, double fmacs, double scalar, double wpv,
                     double dt, double hop, double ramp, double lat, double vpw):
    """analytic._ws_screen_bound of every candidate (R, C) in one call: a float64 array,
    one row per row count and one column per column count, each entry the same float as
    the NumPy function's (the same operations in its order).

    Row count i's bounds of W's rows are ``m_bounds[m_off[i]:m_off[i + 1]]`` (R + 1
    values), column count j's of W's columns ``k_bounds[k_off[j]:k_off[j + 1]]`` (C + 1)
    and its activations per PE column ``A[k_off[j] - j:k_off[j + 1] - j - 1]`` (C);
    ``work_table`` is the summed-area table of the nonzeros' scalar work (Operands.tables).
    O(sum over candidates of R + C)."""
    cdef Py_ssize_t nR = m_off.shape[0] - 1, nC = k_off.shape[0] - 1
    cdef Py_ssize_t i, j, R, C, mo, ko, ao, r, c, q
    cdef int64_t m0, m1, k0, k1, M_max, s
    cdef double t_r, t_q, fill, w, w2, col_best, ends, best, L, delta, tail, sw
    if nR < 0 or nC < 0 or (nR > 0 and (m_off[0] != 0 or m_off[nR] != m_bounds.shape[0])) \
            or (nC > 0 and (k_off[0] != 0 or k_off[nC] != k_bounds.shape[0]
                            or A.shape[0] != k_bounds.shape[0] - nC)):
        raise ValueError("m_off and k_off must split m_bounds and k_bounds from 0 to their "
                         "ends, with one activation count per PE column in A")
    for i in range(nR):
        if m_off[i + 1] - m_off[i] < 2:
            raise ValueError(f"row count {i} has fewer than two bounds")
    for j in range(nC):
        if k_off[j + 1] - k_off[j] < 2:
            raise ValueError(f"column count {j} has fewer than two bounds")
    for q in range(m_bounds.shape[0]):
        if not 0 <= m_bounds[q] < work_table.shape[0]:
            raise ValueError(f"row bound {m_bounds[q]} lies outside the table")
    for q in range(k_bounds.shape[0]):
        if not 0 <= k_bounds[q] < work_table.shape[1]:
            raise ValueError(f"column bound {k_bounds[q]} lies outside the table")
    out_a = np.empty((nR, nC))
    cdef double[:, ::1] out = out_a
    delta = hop + 2 * ramp + lat
    with nogil:
        for i in range(nR):
            mo, R = m_off[i], m_off[i + 1] - m_off[i] - 1
            r = _widest(m_bounds, mo, R)
            m0, m1 = m_bounds[mo + r], m_bounds[mo + r + 1]
            M_max = m1 - m0
            t_r = task + setup + ceil(<double> M_max / fmacs)
            fill = <double> R * hop + ramp
            for j in range(nC):
                ko, C = k_off[j], k_off[j + 1] - k_off[j] - 1
                ao = ko - j
                c = 0
                for q in range(1, C):
                    if A[ao + q] > A[ao + c]:
                        c = q
                L = ceil(<double> M_max / vpw) if C > 1 else 0.0
                # the slowest column's work from the blocks of PE column c
                k0, k1 = k_bounds[ko + c], k_bounds[ko + c + 1]
                col_best = -INFINITY
                for q in range(R):
                    t_q = task + setup + ceil(<double> (m_bounds[mo + q + 1]
                                                        - m_bounds[mo + q]) / fmacs)
                    s = ((<int64_t> work_table[m_bounds[mo + q + 1], k1]
                          - <int64_t> work_table[m_bounds[mo + q], k1])
                         - (<int64_t> work_table[m_bounds[mo + q + 1], k0]
                            - <int64_t> work_table[m_bounds[mo + q], k0]))
                    w = _fmin(<double> A[ao + c] * t_q,
                              <double> A[ao + c] * task + scalar * <double> s)
                    if w > col_best:
                        col_best = w
                best = -INFINITY
                for q in range(C):
                    k0, k1 = k_bounds[ko + q], k_bounds[ko + q + 1]
                    s = ((<int64_t> work_table[m1, k1] - <int64_t> work_table[m0, k1])
                         - (<int64_t> work_table[m1, k0] - <int64_t> work_table[m0, k0]))
                    sw = <double> s
                    w = _fmin(<double> A[ao + q] * t_r, <double> A[ao + q] * task + scalar * sw)
                    if q == c and col_best > w:
                        w = col_best
                    w2 = ((<double> (A[ao + q] * <int64_t> wpv + N)) * dt - dt) + task
                    ends = fill + _fmax(w + <double> N * task, w2)
                    if C == 1 or L == 0:
                        if q == C - 1:
                            best = ends + task
                        continue
                    if q == C - 1:
                        tail = L + task
                    else:
                        tail = (((((<double> (C - 2 - q) * delta + L) + hop) + ramp) + task)
                                + lat) + ramp
                        if q == 0:
                            tail = tail + ((task + setup) - lat)
                    if ends + tail > best:
                        best = ends + tail
                if C > 1 and L != 0 and <double> N * (L + task) > best:
                    best = <double> N * (L + task)
                out[i, j] = best
    return out_a


cdef inline double _fmin(double a, double b) noexcept nogil:
    return b if b < a else a


cdef inline double _fmax(double a, double b) noexcept nogil:
    return b if b > a else a


cdef extern from *:
    """
    /* Whether n floats (or doubles) hold a zero of either sign (NaN is not zero): the
       comparison NumPy's a == 0 makes, 16 (8) values per round in SSE2 lanes, stopping
       after the 4096-value run that holds one. */
    #include <stddef.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    /* one function per float type: T its values, V the 4 lanes (of W values each),
       P the intrinsics' suffix */
    #define WSK_ANY_ZERO(name, T, V, P, W)                                                  \
    static int name(const T* v, Py_ssize_t n) {                                            \
        Py_ssize_t i = 0;                                                                  \
        const V z = _mm_setzero_##P();                                                     \
        while (i + 4 * W <= n) {                                                           \
            V hit = z;                                                                     \
            Py_ssize_t end = i + 4096 <= n ? i + 4096 : n - (4 * W - 1);                   \
            for (; i < end; i += 4 * W) {                                                  \
                hit = _mm_or_##P(hit, _mm_or_##P(                                          \
                    _mm_or_##P(_mm_cmpeq_##P(_mm_loadu_##P(v + i), z),                     \
                               _mm_cmpeq_##P(_mm_loadu_##P(v + i + W), z)),                \
                    _mm_or_##P(_mm_cmpeq_##P(_mm_loadu_##P(v + i + 2 * W), z),             \
                               _mm_cmpeq_##P(_mm_loadu_##P(v + i + 3 * W), z))));          \
            }                                                                              \
            if (_mm_movemask_##P(hit))                                                     \
                return 1;                                                                  \
        }                                                                                  \
        for (; i < n; i++)                                                                 \
            if (v[i] == 0)                                                                 \
                return 1;                                                                  \
        return 0;                                                                          \
    }
    WSK_ANY_ZERO(wsk_any_zero_f32, float, __m128, ps, 4)
    WSK_ANY_ZERO(wsk_any_zero_f64, double, __m128d, pd, 2)
    #else
    #define WSK_ANY_ZERO(name, T)                                                           \
    static int name(const T* v, Py_ssize_t n) {                                            \
        for (Py_ssize_t i = 0; i < n; i++)                                                 \
            if (v[i] == 0)                                                                 \
                return 1;                                                                  \
        return 0;                                                                          \
    }
    WSK_ANY_ZERO(wsk_any_zero_f32, float)
    WSK_ANY_ZERO(wsk_any_zero_f64, double)
    #endif
    /* the same, four 512-bit loads a round (64 floats, 32 doubles): the caller runs it
       only where the CPU has AVX-512 (use_simd_path). _CMP_EQ_OQ is SSE2's cmpeq:
       ordered, so NaN is not zero, and -0.0 == 0.0 */
    #if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    #define WSK_ANY_ZERO_512(name, T, V, P, W)                                              \
    __attribute__((target("avx512f")))                                                     \
    static int name(const T* v, Py_ssize_t n) {                                            \
        Py_ssize_t i = 0;                                                                  \
        const V z = _mm512_setzero_##P();                                                  \
        while (i + 4 * W <= n) {                                                           \
            unsigned hit = 0;                                                              \
            Py_ssize_t end = i + 4096 <= n ? i + 4096 : n - (4 * W - 1);                   \
            for (; i < end; i += 4 * W)                                                    \
                hit |= (unsigned) (_mm512_cmp_##P##_mask(_mm512_loadu_##P(v + i), z,       \
                                                         _CMP_EQ_OQ)                       \
                                   | _mm512_cmp_##P##_mask(_mm512_loadu_##P(v + i + W), z, \
                                                           _CMP_EQ_OQ)                     \
                                   | _mm512_cmp_##P##_mask(_mm512_loadu_##P(v + i + 2 * W), \
                                                           z, _CMP_EQ_OQ)                  \
                                   | _mm512_cmp_##P##_mask(_mm512_loadu_##P(v + i + 3 * W), \
                                                           z, _CMP_EQ_OQ));                \
            if (hit)                                                                       \
                return 1;                                                                  \
        }                                                                                  \
        for (; i < n; i++)                                                                 \
            if (v[i] == 0)                                                                 \
                return 1;                                                                  \
        return 0;                                                                          \
    }
    WSK_ANY_ZERO_512(wsk_any_zero_f32_avx512, float, __m512, ps, 16)
    WSK_ANY_ZERO_512(wsk_any_zero_f64_avx512, double, __m512d, pd, 8)
    #else
    #define wsk_any_zero_f32_avx512 wsk_any_zero_f32
    #define wsk_any_zero_f64_avx512 wsk_any_zero_f64
    #endif
    """
    int wsk_any_zero_f32(const float* v, Py_ssize_t n) nogil
    int wsk_any_zero_f64(const double* v, Py_ssize_t n) nogil
    int wsk_any_zero_f32_avx512(const float* v, Py_ssize_t n) nogil
    int wsk_any_zero_f64_avx512(const double* v, Py_ssize_t n) nogil


def any_zero(a):
    """``bool((a == 0).any())`` for an array ``a`` (a zero of either sign counts, NaN
    does not): one pass over a C-contiguous float32 or float64 array, without the mask
    (a Dense kernel, checked every step for weights that became zero); any other array
    takes NumPy's way (a subclass too: a masked array's masked zeros do not count)."""
    cdef int hit, t
    cdef const void* v
    cdef Py_ssize_t n
    # read in place (a Dense kernel every step: the buffer protocol's view would cost
    # more than the pass); a misaligned or byte-swapped array takes NumPy's way
    if type(a) is np.ndarray and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> a) \
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray> a) \
            and cnp.PyArray_ISALIGNED(<cnp.ndarray> a) and cnp.PyArray_SIZE(<cnp.ndarray> a):
        t = cnp.PyArray_TYPE(<cnp.ndarray> a)
        if t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64:
            v, n = cnp.PyArray_DATA(<cnp.ndarray> a), cnp.PyArray_SIZE(<cnp.ndarray> a)
            with nogil:
                if _use_avx512:
                    hit = (wsk_any_zero_f32_avx512(<const float*> v, n)
                           if t == cnp.NPY_FLOAT32
                           else wsk_any_zero_f64_avx512(<const double*> v, n))
                else:
                    hit = (wsk_any_zero_f32(<const float*> v, n) if t == cnp.NPY_FLOAT32
                           else wsk_any_zero_f64(<const double*> v, n))
            return hit != 0
    return bool(((a if isinstance(a, np.ndarray) else np.asarray(a)) == 0).any())
