/* Row-tile direct convolution over kept weights (header-only), one output plane at a time.
 *
 *   wsk_tile_rows: out[oh, ow] = (add ? out[oh, ow] : 0)
 *                                + sum_p vals[p] * P[offs[p] + oh * Wq + ow]
 *                  for oh in [oh0, oh1), ow in [0, OW); out has row pitch OW.
 *
 * With add, a tile starts from out's values instead of zero, so a filter's kept weights can
 * be run in several calls (blocks of input channels, src/_conv.pyx forward_pad) and give
 * the same sums, in the same order, as one call.
 *
 * P is one image's stride phases (see src/_conv.pyx forward); offs[p] is kept weight p's
 * shift in it. A register tile of R output rows x NV vectors of output columns is held in
 * registers while the filter's kept weights stream past: each weight is one broadcast and
 * R * NV fused multiply-adds with the shifted input rows, and the tile is stored once at
 * the end. (One axpy pass over the whole plane per weight re-reads and re-writes the
 * plane from L1/L2 for every weight; the spmm row kernel over the "wide" plane spent as
 * many prefetches as loads per weight.) Tiles per target, so a vector is one register and
 * the accumulators fit the register file without spills:
 *     AVX-512 (32 zmm): float32 8 rows x 2 vectors, float64 4 x 2;  AVX2 (16 ymm): 3 x 4;
 *     baseline (16 xmm): 2 x 4
 * The last vector of a row may be partial: it reads whole vectors (lanes past OW are
 * discarded) and stores only its OW columns. A tile whose last read would pass `limit`
 * (the elements readable from P) is done by a scalar loop instead, so nothing is read
 * outside P. Written once with GCC vector types, compiled per target; wsk_tile_init(path)
 * selects the clone (path as wsk_simd_init's: 1 baseline, 2 avx2, 4 avx512). The caller
 * checked every size; nothing here raises.
 */
#ifndef WSK_CONV_TILE_H
#define WSK_CONV_TILE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wsk_scan.h"

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64)) \
    && !defined(WSK_NO_DISPATCH)
#define WSKT_X86 1
#else
#define WSKT_X86 0
#endif

#if !(defined(__GNUC__) || defined(__clang__))
#error "wsk_conv_tile.h needs GCC vector extensions"
#endif

#define WSKT_INLINE static inline __attribute__((always_inline))

/* One switch case of wskt_rows: tile F of RR x NN when the target's RMAX x NVMAX holds it. */
#define WSKT_CASE(F, RMAX, NVMAX, RR, NN)                                              \
    case (RR - 1) * 4 + (NN - 1):                                                        \
        if (RMAX >= RR && NVMAX >= NN)                                                   \
            F(vals, offs, nnz, src, Wq, dst, OW, RR, NN, n, add);                        \
        break;

