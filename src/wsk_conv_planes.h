/* A pruned convolution's kernels on channel planes (header-only; src/_conv.pyx planes_rows
 * and planes_grad_weight, wsekern/conv_planes.py).
 *
 *   wsk_planes_row: y[0:n] = sum_p val[p] * X[off[p] + 0:n] (a filter's wide output plane
 *                  in the forward, an input channel's plane in the input gradient): the
 *                  row's vectors in registers, 2 * KMAX at a time, while the kept weights
 *                  stream past (one broadcast, loads and FMAs each; the shared spmm row
 *                  kernel ran 1.1-1.2x slower on these rows of ~150 elements)
 *
 *   wsk_planes_gw: out[p] += sum over images b of G[b, o, 0:n] . X[b].flat[xoff[p] + 0:n]
 *                  for the kept weights p of each filter o (optr: CSR over filters)
 *
 * Each kept weight keeps a vector of lane sums (scratch, L lanes a weight) across all the
 * images and is reduced to one number once at the end, so no dot pays a horizontal sum;
 * a filter's output-gradient plane is held in registers, a chunk of K vectors at a time,
 * while its kept weights stream the shifted input rows past it, eight weights at once
 * (eight independent FMA chains). n must be whole vectors of every path (the planes are
 * padded to 16 elements) and every read inside the planes: the caller checked.
 * Written once with GCC vector types and compiled per target; wsk_planes_init(path)
 * selects the clone (path as wsk_simd_init's: 1 baseline, 2 avx2, 4 avx512).
 */
#ifndef WSK_CONV_PLANES_H
#define WSK_CONV_PLANES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64)) \
    && !defined(WSK_NO_DISPATCH)
#define WSKP_X86 1
#else
#define WSKP_X86 0
#endif

#if !(defined(__GNUC__) || defined(__clang__))
#error "wsk_conv_planes.h needs GCC vector extensions"
#endif

#define WSKP_INLINE static inline __attribute__((always_inline))
#define WSKP_GROUP 8            /* weights a pass: eight FMA chains hide the latency */

/* the switch cases of chunk sizes 1 .. 24, each a literal size (registers, no spill) */
#define WSKP_CASES_1_12(M, SFX, TGT, KMAX)                                              \
    M(SFX, TGT, KMAX, 1) M(SFX, TGT, KMAX, 2) M(SFX, TGT, KMAX, 3) M(SFX, TGT, KMAX, 4)  \
    M(SFX, TGT, KMAX, 5) M(SFX, TGT, KMAX, 6) M(SFX, TGT, KMAX, 7) M(SFX, TGT, KMAX, 8)  \
    M(SFX, TGT, KMAX, 9) M(SFX, TGT, KMAX, 10) M(SFX, TGT, KMAX, 11)                    \
    M(SFX, TGT, KMAX, 12)
#define WSKP_CASES_13_24(M, SFX, TGT, KMAX)                                             \
    M(SFX, TGT, KMAX, 13) M(SFX, TGT, KMAX, 14) M(SFX, TGT, KMAX, 15)                   \
    M(SFX, TGT, KMAX, 16) M(SFX, TGT, KMAX, 17) M(SFX, TGT, KMAX, 18)                   \
    M(SFX, TGT, KMAX, 19) M(SFX, TGT, KMAX, 20) M(SFX, TGT, KMAX, 21)                   \
    M(SFX, TGT, KMAX, 22) M(SFX, TGT, KMAX, 23) M(SFX, TGT, KMAX, 24)

