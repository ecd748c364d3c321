/* Sampled dot products for the weight gradient of a sparse layer (header-only).
 *
 *   wsk_sampled_dots: out[p] = a . B[cols[p] * ldb + 0:D] for p < nnz
 *
 * One row of W's pattern at a time: a (a row of X^T) is shared by all its dots, so four
 * dots run together (each on two accumulators: eight independent FMA chains, 1.25 loads
 * per FMA instead of 2), and the rows of B the next four dots read are prefetched, as
 * they sit at random places of a B that need not fit in L2. Written once with GCC vector
 * types and compiled per target (baseline SSE2 and, on x86-64, x86-64-v3 = AVX2 + FMA);
 * wsk_sampled_init(1) selects the AVX2 clone. Other compilers get the plain loop.
 */
#ifndef WSK_SAMPLED_H
#define WSK_SAMPLED_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wsk_vec.h"

#if WSKS_VECTOR
/* G dots (G <= 4) sharing a, each on two accumulators of LANES lanes. */
#define WSK_SAMPLED_DEFINE(V, VBYTES, I, SFX, TGT, ATTR)                                \
typedef V wsks_##SFX##_##TGT##_vt __attribute__((vector_size(VBYTES)));               \
static ATTR __attribute__((always_inline)) inline void                                 \
wsks_group_##SFX##_##TGT(const V* a, const V* const* b, const V* const* next, int G,   \
                         V* out, ptrdiff_t D)                                          \
{                                                                                      \
    typedef wsks_##SFX##_##TGT##_vt VT;                                                \
    enum { LANES = VBYTES / sizeof(V) };                                               \
    VT s[4][2];                                                                        \
    memset(s, 0, sizeof(s));                                                           \
    ptrdiff_t d = 0;                                                                   \
    for (; d + 2 * LANES <= D; d += 2 * LANES) {                                       \
        VT a0, a1;                                                                     \
        memcpy(&a0, a + d, sizeof(VT));                                                \
        memcpy(&a1, a + d + LANES, sizeof(VT));                                        \
        for (int j = 0; j < G; j++) {                                                  \
            VT b0, b1;                                                                 \
            memcpy(&b0, b[j] + d, sizeof(VT));                                         \
            memcpy(&b1, b[j] + d + LANES, sizeof(VT));                                 \
            s[j][0] += a0 * b0;                                                        \
            s[j][1] += a1 * b1;                                                        \
            if (next[j]) __builtin_prefetch(next[j] + d, 0, 3);                        \
        }                                                                              \
    }                                                                                  \
    for (; d + LANES <= D; d += LANES) {                                               \
        VT a0;                                                                         \
        memcpy(&a0, a + d, sizeof(VT));                                                \
        for (int j = 0; j < G; j++) {                                                  \
            VT b0;                                                                     \
            memcpy(&b0, b[j] + d, sizeof(VT));                                         \
            s[j][0] += a0 * b0;                                                        \
        }                                                                              \
    }                                                                                  \
    for (int j = 0; j < G; j++) {                                                      \
        VT t = s[j][0] + s[j][1];                                                      \
        V r = 0;                                                                       \
        for (int l = 0; l < LANES; l++) r += t[l];                                     \
        for (ptrdiff_t e = d; e < D; e++) r += a[e] * b[j][e];                         \
        out[j] = r;                                                                    \
    }                                                                                  \
}                                                                                      \
static ATTR void wsk_sampled_dots_##SFX##_##TGT(const V* a, const V* B, ptrdiff_t ldb,  \
        const I* cols, ptrdiff_t nnz, V* out, ptrdiff_t D)                             \
{                                                                                      \
    const V* b[4];                                                                     \
    const V* next[4];                                                                  \
    ptrdiff_t p = 0;                                                                   \
    for (; p + 4 <= nnz; p += 4) {                                                     \
        for (int j = 0; j < 4; j++) {                                                  \
            b[j] = B + (ptrdiff_t)cols[p + j] * ldb;                                   \
            next[j] = p + 4 + j < nnz ? B + (ptrdiff_t)cols[p + 4 + j] * ldb : NULL;   \
        }                                                                              \
        wsks_group_##SFX##_##TGT(a, b, next, 4, out + p, D);                           \
    }                                                                                  \
    for (; p < nnz; p++) {                                                             \
        b[0] = B + (ptrdiff_t)cols[p] * ldb;                                           \
        next[0] = NULL;                                                                \
        wsks_group_##SFX##_##TGT(a, b, next, 1, out + p, D);                           \
    }                                                                                  \
}

#define WSK_SAMPLED_DEFINE_TARGET(TGT, ATTR, VBYTES)                                     \
    WSK_SAMPLED_DEFINE(float, VBYTES, int32_t, f32_i32, TGT, ATTR)                      \
    WSK_SAMPLED_DEFINE(float, VBYTES, int64_t, f32_i64, TGT, ATTR)                      \
    WSK_SAMPLED_DEFINE(double, VBYTES, int32_t, f64_i32, TGT, ATTR)                     \
    WSK_SAMPLED_DEFINE(double, VBYTES, int64_t, f64_i64, TGT, ATTR)

