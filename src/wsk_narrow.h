/* spmm for X narrower than half a vector of the SIMD path, or one column (_spmm.pyx
   _narrow; the kernel takes N <= 15): a matvec-like row
   loop with every column of X in scalar accumulators, each row's column indices checked
   in the same pass (issue 19: at N = 1 the rows call's per-row dispatch and a separate
   check pass cost more than SciPy's whole call).

   The sums are those of wsk_spmm_tail (wsk_simd.h), the only code that touches a column
   of X narrower than a vector in wsk_spmm_row: per column, the even nonzeros of a row in
   one accumulator and the odd ones in another, added at the end, in each target's own
   clone. Against the build before it (every path, widths 1-16, W 50/95 % zeros): the
   same bits but for float64 with int64 indices on AVX2 and AVX-512, 1 ulp apart where
   the old per-column tail fused differently; since the tail is one masked pass (s26)
   those agree too (s27: 0 of 6144 entries differ at N = 1-3). Not auto-vectorised: GCC's
   vectorised form of the N = 1 loop gave other sums than the tail's. */
#ifndef WSK_NARROW_H
#define WSK_NARROW_H
#include "wsk_simd.h"

/* A column index outside [0, K) is clamped to K - 1 for its load (nothing outside X is
   read) and flags its row; such a row's result is not the product, and the caller
   refuses the call (the rows are counted). */
#define WSK_DEFINE_NARROW_BODY(V, I, U, SFX, TGT, ATTR)                                \
WSK_INLINE ATTR ptrdiff_t wsk_spmm_narrow_body_##SFX##_##TGT(const V* vals,           \
        const I* cols, const I* indptr, ptrdiff_t i0, ptrdiff_t i1, const V* X,        \
        ptrdiff_t K, V* out, const int NC)                                             \
{                                                                                      \
    /* the largest index the type holds when X has more rows (a negative one, cast,  \
       lies above it): (U)(K - 1) alone wrapped for int32 indices at K > 2^32 */       \
    const U imax = (U)(~(U)0 >> 1);                                                    \
    const U last = (uint64_t)(K - 1) > (uint64_t)imax ? imax : (U)(K - 1);             \
    ptrdiff_t n_bad = 0;                                                               \
    for (ptrdiff_t i = i0; i < i1; i++) {                                              \
        V s0[16], s1[16];                                                              \
        _Pragma("GCC unroll 16")                                                       \
        for (int j = 0; j < NC; j++) { s0[j] = 0; s1[j] = 0; }                         \
        const ptrdiff_t e = indptr[i + 1];                                             \
        ptrdiff_t p = indptr[i];                                                       \
        U bad = 0;                                                                     \
        for (; p + 2 <= e; p += 2) {                                                   \
            U c0 = (U)cols[p], c1 = (U)cols[p + 1];                                    \
            bad |= (U)(c0 > last) | (U)(c1 > last);                                    \
            c0 = c0 > last ? last : c0;                                                \
            c1 = c1 > last ? last : c1;                                                \
            const V* x0 = X + (ptrdiff_t)c0 * NC;                                      \
            const V* x1 = X + (ptrdiff_t)c1 * NC;                                      \
            const V w0 = vals[p], w1 = vals[p + 1];                                    \
            _Pragma("GCC unroll 16")                                                   \
            for (int j = 0; j < NC; j++) { s0[j] += w0 * x0[j]; s1[j] += w1 * x1[j]; } \
        }                                                                              \
        if (p < e) {                                                                   \
            U c0 = (U)cols[p];                                                         \
            bad |= (U)(c0 > last);                                                     \
            c0 = c0 > last ? last : c0;                                                \
            const V* x0 = X + (ptrdiff_t)c0 * NC;                                      \
            const V w0 = vals[p];                                                      \
            _Pragma("GCC unroll 16")                                                   \
            for (int j = 0; j < NC; j++) s0[j] += w0 * x0[j];                          \
        }                                                                              \
        _Pragma("GCC unroll 16")                                                       \
        for (int j = 0; j < NC; j++) out[i * NC + j] = s0[j] + s1[j];                  \
        n_bad += bad != 0;                                                             \
    }                                                                                  \
    return n_bad;                                                                      \
}                                                                                      \
/* Rows i0 <= i < i1 of out (n columns, 0 < n <= 15, X and out C-contiguous, K >= 1):  \
   returns the rows holding a column index out of range. */                          \
