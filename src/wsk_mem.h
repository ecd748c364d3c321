/* Portable memory hints for the event engine: an aligned allocation, a prefetch and a
 * request for 2 MiB pages. Each is a hint or has a plain fallback, so the engine builds
 * with any C compiler (MSVC and non-Linux systems included) and gives the same results. */
#ifndef WSK_MEM_H
#define WSK_MEM_H
#include <stddef.h>
#include <stdlib.h>
#if defined(_WIN32)
#include <malloc.h>
#elif defined(__linux__)
#include <sys/mman.h>
#endif

static inline void *wsk_aligned_alloc(size_t alignment, size_t size)
{
#if defined(_WIN32)
    return _aligned_malloc(size ? size : alignment, alignment);
#else
    void *p = NULL;
    return posix_memalign(&p, alignment, size ? size : alignment) == 0 ? p : NULL;
#endif
}

static inline void wsk_aligned_free(void *p)
{
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}

#if defined(__GNUC__) || defined(__clang__)
#define wsk_prefetch(p) __builtin_prefetch(p)
#else
#define wsk_prefetch(p) ((void)(p))
#endif

/* Ask for huge pages over [p, p + n) before it is first written (transparent huge pages
 * in madvise mode); ignored where the system has no such request. */
static inline void wsk_advise_huge(void *p, size_t n)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    size_t a = ((size_t)p + 4095) & ~(size_t)4095, e = ((size_t)p + n) & ~(size_t)4095;
    if (p != NULL && n >= ((size_t)1 << 21) && e > a)
        madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}
#endif
