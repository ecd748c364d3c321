/* A float array's nonzero pattern as bits (src/_nz_bits.pyx): element i, in memory order,
   is bit i % 64 of 64-bit word i / 64 (on a little-endian CPU, bit i % 8 of byte i / 8:
   np.packbits' bitorder="little"); the bits past the last element are 0. One pass each:
   ``v != 0`` (true for NaN), or a fused ReLU's ``(g != 0) & (y > 0)`` (false for a NaN y),
   returning the count. And the bits back as bytes of 0/1 (NumPy's bool). */
#ifndef WSK_NZ_BITS_H
#define WSK_NZ_BITS_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static inline int64_t wsk_nzb_pop(uint64_t w) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_popcountll(w);
#else
    w = w - ((w >> 1) & 0x5555555555555555ULL);
    w = (w & 0x3333333333333333ULL) + ((w >> 2) & 0x3333333333333333ULL);
    w = (w + (w >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int64_t)((w * 0x0101010101010101ULL) >> 56);
#endif
}

/* The generic word: up to 64 elements from i, one at a time, each bit ``expr`` of element
   k_ (a tail, float64, or a CPU without SSE2). */
#define WSK_NZB_WORD(i, n, expr)                                                    \
    do {                                                                               \
        uint64_t w_ = 0;                                                               \
        ptrdiff_t e_ = (n) - (i) < 64 ? (n) - (i) : 64;                                \
        for (ptrdiff_t j_ = 0; j_ < e_; j_++) {                                        \
            ptrdiff_t k_ = (i) + j_;                                                   \
            w_ |= (uint64_t)(expr) << j_;                                              \
        }                                                                              \
        bits[(i) >> 6] = w_;                                                           \
        c += wsk_nzb_pop(w_);                                                 \
    } while (0)

#ifdef __SSE2__
/* 16 float32 compared 4 at a time, their masks packed to 16 bytes and gathered to 16 bits */
static inline uint64_t wsk_nzb_16(__m128i a, __m128i b, __m128i d, __m128i e) {
    return (uint64_t)(uint16_t)_mm_movemask_epi8(
        _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(d, e)));
}
#endif

static int64_t wsk_nzb_f32(const float *restrict v, uint64_t *restrict bits, ptrdiff_t n) {
    int64_t c = 0;
    ptrdiff_t i = 0;
#ifdef __SSE2__
    const __m128 z = _mm_setzero_ps();
    for (; i + 64 <= n; i += 64) {
        uint64_t w = 0;
        for (int q = 0; q < 4; q++) {
            const float *p = v + i + 16 * q;
            w |= wsk_nzb_16(_mm_castps_si128(_mm_cmpneq_ps(_mm_loadu_ps(p), z)),
                            _mm_castps_si128(_mm_cmpneq_ps(_mm_loadu_ps(p + 4), z)),
                            _mm_castps_si128(_mm_cmpneq_ps(_mm_loadu_ps(p + 8), z)),
                            _mm_castps_si128(_mm_cmpneq_ps(_mm_loadu_ps(p + 12), z)))
                 << (16 * q);
        }
        bits[i >> 6] = w;
        c += wsk_nzb_pop(w);
    }
#endif
    for (; i < n; i += 64)
        WSK_NZB_WORD(i, n, v[k_] != 0);
    return c;
}

static int64_t wsk_nzb_relu_f32(const float *restrict g, const float *restrict y,
                                uint64_t *restrict bits, ptrdiff_t n) {
    int64_t c = 0;
    ptrdiff_t i = 0;
#ifdef __SSE2__
    const __m128 z = _mm_setzero_ps();
#define WSK_NZB_RELU4(o) _mm_castps_si128(_mm_and_ps(                                  \
        _mm_cmpneq_ps(_mm_loadu_ps(g + i + (o)), z), _mm_cmpgt_ps(_mm_loadu_ps(y + i + (o)), z)))
    for (; i + 64 <= n; i += 64) {
        uint64_t w = 0;
        for (int q = 0; q < 4; q++)
            w |= wsk_nzb_16(WSK_NZB_RELU4(16 * q), WSK_NZB_RELU4(16 * q + 4),
                            WSK_NZB_RELU4(16 * q + 8), WSK_NZB_RELU4(16 * q + 12))
                 << (16 * q);
        bits[i >> 6] = w;
        c += wsk_nzb_pop(w);
    }
#undef WSK_NZB_RELU4
#endif
    for (; i < n; i += 64)
        WSK_NZB_WORD(i, n, (g[k_] != 0) & (y[k_] > 0));
    return c;
}

static int64_t wsk_nzb_f64(const double *restrict v, uint64_t *restrict bits, ptrdiff_t n) {
    int64_t c = 0;
    for (ptrdiff_t i = 0; i < n; i += 64)
        WSK_NZB_WORD(i, n, v[k_] != 0);
    return c;
}

