# The transformer's fused passes: LayerNorm forward and backward (one pass over the rows
# each, statistics kept from the forward) and scaled-dot-product attention with an optional
# causal mask, whose products are BLAS calls on the (batch, tokens, heads, dim) layout the
# projections produce - no transposed copies. Wrapped (and validated) in
# wsekern/nn/layers/normalization.py and wsekern/nn/layers/attention.py.
from libc.math cimport exp, sqrt
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef extern from "wsk_vmath.h" nogil:
    const char* wsk_vmath_init()
    const char* wsk_vmath_use(int)
    float wsk_exp_shift_f32(const float*, float, float*, Py_ssize_t) noexcept

# This module's copy of wsk_vmath.h's dispatch flag (each extension holds its own).
SIMD_PATH = wsk_vmath_init().decode()
_PATHS = {"baseline": 0, "avx2": 1, "avx512": 2}


def use_simd_path(path):
    """Run the float32 softmax exponentials on ``path`` ("avx512", "avx2" or "baseline"; a
    path this CPU cannot run gives the widest below it it can; avx512 runs the 8-lane
    AVX2 version, faster on short causal rows); returns the path in use. WSEKERN_SIMD sets it at
    import (wsekern/simd_path.py); tests call it to check each."""
    global SIMD_PATH
    if path not in _PATHS:
        raise ValueError(f"path must be 'avx512', 'avx2' or 'baseline'; received {path!r}")
    SIMD_PATH = wsk_vmath_use(_PATHS[path]).decode()
    return SIMD_PATH


cdef _expect(what, got, want):
    if tuple(got) != tuple(want):
        raise ValueError(f"{what} must have shape {tuple(want)}; received {tuple(got)}")


def layer_norm_forward(const floating[:, ::1] x, const floating[::1] gamma,
                       const floating[::1] beta, double eps, floating[:, ::1] out,
                       double[::1] mean, double[::1] rstd):
    """out = (x - mean) * rstd * gamma + beta over each row of x (n, d); writes the rows'
    mean and rstd = 1 / sqrt(var + eps). Sums in double whatever the input (the float32
    rows then agree with PyTorch's to a few ulp); the variance from the centred values."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i, j
    cdef double m, var, r
    _expect("gamma", (gamma.shape[0],), (d,))
    _expect("beta", (beta.shape[0],), (d,))
    _expect("out", (out.shape[0], out.shape[1]), (n, d))
    _expect("mean", (mean.shape[0],), (n,))
    _expect("rstd", (rstd.shape[0],), (n,))
    with nogil:
        for i in range(n):
            m = _row_sum(&x[i, 0], d, 0.0, False) / d if d else 0
            var = _row_sum(&x[i, 0], d, m, True) / d if d else 0
            r = 1.0 / sqrt(var + eps)
            mean[i] = m
            rstd[i] = r
            for j in range(d):
                out[i, j] = <floating>((x[i, j] - m) * r) * gamma[j] + beta[j]


cdef inline double _row_sum(const floating* v, Py_ssize_t d, double centre,
                           bint squares) noexcept nogil:
    """sum(v), or with squares sum((v - centre)^2), in double; four partial sums so that
    the additions do not wait on each other."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, c0, c1, c2, c3
    cdef Py_ssize_t j = 0
    if not squares:
        while j + 4 <= d:
            s0 += v[j]
            s1 += v[j + 1]
            s2 += v[j + 2]
            s3 += v[j + 3]
            j += 4
        while j < d:
            s0 += v[j]
            j += 1
    else:
        while j + 4 <= d:
            c0 = v[j] - centre
            c1 = v[j + 1] - centre
            c2 = v[j + 2] - centre
            c3 = v[j + 3] - centre
            s0 += c0 * c0
            s1 += c1 * c1
            s2 += c2 * c2
            s3 += c3 * c3
            j += 4
        while j < d:
            c0 = v[j] - centre
            s0 += c0 * c0
            j += 1
    return (s0 + s1) + (s2 + s3)


