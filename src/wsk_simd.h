/* SIMD inner loops of wsekern, with run-time dispatch.
 *
 * Each kernel is written once with GCC/Clang vector extensions, then compiled
 * several times with different `target` attributes (x86-64-v4 = AVX-512,
 * x86-64-v3 = AVX2 + FMA, and the baseline).  `wsk_simd_init()` picks the
 * widest version the running CPU supports, so the extension is portable (no
 * -march=native) yet uses the vector units that are there.  On other
 * architectures, or compilers without these features, only the baseline
 * version exists.
 *
 * The loops never raise and never touch Python: the Cython layer validates.
 */
#ifndef WSK_SIMD_H
#define WSK_SIMD_H

#include <stdint.h>
#include <string.h>
#include <stddef.h>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && !defined(WSK_NO_DISPATCH)
#define WSK_X86_DISPATCH 1
#define WSK_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define WSK_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#else
#define WSK_X86_DISPATCH 0
#endif

#define WSK_INLINE static inline __attribute__((always_inline))
/* The spmm tiles prefetch the piece of X that the nonzero this far ahead meets: the rows
   are random, so the hardware prefetcher cannot; with X in L3 (4096^2 x 64 on Zen 3) 16
   ahead cut the time by 25-35 %, and it is neutral when X sits in L2. */
#define WSK_PREFETCH_AHEAD 16
/* ... and 8 ahead in wsk_spmm_rows, when the X it reads is this small (it then sits in L2,
   kernels.column_block's aim, on any x86-64 of the last decade). */
#define WSK_PREFETCH_NEAR 8
#define WSK_PREFETCH_NEAR_BYTES (256 * 1024)
/* How the baseline and AVX2 rows kernels run X's column blocks of one 8x1 tile (8
   vectors wide), set once per CPU by wsk_spmm_set_block_mode: 0 as tuned on Zen 3/4 (the
   baseline prefetches 8 ahead in L2 with the block's pitch in a register; AVX2 takes
   wsk_spmm_row), 1 as measured on Zen 5 (see wsk_spmm_rows_body). */
static int wsk_spmm_block_mode = 0;
static inline void wsk_spmm_set_block_mode(int mode) { wsk_spmm_block_mode = mode; }

/* ------------------------------------------------------------------------ */
/* Every kernel below is written once and instantiated per target with that   */
/* target's native vector (16 bytes baseline SSE2, 32 AVX2, 64 AVX-512), so a  */
/* vector is one register and the accumulator tiles fit the register file:    */
/* 16 xmm/ymm registers (baseline, AVX2) or 32 zmm (AVX-512).  A wider generic */
/* vector than the target has is split by GCC through the stack (it was: the  */
/* AVX2 clone kept its accumulators in memory).  The helpers carry the        */
/* target attribute of the kernel they are inlined into.                      */
/* ------------------------------------------------------------------------ */

/* acc[0:NV] += w * the NV vectors of VT at x (aligned to 16 bytes if AL); w a scalar of
   the vectors' type (broadcast by the multiply) or a vector already broadcast. */
#define WSK_MAC_LOOP(VT, acc, w, x, NV, AL)                                            \
    _Pragma("GCC unroll 8")                                                            \
    for (int a = 0; a < NV; a++) {                                                     \
        VT xv;                                                                         \
        if (AL)                                                                        \
            memcpy(&xv, __builtin_assume_aligned(x + a * sizeof(VT), 16), sizeof(VT)); \
        else                                                                           \
            memcpy(&xv, x + a * sizeof(VT), sizeof(VT));                               \
        acc[a] += (w) * xv;                                                            \
    }
/* The row of X that column index c meets, in the tile below (its locals).   */
#define WSK_XROW(c) (split ? xb + (ptrdiff_t)(c) * pitch                            \
                           : (const char*)(X + (ptrdiff_t)(c) * ldx))
/* spmm row kernel: y[0:n] = sum_p vals[p] * X[cols[p], 0:n]                 */
/* X is row-major with leading dimension ldx.  Columns go in tiles of NV      */
/* vectors held in registers; SETS > 1 keeps independent accumulators for     */
/* alternate nonzeros so narrow tiles are not bound by the FMA latency.       */
/* Tiles: 8x1, 4x2, 2x4, 1x4 vectors (8 accumulators + 1 broadcast + 1 load).  The      */
/* caller keeps the X it passes in L2 by blocking its columns (src/_spmm.pyx).        */
#define WSK_DEFINE_SPMM(V, VT, LANES, VH, HLANES, VS, I, SFX, TGT, ATTR, STREAM_MIN,    \
                        SPLIT_PF, BLK)                                                 \
WSK_INLINE ATTR void wsk_spmm_mac_##SFX##_##TGT(VT* acc, const V w, const char* x,    \
        const int NV, const int AL)                                                    \
{                                                                                      \
    WSK_MAC_LOOP(VT, acc, w, x, NV, AL)                                                \
}                                                                                      \
WSK_INLINE ATTR void wsk_spmm_macv_##SFX##_##TGT(VT* acc, const VT w, const char* x,   \
        const int NV, const int AL)                                                    \
{                                                                                      \
    WSK_MAC_LOOP(VT, acc, w, x, NV, AL)                                                \
}                                                                                      \
/* Four nonzeros into one set (block mode 1's step), in their order; the baseline       \
   broadcasts the four weights from one load (wsk_w4_*). */                            \
WSK_INLINE ATTR void wsk_spmm_mac4_##SFX##_##TGT(VT* acc, const V* vals, const I* cols, \
        const char* xb, ptrdiff_t pitch, const V* X, ptrdiff_t ldx, const int NV,      \
        const int AL, const int split)                                                 \
{                                                                                      \
    if (SPLIT_PF && sizeof(VT) == 16) {                                                \
        VT w[4];                                                                       \
        wsk_w4_##VS##_base(vals, (wsk_part_##VS*)w);                                   \
        _Pragma("GCC unroll 4")                                                        \
        for (int u = 0; u < 4; u++)                                                    \
            wsk_spmm_macv_##SFX##_##TGT(acc, w[u], WSK_XROW(cols[u]), NV, AL);         \
    } else {                                                                           \
        _Pragma("GCC unroll 4")                                                        \
        for (int u = 0; u < 4; u++)                                                    \
            wsk_spmm_mac_##SFX##_##TGT(acc, vals[u], WSK_XROW(cols[u]), NV, AL);       \
    }                                                                                  \
}                                                                                      \
WSK_INLINE ATTR void wsk_spmm_prefetch_##SFX##_##TGT(const char* x, const int NV)     \
{                                                                                      \
    _Pragma("GCC unroll 8")                                                            \
    for (int l = 0; l < (int)(NV * sizeof(VT) / 64); l++)                              \
        __builtin_prefetch(x + 64 * l);                                                \
}                                                                                      \
WSK_INLINE ATTR void wsk_spmm_tile_s_##SFX##_##TGT(const V* vals, const I* cols,       \
        ptrdiff_t nnz, ptrdiff_t avail, const V* X, ptrdiff_t ldx, V* y, const int NV, \
        const int SETS, const int AHEAD, const int AL, const int SPLIT, const int U4)  \
{                                                                                      \
    VT acc[8];                                                                         \
    _Pragma("GCC unroll 8")                                                            \
    for (int a = 0; a < NV * SETS; a++) acc[a] = (VT){0};                             \
    ptrdiff_t p = 0;                                                                   \
    /* The baseline (SPLIT_PF) runs the nonzeros WSK_PREFETCH_AHEAD or more before the  \
       row's end in a loop of their own that prefetches without a test, and addresses  \
       X's rows in bytes (the index times the pitch in bytes): one loop testing each    \
       nonzero, with element offsets, took 39 instructions for the 8x1 tile's 24 vector \
       operations, now 35 (C harness, Zen 4: 3-10 % faster at 1024^2 x 256, 90 % zeros, \
       the same sums).  The AVX2 and AVX-512 clones keep the one loop and elements:      \
       split, fp32 AVX-512 and fp64 AVX2 ran 3-10 % slower at 4096^2 x 64.  cols[0:avail] \
       may be read (avail >= nnz): past the row's end, the baseline prefetches the pieces \
       of X that the next row's first nonzeros meet (see wsk_spmm_rows). */            \
    const int split = SPLIT;                                                           \
    const char* xb = (const char*)X;                                                   \
    const ptrdiff_t pitch = ldx * (ptrdiff_t)sizeof(V);                                \
    /* min(nnz, avail - AHEAD), written so that avail = nnz folds to the code without   \
       avail */                                                                        \
    const ptrdiff_t spare = avail - nnz;                                               \
    const ptrdiff_t pf_last = nnz - (spare < AHEAD ? AHEAD - spare : 0);               \
    const ptrdiff_t pf_end = split && AHEAD > 0 ? pf_last - SETS + 1 : 0;              \
    /* U4 (one set): four nonzeros an iteration, in their order (block mode 1) */      \
    for (; U4 && SETS == 1 && p + 4 <= pf_end; p += 4) {                               \
        _Pragma("GCC unroll 4")                                                        \
        for (int u = 0; u < 4; u++)                                                    \
            wsk_spmm_prefetch_##SFX##_##TGT(WSK_XROW(cols[p + u + AHEAD]), NV);        \
        wsk_spmm_mac4_##SFX##_##TGT(acc, vals + p, cols + p, xb, pitch, X, ldx, NV, AL, split); \
    }                                                                                  \
    for (; p < pf_end; p += SETS) {                                                    \
        _Pragma("GCC unroll 4")                                                        \
        for (int s = 0; s < SETS; s++) {                                               \
            wsk_spmm_prefetch_##SFX##_##TGT(                                           \
                WSK_XROW(cols[p + s + AHEAD]), NV);                                    \
            wsk_spmm_mac_##SFX##_##TGT(acc + s * NV, vals[p + s],                      \
                                       WSK_XROW(cols[p + s]), NV, AL);                 \
        }                                                                              \
    }                                                                                  \
    for (; U4 && SETS == 1 && p + 4 <= nnz; p += 4)                                    \
        wsk_spmm_mac4_##SFX##_##TGT(acc, vals + p, cols + p, xb, pitch, X, ldx, NV, AL, split); \
    for (; p + SETS <= nnz; p += SETS) {                                               \
        _Pragma("GCC unroll 4")                                                        \
        for (int s = 0; s < SETS; s++) {                                               \
            if (!split && AHEAD > 0 && p + s + AHEAD < nnz)                            \
                wsk_spmm_prefetch_##SFX##_##TGT(                                       \
                    WSK_XROW(cols[p + s + AHEAD]), NV);                                \
            wsk_spmm_mac_##SFX##_##TGT(acc + s * NV, vals[p + s],                      \
                                       WSK_XROW(cols[p + s]), NV, AL);                 \
        }                                                                              \
    }                                                                                  \
    for (; p < nnz; p++)                                                               \
        wsk_spmm_mac_##SFX##_##TGT(acc, vals[p], WSK_XROW(cols[p]), NV, AL);           \
    _Pragma("GCC unroll 8")                                                            \
    for (int a = 0; a < NV; a++) {                                                     \
        VT t = acc[a];                                                                 \
        _Pragma("GCC unroll 4")                                                        \
        for (int s = 1; s < SETS; s++) t += acc[s * NV + a];                           \
        memcpy(y + a * LANES, &t, sizeof(VT));                                         \
    }                                                                                  \
}                                                                                      \
WSK_INLINE ATTR void wsk_spmm_tile_##SFX##_##TGT(const V* vals, const I* cols,         \
        ptrdiff_t nnz, ptrdiff_t avail, const V* X, ptrdiff_t ldx, V* y, const int NV, \
        const int SETS, const int AHEAD, const int AL)                                 \
{                                                                                      \
    wsk_spmm_tile_s_##SFX##_##TGT(vals, cols, nnz, avail, X, ldx, y, NV, SETS, AHEAD,  \
                                  AL, SPLIT_PF, 0);                                    \
}                                                                                      \
WSK_INLINE ATTR VH wsk_spmm_hload_##SFX##_##TGT(const V* x, const int n)               \
{                                                                                      \
    VH v;                                                                              \
    if (n == HLANES)                                                                   \
        memcpy(&v, x, sizeof(VH));                                                     \
    else                                                                               \
        v = (VH)wsk_hpart_load_##VS##_##TGT(x, n);                                     \
    return v;                                                                          \
}                                                                                      \
WSK_INLINE ATTR void wsk_spmm_tail_pass_##SFX##_##TGT(const V* vals, const I* cols,    \
        ptrdiff_t nnz, const V* X, ptrdiff_t ldx, V* y, const int n)                   \
{                                                                                      \
    ptrdiff_t p = 0;                                                                   \
    if (n <= HLANES) {                                                                 \
        VH a0 = (VH){0}, a1 = (VH){0};                                                 \
        for (; p + 2 <= nnz; p += 2) {                                                 \
            a0 += vals[p] * wsk_spmm_hload_##SFX##_##TGT(X + (ptrdiff_t)cols[p] * ldx, n); \
            a1 += vals[p + 1]                                                          \
                  * wsk_spmm_hload_##SFX##_##TGT(X + (ptrdiff_t)cols[p + 1] * ldx, n); \
        }                                                                              \
        if (p < nnz)                                                                   \
            a0 += vals[p] * wsk_spmm_hload_##SFX##_##TGT(X + (ptrdiff_t)cols[p] * ldx, n); \
        a0 += a1;                                                                      \
        if (n == HLANES)                                                               \
            memcpy(y, &a0, sizeof(VH));                                                \
        else                                                                           \
            wsk_hpart_store_##VS##_##TGT(y, a0, n);                                    \
        return;                                                                        \
    }                                                                                  \
    VT a0 = (VT){0}, a1 = (VT){0};                                                     \
    for (; p + 2 <= nnz; p += 2) {                                                     \
        a0 += vals[p] * (VT)wsk_part_load_##VS##_##TGT(X + (ptrdiff_t)cols[p] * ldx, n); \
        a1 += vals[p + 1]                                                              \
              * (VT)wsk_part_load_##VS##_##TGT(X + (ptrdiff_t)cols[p + 1] * ldx, n);   \
    }                                                                                  \
    if (p < nnz)                                                                       \
        a0 += vals[p] * (VT)wsk_part_load_##VS##_##TGT(X + (ptrdiff_t)cols[p] * ldx, n); \
    a0 += a1;                                                                          \
    wsk_part_store_##VS##_##TGT(y, a0, n);                                             \
}                                                                                      \
WSK_INLINE ATTR void wsk_spmm_tail_##SFX##_##TGT(const V* vals, const I* cols,         \
        ptrdiff_t nnz, const V* X, ptrdiff_t ldx, V* y, ptrdiff_t n)                   \
{                                                                                      \
    /* Fewer columns than a vector (0 < n < LANES): one pass over the row, in half     \
       vectors up to HLANES columns (masked below it), else in masked full ones        \
       (wsk_part_load: nothing read or written past the n columns), not a half vector's \
       pass then a scalar pass per column (fp32 N = 12 on AVX-512 took 3x N = 16's     \
       time; a masked full vector for 8 columns there, 1.25x the half vector's).  Each \
       column's sum as before: the even nonzeros, the odd ones, then the two.  One     \
       column: scalars on the baseline; a partial vector elsewhere, where GCC paired the \
       scalar loop's products into one unfused multiply with int64 indices (fp64: 1 ulp \
       off the fused columns). */                                                      \
    if (n == 1 && sizeof(VT) == 16) {                                                  \
        V s0 = 0, s1 = 0;                                                              \
        ptrdiff_t p = 0;                                                               \
        for (; p + 2 <= nnz; p += 2) {                                                 \
            s0 += vals[p] * X[(ptrdiff_t)cols[p] * ldx];                               \
            s1 += vals[p + 1] * X[(ptrdiff_t)cols[p + 1] * ldx];                       \
        }                                                                              \
        if (p < nnz) s0 += vals[p] * X[(ptrdiff_t)cols[p] * ldx];                      \
        y[0] = s0 + s1;                                                                \
    } else if (n == 1) {        /* n a constant in each pass where it can be */        \
        wsk_spmm_tail_pass_##SFX##_##TGT(vals, cols, nnz, X, ldx, y, 1);               \
    } else if (n == HLANES) {                                                          \
        wsk_spmm_tail_pass_##SFX##_##TGT(vals, cols, nnz, X, ldx, y, HLANES);          \
    } else if (LANES > 4) {                                                            \
        wsk_spmm_tail_pass_##SFX##_##TGT(vals, cols, nnz, X, ldx, y, (int)n);          \
    } else {                                                                           \
        wsk_spmm_tail_pass_##SFX##_##TGT(vals, cols, nnz, X, ldx, y, 3);               \
    }                                                                                  \
}                                                                                      \
WSK_INLINE ATTR void wsk_spmm_stream_##SFX##_##TGT(const V* vals, const I* cols,       \
        ptrdiff_t nnz, const V* X, ptrdiff_t ldx, V* y, ptrdiff_t n)                   \
{                                                                                      \
    /* y stays in L1 and each nonzero streams its whole row of X (SciPy's order). */   \
    memset(y, 0, n * sizeof(V));                                                       \
    for (ptrdiff_t p = 0; p < nnz; p += 2) {                                           \
        const V w0 = vals[p], w1 = p + 1 < nnz ? vals[p + 1] : 0;                      \
        const V* x0 = X + (ptrdiff_t)cols[p] * ldx;                                    \
        const V* x1 = p + 1 < nnz ? X + (ptrdiff_t)cols[p + 1] * ldx : x0;             \
        ptrdiff_t j = 0;                                                               \
        for (; j + LANES <= n; j += LANES) {                                           \
            VT a, b, c;                                                                \
            memcpy(&a, y + j, sizeof(VT));                                             \
            memcpy(&b, x0 + j, sizeof(VT));                                            \
            memcpy(&c, x1 + j, sizeof(VT));                                            \
            a += w0 * b;                                                               \
            if (p + 1 < nnz) a += w1 * c;                                              \
            memcpy(y + j, &a, sizeof(VT));                                             \
        }                                                                              \
        for (; j < n; j++) y[j] += w0 * x0[j] + (p + 1 < nnz ? w1 * x1[j] : 0);      \
    }                                                                                  \
}                                                                                      \
static ATTR void wsk_spmm_row_##SFX##_##TGT(const V* vals, const I* cols,              \
        ptrdiff_t nnz, const V* X, ptrdiff_t ldx, V* y, ptrdiff_t n)                   \
{                                                                                      \
    ptrdiff_t j = 0;                                                                   \
    if (STREAM_MIN > 0 && n >= STREAM_MIN * LANES                                      \
            && (nnz >= WSK_STREAM_NNZ                                                  \
                || (ldx * (ptrdiff_t)sizeof(V)) % WSK_STREAM_PITCH == 0)) {            \
        wsk_spmm_stream_##SFX##_##TGT(vals, cols, nnz, X, ldx, y, n);                  \
        return;                                                                        \
    }                                                                                  \
    for (; j + 8 * LANES <= n; j += 8 * LANES)                                         \
        wsk_spmm_tile_##SFX##_##TGT(vals, cols, nnz, nnz, X + j, ldx, y + j, 8, 1, \
                                    WSK_PREFETCH_AHEAD, 0);                            \
    if (j + 4 * LANES <= n) {                                                          \
        wsk_spmm_tile_##SFX##_##TGT(vals, cols, nnz, nnz, X + j, ldx, y + j, 4, 2, \
                                    WSK_PREFETCH_AHEAD, 0);                            \
        j += 4 * LANES;                                                                \
    }                                                                                  \
    if (j + 2 * LANES <= n) {                                                          \
        wsk_spmm_tile_##SFX##_##TGT(vals, cols, nnz, nnz, X + j, ldx, y + j, 2, 4, \
                                    WSK_PREFETCH_AHEAD, 0);                            \
        j += 2 * LANES;                                                                \
    }                                                                                  \
    if (j + LANES <= n) {                                                              \
        wsk_spmm_tile_##SFX##_##TGT(vals, cols, nnz, nnz, X + j, ldx, y + j, 1, 4, \
                                    WSK_PREFETCH_AHEAD, 0);                            \
        j += LANES;                                                                    \
    }                                                                                  \
    if (j < n) wsk_spmm_tail_##SFX##_##TGT(vals, cols, nnz, X + j, ldx, y + j, n - j); \
}                                                                                      \
/* Rows i0 <= i < i1 of a CSR W (vals, cols, indptr: all of W, cols[0:n_idx] readable)    \
   times X (k_rows rows): out[i * ldo + 0:n] = sum_p vals[p] * X[cols[p], 0:n], one call   \
   for a chunk of rows (a call per row took 4 % more at 1024^2 x 256 on the baseline in a  \
   C harness, 0-2 % in the package).                                                       \
   A row flagged in skip (NULL: none) is left alone.  On the baseline a row of one 8x1     \
   tile (the column blocks of kernels.column_block) prefetches, in its last nonzeros, the \
   pieces of X that the next row's first ones meet: they missed L1 before.  With X in     \
   L2 (WSK_PREFETCH_NEAR_BYTES or less), 8 nonzeros ahead is enough, and 16 left more     \
   lines waiting in L1 (Zen 4, C harness: 1.5 % slower at 1024^2 x 256).  The same sums   \
   as wsk_spmm_row. */                                                                 \