static ATTR ptrdiff_t wsk_spmm_narrow_##SFX##_##TGT(const V* vals, const I* cols,      \
        const I* indptr, ptrdiff_t i0, ptrdiff_t i1, const V* X, ptrdiff_t K, V* out,  \
        ptrdiff_t n)                                                                   \
{                                                                                      \
    switch (n) {                                                                       \
    case 1: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 1); \
    case 2: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 2); \
    case 3: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 3); \
    case 4: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 4); \
    case 5: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 5); \
    case 6: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 6); \
    case 7: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 7); \
    case 8: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 8); \
    case 9: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 9); \
    case 10: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 10); \
    case 11: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 11); \
    case 12: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 12); \
    case 13: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 13); \
    case 14: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 14); \
    case 15: return wsk_spmm_narrow_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, K, out, 15); \
    default:                                                                           \
        return -1;                                                                     \
    }                                                                                  \
}

#define WSK_DEFINE_NARROW(TGT, ATTR)                                                   \
WSK_DEFINE_NARROW_BODY(float, int32_t, uint32_t, f32_i32, TGT, ATTR)                  \
WSK_DEFINE_NARROW_BODY(float, int64_t, uint64_t, f32_i64, TGT, ATTR)                  \
WSK_DEFINE_NARROW_BODY(double, int32_t, uint32_t, f64_i32, TGT, ATTR)                 \
WSK_DEFINE_NARROW_BODY(double, int64_t, uint64_t, f64_i64, TGT, ATTR)

/* The same sums without the column check or clamp, for a CSR whose column indices were
   checked before the call (wsk_cols_bad_*, one vectorised pass): the check and clamp in
   the row loop made the N = 1 loop ~1.5x slower (8192x64 x 1, 50 % zeros, Zen 4: 195 us
   against 126 with the pass, SciPy 152; cbench/nb5.c in small20's notes). A row's odd last
   nonzero is added under a select, not a branch (its parity is random from row to row:
   the branch mispredicted), reading nonzero 0 when the row has none (nnz > 0, checked by
   the caller); the sums are the checked kernel's, bit for bit. p runs on from row to row
   (indptr checked monotone by the caller). */
#define WSK_DEFINE_NARROW_NC_BODY(V, I, SFX, TGT, ATTR)                                \
WSK_INLINE ATTR void wsk_spmm_narrow_nc_body_##SFX##_##TGT(const V* vals,              \
        const I* cols, const I* indptr, ptrdiff_t i0, ptrdiff_t i1, const V* X,        \
        V* out, const int NC)                                                          \
{                                                                                      \
    ptrdiff_t p = indptr[i0];                                                          \
    for (ptrdiff_t i = i0; i < i1; i++) {                                              \
        V s0[16], s1[16];                                                              \
        _Pragma("GCC unroll 16")                                                       \
        for (int j = 0; j < NC; j++) { s0[j] = 0; s1[j] = 0; }                         \
        const ptrdiff_t e = indptr[i + 1];                                             \
        for (; p + 2 <= e; p += 2) {                                                   \
            const V* x0 = X + (ptrdiff_t)cols[p] * NC;                                 \
            const V* x1 = X + (ptrdiff_t)cols[p + 1] * NC;                             \
            const V w0 = vals[p], w1 = vals[p + 1];                                    \
            _Pragma("GCC unroll 16")                                                   \
            for (int j = 0; j < NC; j++) { s0[j] += w0 * x0[j]; s1[j] += w1 * x1[j]; } \
        }                                                                              \
        const int has = p < e;                                                         \
        const ptrdiff_t q = has ? p : 0;                                               \
        const V* x0 = X + (ptrdiff_t)cols[q] * NC;                                     \
        const V w0 = vals[q];                                                          \
        _Pragma("GCC unroll 16")                                                       \
        for (int j = 0; j < NC; j++) {                                                 \
            const V t = s0[j] + w0 * x0[j];                                            \
            s0[j] = has ? t : s0[j];                                                   \
        }                                                                              \
        p = e;                                                                         \
        _Pragma("GCC unroll 16")                                                       \
        for (int j = 0; j < NC; j++) out[i * NC + j] = s0[j] + s1[j];                  \
    }                                                                                  \
}                                                                                      \
/* Rows i0 <= i < i1 of out (n columns, 0 < n <= 7), every column index in [0, K): 0, or \
   -1 (n out of range, nothing written). */                                          \
