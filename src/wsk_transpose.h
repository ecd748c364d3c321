/* Tiled transposes for the sparse-weight Dense step (header-only).
 *
 *   wsk_transpose_f32 / _f64: dst[j * ldd + i] = src[i * lds + j] for i < R, j in [c0, c1)
 *   wsk_scale_rowsum_f32 / _f64: y *= d elementwise, and the sum of y
 *   wsk_transpose_scale_f32: the transpose, then scale_rowsum on each row written, in one
 *                            pass on the AVX2 path (the same bits)
 *
 * The caller hands each thread a band of source columns (destination rows). Inside it the
 * copy goes by 8 x 8 tiles (4 x 4 for float64): each tile reads 8 rows of 32 bytes and
 * writes 8 rows of 32 bytes, so neither side walks memory with a stride that misses the
 * cache on every element, and a power-of-two pitch (2048 floats: every row in the same
 * L1 set) costs 8 lines per tile, not one per element. The AVX2 clone transposes a tile
 * in registers (8 loads, 24 shuffles, 8 stores); wsk_transpose_init(1) selects it.
 */
#ifndef WSK_TRANSPOSE_H
#define WSK_TRANSPOSE_H

#include <stddef.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64)) \
    && !defined(WSK_NO_DISPATCH)
#define WSKT_X86 1
#include <immintrin.h>
#else
#define WSKT_X86 0
#endif

#define WSKT_DEFINE_BASE(V, SFX, T)                                                      \
static void wsk_transpose_##SFX##_base(const V* src, ptrdiff_t R, ptrdiff_t lds,        \
                                       ptrdiff_t c0, ptrdiff_t c1, V* dst, ptrdiff_t ldd) \
{                                                                                       \
    for (ptrdiff_t j0 = c0; j0 < c1; j0 += T) {                                         \
        ptrdiff_t j1 = j0 + T < c1 ? j0 + T : c1;                                       \
        for (ptrdiff_t i0 = 0; i0 < R; i0 += T) {                                       \
            ptrdiff_t i1 = i0 + T < R ? i0 + T : R;                                     \
            for (ptrdiff_t j = j0; j < j1; j++)                                         \
                for (ptrdiff_t i = i0; i < i1; i++)                                     \
                    dst[j * ldd + i] = src[i * lds + j];                                \
        }                                                                               \
    }                                                                                   \
}
WSKT_DEFINE_BASE(float, f32, 8)
WSKT_DEFINE_BASE(double, f64, 8)

/* y[0:n] *= d[0:n] (when d), then *sum = the sum of y (when sum): the backward's GELU
 * derivative and bias gradient on a row the transpose just wrote. Eight lanes of partial
 * sums (each over n / 8 values: closer to the exact sum than one running sum). */
#define WSKT_DEFINE_SCALE(V, SFX)                                                        \
typedef V wskt_##SFX##_v8 __attribute__((vector_size(8 * sizeof(V))));                 \
static void wsk_scale_rowsum_##SFX(V* y, const V* d, ptrdiff_t n, V* sum)              \
{                                                                                       \
    wskt_##SFX##_v8 acc = {0};                                                          \
    ptrdiff_t k = 0;                                                                    \
    for (; k + 8 <= n; k += 8) {                                                        \
        wskt_##SFX##_v8 a;                                                              \
        memcpy(&a, y + k, sizeof(a));                                                   \
        if (d) {                                                                        \
            wskt_##SFX##_v8 b;                                                          \
            memcpy(&b, d + k, sizeof(b));                                               \
            a *= b;                                                                     \
            memcpy(y + k, &a, sizeof(a));                                               \
        }                                                                               \
        acc += a;                                                                       \
    }                                                                                   \
    V r = 0;                                                                            \
    for (; k < n; k++) {                                                                \
        if (d) y[k] *= d[k];                                                            \
        r += y[k];                                                                      \
    }                                                                                   \
    for (int l = 0; l < 8; l++) r += acc[l];                                            \
    if (sum) *sum = r;                                                                  \
}
WSKT_DEFINE_SCALE(float, f32)
WSKT_DEFINE_SCALE(double, f64)

/* The transpose, then scale_rowsum on each destination row j of [c0, c1): dst's row j
 * times scale's (pitch ldd), its sum into sums[j] (either may be NULL). */
