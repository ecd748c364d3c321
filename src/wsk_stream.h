/* The stream of X's nonzeros into the PE columns: the passes the step kernels
 * (_step_cost's ws_step_columns, _screen's dense_stream) make over X's pattern (K x N
 * bytes, any strides) and then over the samples of each column (header-only).
 *
 *   wsk_x_kmajor: X as K x N contiguous bytes (each k's N samples adjacent): X itself when
 *       it is laid out so, else a copy in the caller's K * N scratch. A sample-major X
 *       (stride 1 along k: a layer's N x K batch seen transposed) is copied by 16 x 16
 *       byte tiles, transposed in SSE2 registers where the build has SSE2 (every x86-64);
 *       any other layout, and the tiles' edges, byte by byte. Bytes are moved, never
 *       changed: the counts below are those of X.
 *   wsk_x_column: one PE column's rows k0..k1 of the K-major X: out[n] = the sum over k of
 *       f(x[k, n]) for n < N, and (when A is not NULL) A[k] = the sum over n of f(x[k, n]),
 *       f = (byte != 0) when nz, else the byte itself. Integer sums: exact in any order
 *       (the AVX-512 build sums in 16-bit lanes, 257 rows at a time).
 *   wsk_ws_samples / wsk_dense_samples: each column's work, first and last per sample
 *       (N x C, samples-major) from its counts a (C x N), sample after sample across the
 *       columns: each (n, c) takes the IEEE operations of the kernels' column-by-column
 *       loops, in their order (built with -ffp-contract=off), and each column's cumulative
 *       wavelets are integers summed in sample order. So every float is the same, whatever
 *       the width of the lanes over the columns.
 * The last three build twice: for the baseline, and (suffix _avx512, where the compiler
 * targets x86) for AVX-512 F/DQ/BW/VL, which the caller runs only where
 * wsk_stream_avx512_runs.
 */
#ifndef WSK_STREAM_H
#define WSK_STREAM_H

#include <stddef.h>
#include <stdint.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define WSKX_SSE2 1
#else
#define WSKX_SSE2 0
#endif

#if WSKX_SSE2
/* dst[j * ldd + i] = src[i * lds + j] for i, j < 16: 16 loads, 64 unpacks, 16 stores */
static inline void wskx_tile16(const uint8_t* src, ptrdiff_t lds, uint8_t* dst, ptrdiff_t ldd)
{
    __m128i a[16], b[2][8], c[2][2][4], d[2][2][2][2];
    int i, h, g, f, q, s, e;
    for (i = 0; i < 16; i++)
        a[i] = _mm_loadu_si128((const __m128i*) (src + i * lds));
    /* b[h][i]: 16-bit elements e = column 8h + e of rows 2i, 2i + 1 */
    for (i = 0; i < 8; i++) {
        b[0][i] = _mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
        b[1][i] = _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
    }
    /* c[h][g][q]: 32-bit elements e = column 8h + 4g + e of rows 4q .. 4q + 3 */
    for (h = 0; h < 2; h++)
        for (q = 0; q < 4; q++) {
            c[h][0][q] = _mm_unpacklo_epi16(b[h][2 * q], b[h][2 * q + 1]);
            c[h][1][q] = _mm_unpackhi_epi16(b[h][2 * q], b[h][2 * q + 1]);
        }
    /* d[h][g][f][s]: 64-bit elements e = column 8h + 4g + 2f + e of rows 8s .. 8s + 7 */
    for (h = 0; h < 2; h++)
        for (g = 0; g < 2; g++)
            for (s = 0; s < 2; s++) {
                d[h][g][0][s] = _mm_unpacklo_epi32(c[h][g][2 * s], c[h][g][2 * s + 1]);
                d[h][g][1][s] = _mm_unpackhi_epi32(c[h][g][2 * s], c[h][g][2 * s + 1]);
            }
    /* column 8h + 4g + 2f + e: rows 0 .. 7, then 8 .. 15 */
    for (h = 0; h < 2; h++)
        for (g = 0; g < 2; g++)
            for (f = 0; f < 2; f++)
                for (e = 0; e < 2; e++)
                    _mm_storeu_si128((__m128i*) (dst + (8 * h + 4 * g + 2 * f + e) * ldd),
                                     e ? _mm_unpackhi_epi64(d[h][g][f][0], d[h][g][f][1])
                                       : _mm_unpacklo_epi64(d[h][g][f][0], d[h][g][f][1]));
}
#endif

