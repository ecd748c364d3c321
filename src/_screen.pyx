# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""One training step's input stream into a weight-stationary region whose blocks are all
dense (wafer/analytic.py ``dense_screen_cycles``): per sample and PE column, the nonzero
activations arriving, the compute they start, and when the sample's first and last
wavelet reach the chain, in one pass instead of a dozen NumPy temporaries.

Each float is the NumPy expression's: one rounded operation at a time, in its order (the
extension is built with -ffp-contract=off, so no multiply-add is fused).
"""
import numpy as np


def dense_stream(const unsigned char[:, :] x_nz, const long[:] k_b, double tmax, double eos,
                 long wpv, double dt, double fill):
    """The stream of X's nonzero pattern ``x_nz`` (K x N, 0/1, any strides) down the C
    PE columns whose rows of X are ``k_b[c]:k_b[c + 1]`` (C + 1 bounds, 0 <= ... <= K).

    With a[n, c] the nonzeros of sample n in column c and v = a * wpv + 1 its wavelets
    (the values, then an end-of-stream marker), returns (work, first, last, a_max, v_max):
    N x C float64 arrays ``a * tmax + eos``, ``(cumsum(v) * dt - v * dt) + fill`` and
    ``(cumsum(v) * dt - dt) + fill`` (cumulative over the samples), and the largest
    column sums over the batch of a and of v (ints). O(K * N + C * N).
    """
    cdef Py_ssize_t K = x_nz.shape[0], N = x_nz.shape[1], C = k_b.shape[0] - 1
    cdef Py_ssize_t n, c, k
    if C < 0 or (C > 0 and (k_b[0] < 0 or k_b[C] > K)):
        raise ValueError(f"k_b must be {C + 1} bounds within 0..{K}; received "
                         f"{np.asarray(k_b)!r}")
    for c in range(C):
        if k_b[c] > k_b[c + 1]:
            raise ValueError(f"k_b must be nondecreasing; received {np.asarray(k_b)!r}")
    work_a = np.empty((N, C))
    first_a = np.empty((N, C))
    last_a = np.empty((N, C))
    cdef double[:, ::1] work = work_a
    cdef double[:, ::1] first = first_a
    cdef double[:, ::1] last = last_a
    cdef long[::1] a_sum = np.zeros(C, dtype=np.int_)
    cdef long[::1] v_sum = np.zeros(C, dtype=np.int_)
    cdef long a, v, a_max = 0, v_max = 0
    cdef double cum
    with nogil:
        for n in range(N):
            for c in range(C):
                a = 0
                for k in range(k_b[c], k_b[c + 1]):
                    a += x_nz[k, n]
                v = a * wpv + 1
                a_sum[c] += a
                v_sum[c] += v
                work[n, c] = <double> a * tmax + eos
                cum = <double> v_sum[c] * dt
                first[n, c] = (cum - <double> v * dt) + fill
                last[n, c] = (cum - dt) + fill
        for c in range(C):
            if a_sum[c] > a_max:
                a_max = a_sum[c]
            if v_sum[c] > v_max:
                v_max = v_sum[c]
    return work_a, first_a, last_a, int(a_max), int(v_max)
