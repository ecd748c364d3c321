/* The max-plus recurrence of one reduction chain over its rounds (src/_chain.pxd's
 * chain_rounds, which documents it), in C so that one body builds twice: for the baseline
 * and, where the CPU runs it, for AVX-512 (wider lanes over the chain's positions).
 * Every float is the same: each position's operations are per lane, in the same order
 * (built with -ffp-contract=off), and a > b ? a : b is what MAXPD computes lane by lane,
 * NaN and signed zeros included. Only the h/tl scan is serial, and it is the same code. */
#ifndef WSK_CHAIN_H
#define WSK_CHAIN_H

#include <math.h>
#include <stddef.h>

static inline double wsk_chain_dmax(double a, double b) { return a > b ? a : b; }

#define WSK_AT(base, i, si, j, sj) \
    (*(const double*) ((base) + (ptrdiff_t) (i) * (si) + (ptrdiff_t) (j) * (sj)))

/* one round's E and G over the positions, and each receiver's arrival G + lat + ramp (the
 * scan's term off its serial path, in ``arrive``): each position's own lane (the scratch
 * rows and the inputs never overlap, so the loop runs as wide as the target allows) */
static inline __attribute__((always_inline)) void wsk_chain_round(
        double* restrict E, double* restrict Gr, double* restrict arrive,
        const double* restrict free1, const double* restrict free2, const char* restrict work,
        ptrdiff_t w_sc, const char* restrict first, ptrdiff_t a_sc, const char* restrict last,
        ptrdiff_t b_sc, int shifted, double f, double task, double lat, double ramp,
        double dt, ptrdiff_t P)
{
    ptrdiff_t c;
    double start, g;
    if (shifted) {
        for (c = 0; c < P; c++) {
            start = wsk_chain_dmax(wsk_chain_dmax(E[c], free2[c]),
                                   WSK_AT(first, c, a_sc, 0, 0) + f);
            E[c] = wsk_chain_dmax(start + WSK_AT(work, c, w_sc, 0, 0),
                                  (WSK_AT(last, c, b_sc, 0, 0) + f) + task);
            g = wsk_chain_dmax(E[c], free1[c]);
            Gr[c] = g;
            /* the first sums cross the ramp once the round's end-of-stream marker has
               left it, dt after: they reach the core dt after that marker */
            arrive[c] = wsk_chain_dmax(g, (WSK_AT(last, c, b_sc, 0, 0) + f) + dt) + lat + ramp;
        }
    } else {
        for (c = 0; c < P; c++) {
            start = wsk_chain_dmax(wsk_chain_dmax(E[c], free2[c]), WSK_AT(first, c, a_sc, 0, 0));
            E[c] = wsk_chain_dmax(start + WSK_AT(work, c, w_sc, 0, 0),
                                  WSK_AT(last, c, b_sc, 0, 0) + task);
            g = wsk_chain_dmax(E[c], free1[c]);
            Gr[c] = g;
            arrive[c] = wsk_chain_dmax(g, WSK_AT(last, c, b_sc, 0, 0) + dt) + lat + ramp;
        }
    }
}

/* each sender's free round from its tail (in v, the scan's other term off its serial
 * path): ((tail - ramp) - lat) + 1, each position's own lane; with ``later`` (the
 * receivers' G of round nb), the later of that and later[c] + back + 1 (a sender's last
 * push waits for its receiver) */
static inline __attribute__((always_inline)) void wsk_chain_free(
        double* restrict v, double ramp, double lat, ptrdiff_t n)
{
    ptrdiff_t c;
    for (c = 0; c < n; c++)
        v[c] = v[c] - ramp - lat + 1;
}

static inline __attribute__((always_inline)) void wsk_chain_free_cushion(
        double* restrict v, double ramp, double lat, const double* restrict later, long back,
        double sp, ptrdiff_t n)
{
    ptrdiff_t c;
    for (c = 0; c < n; c++)
        v[c] = wsk_chain_dmax(v[c] - ramp - lat + 1, later[c] + back * sp + 1);
}