#define WSKT_DEFINE_TS_BASE(V, SFX)                                                      \
static void wsk_transpose_scale_##SFX##_base(const V* src, ptrdiff_t R, ptrdiff_t lds,  \
        ptrdiff_t c0, ptrdiff_t c1, V* dst, ptrdiff_t ldd, const V* scale, V* sums)    \
{                                                                                       \
    wsk_transpose_##SFX##_base(src, R, lds, c0, c1, dst, ldd);                          \
    for (ptrdiff_t j = c0; j < c1; j++)                                                 \
        wsk_scale_rowsum_##SFX(dst + j * ldd, scale ? scale + j * ldd : NULL, R,        \
                               sums ? sums + j : NULL);                                 \
}
WSKT_DEFINE_TS_BASE(float, f32)

#if WSKT_X86
#define WSKT_AVX2 __attribute__((target("avx2")))
#ifndef WSKT_ROWS
#define WSKT_ROWS 64
#endif

static WSKT_AVX2 inline void wskt_tile8_f32(const float* s, ptrdiff_t lds, float* d,
                                            ptrdiff_t ldd)
{
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds);
    __m256 r2 = _mm256_loadu_ps(s + 2 * lds), r3 = _mm256_loadu_ps(s + 3 * lds);
    __m256 r4 = _mm256_loadu_ps(s + 4 * lds), r5 = _mm256_loadu_ps(s + 5 * lds);
    __m256 r6 = _mm256_loadu_ps(s + 6 * lds), r7 = _mm256_loadu_ps(s + 7 * lds);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}