/* X (element (k, n) at x + k * sk + n * sn) as K x N contiguous bytes: x itself when it
 * is, else scratch (K * N bytes) filled with it */
static const uint8_t* wsk_x_kmajor(const uint8_t* x, ptrdiff_t K, ptrdiff_t N, ptrdiff_t sk,
                                   ptrdiff_t sn, uint8_t* scratch)
{
    ptrdiff_t k, n, k0 = 0, n0 = 0;
    if (K == 0 || N == 0 || (sn == 1 && sk == N))
        return x;
    if (sk == 1) {
#if WSKX_SSE2
        /* whole 16 x 16 tiles: sample rows n0 .. n0 + 15, columns k0 .. k0 + 15 */
        for (n0 = 0; n0 + 16 <= N; n0 += 16)
            for (k0 = 0; k0 + 16 <= K; k0 += 16)
                wskx_tile16(x + n0 * sn + k0, sn, scratch + k0 * N + n0, N);
        k0 = K - K % 16;
#endif
        /* the edges: samples n0 .. N for every k, then columns k0 .. K for the tiles' n */
        for (n = n0; n < N; n++)
            for (k = 0; k < K; k++)
                scratch[k * N + n] = x[n * sn + k];
        for (n = 0; n < n0; n++)
            for (k = k0; k < K; k++)
                scratch[k * N + n] = x[n * sn + k];
        return scratch;
    }
    for (k = 0; k < K; k++)
        for (n = 0; n < N; n++)
            scratch[k * N + n] = x[k * sk + n * sn];
    return scratch;
}

/* rows k0 .. k1 of the K-major X (N bytes each): out[n] = sum_k f(x[k, n]); A[k] (when not
 * NULL) = sum_n f(x[k, n]); f = (byte != 0) when nz, else the byte */
#define WSK_X_COLUMN_ARGS \
        const uint8_t* xt, ptrdiff_t k0, ptrdiff_t k1, ptrdiff_t N, int nz, \
        int64_t* restrict out, int64_t* restrict A
#define WSK_X_COLUMN_BODY                                                               \
{                                                                                       \
    ptrdiff_t k, n;                                                                     \
    for (n = 0; n < N; n++)                                                             \
        out[n] = 0;                                                                     \
    for (k = k0; k < k1; k++) {                                                         \
        const uint8_t* restrict row = xt + k * N;                                       \
        int64_t s = 0;                                                                  \
        if (nz)                                                                         \
            for (n = 0; n < N; n++) {                                                   \
                int64_t v = row[n] != 0;                                                \
                out[n] += v;                                                            \
                s += v;                                                                 \
            }                                                                           \
        else                                                                            \
            for (n = 0; n < N; n++) {                                                   \
                int64_t v = row[n];                                                     \
                out[n] += v;                                                            \
                s += v;                                                                 \
            }                                                                           \
        if (A)                                                                          \
            A[k] = s;                                                                   \
    }                                                                                   \
}

/* the samples' pass shared by the two below: for each sample n, across the columns c, the
 * column's count a = a_cn[c * N + n], v = a * wpv + 1, its running sum V[c] of v and
 * cum = V * dt; then ELEMENT writes the row's work, first and last (wr, fr, lr) at c
 * (WSK_SAMPLES_ROW: sample n's row alone). ``rampL`` > 0: the ramp floor (analytic's
 * _ramp_floor): a column past the first takes its stream and the chain's sums (rampL
 * wavelets a round) through one ramp, round n - 2's before round n ends, so its last is
 * (V + sn) * dt - dt, sn = (n - 1) * rampL (0 for n < 2: the plain last; V and sn whole
 * floats below 2**52, so V + sn is exact, the one conversion of V shared with cum) */
