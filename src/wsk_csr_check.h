/* Range check of a sparse matrix's column indices (header-only).
 *
 *   wsk_first_out_of_range: the first p < n with idx[p] < 0 or idx[p] >= bound, or -1
 *
 * The products read X's rows at these indices unchecked, so every call checks them: a
 * scalar loop with an early exit cost 0.47 ns an index on Zen 3 (38 us at 80k stored
 * weights, a sixth of a 784 x 1024 x 32 product); this 0.09. Blocks of indices go by an
 * OR of vector compares, without branches; only a block that fails is searched for the
 * position.
 * Written once with GCC vector types and compiled per target (baseline SSE2 and, on
 * x86-64, x86-64-v3 = AVX2); wsk_csr_check_init(1) selects the AVX2 clone. Other
 * compilers get the plain loop. Never raises: the Cython layer raises with the position.
 */
#ifndef WSK_CSR_CHECK_H
#define WSK_CSR_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define WSKC_VECTOR 1
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(WSK_NO_DISPATCH)
#define WSKC_X86 1
#else
#define WSKC_X86 0
#endif
#else
#define WSKC_VECTOR 0
#define WSKC_X86 0
#endif

/* indices per block tested without a branch (a multiple of every vector's lanes) */
#define WSKC_BLOCK 1024

#define WSKC_SCALAR(I, SFX, TGT, ATTR)                                                   \
static ATTR ptrdiff_t wskc_scan_##SFX##_##TGT(const I* idx, ptrdiff_t n, int64_t bound) \
{                                                                                       \
    for (ptrdiff_t p = 0; p < n; p++)                                                   \
        if (idx[p] < 0 || (int64_t)idx[p] >= bound) return p;                          \
    return -1;                                                                          \
}

#if WSKC_VECTOR
#define WSKC_DEFINE(I, SFX, TGT, ATTR)                                                   \
WSKC_SCALAR(I, SFX, TGT, ATTR)                                                          \
static ATTR ptrdiff_t wsk_first_out_of_range_##SFX##_##TGT(const I* idx, ptrdiff_t n,   \
                                                           int64_t bound)              \
{                                                                                       \
    typedef I VT __attribute__((vector_size(32)));                                      \
    enum { LANES = 32 / sizeof(I) };                                                    \
    /* the largest valid index, clamped to I's range (bound may exceed it) */          \
    const int64_t imax = sizeof(I) == 4 ? INT32_MAX : INT64_MAX;                        \
    const I top = (I)(bound - 1 > imax ? imax : bound - 1);                             \
    ptrdiff_t p = 0;                                                                    \
    for (; p + WSKC_BLOCK <= n; p += WSKC_BLOCK) {                                      \
        VT bad = (VT){0};                                                               \
        for (ptrdiff_t q = p; q < p + WSKC_BLOCK; q += LANES) {                         \
            VT v;                                                                       \
            memcpy(&v, idx + q, sizeof(VT));                                            \
            bad |= (v < 0) | (v > top);                                                 \
        }                                                                               \
        I any = 0;                                                                      \
        for (int l = 0; l < LANES; l++) any |= bad[l];                                  \
        if (any) return p + wskc_scan_##SFX##_##TGT(idx + p, WSKC_BLOCK, bound);        \
    }                                                                                   \
    ptrdiff_t q = wskc_scan_##SFX##_##TGT(idx + p, n - p, bound);                       \
    return q < 0 ? -1 : p + q;                                                          \
}
#define WSKC_DEFINE_TARGET(TGT, ATTR)                                                    \
    WSKC_DEFINE(int32_t, i32, TGT, ATTR)                                                \
    WSKC_DEFINE(int64_t, i64, TGT, ATTR)

#define WSKC_NOATTR
WSKC_DEFINE_TARGET(base, WSKC_NOATTR)
#if WSKC_X86
WSKC_DEFINE_TARGET(avx2, __attribute__((target("arch=x86-64-v3"))))
#endif

#else  /* no vector extensions: the plain loop */
#define WSKC_NOATTR
WSKC_SCALAR(int32_t, i32, base, WSKC_NOATTR)
WSKC_SCALAR(int64_t, i64, base, WSKC_NOATTR)
static ptrdiff_t wsk_first_out_of_range_i32_base(const int32_t* idx, ptrdiff_t n,
                                                 int64_t bound)
{ return wskc_scan_i32_base(idx, n, bound); }
static ptrdiff_t wsk_first_out_of_range_i64_base(const int64_t* idx, ptrdiff_t n,
                                                 int64_t bound)
{ return wskc_scan_i64_base(idx, n, bound); }
#endif

typedef ptrdiff_t (*wsk_first_out_of_range_i32_t)(const int32_t*, ptrdiff_t, int64_t);
typedef ptrdiff_t (*wsk_first_out_of_range_i64_t)(const int64_t*, ptrdiff_t, int64_t);
static wsk_first_out_of_range_i32_t wsk_first_out_of_range_i32 =
    wsk_first_out_of_range_i32_base;
static wsk_first_out_of_range_i64_t wsk_first_out_of_range_i64 =
    wsk_first_out_of_range_i64_base;

/* avx2 != 0 selects the AVX2 clone (the caller checked the CPU runs it). */
static void wsk_csr_check_init(int avx2)
{
#if WSKC_VECTOR && WSKC_X86
    if (avx2) {
        wsk_first_out_of_range_i32 = wsk_first_out_of_range_i32_avx2;
        wsk_first_out_of_range_i64 = wsk_first_out_of_range_i64_avx2;
        return;
    }
#endif
    (void)avx2;
    wsk_first_out_of_range_i32 = wsk_first_out_of_range_i32_base;
    wsk_first_out_of_range_i64 = wsk_first_out_of_range_i64_base;
}

#endif