/* One chunk of KK vectors of filter o's gradient plane against its kept weights. */
#define WSKP_DEFINE(V, VBYTES, SFX, TGT, ATTR, KMAX)                                     \
typedef V wskp_##SFX##_##TGT##_vt __attribute__((vector_size(VBYTES)));                \
WSKP_INLINE ATTR void wskp_chunk_##SFX##_##TGT(const V* g, const V* X,                  \
        const int32_t* off, ptrdiff_t nnz, V* lanes, const int KK)                     \
{                                                                                      \
    typedef wskp_##SFX##_##TGT##_vt VT;                                                \
    enum { L = VBYTES / sizeof(V) };                                                   \
    VT gv[KMAX];                                                                       \
    _Pragma("GCC unroll 16")                                                           \
    for (int k = 0; k < KK; k++) memcpy(&gv[k], g + k * L, sizeof(VT));                \
    ptrdiff_t p = 0;                                                                   \
    for (; p + WSKP_GROUP <= nnz; p += WSKP_GROUP) {                                   \
        VT acc[WSKP_GROUP];                                                            \
        const V* x[WSKP_GROUP];                                                        \
        _Pragma("GCC unroll 8")                                                        \
        for (int j = 0; j < WSKP_GROUP; j++) {                                         \
            memcpy(&acc[j], lanes + (p + j) * L, sizeof(VT));                          \
            x[j] = X + off[p + j];                                                     \
        }                                                                              \
        _Pragma("GCC unroll 16")                                                       \
        for (int k = 0; k < KK; k++) {                                                 \
            _Pragma("GCC unroll 8")                                                    \
            for (int j = 0; j < WSKP_GROUP; j++) {                                     \
                VT xv;                                                                 \
                memcpy(&xv, x[j] + k * L, sizeof(VT));                                 \
                acc[j] += xv * gv[k];                                                  \
            }                                                                          \
        }                                                                              \
        _Pragma("GCC unroll 8")                                                        \
        for (int j = 0; j < WSKP_GROUP; j++)                                           \
            memcpy(lanes + (p + j) * L, &acc[j], sizeof(VT));                          \
    }                                                                                  \
    for (; p < nnz; p++) {                  /* the last few: one chain each */         \
        VT acc;                                                                        \
        memcpy(&acc, lanes + p * L, sizeof(VT));                                       \
        const V* x = X + off[p];                                                       \
        _Pragma("GCC unroll 16")                                                       \
        for (int k = 0; k < KK; k++) {                                                 \
            VT xv;                                                                     \
            memcpy(&xv, x + k * L, sizeof(VT));                                        \
            acc += xv * gv[k];                                                         \
        }                                                                              \
        memcpy(lanes + p * L, &acc, sizeof(VT));                                       \
    }                                                                                  \
}                                                                                      \
WSKP_INLINE ATTR void wskp_rchunk_##SFX##_##TGT(const V* val, const int32_t* off,      \
        ptrdiff_t nnz, const V* X, V* y, const int KK)                                 \
{                                                                                      \
    typedef wskp_##SFX##_##TGT##_vt VT;                                                \
    enum { L = VBYTES / sizeof(V) };                                                   \
    VT acc[2 * KMAX];                                                                  \
    _Pragma("GCC unroll 32")                                                           \
    for (int k = 0; k < KK; k++) acc[k] = (VT){0};                                    \
    for (ptrdiff_t p = 0; p < nnz; p++) {                                              \
        const V w = val[p];                                                            \
        const V* x = X + off[p];                                                       \
        _Pragma("GCC unroll 32")                                                       \
        for (int k = 0; k < KK; k++) {                                                 \
            VT xv;                                                                     \
            memcpy(&xv, x + k * L, sizeof(VT));                                        \
            acc[k] += w * xv;                                                          \
        }                                                                              \
    }                                                                                  \
    _Pragma("GCC unroll 32")                                                           \
    for (int k = 0; k < KK; k++) memcpy(y + k * L, &acc[k], sizeof(VT));               \
}                                                                                      \
/* y[0:n] = sum_p val[p] * X[off[p] + 0:n]: the row's vectors in registers, 2 * KMAX   \
   at a time, while its kept weights stream past (one broadcast, loads and FMAs) */    \
