# One-pass, in-place optimizer updates for contiguous float32/float64 variables (the loops
# in wsk_optim.h). Each function returns True when it did the update, False when the arrays
# are not for this path (another dtype, not C-contiguous, misaligned, read-only, shapes that
# differ, or memory shared between them): the caller (wsekern/nn/optimizers.py) then runs its
# NumPy code, which gives the same numbers. The checks are C calls, since a batch-1 step of
# small layers calls these once per variable. Slots named "or None" are optional.
cimport numpy as cnp
from libc.stdint cimport uintptr_t
from libc.string cimport memcpy

cnp.import_array()

cdef extern from "wsk_optim.h" nogil:
    void wsk_sgd_f32(float*, const float*, float*, Py_ssize_t, double, double, int, int,
                     double) noexcept
    void wsk_sgd_f64(double*, const double*, double*, Py_ssize_t, double, double, int, int,
                     double) noexcept
    void wsk_rmsprop_f32(float*, const float*, float*, float*, float*, Py_ssize_t, double,
                         double, double, double, int, double) noexcept
    void wsk_rmsprop_f64(double*, const double*, double*, double*, double*, Py_ssize_t,
                         double, double, double, double, int, double) noexcept
    void wsk_adam_f32(float*, const float*, float*, float*, float*, Py_ssize_t, double, double,
                      double, double, int, double) noexcept
    void wsk_adam_f64(double*, const double*, double*, double*, double*, Py_ssize_t, double,
                      double, double, double, int, double) noexcept
    void wsk_adagrad_f32(float*, const float*, float*, Py_ssize_t, double, double, int,
                         double) noexcept
    void wsk_adagrad_f64(double*, const double*, double*, Py_ssize_t, double, double, int,
                         double) noexcept
    void wsk_adamax_f32(float*, const float*, float*, float*, Py_ssize_t, double, double,
                        double, double, double, int, double) noexcept
    void wsk_adamax_f64(double*, const double*, double*, double*, Py_ssize_t, double, double,
                        double, double, double, int, double) noexcept
    void wsk_nadam_f32(float*, const float*, float*, float*, Py_ssize_t, double, double, double,
                       double, double, double, double, double, double, int, double) noexcept
    void wsk_nadam_f64(double*, const double*, double*, double*, Py_ssize_t, double, double,
                       double, double, double, double, double, double, double, int,
                       double) noexcept
    void wsk_lion_f32(float*, const float*, float*, Py_ssize_t, double, double, double, int,
                      double) noexcept
    void wsk_lion_f64(double*, const double*, double*, Py_ssize_t, double, double, double, int,
                      double) noexcept


cdef struct Operands:
    int typenum          # NPY_FLOAT or NPY_DOUBLE
    Py_ssize_t n
    void* p[5]           # w, g, then the slots in the order given (NULL for None)


cdef bint _same_shape(cnp.ndarray a, cnp.ndarray w) noexcept:
    cdef int d, nd = cnp.PyArray_NDIM(w)
    if cnp.PyArray_NDIM(a) != nd:
        return False
    for d in range(nd):
        if cnp.PyArray_DIMS(a)[d] != cnp.PyArray_DIMS(w)[d]:
            return False
    return True