WSK_INLINE ATTR void wsk_spmm_rows_body_##SFX##_##TGT(const V* vals, const I* cols,   \
        const I* indptr, const ptrdiff_t* counts, ptrdiff_t i0, ptrdiff_t i1,          \
        ptrdiff_t n_idx, const uint8_t* skip, const V* X, ptrdiff_t k_rows, ptrdiff_t ldx, \
        V* out, ptrdiff_t ldo, ptrdiff_t n)                                            \
{                                                                                      \
    if (BLK && wsk_spmm_block_mode && n == 8 * LANES && ldx == 8 * LANES) {            \
        /* wsk_spmm_block_mode 1 (set per CPU, wsk_spmm_set_block_mode): X one column     \
           block of pitch 8 * LANES (a constant: shifted indices, no multiply), no        \
           prefetch when the block is in L2, else 16 ahead in a loop of their own, four   \
           nonzeros an iteration; the same sums (one 8x1 tile a row, as wsk_spmm_row).   \
           A loop of its own: merged with the loop below (the row's span read once), the   \
           baseline clone ran 5-9 % slower (s25). */                                      \
        const int near = k_rows * 8 * LANES * (ptrdiff_t)sizeof(V) <= WSK_PREFETCH_NEAR_BYTES; \
        const int al = (uintptr_t)X % 16 == 0;                                         \
        for (ptrdiff_t i = i0; i < i1; i++) {                                          \
            if (skip && skip[i]) continue;                                             \
            const ptrdiff_t p = indptr[i];                                             \
            const ptrdiff_t nnz = counts ? counts[i] : indptr[i + 1] - p;              \
            const ptrdiff_t avail = counts ? nnz : n_idx - p;                          \
            const ptrdiff_t av = avail > nnz ? avail : nnz;                            \
            if (near && al)                                                            \
                wsk_spmm_tile_s_##SFX##_##TGT(vals + p, cols + p, nnz, nnz, X, 8 * LANES, \
                                              out + i * ldo, 8, 1, 0, 1, 1, 1);        \
            else if (near)                                                             \
                wsk_spmm_tile_s_##SFX##_##TGT(vals + p, cols + p, nnz, nnz, X, 8 * LANES, \
                                              out + i * ldo, 8, 1, 0, 0, 1, 1);        \
            else                                                                       \
                wsk_spmm_tile_s_##SFX##_##TGT(vals + p, cols + p, nnz, av, X, 8 * LANES, \
                                              out + i * ldo, 8, 1, WSK_PREFETCH_AHEAD, \
                                              al, 1, 1);                               \
        }                                                                              \
        return;                                                                        \
    }                                                                                  \
    if (SPLIT_PF && n == 8 * LANES) {                                                  \
        const int in_l2 = k_rows * ldx * (ptrdiff_t)sizeof(V) <= WSK_PREFETCH_NEAR_BYTES; \
        /* X and its pitch on 16 bytes (the column blocks are): aligned loads, and the */ \
        /* tile's last mulps takes its X piece from memory, 34 instructions a nonzero,  */ \
        /* not 35 (Zen 4, the kernel alone at 1024^2 x 256, 90 % zeros: fp32 1-3 %      */ \
        /* faster, fp64 0-2 %; the same sums).                                           */ \
        const int al = ((uintptr_t)X | (uintptr_t)(ldx * (ptrdiff_t)sizeof(V))) % 16 == 0; \
        for (ptrdiff_t i = i0; i < i1; i++) {                                          \
            if (skip && skip[i]) continue;                                             \
            const ptrdiff_t p = indptr[i];                                             \
            const ptrdiff_t nnz = counts ? counts[i] : indptr[i + 1] - p;              \
            const ptrdiff_t avail = counts ? nnz : n_idx - p;                          \
            const ptrdiff_t av = avail > nnz ? avail : nnz;                            \
            if (in_l2 && al)                                                           \
                wsk_spmm_tile_##SFX##_##TGT(vals + p, cols + p, nnz, av, X, ldx,       \
                                            out + i * ldo, 8, 1, WSK_PREFETCH_NEAR, 1); \
            else if (in_l2)                                                            \
                wsk_spmm_tile_##SFX##_##TGT(vals + p, cols + p, nnz, av, X, ldx,       \
                                            out + i * ldo, 8, 1, WSK_PREFETCH_NEAR, 0); \
            else                                                                       \
                wsk_spmm_tile_##SFX##_##TGT(vals + p, cols + p, nnz, av, X, ldx,       \
                                            out + i * ldo, 8, 1, WSK_PREFETCH_AHEAD, 0); \
        }                                                                              \
        return;                                                                        \
    }                                                                                  \
    for (ptrdiff_t i = i0; i < i1; i++) {                                              \
        if (skip && skip[i]) continue;                                                 \
        const ptrdiff_t p = indptr[i];                                                 \
        const ptrdiff_t nnz = counts ? counts[i] : indptr[i + 1] - p;                  \
        if (nnz == 0)                                                                  \
            memset(out + i * ldo, 0, n * sizeof(V));                                   \
        else                                                                           \
            wsk_spmm_row_##SFX##_##TGT(vals + p, cols + p, nnz, X, ldx, out + i * ldo, n); \
    }                                                                                  \
}                                                                                      \
static ATTR void wsk_spmm_rows_##SFX##_##TGT(const V* vals, const I* cols,             \
        const I* indptr, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t n_idx, const uint8_t* skip, \
        const V* X, ptrdiff_t k_rows, ptrdiff_t ldx, V* out, ptrdiff_t ldo, ptrdiff_t n) \
{                                                                                      \
    wsk_spmm_rows_body_##SFX##_##TGT(vals, cols, indptr, NULL, i0, i1, n_idx, skip, X, \
                                     k_rows, ldx, out, ldo, n);                        \
}                                                                                      \
/* The same, row i being counts[i] nonzeros from indptr[i] (rows compacted in place by  \
   wsk_compact_csr, the rest of each row's span unused): nothing is read past a row's   \
   end, so no prefetch of the next row's first pieces of X. */                       \
