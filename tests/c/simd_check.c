/* Every loop of src/wsk_simd.h on every SIMD path the CPU runs, against scalar references.
 *
 * Built and run by tests/test_simd_portable.py: with the host compiler (each path, and
 * with -DWSK_NO_DISPATCH, the branch a CPU without x86 dispatch compiles), and with an
 * aarch64 cross compiler under qemu-user where both are installed.  No Python, no NumPy:
 * the same checks reach a target the extension cannot be built for here.
 * Exit status 0 when every check passes; the first mismatch is printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "wsk_simd.h"

static unsigned long long rng_state = 88172645463325252ULL;
static double uniform(void)                       /* xorshift64: [0, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static int failures = 0;
static const char* path_name = "";

/* Equal within a relative tolerance, NaN where the reference is NaN. */
static int close_to(double got, double want, double tol)
{
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    return fabs(got - want) <= tol * (1.0 + fabs(want));
}

static void fail(const char* what, long a, long b, double got, double want)
{
    if (failures++ < 5)
        printf("FAIL %s on %s (%ld, %ld): got %.9g, want %.9g\n", what, path_name, a, b,
               got, want);
}

/* spmm rows: every width 1..67 (every tile and tail), nnz 0..40, duplicate and unsorted
   columns, a NaN in X met by a stored weight. */
