/* review_n (s17): the live-map compaction of src/wsk_simd.h (wsk_compact_csr_{f32,f64}_i32_
 * livemap) with every input and output array ending exactly at a PROT_NONE page (and, in a
 * second pass, starting right after one): a read or write outside the row faults (masked
 * AVX-512 lanes do not), on hostile columns (any int32: negative, K, 4096, 4097, 8192 (which
 * aliases word 0 in the registers), INT32_MIN/MAX) and valid ones, rows 0..40 and 1000 long;
 * against a scalar reference: -1 exactly when a column lies outside [0, K - 1] (the check on),
 * else the kept entries and remapped columns of the remap's scalar loads.
 *
 *   gcc -O1 -g -fsanitize=undefined -fno-sanitize-recover=all -Wno-psabi -I src \
 *       tests/c/livemap_guard.c -o livemap_guard -lm && ./livemap_guard
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "wsk_simd.h"

static unsigned long long rs = 88172645463325252ULL;
static unsigned long long rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static long failures = 0, checks = 0;
static size_t PG;

/* bytes at the end (at_end) or the start of a region fenced by PROT_NONE pages */
static void* fenced(size_t bytes, int at_end, void** base, size_t* len) {
    size_t body = (bytes + PG - 1) / PG * PG + PG;
    *len = body + 2 * PG;
    char* b = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) { perror("mmap"); exit(2); }
    mprotect(b, PG, PROT_NONE);
    mprotect(b + PG + body, PG, PROT_NONE);
    *base = b;
    return at_end ? b + PG + body - bytes : b + PG;
}

int main(void) {
    PG = (size_t)sysconf(_SC_PAGESIZE);
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq"))) {
        printf("skip: no AVX-512 VPOPCNTDQ\n");
        return 0;
    }
    wsk_simd_init(4);
    if (wsk_compact_csr_f32_i32_lm == NULL) { printf("FAIL: not selected\n"); return 1; }
    static const int32_t Ks[] = {1, 31, 32, 33, 1000, 4095, 4096};
    static const int32_t hostile[] = {-1, -2, INT32_MIN, INT32_MAX, 4096, 4097, 8192, 8193,
                                      1 << 20, -4096};
    int lens[43];
    for (int i = 0; i <= 40; i++) lens[i] = i;
    lens[41] = 1000; lens[42] = 17;
    for (int ki = 0; ki < 7; ki++) {
        const int32_t K = Ks[ki];
        int32_t* remap = malloc(sizeof(int32_t) * K);
        int32_t live = 0;
        for (int32_t k = 0; k < K; k++) remap[k] = (rnd() & 1) ? live++ : -1;
        const int32_t zero_row = live + 1 + (int32_t)(rnd() % 3);   /* any row past the live */
        for (int32_t k = 0; k < K; k++) if (remap[k] < 0) remap[k] = zero_row;
        uint32_t tab[256];
        if (!wsk_livemap_build(remap, K, zero_row, tab)) { printf("FAIL build K=%d\n", K); return 1; }
        for (int at_end = 0; at_end < 2; at_end++)
        for (int li = 0; li < 43; li++)
        for (int mode = 0; mode < 4; mode++)   /* 0 valid, 1 one hostile, 2 all hostile, 3 K */
        for (int f64 = 0; f64 < 2; f64++) {
            const int n = lens[li];
            const size_t vb = (size_t)n * (f64 ? 8 : 4);
            void *b1, *b2, *b3, *b4; size_t l1, l2, l3, l4;
            char* vals = fenced(vb, at_end, &b1, &l1);
            int32_t* cols = fenced((size_t)n * 4, at_end, &b2, &l2);
            char* vout = fenced(vb, at_end, &b3, &l3);
            int32_t* iout = fenced((size_t)n * 4, at_end, &b4, &l4);
            int want_bad = 0;
            for (int p = 0; p < n; p++) {
                cols[p] = (int32_t)(rnd() % (uint64_t)K);
                if (mode == 2 || (mode == 1 && p == (int)(rnd() % (uint64_t)n)))
                    cols[p] = hostile[rnd() % 10];
                if (mode == 3 && p == n - 1) cols[p] = K;
                want_bad |= cols[p] < 0 || cols[p] >= K;
                double v = (rnd() % 7 == 0) ? NAN : (double)(int)(rnd() % 5) - 2.0;
                if (f64) ((double*)vals)[p] = v; else ((float*)vals)[p] = (float)v;
            }
            ptrdiff_t q = f64
                ? wsk_compact_csr_f64_i32_lm((double*)vals, cols, n, tab, zero_row,
                                             (uint32_t)(K - 1), (double*)vout, iout)
                : wsk_compact_csr_f32_i32_lm((float*)vals, cols, n, tab, zero_row,
                                             (uint32_t)(K - 1), (float*)vout, iout);
            checks++;
            if (want_bad) {
                if (q != -1) { failures++; printf("FAIL K=%d n=%d mode=%d: %td, not -1\n", K, n, mode, q); }
            } else {
                ptrdiff_t r = 0; int ok = 1;
                for (int p = 0; p < n; p++) {
                    double v = f64 ? ((double*)vals)[p] : ((float*)vals)[p];
                    int32_t c = remap[cols[p]];
                    if (c < zero_row || !isfinite(v)) {
                        double o = f64 ? ((double*)vout)[r] : ((float*)vout)[r];
                        ok &= r < q && iout[r] == c && (o == v || (isnan(o) && isnan(v)));
                        r++;
                    }
                }
                if (!ok || r != q) { failures++; printf("FAIL K=%d n=%d f64=%d: %td kept, want %td\n", K, n, f64, q, r); }
            }
            munmap(b1, l1); munmap(b2, l2); munmap(b3, l3); munmap(b4, l4);
        }
        free(remap);
    }
    printf("%s %ld checks %ld failures\n", failures ? "FAIL" : "ok", checks, failures);
    return failures != 0;
}