static WSKT_AVX2 inline void wskt_tile4_f64(const double* s, ptrdiff_t lds, double* d,
                                            ptrdiff_t ldd)
{
    __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + lds);
    __m256d r2 = _mm256_loadu_pd(s + 2 * lds), r3 = _mm256_loadu_pd(s + 3 * lds);
    __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(d, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(d + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(d + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(d + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
}

/* Full T x T tiles in registers. Destination rows go by bands of 2 T (a 64-byte line of
 * src is used whole), source rows by blocks of WSKT_ROWS: the block's tiles land in an L1
 * buffer, then each destination row's WSKT_ROWS values are copied out in one run of whole
 * lines. Written straight from the tiles, the rows of a band, a power-of-two pitch apart,
 * all fall in one L1 set and evict each other's half-written lines (2048 x 512 float32:
 * 0.59 ms, against 0.16 ms at 2000 x 504). The ragged edges go by the plain loop. */
#define WSKT_DEFINE_AVX2(V, SFX, T, TILE)                                                \
static WSKT_AVX2 void wsk_transpose_##SFX##_avx2(const V* src, ptrdiff_t R,             \
        ptrdiff_t lds, ptrdiff_t c0, ptrdiff_t c1, V* dst, ptrdiff_t ldd)              \
{                                                                                       \
    V buf[2 * T * WSKT_ROWS];                                                           \
    ptrdiff_t Rf = R - R % T, cf = c1 - (c1 - c0) % T;                                 \
    for (ptrdiff_t ib = 0; ib < Rf; ib += WSKT_ROWS) {                                  \
        ptrdiff_t ie = ib + WSKT_ROWS < Rf ? ib + WSKT_ROWS : Rf, n = ie - ib;          \
        for (ptrdiff_t j0 = c0; j0 < cf; j0 += 2 * T) {                                 \
            int w = j0 + 2 * T <= cf ? 2 : 1;                                           \
            for (ptrdiff_t i0 = ib; i0 < ie; i0 += T)                                   \
                for (int h = 0; h < w; h++)                                             \
                    TILE(src + i0 * lds + j0 + h * T, lds,                              \
                         buf + h * T * WSKT_ROWS + (i0 - ib), WSKT_ROWS);               \
            for (ptrdiff_t k = 0; k < w * T; k++)                                       \
                memcpy(dst + (j0 + k) * ldd + ib, buf + k * WSKT_ROWS, n * sizeof(V));  \
        }                                                                               \
    }                                                                                   \
    for (ptrdiff_t j = c0; j < cf; j++)                                                 \
        for (ptrdiff_t i = Rf; i < R; i++)                                              \
            dst[j * ldd + i] = src[i * lds + j];                                        \
    if (cf < c1)                                                                        \
        wsk_transpose_##SFX##_base(src, R, lds, cf, c1, dst, ldd);                      \
}
WSKT_DEFINE_AVX2(float, f32, 8, wskt_tile8_f32)
WSKT_DEFINE_AVX2(double, f64, 4, wskt_tile4_f64)

/* wsk_transpose_scale_f32_base in one pass: each run of a destination row is scaled and
 * added into that row's eight lane sums as it leaves the L1 buffer (not read back from L2
 * by a second pass). Source columns go by strips of 2 T, all rows each (the sums of 2 T
 * rows in registers). The lanes add the same values in the same order as
 * wsk_scale_rowsum_f32 (runs start at multiples of 8): the same bits. (2048, 512) float32
 * with scale and sums: 0.59-0.66 ns a value against 0.96-1.04 in two passes, Zen 4. */
static WSKT_AVX2 void wsk_transpose_scale_f32_avx2(const float* src, ptrdiff_t R,
        ptrdiff_t lds, ptrdiff_t c0, ptrdiff_t c1, float* dst, ptrdiff_t ldd,
        const float* scale, float* sums)
{
    enum { T = 8 };
    typedef float v8 __attribute__((vector_size(32)));
    float buf[2 * T * WSKT_ROWS];
    ptrdiff_t Rf = R - R % T, cf = c1 - (c1 - c0) % T;
    for (ptrdiff_t j0 = c0; j0 < cf; j0 += 2 * T) {
        int w = j0 + 2 * T <= cf ? 2 : 1;
        v8 acc[2 * T];
        for (int k = 0; k < 2 * T; k++) acc[k] = (v8){0};
        for (ptrdiff_t ib = 0; ib < Rf; ib += WSKT_ROWS) {
            ptrdiff_t ie = ib + WSKT_ROWS < Rf ? ib + WSKT_ROWS : Rf, n = ie - ib;
            for (ptrdiff_t i0 = ib; i0 < ie; i0 += T)
                for (int h = 0; h < w; h++)
                    wskt_tile8_f32(src + i0 * lds + j0 + h * T, lds,
                                   buf + h * T * WSKT_ROWS + (i0 - ib), WSKT_ROWS);
            for (ptrdiff_t k = 0; k < w * T; k++) {
                float* y = dst + (j0 + k) * ldd + ib;
                const float* b = buf + k * WSKT_ROWS;
                const float* q = scale ? scale + (j0 + k) * ldd + ib : NULL;
                v8 a = acc[k];
                for (ptrdiff_t m = 0; m < n; m += 8) {
                    v8 v;
                    memcpy(&v, b + m, sizeof(v));
                    if (q) {
                        v8 f;
                        memcpy(&f, q + m, sizeof(f));
                        v *= f;
                    }
                    memcpy(y + m, &v, sizeof(v));
                    a += v;
                }
                acc[k] = a;
            }
        }
        for (ptrdiff_t k = 0; k < w * T; k++) {                 /* the last R % T rows */
            ptrdiff_t j = j0 + k;
            float r = 0;
            for (ptrdiff_t i = Rf; i < R; i++) {
                float v = src[i * lds + j];
                if (scale) v *= scale[j * ldd + i];
                dst[j * ldd + i] = v;
                r += v;
            }
            for (int l = 0; l < 8; l++) r += acc[k][l];
            if (sums) sums[j] = r;
        }
    }
    if (cf < c1)
        wsk_transpose_scale_f32_base(src, R, lds, cf, c1, dst, ldd, scale, sums);
}
#endif


typedef void (*wsk_transpose_f32_t)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    float*, ptrdiff_t);
typedef void (*wsk_transpose_f64_t)(const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    ptrdiff_t, double*, ptrdiff_t);
static wsk_transpose_f32_t wsk_transpose_f32 = wsk_transpose_f32_base;
static wsk_transpose_f64_t wsk_transpose_f64 = wsk_transpose_f64_base;
typedef void (*wsk_transpose_scale_f32_t)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                          ptrdiff_t, float*, ptrdiff_t, const float*, float*);
static wsk_transpose_scale_f32_t wsk_transpose_scale_f32 = wsk_transpose_scale_f32_base;

/* avx2 != 0 selects the AVX2 clone (the caller checked the CPU runs it). */
static void wsk_transpose_init(int avx2)
{
#if WSKT_X86
    if (avx2) {
        wsk_transpose_f32 = wsk_transpose_f32_avx2;
        wsk_transpose_f64 = wsk_transpose_f64_avx2;
        wsk_transpose_scale_f32 = wsk_transpose_scale_f32_avx2;
        return;
    }
#endif
    (void)avx2;
    wsk_transpose_f32 = wsk_transpose_f32_base;
    wsk_transpose_f64 = wsk_transpose_f64_base;
    wsk_transpose_scale_f32 = wsk_transpose_scale_f32_base;
}

#endif
