"""The event engine's memory estimate (wsekern/wafer/estimate.py) against what a run
really adds, measured in a child process: the peak resident memory (VmHWM) over the memory
resident just before the run (VmRSS). Not ru_maxrss: building the operands may have raised
it above what stays resident, and Linux carries the parent's peak over the exec into it
(run after other test files, a child's ru_maxrss started at the pytest process's 290-470 MB)."""
import numpy as np
from conftest import run_in_child

from wsekern.wafer import WaferConfig, event
from wsekern.wafer import estimate as est_mod

MEASURE = """
    import gc
    import numpy as np
    import scipy.sparse as sps
    from wsekern.workloads import random_weight
    from wsekern.wafer import WaferConfig, event
    from wsekern.wafer.estimate import event_cost
    W = sps.csr_array(random_weight({n}, {n}, {sparsity}, dtype=np.float64, seed=0))
    X = np.random.default_rng(1).standard_normal(({n}, {samples}))
    cfg = WaferConfig.wse2()
    region = (0, 0, {grid}, {grid})
    est = event_cost(W, X, cfg, region, "{mapping}")
    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
    gc.collect()
    before = status("VmRSS:")
    run = event.weight_stationary if "{mapping}" == "weight-stationary" else \\
        event.activation_stationary
    run(W, X, cfg, region)
    print(est.bytes, status("VmHWM:") - before)
"""


def measured(**case):
    proc = run_in_child(MEASURE.format(**case), limit_gb=3, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (int(v) for v in proc.stdout.split())


def test_the_estimate_covers_a_run_of_many_weights():
    """5.4 M nonzeros of W on 32 x 32 PEs: the nonzeros' copies (CSC, the placement's
    int64 rows, columns and blocks, the engine's block lists) dominate. Measured 311 MB
    against an estimate of 222 MB when a nonzero was counted 24 B; now 477 MB."""
    estimate, grown = measured(n=16384, sparsity=0.98, samples=1, grid=32,
                               mapping="weight-stationary")
    assert grown <= estimate, (estimate, grown)


def test_the_estimate_covers_a_run_of_many_pes():
    """256 x 256 PEs and few weights: the per-PE records, queues and calendar dominate. The
    whole-wafer maps alone (about 80 MB, whatever the region) cover much of such a run even
    with no per-PE term, so compare two regions too, where the constant terms cancel: from
    32 x 32 to 256 x 256 PEs (same W and X) the estimate must grow at least as much as the
    run does, and not twice as much (max_memory would then refuse runs too early).
    Measured (s16, Zen 4, 3 runs): the run grew 156.0-157.0 MB, the estimate 199.2 MB; with
    PE_BYTES = 0 it would grow 133 MB, with 4096 397 MB. (At 128 x 128 the run's growth
    varied 40-48 MB from run to run, too close to the estimate's 47.6 MB.)"""
    case = dict(n=256, sparsity=0.5, samples=8, mapping="weight-stationary")
    est_small, grown_small = measured(grid=32, **case)
    est_big, grown_big = measured(grid=256, **case)
    assert grown_big <= est_big, (est_big, grown_big)
    run_growth = grown_big - grown_small
    est_growth = est_big - est_small
    assert run_growth > 0, (grown_small, grown_big)
    assert run_growth <= est_growth <= 2 * run_growth, (run_growth, est_growth)


def test_the_calendar_stays_within_its_share_of_a_pe(monkeypatch):
    """PE_BYTES counts on the calendar's buckets holding about 114 B a PE at most (measured
    12-114 B from 64^2 to 512^2 PEs): a 64 x 64 run of 8 samples stays under a quarter of
    PE_BYTES a PE (before event512 reused the buffers, 2.2 KB a PE at 512^2)."""
    from wsekern import workloads
    engines = []
    real = event._run

    def spy(engine, progress=None):
        result = real(engine, progress)
        engines.append(engine)
        return result

    monkeypatch.setattr(event, "_run", spy)
    W = workloads.random_weight(128, 128, 0.5, dtype=np.float64, seed=0)
    X = workloads.pruned((128, 8), 0.5, 1, dtype=np.float64)
    Y, _ = event.weight_stationary(W, X, WaferConfig.wse2(), (0, 0, 64, 64))
    np.testing.assert_allclose(Y, W @ X, rtol=1e-12, atol=1e-12)
    buffers, nbytes = engines[0].calendar_buffers()
    assert buffers > 0
    assert nbytes <= est_mod.PE_BYTES // 4 * 64 * 64, nbytes
