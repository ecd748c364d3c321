/* One-pass, in-place optimizer updates (Keras 3's rules, as wsekern/nn/optimizers.py).
 *
 * Each update reads w, g and the slots once and writes them once, where the NumPy
 * expressions make ~8 temporaries per variable. The arithmetic is the NumPy code's, in the
 * same order and in the array's type (float32 stays float32: every scalar is rounded to
 * T first, as NumPy 2 does with a Python float against a float32 array), so the results are
 * the NumPy path's bit for bit. The extension is compiled with -ffp-contract=off: a fused
 * multiply-add would round differently.
 *
 * The loops are plain C that GCC vectorises (-fopt-info-vec), cloned for x86-64-v3 (AVX2:
 * sqrt and division 8 floats wide) and the baseline, picked at load by the CPU. They never
 * raise: src/_optim.pyx checks the arrays. `decay` > 0 first applies decoupled weight decay
 * (w -= w * decay, decay = weight_decay * lr) as Optimizer.apply_gradients does.
 */
#ifndef WSK_OPTIM_H
#define WSK_OPTIM_H

#include <math.h>
#include <stddef.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(WSK_NO_DISPATCH)
#define WSK_OPT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define WSK_OPT_CLONES
#endif

#define WSK_OPT_FN(name, T) WSK_OPT_CLONES static void name
#define WSK_DECAY(T) if (do_decay) wi = wi - wi * dc;
/* np.maximum: NaN in either operand gives NaN */
#define WSK_NANMAX(a, b) (((a) >= (b) || (a) != (a)) ? (a) : (b))

#define WSK_DEFINE_OPTIM(T, SFX, SQRT, FABS)                                                  \
WSK_OPT_FN(wsk_sgd_##SFX, T)(T *restrict w, const T *restrict g, T *restrict vel,           \
        ptrdiff_t n, double lr_, double momentum_, int nesterov, int do_decay, double decay)  \
{                                                                                             \
    const T lr = (T)lr_, mo = (T)momentum_, dc = (T)decay;                                    \
    if (!vel) {                                                                               \
        for (ptrdiff_t i = 0; i < n; i++) {                                                   \
            T wi = w[i];                                                                      \
            WSK_DECAY(T)                                                                      \
            w[i] = wi - lr * g[i];                                                            \
        }                                                                                     \
        return;                                                                               \
    }                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        T wi = w[i], gi = g[i];                                                               \
        WSK_DECAY(T)                                                                          \
        T v = vel[i] * mo;                                                                    \
        v = v - lr * gi;                                                                      \
        vel[i] = v;                                                                           \
        w[i] = nesterov ? wi + (mo * v - lr * gi) : wi + v;                                   \
    }                                                                                         \
}                                                                                             \
                                                                                              \
WSK_OPT_FN(wsk_rmsprop_##SFX, T)(T *restrict w, const T *restrict g, T *restrict vel,       \
        T *restrict mom, T *restrict avg, ptrdiff_t n, double lr_, double rho_,              \
        double momentum_, double eps_, int do_decay, double decay)                            \
{                                                                                             \
    const T lr = (T)lr_, rho = (T)rho_, rho1 = (T)(1.0 - rho_), mo = (T)momentum_,           \
            eps = (T)eps_, dc = (T)decay;                                                     \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        T wi = w[i], gi = g[i], den;                                                          \
        WSK_DECAY(T)                                                                          \
        T ve = vel[i] * rho;                                                                  \
        ve = ve + rho1 * gi * gi;                                                             \
        vel[i] = ve;                                                                          \
        if (avg) {                                                                            \
            T a = avg[i] * rho;                                                               \
            a = a + rho1 * gi;                                                                \
            avg[i] = a;                                                                       \
            den = ve - a * a + eps;                                                           \
        } else {                                                                              \
            den = ve + eps;                                                                   \
        }                                                                                     \
        T inc = lr * gi / SQRT(den);                                                          \
        if (mom) {                                                                            \
            T mi = mom[i] * mo;                                                               \
            mi = mi + inc;                                                                    \
            mom[i] = mi;                                                                      \
            w[i] = wi - mi;                                                                   \
        } else {                                                                              \
            w[i] = wi - inc;                                                                  \
        }                                                                                     \
    }                                                                                         \
}                                                                                             \
                                                                                              \
/* alpha = lr * sqrt(1 - b2^t) / (1 - b1^t); vmax (amsgrad) or NULL */                       \
WSK_OPT_FN(wsk_adam_##SFX, T)(T *restrict w, const T *restrict g, T *restrict m,            \
        T *restrict v, T *restrict vmax, ptrdiff_t n, double alpha_, double b1_,             \
        double b2_, double eps_, int do_decay, double decay)                                  \
{                                                                                             \
    const T alpha = (T)alpha_, c1 = (T)(1.0 - b1_), c2 = (T)(1.0 - b2_), eps = (T)eps_,      \
            dc = (T)decay;                                                                    \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        T wi = w[i], gi = g[i];                                                               \
        WSK_DECAY(T)                                                                          \
        T mi = m[i], vi = v[i];                                                               \
        mi = mi + (gi - mi) * c1;                                                             \
        vi = vi + (gi * gi - vi) * c2;                                                        \
        m[i] = mi;                                                                            \
        v[i] = vi;                                                                            \
        if (vmax) {                                                                           \
            T h = vmax[i];                                                                    \
            vi = WSK_NANMAX(h, vi);                                                           \
            vmax[i] = vi;                                                                     \
        }                                                                                     \
        w[i] = wi - alpha * mi / (SQRT(vi) + eps);                                            \
    }                                                                                         \
}                                                                                             \
                                                                                              \
