/* Channels-last max pooling, forward and backward, a vector of channels at a time
 * (header-only; src/_nhwc.pyx).
 *
 *   wsk_max_pool:  one image: out[oh, ow, c] = the window's maximum (NaN wins, the first
 *                  NaN; ties keep the first pixel), arg = its flat pixel ih * W + iw;
 *                  a window wholly in the padding gives -inf and -1
 *   wsk_max_pool_back_apart: one image, windows that do not overlap nor pad: every pixel
 *                  of gx written, grad where arg names it, else 0
 *
 * A window's maxima and their pixels are held in registers, the selects as masks (the
 * plain loops re-read and re-wrote the output per window pixel and stayed scalar: ~1.5
 * cycles an element, 0.31 ns on Zen 5 against 0.09 here); the channels past whole
 * vectors run scalar steps with the same answers. Written once with GCC vector types,
 * compiled per target; wsk_nhwc_init(path) selects the clone (path as wsk_simd_init's:
 * 1 baseline, 2 avx2, 4 avx512). The caller checked every size; nothing here raises.
 */
#ifndef WSK_NHWC_H
#define WSK_NHWC_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64)) \
    && !defined(WSK_NO_DISPATCH)
#define WSKN_X86 1
#else
#define WSKN_X86 0
#endif

#if !(defined(__GNUC__) || defined(__clang__))
#error "wsk_nhwc.h needs GCC vector extensions"
#endif

/* Scalar steps, for the last channels past whole vectors: the vector code's answers. */
#define WSKN_SCALAR(V, SFX)                                                            \
static inline void wskn_max_step_##SFX(V v, int32_t idx, V* best, int32_t* at)         \
{                                                                                      \
    if ((v > *best) | ((v != v) & (*best == *best))) {                                 \
        *best = v;                                                                     \
        *at = idx;                                                                     \
    }                                                                                  \
}
WSKN_SCALAR(float, f32)
WSKN_SCALAR(double, f64)

/* VT: a vector of L values; VI: integers of the same width (compare masks); VA: L int32
   (the arg indices) */
#define WSKN_DEFINE(V, I, VBYTES, SFX, TGT, ATTR)                                        \
typedef V wskn_##SFX##_##TGT##_vt __attribute__((vector_size(VBYTES)));                \
typedef I wskn_##SFX##_##TGT##_vi __attribute__((vector_size(VBYTES)));                \
typedef int32_t wskn_##SFX##_##TGT##_va                                                \
    __attribute__((vector_size(VBYTES / sizeof(V) * 4)));                              \