static ATTR int wsk_spmm_narrow_nc_##SFX##_##TGT(const V* vals, const I* cols,        \
        const I* indptr, ptrdiff_t i0, ptrdiff_t i1, const V* X, V* out, ptrdiff_t n)  \
{                                                                                      \
    switch (n) {                                                                       \
    case 1: wsk_spmm_narrow_nc_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, out, 1); return 0; \
    case 2: wsk_spmm_narrow_nc_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, out, 2); return 0; \
    case 3: wsk_spmm_narrow_nc_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, out, 3); return 0; \
    case 4: wsk_spmm_narrow_nc_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, out, 4); return 0; \
    case 5: wsk_spmm_narrow_nc_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, out, 5); return 0; \
    case 6: wsk_spmm_narrow_nc_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, out, 6); return 0; \
    case 7: wsk_spmm_narrow_nc_body_##SFX##_##TGT(vals, cols, indptr, i0, i1, X, out, 7); return 0; \
    default: return -1;                                                                \
    }                                                                                  \
}

#define WSK_DEFINE_NARROW_NC(TGT, ATTR)                                                \
WSK_DEFINE_NARROW_NC_BODY(float, int32_t, f32_i32, TGT, ATTR)                         \
WSK_DEFINE_NARROW_NC_BODY(float, int64_t, f32_i64, TGT, ATTR)                         \
WSK_DEFINE_NARROW_NC_BODY(double, int32_t, f64_i32, TGT, ATTR)                        \
WSK_DEFINE_NARROW_NC_BODY(double, int64_t, f64_i64, TGT, ATTR)

/* Whether a column index lies outside [0, last] (0 <= last): the top bit of the OR of
   c | (last - c) in unsigned arithmetic (a negative c sets it, so does last - c for a c
   past last), left to the vectoriser (outside the no-tree-vectorize region below). Two
   comparisons per index took 1.7x the time on SSE2 (262k int32, 36 against 22 us; int64
   3.4x) and 1.05-1.3x on AVX2/AVX-512 (Zen 4, s22 cbench/colsbad.c). */
#define WSK_DEFINE_COLS_BAD(I, U, SFX, TGT, ATTR)                                      \
static ATTR int wsk_cols_bad_##SFX##_##TGT(const I* cols, ptrdiff_t nnz, I last)       \
{                                                                                      \
    U acc = 0;                                                                         \
    for (ptrdiff_t p = 0; p < nnz; p++) acc |= (U)cols[p] | ((U)last - (U)cols[p]);   \
    return (int)(acc >> (8 * sizeof(U) - 1));                                          \
}
/* Whether a CSR's row pointers are bad (indptr[0] != 0, indptr[M] != nnz, or one
   decreasing): the same branch-free form, vectorised per target (the scalar loop in
   _spmm.pyx cost ~1/3 of the kernel at 8192x64 x 1, 99 % zeros, Zen 4). */
