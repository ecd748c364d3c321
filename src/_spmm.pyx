# Typed implementations of spmm, sddmm and the CSR helpers they need.
#
# Every function here trusts its caller (wsekern/kernels.py and
# wsekern/sparse.py validate shapes, dtypes, index bounds and contiguity);
# the loops are `noexcept nogil` and never raise.
from cython.parallel cimport prange, parallel, threadid
from libc.stdlib cimport malloc, free
from libc.string cimport memcmp, memcpy, memset
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uintptr_t
from libc.math cimport ceil, isfinite
cimport cython
from cython cimport floating

from _fused cimport index_t
from _rows cimport spmm_row
from _simd cimport (wsk_spmm_scatter_f32_i32, wsk_spmm_scatter_f32_i64,
                    wsk_spmm_scatter_f64_i32, wsk_spmm_scatter_f64_i64,
                    wsk_dot_f32, wsk_dot_f64, wsk_scan_f32, wsk_scan_f64,
                    wsk_simd_init, wsk_simd_available,
                    wsk_compact_f32, wsk_compact_f64, wsk_compact_csr_f32_i32,
                    wsk_compact_csr_f32_i64, wsk_compact_csr_f64_i32, wsk_compact_csr_f64_i64,
                    wsk_openmp_enabled, wsk_omp_max_threads, wsk_compiler)

import mmap
import os
import threading

import numpy as np
cimport numpy as cnp
from posix.resource cimport getrlimit, rlimit, RLIMIT_AS, RLIM_INFINITY