#define CHECK_SPMM(V, I, ROW, TOL, NAME)                                                   \
static void check_spmm_##NAME(void)                                                        \
{                                                                                          \
    enum { K = 29, NMAX = 67, PMAX = 40 };                                                 \
    static V X[K * (NMAX + 3)], y[NMAX + 8];                                               \
    V vals[PMAX];                                                                          \
    I cols[PMAX];                                                                          \
    for (ptrdiff_t n = 1; n <= NMAX; n++) {                                                \
        const ptrdiff_t ldx = n + (n % 3);          /* pitch wider than the row, too */    \
        for (ptrdiff_t i = 0; i < K * ldx; i++) X[i] = (V)(uniform() * 2 - 1);             \
        X[5 * ldx + (n - 1)] = (V)NAN;                                                     \
        for (ptrdiff_t nnz = 0; nnz <= PMAX; nnz += 1 + nnz / 4) {                         \
            for (ptrdiff_t p = 0; p < nnz; p++) {                                          \
                vals[p] = (V)(uniform() * 2 - 1);                                          \
                cols[p] = (I)(uniform() * K);       /* unsorted, duplicates */             \
            }                                                                              \
            for (ptrdiff_t j = 0; j < n + 8; j++) y[j] = (V)-7;                            \
            if (nnz) ROW(vals, cols, nnz, X, ldx, y, n);                                   \
            else for (ptrdiff_t j = 0; j < n; j++) y[j] = 0;                               \
            for (ptrdiff_t j = 0; j < n; j++) {                                            \
                double want = 0;                                                           \
                for (ptrdiff_t p = 0; p < nnz; p++)                                        \
                    want += (double)vals[p] * X[(ptrdiff_t)cols[p] * ldx + j];             \
                if (!close_to(y[j], want, TOL)) fail("spmm_row " #NAME, n, nnz, y[j], want); \
            }                                                                              \
            if (y[n] != (V)-7) fail("spmm_row wrote past n " #NAME, n, nnz, y[n], -7);     \
        }                                                                                  \
    }                                                                                      \
}
CHECK_SPMM(float, int32_t, wsk_spmm_row_f32_i32, 1e-5, f32_i32)
CHECK_SPMM(float, int64_t, wsk_spmm_row_f32_i64, 1e-5, f32_i64)
CHECK_SPMM(double, int32_t, wsk_spmm_row_f64_i32, 1e-12, f64_i32)
CHECK_SPMM(double, int64_t, wsk_spmm_row_f64_i64, 1e-12, f64_i64)

/* Dot products and the conv plane loops, every length to 70. */
#define CHECK_DOT(V, DOT, AXPY, PDOT, TOL, NAME)                                           \
static void check_dot_##NAME(void)                                                         \
{                                                                                          \
    static V a[3 * 80], b[3 * 80], y[3 * 80];                                              \
    for (ptrdiff_t n = 0; n <= 70; n++) {                                                  \
        for (int i = 0; i < 3 * 80; i++) {                                                 \
            a[i] = (V)(uniform() - 0.5); b[i] = (V)(uniform() - 0.5); y[i] = b[i];         \
        }                                                                                  \
        double want = 0;                                                                   \
        for (ptrdiff_t d = 0; d < n; d++) want += (double)a[d] * b[d];                     \
        V got = DOT(a, b, n);                                                              \
        if (!close_to(got, want, TOL)) fail("dot " #NAME, n, 0, got, want);                \
        const uint8_t flags[3] = {1, 0, 1};                                                \
        AXPY(3, n, (V)0.5, a, 80, flags, y, 80);                                           \
        for (int r = 0; r < 3; r++)                                                        \
            for (ptrdiff_t j = 0; j < n; j++) {                                            \
                double w = b[r * 80 + j] + (flags[r] ? 0.5 * a[r * 80 + j] : 0.0);         \
                if (!close_to(y[r * 80 + j], w, TOL)) fail("plane_axpy " #NAME, n, r,       \
                                                         y[r * 80 + j], w);                \
            }                                                                              \
        /* plane_dot's y is packed (rows of n), x has pitch 80. */                         \
        want = 0;                                                                          \
        for (int r = 0; r < 3; r++)                                                        \
            for (ptrdiff_t j = 0; j < n; j++) want += (double)b[r * n + j] * a[r * 80 + j];  \
        got = PDOT(3, n, b, a, 80);                                                        \
        if (!close_to(got, want, TOL)) fail("plane_dot " #NAME, n, 0, got, want);          \
    }                                                                                      \
}
CHECK_DOT(float, wsk_dot_f32, wsk_plane_axpy_f32, wsk_plane_dot_f32, 1e-5, f32)
CHECK_DOT(double, wsk_dot_f64, wsk_plane_axpy_f64, wsk_plane_dot_f64, 1e-12, f64)

/* Row compaction (dense W and CSR W) against dead rows of X, with inf/NaN weights kept. */
#define CHECK_COMPACT(V, COMPACT, CSR, NAME)                                               \
static void check_compact_##NAME(void)                                                     \
{                                                                                          \
    enum { K = 61 };                                                                       \
    V w[K], vout[K + 16];                                                                  \
    uint8_t alive[K + 16];                                                                 \
    int32_t remap[K], iout[K + 16], cols[K];                                               \
    for (ptrdiff_t n = 0; n <= K; n++) {                                                   \
        int32_t live = 0;                                                                  \
        for (int k = 0; k < K; k++) alive[k] = uniform() < 0.5;                            \
        for (int k = 0; k < K; k++) remap[k] = alive[k] ? live++ : -1;                     \
        for (int k = 0; k < K; k++) if (!alive[k]) remap[k] = live;   /* the zero row */  \
        for (ptrdiff_t k = 0; k < n; k++) {                                                \
            double u = uniform();                                                          \
            w[k] = u < 0.4 ? 0 : u < 0.45 ? (V)INFINITY : u < 0.5 ? (V)NAN : (V)u;         \
        }                                                                                  \
        ptrdiff_t q = COMPACT(w, alive, remap, n, vout, iout), want = 0;                   \
        for (ptrdiff_t k = 0; k < n; k++) {                                                \
            if (w[k] == 0 || !(alive[k] || !isfinite(w[k]))) continue;                     \
            if (want < q && !(iout[want] == remap[k] &&                                    \
                              (vout[want] == w[k] || (isnan(w[k]) && isnan(vout[want])))))  \
                fail("compact " #NAME, n, k, vout[want], w[k]);                            \
            want++;                                                                        \
        }                                                                                  \
        if (q != want) fail("compact count " #NAME, n, 0, (double)q, (double)want);        \
        /* CSR: every weight stored (zeros too), columns in any order. */                  \
        for (ptrdiff_t p = 0; p < n; p++) cols[p] = (int32_t)(uniform() * K);              \
        q = CSR(w, cols, n, remap, live, vout, iout);                                      \
        want = 0;                                                                          \
        for (ptrdiff_t p = 0; p < n; p++) {                                                \
            if (!(remap[cols[p]] < live || !isfinite(w[p]))) continue;                     \
            if (want < q && !(iout[want] == remap[cols[p]] &&                              \
                              (vout[want] == w[p] || (isnan(w[p]) && isnan(vout[want])))))  \
                fail("compact_csr " #NAME, n, p, vout[want], w[p]);                        \
            want++;                                                                        \
        }                                                                                  \
        if (q != want) fail("compact_csr count " #NAME, n, 0, (double)q, (double)want);    \
    }                                                                                      \
}
CHECK_COMPACT(float, wsk_compact_f32, wsk_compact_csr_f32_i32, f32)
CHECK_COMPACT(double, wsk_compact_f64, wsk_compact_csr_f64_i32, f64)

int main(void)
{
    const int avail = wsk_simd_available();
    int checked = 0;
    for (int path = 1; path <= 4; path <<= 1) {
        if (!(avail & path)) continue;
        path_name = wsk_simd_init(path);
        check_spmm_f32_i32();
        check_spmm_f32_i64();
        check_spmm_f64_i32();
        check_spmm_f64_i64();
        check_dot_f32();
        check_dot_f64();
        check_compact_f32();
        check_compact_f64();
        printf("%s %s\n", path_name, failures ? "FAILED" : "ok");
        checked++;
    }
    printf("x86 dispatch %d, paths checked %d, failures %d\n", WSK_X86_DISPATCH, checked,
           failures);
    return failures != 0 || checked == 0;
}