def layer_norm_backward(const floating[:, ::1] g, const floating[:, ::1] x,
                        const floating[::1] gamma, const double[::1] mean,
                        const double[::1] rstd, floating[:, ::1] dx, double[::1] dgamma,
                        double[::1] dbeta):
    """The gradients of layer_norm_forward for the output gradient g (n, d): dx (written)
    and dgamma, dbeta (added to, in double). With xhat = (x - mean) * rstd and
    gg = g * gamma: dx = rstd * (gg - mean(gg) - xhat * mean(gg * xhat)) per row."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i, j
    cdef double m, r, xh, a, b
    _expect("g", (g.shape[0], g.shape[1]), (n, d))
    _expect("dx", (dx.shape[0], dx.shape[1]), (n, d))
    _expect("gamma", (gamma.shape[0],), (d,))
    _expect("dgamma", (dgamma.shape[0],), (d,))
    _expect("dbeta", (dbeta.shape[0],), (d,))
    _expect("mean", (mean.shape[0],), (n,))
    _expect("rstd", (rstd.shape[0],), (n,))
    with nogil:
        for i in range(n):
            m = mean[i]
            r = rstd[i]
            _grad_sums(&g[i, 0], &x[i, 0], &gamma[0], m, r, d, &a, &b)
            a /= d
            b /= d
            # one pass for the parameters' sums and dx (xhat computed once per value)
            _grad_row(&g[i, 0], &x[i, 0], &gamma[0], m, r, a, b, d, &dgamma[0], &dbeta[0],
                      &dx[i, 0])


cdef inline void _grad_row(const floating* g, const floating* x, const floating* gamma,
                           double m, double r, double a, double b, Py_ssize_t d,
                           double* dgamma, double* dbeta, floating* dx) noexcept nogil:
    """dgamma += g * xhat, dbeta += g and dx = r * (g * gamma - a - xhat * b) over a row,
    each value as the separate loops computed it (the same bits)."""
    cdef Py_ssize_t j
    cdef double xh, gj
    for j in range(d):
        gj = g[j]
        xh = (x[j] - m) * r
        dgamma[j] += gj * xh
        dbeta[j] += gj
        dx[j] = <floating>(r * (gj * gamma[j] - a - xh * b))


cdef inline void _grad_sums(const floating* g, const floating* x, const floating* gamma,
                            double m, double r, Py_ssize_t d, double* a,
                            double* b) noexcept nogil:
    """a = sum(g * gamma), b = sum(g * gamma * xhat) over a row, in double, two partial
    sums each (independent additions)."""
    cdef double a0 = 0, a1 = 0, b0 = 0, b1 = 0, gg0, gg1
    cdef Py_ssize_t j = 0
    while j + 2 <= d:
        gg0 = <double>g[j] * gamma[j]
        gg1 = <double>g[j + 1] * gamma[j + 1]
        a0 += gg0
        a1 += gg1
        b0 += gg0 * ((x[j] - m) * r)
        b1 += gg1 * ((x[j + 1] - m) * r)
        j += 2
    if j < d:
        gg0 = <double>g[j] * gamma[j]
        a0 += gg0
        b0 += gg0 * ((x[j] - m) * r)
    a[0] = a0 + a1
    b[0] = b0 + b1


cdef inline void _gemm(char ta, char tb, int m, int n, int k, floating alpha,
                       const floating* a, int lda, const floating* b, int ldb,
                       floating* c, int ldc) noexcept nogil:
    """Column-major C (m, n) = alpha * op(A) op(B) (BLAS; beta 0)."""
    cdef floating zero = 0
    if floating is float:
        sgemm(&ta, &tb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb, &zero, c, &ldc)
    else:
        dgemm(&ta, &tb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb, &zero, c, &ldc)


cdef inline void _softmax_row(floating* row, Py_ssize_t allowed, Py_ssize_t n) noexcept nogil:
    """row[:allowed] = softmax(row[:allowed]); row[allowed:n] = 0 (the masked keys).
    A NaN anywhere in row[:allowed] makes it all NaN (through the sum), as in NumPy."""
    cdef Py_ssize_t j
    cdef floating mx = row[0]
    cdef double total = 0
    cdef floating inv
    for j in range(1, allowed):
        if row[j] > mx:
            mx = row[j]
    if floating is float:
        total = wsk_exp_shift_f32(row, mx, row, allowed)
    else:
        for j in range(allowed):
            row[j] = exp(row[j] - mx)
            total += row[j]
    inv = <floating>(1.0 / total)
    for j in range(allowed):
        row[j] *= inv
    for j in range(allowed, n):
        row[j] = 0


def _check_like(what, a, like):
    _expect(what, a.shape[:4], like.shape[:4])


def _check_attention(q, k, v, p, out, work, causal=False):
    """Shapes agree, every size is positive and the BLAS sizes fit an int (so every
    causal row, which sees keys 0..i, has at least one key)."""
    B, Tq, H, dk = q.shape[:4]
    Tk, dv = k.shape[1], v.shape[3]
    _expect("k", k.shape[:4], (B, Tk, H, dk))
    _expect("v", v.shape[:4], (B, Tk, H, dv))
    _expect("p", p.shape[:4], (B, H, Tq, Tk))
    _expect("the output (gradient)", out.shape[:4], (B, Tq, H, dv))
    if work is not None:
        _expect("work", work.shape[:2], (Tq, Tk))
    if min(Tq, Tk, H, dk, dv) <= 0 or max(H * dk, H * dv, Tq, Tk) >= 2**31:
        raise ValueError(f"attention needs positive sizes below 2**31 per BLAS dimension; "
                         f"received q {tuple(q.shape[:4])}, k {tuple(k.shape[:4])}, "
                         f"v {tuple(v.shape[:4])}")


def attention_forward(const floating[:, :, :, ::1] q, const floating[:, :, :, ::1] k,
                      const floating[:, :, :, ::1] v, double scale, bint causal,
                      floating[:, :, :, ::1] p, floating[:, :, :, ::1] out):
    """softmax(q k^T * scale [causal]) v for q (B, Tq, H, dk), k (B, Tk, H, dk),
    v (B, Tk, H, dv): out (B, Tq, H, dv) and the attention weights p (B, H, Tq, Tk).
    Causal: query i sees keys j <= i (Keras's rule, whatever Tq and Tk). Each (batch, head) is three BLAS calls on strided views: no copies."""
    cdef Py_ssize_t B = q.shape[0], Tq = q.shape[1], H = q.shape[2], dk = q.shape[3]
    cdef Py_ssize_t Tk = k.shape[1], dv = v.shape[3], b, h, i
    cdef int ldq, ldv
    cdef floating* s
    _check_attention(q, k, v, p, out, None, causal)
    ldq, ldv = H * dk, H * dv
    with nogil:
        for b in range(B):
            for h in range(H):
                s = &p[b, h, 0, 0]
                # column-major: S^T (Tk, Tq) = K_bh Q_bh^T, i.e. S = Q K^T row-major
                _gemm(c'T', c'N', Tk, Tq, dk, <floating>scale, &k[b, 0, h, 0], ldq,
                      &q[b, 0, h, 0], ldq, s, Tk)
                for i in range(Tq):
                    _softmax_row(s + i * Tk, min(Tk, i + 1) if causal else Tk, Tk)
                # O^T (dv, Tq) = V^T P^T
                _gemm(c'N', c'N', dv, Tq, Tk, 1, &v[b, 0, h, 0], ldv, s, Tk,
                      &out[b, 0, h, 0], ldv)


def attention_backward(const floating[:, :, :, ::1] g, const floating[:, :, :, ::1] q,
                       const floating[:, :, :, ::1] k, const floating[:, :, :, ::1] v,
                       const floating[:, :, :, ::1] p, double scale,
                       floating[:, :, :, ::1] dq, floating[:, :, :, ::1] dk_,
                       floating[:, :, :, ::1] dv_, floating[:, ::1] work):
    """The gradients of attention_forward for the output gradient g (B, Tq, H, dv): dq, dk,
    dv written in q's, k's and v's layouts. work: (Tq, Tk) scratch. Per (batch, head):
    dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dP * P)) * scale, dQ = dS K,
    dK = dS^T Q (masked keys have P = 0, hence dS = 0)."""
    cdef Py_ssize_t B = q.shape[0], Tq = q.shape[1], H = q.shape[2], dk = q.shape[3]
    cdef Py_ssize_t Tk = k.shape[1], dv = v.shape[3], b, h, i, j
    cdef int ldq, ldv
    cdef const floating* pr
    _check_attention(q, k, v, p, g, work)
    _check_like("dq", dq, q)
    _check_like("dk", dk_, k)
    _check_like("dv", dv_, v)
    ldq, ldv = H * dk, H * dv
    cdef floating* wr
    cdef double dot
    with nogil:
        for b in range(B):
            for h in range(H):
                # dV^T (dv, Tk) = dO^T P
                _gemm(c'N', c'T', dv, Tk, Tq, 1, &g[b, 0, h, 0], ldv, &p[b, h, 0, 0], Tk,
                      &dv_[b, 0, h, 0], ldv)
                # dP^T (Tk, Tq) = V dO^T, i.e. dP = dO V^T row-major
                _gemm(c'T', c'N', Tk, Tq, dv, 1, &v[b, 0, h, 0], ldv, &g[b, 0, h, 0], ldv,
                      &work[0, 0], Tk)
                for i in range(Tq):
                    pr = &p[b, h, i, 0]
                    wr = &work[i, 0]
                    dot = 0
                    for j in range(Tk):
                        dot += <double>wr[j] * pr[j]
                    for j in range(Tk):
                        wr[j] = <floating>(pr[j] * (wr[j] - dot) * scale)
                # dQ^T (dk, Tq) = K^T dS^T
                _gemm(c'N', c'N', dk, Tq, Tk, 1, &k[b, 0, h, 0], ldq, &work[0, 0], Tk,
                      &dq[b, 0, h, 0], ldq)
                # dK^T (dk, Tk) = Q^T dS
                _gemm(c'N', c'T', dk, Tk, Tq, 1, &q[b, 0, h, 0], ldq, &work[0, 0], Tk,
                      &dk_[b, 0, h, 0], ldq)