static ATTR void wsk_spmm_rows_counted_##SFX##_##TGT(const V* vals, const I* cols,     \
        const I* indptr, const ptrdiff_t* counts, ptrdiff_t i0, ptrdiff_t i1,          \
        const V* X, ptrdiff_t k_rows, ptrdiff_t ldx, V* out, ptrdiff_t ldo, ptrdiff_t n) \
{                                                                                      \
    wsk_spmm_rows_body_##SFX##_##TGT(vals, cols, indptr, counts, i0, i1, 0, NULL, X,   \
                                     k_rows, ldx, out, ldo, n);                        \
}                                                                                      \
/* Column form: Y[rows[p] * ldy + 0:n] += vals[p] * x[0:n] for a column of W (CSC) and */ \
/* its row x of X, held in registers while the column's nonzeros stream past.         */ \
static ATTR void wsk_spmm_scatter_##SFX##_##TGT(const V* vals, const I* rows,          \
        ptrdiff_t nnz, const V* x, V* Y, ptrdiff_t ldy, ptrdiff_t n)                   \
{                                                                                      \
    ptrdiff_t j = 0;                                                                   \
    for (; j + 4 * LANES <= n; j += 4 * LANES) {                                       \
        VT xv[4];                                                                      \
        _Pragma("GCC unroll 4")                                                        \
        for (int a = 0; a < 4; a++) memcpy(&xv[a], x + j + a * LANES, sizeof(VT));    \
        for (ptrdiff_t p = 0; p < nnz; p++) {                                          \
            V* y = Y + (ptrdiff_t)rows[p] * ldy + j;                                   \
            const V w = vals[p];                                                       \
            _Pragma("GCC unroll 4")                                                    \
            for (int a = 0; a < 4; a++) {                                              \
                VT yv;                                                                 \
                memcpy(&yv, y + a * LANES, sizeof(VT));                                \
                yv += w * xv[a];                                                       \
                memcpy(y + a * LANES, &yv, sizeof(VT));                                \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
    for (; j + LANES <= n; j += LANES) {                                               \
        VT xv, yv;                                                                     \
        memcpy(&xv, x + j, sizeof(VT));                                                \
        for (ptrdiff_t p = 0; p < nnz; p++) {                                          \
            V* y = Y + (ptrdiff_t)rows[p] * ldy + j;                                   \
            memcpy(&yv, y, sizeof(VT));                                                \
            yv += vals[p] * xv;                                                        \
            memcpy(y, &yv, sizeof(VT));                                                \
        }                                                                              \
    }                                                                                  \
    for (; j < n; j++)                                                                 \
        for (ptrdiff_t p = 0; p < nnz; p++)                                            \
            Y[(ptrdiff_t)rows[p] * ldy + j] += vals[p] * x[j];                         \
}

/* dot product for sddmm: sum_d a[d] * b[d], four accumulators. */
#define WSK_DEFINE_DOT(V, VT, LANES, SFX, TGT, ATTR)                                   \
static ATTR V wsk_dot_##SFX##_##TGT(const V* a, const V* b, ptrdiff_t n)               \
{                                                                                      \
    VT acc[4] = {(VT){0}, (VT){0}, (VT){0}, (VT){0}};                                  \
    ptrdiff_t d = 0;                                                                   \
    for (; d + 4 * LANES <= n; d += 4 * LANES) {                                       \
        _Pragma("GCC unroll 4")                                                        \
        for (int u = 0; u < 4; u++) {                                                  \
            VT av, bv;                                                                 \
            memcpy(&av, a + d + u * LANES, sizeof(VT));                                \
            memcpy(&bv, b + d + u * LANES, sizeof(VT));                                \
            acc[u] += av * bv;                                                         \
        }                                                                              \
    }                                                                                  \
    for (; d + LANES <= n; d += LANES) {                                               \
        VT av, bv;                                                                     \
        memcpy(&av, a + d, sizeof(VT)); memcpy(&bv, b + d, sizeof(VT));                \
        acc[0] += av * bv;                                                             \
    }                                                                                  \
    acc[0] += acc[1]; acc[2] += acc[3]; acc[0] += acc[2];                              \
    V s = 0;                                                                           \
    _Pragma("GCC unroll 16")                                                           \
    for (int l = 0; l < LANES; l++) s += acc[0][l];                                    \
    for (; d < n; d++) s += a[d] * b[d];                                               \
    return s;                                                                          \
}

/* ------------------------------------------------------------------------ */
/* Direct convolution, one weight at a time over a whole output plane:        */
/*   plane_axpy: y[r * ldy + 0:n] += a * x[r * ldx + 0:n] for rows r < rows   */
/*               whose flag is set (flags may be NULL: all rows);             */
/*   plane_dot:  sum over r < rows of y[r, 0:n] . x[r * ldx + 0:n].           */
/* Rows are short (8 to 64): native vectors, then a scalar tail.             */
/* ------------------------------------------------------------------------ */
#define WSK_DEFINE_PLANE(V, VT, LANES, SFX, TGT, ATTR)                                 \
static ATTR void wsk_plane_axpy_##SFX##_##TGT(ptrdiff_t rows, ptrdiff_t n, V a,        \
        const V* x, ptrdiff_t ldx, const uint8_t* flags, V* y, ptrdiff_t ldy)          \
{                                                                                      \
    for (ptrdiff_t r = 0; r < rows; r++) {                                             \
        if (flags && !flags[r]) continue;                                              \
        const V* xr = x + r * ldx;                                                     \
        V* yr = y + r * ldy;                                                           \
        ptrdiff_t j = 0;                                                               \
        for (; j + LANES <= n; j += LANES) {                                           \
            VT xv, yv;                                                                 \
            memcpy(&xv, xr + j, sizeof(VT)); memcpy(&yv, yr + j, sizeof(VT));          \
            yv += a * xv;                                                              \
            memcpy(yr + j, &yv, sizeof(VT));                                           \
        }                                                                              \
        for (; j < n; j++) yr[j] += a * xr[j];                                         \
    }                                                                                  \
}                                                                                      \
static ATTR V wsk_plane_dot_##SFX##_##TGT(ptrdiff_t rows, ptrdiff_t n, const V* y,     \
        const V* x, ptrdiff_t ldx)                                                     \
{                                                                                      \
    VT acc0 = (VT){0}, acc1 = (VT){0};                                                 \
    V s = 0;                                                                           \
    for (ptrdiff_t r = 0; r < rows; r++) {                                             \
        const V* xr = x + r * ldx;                                                     \
        const V* yr = y + r * n;                                                       \
        ptrdiff_t j = 0;                                                               \
        for (; j + 2 * LANES <= n; j += 2 * LANES) {                                   \
            VT xv, yv, xw, yw;                                                         \
            memcpy(&xv, xr + j, sizeof(VT)); memcpy(&yv, yr + j, sizeof(VT));          \
            memcpy(&xw, xr + j + LANES, sizeof(VT));                                   \
            memcpy(&yw, yr + j + LANES, sizeof(VT));                                   \
            acc0 += xv * yv;                                                           \
            acc1 += xw * yw;                                                           \
        }                                                                              \
        for (; j + LANES <= n; j += LANES) {                                           \
            VT xv, yv;                                                                 \
            memcpy(&xv, xr + j, sizeof(VT)); memcpy(&yv, yr + j, sizeof(VT));          \
            acc0 += xv * yv;                                                           \
        }                                                                              \
        for (; j < n; j++) s += yr[j] * xr[j];                                         \
    }                                                                                  \
    acc0 += acc1;                                                                      \
    for (int l = 0; l < LANES; l++) s += acc0[l];                                      \
    return s;                                                                          \
}

/* All kernels of one target, with vectors of VBYTES bytes (one register).  Rows of at
   least SM vectors take the streaming kernel instead of register tiles (0: never).  SPLIT:
   the tiles' prefetching nonzeros run in a loop of their own (see wsk_spmm_tile).  BLK:
   the rows kernels follow wsk_spmm_block_mode (mode 1's one-tile blocks). */
#define WSK_DEFINE_TARGET(TGT, ATTR, VBYTES, SM, SPLIT, BLK)                             \
typedef float wsk_vf_##TGT __attribute__((vector_size(VBYTES)));                       \
typedef double wsk_vd_##TGT __attribute__((vector_size(VBYTES)));                      \
typedef float wsk_hf_##TGT __attribute__((vector_size(VBYTES / 2)));                   \
typedef double wsk_hd_##TGT __attribute__((vector_size(VBYTES / 2)));                  \
WSK_DEFINE_SPMM(float, wsk_vf_##TGT, VBYTES / 4, wsk_hf_##TGT, VBYTES / 8, f32, int32_t, \
                f32_i32, TGT, ATTR, SM, SPLIT, BLK)                                    \
WSK_DEFINE_SPMM(float, wsk_vf_##TGT, VBYTES / 4, wsk_hf_##TGT, VBYTES / 8, f32, int64_t, \
                f32_i64, TGT, ATTR, SM, SPLIT, BLK)                                    \
WSK_DEFINE_SPMM(double, wsk_vd_##TGT, VBYTES / 8, wsk_hd_##TGT, VBYTES / 16, f64, int32_t, \
                f64_i32, TGT, ATTR, SM, SPLIT, BLK)                                    \
WSK_DEFINE_SPMM(double, wsk_vd_##TGT, VBYTES / 8, wsk_hd_##TGT, VBYTES / 16, f64, int64_t, \
                f64_i64, TGT, ATTR, SM, SPLIT, BLK)                                    \
WSK_DEFINE_DOT(float, wsk_vf_##TGT, VBYTES / 4, f32, TGT, ATTR)                        \
WSK_DEFINE_DOT(double, wsk_vd_##TGT, VBYTES / 8, f64, TGT, ATTR)                       \
WSK_DEFINE_PLANE(float, wsk_vf_##TGT, VBYTES / 4, f32, TGT, ATTR)                      \
WSK_DEFINE_PLANE(double, wsk_vd_##TGT, VBYTES / 8, f64, TGT, ATTR)

/* The spmm tails' partial vectors: lanes [0, n) of x[0:n] in a full vector (wsk_part_*,
   half a vector's lanes < n < a vector's) or a half one (wsk_hpart_*, 1 < n < half a
   vector's), the others 0, and their stores to y[0:n]; nothing past x + n or y + n is read
   or written (X's last row may end its mapping).  Masked loads and stores on AVX2 /
   AVX-512 (the lanes masked off do not fault); 8 and 4 bytes on the baseline, whose
   fp32 tail has n = 3 only here (fp64: n = 1, the scalar loop; the others are stubs). */
typedef float wsk_part_f32 __attribute__((vector_size(16)));
typedef double wsk_part_f64 __attribute__((vector_size(16)));
typedef float wsk_hpart_f32 __attribute__((vector_size(8)));
typedef double wsk_hpart_f64 __attribute__((vector_size(8)));
/* The baseline tiles' four weights vals[0:4], each broadcast to a vector: on x86-64 one
   16-byte load (fp64: two) and a pshufd each, which keeps its source. A scalar load and a
   shufps (fp64: unpcklpd) a weight ran block mode 1 3-4 % slower in fp64, 1-2 % in fp32
   (Zen 5, C harness, 1024^2 x 64 to x 1024 at 90 % zeros; s27); the same values, so the
   same sums. */
#if WSK_X86_DISPATCH
#include <immintrin.h>
WSK_INLINE void wsk_w4_f32_base(const float* v, wsk_part_f32* w)
{
    const __m128i q = _mm_loadu_si128((const __m128i*)v);
    w[0] = (wsk_part_f32)_mm_shuffle_epi32(q, 0x00);
    w[1] = (wsk_part_f32)_mm_shuffle_epi32(q, 0x55);
    w[2] = (wsk_part_f32)_mm_shuffle_epi32(q, 0xaa);
    w[3] = (wsk_part_f32)_mm_shuffle_epi32(q, 0xff);
}
WSK_INLINE void wsk_w4_f64_base(const double* v, wsk_part_f64* w)
{
    const __m128i q0 = _mm_loadu_si128((const __m128i*)v);
    const __m128i q1 = _mm_loadu_si128((const __m128i*)(v + 2));
    w[0] = (wsk_part_f64)_mm_shuffle_epi32(q0, 0x44);
    w[1] = (wsk_part_f64)_mm_shuffle_epi32(q0, 0xee);
    w[2] = (wsk_part_f64)_mm_shuffle_epi32(q1, 0x44);
    w[3] = (wsk_part_f64)_mm_shuffle_epi32(q1, 0xee);
}
#else
WSK_INLINE void wsk_w4_f32_base(const float* v, wsk_part_f32* w)
{
    for (int u = 0; u < 4; u++) w[u] = (wsk_part_f32){v[u], v[u], v[u], v[u]};
}
WSK_INLINE void wsk_w4_f64_base(const double* v, wsk_part_f64* w)
{
    for (int u = 0; u < 4; u++) w[u] = (wsk_part_f64){v[u], v[u]};
}
#endif
#if WSK_X86_DISPATCH
#include <immintrin.h>
WSK_INLINE wsk_part_f32 wsk_part_load_f32_base(const float* x, int n)
{
    double two;                     /* x[0:2] as one 8-byte load (movsd) */
    memcpy(&two, x, 8);
    const __m128 lo = _mm_castpd_ps(_mm_set_sd(two));
    return (wsk_part_f32)(n == 3 ? _mm_movelh_ps(lo, _mm_load_ss(x + 2)) : lo);
}
WSK_INLINE void wsk_part_store_f32_base(float* y, wsk_part_f32 v, int n)
{
    const double two = _mm_cvtsd_f64(_mm_castps_pd((__m128)v));
    memcpy(y, &two, 8);
    if (n == 3) _mm_store_ss(y + 2, _mm_movehl_ps((__m128)v, (__m128)v));
}
#else
WSK_INLINE wsk_part_f32 wsk_part_load_f32_base(const float* x, int n)
{
    return (wsk_part_f32){x[0], x[1], n == 3 ? x[2] : 0, 0};
}
WSK_INLINE void wsk_part_store_f32_base(float* y, wsk_part_f32 v, int n)
{
    y[0] = v[0];
    y[1] = v[1];
    if (n == 3) y[2] = v[2];
}
#endif
WSK_INLINE wsk_part_f64 wsk_part_load_f64_base(const double* x, int n)
{
    return (wsk_part_f64){x[0], n > 1 ? x[1] : 0};
}
WSK_INLINE void wsk_part_store_f64_base(double* y, wsk_part_f64 v, int n)
{
    y[0] = v[0];
    if (n > 1) y[1] = v[1];
}
WSK_INLINE wsk_hpart_f32 wsk_hpart_load_f32_base(const float* x, int n)
{
    return (wsk_hpart_f32){x[0], n > 1 ? x[1] : 0};
}
WSK_INLINE void wsk_hpart_store_f32_base(float* y, wsk_hpart_f32 v, int n)
{
    y[0] = v[0];
    if (n > 1) y[1] = v[1];
}
WSK_INLINE wsk_hpart_f64 wsk_hpart_load_f64_base(const double* x, int n)
{
    (void)n;
    return (wsk_hpart_f64){x[0]};
}
WSK_INLINE void wsk_hpart_store_f64_base(double* y, wsk_hpart_f64 v, int n)
{
    (void)n;
    y[0] = v[0];
}
#if WSK_X86_DISPATCH
WSK_TARGET_V3 WSK_INLINE __m256i wsk_part_mask32_avx2(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
WSK_TARGET_V3 WSK_INLINE __m256 wsk_part_load_f32_avx2(const float* x, int n)
{
    return _mm256_maskload_ps(x, wsk_part_mask32_avx2(n));
}
WSK_TARGET_V3 WSK_INLINE void wsk_part_store_f32_avx2(float* y, __m256 v, int n)
{
    _mm256_maskstore_ps(y, wsk_part_mask32_avx2(n), v);
}
WSK_TARGET_V3 WSK_INLINE __m128 wsk_hpart_load_f32_avx2(const float* x, int n)
{
    return _mm_maskload_ps(x, _mm256_castsi256_si128(wsk_part_mask32_avx2(n)));
}
WSK_TARGET_V3 WSK_INLINE void wsk_hpart_store_f32_avx2(float* y, __m128 v, int n)
{
    _mm_maskstore_ps(y, _mm256_castsi256_si128(wsk_part_mask32_avx2(n)), v);
}
WSK_TARGET_V3 WSK_INLINE __m256i wsk_part_mask64_avx2(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
WSK_TARGET_V3 WSK_INLINE __m256d wsk_part_load_f64_avx2(const double* x, int n)
{
    return _mm256_maskload_pd(x, wsk_part_mask64_avx2(n));
}
WSK_TARGET_V3 WSK_INLINE void wsk_part_store_f64_avx2(double* y, __m256d v, int n)
{
    _mm256_maskstore_pd(y, wsk_part_mask64_avx2(n), v);
}
WSK_TARGET_V3 WSK_INLINE __m128d wsk_hpart_load_f64_avx2(const double* x, int n)
{
    return _mm_maskload_pd(x, _mm256_castsi256_si128(wsk_part_mask64_avx2(n)));
}
WSK_TARGET_V3 WSK_INLINE void wsk_hpart_store_f64_avx2(double* y, __m128d v, int n)
{
    _mm_maskstore_pd(y, _mm256_castsi256_si128(wsk_part_mask64_avx2(n)), v);
}
WSK_TARGET_V4 WSK_INLINE __m512 wsk_part_load_f32_avx512(const float* x, int n)
{
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), x);
}
WSK_TARGET_V4 WSK_INLINE void wsk_part_store_f32_avx512(float* y, __m512 v, int n)
{
    _mm512_mask_storeu_ps(y, (__mmask16)((1u << n) - 1), v);
}
WSK_TARGET_V4 WSK_INLINE __m256 wsk_hpart_load_f32_avx512(const float* x, int n)
{
    return _mm256_maskz_loadu_ps((__mmask8)((1u << n) - 1), x);
}
WSK_TARGET_V4 WSK_INLINE void wsk_hpart_store_f32_avx512(float* y, __m256 v, int n)
{
    _mm256_mask_storeu_ps(y, (__mmask8)((1u << n) - 1), v);
}
WSK_TARGET_V4 WSK_INLINE __m512d wsk_part_load_f64_avx512(const double* x, int n)
{
    return _mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1), x);
}
WSK_TARGET_V4 WSK_INLINE void wsk_part_store_f64_avx512(double* y, __m512d v, int n)
{
    _mm512_mask_storeu_pd(y, (__mmask8)((1u << n) - 1), v);
}
WSK_TARGET_V4 WSK_INLINE __m256d wsk_hpart_load_f64_avx512(const double* x, int n)
{
    return _mm256_maskz_loadu_pd((__mmask8)((1u << n) - 1), x);
}
WSK_TARGET_V4 WSK_INLINE void wsk_hpart_store_f64_avx512(double* y, __m256d v, int n)
{
    _mm256_mask_storeu_pd(y, (__mmask8)((1u << n) - 1), v);
}
#endif

#define WSK_NOATTR
/* Baseline: SSE2 on x86-64, 16-byte vectors elsewhere too (NEON, ...).  Its 4-lane tiles
   need 8+ passes over a row's nonzeros for 128+ columns, each re-reading a short piece of
   every X row it meets; with a row pitch that is a multiple of 4 KiB those pieces share
   cache sets and thrash (1024^2 x 1024 fp32 on Zen 3: 116-189 ms tiled, 31 ms streamed):
   stream them.  Short rows (under 64 nonzeros) at any other pitch take the tiles: on Zen 4,
   unblocked (C harness, best of 7-15, the same W), 1024^2 x 256 at 99 % zeros (about 10
   nonzeros a row) fp32 0.28 -> 0.20 ms, fp64 0.54 -> 0.40 ms; fp64 4096^2 x 64 at 99 %
   (41 a row) 2.7 -> 2.1 ms.  Long rows keep streaming (fp64 1024^2 x 250 at 90 %: 5.4 ms
   streamed, 6.3 tiled), and so does a pitch of a 4 KiB multiple (fp64 1024^2 x 512 at 99 %:
   1.04 streamed, 1.13 tiled). */
#define WSK_STREAM_PITCH 4096
#define WSK_STREAM_NNZ 64
/* Python's build flags add -fwrapv (signed integers wrap); GCC then cannot bound the
   baseline tiles' loops and keeps a row's last nonzeros in a loop of single steps, with a
   register more in use: the whole 1024^2 x 256 product (fp32, 90 % zeros, Zen 4) took 3 %
   longer with the same header driven from C, 10 % once inlined.  Nothing here relies on
   wrapping. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-wrapv")
#endif
WSK_DEFINE_TARGET(base, WSK_NOATTR, 16, 32, 1, 1)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
#if WSK_X86_DISPATCH
WSK_DEFINE_TARGET(avx2, WSK_TARGET_V3, 32, 0, 0, 1)
WSK_DEFINE_TARGET(avx512, WSK_TARGET_V4, 64, 0, 0, 0)
#endif

/* The spmm column blocks (src/_spmm.pyx): dst[k * row_bytes + 0:row_bytes] =
   src[k * pitch + 0:row_bytes] for 0 <= k < rows.  A row of 128 bytes (the baseline's 8x1
   tile, kernels.column_block's block there) is a memcpy of a fixed size, which GCC makes 8
   vector loads and stores in the loop: a libc call per row made the kernel 1-2 % slower
   at 1024^2 x 256 (Zen 4, 90 % zeros, fp32 and fp64). */
static inline void wsk_copy_rows(void* dst, const void* src, ptrdiff_t rows,
                                 ptrdiff_t row_bytes, ptrdiff_t pitch)
{
    char* d = (char*)dst;
    const char* s = (const char*)src;
    if (row_bytes == 128)
        for (ptrdiff_t k = 0; k < rows; k++) memcpy(d + k * 128, s + k * pitch, 128);
    else
        for (ptrdiff_t k = 0; k < rows; k++)
            memcpy(d + k * row_bytes, s + k * pitch, row_bytes);
}

/* ------------------------------------------------------------------------ */
/* Row compaction for a dense W: write the entries to keep, and the row of X  */
/* each one meets, contiguously; return how many.  An entry is kept when it   */
/* is nonzero and meets a live row of X, or is inf/NaN (inf * 0 must give NaN */
/* as in SciPy).  Output buffers need K + 16 entries of room.                 */
/* ------------------------------------------------------------------------ */
#define WSK_DEFINE_COMPACT_BASE(V, SFX)                                                \
static ptrdiff_t wsk_compact_##SFX##_base(const V* w, const uint8_t* alive,            \
        const int32_t* remap, ptrdiff_t K, V* vout, int32_t* iout)                     \
{                                                                                      \
    ptrdiff_t q = 0;                                                                   \
    for (ptrdiff_t k = 0; k < K; k++) {                                                \
        const V v = w[k];                                                              \
        vout[q] = v;                                                                   \
        iout[q] = remap[k];                                                            \
        q += (v != 0) & (alive[k] | (v - v != 0));                                     \
    }                                                                                  \
    return q;                                                                          \
}
WSK_DEFINE_COMPACT_BASE(float, f32)
WSK_DEFINE_COMPACT_BASE(double, f64)

#if WSK_X86_DISPATCH
#include <immintrin.h>
WSK_TARGET_V4 static ptrdiff_t wsk_compact_f32_avx512(const float* w, const uint8_t* alive,
        const int32_t* remap, ptrdiff_t K, float* vout, int32_t* iout)
{
    const __m512 zero = _mm512_setzero_ps();
    const __m128i ones = _mm_set1_epi8(1);
    ptrdiff_t q = 0, k = 0;
    for (; k + 16 <= K; k += 16) {
        /* Register-form compress: the memory form is microcoded on some cores. */
        __m512 v = _mm512_loadu_ps(w + k);
        __mmask16 nz = _mm512_cmp_ps_mask(v, zero, _CMP_NEQ_UQ);
        __mmask16 nf = _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), zero, _CMP_NEQ_UQ);
        __mmask16 al = _mm_test_epi8_mask(_mm_loadu_si128((const __m128i*)(alive + k)), ones);
        __mmask16 m = nz & (al | nf);
        _mm512_storeu_ps(vout + q, _mm512_maskz_compress_ps(m, v));
        _mm512_storeu_si512((void*)(iout + q),
                            _mm512_maskz_compress_epi32(m, _mm512_loadu_si512((const void*)(remap + k))));
        q += __builtin_popcount((unsigned)m);
    }
    return q + wsk_compact_f32_base(w + k, alive + k, remap + k, K - k, vout + q, iout + q);
}
WSK_TARGET_V4 static ptrdiff_t wsk_compact_f64_avx512(const double* w, const uint8_t* alive,
        const int32_t* remap, ptrdiff_t K, double* vout, int32_t* iout)
{
    const __m512d zero = _mm512_setzero_pd();
    const __m128i ones = _mm_set1_epi8(1);
    ptrdiff_t q = 0, k = 0;
    for (; k + 8 <= K; k += 8) {
        __m512d v = _mm512_loadu_pd(w + k);
        __mmask8 nz = _mm512_cmp_pd_mask(v, zero, _CMP_NEQ_UQ);
        __mmask8 nf = _mm512_cmp_pd_mask(_mm512_sub_pd(v, v), zero, _CMP_NEQ_UQ);
        __mmask8 al = (__mmask8)_mm_test_epi8_mask(_mm_loadl_epi64((const __m128i*)(alive + k)), ones);
        __mmask8 m = nz & (al | nf);
        _mm512_storeu_pd(vout + q, _mm512_maskz_compress_pd(m, v));
        _mm256_storeu_si256((__m256i*)(iout + q),
                            _mm256_maskz_compress_epi32(m, _mm256_loadu_si256((const __m256i*)(remap + k))));
        q += __builtin_popcount((unsigned)m);
    }
    return q + wsk_compact_f64_base(w + k, alive + k, remap + k, K - k, vout + q, iout + q);
}