WSK_OPT_FN(wsk_adagrad_##SFX, T)(T *restrict w, const T *restrict g, T *restrict acc,       \
        ptrdiff_t n, double lr_, double eps_, int do_decay, double decay)                     \
{                                                                                             \
    const T lr = (T)lr_, eps = (T)eps_, dc = (T)decay;                                        \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        T wi = w[i], gi = g[i];                                                               \
        WSK_DECAY(T)                                                                          \
        T a = acc[i] + gi * gi;                                                               \
        acc[i] = a;                                                                           \
        w[i] = wi - lr * gi / SQRT(a + eps);                                                  \
    }                                                                                         \
}                                                                                             \
                                                                                              \
/* c = 1 - b1^t */                                                                            \
WSK_OPT_FN(wsk_adamax_##SFX, T)(T *restrict w, const T *restrict g, T *restrict m,          \
        T *restrict u, ptrdiff_t n, double lr_, double b1_, double b2_, double c_,           \
        double eps_, int do_decay, double decay)                                              \
{                                                                                             \
    const T lr = (T)lr_, c1 = (T)(1.0 - b1_), b2 = (T)b2_, c = (T)c_, eps = (T)eps_,         \
            dc = (T)decay;                                                                    \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        T wi = w[i], gi = g[i];                                                               \
        WSK_DECAY(T)                                                                          \
        T mi = m[i];                                                                          \
        mi = mi + (gi - mi) * c1;                                                             \
        m[i] = mi;                                                                            \
        T a = b2 * u[i], b = FABS(gi);                                                        \
        T ui = WSK_NANMAX(a, b);                                                              \
        u[i] = ui;                                                                            \
        w[i] = wi - lr * mi / (c * (ui + eps));                                               \
    }                                                                                         \
}                                                                                             \
                                                                                              \
/* m_hat = u_t1 m / d1 + (1 - u_t) g / d2, v_hat = v / d3 (Nadam's scalars, as the NumPy     \
   code computes them in double) */                                                           \
WSK_OPT_FN(wsk_nadam_##SFX, T)(T *restrict w, const T *restrict g, T *restrict m,           \
        T *restrict v, ptrdiff_t n, double lr_, double b1_, double b2_, double u_t1_,        \
        double d1_, double one_minus_u_t_, double d2_, double d3_, double eps_,              \
        int do_decay, double decay)                                                           \
{                                                                                             \
    const T lr = (T)lr_, c1 = (T)(1.0 - b1_), c2 = (T)(1.0 - b2_), u_t1 = (T)u_t1_,          \
            d1 = (T)d1_, omu = (T)one_minus_u_t_, d2 = (T)d2_, d3 = (T)d3_, eps = (T)eps_,   \
            dc = (T)decay;                                                                    \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        T wi = w[i], gi = g[i];                                                               \
        WSK_DECAY(T)                                                                          \
        T mi = m[i], vi = v[i];                                                               \
        mi = mi + (gi - mi) * c1;                                                             \
        vi = vi + (gi * gi - vi) * c2;                                                        \
        m[i] = mi;                                                                            \
        v[i] = vi;                                                                            \
        T m_hat = u_t1 * mi / d1 + omu * gi / d2;                                             \
        T v_hat = vi / d3;                                                                    \
        w[i] = wi - m_hat * lr / (SQRT(v_hat) + eps);                                         \
    }                                                                                         \
}                                                                                             \
                                                                                              \
WSK_OPT_FN(wsk_lion_##SFX, T)(T *restrict w, const T *restrict g, T *restrict m,            \
        ptrdiff_t n, double lr_, double b1_, double b2_, int do_decay, double decay)          \
{                                                                                             \
    const T lr = (T)lr_, b1 = (T)b1_, c1 = (T)(1.0 - b1_), b2 = (T)b2_,                      \
            c2 = (T)(1.0 - b2_), dc = (T)decay;                                               \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        T wi = w[i], gi = g[i], mi = m[i];                                                    \
        WSK_DECAY(T)                                                                          \
        T x = mi * b1 + gi * c1;                                                              \
        T s = (T)(x > 0) - (T)(x < 0);          /* np.sign: NaN stays NaN */                  \
        s = x != x ? x : s;                                                                   \
        w[i] = wi - lr * s;                                                                   \
        mi = mi * b2;                                                                         \
        m[i] = mi + gi * c2;                                                                  \
    }                                                                                         \
}

WSK_DEFINE_OPTIM(float, f32, sqrtf, fabsf)
WSK_DEFINE_OPTIM(double, f64, sqrt, fabs)

#endif