static ATTR void wsk_planes_row_##SFX##_##TGT(const V* val, const int32_t* off,         \
        ptrdiff_t nnz, const V* X, V* y, ptrdiff_t n)                                  \
{                                                                                      \
    enum { L = VBYTES / sizeof(V) };                                                   \
    const ptrdiff_t nv = n / L, chunks = (nv + 2 * KMAX - 1) / (2 * KMAX);             \
    const ptrdiff_t K = chunks ? (nv + chunks - 1) / chunks : 0;                       \
    for (ptrdiff_t k0 = 0; k0 < nv; k0 += K) {                                         \
        const int kk = (int)(nv - k0 < K ? nv - k0 : K);                               \
        const V* Xk = X + k0 * L;                                                      \
        V* yk = y + k0 * L;                                                            \
        switch (kk) {                                                                  \
        WSKP_CASES_1_12(WSKP_RCASE, SFX, TGT, KMAX)                                    \
        WSKP_CASES_13_24(WSKP_RCASE, SFX, TGT, KMAX)                                   \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
static ATTR void wsk_planes_gw_##SFX##_##TGT(const V* X, ptrdiff_t x_image,             \
        const V* G, ptrdiff_t g_image, ptrdiff_t g_stride, ptrdiff_t start,            \
        ptrdiff_t images, const int32_t* xoff, const int32_t* optr, ptrdiff_t O,        \
        ptrdiff_t n, V* lanes, V* out)                                                 \
{                                                                                      \
    enum { L = VBYTES / sizeof(V) };                                                   \
    const ptrdiff_t nnz = optr[O], nv = n / L;                                         \
    const ptrdiff_t chunks = (nv + KMAX - 1) / KMAX;                                   \
    const ptrdiff_t K = chunks ? (nv + chunks - 1) / chunks : 0;                       \
    memset(lanes, 0, (size_t)nnz * L * sizeof(V));                                     \
    for (ptrdiff_t b = 0; b < images; b++) {                                           \
        const V* Xb = X + b * x_image;                                                 \
        const V* Gb = G + b * g_image + start;                                         \
        for (ptrdiff_t k0 = 0; k0 < nv; k0 += K) {                                     \
            const int kk = (int)(nv - k0 < K ? nv - k0 : K);                           \
            for (ptrdiff_t o = 0; o < O; o++) {                                        \
                const ptrdiff_t lo = optr[o], m = optr[o + 1] - lo;                    \
                if (m == 0) continue;                                                  \
                const V* g = Gb + o * g_stride + k0 * L;                               \
                const V* Xk = Xb + k0 * L;                                             \
                switch (kk) {      /* literal sizes: the chunk lives in registers */   \
                WSKP_CASES_1_12(WSKP_CASE, SFX, TGT, KMAX)                             \
                }                                                                      \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
    for (ptrdiff_t p = 0; p < nnz; p++) {                                              \
        V s = 0;                                                                       \
        for (int l = 0; l < L; l++) s += lanes[p * L + l];                             \
        out[p] += s;                                                                   \
    }                                                                                  \
}

#define WSKP_RCASE(SFX, TGT, KMAX, KK)                                                 \
    case KK:                                                                           \
        if (2 * KMAX >= KK) wskp_rchunk_##SFX##_##TGT(val, off, nnz, Xk, yk, KK);      \
        break;

#define WSKP_CASE(SFX, TGT, KMAX, KK)                                                  \
    case KK:                                                                           \
        if (KMAX >= KK)                                                                \
            wskp_chunk_##SFX##_##TGT(g, Xk, xoff + lo, m, lanes + lo * L, KK);          \
        break;

/* KMAX: the weight gradient's KMAX vectors + 8 accumulators + a load, and the rows'
   2 * KMAX accumulators + a broadcast + a load, fit the registers */
#define WSKP_NOATTR
WSKP_DEFINE(float, 16, f32, base, WSKP_NOATTR, 6)
WSKP_DEFINE(double, 16, f64, base, WSKP_NOATTR, 6)
#if WSKP_X86
WSKP_DEFINE(float, 32, f32, avx2, __attribute__((target("arch=x86-64-v3"))), 6)
WSKP_DEFINE(double, 32, f64, avx2, __attribute__((target("arch=x86-64-v3"))), 6)
WSKP_DEFINE(float, 64, f32, avx512, __attribute__((target("arch=x86-64-v4"))), 12)
WSKP_DEFINE(double, 64, f64, avx512, __attribute__((target("arch=x86-64-v4"))), 12)
#endif

typedef void (*wsk_planes_gw_f32_t)(const float*, ptrdiff_t, const float*, ptrdiff_t,
                                    ptrdiff_t, ptrdiff_t, ptrdiff_t, const int32_t*,
                                    const int32_t*, ptrdiff_t, ptrdiff_t, float*, float*);
typedef void (*wsk_planes_gw_f64_t)(const double*, ptrdiff_t, const double*, ptrdiff_t,
                                    ptrdiff_t, ptrdiff_t, ptrdiff_t, const int32_t*,
                                    const int32_t*, ptrdiff_t, ptrdiff_t, double*, double*);
typedef void (*wsk_planes_row_f32_t)(const float*, const int32_t*, ptrdiff_t, const float*,
                                     float*, ptrdiff_t);
typedef void (*wsk_planes_row_f64_t)(const double*, const int32_t*, ptrdiff_t, const double*,
                                     double*, ptrdiff_t);
static wsk_planes_gw_f32_t wsk_planes_gw_f32 = wsk_planes_gw_f32_base;
static wsk_planes_gw_f64_t wsk_planes_gw_f64 = wsk_planes_gw_f64_base;
static wsk_planes_row_f32_t wsk_planes_row_f32 = wsk_planes_row_f32_base;
static wsk_planes_row_f64_t wsk_planes_row_f64 = wsk_planes_row_f64_base;

/* Scratch a weight-gradient call needs: this many bytes a kept weight (the widest vector). */
#define WSK_PLANES_LANES_BYTES 64

static void wsk_planes_init(int path)
{
    wsk_planes_gw_f32 = wsk_planes_gw_f32_base;
    wsk_planes_gw_f64 = wsk_planes_gw_f64_base;
    wsk_planes_row_f32 = wsk_planes_row_f32_base;
    wsk_planes_row_f64 = wsk_planes_row_f64_base;
#if WSKP_X86
    if (path == 2) {
        wsk_planes_gw_f32 = wsk_planes_gw_f32_avx2;
        wsk_planes_gw_f64 = wsk_planes_gw_f64_avx2;
        wsk_planes_row_f32 = wsk_planes_row_f32_avx2;
        wsk_planes_row_f64 = wsk_planes_row_f64_avx2;
    } else if (path == 4) {
        wsk_planes_gw_f32 = wsk_planes_gw_f32_avx512;
        wsk_planes_gw_f64 = wsk_planes_gw_f64_avx512;
        wsk_planes_row_f32 = wsk_planes_row_f32_avx512;
        wsk_planes_row_f64 = wsk_planes_row_f64_avx512;
    }
#else
    (void)path;
#endif
}

#endif