/* the chain's arguments, any strides: (position, round) byte strides per array */
#define WSK_CHAIN_ARGS \
        const char* work, ptrdiff_t w_sc, ptrdiff_t w_sn, \
        const char* first, ptrdiff_t a_sc, ptrdiff_t a_sn, \
        const char* last, ptrdiff_t b_sc, ptrdiff_t b_sn, int shifted, double f, long Lg, \
        ptrdiff_t P, ptrdiff_t N, double hop, double ramp, double lat, double launch, \
        double task, double cushion, double done, double* E, double* free1, double* free2, \
        double* free_, double* hist, double dt

/* the chain between its rounds (wsk_chain_begin, then wsk_chain_next once a round): a
 * caller that makes each round's work, first and last as it goes (src/wsk_step_chain.h)
 * keeps one round of them, not N; wsk_chain_impl is the same two calls. ``hist`` holds
 * the last ``rows`` rounds' G (round n in row n % rows): N, or wsk_chain_rows' fewer */
typedef struct {
    double f, hop, ramp, lat, launch, task, cushion, done, dt, delta, sp, Ls;
    double tail0;                     /* the first PE's last wavelet of the round before on
                                         its link (push >= 0: the queue keeps the order) */
    long Lg;
    int shifted;
    int wide;                         /* the exact scan in AVX-512 lanes (the caller's
                                         target has it: wsk_chain_exact_avx512) */
    long push;                        /* the first PE's send queue (wsk_chain_rounds_push) */
    long take;                        /* the root's input queue (wsk_chain_set_push) */
    ptrdiff_t P, n, rows, slot;       /* slot: n % rows, kept as n goes (no division) */
    double* E;
    double* free1;
    double* free2;
    double* free_;
    double* hist;
} wsk_chain_state;

static inline __attribute__((always_inline)) void wsk_chain_begin(
        wsk_chain_state* s, int shifted, double f, long Lg, ptrdiff_t P, double hop,
        double ramp, double lat, double launch, double task, double cushion, double done,
        double* E, double* free1, double* free2, double* free_, double* hist,
        ptrdiff_t rows, double dt)
{
    ptrdiff_t c;
    s->delta = hop + 2 * ramp + lat;
    /* ``dt``: cycles a link holds a wavelet (1 / its rate). ``sp``: cycles between two
       wavelets of sums, dt or the reducer's one cycle, whichever is longer. A message
       of Lg wavelets spans (Lg - 1) * sp + 1 cycles: Ls (Lg where sp is 1, the very
       expression, so the same floats) */
    s->sp = dt > 1.0 ? dt : 1.0;
    s->Ls = s->sp == 1.0 ? (double) Lg : (double) (Lg - 1) * s->sp + 1.0;
    s->f = f, s->hop = hop, s->ramp = ramp, s->lat = lat, s->launch = launch;
    s->task = task, s->cushion = cushion, s->done = done, s->dt = dt;
    s->Lg = Lg, s->shifted = shifted, s->wide = 0, s->P = P, s->n = 0, s->rows = rows;
    s->slot = 0;
    s->push = -1;
    s->take = 0;
    s->tail0 = -HUGE_VAL;
    s->E = E, s->free1 = free1, s->free2 = free2, s->free_ = free_, s->hist = hist;
    for (c = 0; c < P; c++) {
        E[c] = 0.0;
        free1[c] = 0.0;
        free2[c] = 0.0;
    }
}

/* the first PE's send queue, ``push`` wavelets deep (its queue and those in flight on the
 * ramp and through the turnaround: the engine's cap_push, q + ceil(lat + ramp)), and with
 * it the root's input queue: the wavelets its core's queue holds, in flight on its ramp
 * included (the engine's cap_ramp, q + ceil(ramp)), the same q: push less
 * ceil(lat + ramp), plus ceil(ramp); none below 0. Worked out in double: a latency past
 * long's range (or inf, NaN) makes no undefined cast; past 1e18 no chain's sums reach it */
static inline void wsk_chain_set_push(wsk_chain_state* s, long push)
{
    double take = ((double) push - ceil(s->lat + s->ramp)) + ceil(s->ramp);
    s->push = push;
    s->take = take >= 1e18 ? (long) 1e18 : take > 0 ? (long) take : 0;
}

