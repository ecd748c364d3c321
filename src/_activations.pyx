# Elementwise activations fused with their derivatives: one pass over the input writes
# the output and the derivative the backward pass multiplies by (NumPy needs a dozen
# passes and temporaries for the exact GELU). Wrapped in wsekern/nn/activations.py.
from cython.parallel cimport prange
from libc.math cimport erf, erff, exp, expf
from cython cimport floating

cdef double INV_SQRT2 = 0.70710678118654752440
cdef double INV_SQRT_2PI = 0.39894228040143267794


def gelu(const floating[::1] x, floating[::1] out, floating[::1] d, int n_threads=1):
    """out = x * Phi(x) (exact: Phi from erf) and d = Phi(x) + x * phi(x), the derivative.
    float32 in float32 arithmetic (erff/expf, correctly rounded to ~1 ulp), float64 in
    float64. NaN stays NaN; -inf gives NaN (-inf * 0), as the plain formula does."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v, cdf
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule='static'):
            v = x[i]
            if floating is float:
                cdf = 0.5 * (1 + erff(v * <float>INV_SQRT2))
                d[i] = cdf + v * expf(-0.5 * v * v) * <float>INV_SQRT_2PI
                out[i] = v * cdf
            else:
                cdf = 0.5 * (1 + erf(v * INV_SQRT2))
                d[i] = cdf + v * exp(-0.5 * v * v) * INV_SQRT_2PI
                out[i] = v * cdf