static ATTR void wsk_max_pool_##SFX##_##TGT(const V* x, ptrdiff_t H, ptrdiff_t W,        \
        ptrdiff_t C, V* out, int32_t* arg, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t kh,   \
        ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw)          \
{                                                                                      \
    typedef wskn_##SFX##_##TGT##_vt VT;                                                \
    typedef wskn_##SFX##_##TGT##_vi VI;                                                \
    typedef wskn_##SFX##_##TGT##_va VA;                                                \
    enum { L = VBYTES / sizeof(V) };                                                   \
    for (ptrdiff_t oh = 0; oh < OH; oh++) {                                            \
        const ptrdiff_t t = oh * sh - ph;                                              \
        const ptrdiff_t h0 = t > 0 ? t : 0, h1 = t + kh < H ? t + kh : H;              \
        for (ptrdiff_t ow = 0; ow < OW; ow++) {                                        \
            const ptrdiff_t u = ow * sw - pw;                                          \
            const ptrdiff_t w0 = u > 0 ? u : 0, w1 = u + kw < W ? u + kw : W;          \
            V* o = out + (oh * OW + ow) * C;                                           \
            int32_t* a = arg + (oh * OW + ow) * C;                                     \
            if (h0 >= h1 || w0 >= w1) {                                                \
                for (ptrdiff_t c = 0; c < C; c++) {                                    \
                    o[c] = -INFINITY;                                                  \
                    a[c] = -1;                                                         \
                }                                                                      \
                continue;                                                              \
            }                                                                          \
            const V* first = x + (h0 * W + w0) * C;                                    \
            ptrdiff_t c = 0;                                                           \
            for (; c + L <= C; c += L) {      /* the window's maxima in registers */   \
                VT best;                                                               \
                memcpy(&best, first + c, sizeof(VT));                                  \
                VI at = (VI){0} + (I)(h0 * W + w0);                                    \
                for (ptrdiff_t ih = h0; ih < h1; ih++)                                 \
                    for (ptrdiff_t iw = (ih == h0 ? w0 + 1 : w0); iw < w1; iw++) {     \
                        VT v;                                                          \
                        memcpy(&v, x + (ih * W + iw) * C + c, sizeof(VT));             \
                        /* strictly larger, or the first NaN (NaN != NaN) */          \
                        const VI take = (v > best) | ((v != v) & (best == best));      \
                        best = (VT)(((VI)v & take) | ((VI)best & ~take));              \
                        at = (((VI){0} + (I)(ih * W + iw)) & take) | (at & ~take);     \
                    }                                                                  \
                memcpy(o + c, &best, sizeof(VT));                                      \
                const VA at32 = __builtin_convertvector(at, VA);                       \
                memcpy(a + c, &at32, sizeof(VA));                                      \
            }                                                                          \
            for (; c < C; c++) {                                                       \
                V best = first[c];                                                     \
                int32_t at = (int32_t)(h0 * W + w0);                                   \
                for (ptrdiff_t ih = h0; ih < h1; ih++)                                 \
                    for (ptrdiff_t iw = (ih == h0 ? w0 + 1 : w0); iw < w1; iw++)       \
                        wskn_max_step_##SFX(x[(ih * W + iw) * C + c],                  \
                                            (int32_t)(ih * W + iw), &best, &at);       \
                o[c] = best;                                                           \
                a[c] = at;                                                             \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
static ATTR void wsk_max_pool_back_apart_##SFX##_##TGT(const V* grad,                   \
        const int32_t* arg, V* gx, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,              \
        ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,          \
        ptrdiff_t sw)                                                                  \
{                                                                                      \
    typedef wskn_##SFX##_##TGT##_vt VT;                                                \
    typedef wskn_##SFX##_##TGT##_vi VI;                                                \
    typedef wskn_##SFX##_##TGT##_va VA;                                                \
    enum { L = VBYTES / sizeof(V) };                                                   \
    for (ptrdiff_t ih = 0; ih < H; ih++) {                                             \
        const ptrdiff_t oh = ih / sh;                                                  \
        for (ptrdiff_t iw = 0; iw < W; iw++) {                                         \
            const ptrdiff_t ow = iw / sw;                                              \
            V* d = gx + (ih * W + iw) * C;                                             \
            if (oh >= OH || ih - oh * sh >= kh || ow >= OW || iw - ow * sw >= kw) {    \
                memset(d, 0, (size_t)C * sizeof(V));                                   \
                continue;                                                              \
            }                                                                          \
            const V* g = grad + (oh * OW + ow) * C;                                    \
            const int32_t* a = arg + (oh * OW + ow) * C;                               \
            const int32_t idx = (int32_t)(ih * W + iw);                                \
            ptrdiff_t c = 0;                                                           \
            for (; c + L <= C; c += L) {                                               \
                VT gv;                                                                 \
                VA av;                                                                 \
                memcpy(&gv, g + c, sizeof(VT));                                        \
                memcpy(&av, a + c, sizeof(VA));                                        \
                const VI hit = __builtin_convertvector(av == idx, VI);                 \
                const VT r = (VT)((VI)gv & hit);                                       \
                memcpy(d + c, &r, sizeof(VT));                                         \
            }                                                                          \
            for (; c < C; c++) d[c] = a[c] == idx ? g[c] : (V)0;                       \
        }                                                                              \
    }                                                                                  \
}

#define WSKN_DEFINE_TARGET(TGT, ATTR, VBYTES)                                          \
    WSKN_DEFINE(float, int32_t, VBYTES, f32, TGT, ATTR)                                \
    WSKN_DEFINE(double, int64_t, VBYTES, f64, TGT, ATTR)

#define WSKN_NOATTR
WSKN_DEFINE_TARGET(base, WSKN_NOATTR, 16)
#if WSKN_X86
WSKN_DEFINE_TARGET(avx2, __attribute__((target("arch=x86-64-v3"))), 32)
WSKN_DEFINE_TARGET(avx512, __attribute__((target("arch=x86-64-v4"))), 64)
#endif

#define WSKN_POINTERS(SFX, V)                                                          \
typedef void (*wsk_max_pool_##SFX##_t)(const V*, ptrdiff_t, ptrdiff_t, ptrdiff_t, V*,   \
        int32_t*, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,    \
        ptrdiff_t, ptrdiff_t);                                                         \
typedef void (*wsk_max_pool_back_apart_##SFX##_t)(const V*, const int32_t*, V*,         \
        ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,   \
        ptrdiff_t, ptrdiff_t);                                                         \
static wsk_max_pool_##SFX##_t wsk_max_pool_##SFX = wsk_max_pool_##SFX##_base;           \
static wsk_max_pool_back_apart_##SFX##_t wsk_max_pool_back_apart_##SFX =               \
    wsk_max_pool_back_apart_##SFX##_base;
WSKN_POINTERS(f32, float)
WSKN_POINTERS(f64, double)

#define WSKN_SELECT(TGT)                                                               \
    wsk_max_pool_f32 = wsk_max_pool_f32_##TGT;                                         \
    wsk_max_pool_f64 = wsk_max_pool_f64_##TGT;                                         \
    wsk_max_pool_back_apart_f32 = wsk_max_pool_back_apart_f32_##TGT;                   \
    wsk_max_pool_back_apart_f64 = wsk_max_pool_back_apart_f64_##TGT;

/* path: 1 baseline, 2 avx2, 4 avx512 (the caller checked the CPU runs it). */
static void wsk_nhwc_init(int path)
{
    WSKN_SELECT(base)
#if WSKN_X86
    if (path == 2) {
        WSKN_SELECT(avx2)
    } else if (path == 4) {
        WSKN_SELECT(avx512)
    }
#else
    (void)path;
#endif
}

#endif