/* AVX2 has no compress: the 8-bit keep mask indexes a table of lane permutations (8 lane
   numbers packed in 4-bit fields), applied with vpermps/vpermd.  The table is built once. */
static uint32_t wsk_compress8_lut[256];
static void wsk_compress8_init(void)
{
    for (int m = 0; m < 256; m++) {
        uint32_t packed = 0;
        int q = 0;
        for (int l = 0; l < 8; l++)
            if (m & (1 << l)) packed |= (uint32_t)l << (4 * q++);
        wsk_compress8_lut[m] = packed;
    }
}
WSK_TARGET_V3 static inline __m256i wsk_compress8_perm(int m)
{
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)wsk_compress8_lut[m]),
                                              shifts), _mm256_set1_epi32(7));
}
WSK_TARGET_V3 static ptrdiff_t wsk_compact_f32_avx2(const float* w, const uint8_t* alive,
        const int32_t* remap, ptrdiff_t K, float* vout, int32_t* iout)
{
    const __m256 zero = _mm256_setzero_ps();
    ptrdiff_t q = 0, k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 v = _mm256_loadu_ps(w + k);
        __m256 nz = _mm256_cmp_ps(v, zero, _CMP_NEQ_UQ);
        __m256 nf = _mm256_cmp_ps(_mm256_sub_ps(v, v), zero, _CMP_NEQ_UQ);
        __m256i al8 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(alive + k)));
        __m256 al = _mm256_castsi256_ps(_mm256_cmpgt_epi32(al8, _mm256_setzero_si256()));
        int m = _mm256_movemask_ps(_mm256_and_ps(nz, _mm256_or_ps(al, nf)));
        __m256i perm = wsk_compress8_perm(m);
        _mm256_storeu_ps(vout + q, _mm256_permutevar8x32_ps(v, perm));
        _mm256_storeu_si256((__m256i*)(iout + q), _mm256_permutevar8x32_epi32(
            _mm256_loadu_si256((const __m256i*)(remap + k)), perm));
        q += __builtin_popcount((unsigned)m);
    }
    return q + wsk_compact_f32_base(w + k, alive + k, remap + k, K - k, vout + q, iout + q);
}
WSK_TARGET_V3 static ptrdiff_t wsk_compact_f64_avx2(const double* w, const uint8_t* alive,
        const int32_t* remap, ptrdiff_t K, double* vout, int32_t* iout)
{
    /* Four doubles are eight float lanes: lane l of the mask moves float lanes 2l, 2l+1. */
    const __m256d zero = _mm256_setzero_pd();
    ptrdiff_t q = 0, k = 0;
    for (; k + 4 <= K; k += 4) {
        __m256d v = _mm256_loadu_pd(w + k);
        __m256d nz = _mm256_cmp_pd(v, zero, _CMP_NEQ_UQ);
        __m256d nf = _mm256_cmp_pd(_mm256_sub_pd(v, v), zero, _CMP_NEQ_UQ);
        int32_t a4;
        memcpy(&a4, alive + k, 4);
        __m256i al64 = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(a4));
        __m256d al = _mm256_castsi256_pd(_mm256_cmpgt_epi64(al64, _mm256_setzero_si256()));
        int m = _mm256_movemask_pd(_mm256_and_pd(nz, _mm256_or_pd(al, nf)));
        int m2 = 0;
        for (int l = 0; l < 4; l++) m2 |= ((m >> l) & 1) * (3 << (2 * l));
        __m256i perm = wsk_compress8_perm(m2);
        _mm256_storeu_pd(vout + q, _mm256_castps_pd(
            _mm256_permutevar8x32_ps(_mm256_castpd_ps(v), perm)));
        /* The indices: the first four of the compressed int32 lanes. */
        __m256i r = _mm256_castsi128_si256(_mm_loadu_si128((const __m128i*)(remap + k)));
        __m256i rperm = wsk_compress8_perm(m);
        _mm_storeu_si128((__m128i*)(iout + q),
                         _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(r, rperm)));
        q += __builtin_popcount((unsigned)m);
    }
    return q + wsk_compact_f64_base(w + k, alive + k, remap + k, K - k, vout + q, iout + q);
}
#endif

/* ------------------------------------------------------------------------ */
/* Row compaction for a CSR row meeting dead rows of X: keep the entries whose */
/* column maps (through remap) to a live row, i.e. remap[c] < zero_row, or     */
/* whose value is inf/NaN; write value and remapped column; return the count. */
/* ------------------------------------------------------------------------ */
/* A weight is inf/NaN when its exponent bits are all ones: an integer test (a float
   v - v != 0 took 2.0 against 1.3 ns a nonzero on Zen 4, 4096^2 at 10 %, C harness). The
   keep flag is two sign bits (remap[c] - zero_row < 0: r lies in [0, zero_row], checked by
   the callers; the exponent plus its lowest bit carries into the sign bit only when all
   ones) instead of two compares: 1.01-1.07 against 1.20-1.25 ns a nonzero on Zen 4 (C
   harness, the x86-64 baseline, 4096^2 and 1024^2 at 10 %, half of X dead; the same
   entries; setcc's compare form ran as slow as before). */
