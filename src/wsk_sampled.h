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

#if defined(__GNUC__) || defined(__clang__)
#define WSKS_VECTOR 1
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(WSK_NO_DISPATCH)
#define WSKS_X86 1
#else
#define WSKS_X86 0
#endif
#else
#define WSKS_VECTOR 0
#define WSKS_X86 0
#endif

#if WSKS_VECTOR
/* G dots (G <= 4) sharing a, each on two accumulators of LANES lanes. */
#define WSKS_DEFINE(V, VBYTES, I, SFX, TGT, ATTR)                                        \
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

#define WSKS_DEFINE_TARGET(TGT, ATTR, VBYTES)                                            \
    WSKS_DEFINE(float, VBYTES, int32_t, f32_i32, TGT, ATTR)                             \
    WSKS_DEFINE(float, VBYTES, int64_t, f32_i64, TGT, ATTR)                             \
    WSKS_DEFINE(double, VBYTES, int32_t, f64_i32, TGT, ATTR)                            \
    WSKS_DEFINE(double, VBYTES, int64_t, f64_i64, TGT, ATTR)

#define WSKS_NOATTR
WSKS_DEFINE_TARGET(base, WSKS_NOATTR, 16)
#if WSKS_X86
WSKS_DEFINE_TARGET(avx2, __attribute__((target("arch=x86-64-v3"))), 32)
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
        return;
    }
#endif
    (void)avx2;
    wsk_sampled_dots_f32_i32 = wsk_sampled_dots_f32_i32_base;
    wsk_sampled_dots_f32_i64 = wsk_sampled_dots_f32_i64_base;
    wsk_sampled_dots_f64_i32 = wsk_sampled_dots_f64_i32_base;
    wsk_sampled_dots_f64_i64 = wsk_sampled_dots_f64_i64_base;
}

#endif
