"""analytic.weight_stationary_step (weight_stationary_cycles with W's structure looked up
once, what a sparse training plan's steps call) against weight_stationary(exact=False)'s
report and against weight_stationary_cycles: the same floats over random weights, batches,
regions and configs, the same conversion of a pattern that is not bool, the same refusals,
and the same SramOverflowError where a block fits in neither format."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern.wafer import analytic, training
from wsekern.wafer.placement import WeightStats

CONFIGS = {"small": wk.WaferConfig.small(16, 16), "wse2": wk.WaferConfig.wse2(),
           "tight": wk.WaferConfig.small(16, 16, sram_bytes=6 * 1024, reserve_bytes=1024),
           "slow links": wk.WaferConfig.small(16, 16, link_wavelets_per_cycle=0.05)}


def _weights(rng, M, K, density):
    W = sps.random(M, K, density=density, format="csr", random_state=rng, dtype=np.float32)
    W.data[:] = rng.choice([-1.0, 0.5, 2.0], W.nnz)
    return W


def _report(W, x_nz, cfg, region, stats):
    rep = analytic.weight_stationary(W, x_nz, cfg, region, exact=False, full=False,
                                     ops=analytic.Operands(W, x_nz, stats))
    return rep.cycles, rep.cycles_lower, rep.sram_peak_bytes


@pytest.mark.parametrize("cfg_name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", range(8))
def test_the_step_gives_the_reports_figures(cfg_name, seed):
    cfg = CONFIGS[cfg_name]
    rng = np.random.default_rng(100 + seed)
    M, K = (int(v) for v in rng.integers(2, 140, 2))
    W = _weights(rng, M, K, float(rng.choice([0.03, 0.1, 0.4])))
    stats = WeightStats(W)
    region = (0, 0, int(rng.integers(1, min(M, 12) + 1)), int(rng.integers(1, min(K, 12) + 1)))
    step = analytic.weight_stationary_step(stats, cfg, region)
    for N in (0, 1, 5, 32):
        for density in (0.0, 0.1, 0.5, 1.0):
            x_nz = rng.random((K, N)) < density
            try:
                want = _report(W, x_nz, cfg, region, stats)
            except wk.SramOverflowError as e:
                with pytest.raises(wk.SramOverflowError, match=str(e).split(":")[0]):
                    step(x_nz)
                continue
            got = step(x_nz)
            assert got == want, (N, density)
            assert got == analytic.weight_stationary_cycles(stats, x_nz, cfg, region)
            assert type(got[0]) is float and type(got[1]) is float
            # not bool: read as X != 0, as weight_stationary_cycles reads it (floats taken
            # as bytes would be 4 x N "samples"); a transposed view, a list
            assert step(x_nz.astype(np.int8) * 2) == want
            assert step(x_nz.astype(np.float32) * 0.5) == want
            assert step(np.ascontiguousarray(x_nz.T).T) == want
            assert step(x_nz.tolist() if N else x_nz) == want


def test_a_block_that_fits_in_neither_format_raises_the_placements_error_each_step():
    cfg = wk.WaferConfig.small(16, 16, sram_bytes=6 * 1024, reserve_bytes=1024)
    W = sps.csr_array(np.ones((200, 150), np.float32))
    stats, region = WeightStats(W), (0, 0, 1, 1)
    x_nz = np.ones((150, 4), bool)
    with pytest.raises(wk.SramOverflowError) as want:
        _report(W, x_nz, cfg, region, stats)
    step = analytic.weight_stationary_step(stats, cfg, region)
    for _ in range(2):
        with pytest.raises(wk.SramOverflowError) as got:
            step(x_nz)
        assert str(got.value) == str(want.value)


def test_the_step_refuses_a_pattern_of_another_shape():
    rng = np.random.default_rng(7)
    stats = WeightStats(_weights(rng, 40, 30, 0.2))
    cfg = wk.WaferConfig.small(16, 16)
    step = analytic.weight_stationary_step(stats, cfg, (0, 0, 4, 5))
    for bad in (np.ones((29, 4), bool), np.ones((31, 4), bool), np.ones(30, bool),
                np.ones((30, 4, 1), bool)):
        with pytest.raises(ValueError, match=r"x_nz must be X's nonzero pattern, 30 x "
                                             r"samples; received shape"):
            step(bad)


def test_a_sparse_plan_steps_through_it_and_gives_step_costs_floats():
    """A sparse plan's planned_step (the product's steps bound once, kept on the plan)
    against step_cost, step after step with other patterns, forward and input gradient."""
    rng = np.random.default_rng(3)
    W = _weights(rng, 90, 70, 0.1)
    stats, stats_t = WeightStats(W), WeightStats(W.T)
    cfg, region, N = wk.WaferConfig.small(16, 16), (0, 0, 6, 7), 16
    plan = training.step_plan(cfg, "layer-pipelined", region, W, stats, stats_t, N, True)
    assert plan["kind"] == "sparse"
    for density in (0.05, 0.3, 0.8, 0.0):
        x_nz, g_nz = rng.random((70, N)) < density, rng.random((90, N)) < density
        parts, _, latency = training.step_cost(cfg, "layer-pipelined", region, W, stats,
                                               stats_t, x_nz, g_nz, True)
        got, got_latency, _ = training.planned_step(plan, x_nz, g_nz)
        assert got == parts and got_latency == latency
    assert len(plan["ws-steps"]) == 2 and plan["ws-steps"][1] is not None
