"""s19 (lead): the training step's costing on slow links. wafer19 gave the report's
partial-sum chain the link's ``dt`` and a lower-bound term for the busiest ramp; the step
(weight_stationary_cycles, what WaferStrategy charges a sparse layer) kept neither: at link
rate 0.01 it gave 2,643-9,940 cycles where the report gives 3,340-13,902."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern.wafer import analytic
from wsekern.wafer.placement import WeightStats

CASES = [(0.1, (64, 48), (0, 0, 8, 6)), (0.3, (40, 30), (0, 2, 5, 9)),
         (0.05, (90, 70), (0, 0, 3, 4)), (0.5, (12, 8), (0, 0, 4, 11)),
         (0.2, (128, 128), (0, 0, 8, 8)), (0.3, (50, 40), (0, 0, 1, 6))]


@pytest.mark.parametrize("rate", [1.0, 0.5, 0.1, 0.01, 0.001])
@pytest.mark.parametrize("base", ["wse2", "small"])
def test_the_step_costs_a_slow_link_as_the_report_does(rate, base):
    rng = np.random.default_rng(int(rate * 1000) + len(base))
    cfg = (wk.WaferConfig.wse2() if base == "wse2" else wk.WaferConfig.small(16, 16)).with_(
        link_wavelets_per_cycle=rate)
    for density, (M, K), region in CASES:
        W = sps.random(M, K, density, format="csr", random_state=rng, dtype=np.float32)
        for zeros in (0.0, 0.5):
            x_nz = rng.random((K, 7)) >= zeros
            r = analytic.weight_stationary(W, x_nz, cfg, region, exact=False, full=False)
            want = (r.cycles, r.cycles_lower, r.sram_peak_bytes)
            assert analytic.weight_stationary_cycles(WeightStats(W), x_nz, cfg, region) == want
            step = analytic.weight_stationary_step(WeightStats(W), cfg, region)
            assert step(x_nz) == want


# _spmm's column-block buffer lock (_block_lock) held by another thread at fork: a child's
# first column-blocked product waited for it for ever (review_n3 found it beside the same
# hang of _live_lock, which it fixed).
_FORK_BLOCK = """
import multiprocessing as mp, numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels
rng = np.random.default_rng(0)
X = rng.standard_normal((4096, 256)).astype(np.float32)
W = sps.random(256, 4096, density=0.1, format="csr", dtype=np.float32, random_state=rng)
assert 0 < kernels.column_block(4096, 256, 4, reuse=W.nnz / 4096) < 256   # blocks taken
ref = (W.astype(np.float64) @ X.astype(np.float64)).sum()
def child(q):
    q.put(float(kernels.spmm(W, X, n_threads=1).astype(np.float64).sum()))
ctx = mp.get_context("fork")
q = ctx.Queue()
_spmm._block_lock.acquire()
p = ctx.Process(target=child, args=(q,))
p.start()
_spmm._block_lock.release()
p.join(60)
if p.is_alive():
    p.kill(); p.join(); print("hung")
else:
    print("exit", p.exitcode, bool(np.isclose(q.get(timeout=5), ref, rtol=1e-4)))
"""


def test_a_fork_while_the_column_block_lock_is_held_does_not_hang_the_child():
    from conftest import run_in_child
    proc = run_in_child(_FORK_BLOCK, timeout=180)
    assert proc.returncode == 0 and proc.stdout.split() == ["exit", "0", "True"], (
        proc.stdout[-2000:] + proc.stderr[-2000:])
