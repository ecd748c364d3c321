/* Channels-last convolution for few input channels (header-only), one image at a time.
 *
 *   wsk_small_forward:     y[oh, ow, :] = bias + sum over taps (i, j) and channels c of
 *                          x[ih, iw, c] * w[i, j, c, :]  (then ReLU when relu != 0)
 *   wsk_small_grad_weight: gw[i, j, c, :] += sum over pixels of x[ih, iw, c] * gy[oh, ow, :]
 *
 * with ih = oh * sh - ph + i * dh, iw = ow * sw - pw + j * dw; taps reading the padding
 * are skipped. With one input channel im2col writes nine floats per pixel and a GEMM of
 * depth nine runs far below BLAS's rate. Here the window (i, j, c) is flattened into
 * T = kh * kw * C taps, each a fixed offset from the window's first pixel, and:
 *   - forward, interior pixels (whole window inside x): a register tile of PX pixels x 2
 *     vectors of filters; per tap, 2 weight loads, PX broadcasts of x, 2 * PX FMAs; bias
 *     and ReLU applied in registers, one store.
 *   - kernel gradient, interior pixels: a register tile of TB taps x 2 vectors of filters
 *     kept over the whole interior; per pixel, 2 loads of gy, TB broadcasts of x, 2 * TB
 *     FMAs; added to gw once at the end.
 *   - border pixels (a window reading the padding), filters past the last whole vector,
 *     and windows of more than WSKC_MAX_TAPS taps: the per-pixel loop that skips each
 *     padding tap.
 * Tiles per target (a vector is one register; accumulators fit the register file):
 *     AVX-512 (32 zmm): PX 8, TB 12;  AVX2 (16 ymm): PX 5, TB 5;  baseline (16 xmm): PX 4, TB 5
 * Written once with GCC vector types, compiled per target; wsk_small_init(path) selects
 * the clone (path as wsk_simd_init's: 1 baseline, 2 avx2, 4 avx512). geo holds
 * sh, sw, ph, pw, dh, dw, OH, OW. The caller checked every size; nothing here raises.
 */
#ifndef WSK_CONV_SMALL_H
#define WSK_CONV_SMALL_H

#include <stddef.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64)) \
    && !defined(WSK_NO_DISPATCH)
#define WSKC_X86 1
#else
#define WSKC_X86 0
#endif

#if !(defined(__GNUC__) || defined(__clang__))
#error "wsk_conv_small.h needs GCC vector extensions"
#endif

#define WSKC_INLINE static inline __attribute__((always_inline))
#define WSKC_MAX_TAPS 256       /* the tap offsets live on the stack */

/* The interior: output rows whose every tap row is inside x, and [*lo, *hi) the output
 * columns whose every tap column is. */
static inline int wskc_row_inside(ptrdiff_t oh, ptrdiff_t H, ptrdiff_t kh, const ptrdiff_t* geo)
{
    const ptrdiff_t top = oh * geo[0] - geo[2];
    return top >= 0 && top + (kh - 1) * geo[4] < H;
}