#define WSK_DEFINE_COMPACT_CSR_BASE(V, I, UI, U, EXP, SFX)                             \
static ptrdiff_t wsk_compact_csr_##SFX##_base(const V* vals, const I* cols,            \
        ptrdiff_t nnz, const I* remap, I zero_row, V* vout, I* iout)                   \
{                                                                                      \
    ptrdiff_t q = 0;                                                                   \
    for (ptrdiff_t p = 0; p < nnz; p++) {                                              \
        const V v = vals[p];                                                           \
        U bits;                                                                        \
        memcpy(&bits, &v, sizeof bits);                                                \
        const I r = remap[cols[p]];                                                    \
        vout[q] = v;                                                                   \
        iout[q] = r;                                                                   \
        q += (ptrdiff_t)((((UI)r - (UI)zero_row) >> (8 * sizeof(UI) - 1))              \
                         | (((bits & (EXP)) + ((EXP) & (0 - (EXP)))) >> (8 * sizeof(U) - 1))); \
    }                                                                                  \
    return q;                                                                          \
}
WSK_DEFINE_COMPACT_CSR_BASE(float, int32_t, uint32_t, uint32_t, 0x7f800000u, f32_i32)
WSK_DEFINE_COMPACT_CSR_BASE(float, int64_t, uint64_t, uint32_t, 0x7f800000u, f32_i64)
WSK_DEFINE_COMPACT_CSR_BASE(double, int32_t, uint32_t, uint64_t, 0x7ff0000000000000ull, f64_i32)
WSK_DEFINE_COMPACT_CSR_BASE(double, int64_t, uint64_t, uint64_t, 0x7ff0000000000000ull, f64_i64)

#if WSK_X86_DISPATCH
/* The remapped rows of a step's columns: scalar loads of the remap (in L1), stored to a
   small array the vector code then loads. On Zen 4 this beat the hardware gathers in every
   variant (C harness, 4096^2 and 1024^2 at 10 %, half of X dead, ns a nonzero: fp32
   AVX-512 0.62-0.84 against vpgatherdd zmm's 0.71-0.86, AVX2 0.60-0.90 against 1.05-1.22;
   fp64 AVX-512, 8 a step, 0.64-0.91 against the ymm gather's 0.69-1.20 and the AVX2
   compaction's 1.77-2.22 that AVX-512 CPUs ran before). */
#define WSK_REMAP_LOAD(T, L, remap, cols)                                              \
    do { for (int l_ = 0; l_ < (L); l_++) T[l_] = (remap)[(cols)[l_]]; } while (0)
WSK_TARGET_V4 static ptrdiff_t wsk_compact_csr_f32_i32_avx512(const float* vals,
        const int32_t* cols, ptrdiff_t nnz, const int32_t* remap, int32_t zero_row,
        float* vout, int32_t* iout)
{
    const __m512 zero = _mm512_setzero_ps();
    const __m512i zr = _mm512_set1_epi32(zero_row);
    ptrdiff_t q = 0, p = 0;
    for (; p + 16 <= nnz; p += 16) {
        int32_t t[16];
        WSK_REMAP_LOAD(t, 16, remap, cols + p);
        __m512 v = _mm512_loadu_ps(vals + p);
        __m512i r = _mm512_loadu_si512((const void*)t);
        __mmask16 m = _mm512_cmplt_epi32_mask(r, zr)
                    | _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), zero, _CMP_NEQ_UQ);
        /* register-form compress: the memory form is microcoded on Zen 4 */
        _mm512_storeu_ps(vout + q, _mm512_maskz_compress_ps(m, v));
        _mm512_storeu_si512((void*)(iout + q), _mm512_maskz_compress_epi32(m, r));
        q += __builtin_popcount((unsigned)m);
    }
    return q + wsk_compact_csr_f32_i32_base(vals + p, cols + p, nnz - p, remap, zero_row,
                                            vout + q, iout + q);
}
/* Eight doubles a step, compressed in one zmm (the stores at q <= p stay inside the row). */
WSK_TARGET_V4 static ptrdiff_t wsk_compact_csr_f64_i32_avx512(const double* vals,
        const int32_t* cols, ptrdiff_t nnz, const int32_t* remap, int32_t zero_row,
        double* vout, int32_t* iout)
{
    const __m512d zero = _mm512_setzero_pd();
    const __m256i zr = _mm256_set1_epi32(zero_row);
    ptrdiff_t q = 0, p = 0;
    for (; p + 8 <= nnz; p += 8) {
        int32_t t[8];
        WSK_REMAP_LOAD(t, 8, remap, cols + p);
        __m512d v = _mm512_loadu_pd(vals + p);
        __m256i r = _mm256_loadu_si256((const __m256i*)t);
        __mmask8 m = _mm256_cmplt_epi32_mask(r, zr)
                   | _mm512_cmp_pd_mask(_mm512_sub_pd(v, v), zero, _CMP_NEQ_UQ);
        _mm512_storeu_pd(vout + q, _mm512_maskz_compress_pd(m, v));
        _mm256_storeu_si256((__m256i*)(iout + q), _mm256_maskz_compress_epi32(m, r));
        q += __builtin_popcount((unsigned)m);
    }
    return q + wsk_compact_csr_f64_i32_base(vals + p, cols + p, nnz - p, remap, zero_row,
                                            vout + q, iout + q);
}
/* AVX2: the remap's scalar loads, then the permutation table's compress (the scalar loop's
   data-dependent store index ran at ~4 ns a nonzero on Zen 3). */
WSK_TARGET_V3 static ptrdiff_t wsk_compact_csr_f32_i32_avx2(const float* vals,
        const int32_t* cols, ptrdiff_t nnz, const int32_t* remap, int32_t zero_row,
        float* vout, int32_t* iout)
{
    const __m256 zero = _mm256_setzero_ps();
    const __m256i zr = _mm256_set1_epi32(zero_row);
    ptrdiff_t q = 0, p = 0;
    for (; p + 8 <= nnz; p += 8) {
        int32_t t[8];
        WSK_REMAP_LOAD(t, 8, remap, cols + p);
        __m256 v = _mm256_loadu_ps(vals + p);
        __m256i r = _mm256_loadu_si256((const __m256i*)t);
        __m256 keep = _mm256_or_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(zr, r)),
                                   _mm256_cmp_ps(_mm256_sub_ps(v, v), zero, _CMP_NEQ_UQ));
        int m = _mm256_movemask_ps(keep);
        __m256i perm = wsk_compress8_perm(m);
        _mm256_storeu_ps(vout + q, _mm256_permutevar8x32_ps(v, perm));
        _mm256_storeu_si256((__m256i*)(iout + q), _mm256_permutevar8x32_epi32(r, perm));
        q += __builtin_popcount((unsigned)m);
    }
    return q + wsk_compact_csr_f32_i32_base(vals + p, cols + p, nnz - p, remap, zero_row,
                                            vout + q, iout + q);
}
/* Lane l of a 4-lane mask moves float lanes 2l and 2l + 1 (one double). */
#define WSK_MASK4_TO_8(m)                                                              \
    ((((m) & 1) | (((m) & 2) << 1) | (((m) & 4) << 2) | (((m) & 8) << 3)) * 3)
/* Eight doubles a step: the indices compressed in one permute, the values in two halves
   (each store at or below the input position it has read: inside the row). */
WSK_TARGET_V3 static ptrdiff_t wsk_compact_csr_f64_i32_avx2(const double* vals,
        const int32_t* cols, ptrdiff_t nnz, const int32_t* remap, int32_t zero_row,
        double* vout, int32_t* iout)
{
    const __m256d zero = _mm256_setzero_pd();
    const __m256i zr = _mm256_set1_epi32(zero_row);
    ptrdiff_t q = 0, p = 0;
    for (; p + 8 <= nnz; p += 8) {
        int32_t t[8];
        WSK_REMAP_LOAD(t, 8, remap, cols + p);
        __m256d v0 = _mm256_loadu_pd(vals + p), v1 = _mm256_loadu_pd(vals + p + 4);
        __m256i r = _mm256_loadu_si256((const __m256i*)t);
        const int live = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(zr, r)));
        const int m0 = (live & 15) | _mm256_movemask_pd(
            _mm256_cmp_pd(_mm256_sub_pd(v0, v0), zero, _CMP_NEQ_UQ));
        const int m1 = (live >> 4) | _mm256_movemask_pd(
            _mm256_cmp_pd(_mm256_sub_pd(v1, v1), zero, _CMP_NEQ_UQ));
        _mm256_storeu_si256((__m256i*)(iout + q),
                            _mm256_permutevar8x32_epi32(r, wsk_compress8_perm(m0 | (m1 << 4))));
        _mm256_storeu_pd(vout + q, _mm256_castps_pd(_mm256_permutevar8x32_ps(
            _mm256_castpd_ps(v0), wsk_compress8_perm(WSK_MASK4_TO_8(m0)))));
        q += __builtin_popcount((unsigned)m0);
        _mm256_storeu_pd(vout + q, _mm256_castps_pd(_mm256_permutevar8x32_ps(
            _mm256_castpd_ps(v1), wsk_compress8_perm(WSK_MASK4_TO_8(m1)))));
        q += __builtin_popcount((unsigned)m1);
    }
    return q + wsk_compact_csr_f64_i32_base(vals + p, cols + p, nnz - p, remap, zero_row,
                                            vout + q, iout + q);
}
#endif

/* ------------------------------------------------------------------------ */
/* The live map in registers (AVX-512 with VPOPCNTDQ, remaps of K <= 4096     */
/* entries): the CSR compaction above without a load per nonzero.            */
/* ------------------------------------------------------------------------ */
/* tab[0:128] holds X's live rows as bits (bit k & 31 of word k >> 5), tab[128:256] the
   live rows before each word; when the remap is the live map (remap[k] = the live rows
   before k for a live k, zero_row for a dead one, as live_rows and live_map build it),
   column c remaps to tab[128 + (c >> 5)] + popcount(word's bits below c). Both tables
   ride in 16 zmm and each step's words come from vpermi2d: the remap's 16 scalar loads a
   step were the cost (Zen 4, C harness, 4096^2 x 64 fp32, 10 %, half of X dead, ns a
   nonzero: 0.38 against 0.47-0.55; the same entries and remapped columns). */
#define WSK_LIVEMAP_K 4096
/* tab's 256 words for a remap of K entries, returning 1, or 0 (tab unusable) when K is
   over WSK_LIVEMAP_K or the remap is not the live map. O(K). */
static int wsk_livemap_build(const int32_t* remap, ptrdiff_t K, int32_t zero_row,
                             uint32_t* tab)
{
    if (K > WSK_LIVEMAP_K) return 0;
    memset(tab, 0, 256 * sizeof(uint32_t));
    int32_t live = 0;
    for (ptrdiff_t k = 0; k < K; k++) {
        if (k % 32 == 0) tab[128 + k / 32] = (uint32_t)live;
        const int32_t r = remap[k];
        if (r == live && r < zero_row) {
            tab[k / 32] |= 1u << (k % 32);
            live++;
        } else if (r != zero_row) {
            return 0;
        }
    }
    for (ptrdiff_t w = (K + 31) / 32; w < 128; w++) tab[128 + w] = (uint32_t)live;
    return 1;
}
/* tab[0:128] from X's live flags (alive[k] != 0), returning 1, or 0 (tab unusable) when K is
   over WSK_LIVEMAP_K: the bits wsk_livemap_build sets, without a remap. O(K). */
static int wsk_livebits_build(const uint8_t* alive, ptrdiff_t K, uint32_t* tab)
{
    if (K > WSK_LIVEMAP_K) return 0;
    memset(tab, 0, 128 * sizeof(uint32_t));
    for (ptrdiff_t k = 0; k < K; k++)
        tab[k / 32] |= (uint32_t)(alive[k] != 0) << (k % 32);
    return 1;
}
#if WSK_X86_DISPATCH
#define WSK_TARGET_V4P __attribute__((target("arch=x86-64-v4,avx512vpopcntdq")))
/* tab's 16 zmm as named locals (an array of them went through the stack each call). */
#define WSK_LIVEMAP_LOAD(tab)                                                          \
    const __m512i t0 = _mm512_loadu_si512((const void*)((tab) + 0)),                    \
        t1 = _mm512_loadu_si512((const void*)((tab) + 16)),                            \
        t2 = _mm512_loadu_si512((const void*)((tab) + 32)),                            \
        t3 = _mm512_loadu_si512((const void*)((tab) + 48)),                            \
        t4 = _mm512_loadu_si512((const void*)((tab) + 64)),                            \
        t5 = _mm512_loadu_si512((const void*)((tab) + 80)),                            \
        t6 = _mm512_loadu_si512((const void*)((tab) + 96)),                            \
        t7 = _mm512_loadu_si512((const void*)((tab) + 112)),                           \
        t8 = _mm512_loadu_si512((const void*)((tab) + 128)),                           \
        t9 = _mm512_loadu_si512((const void*)((tab) + 144)),                           \
        t10 = _mm512_loadu_si512((const void*)((tab) + 160)),                          \
        t11 = _mm512_loadu_si512((const void*)((tab) + 176)),                          \
        t12 = _mm512_loadu_si512((const void*)((tab) + 192)),                          \
        t13 = _mm512_loadu_si512((const void*)((tab) + 208)),                          \
        t14 = _mm512_loadu_si512((const void*)((tab) + 224)),                          \
        t15 = _mm512_loadu_si512((const void*)((tab) + 240))
#define WSK_LIVEMAP_ARGS t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15
/* The remapped columns of 16 columns c (zero_row for a dead one) and, in *live, which
   are live; t0-t15: tab's 16 zmm. Trusted columns: c in [0, 4096). */
WSK_INLINE WSK_TARGET_V4P __m512i wsk_livemap_remap(__m512i t0, __m512i t1, __m512i t2,
        __m512i t3, __m512i t4, __m512i t5, __m512i t6, __m512i t7, __m512i t8, __m512i t9,
        __m512i t10, __m512i t11, __m512i t12, __m512i t13, __m512i t14, __m512i t15,
        __m512i c, __m512i zr, __mmask16* live)
{
    const __m512i w = _mm512_srli_epi32(c, 5);
    const __mmask16 h5 = _mm512_test_epi32_mask(w, _mm512_set1_epi32(32));
    const __mmask16 h6 = _mm512_test_epi32_mask(w, _mm512_set1_epi32(64));
    __m512i a0 = _mm512_permutex2var_epi32(t0, w, t1);
    __m512i a1 = _mm512_permutex2var_epi32(t2, w, t3);
    __m512i a2 = _mm512_permutex2var_epi32(t4, w, t5);
    __m512i a3 = _mm512_permutex2var_epi32(t6, w, t7);
    const __m512i word = _mm512_mask_blend_epi32(h6, _mm512_mask_blend_epi32(h5, a0, a1),
                                                 _mm512_mask_blend_epi32(h5, a2, a3));
    a0 = _mm512_permutex2var_epi32(t8, w, t9);
    a1 = _mm512_permutex2var_epi32(t10, w, t11);
    a2 = _mm512_permutex2var_epi32(t12, w, t13);
    a3 = _mm512_permutex2var_epi32(t14, w, t15);
    const __m512i pre = _mm512_mask_blend_epi32(h6, _mm512_mask_blend_epi32(h5, a0, a1),
                                                _mm512_mask_blend_epi32(h5, a2, a3));
    /* the bits at or below c's, moved to the top: c's own is the sign bit */
    const __m512i sh = _mm512_sllv_epi32(word, _mm512_andnot_si512(c, _mm512_set1_epi32(31)));
    *live = _mm512_movepi32_mask(sh);
    const __m512i r = _mm512_add_epi32(pre, _mm512_popcnt_epi32(sh));
    return _mm512_mask_blend_epi32(*live, zr, _mm512_sub_epi32(r, _mm512_set1_epi32(1)));
}
/* wsk_compact_csr_f32_i32 with tab for the remap (wsk_livemap_build returned 1): the same
   entries kept, in the same order, with the same remapped columns. The last step's lanes
   past the row are masked (loads and stores), so nothing past the row is read or written,
   and stores land at or below the input position read, as above. The columns are checked
   against [0, last] as they pass (no memory is read through them): -1, the row not
   compacted, when one is outside (last = UINT32_MAX: no check). */
