/* wafer17 (s17): wsk_step_blocks_avx512 (src/_step_cost.pyx's C block, pasted in front of
 * this file by tests/test_wafer_s17.py) with sw NULL, as _column_blocks allows: the lanes
 * must read no scalar work (every block's compressed time is A_task) and form no sw + r.
 * Built with -fsanitize=address,undefined (pointer-overflow on a NULL base is reported);
 * checked against the same figures worked out here in r order. Prints "ok" or "SKIP". */
#include <stdio.h>

int main(void)
{
    if (!wsk_step_avx512_runs()) { puts("SKIP no AVX-512"); return 0; }
    double t_dense[19];
    int8_t choice[19];
    int64_t dense[19], comp[19];
    for (int r = 0; r < 19; r++) {
        t_dense[r] = 1.0 + r % 5;       /* dense time per activation */
        choice[r] = (int8_t)(r % 3);    /* 0 dense, 1 compressed, 2 the faster */
        dense[r] = 100 + r;
        comp[r] = 50 + 3 * r;
    }
    const double A = 4.0, task = 3.0, A_task = A * task, scalar = 20.0;
    for (Py_ssize_t R = 1; R <= 19; R++) {
        wsk_step_fig f = wsk_step_blocks_avx512(R, 0, t_dense, choice, NULL, A, A_task, scalar,
                                                dense, comp, 1, 1);
        double cmax = 0.0, tm = -INFINITY;
        int64_t sram = 0;
        int any = 0;
        for (Py_ssize_t r = 0; r < R; r++) {
            int uc = choice[r] == 1 || (choice[r] == 2 && A_task < A * t_dense[r]);
            any |= uc;
            if (uc) { if (A_task > cmax) cmax = A_task; }
            else if (t_dense[r] > tm) tm = t_dense[r];
            int64_t s = uc ? comp[r] : dense[r];
            if (s > sram) sram = s;
        }
        if (!f.ok || f.cmax != cmax || f.tm != tm || f.sram != sram || f.comp != any) {
            printf("R=%ld: got ok %d cmax %g tm %g sram %ld comp %d; want %g %g %ld %d\n",
                   (long)R, f.ok, f.cmax, f.tm, (long)f.sram, f.comp, cmax, tm, (long)sram, any);
            return 1;
        }
    }
    puts("ok");
    return 0;
}