/* the exact scan (wsk_chain_impl's ``exact``) of positions 1 .. P - 2 of v, h its start:
 * a_c - c * delta, their running maximum, then that + c * delta + Ls - 1 (c < 2**31:
 * chain_exact) */
static inline __attribute__((always_inline)) void wsk_chain_exact(
        double* restrict v, int P, double h, double delta, double Ls)
{
    double m = h;
    int ci;
    for (ci = 1; ci < P - 1; ci++)
        v[ci] = v[ci] - (double) ci * delta;
    for (ci = 1; ci < P - 1; ci++) {
        m = wsk_chain_dmax(m, v[ci]);
        v[ci] = m;
    }
    for (ci = 1; ci < P - 1; ci++)
        v[ci] = ((v[ci] + (double) ci * delta) + Ls) - 1;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
/* wsk_chain_exact in one pass, 8 positions a vector: the running maximum as each
 * vector's prefix maximum (lanes shifted by 1, 2, 4, -inf coming in) and the maximum of
 * the vectors before (its last lane, broadcast). Each position's operations are
 * wsk_chain_exact's; the maximum is of the same values, only in another order, and the
 * exact scan holds whole numbers (no NaN): only a zero's sign could differ, and no zero
 * reaches a result (+ Ls, Ls >= 1, follows; wsk_chain_impl's comment) */
__attribute__((target("avx512f"))) static void wsk_chain_exact_avx512(
        double* restrict v, int P, double h, double delta, double Ls)
{
    const __m512d vd = _mm512_set1_pd(delta), vL = _mm512_set1_pd(Ls);
    const __m512d one = _mm512_set1_pd(1.0), eight = _mm512_set1_pd(8.0);
    const __m512i ninf = _mm512_castpd_si512(_mm512_set1_pd(-HUGE_VAL));
    const __m512i last = _mm512_set1_epi64(7);
    __m512d carry = _mm512_set1_pd(h);
    __m512d idx = _mm512_set_pd(8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0);
    int ci;
    for (ci = 1; ci < P - 1; ci += 8) {
        const int left = P - 1 - ci;
        const __mmask8 m = left >= 8 ? (__mmask8) 0xFF : (__mmask8) ((1u << left) - 1);
        const __m512d cd = _mm512_mul_pd(idx, vd);
        __m512d x = _mm512_sub_pd(_mm512_mask_loadu_pd(_mm512_castsi512_pd(ninf), m, v + ci),
                                  cd);
        __m512i xi = _mm512_castpd_si512(x);
        x = _mm512_max_pd(_mm512_castsi512_pd(_mm512_alignr_epi64(xi, ninf, 7)), x);
        xi = _mm512_castpd_si512(x);
        x = _mm512_max_pd(_mm512_castsi512_pd(_mm512_alignr_epi64(xi, ninf, 6)), x);
        xi = _mm512_castpd_si512(x);
        x = _mm512_max_pd(_mm512_castsi512_pd(_mm512_alignr_epi64(xi, ninf, 4)), x);
        x = _mm512_max_pd(carry, x);
        carry = _mm512_permutexvar_pd(last, x);
        _mm512_mask_storeu_pd(v + ci, m, _mm512_sub_pd(_mm512_add_pd(_mm512_add_pd(x, cd), vL),
                                                       one));
        idx = _mm512_add_pd(idx, eight);
    }
}
#else
static void wsk_chain_exact_avx512(double* restrict v, int P, double h, double delta,
                                   double Ls)
{
    wsk_chain_exact(v, P, h, delta, Ls);
}
#endif

/* round s->n of the chain: its work, first and last at ``work``, ``first``, ``last``
 * (the positions w_sc, a_sc, b_sc bytes apart) */
static inline __attribute__((always_inline)) void wsk_chain_next(
        wsk_chain_state* restrict s, const char* work, ptrdiff_t w_sc, const char* first,
        ptrdiff_t a_sc, const char* last, ptrdiff_t b_sc, int exact)
{
    const double delta = s->delta, sp = s->sp, Ls = s->Ls, f = s->f, hop = s->hop;
    const double ramp = s->ramp, lat = s->lat, launch = s->launch, task = s->task;
    const double cushion = s->cushion, dt = s->dt;
    const long Lg = s->Lg;
    const int shifted = s->shifted;
    const ptrdiff_t P = s->P, n = s->n;
    double* const E = s->E;
    double* const hist = s->hist;
    double* free1 = s->free1;
    double* free2 = s->free2;
    double* free_ = s->free_;
    double h, h1, tl, D, hold;
    double* Gr;
    long ahead, back;
    ptrdiff_t nb, c;
    const ptrdiff_t rows = s->rows, slot = s->slot;
    Gr = hist + slot * P;
    wsk_chain_round(E, Gr, free_, free1, free2, work, w_sc, first, a_sc, last, b_sc,
                    shifted, f, task, lat, ramp, dt, P);
    if (P == 1 || Lg == 0) {
        for (c = 0; c < P; c++)
            free_[c] = Gr[c];
        D = Gr[P - 1] + task;
        free_[P - 1] = D;
    } else {
        /* the serial scan holds only its own two recurrences: the receivers' arrivals
           were worked out with G, in free_, and each tail becomes a free round after
           it (the same operations on each value) */
        h = Gr[0] + launch + ramp;
        /* with the send queue the first PE may queue a round's sums before the link has
           taken the last round's: they leave behind them, sp apart (the link is one
           queue), not at h */
        if (s->push >= 0 && sp > 1.0)
            h = wsk_chain_dmax(h, s->tail0 + sp);
        tl = h + Ls - 1;
        h1 = h;
        s->tail0 = tl;
        free_[0] = tl;
        if (exact) {
            if (s->wide)
                wsk_chain_exact_avx512(free_, (int) P, h, delta, Ls);
            else
                wsk_chain_exact(free_, (int) P, h, delta, Ls);
            if (P > 2)
                tl = free_[P - 2];
        } else {
            for (c = 1; c < P - 1; c++) {
                h = wsk_chain_dmax(h + delta, free_[c]);
                tl = wsk_chain_dmax(tl + delta, h + Ls - 1);
                free_[c] = tl;
            }
        }
        /* the root takes its first sums once its own end-of-stream marker has left
           its ramp (dt), the rest sp apart */
        hold = WSK_AT(last, P - 1, b_sc, 0, 0);
        if (shifted)
            hold = hold + f;
        D = wsk_chain_dmax(wsk_chain_dmax(tl + hop + ramp, Gr[P - 1] + Lg - 1),
                           (hold + dt) + Ls - 1) + 1 + task;
        if (s->push >= 0 && dt > 1.0 && Lg - 1 - s->take >= 0) {
            /* the root takes the sums waiting in its input queue (take of them) one a
               cycle from G; each later one crosses its ramp once a queued one has left,
               no sooner than G, a link's dt apart: the last ramp + (Lg - 1 - take) dt
               after G (a slow link: the model took one a cycle, seed 304) */
            D = wsk_chain_dmax(D, ((Gr[P - 1] + ramp) + (double) (Lg - 1 - s->take) * dt)
                                  + 1 + task);
        }
        /* (long) of inf or >= 2^63 is undefined: a cushion past 1e18 holds every round */
        ahead = n * Lg + Lg - 1 - (long) (cushion < 1e18 ? cushion : 1e18);
        if (ahead >= 0) {
            nb = ahead / Lg;
            back = ahead % Lg;
            /* round nb's row: n - nb < rows rounds back */
            nb = slot - (n - nb);
            if (nb < 0)
                nb += rows;
            wsk_chain_free_cushion(free_, ramp, lat, hist + nb * P + 1, back, sp, P - 1);
        } else {
            wsk_chain_free(free_, ramp, lat, P - 1);
        }
        if (s->push >= 0 && sp > 1.0) {
            /* the first PE pushes its stored sums into its router's send queue (push
               wavelets deep, in flight included) one a cycle, and is free once the last
               is in it, not once the slow link has taken it: the next round's launch
               overlaps the queue's drain. Push j waits for wavelet j - push to leave,
               h + (j - push) * sp; the last such wait is the latest */
            double h0 = Gr[0] + launch + ramp;
            double own = (h0 - ramp - lat) + (double) (Lg - 1);
            /* h1: this round's first wavelet on the link (after the round before's) */
            if (Lg - 1 - s->push >= 0)
                own = wsk_chain_dmax(own, h1 + (double) (Lg - 1 - s->push) * sp);
            own = own + 1;
            if (ahead >= 0)
                own = wsk_chain_dmax(own, hist[nb * P + 1] + back * sp + 1);
            free_[0] = own;
        }
        free_[P - 1] = D;
    }
    s->free_ = free2;
    s->free2 = free1;
    s->free1 = free_;
    s->done = wsk_chain_dmax(s->done, D);
    s->n = n + 1;
    s->slot = slot + 1 == rows ? 0 : slot + 1;
}

/* positions apart that wsk_chain_next2's second round scans behind its first: a block */
#define WSK_CHAIN_SKEW 32

/* the serial scan's step at position c of one round (wsk_chain_next's, not exact): its
 * h and tl, the tail into v[c] */
#define WSK_CHAIN_SCAN_STEP(h, tl, v, c)                                                \
    do {                                                                                \
        h = wsk_chain_dmax(h + delta, (v)[c]);                                          \
        tl = wsk_chain_dmax(tl + delta, h + Ls - 1);                                    \
        (v)[c] = tl;                                                                    \
    } while (0)

/* m steps of two scans side by side, (hA, tlA) over XA[0 .. m) and (hB, tlB) over
 * XB[0 .. m): where the build has SSE2 (every x86-64), the two in the lanes of one
 * register, half the operations (MAXPD is a > b ? a : b lane by lane, NaN and signed
 * zeros included: each lane's floats are WSK_CHAIN_SCAN_STEP's) */
#if defined(__SSE2__)
#include <emmintrin.h>
#define WSK_CHAIN_SCAN_PAIR(XA, XB, m)                                                  \
    do {                                                                                \
        double* const xa_ = (XA);                                                       \
        double* const xb_ = (XB);                                                       \
        const __m128d d_ = _mm_set1_pd(delta), L_ = _mm_set1_pd(Ls);                    \
        const __m128d one_ = _mm_set1_pd(1.0);                                          \
        __m128d h_ = _mm_set_pd(hB, hA), t_ = _mm_set_pd(tlB, tlA);                     \
        for (k = 0; k < (m); k++) {                                                     \
            h_ = _mm_max_pd(_mm_add_pd(h_, d_), _mm_loadh_pd(_mm_load_sd(xa_ + k), xb_ + k)); \
            t_ = _mm_max_pd(_mm_add_pd(t_, d_), _mm_sub_pd(_mm_add_pd(h_, L_), one_));  \
            _mm_storel_pd(xa_ + k, t_);                                                 \
            _mm_storeh_pd(xb_ + k, t_);                                                 \
        }                                                                               \
        hA = _mm_cvtsd_f64(h_), hB = _mm_cvtsd_f64(_mm_unpackhi_pd(h_, h_));            \
        tlA = _mm_cvtsd_f64(t_), tlB = _mm_cvtsd_f64(_mm_unpackhi_pd(t_, t_));          \
    } while (0)
#else
#define WSK_CHAIN_SCAN_PAIR(XA, XB, m)                                                  \
    do {                                                                                \
        for (k = 0; k < (m); k++) {                                                     \
            WSK_CHAIN_SCAN_STEP(hA, tlA, (XA), k);                                      \
            WSK_CHAIN_SCAN_STEP(hB, tlB, (XB), k);                                      \
        }                                                                               \
    } while (0)
#endif

/* the cushion's row of a round (round nb's G, from position 1) and its ``back``, as
 * wsk_chain_next finds them; NULL when the round reads none */
static inline __attribute__((always_inline)) const double* wsk_chain_later(
        const wsk_chain_state* s, ptrdiff_t n, ptrdiff_t slot, long* back)
{
    const long Lg = s->Lg;
    long ahead = n * Lg + Lg - 1 - (long) (s->cushion < 1e18 ? s->cushion : 1e18);
    ptrdiff_t nb;
    if (ahead < 0)
        return NULL;
    nb = ahead / Lg;
    *back = ahead % Lg;
    nb = slot - (n - nb);
    if (nb < 0)
        nb += s->rows;
    return s->hist + nb * s->P + 1;
}

/* rounds s->n and s->n + 1 of a chain whose positions are adjacent floats (their rows at
 * work, first, last and work2, first2, last2): the same floats as two wsk_chain_next
 * calls (not exact), in another order. Round n + 1's scan at position c needs only round
 * n's free round at c (its tail at c, and G at c + 1 of a round <= n for the cushion), so
 * it runs a block of positions behind round n's, in the same loop: two independent
 * serial scans side by side (twice the work between two waits on a scan's latency),
 * each block's lane-wide passes between them. Needs P >= 2, Lg >= 1 and rows >= 2 (the
 * cushion's row of round n is never round n + 1's: it is n - floor(cushion) / Lg, and
 * rows is that + 2, or N) */
static inline __attribute__((always_inline)) void wsk_chain_next2(
        wsk_chain_state* restrict s, const char* work, const char* first, const char* last,
        const char* work2, const char* first2, const char* last2)
{
    if (s->push >= 0) {       /* the send queue's wait is in wsk_chain_next alone */
        wsk_chain_next(s, work, sizeof(double), first, sizeof(double), last, sizeof(double), 0);
        wsk_chain_next(s, work2, sizeof(double), first2, sizeof(double), last2,
                       sizeof(double), 0);
        return;
    }
    const ptrdiff_t d = sizeof(double);
    const double delta = s->delta, sp = s->sp, Ls = s->Ls, f = s->f, hop = s->hop;
    const double ramp = s->ramp, lat = s->lat, launch = s->launch, task = s->task;
    const double dt = s->dt;
    const long Lg = s->Lg;
    const int shifted = s->shifted;
    const ptrdiff_t P = s->P, n = s->n, rows = s->rows, slot = s->slot;
    const ptrdiff_t slot2 = slot + 1 == rows ? 0 : slot + 1;
    const ptrdiff_t S = P - 1;                  /* the scan's and the free rounds' positions */
    double* const E = s->E;
    /* round n: arrivals, then its free round, in X (free_); its G in GA. Round n + 1:
       the same in Z (free2, free the round before), GB; Y (free1) is round n - 1's */
    double* const X = s->free_;
    double* const Y = s->free1;
    double* const Z = s->free2;
    double* const GA = s->hist + slot * P;
    double* const GB = s->hist + slot2 * P;
    long backA = 0, backB = 0;
    const double* const laterA = wsk_chain_later(s, n, slot, &backA);
    const double* const laterB = wsk_chain_later(s, n + 1, slot2, &backB);
    double hA, tlA, hB, tlB, DA, DB, hold;
    ptrdiff_t c, c0, c1, b0, b1, k, m;

/* a block [lo, hi) of round n's free rounds, and of round n + 1's positions after it */
#define WSK_CHAIN_FREE(v, later, back, lo, hi)                                          \
    if (later)                                                                          \
        wsk_chain_free_cushion(v + (lo), ramp, lat, later + (lo), back, sp, (hi) - (lo)); \
    else                                                                                \
        wsk_chain_free(v + (lo), ramp, lat, (hi) - (lo));
#define WSK_CHAIN_ROUND_B(lo, hi)                                                       \
    wsk_chain_round(E + (lo), GB + (lo), Z + (lo), X + (lo), Y + (lo), work2 + (lo) * d, d, \
                    first2 + (lo) * d, d, last2 + (lo) * d, d, shifted, f, task, lat, ramp, \
                    dt, (hi) - (lo));

    wsk_chain_round(E, GA, X, Y, Z, work, d, first, d, last, d, shifted, f, task, lat, ramp,
                    dt, P);
    hA = GA[0] + launch + ramp;
    tlA = hA + Ls - 1;
    X[0] = tlA;
    c1 = WSK_CHAIN_SKEW < S ? WSK_CHAIN_SKEW : S;
    for (c = 1; c < c1; c++)
        WSK_CHAIN_SCAN_STEP(hA, tlA, X, c);
    WSK_CHAIN_FREE(X, laterA, backA, 0, c1)
    WSK_CHAIN_ROUND_B(0, c1)
    hB = GB[0] + launch + ramp;
    tlB = hB + Ls - 1;
    Z[0] = tlB;
    b0 = 1, b1 = c1;
    for (c0 = c1; c0 < S; c0 = c1) {
        c1 = c0 + WSK_CHAIN_SKEW < S ? c0 + WSK_CHAIN_SKEW : S;
        /* round n over [c0, c1) beside round n + 1 over [b0, b1), the block before */
        m = c1 - c0 < b1 - b0 ? c1 - c0 : b1 - b0;
        WSK_CHAIN_SCAN_PAIR(X + c0, Z + b0, m);
        for (c = c0 + m; c < c1; c++)
            WSK_CHAIN_SCAN_STEP(hA, tlA, X, c);
        for (c = b0 + m; c < b1; c++)
            WSK_CHAIN_SCAN_STEP(hB, tlB, Z, c);
        WSK_CHAIN_FREE(X, laterA, backA, c0, c1)
        WSK_CHAIN_ROUND_B(c0, c1)
        b0 = c0, b1 = c1;
    }
    for (c = b0; c < b1; c++)
        WSK_CHAIN_SCAN_STEP(hB, tlB, Z, c);
    /* round n's root (wsk_chain_next's D), its free round at P - 1 that round n + 1's
       last position takes */
    hold = WSK_AT(last, P - 1, d, 0, 0);
    if (shifted)
        hold = hold + f;
    DA = wsk_chain_dmax(wsk_chain_dmax(tlA + hop + ramp, GA[P - 1] + Lg - 1),
                        (hold + dt) + Ls - 1) + 1 + task;
    X[P - 1] = DA;
    WSK_CHAIN_ROUND_B(P - 1, P)
    WSK_CHAIN_FREE(Z, laterB, backB, 0, S)
    hold = WSK_AT(last2, P - 1, d, 0, 0);
    if (shifted)
        hold = hold + f;
    DB = wsk_chain_dmax(wsk_chain_dmax(tlB + hop + ramp, GB[P - 1] + Lg - 1),
                        (hold + dt) + Ls - 1) + 1 + task;
    Z[P - 1] = DB;
#undef WSK_CHAIN_FREE
#undef WSK_CHAIN_ROUND_B
    /* two turns of wsk_chain_next's rotation */
    s->free_ = Y;
    s->free2 = X;
    s->free1 = Z;
    s->done = wsk_chain_dmax(wsk_chain_dmax(s->done, DA), DB);
    s->n = n + 2;
    s->slot = slot2 + 1 == rows ? 0 : slot2 + 1;
}

/* the rounds of G a chain of N rounds reads back (wsk_chain_state's ``rows``): round n
 * reads round nb = n + floor((Lg - 1 - floor(cushion)) / Lg) >= n - floor(cushion) / Lg
 * - 1 (cushion >= 0, Lg >= 1; none when Lg is 0 or one position), so floor(cushion) / Lg
 * + 2 rows hold it; at most N, at least 1 */
static inline ptrdiff_t wsk_chain_rows(ptrdiff_t N, long Lg, ptrdiff_t P, double cushion)
{
    ptrdiff_t keep;
    if (N < 1 || P == 1 || Lg == 0)
        return 1;
    if (!(cushion / (double) Lg + 2.0 < (double) N))     /* NaN too: every round */
        return N;
    keep = (ptrdiff_t) ((long) cushion / Lg) + 2;
    return keep < N ? keep : N;
}

/* ``exact``: the caller has shown that every value the recurrence makes is a whole number
 * of magnitude below 2**52 (whole inputs and constants, bounded: wsk_chain_exact_bound),
 * so every sum is exact and the serial scan's two recurrences reduce to one running
 * maximum: h_c = max(h_{c-1} + delta, a_c) is c * delta plus the largest a_j - j * delta
 * (j <= c, a_0 = h_0), and tl_c = h_c + Lg - 1 (true of tl_0; tl_{c-1} + delta =
 * h_{c-1} + delta + Lg - 1 <= h_c + Lg - 1). The same values, so the same floats: a zero's
 * sign aside, which no later step can carry to the result (it ends + 1 + task).
 * The running maximum alone is serial: ``wide`` (a caller built for AVX-512) takes it
 * 8 positions at a time (wsk_chain_exact_avx512). */
static inline __attribute__((always_inline)) double wsk_chain_impl(WSK_CHAIN_ARGS, int exact,
                                                                   int wide)
{
    wsk_chain_state s;
    ptrdiff_t n;
    wsk_chain_begin(&s, shifted, f, Lg, P, hop, ramp, lat, launch, task, cushion, done, E,
                    free1, free2, free_, hist, N > 0 ? N : 1, dt);
    s.wide = wide;
    for (n = 0; n < N; n++)
        wsk_chain_next(&s, work + n * w_sn, w_sc, first + n * a_sn, a_sc, last + n * b_sn,
                       b_sc, exact);
    return s.done;
}

/* wsk_chain_rounds with the first PE's send queue ``push`` wavelets deep (< 0: not
 * modelled, wsk_chain_rounds' floats; at a link of a wavelet a cycle or faster the
 * same floats too): activation-stationary's grid_pipeline (wafer21) */
static double wsk_chain_rounds_push(WSK_CHAIN_ARGS, long push)
{
    wsk_chain_state s;
    ptrdiff_t n;
    wsk_chain_begin(&s, shifted, f, Lg, P, hop, ramp, lat, launch, task, cushion, done, E,
                    free1, free2, free_, hist, N > 0 ? N : 1, dt);
    wsk_chain_set_push(&s, push);
    for (n = 0; n < N; n++)
        wsk_chain_next(&s, work + n * w_sn, w_sc, first + n * a_sn, a_sc, last + n * b_sn,
                       b_sc, 0);
    return s.done;
}

/* any strides (grid_pipeline, the screens) */
static double wsk_chain_rounds(WSK_CHAIN_ARGS)
{
    return wsk_chain_impl(work, w_sc, w_sn, first, a_sc, a_sn, last, b_sc, b_sn, shifted, f,
                          Lg, P, N, hop, ramp, lat, launch, task, cushion, done, E, free1,
                          free2, free_, hist, dt, 0, 0);
}

/* samples-major rows (N x P, C-contiguous rows of positions: the step kernels), the
 * positions' stride a constant the loops see */
#define WSK_CHAIN_COLS_BODY(wide) \
    return wsk_chain_impl(work, sizeof(double), w_sn, first, sizeof(double), a_sn, last, \
                          sizeof(double), b_sn, shifted, f, Lg, P, N, hop, ramp, lat, \
                          launch, task, cushion, done, E, free1, free2, free_, hist, dt, \
                          exact, wide);
#define WSK_CHAIN_COLS_ARGS \
        const char* work, ptrdiff_t w_sn, const char* first, ptrdiff_t a_sn, \
        const char* last, ptrdiff_t b_sn, int shifted, double f, long Lg, ptrdiff_t P, \
        ptrdiff_t N, double hop, double ramp, double lat, double launch, double task, \
        double cushion, double done, double* E, double* free1, double* free2, \
        double* free_, double* hist, double dt, int exact

static double wsk_chain_cols(WSK_CHAIN_COLS_ARGS) { WSK_CHAIN_COLS_BODY(0) }

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
__attribute__((target("avx512f")))
static double wsk_chain_cols_avx512(WSK_CHAIN_COLS_ARGS) { WSK_CHAIN_COLS_BODY(1) }
#else
static double wsk_chain_cols_avx512(WSK_CHAIN_COLS_ARGS) { WSK_CHAIN_COLS_BODY(0) }
#endif

#endif