WSK_TARGET_V4P static ptrdiff_t wsk_compact_csr_f32_i32_livemap(const float* vals,
        const int32_t* cols, ptrdiff_t nnz, const uint32_t* tab, int32_t zero_row,
        uint32_t last, float* vout, int32_t* iout)
{
    WSK_LIVEMAP_LOAD(tab);
    const __m512 zero = _mm512_setzero_ps();
    const __m512i zr = _mm512_set1_epi32(zero_row);
    const __m512i lastv = _mm512_set1_epi32((int)last);
    __mmask16 out_of_range = 0;
    ptrdiff_t q = 0, p = 0;
    for (; p < nnz; p += 16) {
        const __mmask16 in = nnz - p >= 16 ? (__mmask16)0xffff
                                           : (__mmask16)((1u << (nnz - p)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(in, vals + p);
        const __m512i c = _mm512_maskz_loadu_epi32(in, cols + p);
        __mmask16 live;
        out_of_range |= _mm512_mask_cmpgt_epu32_mask(in, c, lastv);
        const __m512i r = wsk_livemap_remap(WSK_LIVEMAP_ARGS, c, zr, &live);
        /* kept: live, or an inf/NaN weight (v - v is NaN), as the scalar test */
        const __mmask16 m = in & (live | _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), zero,
                                                            _CMP_NEQ_UQ));
        const int n_m = __builtin_popcount((unsigned)m);
        const __mmask16 out = (__mmask16)((1u << n_m) - 1);
        _mm512_mask_storeu_ps(vout + q, out, _mm512_maskz_compress_ps(m, v));
        _mm512_mask_storeu_epi32(iout + q, out, _mm512_maskz_compress_epi32(m, r));
        q += n_m;
    }
    return out_of_range ? -1 : q;
}
/* The fp64 form: 16 columns a step, their values in two zmm. */
WSK_TARGET_V4P static ptrdiff_t wsk_compact_csr_f64_i32_livemap(const double* vals,
        const int32_t* cols, ptrdiff_t nnz, const uint32_t* tab, int32_t zero_row,
        uint32_t last, double* vout, int32_t* iout)
{
    WSK_LIVEMAP_LOAD(tab);
    const __m512d zero = _mm512_setzero_pd();
    const __m512i zr = _mm512_set1_epi32(zero_row);
    const __m512i lastv = _mm512_set1_epi32((int)last);
    __mmask16 out_of_range = 0;
    ptrdiff_t q = 0, p = 0;
    for (; p < nnz; p += 16) {
        const __mmask16 in = nnz - p >= 16 ? (__mmask16)0xffff
                                           : (__mmask16)((1u << (nnz - p)) - 1);
        const __m512d v0 = _mm512_maskz_loadu_pd((__mmask8)in, vals + p);
        const __m512d v1 = _mm512_maskz_loadu_pd((__mmask8)(in >> 8), vals + p + 8);
        const __m512i c = _mm512_maskz_loadu_epi32(in, cols + p);
        __mmask16 live;
        out_of_range |= _mm512_mask_cmpgt_epu32_mask(in, c, lastv);
        const __m512i r = wsk_livemap_remap(WSK_LIVEMAP_ARGS, c, zr, &live);
        const __mmask16 bad = (__mmask16)(
            (unsigned)_mm512_cmp_pd_mask(_mm512_sub_pd(v0, v0), zero, _CMP_NEQ_UQ)
            | ((unsigned)_mm512_cmp_pd_mask(_mm512_sub_pd(v1, v1), zero, _CMP_NEQ_UQ) << 8));
        const __mmask16 m = in & (live | bad);
        const int n_m = __builtin_popcount((unsigned)m);
        const int n_0 = __builtin_popcount((unsigned)(m & 0xff));
        const int n_1 = n_m - n_0;
        _mm512_mask_storeu_epi32(iout + q, (__mmask16)((1u << n_m) - 1),
                                 _mm512_maskz_compress_epi32(m, r));
        _mm512_mask_storeu_pd(vout + q, (__mmask8)((1u << n_0) - 1),
                              _mm512_maskz_compress_pd((__mmask8)m, v0));
        _mm512_mask_storeu_pd(vout + q + n_0, (__mmask8)((1u << n_1) - 1),
                              _mm512_maskz_compress_pd((__mmask8)(m >> 8), v1));
        q += n_m;
    }
    return out_of_range ? -1 : q;
}
/* One step of wsk_compact_csr_f32_i32_livemap: entries p to min(p + 16, pe) of vals/cols
   appended at vo/io + q, all 16 lanes stored (those past the kept ones are zero: room for
   16 past the row's kept entries); returns the new q, out-of-range columns or'ed into *oor. */
WSK_INLINE WSK_TARGET_V4P ptrdiff_t wsk_livemap_step_f32(__m512i t0, __m512i t1,
        __m512i t2, __m512i t3, __m512i t4, __m512i t5, __m512i t6, __m512i t7, __m512i t8,
        __m512i t9, __m512i t10, __m512i t11, __m512i t12, __m512i t13, __m512i t14,
        __m512i t15, const float* vals, const int32_t* cols, ptrdiff_t p, ptrdiff_t pe,
        __m512i zr, __m512i lastv, float* vo, int32_t* io, ptrdiff_t q, __mmask16* oor)
{
    const __mmask16 in = pe - p >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (pe - p)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(in, vals + p);
    const __m512i c = _mm512_maskz_loadu_epi32(in, cols + p);
    __mmask16 live;
    *oor |= _mm512_mask_cmpgt_epu32_mask(in, c, lastv);
    const __m512i r = wsk_livemap_remap(WSK_LIVEMAP_ARGS, c, zr, &live);
    const __mmask16 m = in & (live | _mm512_cmp_ps_mask(_mm512_sub_ps(v, v),
                                                         _mm512_setzero_ps(), _CMP_NEQ_UQ));
    _mm512_storeu_ps(vo + q, _mm512_maskz_compress_ps(m, v));
    _mm512_storeu_si512((void*)(io + q), _mm512_maskz_compress_epi32(m, r));
    return q + __builtin_popcount((unsigned)m);
}
/* y += w * X[c, 0:64] on one of the two accumulator sets (4 zmm each). */
#define WSK_LM_MAC(A0, A1, A2, A3, k)                                                  \
    do {                                                                               \
        const __m512 w_ = _mm512_set1_ps(vb[k]);                                       \
        const float* x_ = X + (ptrdiff_t)cb[k] * ldx;                                  \
        A0 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_), A0);                             \
        A1 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_ + 16), A1);                        \
        A2 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_ + 32), A2);                        \
        A3 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_ + 48), A3);                        \
    } while (0)
#define WSK_LM_PAIR(k)                                                                 \
    do {                                                                               \
        WSK_LM_MAC(a0, a1, a2, a3, k);                                                 \
        WSK_LM_MAC(b0, b1, b2, b3, (k) + 1);                                           \
    } while (0)
#define WSK_LM_PF(k) __builtin_prefetch(X + (ptrdiff_t)cb[k] * ldx)
/* Rows i0 <= i < i1 of W (CSR, all of it: vals, cols, indptr) times X (the live rows and the
   zero row, 64 floats a row, pitch ldx) into out[i * ldo + 0:64], the compaction fused with
   the multiply: row i + 1 is compacted by the live map (tab, as in
   wsk_compact_csr_f32_i32_livemap) into one buffer while row i, compacted in the other, is
   multiplied, one 16-column step to four pairs of kept entries. The compaction's vector work
   then runs in the shadow of the multiply's loads of X (Zen 4, C harness, 4096^2 x 64, 90 %
   zeros, half of X dead: 3.35-3.6 ms against 3.6-3.9 for compacting 16 rows then the rows
   call). The same sums as that, bit for bit: the pairs alternate between two accumulator sets
   from the row's first kept entry, a last odd one goes to the first, and the sets are added
   at the end, as wsk_spmm_row's 4x2 tile. vbuf/cbuf: two buffers of cap entries each, cap
   at least the longest row's nonzeros plus 16. Columns over last (UINT32_MAX: no check)
   flag bad[i] and the row is left zero, X never read through them. Prefetches one line of
   the X row 16 kept entries ahead (one each: lighter than the tile's four, as fast). */
WSK_TARGET_V4P static void wsk_spmm_rows_livemap_f32_n64(const float* vals,
        const int32_t* cols, const int32_t* indptr, ptrdiff_t i0, ptrdiff_t i1,
        const uint32_t* tab, int32_t zero_row, uint32_t last, const float* X, ptrdiff_t ldx,
        float* out, ptrdiff_t ldo, float* vbuf, int32_t* cbuf, ptrdiff_t cap, uint8_t* bad)
{
    if (i0 >= i1) return;
    WSK_LIVEMAP_LOAD(tab);
    const __m512 zero = _mm512_setzero_ps();
    const __m512i zr = _mm512_set1_epi32(zero_row);
    const __m512i lastv = _mm512_set1_epi32((int)last);
    ptrdiff_t q = 0;
    __mmask16 oor = 0;
    for (ptrdiff_t p = indptr[i0]; p < indptr[i0 + 1]; p += 16)
        q = wsk_livemap_step_f32(WSK_LIVEMAP_ARGS, vals, cols, p, indptr[i0 + 1], zr, lastv,
                                 vbuf, cbuf, q, &oor);
    if (oor) {
        bad[i0] = 1;
        q = 0;
    }
    for (ptrdiff_t i = i0; i < i1; i++) {
        const ptrdiff_t cur = (i - i0) % 2 * cap, nxt = cap - cur;
        const float* vb = vbuf + cur;
        const int32_t* cb = cbuf + cur;
        float* vo = vbuf + nxt;
        int32_t* io = cbuf + nxt;
        ptrdiff_t p = 0, pe = 0, qn = 0, d = 0;
        if (i + 1 < i1) {
            p = indptr[i + 1];
            pe = indptr[i + 2];
        }
        oor = 0;
        __m512 a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        __m512 b0 = zero, b1 = zero, b2 = zero, b3 = zero;
        for (; d + 8 <= q && p < pe; d += 8, p += 16) {
            if (d + 24 <= q) {
                WSK_LM_PF(d + 16); WSK_LM_PF(d + 17); WSK_LM_PF(d + 18); WSK_LM_PF(d + 19);
                WSK_LM_PF(d + 20); WSK_LM_PF(d + 21); WSK_LM_PF(d + 22); WSK_LM_PF(d + 23);
            }
            WSK_LM_PAIR(d);
            WSK_LM_PAIR(d + 2);
            WSK_LM_PAIR(d + 4);
            WSK_LM_PAIR(d + 6);
            qn = wsk_livemap_step_f32(WSK_LIVEMAP_ARGS, vals, cols, p, pe, zr, lastv, vo, io,
                                      qn, &oor);
        }
        for (; p < pe; p += 16)
            qn = wsk_livemap_step_f32(WSK_LIVEMAP_ARGS, vals, cols, p, pe, zr, lastv, vo, io,
                                      qn, &oor);
        for (; d + 2 <= q; d += 2) {
            if (d + 18 <= q) {
                WSK_LM_PF(d + 16);
                WSK_LM_PF(d + 17);
            }
            WSK_LM_PAIR(d);
        }
        if (d < q) WSK_LM_MAC(a0, a1, a2, a3, d);
        float* y = out + i * ldo;
        _mm512_storeu_ps(y, _mm512_add_ps(a0, b0));
        _mm512_storeu_ps(y + 16, _mm512_add_ps(a1, b1));
        _mm512_storeu_ps(y + 32, _mm512_add_ps(a2, b2));
        _mm512_storeu_ps(y + 48, _mm512_add_ps(a3, b3));
        q = qn;
        if (oor) {
            bad[i + 1] = 1;
            q = 0;
        }
    }
}
/* The live test alone, for the form below that multiplies X itself (no remap): whether
   each of 16 columns c in [0, 4096) is live, from tab[0:128] (X's live rows as bits) in
   8 zmm: half of wsk_livemap_remap's work (4 vpermi2d, no prefix counts). */
