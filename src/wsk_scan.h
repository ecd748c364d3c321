/* The scan of a row or plane of values (header-only): its nonzeros returned (a NaN counts),
 * and *bad set when an element is inf or NaN (v - v is NaN for them, else 0).
 *
 * Used by spmm's dispatcher (scan_rows: which rows of X hold a nonzero) and by conv2d's
 * (scan_planes). Written once with GCC vector types and compiled per target, a vector of
 * compares and integer sums per load; wsk_scan_init(path) selects the clone (path as
 * wsk_simd_init's: 1 baseline, 2 avx2, 4 avx512; the caller checked the CPU runs it).
 * Lane counts are summed every 2^28 vectors, so an integer lane never overflows.
 */
#ifndef WSK_SCAN_H
#define WSK_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wsk_vec.h"

#if !WSKS_VECTOR
#error "wsk_scan.h needs GCC vector extensions"
#endif

#define WSK_SCAN_DEFINE(V, I, VBYTES, SFX, TGT, ATTR)                                   \
static ATTR ptrdiff_t wsk_scan_##SFX##_##TGT(const V* p, ptrdiff_t n, int* bad)          \
{                                                                                      \
    typedef V VT __attribute__((vector_size(VBYTES)));                                 \
    typedef I IT __attribute__((vector_size(VBYTES)));  /* compares: -1 true, 0 */     \
    enum { L = VBYTES / sizeof(V) };                                                   \
    ptrdiff_t k = 0, i = 0;                                                            \
    int b = 0;                                                                         \
    while (n - i >= 2 * L) {                                                           \
        ptrdiff_t end = i + ((n - i) / (2 * L)) * (2 * L);                             \
        if (end - i > ((ptrdiff_t)1 << 28) * L) end = i + ((ptrdiff_t)1 << 28) * L;     \
        IT c0 = {0}, c1 = {0}, f0 = {0}, f1 = {0};                                     \
        for (; i < end; i += 2 * L) {                                                  \
            VT v0, v1;                                                                 \
            memcpy(&v0, p + i, sizeof(VT));                                            \
            memcpy(&v1, p + i + L, sizeof(VT));                                        \
            c0 += (v0 != (VT){0});                                                     \
            c1 += (v1 != (VT){0});                                                     \
            f0 |= ((v0 - v0) != (VT){0});                                              \
            f1 |= ((v1 - v1) != (VT){0});                                              \
        }                                                                              \
        c0 += c1;                                                                      \
        f0 |= f1;                                                                      \
        for (int a = 0; a < L; a++) {                                                  \
            k -= c0[a];                                                                \
            b |= f0[a] != 0;                                                           \
        }                                                                              \
    }                                                                                  \
    for (; i < n; i++) {                                                               \
        V v = p[i];                                                                    \
        k += v != 0;                                                                   \
        b |= (v - v) != 0;                                                             \
    }                                                                                  \
    *bad |= b;                                                                         \
    return k;                                                                          \
}

#define WSK_SCAN_DEFINE_TARGET(TGT, ATTR, VBYTES)                                       \
    WSK_SCAN_DEFINE(float, int32_t, VBYTES, f32, TGT, ATTR)                             \
    WSK_SCAN_DEFINE(double, int64_t, VBYTES, f64, TGT, ATTR)

WSK_SCAN_DEFINE_TARGET(base, WSKS_NOATTR, 16)
#if WSKS_X86
WSK_SCAN_DEFINE_TARGET(avx2, WSKS_ATTR_AVX2, 32)
WSK_SCAN_DEFINE_TARGET(avx512, WSKS_ATTR_AVX512, 64)
#endif

typedef ptrdiff_t (*wsk_scan_f32_t)(const float*, ptrdiff_t, int*);
typedef ptrdiff_t (*wsk_scan_f64_t)(const double*, ptrdiff_t, int*);
static wsk_scan_f32_t wsk_scan_f32 = wsk_scan_f32_base;
static wsk_scan_f64_t wsk_scan_f64 = wsk_scan_f64_base;

static void wsk_scan_init(int path)
{
    wsk_scan_f32 = wsk_scan_f32_base;
    wsk_scan_f64 = wsk_scan_f64_base;
#if WSKS_X86
    if (path == 2) {
        wsk_scan_f32 = wsk_scan_f32_avx2;
        wsk_scan_f64 = wsk_scan_f64_avx2;
    } else if (path == 4) {
        wsk_scan_f32 = wsk_scan_f32_avx512;
        wsk_scan_f64 = wsk_scan_f64_avx512;
    }
#else
    (void)path;
#endif
}

#endif
