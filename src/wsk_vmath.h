/* Vectorisable float32 math for the transformer's elementwise passes (the exact GELU).
 *
 * glibc's erff and expf are scalar calls (~25 ns an element here): the exact GELU over a
 * (2048, 512) activation took 29 ms against PyTorch's 1 ms. These are branch-free
 * polynomial forms GCC vectorises, compiled three times - for x86-64-v4 (AVX-512, 16
 * lanes), x86-64-v3 (AVX2 + FMA, 8 lanes) and the baseline (4) - and picked at run time, as wsk_simd.h does for the sparse kernels.
 *
 * Phi(v) = P(V <= v) for a standard normal, with z = v / sqrt(2):
 *   |z| <= 0.6: Phi = 1/2 + z/2 * S(z^2)            (erf(z)/z, degree 5 in z^2)
 *   |z| >  0.6: Phi = e/2 * R(t) or 1 - e/2 * R(t)  (v < 0 or v > 0), e = exp(-v^2/2),
 *               R(t) = erfcx(|z|) = exp(z^2) erfc(|z|), degree 9 in t = 1/(1 + |z|/2)
 * S and R are least-squares fits (relative weights, Chebyshev nodes) to SciPy's erf and
 * erfcx in double. Measured over |v| <= 14 and 10^6 normal draws against SciPy's erfc in
 * double: |Phi error| <= 1.1e-7 (the glibc form 0.5 * (1 + erff) has 6e-8), relative
 * error <= 5e-6 where Phi is tiny (1.9e-6 at v = -10, 4.4e-6 near -13.1; the glibc form
 * loses all of it below v = -5.5).
 * The exponential reuses e for the derivative phi(v) = e / sqrt(2 pi).
 */
#ifndef WSK_VMATH_H
#define WSK_VMATH_H

#include <stdint.h>
#include <string.h>
#include <stddef.h>
#include <math.h>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(WSK_NO_DISPATCH)
#define WSK_VM_X86 1
#else
#define WSK_VM_X86 0
#endif

/* The same code for every vector width: VF a vector of floats, VI of int32 of the same
   width (GCC/Clang vector extensions; comparisons give -1 or 0 per lane). Written with
   explicit vectors rather than left to the auto-vectoriser, which will not if-convert
   the selects under the default -ftrapping-math. */
#define WSK_DEFINE_GELU(SFX, VF, VI, LANES, ATTR)                                        \
/* exp(a) for a <= 0: 2^n * p(r), n the nearest integer to a / ln 2, r = a - n ln 2 in  \
   two parts (Cody-Waite), p Cephes' expf polynomial. Below -87 (2^-126, the smallest    \
   normal float) the result is 0, so exp(-inf) = 0 as in libm; NaN stays NaN. */        \
static inline __attribute__((always_inline)) ATTR VF wsk_expneg_##SFX(VF a)             \
{                                                                                        \
    const VF magic = (VF){0} + 12582912.0f;            /* 1.5 * 2^23: rounds to integer */ \
    VF k = a * 1.44269504088896341f + magic;                                             \
    VF n = k - magic;                                                                    \
    VF r = a - n * 0.693359375f;                                                         \
    r = r - n * -2.12194440e-4f;                                                         \
    VF p = (VF){0} + 1.9875691500e-4f;                                                   \
    p = p * r + 1.3981999507e-3f;                                                        \
    p = p * r + 8.3334519073e-3f;                                                        \
    p = p * r + 4.1665795894e-2f;                                                        \
    p = p * r + 1.6666665459e-1f;                                                        \
    p = p * r + 5.0000001201e-1f;                                                        \
    p = p * r * r + r + 1.0f;                                                            \
    VI ki, mi, pi;                                                                       \
    memcpy(&ki, &k, sizeof(VF));                                                         \
    memcpy(&mi, &magic, sizeof(VF));                                                     \
    VI bits = (ki - mi + 127) << 23;                   /* 2^n as floats' bits */         \
    VF scale;                                                                            \
    memcpy(&scale, &bits, sizeof(VF));                                                   \
    p = p * scale;                                                                       \
    memcpy(&pi, &p, sizeof(VF));                                                         \
    pi &= ~(a < -87.0f);                                                                 \
    memcpy(&p, &pi, sizeof(VF));                                                         \
    return p;                                                                            \
}                                                                                        \
                                                                                         \