cdef bint _gather(Operands* op, tuple arrays) except -1:
    """Fill ``op`` from (w, g, slot, ...); False when one of them does not fit the path.
    Every array but g is written, so those must be writeable; no two may overlap."""
    cdef cnp.ndarray w, a
    cdef int flags, i, j, k = len(arrays)
    cdef uintptr_t lo_i, hi_i, lo_j, hi_j
    cdef Py_ssize_t nbytes
    first = arrays[0]
    if not cnp.PyArray_Check(first):
        return False
    w = <cnp.ndarray>first
    op.typenum = cnp.PyArray_TYPE(w)
    if op.typenum != cnp.NPY_FLOAT and op.typenum != cnp.NPY_DOUBLE:
        return False
    op.n = cnp.PyArray_SIZE(w)
    for i in range(k):
        obj = arrays[i]
        if obj is None and i >= 2:
            op.p[i] = NULL
            continue
        if not cnp.PyArray_Check(obj):
            return False
        a = <cnp.ndarray>obj
        flags = cnp.PyArray_FLAGS(a)
        if (cnp.PyArray_TYPE(a) != op.typenum or not _same_shape(a, w)
                or not (flags & cnp.NPY_ARRAY_C_CONTIGUOUS)
                or not (flags & cnp.NPY_ARRAY_ALIGNED)
                or not cnp.PyArray_ISNOTSWAPPED(a)          # '>f4' has NPY_FLOAT's type too
                or (i != 1 and not (flags & cnp.NPY_ARRAY_WRITEABLE))):
            return False
        op.p[i] = cnp.PyArray_DATA(a)
    # the loops take their pointers as restrict: arrays sharing memory go the NumPy way
    nbytes = op.n * (4 if op.typenum == cnp.NPY_FLOAT else 8)
    for i in range(k):
        if op.p[i] == NULL:
            continue
        lo_i = <uintptr_t>op.p[i]
        hi_i = lo_i + <uintptr_t>nbytes
        for j in range(i + 1, k):
            if op.p[j] == NULL:
                continue
            lo_j = <uintptr_t>op.p[j]
            hi_j = lo_j + <uintptr_t>nbytes
            if lo_i < hi_j and lo_j < hi_i:
                return False
    return True


def sgd(w, g, velocity, double lr, double momentum, bint nesterov, decay=None):
    """Keras's SGD (``velocity`` None when momentum is 0); ``decay`` = weight_decay * lr,
    applied to w first, or None."""
    cdef Operands op
    cdef bint do_decay = decay is not None
    cdef double dc = decay if do_decay else 0.0
    if not _gather(&op, (w, g, velocity)):
        return False
    with nogil:
        if op.typenum == cnp.NPY_FLOAT:
            wsk_sgd_f32(<float*>op.p[0], <float*>op.p[1], <float*>op.p[2], op.n, lr, momentum,
                        nesterov, do_decay, dc)
        else:
            wsk_sgd_f64(<double*>op.p[0], <double*>op.p[1], <double*>op.p[2], op.n, lr,
                        momentum, nesterov, do_decay, dc)
    return True


def rmsprop(w, g, velocity, momentum_slot, average_gradient, double lr, double rho,
            double momentum, double epsilon, decay=None):
    """Keras's RMSprop (epsilon inside the square root); ``momentum_slot`` None when momentum
    is 0, ``average_gradient`` None unless centred."""
    cdef Operands op
    cdef bint do_decay = decay is not None
    cdef double dc = decay if do_decay else 0.0
    if not _gather(&op, (w, g, velocity, momentum_slot, average_gradient)) or op.p[2] == NULL:
        return False
    with nogil:
        if op.typenum == cnp.NPY_FLOAT:
            wsk_rmsprop_f32(<float*>op.p[0], <float*>op.p[1], <float*>op.p[2], <float*>op.p[3],
                            <float*>op.p[4], op.n, lr, rho, momentum, epsilon, do_decay, dc)
        else:
            wsk_rmsprop_f64(<double*>op.p[0], <double*>op.p[1], <double*>op.p[2],
                            <double*>op.p[3], <double*>op.p[4], op.n, lr, rho, momentum,
                            epsilon, do_decay, dc)
    return True


def adam(w, g, m, v, v_max, double alpha, double beta_1, double beta_2, double epsilon,
         decay=None):
    """Keras's Adam with the bias correction folded into ``alpha``; ``v_max`` is amsgrad's
    slot or None."""
    cdef Operands op
    cdef bint do_decay = decay is not None
    cdef double dc = decay if do_decay else 0.0
    if not _gather(&op, (w, g, m, v, v_max)) or op.p[2] == NULL or op.p[3] == NULL:
        return False
    with nogil:
        if op.typenum == cnp.NPY_FLOAT:
            wsk_adam_f32(<float*>op.p[0], <float*>op.p[1], <float*>op.p[2], <float*>op.p[3],
                         <float*>op.p[4], op.n, alpha, beta_1, beta_2, epsilon, do_decay, dc)
        else:
            wsk_adam_f64(<double*>op.p[0], <double*>op.p[1], <double*>op.p[2],
                         <double*>op.p[3], <double*>op.p[4], op.n, alpha, beta_1, beta_2,
                         epsilon, do_decay, dc)
    return True