WSK_INLINE WSK_TARGET_V4P __mmask16 wsk_livebits_live(__m512i t0, __m512i t1, __m512i t2,
        __m512i t3, __m512i t4, __m512i t5, __m512i t6, __m512i t7, __m512i c)
{
    const __m512i w = _mm512_srli_epi32(c, 5);
    const __mmask16 h5 = _mm512_test_epi32_mask(w, _mm512_set1_epi32(32));
    const __mmask16 h6 = _mm512_test_epi32_mask(w, _mm512_set1_epi32(64));
    const __m512i a0 = _mm512_permutex2var_epi32(t0, w, t1);
    const __m512i a1 = _mm512_permutex2var_epi32(t2, w, t3);
    const __m512i a2 = _mm512_permutex2var_epi32(t4, w, t5);
    const __m512i a3 = _mm512_permutex2var_epi32(t6, w, t7);
    const __m512i word = _mm512_mask_blend_epi32(h6, _mm512_mask_blend_epi32(h5, a0, a1),
                                                 _mm512_mask_blend_epi32(h5, a2, a3));
    /* c's own bit moved to the sign bit */
    return _mm512_movepi32_mask(
        _mm512_sllv_epi32(word, _mm512_andnot_si512(c, _mm512_set1_epi32(31))));
}
/* wsk_livemap_step_f32 keeping W's own columns: the same entries kept, in the same order. */
WSK_INLINE WSK_TARGET_V4P ptrdiff_t wsk_livebits_step_f32(__m512i t0, __m512i t1,
        __m512i t2, __m512i t3, __m512i t4, __m512i t5, __m512i t6, __m512i t7,
        const float* vals, const int32_t* cols, ptrdiff_t p, ptrdiff_t pe, __m512i lastv,
        float* vo, int32_t* io, ptrdiff_t q, __mmask16* oor)
{
    const __mmask16 in = pe - p >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (pe - p)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(in, vals + p);
    const __m512i c = _mm512_maskz_loadu_epi32(in, cols + p);
    *oor |= _mm512_mask_cmpgt_epu32_mask(in, c, lastv);
    const __mmask16 live = wsk_livebits_live(t0, t1, t2, t3, t4, t5, t6, t7, c);
    const __mmask16 m = in & (live | _mm512_cmp_ps_mask(_mm512_sub_ps(v, v),
                                                         _mm512_setzero_ps(), _CMP_NEQ_UQ));
    _mm512_storeu_ps(vo + q, _mm512_maskz_compress_ps(m, v));
    _mm512_storeu_si512((void*)(io + q), _mm512_maskz_compress_epi32(m, c));
    return q + __builtin_popcount((unsigned)m);
}
/* wsk_spmm_rows_livemap_f32_n64 on X itself (K <= 4096 rows of 64 floats, contiguous)
   with tab[0:128] its live rows as bits: the kept entries keep W's columns, so the live
   rows are read where they are (no X_live copy, no remapped column: 4 of the remap's 8
   vpermi2d a step, no popcount). A non-finite weight on a dead row meets that row's zeros
   (+0 or -0: the product is the same NaN as against X_live's zero row). The same kept
   entries, order and sums as wsk_spmm_rows_livemap_f32_n64, so the same output bit for
   bit. X's dead rows are never read but through such a weight. Each step prefetches W's
   values and columns 256 entries ahead (prefetchnta; no fault past the end): the hardware
   prefetcher alone left the stream behind (Zen 4, 4096^2 x 64, 90 % zeros, half of X dead,
   load 9, the whole call: 3.97-4.07 ms median without, 3.57-3.70 with, 128-512 ahead
   and T0 the same). */
#define WSK_LB_W_AHEAD 256
WSK_TARGET_V4P static void wsk_spmm_rows_livebits_f32_n64(const float* vals,
        const int32_t* cols, const int32_t* indptr, ptrdiff_t i0, ptrdiff_t i1,
        const uint32_t* tab, uint32_t last, const float* X, float* out, ptrdiff_t ldo,
        float* vbuf, int32_t* cbuf, ptrdiff_t cap, uint8_t* bad)
{
    if (i0 >= i1) return;
    const ptrdiff_t ldx = 64;      /* X contiguous: a shift, not a multiply (one GPR less) */
    const __m512i t0 = _mm512_loadu_si512((const void*)(tab + 0)),
        t1 = _mm512_loadu_si512((const void*)(tab + 16)),
        t2 = _mm512_loadu_si512((const void*)(tab + 32)),
        t3 = _mm512_loadu_si512((const void*)(tab + 48)),
        t4 = _mm512_loadu_si512((const void*)(tab + 64)),
        t5 = _mm512_loadu_si512((const void*)(tab + 80)),
        t6 = _mm512_loadu_si512((const void*)(tab + 96)),
        t7 = _mm512_loadu_si512((const void*)(tab + 112));
#define WSK_LB_ARGS t0, t1, t2, t3, t4, t5, t6, t7
    const __m512 zero = _mm512_setzero_ps();
    const __m512i lastv = _mm512_set1_epi32((int)last);
    ptrdiff_t q = 0;
    __mmask16 oor = 0;
    for (ptrdiff_t p = indptr[i0]; p < indptr[i0 + 1]; p += 16)
        q = wsk_livebits_step_f32(WSK_LB_ARGS, vals, cols, p, indptr[i0 + 1], lastv, vbuf,
                                  cbuf, q, &oor);
    if (oor) {
        bad[i0] = 1;
        q = 0;
    }
    for (ptrdiff_t i = i0; i < i1; i++) {
        const ptrdiff_t cur = (i - i0) % 2 * cap, nxt = cap - cur;
        const float* vb = vbuf + cur;
        const int32_t* cb = cbuf + cur;
        float* vo = vbuf + nxt;
        int32_t* io = cbuf + nxt;
        ptrdiff_t p = 0, pe = 0, qn = 0, d = 0;
        if (i + 1 < i1) {
            p = indptr[i + 1];
            pe = indptr[i + 2];
        }
        oor = 0;
        __m512 a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        __m512 b0 = zero, b1 = zero, b2 = zero, b3 = zero;
        for (; d + 8 <= q && p < pe; d += 8, p += 16) {
            if (d + 24 <= q) {
                WSK_LM_PF(d + 16); WSK_LM_PF(d + 17); WSK_LM_PF(d + 18); WSK_LM_PF(d + 19);
                WSK_LM_PF(d + 20); WSK_LM_PF(d + 21); WSK_LM_PF(d + 22); WSK_LM_PF(d + 23);
            }
            /* W's stream WSK_LB_W_AHEAD entries (16 lines) ahead: 8-10 % faster (below) */
            __builtin_prefetch(vals + p + WSK_LB_W_AHEAD, 0, 0);
            __builtin_prefetch(cols + p + WSK_LB_W_AHEAD, 0, 0);
            WSK_LM_PAIR(d);
            WSK_LM_PAIR(d + 2);
            WSK_LM_PAIR(d + 4);
            WSK_LM_PAIR(d + 6);
            qn = wsk_livebits_step_f32(WSK_LB_ARGS, vals, cols, p, pe, lastv, vo, io, qn,
                                       &oor);
        }
        for (; p < pe; p += 16)
            qn = wsk_livebits_step_f32(WSK_LB_ARGS, vals, cols, p, pe, lastv, vo, io, qn,
                                       &oor);
        for (; d + 2 <= q; d += 2) {
            if (d + 18 <= q) {
                WSK_LM_PF(d + 16);
                WSK_LM_PF(d + 17);
            }
            WSK_LM_PAIR(d);
        }
        if (d < q) WSK_LM_MAC(a0, a1, a2, a3, d);
        float* y = out + i * ldo;
        _mm512_storeu_ps(y, _mm512_add_ps(a0, b0));
        _mm512_storeu_ps(y + 16, _mm512_add_ps(a1, b1));
        _mm512_storeu_ps(y + 32, _mm512_add_ps(a2, b2));
        _mm512_storeu_ps(y + 48, _mm512_add_ps(a3, b3));
        q = qn;
        if (oor) {
            bad[i + 1] = 1;
            q = 0;
        }
    }
#undef WSK_LB_ARGS
}
/* y[0:128] += w * X[c, j:j + 128] for kept entry k: the 8x1 tile's step, on a0-a7. */
#define WSK_LB8_MAC(k)                                                                 \
    do {                                                                               \
        const __m512 w_ = _mm512_set1_ps(vb[k]);                                       \
        const float* x_ = X + (ptrdiff_t)cb[k] * ldx + j;                              \
        a0 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_), a0);                             \
        a1 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_ + 16), a1);                        \
        a2 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_ + 32), a2);                        \
        a3 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_ + 48), a3);                        \
        a4 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_ + 64), a4);                        \
        a5 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_ + 80), a5);                        \
        a6 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_ + 96), a6);                        \
        a7 = _mm512_fmadd_ps(w_, _mm512_loadu_ps(x_ + 112), a7);                       \
    } while (0)
#define WSK_LB8_STORE(y)                                                               \
    do {                                                                               \
        _mm512_storeu_ps((y), a0); _mm512_storeu_ps((y) + 16, a1);                     \
        _mm512_storeu_ps((y) + 32, a2); _mm512_storeu_ps((y) + 48, a3);                \
        _mm512_storeu_ps((y) + 64, a4); _mm512_storeu_ps((y) + 80, a5);                \
        _mm512_storeu_ps((y) + 96, a6); _mm512_storeu_ps((y) + 112, a7);               \
    } while (0)
/* wsk_spmm_rows_livebits_f32_n64 for X of n = 128 * T columns (pitch n, contiguous,
   K <= 4096 rows): each row's kept entries are multiplied in T column tiles of 128 (8 zmm,
   one accumulator each, the entries in order: wsk_spmm_row's 8x1 tile, so the same sums
   bit for bit as the rows kernel on the compacted row against X_live), the next row
   compacted (wsk_livebits_step_f32) in the shadow of the first tile, the other tiles
   read the kept entries back from the buffer (in L1). Same buffers, bits and checks as
   the n64 form. X is not prefetched (its live rows sit in L2): prefetching the 8 lines of
   the piece 8 kept entries ahead cost 3-4 %, 16 ahead 5-8 % (Zen 5, 1024^2 x 256, 90 %
   zeros, half of X dead, the whole call: 281-290 us against 292-296 and 300-308). */
WSK_TARGET_V4P static void wsk_spmm_rows_livebits_f32_t128(const float* vals,
        const int32_t* cols, const int32_t* indptr, ptrdiff_t i0, ptrdiff_t i1,
        const uint32_t* tab, uint32_t last, const float* X, ptrdiff_t n, float* out,
        ptrdiff_t ldo, float* vbuf, int32_t* cbuf, ptrdiff_t cap, uint8_t* bad)
{
    if (i0 >= i1) return;
    const ptrdiff_t ldx = n;
    const __m512i t0 = _mm512_loadu_si512((const void*)(tab + 0)),
        t1 = _mm512_loadu_si512((const void*)(tab + 16)),
        t2 = _mm512_loadu_si512((const void*)(tab + 32)),
        t3 = _mm512_loadu_si512((const void*)(tab + 48)),
        t4 = _mm512_loadu_si512((const void*)(tab + 64)),
        t5 = _mm512_loadu_si512((const void*)(tab + 80)),
        t6 = _mm512_loadu_si512((const void*)(tab + 96)),
        t7 = _mm512_loadu_si512((const void*)(tab + 112));
#define WSK_LB_ARGS t0, t1, t2, t3, t4, t5, t6, t7
    const __m512 zero = _mm512_setzero_ps();
    const __m512i lastv = _mm512_set1_epi32((int)last);
    ptrdiff_t q = 0;
    __mmask16 oor = 0;
    for (ptrdiff_t p = indptr[i0]; p < indptr[i0 + 1]; p += 16)
        q = wsk_livebits_step_f32(WSK_LB_ARGS, vals, cols, p, indptr[i0 + 1], lastv, vbuf,
                                  cbuf, q, &oor);
    if (oor) {
        bad[i0] = 1;
        q = 0;
    }
    for (ptrdiff_t i = i0; i < i1; i++) {
        const ptrdiff_t cur = (i - i0) % 2 * cap, nxt = cap - cur;
        const float* vb = vbuf + cur;
        const int32_t* cb = cbuf + cur;
        float* vo = vbuf + nxt;
        int32_t* io = cbuf + nxt;
        ptrdiff_t p = 0, pe = 0, qn = 0, d = 0, j = 0;
        if (i + 1 < i1) {
            p = indptr[i + 1];
            pe = indptr[i + 2];
        }
        oor = 0;
        __m512 a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        __m512 a4 = zero, a5 = zero, a6 = zero, a7 = zero;
        for (; d + 8 <= q && p < pe; d += 8, p += 16) {
            __builtin_prefetch(vals + p + WSK_LB_W_AHEAD, 0, 0);
            __builtin_prefetch(cols + p + WSK_LB_W_AHEAD, 0, 0);
            for (int u = 0; u < 8; u++) WSK_LB8_MAC(d + u);
            qn = wsk_livebits_step_f32(WSK_LB_ARGS, vals, cols, p, pe, lastv, vo, io, qn,
                                       &oor);
        }
        for (; p < pe; p += 16)
            qn = wsk_livebits_step_f32(WSK_LB_ARGS, vals, cols, p, pe, lastv, vo, io, qn,
                                       &oor);
        for (; d < q; d++) WSK_LB8_MAC(d);
        float* y = out + i * ldo;
        WSK_LB8_STORE(y);
        for (j = 128; j < n; j += 128) {
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero;
            for (d = 0; d < q; d++) WSK_LB8_MAC(d);
            WSK_LB8_STORE(y + j);
        }
        q = qn;
        if (oor) {
            bad[i + 1] = 1;
            q = 0;
        }
    }
#undef WSK_LB_ARGS
}
#undef WSK_LB8_MAC
#undef WSK_LB8_STORE
#undef WSK_LM_MAC
#undef WSK_LM_PAIR
#undef WSK_LM_PF
#endif
/* NULL unless the CPU runs the forms above and the AVX-512 path is selected. */
typedef ptrdiff_t (*wsk_compact_csr_lm_f32_t)(const float*, const int32_t*, ptrdiff_t,
                                              const uint32_t*, int32_t, uint32_t, float*,
                                              int32_t*);
typedef ptrdiff_t (*wsk_compact_csr_lm_f64_t)(const double*, const int32_t*, ptrdiff_t,
                                              const uint32_t*, int32_t, uint32_t, double*,
                                              int32_t*);
static wsk_compact_csr_lm_f32_t wsk_compact_csr_f32_i32_lm = NULL;
static wsk_compact_csr_lm_f64_t wsk_compact_csr_f64_i32_lm = NULL;
typedef void (*wsk_spmm_rows_lm_f32_n64_t)(const float*, const int32_t*, const int32_t*,
                                           ptrdiff_t, ptrdiff_t, const uint32_t*, int32_t,
                                           uint32_t, const float*, ptrdiff_t, float*,
                                           ptrdiff_t, float*, int32_t*, ptrdiff_t, uint8_t*);
static wsk_spmm_rows_lm_f32_n64_t wsk_spmm_rows_lm_f32_n64 = NULL;
typedef void (*wsk_spmm_rows_lb_f32_n64_t)(const float*, const int32_t*, const int32_t*,
                                           ptrdiff_t, ptrdiff_t, const uint32_t*, uint32_t,
                                           const float*, float*, ptrdiff_t, float*, int32_t*,
                                           ptrdiff_t, uint8_t*);
static wsk_spmm_rows_lb_f32_n64_t wsk_spmm_rows_lb_f32_n64 = NULL;
typedef void (*wsk_spmm_rows_lb_f32_t128_t)(const float*, const int32_t*, const int32_t*,
                                            ptrdiff_t, ptrdiff_t, const uint32_t*, uint32_t,
                                            const float*, ptrdiff_t, float*, ptrdiff_t,
                                            float*, int32_t*, ptrdiff_t, uint8_t*);
static wsk_spmm_rows_lb_f32_t128_t wsk_spmm_rows_lb_f32_t128 = NULL;

/* One row of X for the dispatcher (scan_rows): wsk_scan_f32/f64, per target, selected with
   the rest by wsk_simd_init. The same scan as conv2d's. */
#include "wsk_scan.h"

