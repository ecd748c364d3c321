/* A kept step's per-sample pass and its chain over the samples in one loop (header-only):
 * _step_cost.WsStep.run and _screen.DenseStep.run. Each sample's work, first and last
 * (src/wsk_stream.h's WSK_WS_ELEMENT / WSK_DENSE_ELEMENT, the same row) go into one
 * row of 3 x C floats that the chain's round (src/wsk_chain.h's wsk_chain_next) takes at
 * once, while it is in the first-level cache, instead of N rows written to memory and
 * read back: the same operations on the same values in the same order, so the same
 * floats. Built twice, as wsk_stream.h's passes: baseline, and _avx512 (the caller runs
 * it only where wsk_stream_avx512_runs).
 *
 *   row: 6 * C scratch (two samples' rows); chain: (4 + rows + N) * C scratch (E, free1,
 *   free2, free_, hist: the last ``rows`` rounds' G, wsk_chain_rows(N, Lg, C, cushion),
 *   and the counts a_cn sample by sample: wsk_counts_nc);
 *   the chain's figures as chain_rounds takes them (src/_chain.pxd, ``push`` included),
 *   ``exact`` as wsk_chain_impl's. N >= 1 and C >= 1 (else there is no round: the caller's 0.0). */
#ifndef WSK_STEP_CHAIN_H
#define WSK_STEP_CHAIN_H

#include "wsk_stream.h"
#include "wsk_chain.h"

#define WSK_STEP_CHAIN_ARGS \
        double* restrict row, long Lg, double hop, double ramp, double lat, \
        double launch, double task, double cushion, long push, double* restrict chain, \
        ptrdiff_t rows, int exact, double* restrict done

/* two samples' rows (row and row + 3 * C) go to the chain as a pair of rounds
 * (wsk_chain_next2: the same floats) where it has a serial scan and N >= 2, so rows >= 2;
 * an odd N's last, and every other chain, a round at a time. ``push`` >= 0 on a link
 * slower than a wavelet a cycle: the first PE's send queue (wsk_chain_rounds_push's
 * rounds, serial and not exact: the same floats); elsewhere it cannot bind (push -1) */
#define WSK_STEP_CHAIN_ROUNDS(shifted, f, ELEMENT, WIDE)                                  \
    wsk_chain_state s;                                                                  \
    wsk_chain_begin(&s, shifted, f, Lg, C, hop, ramp, lat, launch, task, cushion, 0.0,  \
                    chain, chain + C, chain + 2 * C, chain + 3 * C, chain + 4 * C, rows,  \
                    dt);                                                                \
    s.wide = WIDE;                                                                      \
    /* the counts sample by sample (each row then reads its C adjacent) */             \
    int64_t* restrict a_nc = (int64_t*) (chain + 4 * C + rows * C);                     \
    if (WIDE)                                                                           \
        wsk_counts_nc_avx512(a_cn, N, C, a_nc);                                         \
    else                                                                                \
        wsk_counts_nc(a_cn, N, C, a_nc);                                                \
    if (push >= 0 && dt > 1.0) {                                                        \
        wsk_chain_set_push(&s, push);                                                   \
        exact = 0;                                                                      \
    }                                                                                   \
    if (!exact && C > 1 && Lg != 0 && N > 1 && s.push < 0) {                            \
        for (n = 0; n < N; n++) {                                                       \
            double* restrict wr = row + (n & 1 ? 3 * C : 0);                            \
            double* restrict fr = wr + C;                                               \
            double* restrict lr = wr + 2 * C;                                           \
            WSK_SAMPLES_ROW_OF(a_nc + n * C, 1, ELEMENT)                                \
            if (n & 1)                                                                  \
                wsk_chain_next2(&s, (const char*) row, (const char*) (row + C),         \
                                (const char*) (row + 2 * C), (const char*) wr,          \
                                (const char*) fr, (const char*) lr);                    \
            else if (n == N - 1)                                                        \
                wsk_chain_next(&s, (const char*) wr, sizeof(double), (const char*) fr,  \
                               sizeof(double), (const char*) lr, sizeof(double), 0);    \
        }                                                                               \
    } else {                                                                            \
        double* restrict wr = row;                                                      \
        double* restrict fr = row + C;                                                  \
        double* restrict lr = row + 2 * C;                                              \
        for (n = 0; n < N; n++) {                                                       \
            WSK_SAMPLES_ROW_OF(a_nc + n * C, 1, ELEMENT)                                \
            wsk_chain_next(&s, (const char*) wr, sizeof(double), (const char*) fr,      \
                           sizeof(double), (const char*) lr, sizeof(double), exact);    \
        }                                                                               \
    }                                                                                   \
    *done = s.done;

