# Elementwise activations fused with their derivatives: one pass over the input writes
# the output and the derivative the backward pass multiplies by (NumPy needs a dozen
# passes and temporaries for the exact GELU). Wrapped in wsekern/nn/activations.py.
from cython.parallel cimport prange
from libc.math cimport erf, exp
from cython cimport floating

cdef extern from "wsk_vmath.h" nogil:
    const char* wsk_vmath_init()
    const char* wsk_vmath_use(int)
    void wsk_gelu_f32(const float*, float*, float*, Py_ssize_t) noexcept

cdef double INV_SQRT2 = 0.70710678118654752440
cdef double INV_SQRT_2PI = 0.39894228040143267794

SIMD_PATH = wsk_vmath_init().decode()
_PATHS = {"baseline": 0, "avx2": 1, "avx512": 2}


def use_simd_path(path):
    """Run the float32 passes on ``path`` ("avx512", "avx2" or "baseline"; a path this CPU
    cannot run gives the widest below it it can) - for tests that check each; returns the
    path in use."""
    global SIMD_PATH
    if path not in _PATHS:
        raise ValueError(f"path must be 'avx512', 'avx2' or 'baseline'; received {path!r}")
    SIMD_PATH = wsk_vmath_use(_PATHS[path]).decode()
    return SIMD_PATH


def gelu(const floating[::1] x, floating[::1] out, floating[::1] d, int n_threads=1):
    """out = x * Phi(x) (exact: Phi from erf) and d = Phi(x) + x * phi(x), the derivative.
    float32 through wsk_vmath.h's vectorised polynomial forms (|Phi error| <= 1.1e-7, the
    far negative tail's relative error <= 5e-6: 4.4e-6 measured near -13), float64 through libm's erf and exp. NaN stays NaN;
    -inf gives NaN (-inf * 0), as the plain formula does."""
    cdef Py_ssize_t i, n = x.shape[0], chunk, lo, hi
    cdef int c, n_chunks
    cdef double v, cdf
    if out.shape[0] != n or d.shape[0] != n:        # the loops below write n of each
        raise ValueError(f"gelu: out ({out.shape[0]}) and d ({d.shape[0]}) need x's length "
                         f"({n})")
    if n == 0:
        return
    if floating is float:
        n_chunks = max(1, min(n_threads, n))
        chunk = (n + n_chunks - 1) // n_chunks
        with nogil:
            for c in prange(n_chunks, num_threads=n_chunks, schedule='static'):
                lo = c * chunk
                hi = min(n, lo + chunk)
                if hi > lo:
                    wsk_gelu_f32(&x[lo], &out[lo], &d[lo], hi - lo)
    else:
        with nogil:
            for i in prange(n, num_threads=n_threads, schedule='static'):
                v = x[i]
                cdf = 0.5 * (1 + erf(v * INV_SQRT2))
                d[i] = cdf + v * exp(-0.5 * v * v) * INV_SQRT_2PI
                out[i] = v * cdf


def scale_column_sums(const floating[:, ::1] g, const floating[:, ::1] d,
                      floating[:, ::1] out, floating[::1] sums):
    """out = g * d and sums = out.sum(axis=0), in one pass over the rows (a Dense layer's
    backward: the upstream gradient times the activation's derivative, and the bias
    gradient). The sums add the rows in order in the arrays' dtype, starting from zero
    (so -0.0 sums to 0.0), as NumPy's column sums of a C-contiguous array of two or more
    columns do: the same bits (a single column NumPy sums pairwise, which this does not).
    ``out`` may be ``g`` itself. Shapes: g, d, out (n, m), sums (m,); n = 0 gives zero
    sums."""
    cdef Py_ssize_t n = g.shape[0], m = g.shape[1], i, j
    cdef floating* o
    cdef floating* s
    cdef const floating* gr
    cdef const floating* dr
    if (d.shape[0] != n or d.shape[1] != m or out.shape[0] != n or out.shape[1] != m
            or sums.shape[0] != m):
        raise ValueError(f"scale_column_sums: d and out need g's shape ({n}, {m}) and sums "
                         f"({m},); received d ({d.shape[0]}, {d.shape[1]}), out "
                         f"({out.shape[0]}, {out.shape[1]}), sums ({sums.shape[0]},)")
    if m == 0:
        return
    s = &sums[0]
    with nogil:
        for j in range(m):
            s[j] = 0
        for i in range(n):
            gr = &g[i, 0]
            dr = &d[i, 0]
            o = &out[i, 0]
            for j in range(m):
                o[j] = gr[j] * dr[j]
                s[j] = s[j] + o[j]