#define WSK_DEFINE_INDPTR_BAD(I, SFX, TGT, ATTR)                                       \
static ATTR int wsk_indptr_bad_##SFX##_##TGT(const I* ip, ptrdiff_t M, ptrdiff_t nnz)  \
{                                                                                      \
    int bad = (ip[0] != 0) | ((ptrdiff_t)ip[M] != nnz);                                \
    for (ptrdiff_t i = 0; i < M; i++) bad |= ip[i + 1] < ip[i];                        \
    return bad;                                                                        \
}
/* How many of x[0..n) are not 0 (NaN counts), vectorised per target, by blocks of 512
   and stopping after the first block that brings the count to `enough`: X's count only
   decides the sparse-X route (nonzeros below a threshold), and a dense X meets it early
   (a whole scalar pass over 64x8192 x 1 fp64 cost ~1/4 of the call; baseline is not
   vectorised by GCC 12 for fp64). The count, or a number >= enough. */
#define WSK_DEFINE_COUNT_NZ(V, SFX, TGT, ATTR)                                         \
static ATTR ptrdiff_t wsk_count_nz_##SFX##_##TGT(const V* x, ptrdiff_t n,               \
                                                  ptrdiff_t enough)                     \
{                                                                                      \
    ptrdiff_t nz = 0;                                                                  \
    for (ptrdiff_t q0 = 0; q0 < n; q0 += 512) {                                        \
        const ptrdiff_t q1 = n - q0 > 512 ? q0 + 512 : n;                              \
        for (ptrdiff_t q = q0; q < q1; q++) nz += x[q] != 0;                           \
        if (nz >= enough) break;                                                       \
    }                                                                                  \
    return nz;                                                                         \
}
#define WSK_DEFINE_COLS(TGT, ATTR)                                                     \
WSK_DEFINE_COLS_BAD(int32_t, uint32_t, i32, TGT, ATTR)                                 \
WSK_DEFINE_COLS_BAD(int64_t, uint64_t, i64, TGT, ATTR)                                 \
WSK_DEFINE_INDPTR_BAD(int32_t, i32, TGT, ATTR)                                         \
WSK_DEFINE_INDPTR_BAD(int64_t, i64, TGT, ATTR)                                         \
WSK_DEFINE_COUNT_NZ(float, f32, TGT, ATTR)                                             \
WSK_DEFINE_COUNT_NZ(double, f64, TGT, ATTR)

WSK_DEFINE_COLS(base, WSK_NOATTR)
#if WSK_X86_DISPATCH
WSK_DEFINE_COLS(avx2, WSK_TARGET_V3)
WSK_DEFINE_COLS(avx512, WSK_TARGET_V4)
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-tree-vectorize")
#endif
WSK_DEFINE_NARROW(base, WSK_NOATTR)
WSK_DEFINE_NARROW_NC(base, WSK_NOATTR)
#if WSK_X86_DISPATCH
WSK_DEFINE_NARROW(avx2, WSK_TARGET_V3)
WSK_DEFINE_NARROW(avx512, WSK_TARGET_V4)
WSK_DEFINE_NARROW_NC(avx2, WSK_TARGET_V3)
WSK_DEFINE_NARROW_NC(avx512, WSK_TARGET_V4)
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

typedef ptrdiff_t (*wsk_narrow_f32_i32_t)(const float*, const int32_t*, const int32_t*,
                                          ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t,
                                          float*, ptrdiff_t);
typedef ptrdiff_t (*wsk_narrow_f32_i64_t)(const float*, const int64_t*, const int64_t*,
                                          ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t,
                                          float*, ptrdiff_t);
typedef ptrdiff_t (*wsk_narrow_f64_i32_t)(const double*, const int32_t*, const int32_t*,
                                          ptrdiff_t, ptrdiff_t, const double*, ptrdiff_t,
                                          double*, ptrdiff_t);
typedef ptrdiff_t (*wsk_narrow_f64_i64_t)(const double*, const int64_t*, const int64_t*,
                                          ptrdiff_t, ptrdiff_t, const double*, ptrdiff_t,
                                          double*, ptrdiff_t);