#define WSK_SAMPLES_ROW(...) WSK_SAMPLES_ROW_OF(a_cn + n, N, __VA_ARGS__)
/* the same, column c's count at arow[c * astep] */
#define WSK_SAMPLES_ROW_OF(arow, astep, ...)                                            \
        const double sn = n > 1 ? (double) ((int64_t) (n - 1) * rampL) : 0.0;          \
        for (c = 0; c < C; c++) {                                                       \
            const int64_t a = (arow)[c * (astep)];                                      \
            const int64_t v = a * wpv + 1;                                              \
            const int64_t vs = V[c] + v;                                                \
            const double cum = (double) vs * dt;                                        \
            V[c] = vs;                                                                  \
            __VA_ARGS__                                                                 \
        }
#define WSK_SAMPLES_LOOP(...)                                                           \
    for (n = 0; n < N; n++) {                                                           \
        double* restrict wr = work + n * C;                                             \
        double* restrict fr = first + n * C;                                            \
        double* restrict lr = last + n * C;                                             \
        WSK_SAMPLES_ROW(__VA_ARGS__)                                                    \
    }

/* a_nc (N x C) = a_cn (C x N): the counts sample by sample, so that a sample's row reads
 * them adjacent (src/wsk_step_chain.h); _avx512: 8 x 8 blocks in registers */
static inline void wsk_counts_nc(const int64_t* restrict a_cn, ptrdiff_t N, ptrdiff_t C,
                                 int64_t* restrict a_nc)
{
    ptrdiff_t c, n;
    for (c = 0; c < C; c++)
        for (n = 0; n < N; n++)
            a_nc[n * C + c] = a_cn[c * N + n];
}

/* one (n, c) of the two passes below, in one place: src/wsk_step_chain.h makes the same
 * row a round at a time */
#define WSK_WS_ELEMENT                                                                  \
        const double x = (double) a * share[c];                                         \
        const double y = (double) a * tm[c];                                            \
        wr[c] = (x > y ? x : y) + eos;                                                  \
        fr[c] = cum - (double) v * dt;                                                  \
        lr[c] = ((double) vs + (c ? sn : 0.0)) * dt - dt;
#define WSK_DENSE_ELEMENT                                                               \
        Asum[c] += a;                                                                   \
        wr[c] = (double) a * tmax + eos;                                                \
        fr[c] = (cum - (double) v * dt) + fill;                                         \
        lr[c] = (((double) vs + (c ? sn : 0.0)) * dt - dt) + fill;

/* weight-stationary (ws_step_columns): per column c, from its counts a = a_cn[c * N + n],
 * w = max(a * share[c], a * tm[c]) (the first only when it is more), work = w + eos,
 * v = a * wpv + 1, V the column's running sum of v, cum = V * dt, first = cum - v * dt,
 * last = cum - dt; returns the largest V after the last sample (0 when none is more).
 * V: C scratch */
#define WSK_WS_SAMPLES_ARGS \
        ptrdiff_t N, ptrdiff_t C, const int64_t* restrict a_cn, \
        const double* restrict share, const double* restrict tm, double eos, int64_t wpv, \
        double dt, int64_t rampL, int64_t* restrict V, double* restrict work, \
        double* restrict first, double* restrict last
#define WSK_WS_SAMPLES_BODY                                                             \
{                                                                                       \
    ptrdiff_t n, c;                                                                     \
    int64_t v_max = 0;                                                                  \
    for (c = 0; c < C; c++)                                                             \
        V[c] = 0;                                                                       \
    WSK_SAMPLES_LOOP(WSK_WS_ELEMENT)                                                    \
    for (c = 0; c < C; c++)                                                             \
        if (V[c] > v_max)                                                               \
            v_max = V[c];                                                               \
    return v_max;                                                                       \
}

/* all-dense columns (dense_stream): per column c and sample n, from a = a_cn[c * N + n],
 * work = a * tmax + eos, v = a * wpv + 1, V the column's running sum of v, cum = V * dt,
 * first = (cum - v * dt) + fill, last = (cum - dt) + fill. V and Asum: C scratch, each
 * column's sums of v and of a at the end (Asum: the sum of a over the samples) */