/* One tile: RR rows x NN vectors, the last vector holding n - (NN - 1) * L columns. */
#define WSKT_DEFINE(V, VBYTES, SFX, TGT, ATTR, RMAX, NVMAX)                              \
typedef V wskt_##SFX##_##TGT##_vt __attribute__((vector_size(VBYTES)));                \
WSKT_INLINE ATTR void wskt_tile_##SFX##_##TGT(const V* vals, const int32_t* offs,       \
        ptrdiff_t nnz, const V* src, ptrdiff_t Wq, V* dst, ptrdiff_t ldo,               \
        const int RR, const int NN, ptrdiff_t n, int add)                              \
{                                                                                      \
    typedef wskt_##SFX##_##TGT##_vt VT;                                                \
    enum { L = VBYTES / sizeof(V) };                                                   \
    VT acc[RMAX * NVMAX];                                                              \
    _Pragma("GCC unroll 32")                                                           \
    for (int a = 0; a < RR * NN; a++) acc[a] = (VT){0};                               \
    if (add) {                    /* start from dst's values (n columns of each row) */ \
        _Pragma("GCC unroll 8")                                                        \
        for (int r = 0; r < RR; r++) {                                                 \
            _Pragma("GCC unroll 4")                                                    \
            for (int a = 0; a < NN - 1; a++)                                           \
                memcpy(&acc[r * NN + a], dst + r * ldo + a * L, sizeof(VT));           \
            if (n == NN * L) {                                                         \
                memcpy(&acc[r * NN + NN - 1], dst + r * ldo + (NN - 1) * L, sizeof(VT)); \
            } else {                                                                   \
                V t[L] = {0};                                                          \
                memcpy(t, dst + r * ldo + (NN - 1) * L, (n - (NN - 1) * L) * sizeof(V)); \
                memcpy(&acc[r * NN + NN - 1], t, sizeof(VT));                          \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
    const V* row[RMAX];          /* one base register per row, offs[p] the index */    \
    _Pragma("GCC unroll 8")                                                            \
    for (int r = 0; r < RR; r++) row[r] = src + r * Wq;                                \
    for (ptrdiff_t p = 0; p < nnz; p++) {                                              \
        const V w = vals[p];                                                           \
        const ptrdiff_t k = offs[p];                                                   \
        _Pragma("GCC unroll 8")                                                        \
        for (int r = 0; r < RR; r++) {                                                 \
            _Pragma("GCC unroll 4")                                                    \
            for (int a = 0; a < NN; a++) {                                             \
                VT xv;                                                                 \
                memcpy(&xv, row[r] + k + a * L, sizeof(VT));                           \
                acc[r * NN + a] += w * xv;                                             \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
    _Pragma("GCC unroll 8")                                                            \
    for (int r = 0; r < RR; r++) {                                                     \
        _Pragma("GCC unroll 4")                                                        \
        for (int a = 0; a < NN - 1; a++)                                               \
            memcpy(dst + r * ldo + a * L, &acc[r * NN + a], sizeof(VT));               \
        if (n == NN * L) {                                                             \
            memcpy(dst + r * ldo + (NN - 1) * L, &acc[r * NN + NN - 1], sizeof(VT));   \
        } else {                                                                       \
            V t[L];                                                                    \
            memcpy(t, &acc[r * NN + NN - 1], sizeof(VT));                              \
            memcpy(dst + r * ldo + (NN - 1) * L, t, (n - (NN - 1) * L) * sizeof(V));   \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
static void wskt_scalar_##SFX##_##TGT(const V* vals, const int32_t* offs, ptrdiff_t nnz, \
        const V* src, ptrdiff_t Wq, V* dst, ptrdiff_t ldo, ptrdiff_t rr, ptrdiff_t n,  \
        int add)                                                                       \
{                                                                                      \
    for (ptrdiff_t r = 0; r < rr; r++)                                                 \
        for (ptrdiff_t j = 0; j < n; j++) {                                            \
            V s = add ? dst[r * ldo + j] : 0;                                          \
            for (ptrdiff_t p = 0; p < nnz; p++) s += vals[p] * src[offs[p] + r * Wq + j]; \
            dst[r * ldo + j] = s;                                                      \
        }                                                                              \
}                                                                                      \
WSKT_INLINE ATTR void wskt_rows_##SFX##_##TGT(const V* vals, const int32_t* offs,       \
        ptrdiff_t nnz, const V* P, ptrdiff_t limit, ptrdiff_t Wq, ptrdiff_t oh0,        \
        ptrdiff_t oh1, ptrdiff_t OW, V* out, const int add)                            \
{                                                                                      \
    enum { L = VBYTES / sizeof(V) };                                                   \
    ptrdiff_t max_off = 0;                                                             \
    for (ptrdiff_t p = 0; p < nnz; p++) if (offs[p] > max_off) max_off = offs[p];      \
    for (ptrdiff_t oh = oh0; oh < oh1; oh += RMAX) {                                   \
        const int rr = (int)(oh1 - oh < RMAX ? oh1 - oh : RMAX);                       \
        for (ptrdiff_t ow = 0; ow < OW; ow += NVMAX * L) {                             \
            const ptrdiff_t n = OW - ow < NVMAX * L ? OW - ow : NVMAX * L;             \
            const int nv = (int)((n + L - 1) / L);                                     \
            const V* src = P + oh * Wq + ow;                                           \
            V* dst = out + oh * OW + ow;                                               \
            if (max_off + (oh + rr - 1) * Wq + ow + (ptrdiff_t)nv * L > limit) {       \
                wskt_scalar_##SFX##_##TGT(vals, offs, nnz, src, Wq, dst, OW, rr, n, add); \
                continue;                                                              \
            }                                                                          \
            /* literal sizes, so each call is unrolled into registers */               \
            switch ((rr - 1) * 4 + (nv - 1)) {                                         \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 1, 1)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 1, 2)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 1, 3)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 1, 4)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 2, 1)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 2, 2)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 2, 3)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 2, 4)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 3, 1)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 3, 2)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 3, 3)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 3, 4)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 4, 1)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 4, 2)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 4, 3)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 4, 4)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 5, 1)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 5, 2)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 5, 3)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 5, 4)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 6, 1)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 6, 2)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 6, 3)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 6, 4)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 7, 1)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 7, 2)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 7, 3)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 7, 4)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 8, 1)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 8, 2)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 8, 3)                                \
            WSKT_CASE(wskt_tile_##SFX##_##TGT, RMAX, NVMAX, 8, 4)                                \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
/* add as a literal in each copy: the add = 0 copy is the plain kernel, no extra test */ \
static ATTR void wsk_tile_rows_##SFX##_##TGT(const V* vals, const int32_t* offs,        \
        ptrdiff_t nnz, const V* P, ptrdiff_t limit, ptrdiff_t Wq, ptrdiff_t oh0,        \
        ptrdiff_t oh1, ptrdiff_t OW, V* out, int add)                                  \
{                                                                                      \
    if (add)                                                                           \
        wskt_rows_##SFX##_##TGT(vals, offs, nnz, P, limit, Wq, oh0, oh1, OW, out, 1);  \
    else                                                                               \
        wskt_rows_##SFX##_##TGT(vals, offs, nnz, P, limit, Wq, oh0, oh1, OW, out, 0);  \
}