static wsk_narrow_f32_i32_t wsk_spmm_narrow_f32_i32 = wsk_spmm_narrow_f32_i32_base;
static wsk_narrow_f32_i64_t wsk_spmm_narrow_f32_i64 = wsk_spmm_narrow_f32_i64_base;
static wsk_narrow_f64_i32_t wsk_spmm_narrow_f64_i32 = wsk_spmm_narrow_f64_i32_base;
static wsk_narrow_f64_i64_t wsk_spmm_narrow_f64_i64 = wsk_spmm_narrow_f64_i64_base;
typedef int (*wsk_narrow_nc_f32_i32_t)(const float*, const int32_t*, const int32_t*,
                                        ptrdiff_t, ptrdiff_t, const float*, float*, ptrdiff_t);
typedef int (*wsk_narrow_nc_f32_i64_t)(const float*, const int64_t*, const int64_t*,
                                        ptrdiff_t, ptrdiff_t, const float*, float*, ptrdiff_t);
typedef int (*wsk_narrow_nc_f64_i32_t)(const double*, const int32_t*, const int32_t*,
                                        ptrdiff_t, ptrdiff_t, const double*, double*,
                                        ptrdiff_t);
typedef int (*wsk_narrow_nc_f64_i64_t)(const double*, const int64_t*, const int64_t*,
                                        ptrdiff_t, ptrdiff_t, const double*, double*,
                                        ptrdiff_t);
typedef int (*wsk_cols_bad_i32_t)(const int32_t*, ptrdiff_t, int32_t);
typedef int (*wsk_cols_bad_i64_t)(const int64_t*, ptrdiff_t, int64_t);
static wsk_narrow_nc_f32_i32_t wsk_spmm_narrow_nc_f32_i32 = wsk_spmm_narrow_nc_f32_i32_base;
static wsk_narrow_nc_f32_i64_t wsk_spmm_narrow_nc_f32_i64 = wsk_spmm_narrow_nc_f32_i64_base;
static wsk_narrow_nc_f64_i32_t wsk_spmm_narrow_nc_f64_i32 = wsk_spmm_narrow_nc_f64_i32_base;
static wsk_narrow_nc_f64_i64_t wsk_spmm_narrow_nc_f64_i64 = wsk_spmm_narrow_nc_f64_i64_base;
static wsk_cols_bad_i32_t wsk_cols_bad_i32 = wsk_cols_bad_i32_base;
static wsk_cols_bad_i64_t wsk_cols_bad_i64 = wsk_cols_bad_i64_base;
typedef int (*wsk_indptr_bad_i32_t)(const int32_t*, ptrdiff_t, ptrdiff_t);
typedef int (*wsk_indptr_bad_i64_t)(const int64_t*, ptrdiff_t, ptrdiff_t);
typedef ptrdiff_t (*wsk_count_nz_f32_t)(const float*, ptrdiff_t, ptrdiff_t);
typedef ptrdiff_t (*wsk_count_nz_f64_t)(const double*, ptrdiff_t, ptrdiff_t);
static wsk_indptr_bad_i32_t wsk_indptr_bad_i32 = wsk_indptr_bad_i32_base;
static wsk_indptr_bad_i64_t wsk_indptr_bad_i64 = wsk_indptr_bad_i64_base;
static wsk_count_nz_f32_t wsk_count_nz_f32 = wsk_count_nz_f32_base;
static wsk_count_nz_f64_t wsk_count_nz_f64 = wsk_count_nz_f64_base;
/* Vector bytes of the path selected: X is narrow below this many bytes a row. */
static int wsk_narrow_vbytes = 16;