#define WSK_DENSE_SAMPLES_ARGS \
        ptrdiff_t N, ptrdiff_t C, const int64_t* restrict a_cn, double tmax, double eos, \
        int64_t wpv, double dt, double fill, int64_t rampL, int64_t* restrict V, \
        int64_t* restrict Asum, double* restrict work, double* restrict first, \
        double* restrict last
#define WSK_DENSE_SAMPLES_BODY                                                          \
{                                                                                       \
    ptrdiff_t n, c;                                                                     \
    for (c = 0; c < C; c++) {                                                           \
        V[c] = 0;                                                                       \
        Asum[c] = 0;                                                                    \
    }                                                                                   \
    WSK_SAMPLES_LOOP(WSK_DENSE_ELEMENT)                                                 \
}

/* each kernel uses some of these: the others are not an error */
#if defined(__GNUC__) || defined(__clang__)
#define WSK_STREAM_FN static __attribute__((unused))
#else
#define WSK_STREAM_FN static
#endif
WSK_STREAM_FN void wsk_x_column(WSK_X_COLUMN_ARGS) WSK_X_COLUMN_BODY
WSK_STREAM_FN int64_t wsk_ws_samples(WSK_WS_SAMPLES_ARGS) WSK_WS_SAMPLES_BODY
WSK_STREAM_FN void wsk_dense_samples(WSK_DENSE_SAMPLES_ARGS) WSK_DENSE_SAMPLES_BODY

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define WSK_STREAM_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
#define WSK_STREAM_WIDE 1             /* the _avx512 builds may call AVX-512 helpers */
WSK_STREAM_FN int wsk_stream_avx512_runs(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}
#else
#define WSK_STREAM_AVX512
#define WSK_STREAM_WIDE 0
WSK_STREAM_FN int wsk_stream_avx512_runs(void) { return 0; }
#endif
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
/* wsk_x_column in AVX-512 BW lanes: the samples 32 at a time, each row's bytes (0 or 1
 * with nz) summed in 16-bit lanes over at most 257 rows (255 * 257 = 65535 fits), then
 * added to 64-bit totals; A[k] by sums of absolute differences over 64 bytes at a time.
 * Integer sums: the same counts, 2-4x faster than the loop in 64-bit lanes on a step's
 * PE columns of a few rows each. */
WSK_STREAM_AVX512 WSK_STREAM_FN void wsk_x_column_avx512(WSK_X_COLUMN_ARGS)
{
    ptrdiff_t k, n0, kk, ke;
    int q;
    const __m512i one16 = _mm512_set1_epi16(1), one8 = _mm512_set1_epi8(1);
    const __m512i zero = _mm512_setzero_si512();
    for (n0 = 0; n0 < N; n0 += 32) {
        const ptrdiff_t nb = N - n0 < 32 ? N - n0 : 32;
        const __mmask32 m = nb == 32 ? 0xFFFFFFFFu : (((__mmask32) 1 << nb) - 1);
        __m512i tot[4] = {zero, zero, zero, zero};
        for (kk = k0; kk < k1; kk = ke) {
            __m512i acc = zero;
            ke = k1 - kk > 257 ? kk + 257 : k1;
            for (k = kk; k < ke; k++) {
                __m512i v = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, xt + k * N + n0));
                if (nz)
                    v = _mm512_min_epu16(v, one16);
                acc = _mm512_add_epi16(acc, v);
            }
            for (q = 0; q < 4; q++)
                tot[q] = _mm512_add_epi64(tot[q], _mm512_cvtepu16_epi64(
                    _mm512_extracti32x4_epi32(acc, q)));
        }
        for (q = 0; q < 4 && 8 * q < nb; q++) {
            const ptrdiff_t left = nb - 8 * q;
            _mm512_mask_storeu_epi64(out + n0 + 8 * q,
                                     left >= 8 ? (__mmask8) 0xFF
                                               : (__mmask8) ((1u << left) - 1), tot[q]);
        }
    }
    if (A)
        for (k = k0; k < k1; k++) {
            const uint8_t* row = xt + k * N;
            __m512i s = zero;
            for (n0 = 0; n0 < N; n0 += 64) {
                const ptrdiff_t nb = N - n0 < 64 ? N - n0 : 64;
                const __mmask64 m = nb == 64 ? ~(__mmask64) 0 : (((__mmask64) 1 << nb) - 1);
                __m512i v = _mm512_maskz_loadu_epi8(m, row + n0);
                if (nz)
                    v = _mm512_min_epu8(v, one8);
                s = _mm512_add_epi64(s, _mm512_sad_epu8(v, zero));
            }
            A[k] = _mm512_reduce_add_epi64(s);
        }
}

