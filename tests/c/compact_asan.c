/* review2 (s16): the CSR compaction of src/wsk_simd.h (wsk_compact_csr_*) on every SIMD path,
 * under -fsanitize=address,undefined, with every buffer malloc'd to its exact size (no slack:
 * a store past a row's nnz is a heap overflow ASan reports), against a scalar reference.
 *
 *   Built and run by tests/test_review2_s16.py, as:
 *   gcc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
 *       -fno-math-errno -Wno-psabi -I src tests/c/compact_asan.c -o compact_asan -lm
 *
 * Cases: nnz 0..200 and a few long rows (1000, 4099, 65537); remap patterns all live, all dead,
 * alternating, random, first/last only, and remap values at the top of int32 (zero_row
 * INT32_MAX, live rows INT32_MAX - 1: the compaction never dereferences X, so the range of
 * the compare is tested without a 2^31-row X); weights +-0, subnormals, +-inf, NaN with
 * payloads, huge; columns unsorted with repeats; input and output pointers shifted by 0..3
 * elements (no alignment assumed); rows compacted back to back into one exact buffer, as the
 * per-row variant (16 rows) and the compacted-once variant do: a row never overwrites the
 * kept entries of the rows before it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include "wsk_simd.h"

static unsigned long long rs = 88172645463325252ULL;
static unsigned long long rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static double unif(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static long failures = 0, checks = 0;
static const char* path = "";

#define DEF_CASE(V, I, U, SFX, FN)                                                         \
static V weight_##SFX(void)                                                                \
{                                                                                          \
    double u = unif();                                                                     \
    U b;                                                                                   \
    V v;                                                                                   \
    if (u < 0.15) return (V)0;                                                             \
    if (u < 0.2) return -(V)0;                                                             \
    if (u < 0.23) { b = (U)1 + (U)(rnd() & 0xff); memcpy(&v, &b, sizeof v); return v; }   \
    if (u < 0.26) return (V)INFINITY;                                                      \
    if (u < 0.29) return -(V)INFINITY;                                                     \
    if (u < 0.33) { v = (V)NAN; memcpy(&b, &v, sizeof b); b |= (U)(rnd() & 0xffff);         \
                    b |= (U)(rnd() & 1) << (sizeof(U) * 8 - 1); memcpy(&v, &b, sizeof v);  \
                    return v; }                                                            \
    if (u < 0.36) return (V)(sizeof(V) == 4 ? 3e38 : 1e308);                               \
    return (V)(unif() * 2 - 1);                                                            \
}                                                                                          \
/* one row: in[0:n], remap, zero_row -> out at vout/iout (exact room n); returns count */ \
static ptrdiff_t ref_##SFX(const V* vals, const I* cols, ptrdiff_t n, const I* remap,      \
                           I zr, V* vo, I* io)                                             \
{                                                                                          \
    ptrdiff_t q = 0;                                                                       \
    for (ptrdiff_t p = 0; p < n; p++) {                                                    \
        const I r = remap[cols[p]];                                                        \
        if (r < zr || !isfinite((double)vals[p])) { vo[q] = vals[p]; io[q] = r; q++; }     \
    }                                                                                      \
    return q;                                                                              \
}                                                                                          \
/* rows of the given lengths compacted back to back into exact buffers (shifted by sh) */ \
static void run_##SFX(const ptrdiff_t* lens, int nrows, ptrdiff_t K, const I* remap, I zr, \
                      int sh, const char* what)                                            \
{                                                                                          \
    ptrdiff_t tot = 0;                                                                     \
    for (int i = 0; i < nrows; i++) tot += lens[i];                                        \
    V* vin = malloc((tot + sh) * sizeof(V) + 1);                                           \
    I* cin = malloc((tot + sh) * sizeof(I) + 1);                                           \
    V* vo = malloc((tot + sh) * sizeof(V) + 1);                                            \
    I* io = malloc((tot + sh) * sizeof(I) + 1);                                            \
    V* vr = malloc(tot * sizeof(V) + 1);                                                   \
    I* ir = malloc(tot * sizeof(I) + 1);                                                   \
    for (ptrdiff_t p = 0; p < tot; p++) {                                                  \
        vin[sh + p] = weight_##SFX();                                                      \
        cin[sh + p] = (I)(rnd() % (unsigned long long)K);                                  \
    }                                                                                      \
    ptrdiff_t off = 0, q = 0, qr = 0;                                                      \
    for (int i = 0; i < nrows; i++) {                                                      \
        ptrdiff_t got = FN(vin + sh + off, cin + sh + off, lens[i], remap, zr,             \
                           vo + sh + q, io + sh + q);                                      \
        ptrdiff_t want = ref_##SFX(vin + sh + off, cin + sh + off, lens[i], remap, zr,     \
                                   vr + qr, ir + qr);                                      \
        checks++;                                                                          \
        if (got != want) {                                                                 \
            if (failures++ < 10) printf("FAIL %s %s %s row %d len %td: count %td want %td\n", \
                                        path, #SFX, what, i, lens[i], got, want);          \
        }                                                                                  \
        off += lens[i]; q += got; qr += want;                                              \
    }                                                                                      \
    if (q == qr && (memcmp(vo + sh, vr, q * sizeof(V)) || memcmp(io + sh, ir, q * sizeof(I)))) { \
        if (failures++ < 10) printf("FAIL %s %s %s: kept entries differ\n", path, #SFX, what); \
    }                                                                                      \
    free(vin); free(cin); free(vo); free(io); free(vr); free(ir);                          \
}                                                                                          \
static void check_##SFX(void)                                                              \
{                                                                                          \
    enum { NPAT = 7 };                                                                     \
    for (int pat = 0; pat < NPAT; pat++) {                                                 \
        const ptrdiff_t K = 1 + (ptrdiff_t)(rnd() % 300);                                  \
        I* remap = malloc(K * sizeof(I));                                                  \
        I live = 0;                                                                        \
        int top = pat == 6;                  /* remap values at the top of int32 */       \
        for (ptrdiff_t k = 0; k < K; k++) {                                                \
            int alive = pat == 0 ? 1 : pat == 1 ? 0 : pat == 2 ? (int)(k & 1)              \
                      : pat == 3 ? unif() < 0.5 : pat == 4 ? k == 0 : pat == 5 ? k == K - 1 \
                      : (int)(k & 1);                                                      \
            remap[k] = alive ? live++ : -1;                                                \
        }                                                                                  \
        I zr = live;                                                                       \
        if (top) {                                                                         \
            zr = (I)INT32_MAX;                                                             \
            for (ptrdiff_t k = 0; k < K; k++)                                              \
                remap[k] = remap[k] < 0 ? zr : (I)(INT32_MAX - 1 - remap[k]);              \
        } else                                                                             \
            for (ptrdiff_t k = 0; k < K; k++) if (remap[k] < 0) remap[k] = zr;            \
        for (ptrdiff_t n = 0; n <= 200; n++)                                               \
            for (int sh = 0; sh < 4; sh += 3 - (n & 1) * 2) {                              \
                ptrdiff_t len = n;                                                         \
                run_##SFX(&len, 1, K, remap, zr, sh, "one row");                           \
            }                                                                              \
        ptrdiff_t longs[3] = {1000, 4099, 65537};                                          \
        for (int l = 0; l < 3; l++) run_##SFX(&longs[l], 1, K, remap, zr, l, "long row");  \
        for (int rep = 0; rep < 40; rep++) {    /* 16 rows back to back, as per_row */     \
            ptrdiff_t lens[16];                                                            \
            for (int i = 0; i < 16; i++) lens[i] = (ptrdiff_t)(rnd() % 71);                \
            run_##SFX(lens, 16, K, remap, zr, rep & 3, "16 rows");                         \
        }                                                                                  \
        free(remap);                                                                       \
    }                                                                                      \
}
DEF_CASE(float, int32_t, uint32_t, f32_i32, wsk_compact_csr_f32_i32)
DEF_CASE(double, int32_t, uint64_t, f64_i32, wsk_compact_csr_f64_i32)
DEF_CASE(float, int64_t, uint32_t, f32_i64, wsk_compact_csr_f32_i64)
DEF_CASE(double, int64_t, uint64_t, f64_i64, wsk_compact_csr_f64_i64)

int main(void)
{
    const int avail = wsk_simd_available();
    int n = 0;
    for (int p = 1; p <= 4; p <<= 1) {
        if (!(avail & p)) continue;
        path = wsk_simd_init(p);
        long f0 = failures;
        check_f32_i32();
        check_f64_i32();
        check_f32_i64();
        check_f64_i64();
        printf("%s %s\n", path, failures == f0 ? "ok" : "FAILED");
        n++;
    }
    printf("paths %d checks %ld failures %ld\n", n, checks, failures);
    return failures != 0 || n == 0;
}