static inline void wskc_cols_inside(ptrdiff_t W, ptrdiff_t kw, const ptrdiff_t* geo,
                                    ptrdiff_t* lo, ptrdiff_t* hi)
{
    const ptrdiff_t sw = geo[1], pw = geo[3], dw = geo[5], OW = geo[7];
    const ptrdiff_t last = W - 1 + pw - (kw - 1) * dw;  /* ow * sw may not pass it */
    ptrdiff_t a = (pw + sw - 1) / sw, b = last < 0 ? 0 : last / sw + 1;
    if (a > OW) a = OW;
    if (b > OW) b = OW;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

#define WSKC_DEFINE(V, VBYTES, SFX, TGT, ATTR, PXMAX, TBMAX)                             \
typedef V wskc_##SFX##_##TGT##_vt __attribute__((vector_size(VBYTES)));                \
/* y[oh, ow, o0:O], every tap checked against the padding (then ReLU when relu) */     \
static ATTR void wskc_pixel_##SFX##_##TGT(const V* x, ptrdiff_t H, ptrdiff_t W,        \
    ptrdiff_t C, const V* w, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t O, const ptrdiff_t* geo, \
    const V* bias, int relu, V* y, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t o0)            \
{                                                                                      \
    typedef wskc_##SFX##_##TGT##_vt VT;                                                \
    enum { L = VBYTES / sizeof(V) };                                                   \
    const ptrdiff_t sh = geo[0], sw = geo[1], ph = geo[2], pw = geo[3];                \
    const ptrdiff_t dh = geo[4], dw = geo[5], OW = geo[7];                             \
    V* yr = y + (oh * OW + ow) * O;                                                    \
    ptrdiff_t o = o0;                                                                  \
    for (; o + 4 * L <= O; o += 4 * L) {                                               \
        VT a[4];                                                                       \
        for (int u = 0; u < 4; u++) {                                                  \
            if (bias) memcpy(&a[u], bias + o + u * L, sizeof(VT));                     \
            else memset(&a[u], 0, sizeof(VT));                                         \
        }                                                                              \
        for (ptrdiff_t i = 0; i < kh; i++) {                                           \
            ptrdiff_t ih = oh * sh - ph + i * dh;                                      \
            if (ih < 0 || ih >= H) continue;                                           \
            for (ptrdiff_t j = 0; j < kw; j++) {                                       \
                ptrdiff_t iw = ow * sw - pw + j * dw;                                  \
                if (iw < 0 || iw >= W) continue;                                       \
                const V* xp = x + (ih * W + iw) * C;                                   \
                const V* wp = w + (i * kw + j) * C * O + o;                            \
                for (ptrdiff_t c = 0; c < C; c++, wp += O) {                           \
                    VT wv;                                                             \
                    const V xs = xp[c];                                                \
                    for (int u = 0; u < 4; u++) {                                      \
                        memcpy(&wv, wp + u * L, sizeof(VT));                           \
                        a[u] += xs * wv;                                               \
                    }                                                                  \
                }                                                                      \
            }                                                                          \
        }                                                                              \
        memcpy(yr + o, a, sizeof(a));                                                  \
    }                                                                                  \
    for (; o < O; o++) {                                                               \
        V s = bias ? bias[o] : 0;                                                      \
        for (ptrdiff_t i = 0; i < kh; i++) {                                           \
            ptrdiff_t ih = oh * sh - ph + i * dh;                                      \
            if (ih < 0 || ih >= H) continue;                                           \
            for (ptrdiff_t j = 0; j < kw; j++) {                                       \
                ptrdiff_t iw = ow * sw - pw + j * dw;                                  \
                if (iw < 0 || iw >= W) continue;                                       \
                for (ptrdiff_t c = 0; c < C; c++)                                      \
                    s += x[(ih * W + iw) * C + c] * w[((i * kw + j) * C + c) * O + o];  \
            }                                                                          \
        }                                                                              \
        yr[o] = s;                                                                     \
    }                                                                                  \
    if (relu)               /* a select: NaN stays NaN, as NumPy's maximum */          \
        for (o = o0; o < O; o++) yr[o] = yr[o] < 0 ? 0 : yr[o];                        \
}                                                                                      \
/* PP pixels (pstep apart in x, O apart in y) x NN vectors of filters, all taps inside */ \
WSKC_INLINE ATTR void wskc_ftile_##SFX##_##TGT(const V* xb, ptrdiff_t pstep,           \
    const ptrdiff_t* offs, ptrdiff_t T, const V* w, ptrdiff_t O, const V* bias,         \
    int relu, V* yb, const int PP, const int NN)                                       \
{                                                                                      \
    typedef wskc_##SFX##_##TGT##_vt VT;                                                \
    typedef __typeof__((VT){0} < (VT){0}) MT;                                          \
    enum { L = VBYTES / sizeof(V) };                                                   \
    VT acc[PXMAX * 2], b[2];                                                           \
    _Pragma("GCC unroll 2")                                                            \
    for (int u = 0; u < NN; u++) {                                                     \
        if (bias) memcpy(&b[u], bias + u * L, sizeof(VT));                             \
        else b[u] = (VT){0};                                                           \
    }                                                                                  \
    _Pragma("GCC unroll 8")                                                            \
    for (int p = 0; p < PP; p++) {                                                     \
        _Pragma("GCC unroll 2")                                                        \
        for (int u = 0; u < NN; u++) acc[p * NN + u] = b[u];                           \
    }                                                                                  \
    for (ptrdiff_t t = 0; t < T; t++) {                                                \
        VT wv[2];                                                                      \
        _Pragma("GCC unroll 2")                                                        \
        for (int u = 0; u < NN; u++) memcpy(&wv[u], w + t * O + u * L, sizeof(VT));    \
        const V* xt = xb + offs[t];                                                    \
        _Pragma("GCC unroll 8")                                                        \
        for (int p = 0; p < PP; p++) {                                                 \
            const V xs = xt[p * pstep];                                                \
            _Pragma("GCC unroll 2")                                                    \
            for (int u = 0; u < NN; u++) acc[p * NN + u] += xs * wv[u];                \
        }                                                                              \
    }                                                                                  \
    _Pragma("GCC unroll 8")                                                            \
    for (int p = 0; p < PP; p++) {                                                     \
        _Pragma("GCC unroll 2")                                                        \
        for (int u = 0; u < NN; u++) {                                                 \
            VT a = acc[p * NN + u];                                                    \
            if (relu)       /* clear the lanes below zero: NaN and -0.0 stay */        \
                a = (VT)((MT)a & ~(a < (VT){0}));                                      \
            memcpy(yb + p * O + u * L, &a, sizeof(VT));                                \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
static ATTR void wsk_small_forward_##SFX##_##TGT(                                       \
    const V* x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, const V* w, ptrdiff_t kh,        \
    ptrdiff_t kw, ptrdiff_t O, const ptrdiff_t* geo, const V* bias, int relu, V* y)     \
{                                                                                      \
    enum { L = VBYTES / sizeof(V) };                                                   \
    const ptrdiff_t sh = geo[0], sw = geo[1], ph = geo[2], pw = geo[3];                \
    const ptrdiff_t dh = geo[4], dw = geo[5], OH = geo[6], OW = geo[7];                \
    const ptrdiff_t T = kh * kw * C, Ov = O / L * L;                                   \
    ptrdiff_t offs[WSKC_MAX_TAPS], lo, hi;                                             \
    wskc_cols_inside(W, kw, geo, &lo, &hi);                                            \
    if (T > WSKC_MAX_TAPS || Ov == 0) lo = hi = 0;  /* all through the per-pixel loop */ \
    for (ptrdiff_t t = 0; t < T && t < WSKC_MAX_TAPS; t++)                             \
        offs[t] = ((t / C / kw) * dh * W + (t / C % kw) * dw) * C + t % C;             \
    for (ptrdiff_t oh = 0; oh < OH; oh++) {                                            \
        const int inside = hi > lo && wskc_row_inside(oh, H, kh, geo);                 \
        const ptrdiff_t a = inside ? lo : OW, e = inside ? hi : OW;                    \
        for (ptrdiff_t ow = 0; ow < a; ow++)                                           \
            wskc_pixel_##SFX##_##TGT(x, H, W, C, w, kh, kw, O, geo, bias, relu, y, oh, ow, 0); \
        for (ptrdiff_t ow = e; ow < OW; ow++)                                          \
            wskc_pixel_##SFX##_##TGT(x, H, W, C, w, kh, kw, O, geo, bias, relu, y, oh, ow, 0); \
        if (!inside) continue;                                                         \
        const V* xrow = x + (oh * sh - ph) * W * C;                                    \
        for (ptrdiff_t o = 0; o < Ov; o += 2 * L) {                                    \
            const int nn = Ov - o >= 2 * L ? 2 : 1;                                    \
            const V* bo = bias ? bias + o : NULL;                                      \
            for (ptrdiff_t ow = a; ow < e; ow += PXMAX) {                              \
                const int pp = (int)(e - ow < PXMAX ? e - ow : PXMAX);                 \
                const V* xb = xrow + (ow * sw - pw) * C;                               \
                V* yb = y + (oh * OW + ow) * O + o;                                    \
                /* literal sizes, so each call is unrolled into registers */          \
                switch (pp * 2 + nn - 3) {                                             \
                case 0: wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 1, 1); break; \
                case 1: wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 1, 2); break; \
                case 2: wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 2, 1); break; \
                case 3: wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 2, 2); break; \
                case 4: wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 3, 1); break; \
                case 5: wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 3, 2); break; \
                case 6: wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 4, 1); break; \
                case 7: wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 4, 2); break; \
                case 8: if (PXMAX >= 5) wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 5, 1); break; \
                case 9: if (PXMAX >= 5) wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 5, 2); break; \
                case 10: if (PXMAX >= 6) wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 6, 1); break; \
                case 11: if (PXMAX >= 6) wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 6, 2); break; \
                case 12: if (PXMAX >= 7) wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 7, 1); break; \
                case 13: if (PXMAX >= 7) wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 7, 2); break; \
                case 14: if (PXMAX >= 8) wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 8, 1); break; \
                default: if (PXMAX >= 8) wskc_ftile_##SFX##_##TGT(xb, sw * C, offs, T, w + o, O, bo, relu, yb, 8, 2); break; \
                }                                                                      \
            }                                                                          \
        }                                                                              \
        for (ptrdiff_t ow = a; ow < e && Ov < O; ow++)  /* the filters past Ov */      \
            wskc_pixel_##SFX##_##TGT(x, H, W, C, w, kh, kw, O, geo, bias, relu, y, oh, ow, Ov); \
    }                                                                                  \
}                                                                                      \
/* gw[t, o0:O] += x's taps of pixel (oh, ow) * gy[oh, ow, o0:O], padding taps skipped */ \
static ATTR void wskc_gpixel_##SFX##_##TGT(const V* x, ptrdiff_t H, ptrdiff_t W,       \
    ptrdiff_t C, const V* gy, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t O, const ptrdiff_t* geo, \
    V* gw, ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t o0)                                    \
{                                                                                      \
    typedef wskc_##SFX##_##TGT##_vt VT;                                                \
    enum { L = VBYTES / sizeof(V) };                                                   \
    const ptrdiff_t sh = geo[0], sw = geo[1], ph = geo[2], pw = geo[3];                \
    const ptrdiff_t dh = geo[4], dw = geo[5], OW = geo[7];                             \
    const V* gr = gy + (oh * OW + ow) * O;                                             \
    for (ptrdiff_t i = 0; i < kh; i++) {                                               \
        ptrdiff_t ih = oh * sh - ph + i * dh;                                          \
        if (ih < 0 || ih >= H) continue;                                               \
        for (ptrdiff_t j = 0; j < kw; j++) {                                           \
            ptrdiff_t iw = ow * sw - pw + j * dw;                                      \
            if (iw < 0 || iw >= W) continue;                                           \
            const V* xp = x + (ih * W + iw) * C;                                       \
            V* gp = gw + (i * kw + j) * C * O;                                         \
            for (ptrdiff_t c = 0; c < C; c++, gp += O) {                               \
                const V xs = xp[c];                                                    \
                ptrdiff_t o = o0;                                                      \
                VT gv, av;                                                             \
                for (; o + L <= O; o += L) {                                           \
                    memcpy(&gv, gr + o, sizeof(VT));                                   \
                    memcpy(&av, gp + o, sizeof(VT));                                   \
                    av += xs * gv;                                                     \
                    memcpy(gp + o, &av, sizeof(VT));                                   \
                }                                                                      \
                for (; o < O; o++) gp[o] += xs * gr[o];                                \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
/* gw[t0 + k, o:o + NN*L] += sum over the interior pixels of x's tap k * gy, k < TT */  \
WSKC_INLINE ATTR void wskc_gtile_##SFX##_##TGT(const V* x, ptrdiff_t W, ptrdiff_t C,   \
    const V* gy, ptrdiff_t O, const ptrdiff_t* geo, const ptrdiff_t* offs, V* gw,       \
    ptrdiff_t oh0, ptrdiff_t oh1, ptrdiff_t lo, ptrdiff_t hi, const int TT, const int NN) \
{                                                                                      \
    typedef wskc_##SFX##_##TGT##_vt VT;                                                \
    enum { L = VBYTES / sizeof(V) };                                                   \
    const ptrdiff_t sh = geo[0], sw = geo[1], ph = geo[2], pw = geo[3], OW = geo[7];   \
    VT acc[TBMAX * 2];                                                                 \
    _Pragma("GCC unroll 24")                                                           \
    for (int k = 0; k < TT * NN; k++) acc[k] = (VT){0};                                \
    for (ptrdiff_t oh = oh0; oh < oh1; oh++) {                                         \
        const V* xb = x + ((oh * sh - ph) * W + lo * sw - pw) * C;                     \
        const V* gr = gy + (oh * OW + lo) * O;                                         \
        for (ptrdiff_t ow = lo; ow < hi; ow++, xb += sw * C, gr += O) {                \
            VT gv[2];                                                                  \
            _Pragma("GCC unroll 2")                                                    \
            for (int u = 0; u < NN; u++) memcpy(&gv[u], gr + u * L, sizeof(VT));       \
            _Pragma("GCC unroll 12")                                                   \
            for (int k = 0; k < TT; k++) {                                             \
                const V xs = xb[offs[k]];                                              \
                _Pragma("GCC unroll 2")                                                \
                for (int u = 0; u < NN; u++) acc[k * NN + u] += xs * gv[u];            \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
    _Pragma("GCC unroll 12")                                                           \
    for (int k = 0; k < TT; k++) {                                                     \
        _Pragma("GCC unroll 2")                                                        \
        for (int u = 0; u < NN; u++) {                                                 \
            VT g;                                                                      \
            memcpy(&g, gw + k * O + u * L, sizeof(VT));                                \
            g += acc[k * NN + u];                                                      \
            memcpy(gw + k * O + u * L, &g, sizeof(VT));                                \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
static ATTR void wsk_small_grad_weight_##SFX##_##TGT(                                   \
    const V* x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, const V* gy, ptrdiff_t kh,       \
    ptrdiff_t kw, ptrdiff_t O, const ptrdiff_t* geo, V* gw)                             \
{                                                                                      \
    enum { L = VBYTES / sizeof(V) };                                                   \
    const ptrdiff_t sh = geo[0], ph = geo[2], dh = geo[4], OH = geo[6], OW = geo[7];   \
    const ptrdiff_t T = kh * kw * C, Ov = O / L * L;                                   \
    ptrdiff_t offs[WSKC_MAX_TAPS], lo, hi, oh0, oh1;                                   \
    wskc_cols_inside(W, kw, geo, &lo, &hi);                                            \
    /* the interior rows: oh * sh - ph >= 0 and oh * sh - ph + (kh - 1) * dh < H */   \
    oh0 = (ph + sh - 1) / sh;                                                          \
    {                                                                                  \
        const ptrdiff_t last = H - 1 + ph - (kh - 1) * dh;                             \
        oh1 = last < 0 ? 0 : last / sh + 1;                                            \
    }                                                                                  \
    if (oh0 > OH) oh0 = OH;                                                            \
    if (oh1 > OH) oh1 = OH;                                                            \
    if (oh1 < oh0) oh1 = oh0;                                                          \
    if (T > WSKC_MAX_TAPS || Ov == 0 || hi == lo || oh1 == oh0) {                      \
        lo = hi = 0;                               /* all through the per-pixel loop */ \
        oh0 = oh1 = 0;                                                                 \
    }                                                                                  \
    for (ptrdiff_t t = 0; t < T && t < WSKC_MAX_TAPS; t++)                             \
        offs[t] = ((t / C / kw) * dh * W + (t / C % kw) * geo[5]) * C + t % C;         \
    for (ptrdiff_t oh = 0; oh < OH; oh++) {                                            \
        const int inside = oh >= oh0 && oh < oh1;                                      \
        const ptrdiff_t a = inside ? lo : OW, e = inside ? hi : OW;                    \
        for (ptrdiff_t ow = 0; ow < a; ow++)                                           \
            wskc_gpixel_##SFX##_##TGT(x, H, W, C, gy, kh, kw, O, geo, gw, oh, ow, 0);  \
        for (ptrdiff_t ow = e; ow < OW; ow++)                                          \
            wskc_gpixel_##SFX##_##TGT(x, H, W, C, gy, kh, kw, O, geo, gw, oh, ow, 0);  \
        for (ptrdiff_t ow = a; ow < e && Ov < O; ow++)  /* the filters past Ov */      \
            wskc_gpixel_##SFX##_##TGT(x, H, W, C, gy, kh, kw, O, geo, gw, oh, ow, Ov); \
    }                                                                                  \
    if (oh1 == oh0) return;                                                            \
    /* taps in near-equal blocks of at most TBMAX (9 taps: one block, not 8 + 1) */    \
    const ptrdiff_t nblk = (T + TBMAX - 1) / TBMAX, per = (T + nblk - 1) / nblk;       \
    for (ptrdiff_t t = 0; t < T; t += per) {                                           \
        const int tt = (int)(T - t < per ? T - t : per);                               \
        for (ptrdiff_t o = 0; o < Ov; o += 2 * L) {                                    \
            const int nn = Ov - o >= 2 * L ? 2 : 1;                                    \
            const V* g0 = gy + o;                                                      \
            V* d = gw + t * O + o;                                                     \
            const ptrdiff_t* of = offs + t;                                            \
            switch ((tt - 1) * 2 + nn - 1) {                                           \
            WSKC_GCASE(SFX, TGT, 1) WSKC_GCASE(SFX, TGT, 2) WSKC_GCASE(SFX, TGT, 3)    \
            WSKC_GCASE(SFX, TGT, 4) WSKC_GCASE(SFX, TGT, 5) WSKC_GCASE(SFX, TGT, 6)    \
            WSKC_GCASE(SFX, TGT, 7) WSKC_GCASE(SFX, TGT, 8) WSKC_GCASE(SFX, TGT, 9)    \
            WSKC_GCASE(SFX, TGT, 10) WSKC_GCASE(SFX, TGT, 11) WSKC_GCASE(SFX, TGT, 12) \
            default: break;                                                            \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
}

/* one tap-count case of the kernel gradient's switch, both vector counts */
#define WSKC_GCASE(SFX, TGT, TTv)                                                      \
    case (TTv - 1) * 2:                                                                \
        if (TTv <= TBMAX_##TGT)                                                        \
            wskc_gtile_##SFX##_##TGT(x, W, C, g0, O, geo, of, d, oh0, oh1, lo, hi, TTv, 1); \
        break;                                                                         \
    case (TTv - 1) * 2 + 1:                                                            \
        if (TTv <= TBMAX_##TGT)                                                        \
            wskc_gtile_##SFX##_##TGT(x, W, C, g0, O, geo, of, d, oh0, oh1, lo, hi, TTv, 2); \
        break;

#define WSKC_DEFINE_TARGET(TGT, ATTR, VBYTES, PXMAX, TBMAX)                              \
    WSKC_DEFINE(float, VBYTES, f32, TGT, ATTR, PXMAX, TBMAX)                            \
    WSKC_DEFINE(double, VBYTES, f64, TGT, ATTR, PXMAX, TBMAX)

#define WSKC_NOATTR
#define TBMAX_base 5
#define TBMAX_avx2 5
#define TBMAX_avx512 12
WSKC_DEFINE_TARGET(base, WSKC_NOATTR, 16, 4, TBMAX_base)
#if WSKC_X86
WSKC_DEFINE_TARGET(avx2, __attribute__((target("arch=x86-64-v3"))), 32, 5, TBMAX_avx2)
WSKC_DEFINE_TARGET(avx512, __attribute__((target("arch=x86-64-v4"))), 64, 8, TBMAX_avx512)
#endif

typedef void (*wsk_small_fwd_f32_t)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    const ptrdiff_t*, const float*, int, float*);
typedef void (*wsk_small_fwd_f64_t)(const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    const ptrdiff_t*, const double*, int, double*);
typedef void (*wsk_small_gw_f32_t)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                   const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                   const ptrdiff_t*, float*);
typedef void (*wsk_small_gw_f64_t)(const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                   const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                   const ptrdiff_t*, double*);
static wsk_small_fwd_f32_t wsk_small_forward_f32 = wsk_small_forward_f32_base;
static wsk_small_fwd_f64_t wsk_small_forward_f64 = wsk_small_forward_f64_base;
static wsk_small_gw_f32_t wsk_small_grad_weight_f32 = wsk_small_grad_weight_f32_base;
static wsk_small_gw_f64_t wsk_small_grad_weight_f64 = wsk_small_grad_weight_f64_base;

/* path: 1 baseline, 2 avx2, 4 avx512 (the caller checked the CPU runs it). */
static void wsk_small_init(int path)
{
    wsk_small_forward_f32 = wsk_small_forward_f32_base;
    wsk_small_forward_f64 = wsk_small_forward_f64_base;
    wsk_small_grad_weight_f32 = wsk_small_grad_weight_f32_base;
    wsk_small_grad_weight_f64 = wsk_small_grad_weight_f64_base;
#if WSKC_X86
    if (path == 2) {
        wsk_small_forward_f32 = wsk_small_forward_f32_avx2;
        wsk_small_forward_f64 = wsk_small_forward_f64_avx2;
        wsk_small_grad_weight_f32 = wsk_small_grad_weight_f32_avx2;
        wsk_small_grad_weight_f64 = wsk_small_grad_weight_f64_avx2;
    } else if (path == 4) {
        wsk_small_forward_f32 = wsk_small_forward_f32_avx512;
        wsk_small_forward_f64 = wsk_small_forward_f64_avx512;
        wsk_small_grad_weight_f32 = wsk_small_grad_weight_f32_avx512;
        wsk_small_grad_weight_f64 = wsk_small_grad_weight_f64_avx512;
    }
#else
    (void)path;
#endif
}

#endif