#define WSKT_DEFINE_TARGET(TGT, ATTR, VBYTES, RMAX, NVMAX)                               \
    WSKT_DEFINE(float, VBYTES, f32, TGT, ATTR, RMAX, NVMAX)                             \
    WSKT_DEFINE(double, VBYTES, f64, TGT, ATTR, RMAX, NVMAX)

#define WSKT_NOATTR
WSKT_DEFINE_TARGET(base, WSKT_NOATTR, 16, 2, 4)
#if WSKT_X86
WSKT_DEFINE_TARGET(avx2, __attribute__((target("arch=x86-64-v3"))), 32, 3, 4)
/* float32 8 x 2 (16 of the 32 zmm): on Zen 5 1.05-1.10x 4 x 2 at 80 % zeros; float64
   kept 4 x 2 (8 x 2 was 0-5 % slower there) */
WSKT_DEFINE(float, 64, f32, avx512, __attribute__((target("arch=x86-64-v4"))), 8, 2)
WSKT_DEFINE(double, 64, f64, avx512, __attribute__((target("arch=x86-64-v4"))), 4, 2)
#endif

typedef void (*wsk_tile_rows_f32_t)(const float*, const int32_t*, ptrdiff_t, const float*,
                                    ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    float*, int);
typedef void (*wsk_tile_rows_f64_t)(const double*, const int32_t*, ptrdiff_t, const double*,
                                    ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    double*, int);
static wsk_tile_rows_f32_t wsk_tile_rows_f32 = wsk_tile_rows_f32_base;
static wsk_tile_rows_f64_t wsk_tile_rows_f64 = wsk_tile_rows_f64_base;

/* path: 1 baseline, 2 avx2, 4 avx512 (the caller checked the CPU runs it). */
static void wsk_tile_init(int path)
{
    wsk_tile_rows_f32 = wsk_tile_rows_f32_base;
    wsk_tile_rows_f64 = wsk_tile_rows_f64_base;
    wsk_scan_init(path);        /* scan_planes' scan (src/wsk_scan.h) */
#if WSKT_X86
    if (path == 2) {
        wsk_tile_rows_f32 = wsk_tile_rows_f32_avx2;
        wsk_tile_rows_f64 = wsk_tile_rows_f64_avx2;
    } else if (path == 4) {
        wsk_tile_rows_f32 = wsk_tile_rows_f32_avx512;
        wsk_tile_rows_f64 = wsk_tile_rows_f64_avx512;
    }
#else
    (void)path;
#endif
}

#endif