/* wsk_ws_samples, then the chain (shifted by ``fill``) on its rows: its v_max */
#define WSK_WS_CHAIN_BODY(WIDE)                                                         \
{                                                                                       \
    ptrdiff_t n, c;                                                                     \
    int64_t v_max = 0;                                                                  \
    for (c = 0; c < C; c++)                                                             \
        V[c] = 0;                                                                       \
    WSK_STEP_CHAIN_ROUNDS(1, fill, WSK_WS_ELEMENT, WIDE)                                \
    for (c = 0; c < C; c++)                                                             \
        if (V[c] > v_max)                                                               \
            v_max = V[c];                                                               \
    return v_max;                                                                       \
}

/* wsk_dense_samples (its ``fill`` in first and last), then the chain on its rows */
#define WSK_DENSE_CHAIN_BODY(WIDE)                                                      \
{                                                                                       \
    ptrdiff_t n, c;                                                                     \
    for (c = 0; c < C; c++) {                                                           \
        V[c] = 0;                                                                       \
        Asum[c] = 0;                                                                    \
    }                                                                                   \
    WSK_STEP_CHAIN_ROUNDS(0, 0.0, WSK_DENSE_ELEMENT, WIDE)                              \
}

/* the largest column sums over the N samples of a (C x N counts) and of v = a * wpv + 1
 * (sum v = sum a * wpv + N: integers, the samples' pass's V), known before the chain
 * (its exact scan's bound) */
#define WSK_COLUMN_SUMS_ARGS \
        ptrdiff_t N, ptrdiff_t C, const int64_t* restrict a_cn, int64_t wpv, \
        int64_t* restrict a_max, int64_t* restrict v_max
#define WSK_COLUMN_SUMS_BODY                                                            \
{                                                                                       \
    ptrdiff_t n, c;                                                                     \
    int64_t am = 0, vm = 0;                                                             \
    for (c = 0; c < C; c++) {                                                           \
        int64_t s = 0;                                                                  \
        for (n = 0; n < N; n++)                                                         \
            s += a_cn[c * N + n];                                                       \
        if (s > am)                                                                     \
            am = s;                                                                     \
        if (s * wpv + N > vm)                                                           \
            vm = s * wpv + N;                                                           \
    }                                                                                   \
    *a_max = am;                                                                        \
    *v_max = vm;                                                                        \
}

#define WSK_WS_CHAIN_ARGS \
        ptrdiff_t N, ptrdiff_t C, const int64_t* restrict a_cn, \
        const double* restrict share, const double* restrict tm, double eos, int64_t wpv, \
        double dt, double fill, int64_t rampL, int64_t* restrict V, WSK_STEP_CHAIN_ARGS
#define WSK_DENSE_CHAIN_ARGS \
        ptrdiff_t N, ptrdiff_t C, const int64_t* restrict a_cn, double tmax, double eos, \
        int64_t wpv, double dt, double fill, int64_t rampL, int64_t* restrict V, \
        int64_t* restrict Asum, WSK_STEP_CHAIN_ARGS

WSK_STREAM_FN int64_t wsk_ws_chain(WSK_WS_CHAIN_ARGS) WSK_WS_CHAIN_BODY(0)
WSK_STREAM_FN void wsk_dense_chain(WSK_DENSE_CHAIN_ARGS) WSK_DENSE_CHAIN_BODY(0)
WSK_STREAM_FN void wsk_column_sums(WSK_COLUMN_SUMS_ARGS) WSK_COLUMN_SUMS_BODY

/* WSK_STREAM_AVX512: the AVX-512 target where the compiler targets x86, else nothing */
WSK_STREAM_AVX512 WSK_STREAM_FN int64_t wsk_ws_chain_avx512(WSK_WS_CHAIN_ARGS)
    WSK_WS_CHAIN_BODY(WSK_STREAM_WIDE)
WSK_STREAM_AVX512 WSK_STREAM_FN void wsk_dense_chain_avx512(WSK_DENSE_CHAIN_ARGS)
    WSK_DENSE_CHAIN_BODY(WSK_STREAM_WIDE)
WSK_STREAM_AVX512 WSK_STREAM_FN void wsk_column_sums_avx512(WSK_COLUMN_SUMS_ARGS)
    WSK_COLUMN_SUMS_BODY

#endif