/* Follow wsk_simd_init's choice (call after it). */
static void wsk_narrow_init(void)
{
    wsk_spmm_narrow_f32_i32 = wsk_spmm_narrow_f32_i32_base;
    wsk_spmm_narrow_f32_i64 = wsk_spmm_narrow_f32_i64_base;
    wsk_spmm_narrow_f64_i32 = wsk_spmm_narrow_f64_i32_base;
    wsk_spmm_narrow_f64_i64 = wsk_spmm_narrow_f64_i64_base;
    wsk_spmm_narrow_nc_f32_i32 = wsk_spmm_narrow_nc_f32_i32_base;
    wsk_spmm_narrow_nc_f32_i64 = wsk_spmm_narrow_nc_f32_i64_base;
    wsk_spmm_narrow_nc_f64_i32 = wsk_spmm_narrow_nc_f64_i32_base;
    wsk_spmm_narrow_nc_f64_i64 = wsk_spmm_narrow_nc_f64_i64_base;
    wsk_cols_bad_i32 = wsk_cols_bad_i32_base;
    wsk_cols_bad_i64 = wsk_cols_bad_i64_base;
    wsk_indptr_bad_i32 = wsk_indptr_bad_i32_base;
    wsk_indptr_bad_i64 = wsk_indptr_bad_i64_base;
    wsk_count_nz_f32 = wsk_count_nz_f32_base;
    wsk_count_nz_f64 = wsk_count_nz_f64_base;
    wsk_narrow_vbytes = 16;
#if WSK_X86_DISPATCH
    if (strcmp(wsk_simd_path_name, "avx2") == 0) {
        wsk_spmm_narrow_f32_i32 = wsk_spmm_narrow_f32_i32_avx2;
        wsk_spmm_narrow_f32_i64 = wsk_spmm_narrow_f32_i64_avx2;
        wsk_spmm_narrow_f64_i32 = wsk_spmm_narrow_f64_i32_avx2;
        wsk_spmm_narrow_f64_i64 = wsk_spmm_narrow_f64_i64_avx2;
        wsk_spmm_narrow_nc_f32_i32 = wsk_spmm_narrow_nc_f32_i32_avx2;
        wsk_spmm_narrow_nc_f32_i64 = wsk_spmm_narrow_nc_f32_i64_avx2;
        wsk_spmm_narrow_nc_f64_i32 = wsk_spmm_narrow_nc_f64_i32_avx2;
        wsk_spmm_narrow_nc_f64_i64 = wsk_spmm_narrow_nc_f64_i64_avx2;
        wsk_cols_bad_i32 = wsk_cols_bad_i32_avx2;
        wsk_cols_bad_i64 = wsk_cols_bad_i64_avx2;
        wsk_indptr_bad_i32 = wsk_indptr_bad_i32_avx2;
        wsk_indptr_bad_i64 = wsk_indptr_bad_i64_avx2;
        wsk_count_nz_f32 = wsk_count_nz_f32_avx2;
        wsk_count_nz_f64 = wsk_count_nz_f64_avx2;
        wsk_narrow_vbytes = 32;
    } else if (strcmp(wsk_simd_path_name, "avx512") == 0) {
        wsk_spmm_narrow_f32_i32 = wsk_spmm_narrow_f32_i32_avx512;
        wsk_spmm_narrow_f32_i64 = wsk_spmm_narrow_f32_i64_avx512;
        wsk_spmm_narrow_f64_i32 = wsk_spmm_narrow_f64_i32_avx512;
        wsk_spmm_narrow_f64_i64 = wsk_spmm_narrow_f64_i64_avx512;
        wsk_spmm_narrow_nc_f32_i32 = wsk_spmm_narrow_nc_f32_i32_avx512;
        wsk_spmm_narrow_nc_f32_i64 = wsk_spmm_narrow_nc_f32_i64_avx512;
        wsk_spmm_narrow_nc_f64_i32 = wsk_spmm_narrow_nc_f64_i32_avx512;
        wsk_spmm_narrow_nc_f64_i64 = wsk_spmm_narrow_nc_f64_i64_avx512;
        wsk_cols_bad_i32 = wsk_cols_bad_i32_avx512;
        wsk_cols_bad_i64 = wsk_cols_bad_i64_avx512;
        wsk_indptr_bad_i32 = wsk_indptr_bad_i32_avx512;
        wsk_indptr_bad_i64 = wsk_indptr_bad_i64_avx512;
        wsk_count_nz_f32 = wsk_count_nz_f32_avx512;
        wsk_count_nz_f64 = wsk_count_nz_f64_avx512;
        wsk_narrow_vbytes = 64;
    }
#endif
}

#endif /* WSK_NARROW_H */
