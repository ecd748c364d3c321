/* What wsk_scan.h and wsk_sampled.h share (header-only): whether GCC vector types are there,
 * whether x86 clones are built, and each clone's target attribute. Defined once here so the
 * two headers, included in one translation unit (_conv), redefine no macro.
 */
#ifndef WSK_VEC_H
#define WSK_VEC_H

#if defined(__GNUC__) || defined(__clang__)
#define WSKS_VECTOR 1
#else
#define WSKS_VECTOR 0
#endif

#if WSKS_VECTOR && (defined(__x86_64__) || defined(_M_X64)) && !defined(WSK_NO_DISPATCH)
#define WSKS_X86 1
#else
#define WSKS_X86 0
#endif

/* the clones' target attributes: baseline none, avx2 = x86-64-v3, avx512 = x86-64-v4 */
#define WSKS_NOATTR
#define WSKS_ATTR_AVX2 __attribute__((target("arch=x86-64-v3")))
#define WSKS_ATTR_AVX512 __attribute__((target("arch=x86-64-v4")))

#endif