/* wsk_counts_nc by 8 x 8 blocks (pairs of rows interleaved, then 128-bit lanes twice),
 * the edges one by one: values moved, never changed */
WSK_STREAM_AVX512 WSK_STREAM_FN void wsk_counts_nc_avx512(
        const int64_t* restrict a_cn, ptrdiff_t N, ptrdiff_t C, int64_t* restrict a_nc)
{
    static const int lo[4] = {0, 2, 1, 3};
    ptrdiff_t c0, n0, c, n, i;
    __m512i r[8], t[8], u[8];
    for (c0 = 0; c0 + 8 <= C; c0 += 8) {
        for (n0 = 0; n0 + 8 <= N; n0 += 8) {
            for (i = 0; i < 8; i++)
                r[i] = _mm512_loadu_si512((const void*) (a_cn + (c0 + i) * N + n0));
            for (i = 0; i < 8; i += 2) {
                t[i] = _mm512_unpacklo_epi64(r[i], r[i + 1]);
                t[i + 1] = _mm512_unpackhi_epi64(r[i], r[i + 1]);
            }
            /* u[0]: columns c0 .. c0 + 3 of samples n0 and n0 + 4, u[1] of n0 + 2, n0 + 6,
               u[2] of n0 + 1, n0 + 5, u[3] of n0 + 3, n0 + 7; u[4 + j] the next 4 columns */
            for (i = 0; i < 8; i += 4) {
                u[i] = _mm512_shuffle_i64x2(t[i], t[i + 2], 0x88);
                u[i + 1] = _mm512_shuffle_i64x2(t[i], t[i + 2], 0xDD);
                u[i + 2] = _mm512_shuffle_i64x2(t[i + 1], t[i + 3], 0x88);
                u[i + 3] = _mm512_shuffle_i64x2(t[i + 1], t[i + 3], 0xDD);
            }
            /* sample lo[i] of the 8 columns: u[i]'s and u[4 + i]'s even 128-bit lanes; lo[i]
               + 4: their odd ones */
            for (i = 0; i < 4; i++) {
                _mm512_storeu_si512((void*) (a_nc + (n0 + lo[i]) * C + c0),
                                    _mm512_shuffle_i64x2(u[i], u[4 + i], 0x88));
                _mm512_storeu_si512((void*) (a_nc + (n0 + lo[i] + 4) * C + c0),
                                    _mm512_shuffle_i64x2(u[i], u[4 + i], 0xDD));
            }
        }
        for (c = c0; c < c0 + 8; c++)
            for (n = n0; n < N; n++)
                a_nc[n * C + c] = a_cn[c * N + n];
    }
    for (c = c0; c < C; c++)
        for (n = 0; n < N; n++)
            a_nc[n * C + c] = a_cn[c * N + n];
}
#else
WSK_STREAM_FN void wsk_x_column_avx512(WSK_X_COLUMN_ARGS) WSK_X_COLUMN_BODY
WSK_STREAM_FN void wsk_counts_nc_avx512(const int64_t* restrict a_cn, ptrdiff_t N,
                                        ptrdiff_t C, int64_t* restrict a_nc)
{
    wsk_counts_nc(a_cn, N, C, a_nc);
}
#endif
WSK_STREAM_AVX512 WSK_STREAM_FN int64_t wsk_ws_samples_avx512(WSK_WS_SAMPLES_ARGS)
    WSK_WS_SAMPLES_BODY
WSK_STREAM_AVX512 WSK_STREAM_FN void wsk_dense_samples_avx512(WSK_DENSE_SAMPLES_ARGS)
    WSK_DENSE_SAMPLES_BODY

#endif