WSK_SAMPLED_DEFINE_TARGET(base, WSKS_NOATTR, 16)
#if WSKS_X86
WSK_SAMPLED_DEFINE_TARGET(avx2, WSKS_ATTR_AVX2, 32)
#endif

#else  /* no vector extensions: the plain loop */
#define WSKS_DEFINE_PLAIN(V, I, SFX)                                                    \
static void wsk_sampled_dots_##SFX##_base(const V* a, const V* B, ptrdiff_t ldb,        \
        const I* cols, ptrdiff_t nnz, V* out, ptrdiff_t D)                             \
{                                                                                      \
    for (ptrdiff_t p = 0; p < nnz; p++) {                                              \
        const V* b = B + (ptrdiff_t)cols[p] * ldb;                                     \
        V r = 0;                                                                       \
        for (ptrdiff_t e = 0; e < D; e++) r += a[e] * b[e];                            \
        out[p] = r;                                                                    \
    }                                                                                  \
}
WSKS_DEFINE_PLAIN(float, int32_t, f32_i32)
WSKS_DEFINE_PLAIN(float, int64_t, f32_i64)
WSKS_DEFINE_PLAIN(double, int32_t, f64_i32)
WSKS_DEFINE_PLAIN(double, int64_t, f64_i64)
#endif

/* float32 dots eight at a time, for the weight gradient's SDDMM:
 *
 *   wsk_sampled_dots8_f32: out[p] (+)= a . B[cols[p] * ldb + 0:D] for p < nnz
 *
 * (+= with acc != 0: the caller splits D into blocks whose rows of B stay in L2.) Eight dots
 * each keep one accumulator (eight independent FMA chains, 9 loads per 8 FMAs), and the
 * eight are reduced together (hadd tree + one 128-bit fold, 8 results in one store): a
 * lane-by-lane sum per dot cost more than the FMAs at a batch of 32. */
#define WSKS_DEFINE_DOTS8_BASE(I, SFX)                                                   \
static void wsk_sampled_dots8_##SFX##_base(const float* a, const float* B, ptrdiff_t ldb, \
        const I* cols, ptrdiff_t nnz, float* out, ptrdiff_t D, int acc)                \
{                                                                                      \
    for (ptrdiff_t p = 0; p < nnz; p++) {                                              \
        const float* b = B + (ptrdiff_t)cols[p] * ldb;                                 \
        float r = 0;                                                                   \
        for (ptrdiff_t e = 0; e < D; e++) r += a[e] * b[e];                            \
        out[p] = acc ? out[p] + r : r;                                                 \
    }                                                                                  \
}
WSKS_DEFINE_DOTS8_BASE(int32_t, i32)
WSKS_DEFINE_DOTS8_BASE(int64_t, i64)

#if WSKS_X86
#include <immintrin.h>
#define WSKS_AVX2 __attribute__((target("avx2,fma")))

/* the eight lane-sums of s[0..7], in order */
static WSKS_AVX2 inline __m256 wsks_reduce8(__m256 s0, __m256 s1, __m256 s2, __m256 s3,
                                            __m256 s4, __m256 s5, __m256 s6, __m256 s7)
{
    __m256 h01 = _mm256_hadd_ps(s0, s1), h23 = _mm256_hadd_ps(s2, s3);
    __m256 h45 = _mm256_hadd_ps(s4, s5), h67 = _mm256_hadd_ps(s6, s7);
    __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);
    /* q0 = [d0 d1 d2 d3 | d0 d1 d2 d3] halves, q1 likewise for d4..d7 */
    __m256 lo = _mm256_permute2f128_ps(q0, q1, 0x20), hi = _mm256_permute2f128_ps(q0, q1, 0x31);
    return _mm256_add_ps(lo, hi);
}

#define WSKS_FMA8(d)                                                                     \
    {                                                                                  \
        __m256 av = _mm256_loadu_ps(a + (d));                                          \
        s0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[0] + (d)), s0);                     \
        s1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[1] + (d)), s1);                     \
        s2 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[2] + (d)), s2);                     \
        s3 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[3] + (d)), s3);                     \
        s4 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[4] + (d)), s4);                     \
        s5 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[5] + (d)), s5);                     \
        s6 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[6] + (d)), s6);                     \
        s7 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[7] + (d)), s7);                     \
    }
