# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A layer operand's nonzero pattern kept as bits until a training step is costed
(nn/columns.py): a queued step holds an eighth of a bool pattern's bytes, so what the queue
and the costing's pass over it touch between two training steps is smaller (src/wsk_nz_bits.h).

``nonzero_bits(a)`` gives ``a != 0``'s bits in ``a``'s memory order and their count;
``relu_grad_bits(g, y)`` a fused ReLU's gradient pattern ``(g != 0) & (y > 0)``'s;
``unpack(bits, n)`` the first n as NumPy's bool (1-D, fresh). An array the passes do not
take returns None (the caller takes NumPy's way)."""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t, uint64_t

cnp.import_array()


cdef extern from "wsk_nz_bits.h" nogil:
    int64_t wsk_nzb_f32(const float* v, uint64_t* bits, Py_ssize_t n)
    int64_t wsk_nzb_f64(const double* v, uint64_t* bits, Py_ssize_t n)
    int64_t wsk_nzb_relu_f32(const float* g, const float* y, uint64_t* bits, Py_ssize_t n)
    int64_t wsk_nzb_relu_f64(const double* g, const double* y, uint64_t* bits, Py_ssize_t n)
    int64_t wsk_nzb_f32_avx512(const float* v, uint64_t* bits, Py_ssize_t n)
    int64_t wsk_nzb_relu_f32_avx512(const float* g, const float* y, uint64_t* bits,
                                    Py_ssize_t n)
    void wsk_nzb_unpack(const uint64_t* bits, uint8_t* out, Py_ssize_t n)
    void wsk_nzb_unpack_avx512(const uint64_t* bits, uint8_t* out, Py_ssize_t n)
    int wsk_nzb_avx512_runs()


cdef bint _AVX512_RUNS = wsk_nzb_avx512_runs()
cdef bint _use_avx512 = _AVX512_RUNS


def use_simd_path(path):
    """Run the passes on ``path``: "avx512" (where this CPU runs it; else the baseline) or
    "baseline"/"avx2" (SSE2); the same bits and counts either way. Returns the path in use.
    WSEKERN_SIMD sets it at import (wsekern/simd_path.py)."""
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


cdef cnp.ndarray _words(Py_ssize_t n):
    """Room for n bits: whole 64-bit words (the passes write every word)."""
    cdef cnp.npy_intp w = (n + 63) // 64
    return cnp.PyArray_EMPTY(1, &w, cnp.NPY_UINT64, 0)


def nonzero_bits(a):
    """(the bits of ``a != 0`` in ``a``'s memory order (uint64 words), their count) for a
    non-empty 2-D float32 or float64 ndarray, C- or F-contiguous; None for any other."""
    cdef int kind = _kind(a)
    if kind == 0:
        return None
    cdef cnp.ndarray x = <cnp.ndarray>a
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef cnp.ndarray out = _words(n)
    cdef uint64_t* o = <uint64_t*>cnp.PyArray_DATA(out)
    cdef const void* v = cnp.PyArray_DATA(x)
    cdef int64_t c
    with nogil:
        if kind == 1 and _use_avx512:
            c = wsk_nzb_f32_avx512(<const float*>v, o, n)
        elif kind == 1:
            c = wsk_nzb_f32(<const float*>v, o, n)
        else:
            c = wsk_nzb_f64(<const double*>v, o, n)
    return out, c


def relu_grad_bits(g, y):
    """(the bits of ``(g != 0) & (y > 0)``, their count) for two C-contiguous non-empty
    2-D arrays of one shape and dtype (float32 or float64): a fused ReLU's output gradient
    ``g`` and its output ``y``; None for others."""
    cdef int kind = _kind(g)
    if kind == 0 or _kind(y) != kind:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>g
    cdef cnp.ndarray b = <cnp.ndarray>y
    if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_IS_C_CONTIGUOUS(b)
            and cnp.PyArray_DIMS(a)[0] == cnp.PyArray_DIMS(b)[0]
            and cnp.PyArray_DIMS(a)[1] == cnp.PyArray_DIMS(b)[1]):
        return None
    cdef Py_ssize_t n = cnp.PyArray_SIZE(a)
    cdef cnp.ndarray out = _words(n)
    cdef uint64_t* o = <uint64_t*>cnp.PyArray_DATA(out)
    cdef const void* p = cnp.PyArray_DATA(a)
    cdef const void* q = cnp.PyArray_DATA(b)
    cdef int64_t c
    with nogil:
        if kind == 1 and _use_avx512:
            c = wsk_nzb_relu_f32_avx512(<const float*>p, <const float*>q, o, n)
        elif kind == 1:
            c = wsk_nzb_relu_f32(<const float*>p, <const float*>q, o, n)
        else:
            c = wsk_nzb_relu_f64(<const double*>p, <const double*>q, o, n)
    return out, c


def unpack(const uint64_t[::1] bits, Py_ssize_t n):
    """The first ``n`` bits of ``bits`` (as the passes above lay them out) as a fresh 1-D
    bool array."""
    if not 0 <= n <= 64 * bits.shape[0]:
        raise ValueError(f"n must lie within 0..{64 * bits.shape[0]} (the bits held); "
                         f"received {n}")
    cdef cnp.npy_intp m = n
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &m, cnp.NPY_BOOL, 0)
    cdef uint8_t* o = <uint8_t*>cnp.PyArray_DATA(out)
    if n == 0:
        return out
    with nogil:
        if _use_avx512:
            wsk_nzb_unpack_avx512(&bits[0], o, n)
        else:
            wsk_nzb_unpack(&bits[0], o, n)
    return out