cnp.import_array()

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* Whether x[0:n] holds a value other than +-0.0 (NaN, inf and subnormals count): an OR
       of the bits, the sign masked off at the end. Plain integer ORs the compiler
       vectorises (SSE2 here) into independent loads; the float compare it made of
       x[j] != 0 ran as one dependent and/andn/or chain (_scan_alive). */
    static inline int wsk_any_nonzero_f32(const float* x, ptrdiff_t n) {
        uint32_t acc = 0, b;
        for (ptrdiff_t j = 0; j < n; j++) { memcpy(&b, x + j, sizeof b); acc |= b; }
        return (acc & 0x7fffffffu) != 0;
    }
    static inline int wsk_any_nonzero_f64(const double* x, ptrdiff_t n) {
        uint64_t acc = 0, b;
        for (ptrdiff_t j = 0; j < n; j++) { memcpy(&b, x + j, sizeof b); acc |= b; }
        return (acc & 0x7fffffffffffffffull) != 0;
    }
    """
    int wsk_any_nonzero_f32(const float* x, Py_ssize_t n) noexcept nogil
    int wsk_any_nonzero_f64(const double* x, Py_ssize_t n) noexcept nogil


cdef inline int _any_nonzero(const floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return wsk_any_nonzero_f32(x, n)
    else:
        return wsk_any_nonzero_f64(x, n)


def simd_init(int path=0, str uarch=None):
    """Select the SIMD path (0 the best this CPU runs, 1 baseline, 2 AVX2, 4 AVX-512), and
    the rows kernels' way with one-tile column blocks for this CPU's ``uarch`` (a name of
    _cpu.uarch_of; see _BLOCK_MODE). Without ``uarch`` the way stays as it was: it belongs
    to the CPU, not to the path (tests switch paths in one process).

    Returns the name of the path selected."""
    global _x_line, _x_line_reuse, _narrow_f32, _narrow_f64
    name = wsk_simd_init(path).decode()
    wsk_narrow_init()
    _x_line, _x_line_reuse = _X_LINE.get(name, (0, 0))
    _narrow_f32, _narrow_f64 = _NARROW.get(name, (1, 1))
    if uarch is not None:
        wsk_spmm_set_block_mode(_BLOCK_MODE.get(uarch, 0))
    return name


# Per microarchitecture, how the baseline and AVX2 rows kernels run a column block of one
# 8x1 tile (wsk_spmm_block_mode in wsk_simd.h); one not named keeps mode 0, as tuned on
# Zen 3/4 (there a prefetch 8 ahead in L2 gained 3-5 %, and AVX2's split prefetch loop lost
# 3-10 % at fp64 4096^2 x 64; mode 1 not measured there). Zen 5, mode 1 (the block's pitch
# a constant, four nonzeros an iteration, no prefetch while the block is in L2, 16 ahead in
# a loop of their own past it): whole csr_spmm calls against mode 0 in one process,
# alternating (W of scipy.sparse.random(density=0.1, random_state=0), median of 7 rounds of
# best-of-5 thread CPU times, load 9-11, s25): baseline 1.25-1.29x at 1024^2 x 64/256/1024
# fp32 and fp64, 1.03-1.05x at 4096^2 x 64; AVX2 1.20-1.24x and 1.06-1.07x; the same bits.
# Without the prefetch the front end has 2 instructions a nonzero fewer to issue: a C
# harness's X wholly in L1 ran only 5 % faster than in L2 (the rows kernel is not bound by
# L2 there, and blocking K to keep X in L1 ran 3-37 % slower: each row's partial sums back
# to Y at every block edge, s25 base25's notes).
_BLOCK_MODE = {"zen5": 1}


def block_mode(mode=None):
    """The rows kernels' block mode (see _BLOCK_MODE); with ``mode`` (0 or 1), set it
    first (for tests: both modes give the same bits). Returns the mode before the call."""
    cdef int before = wsk_spmm_block_mode
    if mode is not None:
        if mode not in (0, 1):
            raise ValueError(f"block mode must be 0 or 1; received {mode!r}")
        wsk_spmm_set_block_mode(mode)
    return before


# Per SIMD path, (the vector line the rows kernels' loads of X start on, the least stored
# weights a row of X meets on average, nnz / K, for an X off that line to be copied onto
# it first); a path not named reads X as it is. An X off the line (NumPy aligns to 16
# bytes) splits every load of a row: the dense call (X read whole, no column blocks) ran
# 1.26-1.32x slower at offsets 16/32/48 than at 0 on Zen 5's AVX-512 path, 1.05-1.10x at
# 16/48 on AVX2 (32 there: within 3 %), alike on the baseline (4096^2 x 64 and 1024^2 x 64
# fp32, 90 % zeros). The copy, one pass over X, was repaid from about 8 weights a row on
# AVX-512 (1024^2 x 64 and x 128, X 16 bytes off: 0.79-0.94x at 5, 1.06-1.10x at 10,
# 1.16-1.25x from 20), from about 20 on AVX2 (0.98x at 10, 1.01-1.09x at 20, 1.05-1.15x
# past 30), s24.
_X_LINE = {"avx512": (64, 10), "avx2": (32, 24)}
cdef Py_ssize_t _x_line = 0
cdef Py_ssize_t _x_line_reuse = 0


# ... and X of at most this many bytes (the kept buffer's: no fresh memory a call): past it
# the copy's pass over memory cost more than the split loads saved (Zen 5 AVX-512, fp32 X
# of K x 64, W K x K with 12 weights a row, X 16 bytes off, the kernel: 4 MiB 0.79 -> 0.59
# ms, 8 MiB 1.75-1.91 -> 1.65-1.96, 16 MiB 5.97-6.40 -> 6.26-7.25, 64 MiB 39.0-40.6 ->
# 42.4-43.0; review_s8, s24), and X's memory is never doubled
DEF X_LINE_MAX_BYTES = 4 << 20


cdef inline bint _onto_line(const void* x, Py_ssize_t pitch,
                            Py_ssize_t nbytes) noexcept nogil:
    # whether X (nbytes, rows of pitch bytes) is copied onto the vector line first: it
    # starts off the line, its rows could all start on it, and it is small enough
    return (_x_line != 0 and (<uintptr_t>x) % _x_line != 0 and pitch % _x_line == 0
            and nbytes <= X_LINE_MAX_BYTES)


cdef tuple _line_copy(const void* x, Py_ssize_t nbytes):
    # (the copy's bytes, the kept buffer taken or None: give it back with _live_release):
    # X's nbytes copied whole onto the 64-byte line (_x_line_buffer), the same bits
    xbytes, raw = _x_line_buffer(nbytes)
    cdef void* xa = cnp.PyArray_DATA(xbytes)
    with nogil:
        memcpy(xa, x, nbytes)
    return xbytes, raw


def simd_available():
    """The SIMD paths this CPU runs, as bits: 1 baseline, 2 AVX2, 4 AVX-512."""
    return wsk_simd_available()


def livemap_compaction():
    """Whether csr_spmm's compaction against a live map of at most 4096 rows runs the
    register form (the AVX-512 path selected, and the CPU has VPOPCNTDQ)."""
    return wsk_compact_csr_f32_i32_lm != NULL


def livemap_fused():
    """Whether csr_spmm's per-row variant at 64 float32 columns, with the live map in
    registers, runs the compaction fused with the multiply (the CPU and path of
    livemap_compaction)."""
    return wsk_spmm_rows_lm_f32_n64 != NULL


def livebits_fused():
    """Whether csr_spmm_plain's one-thread csr-skip-rows at 64 float32 columns (X of at most
    4096 rows) runs the fused kernel on X itself, its live rows as bits in registers, with
    no X_live copy (the CPU and path of livemap_fused)."""
    return wsk_spmm_rows_lb_f32_n64 != NULL


def compiler():
    return wsk_compiler().decode()


def openmp_enabled():
    return bool(wsk_openmp_enabled())


def omp_max_threads():
    return wsk_omp_max_threads()


def csr_spmm(const floating[::1] data, const index_t[::1] indices,
             const index_t[::1] indptr, const floating[:, ::1] X,
             floating[:, ::1] out, const index_t[::1] x_remap=None, int n_threads=1,
             Py_ssize_t n_block=0, bint check_cols=False, const index_t[::1] x_rows=None):
    """out = W @ X for W in CSR; X and out row-major.

    With ``check_cols``, the column indices have not been
    checked: each row's are checked against X's rows just before the row is first
    multiplied (they are then in L1, so the check costs a fraction of a separate pass over
    all of them), and a row holding one out of range is not multiplied. Returns the number
    of such rows (0 when all are valid; ``out`` is then not the product). With
    ``x_remap`` they are checked against its length first, in one pass, and nothing is
    computed when one is out of range.

    Without ``x_remap``, X is the full (K, N) operand.  With it, X holds only
    the live rows of the operand plus one zero row at the end, and
    ``x_remap[k]`` is the row of X holding original row k (the zero row for
    a dead one).  Nonzeros of W meeting a dead row are then dropped by a
    branch-free compaction per row (the remap's scalar loads, then a SIMD
    compress where the CPU has one; on AVX-512 with VPOPCNTDQ, when the remap
    is the live map of at most 4096 rows, as :func:`live_rows` and
    :func:`live_map` build it, the map held in registers instead, the same
    entries kept), O(nnz), so dead rows cost nothing in the
    O(nnz * N) part, and the smaller X stays in cache: 16 rows at a time into a
    per-thread buffer, multiplied at once, when X is one block (at 64 float32 columns
    with the map in registers, each row compacted while the row before it is
    multiplied, the same sums), else once for all
    blocks into a copy of W's arrays (each row at its own offset, so rows compact
    in parallel).  A weight that is inf/NaN is
    kept and meets the zero row, so inf * 0 gives NaN as in SciPy.

    With 0 < ``n_block`` < N, X's columns go in blocks of ``n_block``: each block is
    first copied into a contiguous (rows, n_block) buffer, so the rows of X that W's rows
    meet stay in L2 while every row of W passes over the block (and their pieces do not
    share cache sets through a power-of-two row pitch). W is streamed once per block.
    With ``x_rows`` (only with ``x_remap`` and 0 < ``n_block`` < N), X is the full operand
    and ``x_rows[q]`` the row of X that is live row q (:func:`live_map`): the column blocks
    copy those rows, then a zero row, straight from X, so no copy of the live rows is made
    first (:func:`live_rows`); the remap and the sums are those of X's live rows.
    A remap value outside X's rows (with ``x_rows``: outside ``[0, len(x_rows)]``) is
    refused with ValueError before anything is computed.
    Work: O(nnz(W) * N) plus O(K * N) for the copies; threads own disjoint rows of ``out``.
    """
    # the kernel reads out's N columns from each row of X and indptr[0:M + 1]
    if X.shape[1] != out.shape[1] or indptr.shape[0] != out.shape[0] + 1:
        raise ValueError(f"expected X with {out.shape[1]} columns and indptr of "
                         f"{out.shape[0] + 1} entries to match out ({out.shape[0]}, {out.shape[1]}); "
                         f"received X.shape=({X.shape[0]}, {X.shape[1]}), indptr of "
                         f"{indptr.shape[0]}")
    if x_rows is not None:
        if x_remap is None or not 0 < n_block < X.shape[1]:
            raise ValueError("x_rows needs x_remap and 0 < n_block < N")
        if not _rows_in_range(x_rows, X.shape[0]):
            raise ValueError(f"x_rows must name rows of X in [0, {X.shape[0]})")
    if x_remap is not None:
        # the kernel reads row x_remap[k] of X (with x_rows: of the live rows and the zero
        # row after them): one pass over the remap, O(K), against the O(nnz * N) product
        n_live = X.shape[0] if x_rows is None else x_rows.shape[0] + 1
        if not _rows_in_range(x_remap, n_live):
            raise ValueError(f"x_remap must name rows in [0, {n_live}) (the rows of "
                             f"{'X' if x_rows is None else 'x_rows and the zero row'})")
        if check_cols:
            # the kernel reads x_remap[cols[p]] unchecked: W's indices against the remap's
            # length first, O(nnz); rows holding one out of range are counted, nothing is
            # computed (a column index past the remap read past it, and could segfault)
            n_bad = _rows_out_of_remap(indices, indptr, x_remap.shape[0])
            if n_bad:
                return n_bad
    return _csr_spmm(data, indices, indptr, X, out, x_remap, n_threads, n_block,
                     check_cols and x_remap is None, x_rows)


cdef inline index_t _last_index(Py_ssize_t n, index_t kind) noexcept nogil:
    # The last valid index of n positions in the index type of ``kind`` (its value unused):
    # an n wider than int32 admits every non-negative int32.
    if index_t is int32_t:
        return <index_t>min(n - 1, 2147483647)
    return <index_t>(n - 1)


cdef Py_ssize_t _rows_out_of_remap(const index_t[::1] indices, const index_t[::1] indptr,
                                   Py_ssize_t K):
    # the rows of W (indptr, indices) holding a column index outside [0, K)
    cdef Py_ssize_t i, n_bad = 0, M = indptr.shape[0] - 1
    cdef index_t last = _last_index(K, <index_t>0)
    if M <= 0 or indices.shape[0] == 0:
        return 0
    with nogil:
        for i in range(M):
            n_bad += not _cols_in_range(&indices[0] + indptr[i], indptr[i + 1] - indptr[i],
                                        last)
    return n_bad


cdef bint _rows_in_range(const index_t[::1] rows, Py_ssize_t K):
    cdef Py_ssize_t q
    cdef int bad = 0
    with nogil:
        for q in range(rows.shape[0]):
            bad |= (rows[q] < 0) | (rows[q] >= K)
    return not bad


cdef extern from "wsk_simd.h" nogil:
    ctypedef Py_ssize_t (*lm_f32_t)(const float*, const int32_t*, Py_ssize_t, const uint32_t*,
                                    int32_t, uint32_t, float*, int32_t*) noexcept
    ctypedef Py_ssize_t (*lm_f64_t)(const double*, const int32_t*, Py_ssize_t,
                                    const uint32_t*, int32_t, uint32_t, double*,
                                    int32_t*) noexcept
    lm_f32_t wsk_compact_csr_f32_i32_lm
    ctypedef void (*lm_rows_f32_t)(const float*, const int32_t*, const int32_t*, Py_ssize_t,
                                   Py_ssize_t, const uint32_t*, int32_t, uint32_t,
                                   const float*, Py_ssize_t, float*, Py_ssize_t, float*,
                                   int32_t*, Py_ssize_t, uint8_t*) noexcept
    lm_rows_f32_t wsk_spmm_rows_lm_f32_n64
    ctypedef void (*lb_rows_f32_t)(const float*, const int32_t*, const int32_t*, Py_ssize_t,
                                   Py_ssize_t, const uint32_t*, uint32_t, const float*,
                                   float*, Py_ssize_t, float*, int32_t*, Py_ssize_t,
                                   uint8_t*) noexcept
    lb_rows_f32_t wsk_spmm_rows_lb_f32_n64
    ctypedef void (*lb_tiles_f32_t)(const float*, const int32_t*, const int32_t*, Py_ssize_t,
                                    Py_ssize_t, const uint32_t*, uint32_t, const float*,
                                    Py_ssize_t, float*, Py_ssize_t, float*, int32_t*,
                                    Py_ssize_t, uint8_t*) noexcept
    lb_tiles_f32_t wsk_spmm_rows_lb_f32_t128
    int wsk_livebits_build(const uint8_t*, Py_ssize_t, uint32_t*) noexcept
    lm_f64_t wsk_compact_csr_f64_i32_lm
    int wsk_livemap_build(const int32_t*, Py_ssize_t, int32_t, uint32_t*) noexcept
    void wsk_copy_rows(void*, const void*, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept
    int wsk_spmm_block_mode
    void wsk_spmm_set_block_mode(int) noexcept
    void wsk_spmm_rows_f32_i32(const float*, const int32_t*, const int32_t*, Py_ssize_t,
                               Py_ssize_t, Py_ssize_t, const uint8_t*, const float*,
                               Py_ssize_t, Py_ssize_t, float*, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_spmm_rows_f32_i64(const float*, const int64_t*, const int64_t*, Py_ssize_t,
                               Py_ssize_t, Py_ssize_t, const uint8_t*, const float*,
                               Py_ssize_t, Py_ssize_t, float*, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_spmm_rows_f64_i32(const double*, const int32_t*, const int32_t*, Py_ssize_t,
                               Py_ssize_t, Py_ssize_t, const uint8_t*, const double*,
                               Py_ssize_t, Py_ssize_t, double*, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_spmm_rows_f64_i64(const double*, const int64_t*, const int64_t*, Py_ssize_t,
                               Py_ssize_t, Py_ssize_t, const uint8_t*, const double*,
                               Py_ssize_t, Py_ssize_t, double*, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_spmm_rows_counted_f32_i32(const float*, const int32_t*, const int32_t*,
                                       const Py_ssize_t*, Py_ssize_t, Py_ssize_t, const float*,
                                       Py_ssize_t, Py_ssize_t, float*, Py_ssize_t,
                                       Py_ssize_t) noexcept
    void wsk_spmm_rows_counted_f32_i64(const float*, const int64_t*, const int64_t*,
                                       const Py_ssize_t*, Py_ssize_t, Py_ssize_t, const float*,
                                       Py_ssize_t, Py_ssize_t, float*, Py_ssize_t,
                                       Py_ssize_t) noexcept
    void wsk_spmm_rows_counted_f64_i32(const double*, const int32_t*, const int32_t*,
                                       const Py_ssize_t*, Py_ssize_t, Py_ssize_t, const double*,
                                       Py_ssize_t, Py_ssize_t, double*, Py_ssize_t,
                                       Py_ssize_t) noexcept
    void wsk_spmm_rows_counted_f64_i64(const double*, const int64_t*, const int64_t*,
                                       const Py_ssize_t*, Py_ssize_t, Py_ssize_t, const double*,
                                       Py_ssize_t, Py_ssize_t, double*, Py_ssize_t,
                                       Py_ssize_t) noexcept


cdef extern from "wsk_narrow.h" nogil:
    Py_ssize_t wsk_spmm_narrow_f32_i32(const float*, const int32_t*, const int32_t*, Py_ssize_t,
                                       Py_ssize_t, const float*, Py_ssize_t, float*,
                                       Py_ssize_t) noexcept
    Py_ssize_t wsk_spmm_narrow_f32_i64(const float*, const int64_t*, const int64_t*, Py_ssize_t,
                                       Py_ssize_t, const float*, Py_ssize_t, float*,
                                       Py_ssize_t) noexcept
    Py_ssize_t wsk_spmm_narrow_f64_i32(const double*, const int32_t*, const int32_t*,
                                       Py_ssize_t, Py_ssize_t, const double*, Py_ssize_t,
                                       double*, Py_ssize_t) noexcept
    Py_ssize_t wsk_spmm_narrow_f64_i64(const double*, const int64_t*, const int64_t*,
                                       Py_ssize_t, Py_ssize_t, const double*, Py_ssize_t,
                                       double*, Py_ssize_t) noexcept
    int wsk_spmm_narrow_nc_f32_i32(const float*, const int32_t*, const int32_t*, Py_ssize_t,
                                   Py_ssize_t, const float*, float*, Py_ssize_t) noexcept
    int wsk_spmm_narrow_nc_f32_i64(const float*, const int64_t*, const int64_t*, Py_ssize_t,
                                   Py_ssize_t, const float*, float*, Py_ssize_t) noexcept
    int wsk_spmm_narrow_nc_f64_i32(const double*, const int32_t*, const int32_t*, Py_ssize_t,
                                   Py_ssize_t, const double*, double*, Py_ssize_t) noexcept
    int wsk_spmm_narrow_nc_f64_i64(const double*, const int64_t*, const int64_t*, Py_ssize_t,
                                   Py_ssize_t, const double*, double*, Py_ssize_t) noexcept
    int wsk_cols_bad_i32(const int32_t*, Py_ssize_t, int32_t) noexcept
    int wsk_cols_bad_i64(const int64_t*, Py_ssize_t, int64_t) noexcept
    int wsk_indptr_bad_i32(const int32_t*, Py_ssize_t, Py_ssize_t) noexcept
    int wsk_indptr_bad_i64(const int64_t*, Py_ssize_t, Py_ssize_t) noexcept
    Py_ssize_t wsk_count_nz_f32(const float*, Py_ssize_t, Py_ssize_t) noexcept
    Py_ssize_t wsk_count_nz_f64(const double*, Py_ssize_t, Py_ssize_t) noexcept
    void wsk_narrow_init() noexcept


# The widest X (columns: float32, float64) that takes wsk_spmm_narrow rather than the rows
# kernel, per SIMD path (set in simd_init; a path not named: one column). Once half a
# vector's lanes less one, when the rows kernel's tail ran a scalar pass per column; its
# tail is one masked pass now (s26), and the crossing moved. Zen 5, whole spmm calls,
# W 1024^2 at 90 % zeros, the two kernels alternating in one process (rows / narrow
# time, > 1: narrow faster; s27 base27's narrow_*.txt): AVX-512 fp32 N = 2 1.22, 3 0.96,
# 4-7 0.81-0.53 (was 7), fp64 N = 2 1.19, 3 0.99; AVX2 fp32 2 1.23, 3 1.03, 4 0.76, fp64
# 2 1.12, 3 1.17, 4 0.69 (was 1); baseline fp32 2 1.17, 3 1.00, 4 0.60 (was 1), fp64 2
# 0.89. Within a width the two kernels give the same bits (test_spmm_narrow): past it
# they may not (baseline fp64 N = 2-3, fp32 N >= 4: the rows kernel's full-vector tiles).
_NARROW = {"avx512": (2, 3), "avx2": (3, 3), "baseline": (2, 1)}
cdef Py_ssize_t _narrow_f32 = 1
cdef Py_ssize_t _narrow_f64 = 1


cdef inline bint _narrow(Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    # X of at most the path's narrow width (_NARROW): wsk_spmm_narrow, which checks the
    # column indices in its pass. fp64 with int64 indices too on AVX2/AVX-512 (once left to
    # the rows kernel, whose leftover columns summed 1 ulp apart there: fused alike since
    # s26; 0 of 6144 entries differ at 1024^2 x 1..3, s27 base27's i64bits.txt)
    return 0 < n <= (_narrow_f32 if itemsize == 4 else _narrow_f64)


cdef inline Py_ssize_t _spmm_narrow(const floating* vals, const index_t* cols,
                                    const index_t* indptr, Py_ssize_t i0, Py_ssize_t i1,
                                    const floating* X, Py_ssize_t K, floating* out,
                                    Py_ssize_t n) noexcept nogil:
    # rows i0 <= i < i1 of out (n columns, X and out contiguous), each row's column
    # indices checked in the same pass: the rows holding one outside [0, K)
    if floating is float:
        if index_t is int32_t:
            return wsk_spmm_narrow_f32_i32(vals, cols, indptr, i0, i1, X, K, out, n)
        else:
            return wsk_spmm_narrow_f32_i64(vals, cols, indptr, i0, i1, X, K, out, n)
    else:
        if index_t is int32_t:
            return wsk_spmm_narrow_f64_i32(vals, cols, indptr, i0, i1, X, K, out, n)
        else:
            return wsk_spmm_narrow_f64_i64(vals, cols, indptr, i0, i1, X, K, out, n)


def narrow_width(dtype):
    """The widest X (columns) the narrow kernel takes for ``dtype`` on the SIMD path in use
    (``_NARROW``)."""
    return _narrow_f32 if np.dtype(dtype).itemsize == 4 else _narrow_f64


def narrow_widths(f32=None, f64=None):
    """The narrow kernel's widths (float32, float64 columns) on the path in use; with
    ``f32``/``f64`` (1 to 15), set them first until the next simd_init (for tests and
    benchmarks; past _NARROW's widths the two kernels may sum in another order). Returns
    the widths before the call."""
    global _narrow_f32, _narrow_f64
    before = (_narrow_f32, _narrow_f64)
    for name, w in (("f32", f32), ("f64", f64)):
        if w is not None and not (type(w) is int and 1 <= w <= 15):
            raise ValueError(f"narrow width {name} must be an int from 1 to 15; received {w!r}")
    if f32 is not None:
        _narrow_f32 = f32
    if f64 is not None:
        _narrow_f64 = f64
    return before


# Rows of W per call of _spmm_rows (and per piece of _csr_spmm's dynamic schedule).
DEF ROWS_PER_CALL = 16


cdef inline void _spmm_rows(const floating* vals, const index_t* cols, const index_t* indptr,
                            Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t n_idx,
                            const uint8_t* skip, const floating* X, Py_ssize_t k_rows,
                            Py_ssize_t ldx, floating* out, Py_ssize_t ldo,
                            Py_ssize_t n) noexcept nogil:
    # out[i, 0:n] = W[i] @ X (k_rows rows of pitch ldx) for i0 <= i < i1 but the rows flagged
    # in skip (may be NULL), on W's own arrays (cols[0:n_idx] readable): a row's last
    # nonzeros may prefetch what the next row meets (wsk_spmm_rows)
    if floating is float:
        if index_t is int32_t:
            wsk_spmm_rows_f32_i32(vals, cols, indptr, i0, i1, n_idx, skip, X, k_rows, ldx,
                                  out, ldo, n)
        else:
            wsk_spmm_rows_f32_i64(vals, cols, indptr, i0, i1, n_idx, skip, X, k_rows, ldx,
                                  out, ldo, n)
    else:
        if index_t is int32_t:
            wsk_spmm_rows_f64_i32(vals, cols, indptr, i0, i1, n_idx, skip, X, k_rows, ldx,
                                  out, ldo, n)
        else:
            wsk_spmm_rows_f64_i64(vals, cols, indptr, i0, i1, n_idx, skip, X, k_rows, ldx,
                                  out, ldo, n)


cdef inline void _spmm_rows_counted(const floating* vals, const index_t* cols,
                                    const index_t* indptr, const Py_ssize_t* counts,
                                    Py_ssize_t i0, Py_ssize_t i1, const floating* X,
                                    Py_ssize_t k_rows, Py_ssize_t ldx, floating* out,
                                    Py_ssize_t ldo, Py_ssize_t n) noexcept nogil:
    # _spmm_rows on rows compacted in place: row i is counts[i] nonzeros from indptr[i]
    if floating is float:
        if index_t is int32_t:
            wsk_spmm_rows_counted_f32_i32(vals, cols, indptr, counts, i0, i1, X, k_rows, ldx,
                                          out, ldo, n)
        else:
            wsk_spmm_rows_counted_f32_i64(vals, cols, indptr, counts, i0, i1, X, k_rows, ldx,
                                          out, ldo, n)
    else:
        if index_t is int32_t:
            wsk_spmm_rows_counted_f64_i32(vals, cols, indptr, counts, i0, i1, X, k_rows, ldx,
                                          out, ldo, n)
        else:
            wsk_spmm_rows_counted_f64_i64(vals, cols, indptr, counts, i0, i1, X, k_rows, ldx,
                                          out, ldo, n)


cdef Py_ssize_t _csr_spmm(const floating[::1] data, const index_t[::1] indices,
                          const index_t[::1] indptr, const floating[:, ::1] X,
                          floating[:, ::1] out, const index_t[::1] x_remap, int n_threads,
                          Py_ssize_t n_block, bint check_cols,
                          const index_t[::1] x_rows=None) except -1:
    # csr_spmm's body: also called, specialised, by csr_spmm_plain. With x_rows (the
    # caller's checks: x_remap given, 0 < n_block < N, rows in range), K below counts the
    # live rows and the zero row, which the block copies gather from X.
    cdef Py_ssize_t M = out.shape[0], N = out.shape[1]
    cdef Py_ssize_t K = X.shape[0] if x_rows is None else x_rows.shape[0] + 1
    cdef Py_ssize_t i, k, j0 = 0, nb, t, q, max_row = 0, nnz = data.shape[0], n_bad = 0
    cdef Py_ssize_t n_idx = indices.shape[0]
    # a buffer a thread below: OpenMP's num_threads(0) would start more threads than buffers
    n_threads = max(1, n_threads)
    if M == 0 or N == 0:
        return 0
    if nnz == 0:
        out[:, :] = 0
        return 0
    if n_block <= 0 or n_block > N:
        n_block = N
    # X narrower than a vector on all of W's rows: the narrow kernel (the rows kernel's
    # sums), the column check in its pass, no OpenMP region on one thread
    if x_remap is None and n_block == N and _narrow(N, sizeof(floating)):
        return _csr_narrow(data, indices, indptr, X, out, n_threads)
    cdef const floating* vals = &data[0]
    cdef const index_t* cols = &indices[0]
    cdef const floating* x = &X[0, 0]
    cdef index_t zero_row = K - 1
    cdef const index_t* remap = NULL if x_remap is None else &x_remap[0]
    cdef uint8_t[::1] row_bad = None
    cdef uint8_t* bad = NULL
    cdef index_t last_r = 0
    if check_cols:
        row_bad = np.zeros(M, dtype=np.uint8)
    cdef const index_t* rows = NULL
    if x_rows is not None and x_rows.shape[0]:
        rows = &x_rows[0]
    # The remap as the live map in registers where the CPU has that compaction (AVX-512
    # with VPOPCNTDQ) and the remap is one of at most WSK_LIVEMAP_K entries: the same
    # entries kept and the same remapped columns, without a load per nonzero
    cdef uint32_t lm_tab[256]
    cdef const uint32_t* lm = NULL
    if index_t is int32_t and remap != NULL and wsk_compact_csr_f32_i32_lm != NULL:
        if wsk_livemap_build(remap, x_remap.shape[0], zero_row, lm_tab):
            lm = lm_tab
    # With a remap, check_cols (csr_spmm_plain's call): the register form checks each row's
    # columns against the remap's length as it compacts the row, free (a separate pass
    # over W's indices first took 0.19 ms of 3.6 at 4096^2 x 64 fp32, half of X dead, Zen
    # 4, one thread), a row holding one out of range compacted to nothing; the remap's
    # loads need them checked first, so one pass over all of them (checked per row ahead
    # of the compaction instead, the first reads of each row stalled: 4-5 % slower on AVX2
    # and the baseline there), nothing computed when one is out of range.
    if check_cols and remap != NULL:
        last_r = _last_index(x_remap.shape[0], <index_t>0)
        if lm != NULL:
            bad = &row_bad[0]
        elif not _cols_in_range(cols, nnz, last_r):
            return max(1, _rows_out_of_remap(indices, indptr, x_remap.shape[0]))
    cdef bint per_row = remap != NULL and n_block == N
    # The per-row variant at 64 float32 columns with the live map in registers: the
    # compaction of each row fused with the multiply of the row before it
    # (wsk_spmm_rows_livemap_f32_n64), in two buffers of cap entries a thread
    cdef bint fused = (per_row and lm != NULL and floating is float and N == 64
                       and wsk_spmm_rows_lm_f32_n64 != NULL)
    cdef Py_ssize_t cap = 0
    # Rows compacted once: row i's kept nonzeros at offset indptr[i] (a SIMD compress
    # writes below the input position it has read, so never into the next row).
    cdef bint compact_once = remap != NULL and not per_row
    # Scratch only for the variants that use it: the plain call allocates nothing.
    cdef floating[:, ::1] block = None
    cdef object block_obj = None
    cdef floating[:, ::1] vbuf = None
    cdef index_t[:, ::1] cbuf = None
    cdef floating[::1] kept_vals = None
    cdef index_t[::1] kept_cols = None
    cdef Py_ssize_t[::1] kept = None
    cdef index_t[::1] kept_ptr = None
    cdef const index_t* ip = &indptr[0]     # the rows calls' indptr
    cdef const floating* b = x
    cdef const Py_ssize_t* counts = NULL
    if n_block < N or per_row or compact_once:
        dtype = np.asarray(data).dtype
        idx_dtype = np.asarray(indices).dtype
    if n_block < N:
        block_obj = _block_buffer(K, n_block, dtype)
        block = block_obj
        b = &block[0, 0]
    cdef index_t[:, ::1] pbuf = None
    if per_row:
        # a thread compacts ROWS_PER_CALL rows back to back into its buffers, then runs
        # them through the rows call at once (as the compacted-once W does: it may prefetch,
        # in a row's last nonzeros, what the next row's first meet); the buffers hold the
        # longest such run of W's rows (a row's compress writes below where its input ends)
        for k in range(0, M, ROWS_PER_CALL):
            max_row = max(max_row, indptr[min(M, k + ROWS_PER_CALL)] - indptr[k])
        if fused:
            for k in range(M):
                cap = max(cap, indptr[k + 1] - indptr[k])
            cap = (cap + 31) // 16 * 16
            max_row = max(max_row, 2 * cap - 16)
        vbuf = np.empty((n_threads, max_row + 16), dtype=dtype)
        cbuf = np.empty((n_threads, max_row + 16), dtype=idx_dtype)
        pbuf = np.empty((n_threads, ROWS_PER_CALL + 1), dtype=idx_dtype)
    if compact_once:
        kept_vals = np.empty(nnz, dtype=dtype)
        kept_cols = np.empty(nnz, dtype=idx_dtype)
        if n_threads == 1:
            # One thread: the kept rows back to back, under their own indptr, so the rows
            # calls may prefetch, in a row's last nonzeros, what the next row's first meet
            # (s15, Zen 4 baseline, the kernel at 1024^2 x 256, X half dead: 1.13x as fast
            # as one spmm_row per row, the rows call with counts 1.10x; the same sums). A
            # row's compress writes from its start here (at or below indptr[i]) to below
            # where its input ends: inside the arrays, never over the rows before it; what
            # it leaves past n_idx is never read.
            kept_ptr = np.empty(M + 1, dtype=idx_dtype)
            with nogil:
                kept_ptr[0] = 0
                for i in range(M):
                    q = _compact_row(vals, cols, &indptr[0], i, remap, zero_row,
                                     &kept_vals[0] + kept_ptr[i], &kept_cols[0] + kept_ptr[i],
                                     lm, bad, last_r)
                    kept_ptr[i + 1] = <index_t>(kept_ptr[i] + q)
            vals, cols, ip, n_idx = &kept_vals[0], &kept_cols[0], &kept_ptr[0], kept_ptr[M]
        else:
            kept = np.empty(M, dtype=np.intp)
            with nogil:
                for i in prange(M, num_threads=n_threads, schedule='dynamic', chunksize=8):
                    kept[i] = _compact_row(vals, cols, &indptr[0], i, remap, zero_row,
                                           &kept_vals[0] + indptr[i],
                                           &kept_cols[0] + indptr[i], lm, bad, last_r)
            vals, cols, counts = &kept_vals[0], &kept_cols[0], &kept[0]
    cdef floating* vb
    cdef index_t* cb
    cdef index_t* pb
    cdef index_t last = _last_index(K, <index_t>0)    # the last valid index
    cdef bint check_remap = check_cols and remap != NULL
    check_cols = check_cols and remap == NULL
    # (with a remap, the rows were checked as they were compacted, above or below)
    cdef bint whole_rows = not per_row and (index_t is int32_t or not check_cols)
    cdef Py_ssize_t c, i0, i1, n_calls = (M + ROWS_PER_CALL - 1) // ROWS_PER_CALL
    # X read whole by the kernel (no column blocks) and off the vector line: read from a
    # copy on it (_onto_line; nothing below raises before the copy is given back)
    x_raw = None
    if (n_block == N and x_rows is None and nnz >= _x_line_reuse * K
            and _onto_line(x, N * sizeof(floating), K * N * sizeof(floating))):
        x_copy, x_raw = _line_copy(x, K * N * sizeof(floating))
        b = <const floating*>cnp.PyArray_DATA(x_copy)
    with nogil:
        while j0 < N:
            nb = min(n_block, N - j0)
            if x_rows is not None:       # the live rows from X itself, then the zero row
                for k in range(K - 1):
                    memcpy(&block[0, 0] + k * nb, x + <Py_ssize_t>rows[k] * N + j0,
                           nb * sizeof(floating))
                memset(&block[0, 0] + (K - 1) * nb, 0, nb * sizeof(floating))
            elif n_block < N:
                wsk_copy_rows(&block[0, 0], x + j0, K, nb * sizeof(floating),
                              N * sizeof(floating))
            with parallel(num_threads=n_threads):
                t = threadid()
                vb = &vbuf[t, 0] if per_row else NULL
                cb = &cbuf[t, 0] if per_row else NULL
                pb = &pbuf[t, 0] if per_row else NULL
                if fused:
                    for c in prange(n_calls, schedule='dynamic'):
                        i0 = c * ROWS_PER_CALL
                        i1 = min(M, i0 + ROWS_PER_CALL)
                        if floating is float and index_t is int32_t:
                            wsk_spmm_rows_lm_f32_n64(
                                vals, cols, &indptr[0], i0, i1, lm, zero_row,
                                <uint32_t>last_r if bad != NULL else 0xFFFFFFFFu, b, nb,
                                &out[0, 0], N, vb, cb, cap, bad)
                elif per_row:
                    # ROWS_PER_CALL rows compacted into the thread's buffers (in L1/L2),
                    # then one rows call on them (Zen 4, C harness, 4096^2 x 64, half of X
                    # dead: 4-5 % faster than a spmm_row per compacted row on AVX-512, fp32
                    # and fp64; the same sums, the rows call's are wsk_spmm_row's)
                    for c in prange(n_calls, schedule='dynamic'):
                        i0 = c * ROWS_PER_CALL
                        i1 = min(M, i0 + ROWS_PER_CALL)
                        pb[0] = 0
                        for i in range(i0, i1):
                            q = _compact_row(vals, cols, &indptr[0], i, remap, zero_row,
                                             vb + pb[i - i0], cb + pb[i - i0], lm, bad,
                                             last_r)
                            pb[i - i0 + 1] = <index_t>(pb[i - i0] + q)
                        _spmm_rows(vb, cb, pb, 0, i1 - i0, pb[i1 - i0], NULL, b, K, nb,
                                   &out[i0, j0], N, nb)
                elif whole_rows:
                    # W's own arrays, ROWS_PER_CALL rows a call: the indices past a row are
                    # the next rows' (prefetched only: an unchecked one names an address
                    # that is never read; int64 ones could overflow its product)
                    for c in prange(n_calls, schedule='dynamic'):
                        i0 = c * ROWS_PER_CALL
                        i1 = min(M, i0 + ROWS_PER_CALL)
                        if check_cols and j0 == 0:
                            for i in range(i0, i1):
                                row_bad[i] = not _cols_in_range(
                                    cols + indptr[i], indptr[i + 1] - indptr[i], last)
                        if counts != NULL:
                            _spmm_rows_counted(vals, cols, &indptr[0], counts, i0, i1, b, K,
                                               nb, &out[0, j0], N, nb)
                        else:
                            _spmm_rows(vals, cols, ip, i0, i1, n_idx,
                                       &row_bad[0] if check_cols else NULL, b, K, nb,
                                       &out[0, j0], N, nb)
                else:
                    for i in prange(M, schedule='dynamic', chunksize=8):
                        q = indptr[i + 1] - indptr[i] if counts == NULL else counts[i]
                        if check_cols and j0 == 0:
                            row_bad[i] = not _cols_in_range(cols + indptr[i], q, last)
                        if not check_cols or not row_bad[i]:
                            spmm_row(vals + indptr[i], cols + indptr[i], q, b, nb,
                                     &out[i, j0], nb)
            j0 += nb
        if check_cols or check_remap:
            for i in range(M):
                n_bad += row_bad[i]
    if n_block < N:
        block = None
        _block_release(block_obj)        # for the next call, on any thread
    _live_release(x_raw)
    return n_bad


cdef Py_ssize_t _csr_narrow(const floating[::1] data, const index_t[::1] indices,
                           const index_t[::1] indptr, const floating[:, ::1] X,
                           floating[:, ::1] out, int n_threads) except -1:
    # _csr_spmm for 0 < N < a vector's lanes, no remap (W has a nonzero, M, N > 0): the
    # rows holding a column index outside X's rows (their results are not the product)
    cdef Py_ssize_t M = out.shape[0], N = out.shape[1], K = X.shape[0], i, c, n_bad = 0
    cdef Py_ssize_t chunk = 4 * ROWS_PER_CALL, n_calls = (M + chunk - 1) // chunk
    if K == 0:                   # every stored weight is out of range
        out[:, :] = 0
        for i in range(M):
            n_bad += indptr[i + 1] > indptr[i]
        return n_bad
    cdef const floating* vals = &data[0]
    cdef const index_t* cols = &indices[0]
    cdef const index_t* ip = &indptr[0]
    cdef const floating* x = &X[0, 0]
    cdef floating* y = &out[0, 0]
    with nogil:
        if n_threads <= 1 or n_calls == 1:
            n_bad = _narrow_one_thread(vals, cols, ip, x, M, K, N, y)
        else:
            for c in prange(n_calls, num_threads=n_threads, schedule='dynamic'):
                n_bad += _spmm_narrow(vals, cols, ip, c * chunk, min(M, c * chunk + chunk),
                                      x, K, y, N)
    return n_bad


cdef inline bint _cols_in_range(const index_t* cols, Py_ssize_t nnz,
                                index_t last) noexcept nogil:
    # Branch-free OR of comparisons (vectorised for int32), as in check_csr.
    cdef Py_ssize_t p
    cdef int bad = 0
    for p in range(nnz):
        bad |= (cols[p] < 0) | (cols[p] > last)
    return not bad


# The column blocks' buffer, kept between calls: a fresh (1024, 32) fp32 block a call
# (128 KiB and 64 bytes, just over glibc's first mmap threshold) made the baseline's
# 1024^2 x 256 product 2-4 % slower (Zen 4, kernel alone, in one process against a reused
# one; the fresh pages are faulted in and zeroed each call). A call takes the kept buffer
# (_block_buffer) and gives it back (_block_release); one buffer of at most
# _BLOCK_KEEP_BYTES is kept for the whole process, whatever the number of threads (kept
# per thread, it stayed for each thread's life: 4 MiB each).
_BLOCK_KEEP_BYTES = 4 << 20
_block_kept = [None]            # the kept buffer (raw uint8 bytes), or None while in use
_block_lock = threading.Lock()


def _block_buffer(Py_ssize_t rows, Py_ssize_t cols, dtype):
    """An uninitialised 64-byte-aligned (rows, cols) array of ``dtype``: the kept buffer's
    bytes when they are free and enough (taken: no other call gets them until
    _block_release), else fresh. Its contents are whatever the last call left: _csr_spmm
    writes each block before reading it."""
    dtype = np.dtype(dtype)
    cdef Py_ssize_t nbytes = rows * cols * dtype.itemsize
    raw = None
    if nbytes <= _BLOCK_KEEP_BYTES:
        with _block_lock:
            raw, _block_kept[0] = _block_kept[0], None
    if raw is None or raw.shape[0] < nbytes + 64:
        raw = np.empty(nbytes + 64, dtype=np.uint8)    # a smaller kept one is dropped
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes].view(dtype).reshape(rows, cols)


def _block_release(block):
    """Give back a block _block_buffer made, once its call no longer reads it: kept when
    within _BLOCK_KEEP_BYTES and bigger than the buffer kept now."""
    raw = block.base
    if raw.shape[0] > _BLOCK_KEEP_BYTES + 64:
        return
    with _block_lock:
        if _block_kept[0] is None or _block_kept[0].shape[0] < raw.shape[0]:
            _block_kept[0] = raw


def _empty_aligned(shape, dtype):
    """An uninitialised C-ordered array starting on a 64-byte boundary: a block row of 128
    bytes then spans 2 cache lines, not 3 (NumPy's 16-byte alignment cost 8 % at
    1024^2 x 256 on Zen 3's baseline path)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes].view(dtype).reshape(shape)


# X's live rows for csr_spmm_plain (X_live, multiplied once then dropped) in a kept buffer
# of transparent huge pages: a 2 MiB page is physically contiguous, so X_live's rows fall
# evenly on L2's sets, where fresh 4 KiB pages fall at random and some sets overflow. Zen 4,
# fp32 4096^2 x 64, half of X dead, one thread, the kernel on the same X_live: 3.06-3.12 ms
# in huge pages, 3.17-3.58 ms in four heap copies (which one a process gets is chance:
# the bench's ratio moved 1.38-1.86 at load 0.3); the whole call against a fresh X_live,
# old and new .so in one process, 20 processes: 1.01-1.22x, median 1.15x (a kept buffer
# of 4 KiB pages was about as fast: the gain is mostly leaving the slow placements, s19).
# One buffer kept for the process, as the
# column blocks' one; below _LIVE_HUGE_MIN bytes (where L2 placement does not matter, and
# a first touch would zero a whole 2 MiB page) or above _LIVE_KEEP_BYTES, NumPy's memory.
_LIVE_KEEP_BYTES = 4 << 20
_LIVE_HUGE_MIN = 128 << 10
_HUGE_PAGE = 2 << 20
_live_kept = [None]             # the kept buffer (raw uint8 bytes), or None while in use
_live_made = [False]            # made once: while another call holds it, NumPy's memory
_live_lock = threading.Lock()


def _huge_bytes(Py_ssize_t nbytes):
    """``nbytes`` uninitialised bytes (a multiple of _HUGE_PAGE) starting on a 2 MiB
    boundary of an anonymous mapping advised MADV_HUGEPAGE, or None where that is not
    available (no mmap.MADV_HUGEPAGE, or the mapping refused)."""
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is None:
        return None
    try:
        # private: a shared anonymous map is shmem, which anonymous THP never backs
        m = mmap.mmap(-1, nbytes + _HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        m.madvise(advice)
    except (OSError, ValueError):
        return None
    raw = np.frombuffer(m, dtype=np.uint8)
    start = -raw.ctypes.data % _HUGE_PAGE
    return raw[start:start + nbytes]


def _live_buffer(Py_ssize_t nbytes):
    """(an uninitialised 64-byte-aligned uint8 array of ``nbytes``, the kept buffer taken or
    None): the kept huge-page buffer's first bytes (made on first use) when free and the
    size is in [_LIVE_HUGE_MIN, _LIVE_KEEP_BYTES], else NumPy's memory. Give the kept one
    back with _live_release once the call no longer reads it."""
    return _live_take(nbytes)


def _x_line_buffer(Py_ssize_t nbytes):
    """:func:`_live_buffer` for a copy of X on the 64-byte line (_line_copy: the livebits
    route, and the rows kernels reading an X off the line whole), asked apart from X_live's
    so that a test can tell the routes apart."""
    return _live_take(nbytes)


cdef tuple _live_take(Py_ssize_t nbytes):
    raw = None
    if _LIVE_HUGE_MIN <= nbytes <= _LIVE_KEEP_BYTES:
        with _live_lock:
            raw, _live_kept[0] = _live_kept[0], None
            make = raw is None and not _live_made[0]
            _live_made[0] = True
        if make:                 # (a 2 MiB page faulted in on first touch: once)
            raw = _huge_bytes(_LIVE_KEEP_BYTES)
    if raw is not None:
        return raw[:nbytes], raw
    raw = np.empty(nbytes + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes], None


def _live_release(raw):
    """Give back the kept buffer _live_buffer took (None: nothing taken)."""
    if raw is not None:
        with _live_lock:
            _live_kept[0] = raw


def _live_after_fork():
    # A child forked while another thread held _live_lock (between two bytecodes of
    # _live_buffer or _live_release) would wait for it for ever: no thread of the child
    # releases the parent's. A buffer that thread had taken never comes back in the child:
    # the child may make its own.
    global _live_lock, _block_lock
    _live_lock = threading.Lock()
    _block_lock = threading.Lock()      # the column blocks' buffer: the same hang
    if _live_kept[0] is None:
        _live_made[0] = False


os.register_at_fork(after_in_child=_live_after_fork)


def csc_spmm_live(const floating[::1] data, const index_t[::1] indices,
                  const index_t[::1] indptr, const floating[:, ::1] X,
                  const uint8_t[::1] x_alive, floating[:, ::1] out, int n_threads=1,
                  Py_ssize_t n_block=0):
    """out = W @ X for W in CSC (``indptr`` over W's K columns, ``indices`` its rows),
    visiting only the columns of W that meet a live row of X (``x_alive[k]``).

    A dead row of X costs nothing: its whole column of W is passed over, with no
    per-nonzero work (the CSR path must drop those nonzeros one by one). Each live
    column adds ``w * X[k, block]`` into the rows of an (M, n_block) buffer that stays in
    L2, which is then copied into ``out``; threads own disjoint column blocks. The caller
    guarantees every stored weight is finite (a dead row skipped would otherwise lose
    inf * 0 = NaN). Work: O(nnz(live columns) * N + M * N).
    """
    cdef Py_ssize_t M = out.shape[0], N = out.shape[1], K = X.shape[0]
    cdef Py_ssize_t k, i, nb, j0, blk, t, n_blocks
    if M == 0 or N == 0:
        return
    if n_block <= 0 or n_block > N:
        n_block = N
    n_blocks = (N + n_block - 1) // n_block
    n_threads = max(1, min(n_threads, n_blocks))
    cdef floating[:, ::1] buf = _empty_aligned((n_threads, M * n_block), np.asarray(out).dtype)
    cdef floating* y
    cdef const floating* x = &X[0, 0]
    with nogil, parallel(num_threads=n_threads):
        t = threadid()
        y = &buf[t, 0]
        for blk in prange(n_blocks, schedule='static'):
            j0 = blk * n_block
            nb = min(n_block, N - j0)
            memset(y, 0, M * nb * sizeof(floating))
            for k in range(K):
                if x_alive[k] and indptr[k + 1] > indptr[k]:
                    _scatter(&data[0] + indptr[k], &indices[0] + indptr[k],
                             indptr[k + 1] - indptr[k], x + k * N + j0, y, nb, nb)
            for i in range(M):
                memcpy(&out[i, j0], y + i * nb, nb * sizeof(floating))


def build_row_panels(const index_t[::1] indices, const index_t[::1] indptr, Py_ssize_t K,
                     Py_ssize_t P, index_t[::1] pindptr, index_t[::1] prows, index_t[::1] perm):
    """W's row panels in CSC form, from W's CSR (``indices``/``indptr``, column indices in
    range, as a PackedSparse's): panel ``b`` holds rows ``b * P`` to ``b * P + P - 1``, and
    its column ``k`` is ``pindptr[b * K + k]`` to ``pindptr[b * K + k + 1]`` of ``prows``
    (the rows within the panel, ascending) and ``perm`` (where each entry sits in W's
    data). ``pindptr`` holds ``ceil(M / P) * K + 1`` entries. A counting sort: O(nnz + M / P
    * K), one K-entry cursor. Raises ValueError, writing nothing, when indptr does not rise
    from 0 or a column index lies outside [0, K)."""
    cdef Py_ssize_t M = indptr.shape[0] - 1, nnz = indices.shape[0]
    cdef Py_ssize_t n_panels = (M + P - 1) // P if P > 0 else 0
    cdef Py_ssize_t b, i, p, q, k, base, total = 0, c
    if P <= 0 or K < 0 or pindptr.shape[0] != n_panels * K + 1:
        raise ValueError(f"pindptr must hold ceil(M / P) * K + 1 entries (P > 0); received "
                         f"{pindptr.shape[0]} for M={M}, K={K}, P={P}")
    if prows.shape[0] != nnz or perm.shape[0] != nnz or (M >= 0 and indptr[M] != nnz):
        raise ValueError("prows and perm must hold one entry per stored weight")
    cdef index_t[::1] cursor = np.empty(max(K, 1), dtype=np.asarray(indices).dtype)
    cdef bint bad = M >= 0 and indptr[0] != 0
    with nogil:
        # checked before anything is written: a pointer or column out of range would
        # count or place outside pindptr, prows and perm
        for i in range(M):
            if bad or indptr[i + 1] < indptr[i]:
                bad = True
                break
        for p in range(nnz):
            if bad or indices[p] < 0 or indices[p] >= K:
                bad = True
                break
    if bad:
        raise ValueError(f"build_row_panels: indptr must rise from 0 and every column index "
                         f"lie in [0, K={K})")
    with nogil:
        memset(&pindptr[0], 0, pindptr.shape[0] * sizeof(index_t))
        for i in range(M):
            base = (i // P) * K + 1
            for p in range(indptr[i], indptr[i + 1]):
                pindptr[base + indices[p]] += 1
        for q in range(1, n_panels * K + 1):
            total += pindptr[q]
            pindptr[q] = <index_t>total
        for b in range(n_panels):
            if K:
                memcpy(&cursor[0], &pindptr[b * K], K * sizeof(index_t))
            for i in range(b * P, min(M, b * P + P)):
                for p in range(indptr[i], indptr[i + 1]):
                    k = indices[p]
                    c = cursor[k]
                    cursor[k] += 1
                    prows[c] = <index_t>(i - b * P)
                    perm[c] = <index_t>p


def panel_spmm_live(const floating[::1] pdata, const index_t[::1] prows,
                    const index_t[::1] pindptr, Py_ssize_t P, Py_ssize_t max_row,
                    const floating[:, ::1] X, const uint8_t[::1] x_alive,
                    floating[:, ::1] out, int n_threads=1):
    """out = W @ X for W as row panels in CSC form (:func:`build_row_panels`), meeting only
    the rows of X flagged live in ``x_alive``; ``max_row``: W's most stored weights in a row.

    For each panel of P rows, the live rows of X are taken in ascending order and each
    one's entries in the panel are appended to their row's list (value and column): a dead
    row of X costs nothing (it is not in the list of live rows), a live one a pointer step
    per panel. Each row's list, its weights meeting live rows in ascending column order,
    then goes through the CSR row kernel (accumulators in registers) against X itself.
    So each row is what the CSR kernel gives for that row with the weights meeting dead
    rows dropped: bit for bit :func:`csr_spmm` with ``x_remap`` and no column blocks. The
    caller guarantees every stored weight is finite (a dead row skipped would otherwise lose
    inf * 0 = NaN). Threads own disjoint panels; a (P, max_row) list buffer each.
    Raises ValueError, ``out`` then not the product, when a column's pointers fall outside
    the entries, an entry's row is outside its panel or a row holds more than ``max_row``
    entries.
    Work: O(nnz(live rows) * N + M / P * live rows + M * N).
    """
    cdef Py_ssize_t M = out.shape[0], N = out.shape[1], K = X.shape[0]
    cdef Py_ssize_t n_panels = (M + P - 1) // P if P > 0 else 0
    cdef Py_ssize_t b, r, rows, q, n_live = 0, base, k, s, e, t, p, c, pos
    cdef Py_ssize_t n_entries = pdata.shape[0]
    cdef int bad = 0
    if P <= 0 or max_row < 0 or pindptr.shape[0] != n_panels * K + 1 or x_alive.shape[0] != K:
        raise ValueError(f"pindptr must hold ceil(M / P) * K + 1 entries and x_alive K; "
                         f"received {pindptr.shape[0]} and {x_alive.shape[0]} for M={M}, "
                         f"K={K}, P={P}")
    if X.shape[1] != N or prows.shape[0] != pdata.shape[0] or (
            pindptr[n_panels * K] > pdata.shape[0]):
        raise ValueError("X, out and the panels' arrays do not agree")
    if M == 0 or N == 0:
        return
    n_threads = max(1, min(n_threads, n_panels))
    cdef floating[:, ::1] vbuf = np.empty((n_threads, P * max_row + 1), dtype=np.asarray(out).dtype)
    cdef index_t[:, ::1] cbuf = np.empty((n_threads, P * max_row + 1),
                                         dtype=np.asarray(prows).dtype)
    cdef Py_ssize_t[:, ::1] cnt = np.empty((n_threads, P), dtype=np.intp)
    cdef Py_ssize_t[::1] live = np.empty(max(K, 1), dtype=np.intp)
    cdef floating* vb
    cdef index_t* cb
    cdef Py_ssize_t* cn
    cdef const floating* x = &X[0, 0]
    with nogil:
        for k in range(K):
            if x_alive[k]:
                live[n_live] = k
                n_live += 1
    with nogil, parallel(num_threads=n_threads):
        t = threadid()
        vb = &vbuf[t, 0]
        cb = &cbuf[t, 0]
        cn = &cnt[t, 0]
        for b in prange(n_panels, schedule='dynamic'):
            rows = min(P, M - b * P)
            base = b * K
            memset(cn, 0, rows * sizeof(Py_ssize_t))
            for q in range(n_live):
                k = live[q]
                s = pindptr[base + k]
                e = pindptr[base + k + 1]
                if s < 0 or e < s or e > n_entries:
                    bad += 1
                    continue
                for p in range(s, e):
                    r = prows[p]
                    if r < 0 or r >= rows or cn[r] >= max_row:
                        bad += 1
                        continue
                    pos = r * max_row + cn[r]
                    vb[pos] = pdata[p]
                    cb[pos] = <index_t>k
                    cn[r] = cn[r] + 1
            for r in range(rows):
                spmm_row(vb + r * max_row, cb + r * max_row, cn[r], x, N, &out[b * P + r, 0], N)
    if bad:
        raise ValueError("a panel's column pointers fall outside its entries (below 0, "
                         "decreasing or past them), an entry's row is outside its panel, or "
                         f"a row holds more than max_row={max_row} entries")


cdef inline void _scatter(const floating* vals, const index_t* rows, Py_ssize_t nnz,
                          const floating* x, floating* Y, Py_ssize_t ldy,
                          Py_ssize_t n) noexcept nogil:
    if floating is float:
        if index_t is int32_t:
            wsk_spmm_scatter_f32_i32(vals, rows, nnz, x, Y, ldy, n)
        else:
            wsk_spmm_scatter_f32_i64(vals, rows, nnz, x, Y, ldy, n)
    else:
        if index_t is int32_t:
            wsk_spmm_scatter_f64_i32(vals, rows, nnz, x, Y, ldy, n)
        else:
            wsk_spmm_scatter_f64_i64(vals, rows, nnz, x, Y, ldy, n)


cdef inline Py_ssize_t _compact_row(const floating* vals, const index_t* cols,
                                    const index_t* indptr, Py_ssize_t i,
                                    const index_t* remap, index_t zero_row, floating* vout,
                                    index_t* iout, const uint32_t* lm, uint8_t* bad,
                                    index_t last) noexcept nogil:
    # _compact_csr on row i of W, with lm (the live map's table, wsk_livemap_build, or NULL)
    # the register form; with bad (not NULL, only with lm), its columns checked against
    # [0, last] as they pass: one out of range flags bad[i] and keeps nothing
    cdef Py_ssize_t p = indptr[i], n = indptr[i + 1] - indptr[i], q
    cdef uint32_t lim = <uint32_t>last if bad != NULL else 0xFFFFFFFFu
    if index_t is int32_t:
        if lm != NULL:
            if floating is float:
                q = wsk_compact_csr_f32_i32_lm(vals + p, cols + p, n, lm, zero_row, lim,
                                               vout, iout)
            else:
                q = wsk_compact_csr_f64_i32_lm(vals + p, cols + p, n, lm, zero_row, lim,
                                               vout, iout)
            if q < 0:
                bad[i] = 1
                return 0
            return q
    return _compact_csr(vals + p, cols + p, n, remap, zero_row, vout, iout)


cdef inline Py_ssize_t _compact_csr(const floating* vals, const index_t* cols, Py_ssize_t nnz,
                                    const index_t* remap, index_t zero_row,
                                    floating* vout, index_t* iout) noexcept nogil:
    if floating is float:
        if index_t is int32_t:
            return wsk_compact_csr_f32_i32(vals, cols, nnz, remap, zero_row, vout, iout)
        else:
            return wsk_compact_csr_f32_i64(vals, cols, nnz, remap, zero_row, vout, iout)
    else:
        if index_t is int32_t:
            return wsk_compact_csr_f64_i32(vals, cols, nnz, remap, zero_row, vout, iout)
        else:
            return wsk_compact_csr_f64_i64(vals, cols, nnz, remap, zero_row, vout, iout)


def dense_spmm(const floating[:, ::1] W, const floating[:, ::1] X, floating[:, ::1] out,
               const uint8_t[::1] x_alive, const int32_t[::1] x_remap, int n_threads=1):
    """out = W @ X for a dense W whose zeros are skipped, without building a CSR copy.

    Each row of W is compacted (O(K), a SIMD compress where the CPU has one)
    into a per-thread buffer of its nonzeros that meet live rows of X, then
    multiplied like a CSR row.  ``x_alive``/``x_remap`` as in :func:`csr_spmm`
    (all alive with the identity map when X has no dead rows).
    Work: O(M * K + nnz(W) * N).
    """
    cdef Py_ssize_t M = out.shape[0], N = out.shape[1], K = W.shape[1]
    cdef Py_ssize_t i, q, t
    if M == 0 or N == 0:
        return
    n_threads = max(1, n_threads)      # a buffer a thread (OpenMP's num_threads(0): all)
    cdef floating[:, ::1] vbuf = np.empty((n_threads, K + 16), dtype=np.asarray(W).dtype)
    cdef int32_t[:, ::1] cbuf = np.empty((n_threads, K + 16), dtype=np.int32)
    cdef floating* vb
    cdef int32_t* cb
    cdef const floating* x = &X[0, 0]
    with nogil, parallel(num_threads=n_threads):
        t = threadid()
        vb = &vbuf[t, 0]
        cb = &cbuf[t, 0]
        for i in prange(M, schedule='dynamic', chunksize=8):
            if floating is float:
                q = wsk_compact_f32(&W[i, 0], &x_alive[0], &x_remap[0], K, vb, cb)
            else:
                q = wsk_compact_f64(&W[i, 0], &x_alive[0], &x_remap[0], K, vb, cb)
            spmm_row(vb, cb, q, x, N, &out[i, 0], N)


def csr_to_dense(const floating[::1] data, const index_t[::1] indices,
                 const index_t[::1] indptr, floating[:, ::1] out, int n_threads=1):
    """out = the dense form of a CSR matrix (duplicates summed)."""
    cdef Py_ssize_t M = out.shape[0], K = out.shape[1], i, p
    if M == 0 or K == 0:
        return
    with nogil:
        for i in prange(M, num_threads=n_threads, schedule='static'):
            memset(&out[i, 0], 0, K * sizeof(floating))
            for p in range(indptr[i], indptr[i + 1]):
                out[i, indices[p]] += data[p]


def csr_spmm_sparse_x(const floating[::1] data, const index_t[::1] indices,
                      const index_t[::1] indptr, const floating[::1] x_data,
                      const index_t[::1] x_indices, const index_t[::1] x_indptr,
                      floating[:, ::1] out, int n_threads=1):
    """out = W @ X with both in CSR and ``out`` dense (zeroed here).

    The path for very sparse X: only pairs of a nonzero weight and a nonzero
    activation are multiplied, O(sum over W's nonzeros of nnz(X row)).
    """
    cdef Py_ssize_t M = out.shape[0], N = out.shape[1]
    cdef Py_ssize_t i, p, q, k
    cdef floating w
    if M == 0 or N == 0:
        return
    with nogil:
        for i in prange(M, num_threads=n_threads, schedule='dynamic', chunksize=16):
            memset(&out[i, 0], 0, N * sizeof(floating))
            for p in range(indptr[i], indptr[i + 1]):
                w = data[p]
                k = indices[p]
                for q in range(x_indptr[k], x_indptr[k + 1]):
                    out[i, x_indices[q]] += w * x_data[q]


def sddmm_csr(const floating[:, ::1] A, const floating[:, ::1] B,
              const index_t[::1] indices, const index_t[::1] indptr,
              floating[::1] out, int n_threads=1):
    """out[p] = A[i, :] . B[indices[p], :] for every stored position p of row i.

    Work: O(nnz * D), one vectorised dot product per stored position.
    """
    cdef Py_ssize_t M = indptr.shape[0] - 1, D = A.shape[1]
    cdef Py_ssize_t i, p
    if out.shape[0] == 0:
        return
    if D == 0:
        out[:] = 0
        return
    with nogil:
        for i in prange(M, num_threads=n_threads, schedule='dynamic', chunksize=8):
            for p in range(indptr[i], indptr[i + 1]):
                if floating is float:
                    out[p] = wsk_dot_f32(&A[i, 0], &B[indices[p], 0], D)
                else:
                    out[p] = wsk_dot_f64(&A[i, 0], &B[indices[p], 0], D)


def check_csr(const index_t[::1] indptr, const index_t[::1] indices, Py_ssize_t n_cols,
              bint check_indices=True):
    """Return an error message for a malformed CSR structure, or None.

    O(rows + nnz).  Unsorted and duplicate column indices are valid.  Without
    ``check_indices`` only ``indptr`` is checked, O(rows): the column indices are then left
    to a kernel that checks each row before it reads X (``csr_spmm``'s ``check_cols``).
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, nnz = indices.shape[0]
    cdef Py_ssize_t i, p, bad = -1
    if n_rows < 0:
        return "indptr is empty; it needs n_rows + 1 entries"
    if indptr[0] != 0:
        return f"indptr[0] must be 0; received {indptr[0]}"
    if indptr[n_rows] != nnz:
        return (f"indptr[-1] must equal len(indices) = {nnz}; "
                f"received indptr[-1] = {indptr[n_rows]}")
    with nogil:
        for i in range(n_rows):
            if indptr[i + 1] < indptr[i]:
                bad = i
                break
    if bad >= 0:
        return (f"indptr must be non-decreasing; received indptr[{bad}] = "
                f"{indptr[bad]} > indptr[{bad + 1}] = {indptr[bad + 1]}")
    if not check_indices:
        return None
    cdef index_t last = _last_index(n_cols, <index_t>0)
    cdef int n_bad = 0
    with nogil:
        # Branch-free OR of comparisons in the index type first (SSE2 vectorises it for
        # int32; a count in size_t needed 64-bit compares and ran 5x slower than max()),
        # then the first bad one only when there is one.
        for p in range(nnz):
            n_bad |= (indices[p] < 0) | (indices[p] > last)
        if n_bad:
            for p in range(nnz):
                if indices[p] < 0 or indices[p] >= n_cols:
                    bad = p
                    break
    if bad >= 0:
        return (f"column index {indices[bad]} at position {bad} is out of range "
                f"for a matrix with {n_cols} columns (valid: 0 to {n_cols - 1})")
    return None


def scan_rows(const floating[:, ::1] X, uint8_t[::1] nonzero_row):
    """Flag the rows of X holding any nonzero; return (rows kept, all finite, nonzeros).

    One pass over X gives all three, so the dispatcher needs no density sample of X."""
    cdef Py_ssize_t K = X.shape[0], N = X.shape[1], k, kept = 0, nnz = 0, row_nnz
    cdef int nonfinite = 0
    if K == 0 or N == 0:
        nonzero_row[:] = 0
        return 0, True, 0
    with nogil:
        for k in range(K):
            if floating is float:
                row_nnz = wsk_scan_f32(&X[k, 0], N, &nonfinite)
            else:
                row_nnz = wsk_scan_f64(&X[k, 0], N, &nonfinite)
            nonzero_row[k] = row_nnz != 0
            kept += row_nnz != 0
            nnz += row_nnz
    return kept, not nonfinite, nnz


def scan_alive(const floating[:, ::1] X, uint8_t[::1] nonzero_row, Py_ssize_t per_row):
    """Flag the rows of X holding any nonzero (NaN counts), reading each row only up to the
    end of the chunk (16 values, then 64 at a time) holding its first nonzero, and count the nonzeros at ``per_row`` fixed positions of each row (a
    deterministic sample of X's density; every position when ``per_row >= N``).

    Returns (rows kept, sampled nonzeros). For a dense X this reads about two cache lines a
    row instead of the whole of X (:func:`scan_rows`): the dispatcher runs the full scan
    only when the sample says X may be sparse enough for it to matter."""
    cdef Py_ssize_t K = X.shape[0], N = X.shape[1]
    if K == 0 or N == 0:
        nonzero_row[:] = 0
        return 0, 0
    if nonzero_row.shape[0] < K:
        raise ValueError(f"nonzero_row must hold {K} flags; received {nonzero_row.shape[0]}")
    cdef (Py_ssize_t, Py_ssize_t) counts
    with nogil:
        counts = _scan_alive(X, &nonzero_row[0], per_row)
    return counts[0], counts[1]


cdef (Py_ssize_t, Py_ssize_t) _scan_alive(const floating[:, ::1] X, uint8_t* nonzero_row,
                                          Py_ssize_t per_row) noexcept nogil:
    """scan_alive's pass (X not empty; ``nonzero_row`` may be NULL): (rows kept, sampled
    nonzeros)."""
    cdef Py_ssize_t K = X.shape[0], N = X.shape[1], k, j, e, s, c, step, kept = 0, hits = 0
    cdef const floating* row
    cdef int found
    if per_row >= N:
        per_row = N
        step = 1
    else:
        per_row = max(per_row, 1)
        step = N // per_row
    for k in range(K):
        row = &X[k, 0]
        j = min(16, N)                     # the first 16: a live row ends here mostly
        found = _any_nonzero(row, j)
        while j + 64 <= N and not found:   # a dead row is read whole: 64 at a time, a
            found = _any_nonzero(row + j, 64)  # fixed trip count, vectorised (the
            j += 64                        # 16-wide loop read 6.7 GB/s, Zen 4)
        while j < N and not found:        # 16 at a time
            e = min(16, N - j)
            found = _any_nonzero(row + j, e)
            j += e
        if nonzero_row != NULL:
            nonzero_row[k] = found
        kept += found
        if per_row == N:
            for c in range(N):
                hits += row[c] != 0
        else:                              # positions spread over the columns, and
            c = (k * 97) % N               # shifted row to row (97 is odd)
            for s in range(per_row):
                hits += row[c] != 0
                c += step
                if c >= N:
                    c -= N
    return kept, hits


def all_finite(const floating[::1] values):
    """True when no value is NaN or infinite (one branch-free pass, no temporary)."""
    cdef Py_ssize_t n = values.shape[0], p
    cdef bint finite = True
    with nogil:
        for p in range(n):
            finite &= (values[p] - values[p] == 0)
    return bool(finite)


def count_nonzero_rows(const floating[:, ::1] W, index_t[::1] counts, int n_threads=1):
    """counts[i + 1] = number of nonzeros in row i of W (first pass of dense -> CSR)."""
    cdef Py_ssize_t M = W.shape[0], K = W.shape[1], i, j
    cdef index_t c
    with nogil:
        for i in prange(M, num_threads=n_threads, schedule='static'):
            c = 0
            for j in range(K):
                c = c + (W[i, j] != 0)
            counts[i + 1] = c


def fill_csr_from_dense(const floating[:, ::1] W, const index_t[::1] indptr,
                        index_t[::1] indices, floating[::1] data, int n_threads=1):
    """Second pass of dense -> CSR: write the nonzeros of each row, in order."""
    cdef Py_ssize_t M = W.shape[0], K = W.shape[1], i, j, p
    with nogil:
        for i in prange(M, num_threads=n_threads, schedule='static'):
            p = indptr[i]
            for j in range(K):
                if W[i, j] != 0:
                    indices[p] = j
                    data[p] = W[i, j]
                    p = p + 1


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I32 = np.dtype(np.int32)
_I64 = np.dtype(np.int64)


def csr_spmm_plain(W, X, transpose, out, n_threads, dict g):
    """``spmm(W, X)``'s common case in one native call, or None: "take the Python route".

    Handled: W a plain SciPy CSR (``g["_PLAIN_CSR"]``: csr_matrix or csr_array exactly) with
    int32 or int64 index arrays of one type, contiguous, and float data of X's dtype; X a
    C-contiguous 2-D float32/float64 ndarray with W's columns as rows (or 1-D: the (M,)
    result, as the Python route gives); no ``out``, no
    ``transpose``, ``n_threads`` the int 1 (or None or another non-zero int when the
    product is too small for a second thread: ``g["min_work_per_thread"]``); no dimension
    zero; X not sparse enough that the dispatcher would read it whole, and the cost
    model (``g["cost_table"]()``) choosing the CSR kernel over densifying (or X
    holding inf/NaN, which rules densifying out). It does
    what :func:`wsekern.kernels.spmm` then does (indptr checked, the output's memory
    estimate, X's dead rows and density sample as in :func:`scan_alive`, the route, the
    column block from ``g["column_block"]``, the kernel checking the column indices row by
    row) and returns the same array, bit for bit. With dead rows of X where dropping the
    nonzeros that meet them pays (kernels' csr-skip-rows), the column indices are checked
    first, then the kernel runs on X's live rows (:func:`live_rows`) with the remap; X's
    scan is not repeated. X narrower than half a vector of the SIMD path (:func:`narrow_width`)
    with a SciPy CSR W, where the cost model rules out the compaction and densifying
    whatever X's dead rows: X's nonzeros counted (the sparse-x route declined as above),
    no search for dead rows, and the narrow kernel, checking the column indices as it goes.

    W may also be a PackedSparse exactly (``g["PackedSparse"]``; with ``transpose``, only
    when its transpose is cached) of X's dtype: its arrays were checked when it was made, so
    neither indptr nor the column indices are checked again, as in the Python route. Its
    column path (kernels' csc-skip-rows: X with dead rows, W finite, the scatter buffer in
    L2, the scatter cheaper) is taken as there (:func:`csc_spmm_live` on its cached CSC);
    where that route would build W's transpose to decide, the call is declined. So is its
    panel path (kernels' panel-skip-rows: the same ``g["_panels_for_live_rows"]``, which
    builds W's row panels on first use, then :func:`panel_spmm_live`).
    Anything else (and every refusal: a
    malformed indptr, an index out of range, memory) returns None before any output is
    returned, so that the Python route runs and raises its own message.

    ``g`` is the namespace of wsekern.kernels: its constants and functions are read on each
    call (a test may replace them).
    """
    if out is not None or not (transpose is False or transpose is True):
        return None
    if not (n_threads is None or (type(n_threads) is int and n_threads != 0)):
        return None
    if type(X) is not np.ndarray:
        return None
    if not transpose:        # a small narrow product: the same checks, on the C fields
        lean = _plain_lean(W, X, n_threads, g)
        if lean is not _PASS:
            return lean
    cdef bint packed = type(W) is g["PackedSparse"]
    if packed:
        # Its arrays were checked when it was made (indptr, indices in range, sorted,
        # unique). W.T is its cached transpose: not built here (building may refuse).
        P = W
        if transpose:
            cached = W._transpose
            if cached is None:
                return None
            P = cached[0]
        indptr, indices, data, shape = P._indptr, P._indices, P._data, P._shape
    elif transpose or type(W) not in g["_PLAIN_CSR"]:
        return None
    else:
        indptr, indices, data, shape = W.indptr, W.indices, W.data, W.shape
    xdt = X.dtype
    cdef int ndim = X.ndim
    if not (xdt == _F32 or xdt == _F64) or not (ndim == 2 or ndim == 1) or (
            not X.flags.c_contiguous):
        return None
    if ndim == 1:            # a vector: the (K, 1) view, the result's (M,) view at the end
        if X.strides[0] == 0 and X.shape[0] > 1:
            return None
        X = X.reshape(X.shape[0], 1)
    if not (type(indptr) is np.ndarray and type(indices) is np.ndarray
            and type(data) is np.ndarray and type(shape) is tuple and len(shape) == 2):
        return None
    idt = indptr.dtype
    if not (indices.dtype == idt and (idt == _I32 or idt == _I64) and data.dtype == xdt
            and indptr.ndim == 1 and indices.ndim == 1 and data.ndim == 1
            and indptr.flags.c_contiguous and indices.flags.c_contiguous
            and data.flags.c_contiguous):
        return None
    xshape = X.shape
    cdef Py_ssize_t M = indptr.shape[0] - 1, K = xshape[0], N = xshape[1]
    cdef Py_ssize_t nnz = indices.shape[0]
    m_obj, k_obj = shape
    if type(m_obj) is not int or type(k_obj) is not int or m_obj != M or k_obj != K:
        return None
    if M <= 0 or K <= 0 or N <= 0 or data.shape[0] != nnz or 0 in X.strides:
        return None
    # The output's estimate, as _check_out (refused: the Python route raises its message).
    try:
        g["check_memory"](M * N * xdt.itemsize, "", "")
    except MemoryError:
        return None
    cdef bint one = n_threads == 1
    wp = W if packed else None
    if xdt == _F32:
        if idt == _I32:
            result = _plain_run[float, int32_t](data, indices, indptr, X, M, K, N, nnz, one,
                                                g, wp, transpose, n_threads)
        else:
            result = _plain_run[float, int64_t](data, indices, indptr, X, M, K, N, nnz, one,
                                                g, wp, transpose, n_threads)
    elif idt == _I32:
        result = _plain_run[double, int32_t](data, indices, indptr, X, M, K, N, nnz, one, g,
                                             wp, transpose, n_threads)
    else:
        result = _plain_run[double, int64_t](data, indices, indptr, X, M, K, N, nnz, one, g,
                                             wp, transpose, n_threads)
    if ndim == 1 and result is not None:
        return result.reshape(M)
    return result


cdef object _plain_run(const floating[::1] data, const index_t[::1] indices,
                       const index_t[::1] indptr, const floating[:, ::1] X, Py_ssize_t M,
                       Py_ssize_t K, Py_ssize_t N, Py_ssize_t nnz, bint one, dict g,
                       object packed, bint transpose, object n_threads):
    # ``packed``: the PackedSparse W (its arrays already checked), else None (a SciPy CSR).
    # check_csr without the column indices (the kernel checks them row by row)
    cdef Py_ssize_t i, k, j, kept, hits
    cdef bint bad = False
    cdef const floating* row
    if packed is None:
        if indptr[0] != 0 or indptr[M] != nnz:
            return None
        with nogil:
            for i in range(M):
                bad |= indptr[i + 1] < indptr[i]
        if bad:
            return None
    cost = g["cost_table"]()
    # X narrower than a vector (a SciPy CSR W): where the cost model rules out both the
    # compaction and densifying whatever X's dead rows, kernels' route is csr, so X's dead
    # rows are not looked for (_scan_alive took ~7 ns a row at N = 1); X's nonzeros are
    # counted to decline the sparse-x route as there
    if packed is None and _narrow(N, sizeof(floating)):
        result = _plain_narrow(data, indices, indptr, X, M, K, N, nnz, one, g, cost)
        if result is not False:
            return result
    # kernels._scan_x up to its first decision: scan_alive's count of live rows and sample
    cdef Py_ssize_t per_row = -(-<Py_ssize_t> g["_SAMPLE"] // K)
    cdef Py_ssize_t n_sampled = K * min(per_row, N)
    cdef bint exact = per_row >= N
    cdef (Py_ssize_t, Py_ssize_t) counts
    cdef uint8_t[::1] alive = np.empty(K, dtype=np.uint8)
    with nogil:
        counts = _scan_alive(X, &alive[0], per_row)
    kept, hits = counts
    # Dead rows of X: kernels' skip_rows (then k_live = kept, as in its cost model)
    cdef bint skip_rows = kept <= K * (1 - <double>g["ZERO_ROW_SKIP_FRACTION"])
    cdef Py_ssize_t k_live = kept if skip_rows else K
    # X possibly sparse enough for the sparse-x route (the Python route reads X whole, or
    # takes that route): declined.
    if exact:
        if hits < <double>g["SPARSE_X_DENSITY"] * K * N:
            return None
    elif not hits >= <double>g["X_SAMPLE_DENSE"] * n_sampled:
        return None
    # The route: densifying for BLAS is declined (its finiteness test and BLAS stay Python's)
    # Another n_threads than 1 runs on one thread too when the work is below what a second
    # thread needs (kernels._threads_for); otherwise the Python route picks the threads.
    if not one and not (<object>nnz) * N < g["min_work_per_thread"](cost):
        return None
    if <double>M * <double>K * <double>N > 2.0 ** 53:
        return None
    cdef double mac = cost.spmm_mac
    cdef double t_sparse = cost.csr_route(M, K, k_live, N, nnz, sizeof(floating))
    cdef double t_densified = cost.densified(M, K, k_live, N, nnz, sizeof(floating))
    cdef bint x_finite = True
    if t_densified < t_sparse * (1 + 1e-9):
        # Python densifies only when X is all finite (W's unstored zeros would meet inf/NaN)
        with nogil:
            for k in range(K):
                row = &X[k, 0]
                for j in range(N):
                    x_finite &= isfinite(row[j]) != 0
        if x_finite:
            return None
    cdef double reuse = nnz / <double>K
    cdef Py_ssize_t n_block = 0
    # kernels' csr-skip-rows: the nonzeros meeting dead rows dropped (a W that is a SciPy
    # CSR has no CSC form cached, so the column path is not a candidate)
    cdef bint compact = skip_rows and <double>cost.csr_compact < (
        <double>(K - kept) / <double>K * N * mac)
    # A packed W has kernels' panel-skip-rows: the same decision (kernels'
    # _panels_for_live_rows, which builds the panels on first use) and the same call.
    if packed is not None and skip_rows:
        panels = g["_panels_for_live_rows"](packed, transpose, packed.dtype, M, K, N, nnz,
                                            kept, compact, cost)
        if panels is not None:
            result = np.empty((M, N), dtype=_F32 if floating is float else _F64)
            panel_spmm_live(*panels, X, alive, result,
                            g["resolve_threads"](n_threads, <object>nnz * kept / K * N))
            return result
    # A packed W has kernels' csc-skip-rows too: its CSC candidate, then its cost test
    # (kernels' _column_pays) and the same call of csc_spmm_live. Declined where the
    # candidate would be a transpose not built yet (the Python route builds it).
    if packed is not None and skip_rows and (
            <object>M * g["SCATTER_BLOCK"] * sizeof(floating) <= g["l2_bytes"]() // 2
            ) and packed.all_finite:
        if not transpose and packed._transpose is None:
            return None
        o_nnz = <object>nnz
        if g["_column_pays"](cost, o_nnz, <object>kept, <object>K, <object>N,
                             sizeof(floating), compact):
            csc = packed if transpose else packed._transpose[0]
            result = np.empty((M, N), dtype=_F32 if floating is float else _F64)
            csc_spmm_live(csc._data, csc._indices, csc._indptr, X, alive, result,
                          g["resolve_threads"](n_threads, o_nnz * kept / K * N),
                          g["SCATTER_BLOCK"])
            return result
    if floating is float:
        result = np.empty((M, N), dtype=_F32)
    else:
        result = np.empty((M, N), dtype=_F64)
    cdef floating[:, ::1] out = result
    cdef const index_t[::1] remap = None
    cdef const floating[:, ::1] xk = X
    cdef const index_t[::1] x_rows = None
    live_raw = None
    if compact:
        if not reuse < <double>g["MIN_REUSE"]:
            n_block = g["column_block"](kept + 1, N, sizeof(floating), reuse=nnz / K)
        # The per-row variant at 64 float32 columns on X itself (_spmm_livebits), where the
        # old route ran the fused kernel on a fresh X_live: a SciPy CSR W, or a packed W
        # whose kept compaction is not reused or made this call (a map other than the last)
        # Its tiled form at 128 * T float32 columns, X's live rows in 5/8 of L2, whatever
        # the map, where the old route compacted W once into a copy (or reused a packed W's
        # kept one), then multiplied X's live rows in column blocks (Zen 5, AVX-512,
        # 1024^2 x 256, 90 % zeros, half of X dead, s24: 281-290 us, against 0.34 ms a new
        # map and 305-310 us the kept compaction; see _livebits_tiles)
        if floating is float and index_t is int32_t and K <= 4096 and nnz > 0 and (
                _livebits_tiles(N, kept, g) or (
                    N == 64 and not 0 < n_block < N and wsk_spmm_rows_lb_f32_n64 != NULL
                    and (packed is None or _kept_map_new(
                        packed._transpose[0] if transpose else packed, alive)))):
            if _spmm_livebits(data, indices, indptr, X, out, alive, packed is None):
                return None  # a column index out of range: the Python route names it
            return result
        if 0 < n_block < N:  # the column blocks copy the live rows from X (no X_live)
            remap_arr, rows_arr = live_map(alive, kept, np.asarray(indptr).dtype)
            x_rows = rows_arr
        else:
            live_bytes, live_raw = _live_buffer((kept + 1) * N * sizeof(floating))
            try:
                X_live, remap_arr = _gather_live(X, alive, kept, np.asarray(indptr).dtype,
                                                 live_bytes)
            except BaseException:
                _live_release(live_raw)
                raise
            xk = X_live
        remap = remap_arr
    elif not reuse < <double>g["MIN_REUSE"]:
        n_block = g["column_block"](K, N, sizeof(floating), reuse=nnz / K)
    cdef Py_ssize_t n_bad
    # A PackedSparse W (its indices checked when made) is compacted once per live map of X
    # (_kept_w), then multiplied as it stands: the rows kernel's sums, as compacted here
    # (not below the narrow route: that kernel sums otherwise)
    cdef bint kept_w = compact and packed is not None and nnz > 0 and not _narrow(
        N, sizeof(floating))
    # (with the remap, the kernel checks each row's columns as it compacts the row)
    try:
        kw = None
        if kept_w:
            kw = _kept_w(packed._transpose[0] if transpose else packed, data, indices,
                         indptr, alive, remap, <index_t>kept)
        if kw is not None:
            n_bad = _csr_spmm[floating, index_t](kw[0], kw[1], kw[2], xk, out, None, 1,
                                                 n_block, False, x_rows)
        else:
            n_bad = _csr_spmm(data, indices, indptr, xk, out, remap, 1, n_block,
                              packed is None, x_rows)
    finally:
        _live_release(live_raw)  # X_live's bytes: the next call's
    if n_bad:
        return None          # a column index out of range: the Python route names it
    return result


cdef object _plain_narrow(const floating[::1] data, const index_t[::1] indices,
                          const index_t[::1] indptr, const floating[:, ::1] X, Py_ssize_t M,
                          Py_ssize_t K, Py_ssize_t N, Py_ssize_t nnz, bint one, dict g,
                          object cost):
    # _plain_run's narrow-X route (M, K, N > 0, indptr checked): the result, None (the
    # Python route runs) or False (not decided here: _plain_run's full route runs).
    cdef double mac = cost.spmm_mac
    cdef double t_max = <double>nnz * N * mac         # t_sparse with every row of X alive
    # kernels' compaction pays only where csr_compact < (dead rows / K) * N * spmm_mac, and
    # the densified route costs at least its terms apart from BLAS, whatever X's dead rows
    # (costs.densified: all of W's elements, or the live columns' plus densify_live_nnz)
    if not <double>cost.csr_compact >= N * mac:
        return False
    if not (<double>cost.densify_call + <double>nnz * <double>cost.densify_nnz
            + min(<double>M * K * <double>cost.densify,
                  <double>nnz * <double>cost.densify_live_nnz)) >= t_max * (1 + 1e-9):
        return False
    if not one and not (<object>nnz) * N < g["min_work_per_thread"](cost):
        return None
    if <double>M * <double>K * <double>N > 2.0 ** 53:
        return None
    # X's nonzeros, exactly: kernels takes the sparse-x route only below SPARSE_X_DENSITY
    # of them (its sample never says dense below that: declined there, it decides)
    cdef const floating* x = &X[0, 0]
    cdef Py_ssize_t q, nz = 0, n_bad = 0
    with nogil:
        for q in range(K * N):
            nz += x[q] != 0
    if nz < <double>g["SPARSE_X_DENSITY"] * K * N:
        return None
    if floating is float:
        result = np.empty((M, N), dtype=_F32)
    else:
        result = np.empty((M, N), dtype=_F64)
    cdef floating[:, ::1] out = result
    if nnz == 0:
        out[:, :] = 0
        return result
    with nogil:
        n_bad = _spmm_narrow(&data[0], &indices[0], &indptr[0], 0, M, x, K, &out[0, 0], N)
    if n_bad:
        return None          # a column index out of range: the Python route names it
    return result


# ---- The lean path: small narrow products (issue 19, "never slower than SciPy" at 64^2 x 1)
# csr_spmm_plain's narrow route cost ~6 us a call at 64^2 x 1 against SciPy's ~4 (Zen 4),
# ~2 us of it its checks: typed memoryviews (one acquired per array), ndarray flags objects,
# the cost table's attributes, getrlimit through Python. _plain_lean makes the same checks
# and decisions on the arrays' C fields, for the case it knows (anything else: _PASS, and
# csr_spmm_plain's full checks run as before).
cdef object _PASS = object()
# The cost table _plain_lean last read and its rates (a CostTable is a frozen dataclass:
# the same object, the same rates; a replaced table is another object)
cdef object _lean_table = None
cdef double _lean_mac = 0, _lean_compact = 0, _lean_dcall = 0, _lean_dense = 0
cdef double _lean_dnnz = 0, _lean_dlive = 0
# Below this many multiply-adds the kernel runs holding the GIL (releasing and taking it
# back cost ~0.1 us, a few % of such a call)
DEF LEAN_GIL_WORK = 32768
# Index bytes up to which they are checked in a pass of their own (4x L2 on Zen 4: the
# second read from L2/L3). Past it the pass reads them from memory, in series with the
# kernel, which hides that read behind its FMA chains: checking a block of ~16k nonzeros
# then running it from L2 was slower than the checked kernel (2048^2 x 1, 50 % zeros,
# fp32: 1645 us against 1228, SciPy 1790; Zen 4, s21)
DEF LEAN_CHECK_BYTES = 4 << 20
# ... unless rows are short (nnz <= LEAN_SHORT_ROW * M): then the checked kernel lost to
# SciPy by 1.4x (262144x64 x 1, 50 % zeros, 32 MB of indices: 0.65-0.71 of SciPy's speed,
# fp32/fp64, Zen 4), and the indices are checked and run by blocks of ~LEAN_BLOCK_NNZ
# nonzeros, each block's indices in L1 for the kernel without a check: 5.4-5.7 ms against
# the checked kernel's 7.7 and SciPy's 4.9-5.5 (C harness, s23 cbench/st.c; blocks of 4k
# and more were slower, 6.8-7.8 ms: from L2). With long rows (8192^2, 90 % zeros, ~820 a
# row) a block is a row, and the checked kernel stays faster (10.3 against 11.4 ms); so
# it did at 164 and 205 a row in fp64 (16384^2 99 %: 4.1 against 5.2 ms; 8192x2048 90 %:
# 1.45 against 1.78, SciPy 1.53; fp32 there the blocks won, 1.18 against 1.64), and at 51
# a row the blocks won (65536x512 90 % fp64: 3.07 against 3.23, SciPy 3.11), but at 64 a
# row in fp32 they lost (65536x4096 98.4 %: 3.60 against 3.14 ms; review_s7, s23): 40.
DEF LEAN_SHORT_ROW = 40
DEF LEAN_BLOCK_NNZ = 1024


cdef inline bint _lean_array(cnp.ndarray a, int typenum) noexcept:
    # a 1-D, C-contiguous, aligned, native-order array of typenum
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_NDIM(a) == 1
            and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)
            and cnp.PyArray_ISNOTSWAPPED(a))


cdef int _lean_memory(Py_ssize_t nbytes, dict g) except -1:
    # kernels' check_memory on the output's estimate: 1 within the budget, 0 beyond. The
    # budget is _budget.memory_budget's (half of min(physical memory, RLIMIT_AS)), read
    # here without its Python calls unless a test replaced one of its functions.
    cdef rlimit rl
    cm = g["check_memory"]
    b = g["_budget"]
    native = b._NATIVE
    if (cm is native[0] and b.memory_budget is native[1]
            and b._physical_bytes is native[2] and getrlimit(RLIMIT_AS, &rl) == 0):
        total = b._physical_bytes()
        if rl.rlim_cur != RLIM_INFINITY:
            total = min(total, <object>rl.rlim_cur)
        return not nbytes > total // 2
    try:
        cm(nbytes, "", "")
    except MemoryError:
        return 0
    return 1


cdef inline bint _indptr_ok(const index_t* ip, Py_ssize_t M, Py_ssize_t nnz) noexcept nogil:
    # _plain_run's indptr check (the column indices are checked by the kernel), in the
    # SIMD path's vectorised pass (wsk_narrow.h)
    if index_t is int32_t:
        return not wsk_indptr_bad_i32(ip, M, nnz)
    else:
        return not wsk_indptr_bad_i64(ip, M, nnz)


cdef inline int _spmm_narrow_nc(const floating* vals, const index_t* cols,
                                const index_t* indptr, Py_ssize_t M, const floating* X,
                                floating* out, Py_ssize_t n) noexcept nogil:
    # _spmm_narrow on every row, the column indices checked before (_cols_bad), nnz > 0:
    # 0, or -1 (n wider than the kernel takes: nothing written)
    if floating is float:
        if index_t is int32_t:
            return wsk_spmm_narrow_nc_f32_i32(vals, cols, indptr, 0, M, X, out, n)
        else:
            return wsk_spmm_narrow_nc_f32_i64(vals, cols, indptr, 0, M, X, out, n)
    else:
        if index_t is int32_t:
            return wsk_spmm_narrow_nc_f64_i32(vals, cols, indptr, 0, M, X, out, n)
        else:
            return wsk_spmm_narrow_nc_f64_i64(vals, cols, indptr, 0, M, X, out, n)


cdef inline int _spmm_narrow_nc_rows(const floating* vals, const index_t* cols,
                                     const index_t* indptr, Py_ssize_t i0, Py_ssize_t i1,
                                     const floating* X, floating* out,
                                     Py_ssize_t n) noexcept nogil:
    # _spmm_narrow_nc on rows i0 <= i < i1 (their column indices checked before)
    if floating is float:
        if index_t is int32_t:
            return wsk_spmm_narrow_nc_f32_i32(vals, cols, indptr, i0, i1, X, out, n)
        else:
            return wsk_spmm_narrow_nc_f32_i64(vals, cols, indptr, i0, i1, X, out, n)
    else:
        if index_t is int32_t:
            return wsk_spmm_narrow_nc_f64_i32(vals, cols, indptr, i0, i1, X, out, n)
        else:
            return wsk_spmm_narrow_nc_f64_i64(vals, cols, indptr, i0, i1, X, out, n)


cdef inline Py_ssize_t _lean_blocks(const floating* vals, const index_t* cols,
                                    const index_t* ip, const floating* x, Py_ssize_t M,
                                    Py_ssize_t K, Py_ssize_t N, Py_ssize_t nnz,
                                    floating* y) noexcept nogil:
    # short rows past LEAN_CHECK_BYTES (nnz > 0): blocks of rows of ~LEAN_BLOCK_NNZ
    # nonzeros, each block's column indices checked, then its rows run by the kernel
    # without a check. Nonzero 0 is checked first: the kernel reads it for a row without
    # an odd last nonzero, in any block. Nonzero at the first index out of range (y then
    # partly written, not to be used)
    cdef Py_ssize_t rows = max(1, LEAN_BLOCK_NNZ * M // nnz), i0 = 0, i1
    if _cols_bad(cols, 1, K):
        return 1
    while i0 < M:
        i1 = min(M, i0 + rows)
        if ip[i1] > ip[i0] and _cols_bad(cols + ip[i0], ip[i1] - ip[i0], K):
            return 1
        if _spmm_narrow_nc_rows(vals, cols, ip, i0, i1, x, y, N):
            return 1
        i0 = i1
    return 0


cdef Py_ssize_t _narrow_one_thread(const floating* vals, const index_t* cols,
                                   const index_t* ip, const floating* x, Py_ssize_t M,
                                   Py_ssize_t K, Py_ssize_t N, floating* y) noexcept nogil:
    # _csr_narrow on one thread (nnz > 0): past LEAN_CHECK_BYTES of short rows, the lean
    # path's blocks (each block's indices checked, then run from L1) and not the kernel
    # checking as it goes, which lost to SciPy there by 1.6x (262144x64 x 1, 50 % zeros,
    # Zen 5: 6.9 against 4.1 ms; the call with n_threads left to wsekern came here, the
    # lean path only with n_threads=1). The rows holding a bad index are counted by the
    # checked kernel (a call that fails, its cost immaterial).
    cdef Py_ssize_t nnz = ip[M] - ip[0]
    if (ip[0] == 0 and nnz * <Py_ssize_t>sizeof(index_t) > LEAN_CHECK_BYTES
            and nnz <= LEAN_SHORT_ROW * M
            and not _lean_blocks(vals, cols, ip, x, M, K, N, nnz, y)):
        return 0
    return _spmm_narrow(vals, cols, ip, 0, M, x, K, y, N)


cdef inline bint _cols_bad(const index_t* cols, Py_ssize_t nnz, Py_ssize_t K) noexcept nogil:
    # a column index outside [0, K) (the SIMD path's vectorised pass)
    if index_t is int32_t:
        return wsk_cols_bad_i32(cols, nnz, _last_index(K, cols[0]))
    else:
        return wsk_cols_bad_i64(cols, nnz, _last_index(K, cols[0]))


cdef inline Py_ssize_t _count_nonzero(const floating* x, Py_ssize_t n,
                                      Py_ssize_t enough) noexcept nogil:
    # the SIMD path's vectorised count (wsk_narrow.h): the count, or a number >= enough
    if floating is float:
        return wsk_count_nz_f32(x, n, enough)
    else:
        return wsk_count_nz_f64(x, n, enough)


cdef inline Py_ssize_t _lean_kernel(const floating* vals, const index_t* cols,
                                    const index_t* ip, const floating* x, Py_ssize_t M,
                                    Py_ssize_t K, Py_ssize_t N, Py_ssize_t nnz,
                                    floating* y) noexcept nogil:
    # the column indices checked in one pass, then the kernel without a check: nonzero
    # where an index is out of range (nothing of y to be used)
    if _cols_bad(cols, nnz, K):
        return 1
    return _spmm_narrow_nc(vals, cols, ip, M, x, y, N)


cdef object _lean_run(const floating* vals, const index_t* cols, const index_t* ip,
                      const floating* x, Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
                      Py_ssize_t nnz, int ndim, int typenum, bint one, dict g):
    # _plain_run up to _plain_narrow's result, on the arrays' pointers. The GIL is kept
    # only for a call whose every pass is short: indptr's check and the kernel's row loop
    # run over M, the nonzero count over K * N, whatever nnz (M = 2^25 rows, 64 nonzeros,
    # held it ~0.1 s)
    cdef bint small = (nnz * N < LEAN_GIL_WORK and M < LEAN_GIL_WORK
                       and K * N < LEAN_GIL_WORK)
    cdef bint ok
    if small:
        ok = _indptr_ok(ip, M, nnz)
    else:
        with nogil:
            ok = _indptr_ok(ip, M, nnz)
    if not ok:
        return None
    cost = g["cost_table"]()
    global _lean_table, _lean_mac, _lean_compact, _lean_dcall, _lean_dense, _lean_dnnz, \
        _lean_dlive
    if cost is not _lean_table:
        _lean_mac = cost.spmm_mac
        _lean_compact = cost.csr_compact
        _lean_dcall = cost.densify_call
        _lean_dense = cost.densify
        _lean_dnnz = cost.densify_nnz
        _lean_dlive = cost.densify_live_nnz
        _lean_table = cost
    # _plain_narrow's bounds: the compaction and densifying ruled out whatever X's dead
    # rows (else csr_spmm_plain's full route decides)
    if not _lean_compact >= N * _lean_mac:
        return _PASS
    if not (_lean_dcall + <double>nnz * _lean_dnnz
            + min(<double>M * K * _lean_dense, <double>nnz * _lean_dlive)
            ) >= <double>nnz * N * _lean_mac * (1 + 1e-9):
        return _PASS
    if not one and not (<object>nnz) * N < g["min_work_per_thread"](cost):
        return None
    if <double>M * <double>K * <double>N > 2.0 ** 53:
        return None
    # X's nonzeros against the sparse-X threshold: counted only until they reach it
    cdef Py_ssize_t nz
    cdef double sparse_x = <double>g["SPARSE_X_DENSITY"] * K * N
    cdef Py_ssize_t enough = <Py_ssize_t>ceil(sparse_x) if sparse_x < K * N else K * N
    if small:
        nz = _count_nonzero(x, K * N, enough)
    else:
        with nogil:
            nz = _count_nonzero(x, K * N, enough)
    if nz < sparse_x:
        return None
    cdef cnp.npy_intp dims[2]
    dims[0] = M
    dims[1] = N
    result = cnp.PyArray_EMPTY(ndim, dims, typenum, 0)
    cdef floating* y = <floating*>cnp.PyArray_DATA(<cnp.ndarray>result)
    cdef Py_ssize_t n_bad
    if nnz == 0:
        if small:
            memset(y, 0, M * N * sizeof(floating))
        else:
            with nogil:
                memset(y, 0, M * N * sizeof(floating))
        return result
    # the column indices checked in one pass, then the kernel without a check (see
    # wsk_narrow.h: the check in the row loop cost ~1/3 of the N = 1 kernel); for indices
    # past LEAN_CHECK_BYTES the second read of them is from memory, and the kernel checking
    # as it goes is kept (8192^2 x 1 at 70-90 % zeros, 27-80 MB of indices: 0.90-0.96 of
    # SciPy's speed with the pass, 0.90-1.06 without, Zen 4 at load ~10 against ~1)
    if nnz * sizeof(index_t) > LEAN_CHECK_BYTES:
        with nogil:
            if nnz <= LEAN_SHORT_ROW * M:
                n_bad = _lean_blocks(vals, cols, ip, x, M, K, N, nnz, y)
            else:
                n_bad = _spmm_narrow(vals, cols, ip, 0, M, x, K, y, N)
        return None if n_bad else result
    if small:
        n_bad = _lean_kernel(vals, cols, ip, x, M, K, N, nnz, y)
    else:
        with nogil:
            n_bad = _lean_kernel(vals, cols, ip, x, M, K, N, nnz, y)
    if n_bad:                # a column index out of range: the Python route names it
        return None          # (or an X wider than the kernel: not reached, _narrow)
    return result


cdef object _plain_lean(object W, cnp.ndarray X, object n_threads, dict g):
    # csr_spmm_plain for a SciPy CSR W (not transposed, no out) and an X that the narrow
    # route takes: the result, None (the Python route runs) or _PASS (not decided here)
    cdef int ndim = cnp.PyArray_NDIM(X), xt = cnp.PyArray_TYPE(X), it
    if not ((xt == cnp.NPY_FLOAT or xt == cnp.NPY_DOUBLE) and (ndim == 1 or ndim == 2)
            and cnp.PyArray_IS_C_CONTIGUOUS(X) and cnp.PyArray_ISALIGNED(X)
            and cnp.PyArray_ISNOTSWAPPED(X)):
        return _PASS
    cdef Py_ssize_t K = cnp.PyArray_DIM(X, 0), N = cnp.PyArray_DIM(X, 1) if ndim == 2 else 1
    if K <= 0 or N <= 0 or cnp.PyArray_STRIDE(X, 0) == 0 or (
            ndim == 2 and cnp.PyArray_STRIDE(X, 1) == 0):
        return _PASS
    cdef Py_ssize_t itemsize = 4 if xt == cnp.NPY_FLOAT else 8
    if type(W) not in g["_PLAIN_CSR"]:
        return _PASS
    indptr, indices, data, shape = W.indptr, W.indices, W.data, W.shape
    if not (type(indptr) is np.ndarray and type(indices) is np.ndarray
            and type(data) is np.ndarray and type(shape) is tuple and len(shape) == 2):
        return _PASS
    cdef cnp.ndarray ip = indptr, ix = indices, dv = data
    it = cnp.PyArray_TYPE(ip)
    if not ((it == cnp.NPY_INT32 or it == cnp.NPY_INT64) and _lean_array(ip, it)
            and _lean_array(ix, it) and _lean_array(dv, xt)):
        return _PASS
    cdef Py_ssize_t M = cnp.PyArray_DIM(ip, 0) - 1, nnz = cnp.PyArray_DIM(ix, 0)
    m_obj, k_obj = shape
    if (type(m_obj) is not int or type(k_obj) is not int or m_obj != M or k_obj != K
            or M <= 0 or cnp.PyArray_DIM(dv, 0) != nnz):
        return _PASS
    cdef bint i64 = it == cnp.NPY_INT64
    if not _narrow(N, itemsize):
        return _PASS
    if not (n_threads is None or (type(n_threads) is int and n_threads != 0)):
        return _PASS
    if not _lean_memory(M * N * itemsize, g):
        return None
    cdef bint one = type(n_threads) is int and n_threads == 1
    cdef void* pv = cnp.PyArray_DATA(dv)
    cdef void* pc = cnp.PyArray_DATA(ix)
    cdef void* pp = cnp.PyArray_DATA(ip)
    cdef void* px = cnp.PyArray_DATA(X)
    if itemsize == 4:
        if i64:
            return _lean_run(<const float*>pv, <const int64_t*>pc, <const int64_t*>pp,
                             <const float*>px, M, K, N, nnz, ndim, xt, one, g)
        return _lean_run(<const float*>pv, <const int32_t*>pc, <const int32_t*>pp,
                         <const float*>px, M, K, N, nnz, ndim, xt, one, g)
    if i64:
        return _lean_run(<const double*>pv, <const int64_t*>pc, <const int64_t*>pp,
                         <const double*>px, M, K, N, nnz, ndim, xt, one, g)
    return _lean_run(<const double*>pv, <const int32_t*>pc, <const int32_t*>pp,
                     <const double*>px, M, K, N, nnz, ndim, xt, one, g)


def live_rows(const floating[:, ::1] X, const uint8_t[::1] alive, Py_ssize_t n_alive,
              index_dtype):
    """(X_live, remap): the rows of X flagged in ``alive`` (``n_alive`` of them, the
    caller's count) in order, plus one zero row at the end, and ``remap[k]``, the row of
    X_live holding row k (``n_alive``, the zero row, for a dead one), of ``index_dtype``
    (int32 or int64). One pass of row copies (NumPy's boolean take and scatter of the
    remap took 0.14 ms at 1024 x 256 fp32, half the rows alive, Zen 4)."""
    if alive.shape[0] != X.shape[0]:
        raise ValueError(f"alive must hold {X.shape[0]} flags; received {alive.shape[0]}")
    return _gather_live(X, alive, n_alive, np.dtype(index_dtype))


def live_map(const uint8_t[::1] alive, Py_ssize_t n_alive, index_dtype):
    """(remap, rows) of :func:`live_rows` without the copy of the rows: ``remap[k]`` is the
    live row number of row k (``n_alive`` for a dead one) and ``rows[q]`` the row of X that
    is live row q, both of ``index_dtype`` (int32 or int64). For :func:`csr_spmm`'s
    ``x_rows``, whose column blocks copy the live rows from X."""
    index_dtype = np.dtype(index_dtype)
    _check_alive(alive, n_alive, index_dtype)
    remap = np.empty(alive.shape[0], dtype=index_dtype)
    rows = np.empty(n_alive, dtype=index_dtype)
    if index_dtype == _I32:
        _fill_live_map[int32_t](alive, remap, rows)
    else:
        _fill_live_map[int64_t](alive, remap, rows)
    return remap, rows


cdef _check_alive(const uint8_t[::1] alive, Py_ssize_t n_alive, index_dtype):
    # live_map's and live_rows' checks: the index type, the caller's count, int32's range
    if index_dtype != _I32 and index_dtype != _I64:
        raise ValueError(f"index_dtype must be int32 or int64; received {index_dtype}")
    cdef Py_ssize_t k, count = 0
    with nogil:
        for k in range(alive.shape[0]):
            count += alive[k] != 0
    if count != n_alive:
        raise ValueError(f"alive flags {count} rows; n_alive is {n_alive}")
    if index_dtype == _I32 and n_alive > 2147483647:
        raise ValueError(f"{n_alive} live rows do not fit int32 indices")


cdef void _fill_live_map(const uint8_t[::1] alive, index_t[::1] remap,
                         index_t[::1] rows) noexcept:
    cdef Py_ssize_t k, q = 0, n_alive = rows.shape[0]
    with nogil:
        for k in range(alive.shape[0]):
            if alive[k]:
                remap[k] = <index_t>q
                rows[q] = <index_t>k
                q += 1
            else:
                remap[k] = <index_t>n_alive


cdef tuple _gather_live(const floating[:, ::1] X, const uint8_t[::1] alive,
                        Py_ssize_t n_alive, index_dtype, object into=None):
    # ``into``: uint8 bytes to hold X_live (csr_spmm_plain's kept buffer), else fresh
    cdef Py_ssize_t K = X.shape[0], N = X.shape[1], k, q = 0
    _check_alive(alive, n_alive, index_dtype)
    if into is None:
        X_live = np.empty((n_alive + 1, N), dtype=np.asarray(X).dtype)
    else:
        X_live = into.view(np.asarray(X).dtype).reshape(n_alive + 1, N)
    remap = np.empty(K, dtype=index_dtype)
    cdef floating[:, ::1] xl = X_live
    cdef int32_t[::1] r32 = remap if index_dtype == _I32 else None
    cdef int64_t[::1] r64 = remap if index_dtype == _I64 else None
    cdef bint i32 = index_dtype == _I32
    with nogil:
        for k in range(K):
            if alive[k]:
                if N:
                    memcpy(&xl[q, 0], &X[k, 0], N * sizeof(floating))
                if i32:
                    r32[k] = <int32_t>q
                else:
                    r64[k] = q
                q += 1
            elif i32:
                r32[k] = <int32_t>n_alive
            else:
                r64[k] = n_alive
        if N:
            memset(&xl[n_alive, 0], 0, N * sizeof(floating))
    return X_live, remap


cdef bint _kept_map_new(object P, object alive) except -1:
    # Whether _kept_w would compact in the call: ``alive`` differs from the map P noted
    # last (then noted here as _kept_w notes it), or is that map but P is too big for its
    # kept arrays (_KEPT_MAX_BYTES: none are ever made, each call compacts). Then True.
    cached = getattr(P, "_kept", None)
    cdef const uint8_t[::1] seen
    cdef const uint8_t[::1] now = alive
    cdef Py_ssize_t K = now.shape[0]
    if cached is not None:
        seen = cached[0]
        if seen.shape[0] == K and (K == 0 or memcmp(&seen[0], &now[0], K) == 0):
            return cached[1] is None and (P._data.nbytes + P._indices.nbytes
                                          + P._indptr.nbytes) > _KEPT_MAX_BYTES
    P._kept = (bytes(alive), None)
    return True


cdef bint _livebits_tiles(Py_ssize_t N, Py_ssize_t kept, dict g) except -1:
    # Whether _spmm_livebits's tiled form takes X of N float32 columns with kept live rows:
    # the kernel there (AVX-512 with VPOPCNTDQ), N a multiple of 128, the live rows in 5/8
    # of L2 (each tile reads them all while W streams past once, not kept). Zen 5, 1024^2 x
    # 256, 90 % zeros, s24: 514 live rows (514 KiB) 281-300 us against the compacted route's
    # 309-313 (column blocks); 503 rows 290-293. Not measured past 514 KiB.
    return (wsk_spmm_rows_lb_f32_t128 != NULL and N % 128 == 0
            and kept * N * <Py_ssize_t>sizeof(float) <= g["l2_bytes"]() * 5 // 8)


cdef Py_ssize_t _spmm_livebits(const floating[::1] data, const index_t[::1] indices,
                               const index_t[::1] indptr, const floating[:, ::1] X,
                               floating[:, ::1] out, const uint8_t[::1] alive,
                               bint check_cols) except -1:
    # out = W @ X for float32 X of 64 columns and at most 4096 rows, int32 indices, nnz > 0,
    # one thread, X's live rows flagged in alive (exact): wsk_spmm_rows_lb_f32_n64, the
    # fused per-row kernel reading X itself. The same kept entries, order and sums as
    # _csr_spmm's fused variant on X_live (bit for bit), without X_live's gather and the
    # remap's half of the live-map work (Zen 4, 4096^2 x 64, 90 % zeros, half of X dead).
    # At 128 * T columns, its tiled form wsk_spmm_rows_lb_f32_t128: the sums of the rows
    # kernel's 8x1 tiles on the compacted rows against X_live (_csr_spmm's compacted-once
    # W in column blocks, or unblocked), bit for bit.
    # check_cols: each row's columns checked against [0, K) as it is compacted, a row
    # holding one outside left zero and counted (returned); X never read through it.
    cdef Py_ssize_t M = out.shape[0], K = X.shape[0], N = X.shape[1], i, cap = 0, n_bad = 0
    cdef uint32_t tab[128]
    cdef uint8_t[::1] row_bad = None
    cdef uint8_t* bad = NULL
    cdef uint32_t last = 0xFFFFFFFFu
    cdef bint tiles = N != 64
    if not (floating is float and index_t is int32_t) or out.shape[1] != N or (
            (N != 64 or wsk_spmm_rows_lb_f32_n64 == NULL) and (
                N % 128 != 0 or wsk_spmm_rows_lb_f32_t128 == NULL)) or (
            data.shape[0] == 0 or not wsk_livebits_build(&alive[0], K, tab)):
        raise ValueError("_spmm_livebits: float32, int32 indices, 64 or 128 * T columns, "
                         "at most 4096 rows of X, nnz > 0 and the AVX-512 fused path")
    for i in range(M):
        cap = max(cap, indptr[i + 1] - indptr[i])
    cap = (cap + 31) // 16 * 16         # the row's entries plus a whole step's 16 lanes
    vbuf = np.empty(2 * cap, dtype=np.float32)
    cbuf = np.empty(2 * cap, dtype=np.int32)
    cdef float[::1] vb = vbuf
    cdef int32_t[::1] cb = cbuf
    if check_cols:
        row_bad = np.zeros(M, dtype=np.uint8)
        bad = &row_bad[0]
        last = <uint32_t>(K - 1)
    # X off the 64-byte line (NumPy aligns to 16 bytes): each row then spans 5 lines and
    # each of its 4 loads is split, and the kernel ran 20-25 % slower (Zen 4, 4096^2 x 64,
    # 90 % zeros, half of X dead, one process: 3.4-3.6 ms median at offsets 16/32/48, 2.9
    # at 0, huge or heap pages alike: the bench's ratio was bimodal by process). So such an
    # X (up to X_LINE_MAX_BYTES) is copied whole into the kept 64-aligned buffer first, as
    # fast as an aligned X (2.9-2.95): it is then in L2. The same bits (a copy; dead rows
    # as they were).
    cdef const float* xp = <const float*>&X[0, 0]
    live_raw = None
    if floating is float and index_t is int32_t:
        if _onto_line(xp, N * sizeof(float), K * N * sizeof(float)):
            xbytes, live_raw = _line_copy(xp, K * N * sizeof(float))
            xp = <const float*>cnp.PyArray_DATA(xbytes)
        try:
            with nogil:
                if tiles:
                    wsk_spmm_rows_lb_f32_t128(&data[0], &indices[0], &indptr[0], 0, M, tab,
                                              last, xp, N, &out[0, 0], N, &vb[0], &cb[0],
                                              cap, bad)
                else:
                    wsk_spmm_rows_lb_f32_n64(&data[0], &indices[0], &indptr[0], 0, M, tab,
                                             last, xp, &out[0, 0], 64, &vb[0], &cb[0], cap,
                                             bad)
                if check_cols:
                    for i in range(M):
                        n_bad += row_bad[i]
        finally:
            _live_release(live_raw)
    return n_bad


# A PackedSparse's entries compacted to one live map of X are kept beside it (its _kept)
# up to this many bytes: a W meeting the same dead rows again (dead units, inference)
# skips the compaction; the values cannot change without PackedSparse dropping it.
_KEPT_MAX_BYTES = 64 << 20


cdef object _kept_w(object P, const floating[::1] data, const index_t[::1] indices,
                    const index_t[::1] indptr, const uint8_t[::1] alive,
                    const index_t[::1] remap, index_t zero_row):
    # (vals, cols, ptr): W's entries on live rows of X (and the non-finite ones on dead
    # rows, on zero_row) with their columns remapped, the rows back to back, as
    # _csr_spmm's compact_once on one thread makes them (the same arrays), or None: "compact
    # in the call, as before". P._kept is (live map, arrays or None). The arrays are made
    # (remap: alive's) the second call in a row with the same map, byte for byte, and kept
    # when small enough; a map seen first is only noted: a map that changes every call
    # costs what it did (made then, the per-row route at 4096^2 x 64 took 0.1-1 ms more
    # than its fused compaction, Zen 4: fresh arrays, the last map's still held).
    cdef Py_ssize_t K = alive.shape[0], M = indptr.shape[0] - 1, nnz = data.shape[0], i, q
    cached = getattr(P, "_kept", None)   # a PackedSparse unpickled from before has none
    cdef const uint8_t[::1] seen
    cdef bint same = False
    if cached is not None:
        seen = cached[0]
        same = seen.shape[0] == K and (K == 0 or memcmp(&seen[0], &alive[0], K) == 0)
        if same and cached[1] is not None:
            return cached[1]
    if not same or (nnz * (<Py_ssize_t>sizeof(floating) + <Py_ssize_t>sizeof(index_t))
                    + (M + 1) * <Py_ssize_t>sizeof(index_t)) > _KEPT_MAX_BYTES:
        P._kept = (bytes(alive), None)
        return None
    dtype = np.asarray(data).dtype
    idx_dtype = np.asarray(indices).dtype
    kept_vals_arr = np.empty(max(nnz, 1), dtype=dtype)
    kept_cols_arr = np.empty(max(nnz, 1), dtype=idx_dtype)
    kept_ptr_arr = np.empty(M + 1, dtype=idx_dtype)
    cdef floating[::1] kv = kept_vals_arr
    cdef index_t[::1] kc = kept_cols_arr
    cdef index_t[::1] kp = kept_ptr_arr
    cdef uint32_t lm_tab[256]
    cdef const uint32_t* lm = NULL
    if index_t is int32_t and wsk_compact_csr_f32_i32_lm != NULL:
        if wsk_livemap_build(&remap[0], remap.shape[0], zero_row, lm_tab):
            lm = lm_tab
    with nogil:
        kp[0] = 0
        for i in range(M):
            q = _compact_row(&data[0], &indices[0], &indptr[0], i, &remap[0], zero_row,
                             &kv[0] + kp[i], &kc[0] + kp[i], lm, NULL, 0)
            kp[i + 1] = <index_t>(kp[i] + q)
    n = kp[M]
    result = (kept_vals_arr[:n], kept_cols_arr[:n], kept_ptr_arr)
    for a in result:
        a.flags.writeable = False
    # kept only if nothing dropped or replaced the cache while the GIL was released: a
    # set_values meanwhile (another thread) may have changed values read above
    if P._kept is cached:
        P._kept = (cached[0], result)
    return result
