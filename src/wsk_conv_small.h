/* Channels-last convolution for few input channels (header-only), one image at a time.
 *
 *   wsk_small_forward:     y[oh, ow, :] = bias + sum over taps (i, j) and channels c of
 *                          x[ih, iw, c] * w[i, j, c, :]  (then ReLU when relu != 0)
 *   wsk_small_grad_weight: gw[i, j, c, :] += sum over pixels of x[ih, iw, c] * gy[oh, ow, :]
 *
 * with ih = oh * sh - ph + i * dh, iw = ow * sw - pw + j * dw; taps reading the padding
 * are skipped. With one input channel im2col writes nine floats per pixel and a GEMM of
 * depth nine runs far below BLAS's rate; here each output pixel's filters sit in
 * registers (4 vectors of them at a time) and every read of x is one broadcast. Written
 * once with GCC vector types and compiled per target (baseline SSE2 and, on x86-64,
 * x86-64-v3 = AVX2 + FMA); wsk_small_init(1) selects the AVX2 clone. geo holds
 * sh, sw, ph, pw, dh, dw, OH, OW. The caller checked every size.
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

#if defined(__GNUC__) || defined(__clang__)
#define WSKC_VEC(V, VBYTES, SFX, TGT) \
    typedef V wskc_##SFX##_##TGT##_vt __attribute__((vector_size(VBYTES)));
#else
#error "wsk_conv_small.h needs GCC vector extensions"
#endif

#define WSKC_DEFINE(V, VBYTES, SFX, TGT, ATTR)                                           \
WSKC_VEC(V, VBYTES, SFX, TGT)                                                          \
static ATTR void wsk_small_forward_##SFX##_##TGT(                                       \
    const V* x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, const V* w, ptrdiff_t kh,        \
    ptrdiff_t kw, ptrdiff_t O, const ptrdiff_t* geo, const V* bias, int relu, V* y)     \
{                                                                                      \
    typedef wskc_##SFX##_##TGT##_vt VT;                                                \
    enum { L = VBYTES / sizeof(V) };                                                   \
    const ptrdiff_t sh = geo[0], sw = geo[1], ph = geo[2], pw = geo[3];                \
    const ptrdiff_t dh = geo[4], dw = geo[5], OH = geo[6], OW = geo[7];                \
    for (ptrdiff_t oh = 0; oh < OH; oh++) {                                            \
        for (ptrdiff_t ow = 0; ow < OW; ow++) {                                        \
            V* yr = y + (oh * OW + ow) * O;                                            \
            ptrdiff_t o = 0;                                                           \
            for (; o + 4 * L <= O; o += 4 * L) {                                       \
                VT a[4];                                                               \
                for (int u = 0; u < 4; u++) {                                          \
                    if (bias) memcpy(&a[u], bias + o + u * L, sizeof(VT));             \
                    else memset(&a[u], 0, sizeof(VT));                                 \
                }                                                                      \
                for (ptrdiff_t i = 0; i < kh; i++) {                                   \
                    ptrdiff_t ih = oh * sh - ph + i * dh;                              \
                    if (ih < 0 || ih >= H) continue;                                   \
                    for (ptrdiff_t j = 0; j < kw; j++) {                               \
                        ptrdiff_t iw = ow * sw - pw + j * dw;                          \
                        if (iw < 0 || iw >= W) continue;                               \
                        const V* xp = x + (ih * W + iw) * C;                           \
                        const V* wp = w + (i * kw + j) * C * O + o;                    \
                        for (ptrdiff_t c = 0; c < C; c++, wp += O) {                   \
                            VT xv, wv;                                                 \
                            for (int l = 0; l < L; l++) xv[l] = xp[c];                 \
                            for (int u = 0; u < 4; u++) {                              \
                                memcpy(&wv, wp + u * L, sizeof(VT));                   \
                                a[u] += xv * wv;                                       \
                            }                                                          \
                        }                                                              \
                    }                                                                  \
                }                                                                      \
                memcpy(yr + o, a, sizeof(a));                                          \
            }                                                                          \
            for (; o < O; o++) {                                                       \
                V s = bias ? bias[o] : 0;                                              \
                for (ptrdiff_t i = 0; i < kh; i++) {                                   \
                    ptrdiff_t ih = oh * sh - ph + i * dh;                              \
                    if (ih < 0 || ih >= H) continue;                                   \
                    for (ptrdiff_t j = 0; j < kw; j++) {                               \
                        ptrdiff_t iw = ow * sw - pw + j * dw;                          \
                        if (iw < 0 || iw >= W) continue;                               \
                        for (ptrdiff_t c = 0; c < C; c++)                              \
                            s += x[(ih * W + iw) * C + c] * w[((i * kw + j) * C + c) * O + o]; \
                    }                                                                  \
                }                                                                      \
                yr[o] = s;                                                             \
            }                                                                          \
            if (relu)               /* a select: NaN stays NaN, as NumPy's maximum */  \
                for (o = 0; o < O; o++) yr[o] = yr[o] < 0 ? 0 : yr[o];                 \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