static inline __attribute__((always_inline)) ATTR VF wsk_select_##SFX(VI m, VF a, VF b) \
{                                                                                        \
    VI ai, bi;                                                                           \
    memcpy(&ai, &a, sizeof(VF));                                                         \
    memcpy(&bi, &b, sizeof(VF));                                                         \
    ai = (ai & m) | (bi & ~m);                                                           \
    memcpy(&a, &ai, sizeof(VF));                                                         \
    return a;                                                                            \
}                                                                                        \
                                                                                         \
/* out = v * Phi(v), d = Phi(v) + v * phi(v) (the GELU and its derivative). */           \
static inline __attribute__((always_inline)) ATTR void wsk_gelu_vec_##SFX(               \
        const float* x, float* out, float* d)                                            \
{                                                                                        \
    VF v;                                                                                \
    memcpy(&v, x, sizeof(VF));                                                           \
    const VF z = v * 0.70710678118654752f;                                               \
    const VF az = wsk_select_##SFX(z < 0.0f, -z, z);                                     \
    const VF s = z * z;                                                                  \
    VF S = (VF){0} - 7.344649989e-04f;                                                   \
    S = S * s + 5.176320534e-03f;                                                        \
    S = S * s - 2.685733657e-02f;                                                        \
    S = S * s + 1.128371707e-01f;                                                        \
    S = S * s - 3.761263659e-01f;                                                        \
    S = S * s + 1.128379167e+00f;                                                        \
    const VF near = 0.5f + 0.5f * z * S;                                                 \
    const VF t = 1.0f / (1.0f + 0.5f * az);                                              \
    VF R = (VF){0} - 7.082559678e-02f;                                                   \
    R = R * t + 3.364365899e-01f;                                                        \
    R = R * t - 5.845375807e-01f;                                                        \
    R = R * t + 3.796698798e-01f;                                                        \
    R = R * t - 9.133070157e-02f;                                                        \
    R = R * t + 2.286313986e-01f;                                                        \
    R = R * t + 2.365871515e-01f;                                                        \
    R = R * t + 2.833589978e-01f;                                                        \
    R = R * t + 2.820058545e-01f;                                                        \
    R = R * t + 2.712102791e-06f;                                                        \
    const VF e = wsk_expneg_##SFX(-0.5f * v * v);                                        \
    const VF half_tail = 0.5f * e * R;                                                   \
    const VF far = wsk_select_##SFX(v > 0.0f, 1.0f - half_tail, half_tail);              \
    const VF cdf = wsk_select_##SFX(az <= 0.6f, near, far);                              \
    const VF o = v * cdf;                                                                \
    const VF dd = cdf + v * e * 0.39894228040143267794f;                                 \
    memcpy(out, &o, sizeof(VF));                                                         \
    memcpy(d, &dd, sizeof(VF));                                                          \
}                                                                                        \
                                                                                         \
/* The last n % LANES elements go through the same vector code, padded with zeros. */    \
static ATTR void wsk_gelu_f32_##SFX(const float* x, float* out, float* d, ptrdiff_t n)  \
{                                                                                        \
    ptrdiff_t i = 0;                                                                     \
    for (; i + LANES <= n; i += LANES) wsk_gelu_vec_##SFX(x + i, out + i, d + i);        \
    if (i < n) {                                                                         \
        float xs[LANES] = {0}, os[LANES], ds[LANES];                                     \
        memcpy(xs, x + i, (size_t)(n - i) * sizeof(float));                              \
        wsk_gelu_vec_##SFX(xs, os, ds);                                                  \
        memcpy(out + i, os, (size_t)(n - i) * sizeof(float));                            \
        memcpy(d + i, ds, (size_t)(n - i) * sizeof(float));                              \
    }                                                                                    \
}                                                                                        \
                                                                                         \
/* out[i] = exp(s[i] - shift) for shift >= max(s) (a softmax row); returns their sum,  \
   added in LANES partial sums. */                                                       \