static int64_t wsk_nzb_relu_f64(const double *restrict g, const double *restrict y,
                                uint64_t *restrict bits, ptrdiff_t n) {
    int64_t c = 0;
    for (ptrdiff_t i = 0; i < n; i += 64)
        WSK_NZB_WORD(i, n, (g[k_] != 0) & (y[k_] > 0));
    return c;
}

/* 8 bits as 8 bytes of 0/1, byte j bit j: b copied to every byte, byte j keeping bit j
   alone, which + 0x7F carries into bit 7 (no further) where it is set */
static inline uint64_t wsk_nzb_spread8(uint64_t b) {
    uint64_t t = (b * 0x0101010101010101ULL) & 0x8040201008040201ULL;
    return ((t + 0x7F7F7F7F7F7F7F7FULL) >> 7) & 0x0101010101010101ULL;
}

/* n bytes of 0/1 from the bits, 8 at a time where the CPU is little-endian */
static void wsk_nzb_unpack(const uint64_t *restrict bits, uint8_t *restrict out, ptrdiff_t n) {
    ptrdiff_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 8) {
        uint64_t t = wsk_nzb_spread8((bits[i >> 6] >> (i & 63)) & 0xFF);
        memcpy(out + i, &t, 8);            /* byte j is element i + j */
    }
#endif
    for (; i < n; i++)
        out[i] = (bits[i >> 6] >> (i & 63)) & 1;
}

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* AVX-512 (F + BW): four 16-lane compares make one 64-bit word; the same compares
   (!= unordered: NaN is nonzero; > ordered: NaN is not > 0), so the same bits */
#define WSK_NZB_AVX512 __attribute__((target("avx512f,avx512bw,popcnt")))
WSK_NZB_AVX512
static int64_t wsk_nzb_f32_avx512(const float *restrict v, uint64_t *restrict bits,
                                  ptrdiff_t n) {
    int64_t c = 0;
    ptrdiff_t i = 0;
    const __m512 z = _mm512_setzero_ps();
    for (; i + 64 <= n; i += 64) {
        uint64_t w = 0;
        for (int q = 0; q < 4; q++)
            w |= (uint64_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(v + i + 16 * q), z,
                                              _CMP_NEQ_UQ) << (16 * q);
        bits[i >> 6] = w;
        c += __builtin_popcountll(w);
    }
    for (; i < n; i += 64)
        WSK_NZB_WORD(i, n, v[k_] != 0);
    return c;
}

WSK_NZB_AVX512
static int64_t wsk_nzb_relu_f32_avx512(const float *restrict g, const float *restrict y,
                                       uint64_t *restrict bits, ptrdiff_t n) {
    int64_t c = 0;
    ptrdiff_t i = 0;
    const __m512 z = _mm512_setzero_ps();
    for (; i + 64 <= n; i += 64) {
        uint64_t w = 0;
        for (int q = 0; q < 4; q++) {
            __mmask16 a = _mm512_cmp_ps_mask(_mm512_loadu_ps(g + i + 16 * q), z, _CMP_NEQ_UQ);
            w |= (uint64_t)_mm512_mask_cmp_ps_mask(a, _mm512_loadu_ps(y + i + 16 * q), z,
                                                   _CMP_GT_OQ) << (16 * q);
        }
        bits[i >> 6] = w;
        c += __builtin_popcountll(w);
    }
    for (; i < n; i += 64)
        WSK_NZB_WORD(i, n, (g[k_] != 0) & (y[k_] > 0));
    return c;
}

/* 64 bytes a word, each a mask's bit as 0/1 */
WSK_NZB_AVX512
static void wsk_nzb_unpack_avx512(const uint64_t *restrict bits, uint8_t *restrict out,
                                  ptrdiff_t n) {
    const __m512i one = _mm512_set1_epi8(1);
    ptrdiff_t i = 0;
    for (; i + 64 <= n; i += 64)
        _mm512_storeu_si512((void *)(out + i),
                            _mm512_maskz_mov_epi8((__mmask64)bits[i >> 6], one));
    if (i < n)
        _mm512_mask_storeu_epi8((void *)(out + i), (__mmask64)(~0ULL >> (64 - (n - i))),
                                _mm512_maskz_mov_epi8((__mmask64)bits[i >> 6], one));
}

static int wsk_nzb_avx512_runs(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("popcnt");
}
#else
static int64_t wsk_nzb_f32_avx512(const float *v, uint64_t *bits, ptrdiff_t n) {
    return wsk_nzb_f32(v, bits, n);
}
static int64_t wsk_nzb_relu_f32_avx512(const float *g, const float *y, uint64_t *bits,
                                       ptrdiff_t n) {
    return wsk_nzb_relu_f32(g, y, bits, n);
}
static void wsk_nzb_unpack_avx512(const uint64_t *bits, uint8_t *out, ptrdiff_t n) {
    wsk_nzb_unpack(bits, out, n);
}
static int wsk_nzb_avx512_runs(void) { return 0; }
#endif
#endif
