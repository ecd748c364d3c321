# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""One training step's weight-stationary product from its batch's nonzeros, in one pass
over X and one over the PE blocks (wafer/analytic.py's weight_stationary_cycles): the
format each block takes for this batch, the per-column maxima the pipeline reads, and
the stream each PE column receives. Built with -ffp-contract=off: every float is the one
NumPy's expressions give."""
import numpy as np
cimport numpy as cnp

from libc.math cimport INFINITY, fabs, isnan
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t
from libc.stdlib cimport malloc, free

from _chain cimport chain_columns, check_chain_args
from _step_init cimport (XBytes, bytes_2d, check_step_init, one_chain, py_max, py_min,
                        ramp_floor_L, with_push)
from _stream cimport (StepChain, check_wpv, wsk_chain_rows, wsk_ws_chain,
                     wsk_ws_chain_avx512, wsk_ws_samples, wsk_ws_samples_avx512, wsk_x_column,
                     wsk_x_column_avx512, wsk_x_kmajor)


cdef inline double dmax(double a, double b) noexcept nogil:
    return a if a > b else b


cdef inline int64_t imax(int64_t a, int64_t b) noexcept nogil:
    return a if a > b else b


cdef struct WsFigures:        # a kept step's run on one X
    double busy, done
    int64_t v_max, sram, v_west


cdef struct ColumnFigures:    # what a PE column's blocks give the step
    double cmax                 # the compressed blocks' slowest time (0.0: none)
    double tm                   # the dense blocks' slowest task (-inf: none)
    int64_t sram                # the largest block's bytes in its format
    bint comp                   # any block compressed


cdef inline ColumnFigures _column_blocks(Py_ssize_t R, Py_ssize_t b, const double* t_dense,
                                         const int8_t* choice, const int64_t* sw, double A,
                                         double A_task, double scalar, const void* dense,
                                         const void* comp, bint wide) noexcept nogil:
    """A PE column's R blocks b .. b + R - 1 in r order: each block's format for A
    activations and its scalar work ``sw[r]`` (none when ``sw`` is NULL), the block totals
    ``dense`` and ``comp`` int64 when ``wide``, else int32 (NULL: not read, the SRAM
    figure 0: the caller knows the column cannot raise the step's). A block's format picks its
    figures by index (two-entry arrays), not by a branch: the format is a coin toss to the
    branch predictor."""
    cdef ColumnFigures f
    cdef Py_ssize_t r
    cdef double td, comp_time
    cdef int use_comp
    cdef double pick_d[2]
    cdef int64_t pick_i[2]
    f.cmax, f.tm, f.sram, f.comp = 0.0, -INFINITY, 0, False
    for r in range(R):
        td = t_dense[r]
        comp_time = A_task + scalar * (<double> sw[r] if sw != NULL else 0.0)
        use_comp = (choice[b + r] == 1) | ((choice[b + r] == 2) & (comp_time < A * td))
        f.comp = f.comp | use_comp
        pick_d[0], pick_d[1] = 0.0, comp_time
        f.cmax = dmax(f.cmax, pick_d[use_comp])
        pick_d[0], pick_d[1] = td, -INFINITY
        f.tm = dmax(f.tm, pick_d[use_comp])
        if dense == NULL:
            continue
        if wide:
            pick_i[0] = (<const int64_t*> dense)[b + r]
            pick_i[1] = (<const int64_t*> comp)[b + r]
        else:
            pick_i[0] = (<const int32_t*> dense)[b + r]
            pick_i[1] = (<const int32_t*> comp)[b + r]
        f.sram = imax(f.sram, pick_i[use_comp])
    return f


# A PE column's blocks in 8 lanes (AVX-512), where the CPU runs it: the same IEEE
# operations per block (the format race's comparison included, so the same formats), the
# maxima taken across lanes. A maximum of doubles is the loop's in r order unless a NaN
# takes part or the maximum is a zero (0.0 and -0.0 tie: the order picks the sign); then
# ``ok`` is 0 and the caller runs the loop in r order. The integer maximum is exact in any
# order.
cdef extern from *:
    """
    #include <stdint.h>
    #include <math.h>
    typedef struct { double cmax; double tm; int64_t sram; int comp; int ok; } wsk_step_fig;
    #if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    #define WSK_STEP_AVX512 1
    __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
    static wsk_step_fig wsk_step_blocks_avx512(Py_ssize_t R, Py_ssize_t b,
            const double* t_dense, const int8_t* choice, const int64_t* sw, double A,
            double A_task, double scalar, const void* dense, const void* comp, int wide,
            int nan_seen)
    {
        wsk_step_fig f;
        const __m512d vA = _mm512_set1_pd(A), vAt = _mm512_set1_pd(A_task);
        const __m512d vsc = _mm512_set1_pd(scalar), ninf = _mm512_set1_pd(-INFINITY);
        const __m512i one = _mm512_set1_epi64(1), two = _mm512_set1_epi64(2);
        __m512d cmax = _mm512_setzero_pd(), tm = ninf;
        __m512i sram = _mm512_setzero_si512();
        __mmask8 any = 0, bad = 0;
        for (Py_ssize_t r = 0; r < R; r += 8) {
            const __mmask8 m = R - r >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (R - r)) - 1);
            const __m512d td = _mm512_maskz_loadu_pd(m, t_dense + r);
            /* sw NULL: no scalar work (as _column_blocks), and no sw + r formed (UB) */
            const __m512i swi = sw ? _mm512_maskz_loadu_epi64(m, sw + r)
                                   : _mm512_setzero_si512();
            const __m512d ct = _mm512_add_pd(vAt, _mm512_mul_pd(vsc, _mm512_cvtepi64_pd(swi)));
            const __m512i ch = _mm512_cvtepi8_epi64(_mm_maskz_loadu_epi8(m, choice + b + r));
            const __mmask8 race = _mm512_cmp_pd_mask(ct, _mm512_mul_pd(vA, td), _CMP_LT_OQ);
            const __mmask8 uc = (_mm512_cmpeq_epi64_mask(ch, one)
                                 | (_mm512_cmpeq_epi64_mask(ch, two) & race)) & m;
            any |= uc;
            if (nan_seen)       /* else the caller has shown that no ct or td is NaN */
                bad |= (_mm512_cmp_pd_mask(ct, ct, _CMP_UNORD_Q)
                        | _mm512_cmp_pd_mask(td, td, _CMP_UNORD_Q)) & m;
            cmax = _mm512_max_pd(cmax, _mm512_maskz_mov_pd(uc, ct));
            tm = _mm512_max_pd(tm, _mm512_mask_mov_pd(ninf, m & (__mmask8)~uc, td));
            __m512i d, c;
            if (!dense)         /* not read: the caller knows the column's bound */
                continue;
            if (wide) {
                d = _mm512_maskz_loadu_epi64(m, (const int64_t*)dense + b + r);
                c = _mm512_maskz_loadu_epi64(m, (const int64_t*)comp + b + r);
            } else {
                d = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(m, (const int32_t*)dense + b + r));
                c = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(m, (const int32_t*)comp + b + r));
            }
            sram = _mm512_max_epi64(sram, _mm512_mask_mov_epi64(d, uc, c));
        }
        f.cmax = _mm512_reduce_max_pd(cmax);
        f.tm = _mm512_reduce_max_pd(tm);
        f.sram = _mm512_reduce_max_epi64(sram);
        f.comp = any != 0;
        /* no compressed block: cmax is the loop's +0.0 whatever the order */
        f.ok = !bad && !(any && f.cmax == 0.0) && f.tm != 0.0;
        return f;
    }
    /* a PE column's blocks' scalar work from one column k of W: sw[r] += row[r] * a for
       r < R (row: W's nonzeros of column k per row block, bytes; 0 <= a < 2**32: the
       unsigned 32 x 32 -> 64-bit products are exact), 8 blocks per step */
    __attribute__((target("avx512f")))
    static void wsk_table_row_avx512(Py_ssize_t R, const uint8_t* row, int64_t a, int64_t* sw)
    {
        const __m512i va = _mm512_set1_epi64(a);
        Py_ssize_t r = 0;
        for (; r + 8 <= R; r += 8) {
            __m512i d = _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i*) (row + r)));
            __m512i s = _mm512_loadu_si512((const void*) (sw + r));
            _mm512_storeu_si512((void*) (sw + r), _mm512_add_epi64(s, _mm512_mul_epu32(d, va)));
        }
        for (; r < R; r++)
            sw[r] += (int64_t) row[r] * a;
    }
    /* a PE column's blocks' scalar work from all its kc columns of W at once: sw[r] =
       sum over k of A[k] * T[k, r] (r < R), from the column's table laid out by quads
       (``tq``: for each group g of four k, R x 4 bytes, T[4g + j, r] at (g R + r) 4 + j,
       zero past kc), 16 blocks a register: VNNI's unsigned-by-signed byte dot products
       summed in 32-bit lanes, then widened. Integer sums, exact: A[k] <= 255, T <= 127,
       kc <= 65536 (the caller's bounds), so every sum is below 2**31; the same sw as
       wsk_table_row_avx512's rows on a zeroed sw */
    __attribute__((target("avx512f,avx512bw,avx512vnni")))
    static void wsk_table_quads_vnni(Py_ssize_t R, const int8_t* tq, const int64_t* A,
                                     Py_ssize_t kc, int64_t* sw)
    {
        const Py_ssize_t G = (kc + 3) / 4;
        uint32_t a4[16];
        const int8_t* q4[16];
        /* up to 16 quads at a time (a column of kc <= 64: one round), those with an
           activation (no A in the quad: nothing to add), each round's sums added to the
           rounds' before */
        for (Py_ssize_t g0 = 0; g0 == 0 || g0 < G; g0 += 16) {
            const Py_ssize_t ge = G - g0 < 16 ? G : g0 + 16;
            int gn = 0;
            for (Py_ssize_t g = g0; g < ge; g++) {
                uint32_t v = 0;
                for (Py_ssize_t j = 0; j < 4 && 4 * g + j < kc; j++)
                    v |= (uint32_t) A[4 * g + j] << (8 * j);
                if (v) {
                    a4[gn] = v;
                    q4[gn++] = tq + g * R * 4;
                }
            }
            if (g0 && !gn)
                continue;
            for (Py_ssize_t r0 = 0; r0 < R; r0 += 16) {
                const __mmask16 m = R - r0 >= 16 ? (__mmask16)0xFFFF
                                                  : (__mmask16)((1u << (R - r0)) - 1);
                __m512i acc = _mm512_setzero_si512();
                for (int g = 0; g < gn; g++)
                    acc = _mm512_dpbusd_epi32(acc, _mm512_set1_epi32((int) a4[g]),
                                              _mm512_maskz_loadu_epi32(m, q4[g] + r0 * 4));
                __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc));
                __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc, 1));
                if (g0) {
                    lo = _mm512_add_epi64(lo, _mm512_maskz_loadu_epi64((__mmask8) m, sw + r0));
                    hi = _mm512_add_epi64(hi, _mm512_maskz_loadu_epi64((__mmask8) (m >> 8),
                                                                       sw + r0 + 8));
                }
                _mm512_mask_storeu_epi64(sw + r0, (__mmask8) m, lo);
                _mm512_mask_storeu_epi64(sw + r0 + 8, (__mmask8) (m >> 8), hi);
            }
        }
    }
    static int wsk_step_vnni_runs(void)
    {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vnni");
    }
    static int wsk_step_avx512_runs(void)
    {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    }
    #else
    #define WSK_STEP_AVX512 0
    static wsk_step_fig wsk_step_blocks_avx512(Py_ssize_t R, Py_ssize_t b,
            const double* t_dense, const int8_t* choice, const int64_t* sw, double A,
            double A_task, double scalar, const void* dense, const void* comp, int wide,
            int nan_seen)
    {
        wsk_step_fig f; f.ok = 0; return f;
    }
    static void wsk_table_row_avx512(Py_ssize_t R, const uint8_t* row, int64_t a, int64_t* sw)
    {
        Py_ssize_t r;
        for (r = 0; r < R; r++)
            sw[r] += (int64_t) row[r] * a;
    }
    static int wsk_step_avx512_runs(void) { return 0; }
    static void wsk_table_quads_vnni(Py_ssize_t R, const int8_t* tq, const int64_t* A,
                                     Py_ssize_t kc, int64_t* sw) { }
    static int wsk_step_vnni_runs(void) { return 0; }
    #endif
    """
    ctypedef struct wsk_step_fig:
        double cmax
        double tm
        int64_t sram
        int comp
        int ok
    wsk_step_fig wsk_step_blocks_avx512(Py_ssize_t R, Py_ssize_t b, const double* t_dense,
                                        const int8_t* choice, const int64_t* sw, double A,
                                        double A_task, double scalar, const void* dense,
                                        const void* comp, int wide, int nan_seen) noexcept nogil
    int wsk_step_avx512_runs() noexcept nogil
    void wsk_table_row_avx512(Py_ssize_t R, const uint8_t* row, int64_t a,
                              int64_t* sw) noexcept nogil
    void wsk_table_quads_vnni(Py_ssize_t R, const int8_t* tq, const int64_t* A,
                              Py_ssize_t kc, int64_t* sw) noexcept nogil
    int wsk_step_vnni_runs() noexcept nogil


cnp.import_array()

cdef bint _AVX512_RUNS = wsk_step_avx512_runs()
cdef bint _use_avx512 = _AVX512_RUNS
cdef bint _VNNI_RUNS = wsk_step_vnni_runs()
cdef bint _use_vnni = _use_avx512 and _VNNI_RUNS


def use_simd_path(path):
    """Run the step's pass over each PE column's blocks (:func:`ws_step_columns`) on
    ``path``: "avx512" (8 lanes, where this CPU runs it; else the loop) or "baseline"/"avx2"
    (the loop in r order); the same figures either way. Returns the path in use.
    WSEKERN_SIMD sets it at import (wsekern/simd_path.py); tests call it to check each."""
    global _use_avx512, _use_vnni
    if path not in ("avx512", "avx2", "baseline"):
        raise ValueError(f"path must be 'avx512', 'avx2' or 'baseline'; received {path!r}")
    _use_avx512 = path == "avx512" and _AVX512_RUNS
    _use_vnni = _use_avx512 and _VNNI_RUNS
    return "avx512" if _use_avx512 else "baseline"


cdef int _check_structure(Py_ssize_t K, Py_ssize_t R, Py_ssize_t C, const long[:] k_b,
                          const int64_t[::1] s_indptr, Py_ssize_t n_entries, str entries,
                          Py_ssize_t n_data, Py_ssize_t n_choice, Py_ssize_t n_comp,
                          Py_ssize_t n_dense, bint check) except -1:
    """The step kernels' shared checks of X's row bounds per PE column and of W's step
    structure (the O(K) pass over s_indptr only when ``check``)."""
    cdef Py_ssize_t c, k
    if C < 0 or (C > 0 and (k_b[0] != 0 or k_b[C] != K)):
        raise ValueError(f"k_b must be {C + 1} bounds from 0 to {K}; received "
                         f"{np.asarray(k_b)!r}")
    for c in range(C):
        if k_b[c] > k_b[c + 1]:
            raise ValueError(f"k_b must be nondecreasing; received {np.asarray(k_b)!r}")
    if (s_indptr.shape[0] != K + 1 or n_choice != R * C or n_comp != R * C
            or n_dense != R * C):
        raise ValueError(f"the block arrays must have {R * C} entries ({R}x{C} blocks) "
                         f"and s_indptr {K + 1}; received s_indptr {s_indptr.shape[0]}, "
                         f"choice {n_choice}, comp_total {n_comp}, dense_total {n_dense}")
    if n_entries != n_data or s_indptr[K] > n_entries:
        raise ValueError(f"{entries} and s_data must hold the s_indptr[-1] entries")
    if not (0 <= s_indptr[0] <= s_indptr[K]):
        raise ValueError(f"s_indptr must be nondecreasing from 0; received "
                         f"{np.asarray(s_indptr)!r}")
    for k in range(K if check else 0):
        if not 0 <= s_indptr[k] <= s_indptr[k + 1]:
            raise ValueError(f"s_indptr must be nondecreasing from 0; received "
                             f"{np.asarray(s_indptr)!r}")
    return 0


cdef int _check_indices(const int32_t[::1] s_indices, Py_ssize_t blocks) except -1:
    cdef Py_ssize_t j
    for j in range(s_indices.shape[0]):
        if not 0 <= s_indices[j] < blocks:
            raise ValueError(f"s_indices[{j}] = {s_indices[j]} lies outside 0..{blocks - 1}")
    return 0


cdef void _count_batch(const unsigned char[:, :] x_nz, const long[:] k_b,
                       const int64_t[::1] s_indptr, const int32_t[::1] s_indices,
                       const int64_t[::1] s_data, int64_t[::1] A_k, int64_t[::1] A_c,
                       int64_t[:, ::1] a_cn, int64_t[::1] scalar_work) noexcept nogil:
    """The batch's activations per input row (A_k), per PE column (A_c) and per column and
    sample (a_cn), and each block's scalar work: its nonzero weights times their row's
    activations (all zeroed by the caller)."""
    cdef Py_ssize_t c, k, n, j
    cdef int64_t a
    for c in range(k_b.shape[0] - 1):
        for k in range(k_b[c], k_b[c + 1]):
            for n in range(x_nz.shape[1]):
                a = x_nz[k, n] != 0
                A_k[k] += a
                a_cn[c, n] += a
            A_c[c] += A_k[k]
            if A_k[k]:
                for j in range(s_indptr[k], s_indptr[k + 1]):
                    scalar_work[s_indices[j]] += s_data[j] * A_k[k]


cdef tuple _counted_batch(str caller, const unsigned char[:, :] x_nz, const long[:] k_b,
                          const int64_t[::1] s_indptr, const int32_t[::1] s_indices,
                          const int64_t[::1] s_data, Py_ssize_t R, long wpv, bint check):
    """ws_step_stream's and ws_step_figures' checks after the structure's (``caller``'s
    wpv, then s_indices when ``check``), their scratch, and the batch counted into it
    (:func:`_count_batch`): (a_cn, A_k, A_c, tmax, comp_max, scalar_work), tmax at -inf."""
    cdef Py_ssize_t K = x_nz.shape[0], N = x_nz.shape[1], C = k_b.shape[0] - 1
    check_wpv(caller, wpv, K, N)
    if check:
        _check_indices(s_indices, R * C)
    got = (np.zeros((C, N), np.int64), np.zeros(K, np.int64), np.zeros(C, np.int64),
           np.full(C, -INFINITY), np.zeros(C), np.zeros(R * C, np.int64))
    cdef int64_t[:, ::1] a_cn = got[0]
    cdef int64_t[::1] A_k = got[1]
    cdef int64_t[::1] A_c = got[2]
    cdef int64_t[::1] scalar_work = got[5]
    with nogil:
        _count_batch(x_nz, k_b, s_indptr, s_indices, s_data, A_k, A_c, a_cn, scalar_work)
    return got


def ws_step_stream(const unsigned char[:, :] x_nz, const long[:] k_b,
                   const int64_t[::1] s_indptr, const int32_t[::1] s_indices,
                   const int64_t[::1] s_data, const double[::1] t_dense,
                   const int8_t[::1] choice, const int64_t[::1] comp_total,
                   const int64_t[::1] dense_total, double task, double scalar, double eos,
                   long wpv, double dt, bint check=True):
    """The step of X's nonzero pattern ``x_nz`` (K x N, 0/1, any strides) through the
    R x C blocks of W (``t_dense``: R dense task cycles; ``k_b``: C + 1 bounds of X's rows
    per PE column). W's column k has ``s_data[j]`` nonzeros in block ``s_indices[j]`` (b =
    r * C + c) for j in s_indptr[k]:s_indptr[k + 1] (a column with no activation in the
    batch adds no scalar work: it is skipped); a block's format is dense where
    ``choice[b]`` is 0, compressed where 1, and where 2 compressed when its time for this
    batch (a task per arriving activation plus its scalar work) is below the dense one.

    Returns (work, first, last, busy, v_max, sram, any_comp, products): N x C float64 arrays of each
    column's per-sample work (its slowest dense row's, or its slowest compressed block's
    batch work shared over its samples, whichever is more, plus ``eos``) and the arrival
    of each sample's first and last wavelet (before the fill); the busiest PE's batch
    work; the largest column sum of wavelets; the largest PE's bytes in its format;
    whether any block is compressed; and per block the products of a nonzero weight and a
    nonzero activation over the batch (its scalar work, R * C int64).
    O(K * N + nnz(S) + R * C + C * N). ``check=False`` skips the O(nnz(S)) checks of
    ``s_indptr`` and ``s_indices`` (a caller that checked this structure once, with an
    empty batch, and passes it unchanged for every step); the shapes are always checked."""
    cdef Py_ssize_t K = x_nz.shape[0], N = x_nz.shape[1], C = k_b.shape[0] - 1
    cdef Py_ssize_t R = t_dense.shape[0]
    cdef Py_ssize_t n, c, k, r, b, j
    _check_structure(K, R, C, k_b, s_indptr, s_indices.shape[0], "s_indices", s_data.shape[0],
                     choice.shape[0], comp_total.shape[0], dense_total.shape[0], check)
    counted = _counted_batch("ws_step_stream", x_nz, k_b, s_indptr, s_indices, s_data, R,
                             wpv, check)
    cdef int64_t[:, ::1] a_cn = counted[0]
    cdef int64_t[::1] A_c = counted[2]
    cdef double[::1] tmax = counted[3]
    cdef double[::1] comp_max = counted[4]
    products = counted[5]
    cdef int64_t[::1] scalar_work = products
    cdef double[::1] A_d = np.empty(C)           # A_c as double, and A_c * task
    cdef double[::1] A_task = np.empty(C)
    cdef int8_t[::1] comp_c = np.zeros(C, np.int8)     # per column: any block compressed
    cdef int64_t[::1] sram_c = np.zeros(C, np.int64)   # per column: its largest PE's bytes
    work_a = np.empty((N, C))
    first_a = np.empty((N, C))
    last_a = np.empty((N, C))
    cdef double[:, ::1] work = work_a
    cdef double[:, ::1] first = first_a
    cdef double[:, ::1] last = last_a
    cdef int64_t[::1] v_sum = np.zeros(C, np.int64)
    cdef int64_t a, v, v_max = 0, sram = 0
    cdef double A, td, comp_time, busy = -INFINITY, comp_busy = -INFINITY, w, share, cum
    cdef bint use_comp, any_comp = False
    with nogil:
        # branch-free: a block's format for a batch is a coin toss to the branch predictor.
        # Reductions per column only (no chain through every block): the wafer-wide ones
        # are taken over the columns after (maxima, exact in any order)
        for c in range(C):
            A_d[c] = <double> A_c[c]
            A_task[c] = A_d[c] * task
        for r in range(R):
            td = t_dense[r]
            for c in range(C):
                b = r * C + c
                comp_time = A_task[c] + scalar * <double> scalar_work[b]
                use_comp = (choice[b] == 1) | ((choice[b] == 2) & (comp_time < A_d[c] * td))
                comp_c[c] = comp_c[c] | use_comp
                comp_max[c] = dmax(comp_max[c], comp_time if use_comp else 0.0)
                tmax[c] = dmax(tmax[c], -INFINITY if use_comp else td)
                sram_c[c] = imax(sram_c[c], comp_total[b] if use_comp else dense_total[b])
        for c in range(C):
            sram = imax(sram, sram_c[c])
            if comp_c[c]:
                any_comp = True
                # a compressed block's time is >= 0, so the column's maximum over its
                # compressed blocks (floored at 0) is theirs
                comp_busy = dmax(comp_busy, comp_max[c])
        for c in range(C):
            if tmax[c] > -INFINITY and <double> A_c[c] * tmax[c] > busy:
                busy = <double> A_c[c] * tmax[c]
        if any_comp and comp_busy > busy:
            busy = comp_busy
        for c in range(C):
            share = comp_max[c] / <double> (A_c[c] if A_c[c] > 1 else 1)
            for n in range(N):
                a = a_cn[c, n]
                w = <double> a * tmax[c] if tmax[c] > -INFINITY else 0.0
                if any_comp and <double> a * share > w:
                    w = <double> a * share
                work[n, c] = w + eos
                v = a * wpv + 1
                v_sum[c] += v
                cum = <double> v_sum[c] * dt
                first[n, c] = cum - <double> v * dt
                last[n, c] = cum - dt
            if v_sum[c] > v_max:
                v_max = v_sum[c]
    return (work_a, first_a, last_a, float(busy), int(v_max), int(sram), bool(any_comp),
            products)



def ws_step_figures(const unsigned char[:, :] x_nz, const long[:] k_b,
                    const int64_t[::1] s_indptr, const int32_t[::1] s_indices,
                    const int64_t[::1] s_data, const double[::1] t_dense,
                    const int64_t[::1] m_r, const int8_t[::1] choice, double task,
                    double scalar, double eos, long wpv, bint check=True):
    """The forward report's figures of :func:`ws_step_stream`'s step (the same arguments,
    with ``m_r`` the R row blocks' heights and no block totals): each block's format and
    scalar work for this batch as there, then what analytic.weight_stationary's report
    (exact=False) reads of them besides its cycles.

    Returns (performed, work_max, v_max, busiest_comp, any_comp): the multiply-adds the
    PEs perform (a compressed block its scalar work, a dense one its rows times its
    column's activations; int64); per sample, the largest column work (N float64, as
    ws_step_stream's ``work``, eos included) and the largest column stream of wavelets
    (N int64, ``a * wpv + 1``); whether the busiest PE's block (its batch time plus N
    eos, the first in row-major order at the maximum) is compressed; whether any is.
    O(K * N + nnz(S) + R * C + C * N)."""
    cdef Py_ssize_t K = x_nz.shape[0], N = x_nz.shape[1], C = k_b.shape[0] - 1
    cdef Py_ssize_t R = t_dense.shape[0]
    cdef Py_ssize_t n, c, k, r, b, j
    _check_structure(K, R, C, k_b, s_indptr, s_indices.shape[0], "s_indices", s_data.shape[0],
                     choice.shape[0], R * C, R * C, check)
    if m_r.shape[0] != R:
        raise ValueError(f"m_r must hold the {R} row blocks' heights; received "
                         f"{m_r.shape[0]}")
    counted = _counted_batch("ws_step_figures", x_nz, k_b, s_indptr, s_indices, s_data, R,
                             wpv, check)
    cdef int64_t[:, ::1] a_cn = counted[0]
    cdef int64_t[::1] A_c = counted[2]
    cdef double[::1] tmax = counted[3]
    cdef double[::1] comp_max = counted[4]
    cdef int64_t[::1] scalar_work = counted[5]
    work_max_a = np.full(N, -INFINITY)
    v_max_a = np.zeros(N, np.int64)
    cdef double[::1] work_max = work_max_a
    cdef int64_t[::1] v_max = v_max_a
    cdef int64_t a, v, performed = 0
    cdef double A, td, comp_time, dense_time, w, share, busy, best = -INFINITY
    cdef double n_eos = <double> N * eos
    cdef bint use_comp, any_comp = False, best_comp = False
    with nogil:
        # placement.block_formats' formats, the same IEEE operations; _ws_report's
        # performed MACs; _ws_cycles' busiest PE (np.argmax: the first at the maximum)
        for r in range(R):
            td = t_dense[r]
            for c in range(C):
                b = r * C + c
                A = <double> A_c[c]
                comp_time = A * task + scalar * <double> scalar_work[b]
                dense_time = A * td
                use_comp = (choice[b] == 1) | ((choice[b] == 2) & (comp_time < dense_time))
                any_comp = any_comp | use_comp
                performed += scalar_work[b] if use_comp else m_r[r] * A_c[c]
                if use_comp:
                    comp_max[c] = dmax(comp_max[c], comp_time)
                else:
                    tmax[c] = dmax(tmax[c], td)
                busy = (comp_time if use_comp else dense_time) + n_eos
                if busy > best:
                    best, best_comp = busy, use_comp
        # _ws_work's work per column and sample (exact=False), and the streams
        for c in range(C):
            share = comp_max[c] / <double> (A_c[c] if A_c[c] > 1 else 1)
            for n in range(N):
                a = a_cn[c, n]
                w = <double> a * tmax[c] if tmax[c] > -INFINITY else 0.0
                if any_comp and <double> a * share > w:
                    w = <double> a * share
                work_max[n] = dmax(work_max[n], w + eos)
                v = a * wpv + 1
                if v > v_max[n]:
                    v_max[n] = v
    return int(performed), work_max_a, v_max_a, bool(best_comp), bool(any_comp)


cdef bint _totals_wide(comp_total, dense_total) except -1:
    """Whether the block totals are int64 (else int32), refused unless both are arrays of
    one of those dtypes."""
    if not (isinstance(comp_total, np.ndarray) and isinstance(dense_total, np.ndarray)
            and comp_total.dtype == dense_total.dtype
            and comp_total.dtype in (np.int32, np.int64)):
        raise ValueError("comp_total and dense_total must be arrays of one dtype, int32 or "
                         "int64")
    return comp_total.dtype == np.int64


cdef const void* _first(totals, bint wide) except? NULL:
    """The first entry of a 1-D C-contiguous block-total array (NULL when empty); the
    caller keeps the array alive while the pointer is read."""
    cdef const int64_t[::1] t64
    cdef const int32_t[::1] t32
    if wide:
        t64 = totals
        return <const void*> &t64[0] if t64.shape[0] else NULL
    t32 = totals
    return <const void*> &t32[0] if t32.shape[0] else NULL

def _describe_array(v):
    # what an array argument was, for a refusal's message
    if isinstance(v, np.ndarray):
        contig = "" if v.flags.c_contiguous else ", not C-contiguous"
        return f"a {v.dtype} array of shape {v.shape}{contig}"
    return f"a {type(v).__name__}"


cdef struct WsPlan:
    # what ws_step_columns reads of W's structure, checked: raw pointers into arrays its
    # caller keeps alive (the call's arguments, or a WsStep's)
    Py_ssize_t K, R, C
    const char* k_b             # C + 1 longs, k_b_st bytes apart
    Py_ssize_t k_b_st
    const int64_t* s_indptr
    const int32_t* s_rows
    const int32_t* s_data
    const double* t_dense
    const int8_t* choice
    const void* dense_p
    const void* comp_p
    bint wide
    const uint16_t* pk_p
    const uint8_t* tb           # the table (NULL: none); read on the AVX-512 path only
    const int8_t* tq            # the table by quads of k per PE column (NULL: none): a
    const int64_t* tq_off       # WsStep's (_quad_table), read on the VNNI path only
    const int64_t* sb_p
    bint has_dead
    const double* d_cmax
    const double* d_tm
    const int64_t* d_sram
    const int8_t* d_comp
    int nan_seen
    double task, scalar, eos, dt
    long wpv


cdef inline Py_ssize_t _kb(const WsPlan* s, Py_ssize_t c) noexcept nogil:
    return (<const long*> (s.k_b + c * s.k_b_st))[0]


cdef int _ws_plan(WsPlan* s, Py_ssize_t K, const long[:] k_b, const int64_t[::1] s_indptr,
                  const int32_t[::1] s_rows, const int32_t[::1] s_data,
                  const double[::1] t_dense, const int8_t[::1] choice, comp_total,
                  dense_total, double task, double scalar, double eos, long wpv, double dt,
                  bint check, dead, packed, table, sram_bound) except -1:
    """ws_step_columns' checks of everything but X (its rows: K), and ``s`` filled from
    the arrays, which the caller keeps alive while ``s`` is read."""
    cdef Py_ssize_t C = k_b.shape[0] - 1
    cdef Py_ssize_t R = t_dense.shape[0]
    cdef Py_ssize_t c, k, r, j
    cdef bint wide = _totals_wide(comp_total, dense_total)
    s.dense_p = _first(dense_total, wide)
    s.comp_p = _first(comp_total, wide)
    s.wide = wide
    _check_structure(K, R, C, k_b, s_indptr, s_rows.shape[0], "s_rows", s_data.shape[0],
                     choice.shape[0], comp_total.size, dense_total.size, check)
    for j in range(s_rows.shape[0] if check else 0):
        if not 0 <= s_rows[j] < R:
            raise ValueError(f"s_rows[{j}] = {s_rows[j]} lies outside 0..{R - 1}")
    cdef const uint16_t[::1] pk
    s.pk_p = NULL
    if packed is not None:
        pk = packed
        if pk.shape[0] != s_rows.shape[0]:
            raise ValueError(f"packed must hold one entry per s_rows entry "
                             f"({s_rows.shape[0]}); received {pk.shape[0]}")
        for j in range(pk.shape[0] if check else 0):
            if (pk[j] & 0xFF) != s_rows[j] or (pk[j] >> 8) != s_data[j]:
                raise ValueError(f"packed[{j}] = {pk[j]} is not s_rows[{j}] = {s_rows[j]} "
                                 f"in its low byte and s_data[{j}] = {s_data[j]} in its "
                                 f"high one")
        if pk.shape[0]:
            s.pk_p = &pk[0]
    cdef const uint8_t[:, ::1] tb
    cdef int64_t row_sum
    s.tb = NULL
    s.tq, s.tq_off = NULL, NULL
    if table is not None:
        tb = table
        if tb.shape[0] != K or tb.shape[1] != R:
            raise ValueError(f"table must be K x R = {K} x {R} (W's nonzeros per column and "
                             f"row block); received {tb.shape[0]} x {tb.shape[1]}")
        for k in range(K if check else 0):
            row_sum = 0
            for r in range(R):
                row_sum += tb[k, r]
            for j in range(s_indptr[k], s_indptr[k + 1]):
                if tb[k, s_rows[j]] != s_data[j]:
                    raise ValueError(f"table[{k}, {s_rows[j]}] = {tb[k, s_rows[j]]} is not "
                                     f"s_data[{j}] = {s_data[j]}")
                row_sum -= s_data[j]
            if row_sum != 0:
                raise ValueError(f"table's row {k} holds nonzeros that s_rows and s_data "
                                 f"do not")
        if K and R:
            s.tb = &tb[0, 0]
    cdef const double[::1] d_cmax, d_tm
    cdef const int64_t[::1] d_sram
    cdef const int8_t[::1] d_comp
    cdef const int64_t[::1] sb
    s.sb_p = NULL
    if sram_bound is not None:
        if not (isinstance(sram_bound, np.ndarray) and sram_bound.dtype == np.int64
                and sram_bound.ndim == 1 and sram_bound.flags.c_contiguous):
            raise TypeError(f"sram_bound must be a C-contiguous 1-D int64 array (one entry "
                            f"per PE column: {C}) or None; received "
                            f"{_describe_array(sram_bound)}")
        sb = sram_bound
        if sb.shape[0] != C:
            raise ValueError(f"sram_bound must hold {C} entries (one per PE column); "
                             f"received {sb.shape[0]}")
        if check and R and C:
            want = np.maximum(np.asarray(comp_total).reshape(C, R),
                              np.asarray(dense_total).reshape(C, R)).max(axis=1)
            for c in range(C):
                if sb[c] != want[c]:
                    raise ValueError(f"sram_bound[{c}] = {sb[c]} is not the largest block "
                                     f"total of PE column {c} ({want[c]})")
        if C:
            s.sb_p = &sb[0]
    # a block's compressed time (A * task + scalar * sw, A and sw integers below 2**63)
    # can be NaN only where the task or the scalar cycles are NaN, or so large that both
    # terms could overflow (inf - inf); its dense time where t_dense holds a NaN: else the
    # lanes need not look for one
    s.nan_seen = not (fabs(task) <= 1e250 and fabs(scalar) <= 1e250)
    for r in range(R):
        if isnan(t_dense[r]):
            s.nan_seen = 1
    s.has_dead = dead is not None
    if s.has_dead:
        if not (isinstance(dead, tuple) and len(dead) == 4):
            raise ValueError("dead must be ws_dead_columns' tuple of 4 arrays")
        d_cmax, d_tm, d_sram, d_comp = dead
        if not (d_cmax.shape[0] == d_tm.shape[0] == d_sram.shape[0] == d_comp.shape[0]
                == C):
            raise ValueError(f"dead must hold {C} entries per array (one per PE column)")
        s.d_cmax, s.d_tm, s.d_sram, s.d_comp = &d_cmax[0], &d_tm[0], &d_sram[0], &d_comp[0]
    s.K, s.R, s.C = K, R, C
    s.k_b, s.k_b_st = <const char*> &k_b[0], k_b.strides[0]
    s.s_indptr, s.s_rows, s.s_data = &s_indptr[0], &s_rows[0], &s_data[0]
    s.t_dense, s.choice = &t_dense[0], &choice[0]
    s.task, s.scalar, s.eos, s.wpv, s.dt = task, scalar, eos, wpv, dt
    return 0


cdef int _ws_run(const WsPlan* s, const unsigned char* x, Py_ssize_t N, Py_ssize_t x_s0,
                 Py_ssize_t x_s1, double* work, double* first, double* last,
                 double* busy_out, int64_t* v_max_out, int64_t* sram_out,
                 bint* any_comp_out, int64_t* v_west_out, const StepChain* ch=NULL,
                 double* done_out=NULL, int64_t rampL=0) noexcept nogil:
    """ws_step_columns' pass over X (K x N at ``x``, strides ``x_s0``, ``x_s1``) and the
    blocks of ``s``, writing the samples-major (N x C) work, first and last and the
    figures; -1 where its scratch cannot be had. With ``ch`` (a kept step's chain), each
    sample's row goes to the chain at once (src/wsk_step_chain.h) instead: work, first
    and last are not read, and the chain's completion goes to ``done_out``. ``rampL``:
    the ramp floor's sums a round (src/wsk_stream.h; 0: none)."""
    cdef Py_ssize_t K = s.K, R = s.R, C = s.C
    cdef Py_ssize_t c, k, r, j
    cdef double task = s.task, scalar = s.scalar
    # the products a * row[r] are exact unsigned 32 x 32 bits: a <= N < 2**32
    cdef const uint8_t* tb_p = NULL
    if _use_avx512 and K and R and (N >> 32) == 0:
        tb_p = s.tb
    cdef const uint16_t* pk_p = s.pk_p
    cdef uint16_t p
    # the table by quads (VNNI): A[k] <= N <= 255 fits its unsigned bytes
    cdef const int8_t* tq_p = NULL
    if _use_vnni and tb_p != NULL and 0 < N <= 255:
        tq_p = s.tq
    cdef const void* dense_c
    cdef const void* comp_c
    cdef int64_t A_k, v_max = 0, sram = 0, sram_c, cnt
    cdef double A, A_task, busy = -INFINITY, comp_busy = -INFINITY
    cdef double cmax, tm
    cdef bint any_comp = False, comp_col
    cdef ColumnFigures fig
    cdef wsk_step_fig vfig
    # scratch, each value written before it is read: each k's activations over the batch;
    # per column its activations, V, share, tm, largest compressed time and dense task
    # time, and its activations per sample (C x N); a column's blocks' scalar work (256
    # long when packed: no byte can write outside); X K-major when it is not already
    cdef Py_ssize_t n_sw = R if pk_p == NULL else max(R, 256)
    cdef Py_ssize_t copy = 0 if x_s1 == 1 and x_s0 == N else K * N
    # with the chain: two samples' rows (6 x C) and its own scratch (4 x C, the rounds
    # of its history it reads back, rows x C, and the counts sample by sample, N x C)
    cdef Py_ssize_t rows = wsk_chain_rows(N, ch.Lg, C, ch.cushion) if ch != NULL else 0
    cdef Py_ssize_t fused = 10 * C + rows * C + N * C if ch != NULL else 0
    cdef int64_t* A_of_k = <int64_t*> malloc(8 * (K + 6 * C + C * N + n_sw + fused) + copy
                                             + 8)
    if A_of_k == NULL:
        return -1
    cdef int64_t* A_c = A_of_k + K
    cdef int64_t* V = A_c + C
    cdef double* share_c = <double*> (V + C)
    cdef double* tm_c = share_c + C
    cdef double* comp_max = tm_c + C
    cdef double* tmax = comp_max + C
    cdef int64_t* a_cn = <int64_t*> (tmax + C)
    cdef int64_t* sw = a_cn + C * N
    cdef double* row = <double*> (sw + n_sw)
    cdef uint8_t* xs = <uint8_t*> (row + fused)
    cdef double done = 0.0
    cdef const uint8_t* xt = NULL
    if K and N:
        xt = wsk_x_kmajor(x, K, N, x_s0, x_s1, xs)
    for c in range(C):
        cnt = 0
        if N and _use_avx512:
            wsk_x_column_avx512(xt, _kb(s, c), _kb(s, c + 1), N, 1, a_cn + c * N, A_of_k)
        elif N:
            wsk_x_column(xt, _kb(s, c), _kb(s, c + 1), N, 1, a_cn + c * N, A_of_k)
        if tq_p != NULL:        # every row of the column's table at once: the same sw
            for k in range(_kb(s, c), _kb(s, c + 1)):
                cnt += A_of_k[k]
            if cnt or not s.has_dead:   # (a column no activation reaches reads no sw)
                wsk_table_quads_vnni(R, tq_p + s.tq_off[c], A_of_k + _kb(s, c),
                                     _kb(s, c + 1) - _kb(s, c), sw)
        else:                   # the rows one by one, each live one added to sw
            for r in range(R):
                sw[r] = 0
            for k in range(_kb(s, c), _kb(s, c + 1)):
                A_k = A_of_k[k] if N else 0
                cnt += A_k
                if A_k and tb_p != NULL:
                    wsk_table_row_avx512(R, tb_p + k * R, A_k, sw)
                elif A_k and pk_p != NULL:
                    for j in range(s.s_indptr[k], s.s_indptr[k + 1]):
                        p = pk_p[j]
                        sw[p & 0xFF] += <int64_t> (p >> 8) * A_k
                elif A_k:
                    for j in range(s.s_indptr[k], s.s_indptr[k + 1]):
                        sw[s.s_rows[j]] += s.s_data[j] * A_k
        A_c[c] = cnt
        A = <double> cnt
        A_task = A * task
        if s.has_dead and cnt == 0:       # no activation: the figures worked out once
            cmax, tm, sram_c, comp_col = s.d_cmax[c], s.d_tm[c], s.d_sram[c], s.d_comp[c] != 0
        else:
            # the totals are read only where the column could raise the peak
            dense_c, comp_c = s.dense_p, s.comp_p
            if s.sb_p != NULL and sram >= s.sb_p[c]:
                dense_c = comp_c = NULL
            vfig.ok = 0
            if _use_avx512:
                vfig = wsk_step_blocks_avx512(R, c * R, s.t_dense, s.choice, sw,
                                              A, A_task, scalar, dense_c, comp_c, s.wide,
                                              s.nan_seen)
            if vfig.ok:
                cmax, tm, sram_c, comp_col = vfig.cmax, vfig.tm, vfig.sram, vfig.comp != 0
            else:
                fig = _column_blocks(R, c * R, s.t_dense, s.choice, sw, A,
                                     A_task, scalar, dense_c, comp_c, s.wide)
                cmax, tm, sram_c, comp_col = fig.cmax, fig.tm, fig.sram, fig.comp
        comp_max[c], tmax[c] = cmax, tm
        sram = imax(sram, sram_c)
        if comp_col:
            any_comp = True
            comp_busy = dmax(comp_busy, cmax)
        if tm > -INFINITY and A * tm > busy:
            busy = A * tm
    if any_comp and comp_busy > busy:
        busy = comp_busy
    for c in range(C):
        # a * tmax, or 0.0 in a column with no dense block (a >= 0: a * 0.0 is 0.0);
        # then the compressed share where any block is compressed and it is more
        # (max(x, w) is x only when x > w: the comparison ws_step_stream makes), each
        # without a branch on the sample's count
        share_c[c] = comp_max[c] / <double> (A_c[c] if A_c[c] > 1 else 1)
        tm_c[c] = tmax[c] if tmax[c] > -INFINITY else 0.0
        if not any_comp:
            share_c[c] = -INFINITY  # a * share > w never holds (a * -inf <= 0 <= w)
    if N and C and ch != NULL and _use_avx512:
        v_max = wsk_ws_chain_avx512(N, C, a_cn, share_c, tm_c, s.eos, s.wpv, s.dt, ch.fill,
                                    rampL, V, row, ch.Lg, ch.hop, ch.ramp, ch.lat, ch.launch,
                                    ch.task, ch.cushion, ch.push, row + 6 * C, rows,
                                    ch.exact, &done)
    elif N and C and ch != NULL:
        v_max = wsk_ws_chain(N, C, a_cn, share_c, tm_c, s.eos, s.wpv, s.dt, ch.fill, rampL,
                             V, row, ch.Lg, ch.hop, ch.ramp, ch.lat, ch.launch, ch.task,
                             ch.cushion, ch.push, row + 6 * C, rows, ch.exact, &done)
    elif N and C and _use_avx512:
        v_max = wsk_ws_samples_avx512(N, C, a_cn, share_c, tm_c, s.eos, s.wpv, s.dt, rampL, V,
                                      work, first, last)
    elif N and C:
        v_max = wsk_ws_samples(N, C, a_cn, share_c, tm_c, s.eos, s.wpv, s.dt, rampL, V,
                               work, first, last)
    # the most wavelets down one column off the chain's first (its ramp also takes the
    # partial sums from the west: the lower bound's ramp term)
    cdef int64_t v_west = 0
    if N:
        for c in range(1, C):
            if V[c] > v_west:
                v_west = V[c]
    free(A_of_k)
    busy_out[0], v_max_out[0], sram_out[0], any_comp_out[0] = busy, v_max, sram, any_comp
    v_west_out[0] = v_west
    if done_out != NULL:
        done_out[0] = done
    return 0


def ws_step_columns(const unsigned char[:, :] x_nz, const long[:] k_b,
                    const int64_t[::1] s_indptr, const int32_t[::1] s_rows,
                    const int32_t[::1] s_data, const double[::1] t_dense,
                    const int8_t[::1] choice, comp_total, dense_total, double task,
                    double scalar, double eos, long wpv, double dt, bint check=True,
                    pipeline=None, dead=None, packed=None, table=None, sram_bound=None):
    """:func:`ws_step_stream`'s step, PE column by PE column: the same figures (work,
    first, last, busy, v_max, sram, any_comp; not the per-block products), from W's
    structure laid out by column: the block arrays ``choice``, ``comp_total`` and
    ``dense_total`` numbered b = c * R + r (both int64, or both int32: half the memory a
    step reads), and W's column k holding ``s_data[j]`` nonzeros
    in row block ``s_rows[j]`` (its PE column is the one whose X rows hold k). Each PE
    column's activations, its blocks' scalar work (an R-long buffer) and its format choices
    are worked out together, in memory that stays in the first-level cache; the column
    meets its blocks in r order and the maxima are the same maxima, so every float is
    ws_step_stream's. ``check=False`` skips the O(nnz) checks of ``s_indptr`` and
    ``s_rows`` (a structure checked once and passed unchanged). X may have any strides:
    it is read K-major (src/wsk_stream.h), copied first where it is not laid out so (a
    layer's N x K batch seen transposed goes by 16 x 16 byte tiles).

    ``pipeline`` = (L, hop, ramp, lat, launch, cushion, fill) adds an eighth figure: the
    columns' chain over the samples (src/_pipeline.pyx's grid_pipeline of work, first and
    last as one chain of C positions, ``L`` (one entry) wavelets per round, arrivals
    ``fill`` later), run here on the arrays just made: the same recurrence
    (src/_chain.pxd), so the same float. An eighth entry ``push`` is grid_pipeline's
    (the first position's send queue, wavelets; -1 without it), and a ninth ``shared``
    (True: the ramp floor, analytic's _ramp_floor: a column past the first takes its
    stream and the chain's sums through one ramp, so its ``last`` is at least
    ``(V + (n - 1) * L) * dt - dt`` from sample 2 on; the arrays returned carry it).

    ``dead`` = :func:`ws_dead_columns` of the same ``t_dense``, ``choice``, ``comp_total``,
    ``dense_total``, ``task`` and ``scalar``: a PE column no activation of the batch reaches
    then takes its blocks' figures from there instead of visiting its R blocks (the same
    loop run once on a column with no activation, so the same figures).

    ``packed`` = :func:`ws_pack_entries` of ``s_rows`` and ``s_data`` (uint16, each entry's
    row block in the low byte and its count in the high one): the pass over X then reads
    it instead of the two int32 arrays, a quarter of the memory (``check`` compares it
    with them entry by entry).

    ``table`` = W's nonzeros per (column k of W, row block r) as K x R bytes (uint8,
    C-contiguous; :func:`ws_table`): on the AVX-512 path (:func:`use_simd_path`) a
    column k's scalar work is then added to its R blocks 8 at a time (the same integer
    sums), instead of entry by entry; elsewhere it is not read. ``check`` compares it with
    ``s_rows`` and ``s_data``.

    ``sram_bound`` = per PE column, the largest of its blocks' ``comp_total`` and
    ``dense_total`` (int64, C entries): a column whose bound the step's SRAM peak so far
    already reaches cannot raise it, and its blocks' totals are not read (the memory a
    step reads most; a column no activation reaches, typically first, gives its peak
    from ``dead``). The same peak. ``check`` compares it with the totals."""
    cdef Py_ssize_t K = x_nz.shape[0], N = x_nz.shape[1]
    cdef WsPlan s
    _ws_plan(&s, K, k_b, s_indptr, s_rows, s_data, t_dense, choice, comp_total, dense_total,
             task, scalar, eos, wpv, dt, check, dead, packed, table, sram_bound)
    check_wpv("ws_step_columns", wpv, K, N)
    cdef int64_t rampL = 0
    if pipeline is not None:
        L_, hop, ramp, lat, launch, cushion, fill, push, shared = with_push(pipeline)
        rampL = ramp_floor_L("ws_step_columns", shared, one_chain(L_), N, K, wpv)
    work_a = np.empty((N, s.C))
    first_a = np.empty((N, s.C))
    last_a = np.empty((N, s.C))
    cdef double[:, ::1] work = work_a
    cdef double[:, ::1] first = first_a
    cdef double[:, ::1] last = last_a
    cdef double busy
    cdef int64_t v_max, sram, v_west
    cdef bint any_comp
    cdef int rc
    with nogil:
        rc = _ws_run(&s, &x_nz[0, 0], N, x_nz.strides[0], x_nz.strides[1], &work[0, 0],
                     &first[0, 0], &last[0, 0], &busy, &v_max, &sram, &any_comp, &v_west,
                     NULL, NULL, rampL)
    if rc < 0:
        raise MemoryError(f"ws_step_columns: scratch for X's {K} x {N} pattern")
    if pipeline is None:
        return (work_a, first_a, last_a, float(busy), int(v_max), int(sram), bool(any_comp))
    # the chain 8 positions wide on the AVX-512 path (the same floats)
    cdef double done = chain_columns("ws_step_columns", L_, work, first, last, True, fill, hop,
                                     ramp, lat, launch, task, cushion, _use_avx512, -1.0, dt,
                                     push)
    return (work_a, first_a, last_a, float(busy), int(v_max), int(sram), bool(any_comp),
            float(done))


def _quad_table(table, k_b):
    """A WsStep's table (K x R counts, or None) by quads of k per PE column, as
    wsk_table_quads_vnni reads it: (the bytes as int8, each column's offset into them, C +
    1); None where that path cannot take it (no table, no row block, a count above 127, a
    column of more than 65536 rows of X) or this CPU has no VNNI."""
    if table is None or not _VNNI_RUNS:
        return None
    K, R = table.shape
    C = len(k_b) - 1
    heights = np.diff(np.asarray(k_b, np.int64))
    if R == 0 or C < 1 or (table.size and int(table.max()) > 127) or heights.max() > 65536:
        return None
    groups = -(-heights // 4)
    off = np.zeros(C + 1, np.int64)
    np.cumsum(groups * (4 * R), out=off[1:])
    tq = np.zeros(max(int(off[C]), 1), np.int8)
    # one scatter (a loop over PE columns took 3x as long: ~3 ms a placement of sparse-mlp)
    k_b = np.asarray(k_b, np.int64)
    c = np.repeat(np.arange(C), heights)                # each k's PE column
    i = np.arange(K) - k_b[c]                           # its row within the column
    pos = off[c] + (i // 4) * (4 * R) + i % 4           # T[k, 0]'s byte
    tq[pos[:, None] + 4 * np.arange(R)] = table         # T[k, r] at pos + 4 r
    tq.flags.writeable = False
    off.flags.writeable = False
    return tq, off


def _frozen_copy(a):
    # a read-only copy of an array argument (a typed memoryview, an ndarray) that a kept
    # step reads, of its dtype; None stays None
    if a is None:
        return None
    c = np.array(a, copy=True)
    c.flags.writeable = False
    return c


cdef class WsStep:
    """:func:`ws_step_columns` with everything but X given once: ``WsStep(K, k_b, ...,
    sram_bound)`` takes its arguments after ``x_nz`` (the same, the same checks) with X's
    rows ``K``, and a ``pipeline``; ``step.run(x_nz)`` then gives ws_step_columns'
    ``(busy, v_max, sram, done)`` for a K x N X, and ``v_west``, the most wavelets down one
    PE column other than the first: the same loop on the same arrays, so the same figures,
    without checking and taking the structure's arrays again every step
    (a training step's product on a placement it keeps). The step reads its own copies of
    the arrays (made once, here): the caller may free or write to its own afterwards (the
    checks ran on what the step reads: a write after them cannot reach it)."""
    cdef WsPlan s
    cdef object keep            # the copies, read-only, their buffers held (s points into them)
    cdef const long[:] L
    cdef double hop, ramp, lat, launch, cushion, fill
    cdef long push
    cdef bint shared

    def __init__(self, Py_ssize_t K, const long[:] k_b, const int64_t[::1] s_indptr,
                 const int32_t[::1] s_rows, const int32_t[::1] s_data,
                 const double[::1] t_dense, const int8_t[::1] choice, comp_total,
                 dense_total, double task, double scalar, double eos, long wpv, double dt,
                 bint check=True, pipeline=None, dead=None, packed=None, table=None,
                 sram_bound=None):
        check_step_init("WsStep", "ws_step_columns'", self.keep, pipeline, K)
        L_, hop, ramp, lat, launch, cushion, fill, push, shared = with_push(pipeline)
        cdef const long[:] L = one_chain(L_)
        # the checks on the caller's arrays (its refusals), then the plan made again on
        # read-only copies, and only then the step's own fields replaced: a refused call
        # (a second __init__ too) leaves the step as it was, never pointing into arrays it
        # does not hold
        cdef WsPlan s
        _ws_plan(&s, K, k_b, s_indptr, s_rows, s_data, t_dense, choice, comp_total,
                 dense_total, task, scalar, eos, wpv, dt, check, dead, packed, table,
                 sram_bound)
        c = [_frozen_copy(a) for a in (k_b, s_indptr, s_rows, s_data, t_dense, choice,
                                       comp_total, dense_total, packed, table, sram_bound)]
        c_dead = None if dead is None else tuple(_frozen_copy(a) for a in dead)
        _ws_plan(&s, K, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], task, scalar, eos,
                 wpv, dt, False, c_dead, c[8], c[9], c[10])
        cdef const int8_t[::1] tq_v
        cdef const int64_t[::1] off_v
        quads = _quad_table(c[9], c[0])
        if quads is not None:
            tq_v, off_v = quads
            s.tq, s.tq_off = &tq_v[0], &off_v[0]
        keep = tuple(c) + (c_dead, quads)
        self.s = s
        self.keep = keep
        self.L = _frozen_copy(L)
        self.hop, self.ramp, self.lat, self.launch = hop, ramp, lat, launch
        self.cushion, self.fill, self.push, self.shared = cushion, fill, push, shared

    def run(self, x_nz):
        """``(busy, v_max, sram, done, v_west)`` for X's pattern ``x_nz`` (K x N bytes, any
        strides): ws_step_columns' figures and the most wavelets down one PE column other
        than the first (0 with one column or no sample)."""
        cdef WsFigures f
        self._run(x_nz, &f)
        return (float(f.busy), int(f.v_max), int(f.sram), float(f.done), int(f.v_west))

    def cycles_many(self, patterns, double first_hop, double task, double dt, long L_max,
                    bint blocks, bint chained):
        """analytic.weight_stationary_cycles' ``(cycles, lower bound, SRAM peak)`` for
        each of ``patterns`` (X's, K x N bytes each, in order) as three arrays (float64,
        float64, int64), from :meth:`run`'s figures and the bound's terms (analytic's
        _ws_step_cycles: ``first_hop``, ``task``, ``dt``, ``L_max``, ``blocks``,
        ``chained``), each float the one Python's expression gives there (max and min as
        Python's: the first of equals)."""
        cdef Py_ssize_t n = len(patterns), i, N
        est_a, low_a, sram_a = np.empty(n), np.empty(n), np.empty(n, np.int64)
        cdef double[::1] est_o = est_a
        cdef double[::1] low_o = low_a
        cdef int64_t[::1] sram_o = sram_a
        cdef WsFigures f
        cdef double busy_max, lower, est, ramp_bound
        cdef int64_t ramp_load
        for i in range(n):
            N = self._run(patterns[i], &f)
            busy_max = f.busy + <double> N * task if blocks else 0.0
            lower = py_max(first_hop + busy_max, first_hop + <double> f.v_max * dt)
            lower = py_max(lower, <double> N * (<double> L_max + task) if chained else 0.0)
            lower = lower + task
            est = f.done
            ramp_load = f.v_west + N * L_max if chained and L_max > 0 else 0
            if ramp_load:
                ramp_bound = first_hop + <double> (ramp_load - 1) * dt + task
                lower = py_max(lower, ramp_bound)
                est = py_max(est, ramp_bound)
            est_o[i], low_o[i], sram_o[i] = est, py_min(lower, est), f.sram
        return est_a, low_a, sram_a

    cdef Py_ssize_t _run(self, x_nz, WsFigures* f) except -1:
        """:meth:`run`'s figures into ``f``; returns X's samples (N)."""
        # an ndarray of bytes read in place (src/_step_init.pxd), else through a typed view
        cdef const unsigned char[:, :] view
        cdef XBytes X
        if not bytes_2d(x_nz, &X):
            view = x_nz
            X.x, X.K, X.N = &view[0, 0], view.shape[0], view.shape[1]
            X.s0, X.s1 = view.strides[0], view.strides[1]
        cdef Py_ssize_t K = X.K, N = X.N
        if K != self.s.K:
            raise ValueError(f"x_nz must have the step's {self.s.K} rows; received shape "
                             f"({K}, {N})")
        check_wpv("ws_step_columns", self.s.wpv, K, N)
        # chain_columns' checks, before the pass that now runs the chain
        check_chain_args("ws_step_columns", self.L, self.cushion)
        cdef int64_t rampL = ramp_floor_L("ws_step_columns", self.shared, self.L, N, K,
                                          self.s.wpv)
        # the chain of ws_step_columns' pipeline= (its shifted rounds, never the exact
        # scan: its inputs are not known to be whole; the send queue's where push binds),
        # each sample's row taken as made
        cdef StepChain ch
        ch.Lg, ch.fill, ch.hop, ch.ramp = self.L[0], self.fill, self.hop, self.ramp
        ch.lat, ch.launch, ch.task = self.lat, self.launch, self.s.task
        ch.cushion, ch.exact, ch.push = self.cushion, 0, self.push
        cdef bint any_comp
        cdef int rc
        f.done = 0.0
        with nogil:
            rc = _ws_run(&self.s, X.x, N, X.s0, X.s1,
                         NULL, NULL, NULL, &f.busy, &f.v_max, &f.sram, &any_comp, &f.v_west,
                         &ch, &f.done, rampL)
        if rc < 0:
            raise MemoryError(f"ws_step_columns: scratch for X's {K} x {N} pattern")
        return N


def ws_table(const int64_t[::1] s_indptr, const int32_t[::1] s_rows,
             const int32_t[::1] s_data, Py_ssize_t R):
    """:func:`ws_step_columns`' ``table``: W's nonzeros per (column k, row block r) as a
    K x R uint8 array, from the K + 1 ``s_indptr`` and the entries ``s_rows`` (0..R-1),
    ``s_data``; None when a count lies outside 0..255 or two entries name one (k, r) with
    nonzero counts (the step's check would refuse their sum)."""
    cdef Py_ssize_t K = s_indptr.shape[0] - 1, k, j
    if K < 0 or s_rows.shape[0] != s_data.shape[0] or R < 0:
        raise ValueError("s_indptr must hold K + 1 offsets and s_rows, s_data one entry each")
    out = np.zeros((K, R), np.uint8)
    cdef uint8_t[:, ::1] t = out
    for k in range(K):
        if not 0 <= s_indptr[k] <= s_indptr[k + 1] <= s_rows.shape[0]:
            raise ValueError(f"s_indptr must be nondecreasing within 0..{s_rows.shape[0]}")
        for j in range(s_indptr[k], s_indptr[k + 1]):
            if not 0 <= s_rows[j] < R:
                raise ValueError(f"s_rows[{j}] = {s_rows[j]} lies outside 0..{R - 1}")
            if not 0 <= s_data[j] <= 255 or t[k, s_rows[j]] != 0:
                return None
            t[k, s_rows[j]] = <uint8_t> s_data[j]
    return out


def ws_pack_entries(const int32_t[::1] s_rows, const int32_t[::1] s_data):
    """``s_rows`` and ``s_data`` as :func:`ws_step_columns`' ``packed``: one uint16 per
    entry, the row block in the low byte and the count in the high one; None when a row
    or a count lies outside 0..255 (the caller then passes the int32 arrays)."""
    cdef Py_ssize_t j, n = s_rows.shape[0]
    if s_data.shape[0] != n:
        raise ValueError(f"s_rows and s_data must have one length; received {n} and "
                         f"{s_data.shape[0]}")
    out_a = np.empty(n, np.uint16)
    cdef uint16_t[::1] out = out_a
    for j in range(n):
        if not (0 <= s_rows[j] <= 255 and 0 <= s_data[j] <= 255):
            return None
        out[j] = <uint16_t> (s_rows[j] | (s_data[j] << 8))
    return out_a


def ws_dead_columns(const double[::1] t_dense, const int8_t[::1] choice, comp_total,
                    dense_total, double task, double scalar):
    """Per PE column (C = choice's length / R), the figures :func:`ws_step_columns` takes
    from its R blocks when no activation of the batch reaches the column: (the compressed
    blocks' slowest time, the dense blocks' slowest task, the SRAM peak, whether any block
    is compressed), by the same loop on a count of 0 and no scalar work, so the same
    values. Block arrays as ws_step_columns takes them (b = c * R + r)."""
    cdef Py_ssize_t R = t_dense.shape[0], c, C
    cdef bint wide = _totals_wide(comp_total, dense_total)
    if R == 0:
        raise ValueError("R must be at least 1 to know the number of PE columns")
    C = choice.shape[0] // R
    if choice.shape[0] != R * C or comp_total.size != R * C or dense_total.size != R * C:
        raise ValueError(f"the block arrays must hold R x C entries (R = {R}); received "
                         f"choice {choice.shape[0]}, comp_total {comp_total.size}, "
                         f"dense_total {dense_total.size}")
    comp_flat, dense_flat = comp_total.ravel(), dense_total.ravel()    # alive while read
    cdef const void* dense_p = _first(dense_flat, wide)
    cdef const void* comp_p = _first(comp_flat, wide)
    cmax_a, tm_a = np.zeros(C), np.zeros(C)
    sram_a, comp_a = np.zeros(C, np.int64), np.zeros(C, np.int8)
    cdef double[::1] cmax_o = cmax_a
    cdef double[::1] tm_o = tm_a
    cdef int64_t[::1] sram_o = sram_a
    cdef int8_t[::1] comp_o = comp_a
    cdef ColumnFigures fig
    with nogil:
        for c in range(C):
            # ws_step_columns' pass over a column's blocks, with no activation
            fig = _column_blocks(R, c * R, &t_dense[0], &choice[0], NULL, 0.0, 0.0 * task,
                                 scalar, dense_p, comp_p, wide)
            cmax_o[c], tm_o[c], sram_o[c], comp_o[c] = fig.cmax, fig.tm, fig.sram, fig.comp
    return cmax_a, tm_a, sram_a, comp_a
