# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""What a training step's costing reads of a layer's operands, in one pass each: the
nonzero pattern of a float array together with its count (``nonzero_pattern``, for
nn/columns.py), and a fused ReLU's pre-activation gradient pattern ``(g != 0) & (out > 0)``
with its count (``relu_grad_pattern``). Each gives NumPy's arrays (the same values, shape
and memory order) and ``np.count_nonzero`` of them; an array these do not take returns None
(the caller takes NumPy's way).
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t

cnp.import_array()


cdef extern from *:
    """
    #include <stdint.h>
    #include <stddef.h>
    #ifdef __SSE2__
    #include <emmintrin.h>
    #endif
    /* float32: 16 lanes a round on SSE2 (x86-64's baseline): the compares' masks packed
       to bytes, counted by a sum of absolute differences; the tail, and other CPUs and
       float64, one element at a time (the same results: v != 0 is true for NaN, y > 0
       false) */
    #ifdef __SSE2__
    /* One round's four 4-lane masks (all ones or zeros per lane) as 16 bytes of 0/1 at o,
       their count added to acc's two 64-bit sums; both patterns' loops end here. */
    static inline __m128i wsk_glue_store16(__m128i a, __m128i b, __m128i d, __m128i e,
                                           uint8_t *o, __m128i acc) {
        __m128i m = _mm_and_si128(_mm_packs_epi16(_mm_packs_epi32(a, b),
                                                  _mm_packs_epi32(d, e)), _mm_set1_epi8(1));
        _mm_storeu_si128((__m128i *)o, m);
        return _mm_add_epi64(acc, _mm_sad_epu8(m, _mm_setzero_si128()));
    }
    static inline int64_t wsk_glue_total(__m128i acc) {
        return _mm_cvtsi128_si64(acc) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc));
    }
    #endif
    static int64_t wsk_glue_nz_f32(const float *restrict v, uint8_t *restrict o,
                                   ptrdiff_t n) {
        int64_t c = 0;
        ptrdiff_t i = 0;
    #ifdef __SSE2__
        const __m128 z = _mm_setzero_ps();
        __m128i acc = _mm_setzero_si128(), q[4];
        for (; i + 16 <= n; i += 16) {
            for (int k = 0; k < 4; k++)
                q[k] = _mm_castps_si128(_mm_cmpneq_ps(_mm_loadu_ps(v + i + 4 * k), z));
            acc = wsk_glue_store16(q[0], q[1], q[2], q[3], o + i, acc);
        }
        c = wsk_glue_total(acc);
    #endif
        for (; i < n; i++) { o[i] = v[i] != 0; c += o[i]; }
        return c;
    }
    static int64_t wsk_glue_relu_f32(const float *restrict g, const float *restrict y,
                                     uint8_t *restrict o, ptrdiff_t n) {
        int64_t c = 0;
        ptrdiff_t i = 0;
    #ifdef __SSE2__
        const __m128 z = _mm_setzero_ps();
        __m128i acc = _mm_setzero_si128(), q[4];
        for (; i + 16 <= n; i += 16) {
            for (int k = 0; k < 4; k++)
                q[k] = _mm_castps_si128(_mm_and_ps(
                    _mm_cmpneq_ps(_mm_loadu_ps(g + i + 4 * k), z),
                    _mm_cmpgt_ps(_mm_loadu_ps(y + i + 4 * k), z)));
            acc = wsk_glue_store16(q[0], q[1], q[2], q[3], o + i, acc);
        }
        c = wsk_glue_total(acc);
    #endif
        for (; i < n; i++) { o[i] = (g[i] != 0) & (y[i] > 0); c += o[i]; }
        return c;
    }
    #if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    /* AVX-512 (F + BW), where the CPU runs it (use_simd_path): 64 float32 a round, four
       16-lane compares' masks joined into one 64-bit mask, stored as 64 bytes of 0/1 and
       counted by popcount; the same compares (!= unordered: NaN is nonzero; > ordered:
       NaN is not > 0), so the same bytes. The tail one element at a time. */
    #define WSK_GLUE_AVX512 1
    #define WSK_GLUE_AVX512_ATTR __attribute__((target("avx512f,avx512bw,popcnt")))
    WSK_GLUE_AVX512_ATTR
    static int64_t wsk_glue_nz_f32_avx512(const float *restrict v, uint8_t *restrict o,
                                          ptrdiff_t n) {
        int64_t c = 0;
        ptrdiff_t i = 0;
        const __m512 z = _mm512_setzero_ps();
        const __m512i one = _mm512_set1_epi8(1);
        for (; i + 64 <= n; i += 64) {
            __mmask64 m = 0;
            for (int k = 0; k < 4; k++)
                m |= (__mmask64) _mm512_cmp_ps_mask(_mm512_loadu_ps(v + i + 16 * k), z,
                                                    _CMP_NEQ_UQ) << (16 * k);
            _mm512_storeu_si512((void *)(o + i), _mm512_maskz_mov_epi8(m, one));
            c += __builtin_popcountll(m);
        }
        for (; i < n; i++) { o[i] = v[i] != 0; c += o[i]; }
        return c;
    }
    WSK_GLUE_AVX512_ATTR
    static int64_t wsk_glue_relu_f32_avx512(const float *restrict g, const float *restrict y,
                                            uint8_t *restrict o, ptrdiff_t n) {
        int64_t c = 0;
        ptrdiff_t i = 0;
        const __m512 z = _mm512_setzero_ps();
        const __m512i one = _mm512_set1_epi8(1);
        for (; i + 64 <= n; i += 64) {
            __mmask64 m = 0;
            for (int k = 0; k < 4; k++) {
                __mmask16 a = _mm512_cmp_ps_mask(_mm512_loadu_ps(g + i + 16 * k), z,
                                                 _CMP_NEQ_UQ);
                m |= (__mmask64) _mm512_mask_cmp_ps_mask(a, _mm512_loadu_ps(y + i + 16 * k),
                                                         z, _CMP_GT_OQ) << (16 * k);
            }
            _mm512_storeu_si512((void *)(o + i), _mm512_maskz_mov_epi8(m, one));
            c += __builtin_popcountll(m);
        }
        for (; i < n; i++) { o[i] = (g[i] != 0) & (y[i] > 0); c += o[i]; }
        return c;
    }
    static int wsk_glue_avx512_runs(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("popcnt");
    }
    #else
    #define WSK_GLUE_AVX512 0
    static int64_t wsk_glue_nz_f32_avx512(const float *v, uint8_t *o, ptrdiff_t n) {
        return wsk_glue_nz_f32(v, o, n);
    }
    static int64_t wsk_glue_relu_f32_avx512(const float *g, const float *y, uint8_t *o,
                                            ptrdiff_t n) {
        return wsk_glue_relu_f32(g, y, o, n);
    }
    static int wsk_glue_avx512_runs(void) { return 0; }
    #endif
    static int64_t wsk_glue_nz_f64(const double *restrict v, uint8_t *restrict o,
                                   ptrdiff_t n) {
        int64_t c = 0;
        for (ptrdiff_t i = 0; i < n; i++) { o[i] = v[i] != 0; c += o[i]; }
        return c;
    }
    static int64_t wsk_glue_relu_f64(const double *restrict g, const double *restrict y,
                                     uint8_t *restrict o, ptrdiff_t n) {
        int64_t c = 0;
        for (ptrdiff_t i = 0; i < n; i++) { o[i] = (g[i] != 0) & (y[i] > 0); c += o[i]; }
        return c;
    }
    """
    int64_t _nz_f32 "wsk_glue_nz_f32"(const float* v, uint8_t* o, Py_ssize_t n) nogil
    int64_t _nz_f64 "wsk_glue_nz_f64"(const double* v, uint8_t* o, Py_ssize_t n) nogil
    int64_t _relu_f32 "wsk_glue_relu_f32"(const float* g, const float* y, uint8_t* o,
                                          Py_ssize_t n) nogil
    int64_t _relu_f64 "wsk_glue_relu_f64"(const double* g, const double* y, uint8_t* o,
                                          Py_ssize_t n) nogil
    int64_t _nz_f32_avx512 "wsk_glue_nz_f32_avx512"(const float* v, uint8_t* o,
                                                    Py_ssize_t n) nogil
    int64_t _relu_f32_avx512 "wsk_glue_relu_f32_avx512"(const float* g, const float* y,
                                                        uint8_t* o, Py_ssize_t n) nogil
    int _avx512_runs "wsk_glue_avx512_runs"() nogil


cdef bint _AVX512_RUNS = _avx512_runs()
cdef bint _use_avx512 = _AVX512_RUNS


def use_simd_path(path):
    """Run the float32 passes on ``path``: "avx512" (64 values a round, where this CPU
    runs it; else the baseline) or "baseline"/"avx2" (SSE2, 16 a round); the same bytes and
    counts either way. Returns the path in use. WSEKERN_SIMD sets it at import
    (wsekern/simd_path.py); tests call it to check each."""
    global _use_avx512
    if path not in ("avx512", "avx2", "baseline"):
        raise ValueError(f"path must be 'avx512', 'avx2' or 'baseline'; received {path!r}")
    _use_avx512 = path == "avx512" and _AVX512_RUNS
    return "avx512" if _use_avx512 else "baseline"


cdef int _kind(object a):
    """``a``'s element type for these passes: 1 float32, 2 float64, 0 where they do not take
    it (not an ndarray itself, not 2-D, empty, not C- or F-contiguous, byte-swapped or
    misaligned)."""
    if type(a) is not np.ndarray:
        return 0
    cdef cnp.ndarray x = <cnp.ndarray>a
    if cnp.PyArray_NDIM(x) != 2 or cnp.PyArray_SIZE(x) == 0:
        return 0
    if not (cnp.PyArray_IS_C_CONTIGUOUS(x) or cnp.PyArray_IS_F_CONTIGUOUS(x)):
        return 0
    if not (cnp.PyArray_ISNOTSWAPPED(x) and cnp.PyArray_ISALIGNED(x)):
        return 0
    cdef int t = cnp.PyArray_TYPE(x)
    return 1 if t == cnp.NPY_FLOAT32 else 2 if t == cnp.NPY_FLOAT64 else 0


def nonzero_pattern(a):
    """(``a != 0``, ``np.count_nonzero`` of it) for a non-empty 2-D float32 or float64
    ndarray, C- or F-contiguous (a layer's input as its K x samples transpose): one pass,
    the pattern in ``a``'s memory order, as NumPy's. None for any other array."""
    cdef int kind = _kind(a)
    if kind == 0:
        return None
    cdef cnp.ndarray x = <cnp.ndarray>a
    # C order unless only F-contiguous: ``a != 0`` keeps the input's memory order
    cdef int fortran = not cnp.PyArray_IS_C_CONTIGUOUS(x)
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(x), cnp.NPY_BOOL, fortran)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef uint8_t* o = <uint8_t*>cnp.PyArray_DATA(out)
    cdef const void* v = cnp.PyArray_DATA(x)
    cdef int64_t c
    with nogil:
        if kind == 1 and _use_avx512:
            c = _nz_f32_avx512(<const float*>v, o, n)
        elif kind == 1:
            c = _nz_f32(<const float*>v, o, n)
        else:
            c = _nz_f64(<const double*>v, o, n)
    return out, c