static ATTR void wsk_small_grad_weight_##SFX##_##TGT(                                   \
    const V* x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, const V* gy, ptrdiff_t kh,       \
    ptrdiff_t kw, ptrdiff_t O, const ptrdiff_t* geo, V* gw)                             \
{                                                                                      \
    typedef wskc_##SFX##_##TGT##_vt VT;                                                \
    enum { L = VBYTES / sizeof(V) };                                                   \
    const ptrdiff_t sh = geo[0], sw = geo[1], ph = geo[2], pw = geo[3];                \
    const ptrdiff_t dh = geo[4], dw = geo[5], OH = geo[6], OW = geo[7];                \
    for (ptrdiff_t oh = 0; oh < OH; oh++) {                                            \
        for (ptrdiff_t ow = 0; ow < OW; ow++) {                                        \
            const V* gr = gy + (oh * OW + ow) * O;                                     \
            for (ptrdiff_t i = 0; i < kh; i++) {                                       \
                ptrdiff_t ih = oh * sh - ph + i * dh;                                  \
                if (ih < 0 || ih >= H) continue;                                       \
                for (ptrdiff_t j = 0; j < kw; j++) {                                   \
                    ptrdiff_t iw = ow * sw - pw + j * dw;                              \
                    if (iw < 0 || iw >= W) continue;                                   \
                    const V* xp = x + (ih * W + iw) * C;                               \
                    V* gp = gw + (i * kw + j) * C * O;                                 \
                    for (ptrdiff_t c = 0; c < C; c++, gp += O) {                       \
                        const V xs = xp[c];                                            \
                        ptrdiff_t o = 0;                                               \
                        VT xv, gv, av;                                                 \
                        for (int l = 0; l < L; l++) xv[l] = xs;                        \
                        for (; o + L <= O; o += L) {                                   \
                            memcpy(&gv, gr + o, sizeof(VT));                           \
                            memcpy(&av, gp + o, sizeof(VT));                           \
                            av += xv * gv;                                             \
                            memcpy(gp + o, &av, sizeof(VT));                           \
                        }                                                              \
                        for (; o < O; o++) gp[o] += xs * gr[o];                        \
                    }                                                                  \
                }                                                                      \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
}

#define WSKC_DEFINE_TARGET(TGT, ATTR, VBYTES)                                            \
    WSKC_DEFINE(float, VBYTES, f32, TGT, ATTR)                                          \
    WSKC_DEFINE(double, VBYTES, f64, TGT, ATTR)

#define WSKC_NOATTR
WSKC_DEFINE_TARGET(base, WSKC_NOATTR, 16)
#if WSKC_X86
WSKC_DEFINE_TARGET(avx2, __attribute__((target("arch=x86-64-v3"))), 32)
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

/* avx2 != 0 selects the AVX2 clone (the caller checked the CPU runs it). */
static void wsk_small_init(int avx2)
{
#if WSKC_X86
    wsk_small_forward_f32 = avx2 ? wsk_small_forward_f32_avx2 : wsk_small_forward_f32_base;
    wsk_small_forward_f64 = avx2 ? wsk_small_forward_f64_avx2 : wsk_small_forward_f64_base;
    wsk_small_grad_weight_f32 = avx2 ? wsk_small_grad_weight_f32_avx2
                                     : wsk_small_grad_weight_f32_base;
    wsk_small_grad_weight_f64 = avx2 ? wsk_small_grad_weight_f64_avx2
                                     : wsk_small_grad_weight_f64_base;
#else
    (void)avx2;
#endif
}

#endif