/* ------------------------------------------------------------------------ */
/* Dispatch table, filled once by wsk_simd_init().                           */
/* ------------------------------------------------------------------------ */
typedef void (*wsk_spmm_row_f32_i32_t)(const float*, const int32_t*, ptrdiff_t, const float*, ptrdiff_t, float*, ptrdiff_t);
typedef void (*wsk_spmm_row_f32_i64_t)(const float*, const int64_t*, ptrdiff_t, const float*, ptrdiff_t, float*, ptrdiff_t);
typedef void (*wsk_spmm_row_f64_i32_t)(const double*, const int32_t*, ptrdiff_t, const double*, ptrdiff_t, double*, ptrdiff_t);
typedef void (*wsk_spmm_row_f64_i64_t)(const double*, const int64_t*, ptrdiff_t, const double*, ptrdiff_t, double*, ptrdiff_t);
typedef void (*wsk_spmm_rows_f32_i32_t)(const float*, const int32_t*, const int32_t*, ptrdiff_t, ptrdiff_t, ptrdiff_t, const uint8_t*, const float*, ptrdiff_t, ptrdiff_t, float*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_rows_counted_f32_i32_t)(const float*, const int32_t*, const int32_t*, const ptrdiff_t*, ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t, ptrdiff_t, float*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_rows_f32_i64_t)(const float*, const int64_t*, const int64_t*, ptrdiff_t, ptrdiff_t, ptrdiff_t, const uint8_t*, const float*, ptrdiff_t, ptrdiff_t, float*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_rows_counted_f32_i64_t)(const float*, const int64_t*, const int64_t*, const ptrdiff_t*, ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t, ptrdiff_t, float*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_rows_f64_i32_t)(const double*, const int32_t*, const int32_t*, ptrdiff_t, ptrdiff_t, ptrdiff_t, const uint8_t*, const double*, ptrdiff_t, ptrdiff_t, double*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_rows_counted_f64_i32_t)(const double*, const int32_t*, const int32_t*, const ptrdiff_t*, ptrdiff_t, ptrdiff_t, const double*, ptrdiff_t, ptrdiff_t, double*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_rows_f64_i64_t)(const double*, const int64_t*, const int64_t*, ptrdiff_t, ptrdiff_t, ptrdiff_t, const uint8_t*, const double*, ptrdiff_t, ptrdiff_t, double*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_rows_counted_f64_i64_t)(const double*, const int64_t*, const int64_t*, const ptrdiff_t*, ptrdiff_t, ptrdiff_t, const double*, ptrdiff_t, ptrdiff_t, double*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_scatter_f32_i32_t)(const float*, const int32_t*, ptrdiff_t, const float*, float*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_scatter_f32_i64_t)(const float*, const int64_t*, ptrdiff_t, const float*, float*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_scatter_f64_i32_t)(const double*, const int32_t*, ptrdiff_t, const double*, double*, ptrdiff_t, ptrdiff_t);
typedef void (*wsk_spmm_scatter_f64_i64_t)(const double*, const int64_t*, ptrdiff_t, const double*, double*, ptrdiff_t, ptrdiff_t);
typedef ptrdiff_t (*wsk_compact_f32_t)(const float*, const uint8_t*, const int32_t*, ptrdiff_t, float*, int32_t*);
typedef ptrdiff_t (*wsk_compact_f64_t)(const double*, const uint8_t*, const int32_t*, ptrdiff_t, double*, int32_t*);
typedef void (*wsk_plane_axpy_f32_t)(ptrdiff_t, ptrdiff_t, float, const float*, ptrdiff_t, const uint8_t*, float*, ptrdiff_t);
typedef void (*wsk_plane_axpy_f64_t)(ptrdiff_t, ptrdiff_t, double, const double*, ptrdiff_t, const uint8_t*, double*, ptrdiff_t);
typedef float (*wsk_plane_dot_f32_t)(ptrdiff_t, ptrdiff_t, const float*, const float*, ptrdiff_t);
typedef double (*wsk_plane_dot_f64_t)(ptrdiff_t, ptrdiff_t, const double*, const double*, ptrdiff_t);
typedef ptrdiff_t (*wsk_compact_csr_f32_i32_t)(const float*, const int32_t*, ptrdiff_t, const int32_t*, int32_t, float*, int32_t*);
typedef ptrdiff_t (*wsk_compact_csr_f64_i32_t)(const double*, const int32_t*, ptrdiff_t, const int32_t*, int32_t, double*, int32_t*);
typedef float (*wsk_dot_f32_t)(const float*, const float*, ptrdiff_t);
typedef double (*wsk_dot_f64_t)(const double*, const double*, ptrdiff_t);

static wsk_spmm_row_f32_i32_t wsk_spmm_row_f32_i32 = wsk_spmm_row_f32_i32_base;
static wsk_spmm_row_f32_i64_t wsk_spmm_row_f32_i64 = wsk_spmm_row_f32_i64_base;
static wsk_spmm_row_f64_i32_t wsk_spmm_row_f64_i32 = wsk_spmm_row_f64_i32_base;
static wsk_spmm_row_f64_i64_t wsk_spmm_row_f64_i64 = wsk_spmm_row_f64_i64_base;
static wsk_spmm_rows_f32_i32_t wsk_spmm_rows_f32_i32 = wsk_spmm_rows_f32_i32_base;
static wsk_spmm_rows_counted_f32_i32_t wsk_spmm_rows_counted_f32_i32 = wsk_spmm_rows_counted_f32_i32_base;
static wsk_spmm_rows_f32_i64_t wsk_spmm_rows_f32_i64 = wsk_spmm_rows_f32_i64_base;
static wsk_spmm_rows_counted_f32_i64_t wsk_spmm_rows_counted_f32_i64 = wsk_spmm_rows_counted_f32_i64_base;
static wsk_spmm_rows_f64_i32_t wsk_spmm_rows_f64_i32 = wsk_spmm_rows_f64_i32_base;
static wsk_spmm_rows_counted_f64_i32_t wsk_spmm_rows_counted_f64_i32 = wsk_spmm_rows_counted_f64_i32_base;
static wsk_spmm_rows_f64_i64_t wsk_spmm_rows_f64_i64 = wsk_spmm_rows_f64_i64_base;
static wsk_spmm_rows_counted_f64_i64_t wsk_spmm_rows_counted_f64_i64 = wsk_spmm_rows_counted_f64_i64_base;
static wsk_spmm_scatter_f32_i32_t wsk_spmm_scatter_f32_i32 = wsk_spmm_scatter_f32_i32_base;
static wsk_spmm_scatter_f32_i64_t wsk_spmm_scatter_f32_i64 = wsk_spmm_scatter_f32_i64_base;
static wsk_spmm_scatter_f64_i32_t wsk_spmm_scatter_f64_i32 = wsk_spmm_scatter_f64_i32_base;
static wsk_spmm_scatter_f64_i64_t wsk_spmm_scatter_f64_i64 = wsk_spmm_scatter_f64_i64_base;
static wsk_compact_f32_t wsk_compact_f32 = wsk_compact_f32_base;
static wsk_compact_f64_t wsk_compact_f64 = wsk_compact_f64_base;
static wsk_plane_axpy_f32_t wsk_plane_axpy_f32 = wsk_plane_axpy_f32_base;
static wsk_plane_axpy_f64_t wsk_plane_axpy_f64 = wsk_plane_axpy_f64_base;
static wsk_plane_dot_f32_t wsk_plane_dot_f32 = wsk_plane_dot_f32_base;
static wsk_plane_dot_f64_t wsk_plane_dot_f64 = wsk_plane_dot_f64_base;
static wsk_compact_csr_f32_i32_t wsk_compact_csr_f32_i32 = wsk_compact_csr_f32_i32_base;
static wsk_compact_csr_f64_i32_t wsk_compact_csr_f64_i32 = wsk_compact_csr_f64_i32_base;
#define wsk_compact_csr_f32_i64 wsk_compact_csr_f32_i64_base
#define wsk_compact_csr_f64_i64 wsk_compact_csr_f64_i64_base
static wsk_dot_f32_t wsk_dot_f32 = wsk_dot_f32_base;
static wsk_dot_f64_t wsk_dot_f64 = wsk_dot_f64_base;
static const char* wsk_simd_path_name = "baseline";

#define WSK_SELECT(TGT)                                   \
    wsk_spmm_row_f32_i32 = wsk_spmm_row_f32_i32_##TGT;    \
    wsk_spmm_row_f32_i64 = wsk_spmm_row_f32_i64_##TGT;    \
    wsk_spmm_row_f64_i32 = wsk_spmm_row_f64_i32_##TGT;    \
    wsk_spmm_row_f64_i64 = wsk_spmm_row_f64_i64_##TGT;    \
    wsk_spmm_rows_f32_i32 = wsk_spmm_rows_f32_i32_##TGT; \
    wsk_spmm_rows_counted_f32_i32 = wsk_spmm_rows_counted_f32_i32_##TGT; \
    wsk_spmm_rows_f32_i64 = wsk_spmm_rows_f32_i64_##TGT; \
    wsk_spmm_rows_counted_f32_i64 = wsk_spmm_rows_counted_f32_i64_##TGT; \
    wsk_spmm_rows_f64_i32 = wsk_spmm_rows_f64_i32_##TGT; \
    wsk_spmm_rows_counted_f64_i32 = wsk_spmm_rows_counted_f64_i32_##TGT; \
    wsk_spmm_rows_f64_i64 = wsk_spmm_rows_f64_i64_##TGT; \
    wsk_spmm_rows_counted_f64_i64 = wsk_spmm_rows_counted_f64_i64_##TGT; \
    wsk_spmm_scatter_f32_i32 = wsk_spmm_scatter_f32_i32_##TGT; \
    wsk_spmm_scatter_f32_i64 = wsk_spmm_scatter_f32_i64_##TGT; \
    wsk_spmm_scatter_f64_i32 = wsk_spmm_scatter_f64_i32_##TGT; \
    wsk_spmm_scatter_f64_i64 = wsk_spmm_scatter_f64_i64_##TGT; \
    wsk_dot_f32 = wsk_dot_f32_##TGT;                      \
    wsk_plane_axpy_f32 = wsk_plane_axpy_f32_##TGT;        \
    wsk_plane_axpy_f64 = wsk_plane_axpy_f64_##TGT;        \
    wsk_plane_dot_f32 = wsk_plane_dot_f32_##TGT;          \
    wsk_plane_dot_f64 = wsk_plane_dot_f64_##TGT;          \
    wsk_dot_f64 = wsk_dot_f64_##TGT;

/* The CPU must have every feature of the target the clone was compiled for. */
#if WSK_X86_DISPATCH && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define WSK_CPU_HAS_V3 __builtin_cpu_supports("x86-64-v3")
#define WSK_CPU_HAS_V4 __builtin_cpu_supports("x86-64-v4")
#else
#define WSK_CPU_HAS_V3 (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") \
    && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c"))
#define WSK_CPU_HAS_V4 (WSK_CPU_HAS_V3 && __builtin_cpu_supports("avx512f") \
    && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") \
    && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd"))
#endif

/* The paths this CPU can run, as bits: 1 baseline, 2 avx2, 4 avx512. */
static int wsk_simd_available(void)
{
    int paths = 1;
#if WSK_X86_DISPATCH
    __builtin_cpu_init();
    if (WSK_CPU_HAS_V3) paths |= 2;
    if (WSK_CPU_HAS_V4) paths |= 4;
#endif
    return paths;
}

/* path: 0 = the best this CPU runs, else one bit of wsk_simd_available() (the
   caller checks that the CPU runs it; an unavailable one selects the baseline). */
static const char* wsk_simd_init(int path)
{
    const int avail = wsk_simd_available();
    WSK_SELECT(base)
    wsk_compact_f32 = wsk_compact_f32_base;
    wsk_compact_f64 = wsk_compact_f64_base;
    wsk_compact_csr_f32_i32 = wsk_compact_csr_f32_i32_base;
    wsk_compact_csr_f64_i32 = wsk_compact_csr_f64_i32_base;
    wsk_compact_csr_f32_i32_lm = NULL;
    wsk_compact_csr_f64_i32_lm = NULL;
    wsk_spmm_rows_lm_f32_n64 = NULL;
    wsk_spmm_rows_lb_f32_n64 = NULL;
    wsk_spmm_rows_lb_f32_t128 = NULL;
    wsk_simd_path_name = "baseline";
    if (path == 0) path = (avail & 4) ? 4 : (avail & 2) ? 2 : 1;
    if (!(avail & path)) path = 1;
    wsk_scan_init(path);
#if WSK_X86_DISPATCH
    if (path == 2) {
        WSK_SELECT(avx2)
        wsk_compress8_init();
        wsk_compact_f32 = wsk_compact_f32_avx2;
        wsk_compact_f64 = wsk_compact_f64_avx2;
        wsk_compact_csr_f32_i32 = wsk_compact_csr_f32_i32_avx2;
        wsk_compact_csr_f64_i32 = wsk_compact_csr_f64_i32_avx2;
        wsk_simd_path_name = "avx2";
    }
    if (path == 4) {
        WSK_SELECT(avx512)
        wsk_compress8_init();
        wsk_compact_f32 = wsk_compact_f32_avx512;
        wsk_compact_csr_f32_i32 = wsk_compact_csr_f32_i32_avx512;
        wsk_compact_csr_f64_i32 = wsk_compact_csr_f64_i32_avx512;
        wsk_compact_f64 = wsk_compact_f64_avx512;
        if (__builtin_cpu_supports("avx512vpopcntdq")) {
            wsk_compact_csr_f32_i32_lm = wsk_compact_csr_f32_i32_livemap;
            wsk_compact_csr_f64_i32_lm = wsk_compact_csr_f64_i32_livemap;
            wsk_spmm_rows_lm_f32_n64 = wsk_spmm_rows_livemap_f32_n64;
            wsk_spmm_rows_lb_f32_n64 = wsk_spmm_rows_livebits_f32_n64;
            wsk_spmm_rows_lb_f32_t128 = wsk_spmm_rows_livebits_f32_t128;
        }
        wsk_simd_path_name = "avx512";
    }
#endif
    return wsk_simd_path_name;
}

/* The compiler that built this extension, for show_config(). */
static const char* wsk_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
    return "msvc";
#else
    return "unknown";
#endif
}

/* OpenMP availability, for show_config(). */
#ifdef _OPENMP
#include <omp.h>
static int wsk_openmp_enabled(void) { return 1; }
static int wsk_omp_max_threads(void) { return omp_get_max_threads(); }
#else
static int wsk_openmp_enabled(void) { return 0; }
static int wsk_omp_max_threads(void) { return 1; }
#endif

#endif /* WSK_SIMD_H */