def relu_grad_pattern(g, y):
    """(``(g != 0) & (y > 0)``, its count) for two C-contiguous non-empty 2-D arrays of
    the same shape and dtype (float32 or float64): a fused ReLU's output gradient ``g``
    and its output ``y``, the gradient before the ReLU, in one pass. None for others."""
    cdef int kind = _kind(g)
    if kind == 0 or _kind(y) != kind:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>g
    cdef cnp.ndarray b = <cnp.ndarray>y
    if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_IS_C_CONTIGUOUS(b)
            and cnp.PyArray_DIMS(a)[0] == cnp.PyArray_DIMS(b)[0]
            and cnp.PyArray_DIMS(a)[1] == cnp.PyArray_DIMS(b)[1]):
        return None
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(a), cnp.NPY_BOOL, 0)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(a)
    cdef uint8_t* o = <uint8_t*>cnp.PyArray_DATA(out)
    cdef const void* p = cnp.PyArray_DATA(a)
    cdef const void* q = cnp.PyArray_DATA(b)
    cdef int64_t c
    with nogil:
        if kind == 1 and _use_avx512:
            c = _relu_f32_avx512(<const float*>p, <const float*>q, o, n)
        elif kind == 1:
            c = _relu_f32(<const float*>p, <const float*>q, o, n)
        else:
            c = _relu_f64(<const double*>p, <const double*>q, o, n)
    return out, c
