# The checks a kept step's __init__ makes before taking its arrays (_step_cost.WsStep,
# _screen.DenseStep), in one place so both refuse alike (header-only, inlined).
cimport numpy as cnp
from libc.stdint cimport int64_t

cdef inline int check_step_init(str step, str funcs, object keep, object pipeline,
                                Py_ssize_t K) except -1:
    # funcs: the function the step keeps, possessive ("dense_stream's")
    # built once: a second __init__ would replace the arrays a run on another thread
    # reads without the GIL
    if keep is not None:
        raise TypeError(f"a {step} is built once (its structure fixed); make a new one")
    if pipeline is None:
        raise ValueError(f"{step} needs the pipeline's figures ({funcs} "
                         "pipeline=): it gives the chain's completion")
    if K < 0:
        raise ValueError(f"K must be X's rows (>= 0); received {K}")
    return 0


cdef struct XBytes:        # X's pattern as a kept step's run reads it
    const unsigned char* x
    Py_ssize_t K, N, s0, s1


cdef inline bint bytes_2d(object a, XBytes* out) noexcept:
    # a 2-D uint8 or bool ndarray (the bytes a typed view takes) into ``out``, read in
    # place: without the buffer protocol's view, a microsecond a step; False for anything
    # else (the caller takes that view, its checks and refusals). The module calls
    # cnp.import_array()
    if type(a) is not cnp.ndarray or cnp.PyArray_NDIM(<cnp.ndarray> a) != 2:
        return False
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray> a)
    if t != cnp.NPY_UBYTE and t != cnp.NPY_BOOL:
        return False
    out.x = <const unsigned char*> cnp.PyArray_DATA(<cnp.ndarray> a)
    out.K, out.N = cnp.PyArray_DIM(<cnp.ndarray> a, 0), cnp.PyArray_DIM(<cnp.ndarray> a, 1)
    out.s0 = cnp.PyArray_STRIDE(<cnp.ndarray> a, 0)
    out.s1 = cnp.PyArray_STRIDE(<cnp.ndarray> a, 1)
    return True


cdef inline const long[:] one_chain(const long[:] L):
    # the pipeline's L: a kept step runs one chain
    if L.shape[0] != 1:
        raise ValueError(f"pipeline: L must have one entry (one chain); received "
                         f"{L.shape[0]}")
    return L


cdef inline tuple with_push(object pipeline):
    # a pipeline= tuple of 7 figures, 8 with the send queue's ``push``, or 9 with push and
    # ``shared`` (whether the ramp floor applies: analytic._ramp_floor); 9 out, always
    import numbers
    t = tuple(pipeline)
    if len(t) == 7:
        return t + (-1, False)
    if len(t) not in (8, 9):
        raise ValueError(f"pipeline must hold 7 figures, or 8 with push; received {len(t)} "
                         f"(9: push, then whether the ramp floor applies)")
    push = t[7]
    # a fraction would be cut to a whole number silently (the chain takes a long); NumPy's
    # integers are Integral, its bool_ is not
    if isinstance(push, bool) or not isinstance(push, numbers.Integral):
        raise ValueError(f"pipeline's push (its eighth figure) must be a whole number of "
                         f"wavelets, -1 for no send queue; received {push!r}")
    if len(t) == 8:
        return t + (False,)
    if not isinstance(t[8], (bool, np_bool_type())):
        raise ValueError(f"pipeline's ninth figure (whether the ramp floor applies) must be "
                         f"True or False; received {t[8]!r}")
    return t[:8] + (bool(t[8]),)


cdef inline object np_bool_type():
    import numpy
    return numpy.bool_


cdef inline int64_t ramp_floor_L(str caller, bint shared, const long[:] L,
                                 Py_ssize_t N, Py_ssize_t K, long wpv) except -1:
    # the samples' pass's rampL (src/wsk_stream.h): the chain's sums a round where the
    # ramp floor applies, else 0; (N - 1) * L is added to the int64 sums of v, and the
    # floats are whole only below 2**52. Called after check_wpv, which bounds those sums
    # alone (255 K N wpv + N): with (N - 1) * L they must not pass int64 either
    if not shared or L.shape[0] != 1 or L[0] <= 0:
        return 0
    if L[0] > 4503599627370496 // (N if N > 1 else 1):
        raise ValueError(f"{caller}: the ramp floor's sums ({L[0]} wavelets a round over "
                         f"{N} samples) pass 2**52; pass shared False or fewer samples")
    # under half of int64's range in doubles (a few roundings cannot hide twice
    # that): no exact check in Python's integers
    if (255.0 * <double> K * <double> N * <double> wpv + <double> N
            + (<double> N - 1.0) * <double> L[0] < 4.0e18):
        return L[0]
    cdef object most = 255 * <object> K * <object> N * <object> wpv + <object> N
    if most + (<object> N - 1) * <object> L[0] > 9223372036854775807:
        raise ValueError(f"{caller}: the ramp floor's sums ({L[0]} wavelets a round over "
                         f"{N} samples) with wpv {wpv} for a {K} x {N} X pass int64; pass "
                         f"shared False, a smaller wpv or fewer samples")
    return L[0]


# A kept step's cycles_many computes analytic's bound in C: max and min as Python's (the
# first of equals, so a NaN or a zero's sign is kept as Python keeps it)
cdef inline double py_max(double a, double b) noexcept nogil:
    return b if b > a else a


cdef inline double py_min(double a, double b) noexcept nogil:
    return b if b < a else a