static __attribute__((unused)) ATTR float wsk_exp_shift_f32_##SFX(const float* s, float shift, float* out,      \
                                          ptrdiff_t n)                                   \
{                                                                                        \
    VF acc = (VF){0};                                                                    \
    ptrdiff_t i = 0;                                                                     \
    for (; i + LANES <= n; i += LANES) {                                                 \
        VF a;                                                                            \
        memcpy(&a, s + i, sizeof(VF));                                                   \
        a = wsk_expneg_##SFX(a - shift);                                                 \
        memcpy(out + i, &a, sizeof(VF));                                                 \
        acc += a;                                                                        \
    }                                                                                    \
    float total = 0.0f;                                                                  \
    if (i < n) {                                                                         \
        float xs[LANES], os[LANES];                                                      \
        for (int l = 0; l < LANES; l++) xs[l] = i + l < n ? s[i + l] - shift : -INFINITY; \
        VF a;                                                                            \
        memcpy(&a, xs, sizeof(VF));                                                      \
        a = wsk_expneg_##SFX(a);                                                         \
        memcpy(os, &a, sizeof(VF));                                                      \
        for (int l = 0; l < LANES && i + l < n; l++) out[i + l] = os[l];                 \
        acc += a;                                                                        \
    }                                                                                    \
    for (int l = 0; l < LANES; l++) total += acc[l];                                     \
    return total;                                                                        \
}

typedef float wsk_vm_f4 __attribute__((vector_size(16)));
typedef int32_t wsk_vm_i4 __attribute__((vector_size(16)));
WSK_DEFINE_GELU(base, wsk_vm_f4, wsk_vm_i4, 4, )
#if WSK_VM_X86
typedef float wsk_vm_f8 __attribute__((vector_size(32)));
typedef int32_t wsk_vm_i8 __attribute__((vector_size(32)));
WSK_DEFINE_GELU(v3, wsk_vm_f8, wsk_vm_i8, 8, __attribute__((target("arch=x86-64-v3"))))
/* The same code on 16 lanes for AVX-512 (x86-64-v4). Its GELU gives the AVX2 version's
   bits exactly (the same operations, FMA contracted alike, lane by lane); Zen 4 runs a
   512-bit operation as two 256-bit halves, but issues half the instructions: (512, 2048)
   float32 GELU 0.81 ns a value against 0.98 on the AVX2 version (one thread). The
   softmax exponentials stay on the 8-lane version on this path: the causal rows (1 to 64
   keys) pad to 16 lanes at a loss (0.84 ns a value against 0.68; 0.34 against 0.39 on
   rows of 64). */
typedef float wsk_vm_f16 __attribute__((vector_size(64)));
typedef int32_t wsk_vm_i16 __attribute__((vector_size(64)));
WSK_DEFINE_GELU(v4, wsk_vm_f16, wsk_vm_i16, 16, __attribute__((target("arch=x86-64-v4"))))
#endif

/* The version in use: 0 baseline, 1 AVX2 + FMA (v3), 2 AVX-512 (v4). */
static int wsk_vm_level = 0;

static inline const char* wsk_vm_name(int level)
{
    return level == 2 ? "avx512" : level == 1 ? "avx2" : "baseline";
}

/* The widest version this CPU runs (0, 1 or 2). */
static inline int wsk_vm_best(void)
{
#if WSK_VM_X86
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512cd"))
        return 2;
    return 1;
#else
    return 0;
#endif
}

/* Picks the widest version this CPU runs; called once, when the module is imported. */
static __attribute__((unused)) const char* wsk_vmath_init(void)
{
    wsk_vm_level = wsk_vm_best();
    return wsk_vm_name(wsk_vm_level);
}

/* Tests run every version: use ``level`` (0 baseline, 1 avx2, 2 avx512), or the widest
   below it this CPU runs. Returns the path now in use. */
static __attribute__((unused)) const char* wsk_vmath_use(int level)
{
    int best = wsk_vm_best();
    wsk_vm_level = level < best ? (level < 0 ? 0 : level) : best;
    return wsk_vm_name(wsk_vm_level);
}

static __attribute__((unused)) void wsk_gelu_f32(const float* x, float* out, float* d,
                                                 ptrdiff_t n)
{
#if WSK_VM_X86
    if (wsk_vm_level == 2) {
        wsk_gelu_f32_v4(x, out, d, n);
        return;
    }
    if (wsk_vm_level == 1) {
        wsk_gelu_f32_v3(x, out, d, n);
        return;
    }
#endif
    wsk_gelu_f32_base(x, out, d, n);
}

static __attribute__((unused)) float wsk_exp_shift_f32(const float* s, float shift, float* out,
                                                       ptrdiff_t n)
{
#if WSK_VM_X86
    if (wsk_vm_level >= 1) return wsk_exp_shift_f32_v3(s, shift, out, n);
#endif
    return wsk_exp_shift_f32_base(s, shift, out, n);
}

#endif