#define WSKS_DEFINE_DOTS8(I, SFX)                                                        \
static WSKS_AVX2 void wsk_sampled_dots8_##SFX##_avx2(const float* a, const float* B,    \
        ptrdiff_t ldb, const I* cols, ptrdiff_t nnz, float* out, ptrdiff_t D, int acc)  \
{                                                                                      \
    ptrdiff_t D8 = D - D % 8;                                                          \
    for (ptrdiff_t p = 0; p < nnz; p += 8) {                                           \
        /* a last group of g < 8 dots repeats its first row: 8 chains all the same */  \
        int g = nnz - p < 8 ? (int)(nnz - p) : 8;                                      \
        const float* b[8];                                                             \
        for (int j = 0; j < 8; j++) b[j] = B + (ptrdiff_t)cols[p + (j < g ? j : 0)] * ldb; \
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                   \
        __m256 s4 = s0, s5 = s0, s6 = s0, s7 = s0;                                    \
        ptrdiff_t d = 0;                                                               \
        for (; d + 16 <= D8; d += 16) {                                                \
            WSKS_FMA8(d)                                                               \
            WSKS_FMA8(d + 8)                                                           \
        }                                                                              \
        if (d < D8) {                                                                  \
            WSKS_FMA8(d)                                                               \
        }                                                                              \
        float t[8];                                                                    \
        _mm256_storeu_ps(t, wsks_reduce8(s0, s1, s2, s3, s4, s5, s6, s7));             \
        for (int j = 0; j < g; j++) {                                                  \
            float e = t[j];                                                            \
            for (ptrdiff_t d = D8; d < D; d++) e += a[d] * b[j][d];                    \
            out[p + j] = acc ? out[p + j] + e : e;                                     \
        }                                                                              \
    }                                                                                  \
}
WSKS_DEFINE_DOTS8(int32_t, i32)
WSKS_DEFINE_DOTS8(int64_t, i64)
#endif

typedef void (*wsk_sampled_dots8_i32_t)(const float*, const float*, ptrdiff_t,
                                        const int32_t*, ptrdiff_t, float*, ptrdiff_t, int);
typedef void (*wsk_sampled_dots8_i64_t)(const float*, const float*, ptrdiff_t,
                                        const int64_t*, ptrdiff_t, float*, ptrdiff_t, int);
static wsk_sampled_dots8_i32_t wsk_sampled_dots8_i32 = wsk_sampled_dots8_i32_base;
static wsk_sampled_dots8_i64_t wsk_sampled_dots8_i64 = wsk_sampled_dots8_i64_base;

typedef void (*wsk_sampled_f32_i32_t)(const float*, const float*, ptrdiff_t, const int32_t*,
                                      ptrdiff_t, float*, ptrdiff_t);
typedef void (*wsk_sampled_f32_i64_t)(const float*, const float*, ptrdiff_t, const int64_t*,
                                      ptrdiff_t, float*, ptrdiff_t);
typedef void (*wsk_sampled_f64_i32_t)(const double*, const double*, ptrdiff_t,
                                      const int32_t*, ptrdiff_t, double*, ptrdiff_t);
typedef void (*wsk_sampled_f64_i64_t)(const double*, const double*, ptrdiff_t,
                                      const int64_t*, ptrdiff_t, double*, ptrdiff_t);
static wsk_sampled_f32_i32_t wsk_sampled_dots_f32_i32 = wsk_sampled_dots_f32_i32_base;
static wsk_sampled_f32_i64_t wsk_sampled_dots_f32_i64 = wsk_sampled_dots_f32_i64_base;
static wsk_sampled_f64_i32_t wsk_sampled_dots_f64_i32 = wsk_sampled_dots_f64_i32_base;
static wsk_sampled_f64_i64_t wsk_sampled_dots_f64_i64 = wsk_sampled_dots_f64_i64_base;

/* avx2 != 0 selects the AVX2 clone (the caller checked the CPU runs it). */
static void wsk_sampled_init(int avx2)
{
#if WSKS_VECTOR && WSKS_X86
    if (avx2) {
        wsk_sampled_dots_f32_i32 = wsk_sampled_dots_f32_i32_avx2;
        wsk_sampled_dots_f32_i64 = wsk_sampled_dots_f32_i64_avx2;
        wsk_sampled_dots_f64_i32 = wsk_sampled_dots_f64_i32_avx2;
        wsk_sampled_dots_f64_i64 = wsk_sampled_dots_f64_i64_avx2;
        wsk_sampled_dots8_i32 = wsk_sampled_dots8_i32_avx2;
        wsk_sampled_dots8_i64 = wsk_sampled_dots8_i64_avx2;
        return;
    }
#endif
    (void)avx2;
    wsk_sampled_dots_f32_i32 = wsk_sampled_dots_f32_i32_base;
    wsk_sampled_dots_f32_i64 = wsk_sampled_dots_f32_i64_base;
    wsk_sampled_dots_f64_i32 = wsk_sampled_dots_f64_i32_base;
    wsk_sampled_dots_f64_i64 = wsk_sampled_dots_f64_i64_base;
    wsk_sampled_dots8_i32 = wsk_sampled_dots8_i32_base;
    wsk_sampled_dots8_i64 = wsk_sampled_dots8_i64_base;
}

#endif