def adagrad(w, g, accumulator, double lr, double epsilon, decay=None):
    cdef Operands op
    cdef bint do_decay = decay is not None
    cdef double dc = decay if do_decay else 0.0
    if not _gather(&op, (w, g, accumulator)) or op.p[2] == NULL:
        return False
    with nogil:
        if op.typenum == cnp.NPY_FLOAT:
            wsk_adagrad_f32(<float*>op.p[0], <float*>op.p[1], <float*>op.p[2], op.n, lr,
                            epsilon, do_decay, dc)
        else:
            wsk_adagrad_f64(<double*>op.p[0], <double*>op.p[1], <double*>op.p[2], op.n, lr,
                            epsilon, do_decay, dc)
    return True


def adamax(w, g, m, u, double lr, double beta_1, double beta_2, double correction,
           double epsilon, decay=None):
    """``correction`` = 1 - beta_1 ** step."""
    cdef Operands op
    cdef bint do_decay = decay is not None
    cdef double dc = decay if do_decay else 0.0
    if not _gather(&op, (w, g, m, u)) or op.p[2] == NULL or op.p[3] == NULL:
        return False
    with nogil:
        if op.typenum == cnp.NPY_FLOAT:
            wsk_adamax_f32(<float*>op.p[0], <float*>op.p[1], <float*>op.p[2], <float*>op.p[3],
                           op.n, lr, beta_1, beta_2, correction, epsilon, do_decay, dc)
        else:
            wsk_adamax_f64(<double*>op.p[0], <double*>op.p[1], <double*>op.p[2],
                           <double*>op.p[3], op.n, lr, beta_1, beta_2, correction, epsilon,
                           do_decay, dc)
    return True


def nadam(w, g, m, v, double lr, double beta_1, double beta_2, double u_t1, double d1,
          double one_minus_u_t, double d2, double d3, double epsilon, decay=None):
    """m_hat = u_t1 m / d1 + (1 - u_t) g / d2; v_hat = v / d3 (the scalars of Nadam's
    schedule, computed by the caller in double as its NumPy code does)."""
    cdef Operands op
    cdef bint do_decay = decay is not None
    cdef double dc = decay if do_decay else 0.0
    if not _gather(&op, (w, g, m, v)) or op.p[2] == NULL or op.p[3] == NULL:
        return False
    with nogil:
        if op.typenum == cnp.NPY_FLOAT:
            wsk_nadam_f32(<float*>op.p[0], <float*>op.p[1], <float*>op.p[2], <float*>op.p[3],
                          op.n, lr, beta_1, beta_2, u_t1, d1, one_minus_u_t, d2, d3, epsilon,
                          do_decay, dc)
        else:
            wsk_nadam_f64(<double*>op.p[0], <double*>op.p[1], <double*>op.p[2],
                          <double*>op.p[3], op.n, lr, beta_1, beta_2, u_t1, d1, one_minus_u_t,
                          d2, d3, epsilon, do_decay, dc)
    return True


def lion(w, g, m, double lr, double beta_1, double beta_2, decay=None):
    cdef Operands op
    cdef bint do_decay = decay is not None
    cdef double dc = decay if do_decay else 0.0
    if not _gather(&op, (w, g, m)) or op.p[2] == NULL:
        return False
    with nogil:
        if op.typenum == cnp.NPY_FLOAT:
            wsk_lion_f32(<float*>op.p[0], <float*>op.p[1], <float*>op.p[2], op.n, lr, beta_1,
                         beta_2, do_decay, dc)
        else:
            wsk_lion_f64(<double*>op.p[0], <double*>op.p[1], <double*>op.p[2], op.n, lr,
                         beta_1, beta_2, do_decay, dc)
    return True


cdef bint _plain(obj, int typenum, Py_ssize_t n, bint write) noexcept:
    """``obj`` is a 1-D, C-contiguous, aligned, native-order array of ``typenum`` with
    ``n`` entries (and writeable when ``write``)."""
    cdef cnp.ndarray a
    cdef int flags
    if not cnp.PyArray_Check(obj):
        return False
    a = <cnp.ndarray>obj
    flags = cnp.PyArray_FLAGS(a)
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_NDIM(a) == 1
            and cnp.PyArray_DIMS(a)[0] == n
            and (flags & cnp.NPY_ARRAY_C_CONTIGUOUS) and (flags & cnp.NPY_ARRAY_ALIGNED)
            and cnp.PyArray_ISNOTSWAPPED(a)
            and (not write or (flags & cnp.NPY_ARRAY_WRITEABLE)))


cdef bint _apart(void* a, void* b, Py_ssize_t nbytes) noexcept:
    cdef uintptr_t lo_a = <uintptr_t>a, lo_b = <uintptr_t>b
    return lo_a + <uintptr_t>nbytes <= lo_b or lo_b + <uintptr_t>nbytes <= lo_a


def copy_and_gather(values, data, perm, out):
    """``data[:] = values`` then ``out[j] = data[perm[j]]`` for every j, in one call: a
    packed sparse weight's values and its cached transpose's, refreshed after an update
    (``perm``: where each of the transpose's values sits in ``data``; the caller keeps it
    in range, it is not checked here). ``values`` may be ``data`` itself. False (nothing
    written) unless values, data and out are 1-D float32/float64 arrays of one type and
    length, perm an int32 or int64 array of that length, all contiguous and native, and
    ``out`` apart from the others."""
    cdef cnp.ndarray d
    cdef int typenum, ptype
    cdef Py_ssize_t n, j, nbytes
    cdef const int* p32
    cdef const long long* p64
    cdef float* f_out
    cdef const float* f_in
    cdef double* d_out
    cdef const double* d_in
    cdef void* vp
    cdef void* dp
    cdef void* op
    cdef void* pp
    if not cnp.PyArray_Check(data) or not cnp.PyArray_Check(perm):
        return False
    d = <cnp.ndarray>data
    typenum = cnp.PyArray_TYPE(d)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        return False
    n = cnp.PyArray_SIZE(d)
    ptype = cnp.PyArray_TYPE(<cnp.ndarray>perm)
    if ptype == cnp.NPY_INT32 and sizeof(int) == 4:
        pass
    elif ptype == cnp.NPY_INT64 and sizeof(long long) == 8:
        pass
    else:
        return False
    if not (_plain(values, typenum, n, False) and _plain(data, typenum, n, True)
            and _plain(out, typenum, n, True) and _plain(perm, ptype, n, False)):
        return False
    nbytes = n * (4 if typenum == cnp.NPY_FLOAT else 8)
    vp = cnp.PyArray_DATA(<cnp.ndarray>values)
    dp = cnp.PyArray_DATA(d)
    op = cnp.PyArray_DATA(<cnp.ndarray>out)
    pp = cnp.PyArray_DATA(<cnp.ndarray>perm)
    if not (_apart(op, dp, nbytes) and _apart(op, vp, nbytes)
            and (vp == dp or _apart(vp, dp, nbytes))):
        return False
    with nogil:
        if vp != dp:
            memcpy(dp, vp, nbytes)
        if typenum == cnp.NPY_FLOAT:
            f_in = <const float*>dp
            f_out = <float*>op
            if ptype == cnp.NPY_INT32:
                p32 = <const int*>pp
                for j in range(n):
                    f_out[j] = f_in[p32[j]]
            else:
                p64 = <const long long*>pp
                for j in range(n):
                    f_out[j] = f_in[p64[j]]
        else:
            d_in = <const double*>dp
            d_out = <double*>op
            if ptype == cnp.NPY_INT32:
                p32 = <const int*>pp
                for j in range(n):
                    d_out[j] = d_in[p32[j]]
            else:
                p64 = <const long long*>pp
                for j in range(n):
                    d_out[j] = d_in[p64[j]]
    return True
