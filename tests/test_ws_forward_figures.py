"""analytic.weight_stationary_figures (the forward figures a WaferStrategy's report reads of
a layer-pipelined step, without building the step's report) against the report itself:
weight_stationary(exact=False)'s macs_performed, macs_dense and bottleneck, equal, over
random weights, batches and regions (dense, compressed and mixed blocks, each bottleneck),
with the same refusals."""
import collections

import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern.wafer import analytic, training
from wsekern.wafer.placement import WeightStats

_SEEN = collections.Counter()


def _report_figures(W, x_nz, cfg, region, stats):
    rep = analytic.weight_stationary(W, x_nz, cfg, region, exact=False, full=False,
                                     ops=analytic.Operands(W, x_nz, stats))
    return rep.macs_performed, rep.macs_dense, rep.bottleneck


def _weights(rng, M, K, density):
    if density >= 1:
        W = sps.csr_array(rng.standard_normal((M, K)).astype(np.float32))
    else:
        W = sps.random(M, K, density=density, format="csr", random_state=rng,
                       dtype=np.float32)
    W.data[:] = rng.choice([-1.0, 0.5, 2.0], W.nnz)
    return W


CONFIGS = {"small": wk.WaferConfig.small(16, 16), "wse2": wk.WaferConfig.wse2(),
           "wse3": wk.WaferConfig.wse3(),
           "tight": wk.WaferConfig.small(16, 16, sram_bytes=6 * 1024, reserve_bytes=1024),
           "slow links": wk.WaferConfig.small(16, 16, link_wavelets_per_cycle=0.05)}


@pytest.mark.parametrize("cfg_name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", range(12))
def test_figures_equal_the_reports(cfg_name, seed):
    cfg = CONFIGS[cfg_name]
    rng = np.random.default_rng(seed)
    M, K = (int(v) for v in rng.integers(1, 160, 2))
    N = int(rng.choice([0, 1, 2, 7, 32, 65]))
    W = _weights(rng, M, K, float(rng.choice([0.02, 0.1, 0.4, 1.0])))
    stats = WeightStats(W)
    R = int(rng.integers(1, min(M, 12) + 1))
    C = int(rng.integers(1, min(K, 12) + 1))
    region = (0, 0, R, C)
    for x_density in (0.0, 0.05, 0.3, 0.9, 1.0):
        x_nz = rng.random((K, N)) < x_density
        if rng.random() < 0.3 and K > 2:
            x_nz[: K // 2] = False               # PE columns no activation reaches
        try:
            want = _report_figures(W, x_nz, cfg, region, stats)
        except wk.SramOverflowError as e:
            with pytest.raises(wk.SramOverflowError, match=str(e).split(":")[0]):
                analytic.weight_stationary_figures(stats, x_nz, cfg, region)
            _SEEN["overflow"] += 1
            continue
        got = analytic.weight_stationary_figures(stats, x_nz, cfg, region)
        assert got == want and type(got[0]) is int and type(got[1]) is int
        # as a strategy's step hands it: a uint8 pattern, samples-major (a transposed view)
        x8 = np.ascontiguousarray(x_nz.T.view(np.uint8)).T
        assert analytic.weight_stationary_figures(stats, x8, cfg, region) == want
        assert training.step_forward_figures(None, cfg, "layer-pipelined", region, W,
                                             stats, None, x_nz, None, True) == want
        screen = analytic.dense_screen(stats, cfg, region)
        if screen is not None and N:
            assert analytic.dense_screen_figures(screen, x_nz, cfg, M) == want
            plan = training.step_plan(cfg, "layer-pipelined", region, W, stats,
                                      WeightStats(W.T), N, False)
            assert plan["kind"] == "dense"
            assert training.step_forward_figures(plan, cfg, "layer-pipelined", region, W,
                                                 stats, None, x_nz, None, False) == want
            _SEEN["dense " + want[2]] += 1
        _SEEN[want[2]] += 1


def test_every_bottleneck_was_compared():
    """The cases above reach each of the report's bottlenecks (run after them; alone, it
    runs them first)."""
    if not _SEEN:
        for name in CONFIGS:
            for seed in range(12):
                test_figures_equal_the_reports(name, seed)
    assert {"compute", "scalar", "fabric", "latency", "reduction", "none", "overhead",
            "overflow", "dense compute", "dense fabric", "dense latency"} <= set(_SEEN), _SEEN


def test_weight_streaming_is_left_to_its_plan():
    cfg = wk.WaferConfig.small(16, 16)
    W = _weights(np.random.default_rng(1), 20, 30, 0.2)
    assert training.step_forward_figures(None, cfg, "weight-streaming", (0, 0, 2, 2), W,
                                         WeightStats(W), None, np.ones((30, 4), bool),
                                         None, True) is None


@pytest.mark.parametrize("shape", [(29, 4), (30,), (30, 4, 1)])
def test_a_pattern_of_the_wrong_shape_is_refused(shape):
    cfg = wk.WaferConfig.small(16, 16)
    W = _weights(np.random.default_rng(2), 20, 30, 0.2)
    with pytest.raises(ValueError, match=r"x_nz must be X's nonzero pattern, 30 x samples; "
                                         rf"received shape \({shape[0]},"):
        analytic.weight_stationary_figures(WeightStats(W), np.ones(shape, bool), cfg,
                                           (0, 0, 2, 2))


def _native_args(seed=5):
    cfg = wk.WaferConfig.small(16, 16)
    W = _weights(np.random.default_rng(seed), 40, 30, 0.2)
    stats = WeightStats(W)
    region = (0, 0, 3, 4)
    x_nz = np.random.default_rng(seed).random((30, 6)) < 0.4
    analytic.weight_stationary_figures(stats, x_nz, cfg, region)
    st = analytic._step_structure(stats, cfg, region)
    choice, m_r = st["figures"]
    S = st["S"]
    return [x_nz.view(np.uint8), st["k_b"], S.indptr, S.indices, S.data, st["t_dense"], m_r,
            choice, st["task"], st["scalar"], st["task"], st["wpv"], True]


def test_the_native_pass_refuses_a_bad_structure_naming_it():
    from wsekern._step_cost import ws_step_figures
    args = _native_args()
    out = ws_step_figures(*args)
    assert type(out[0]) is int and out[1].shape == (6,) and out[2].dtype == np.int64
    bad = list(args)
    bad[6] = args[6][:-1]
    with pytest.raises(ValueError, match="m_r must hold the 3 row blocks' heights; "
                                         "received 2"):
        ws_step_figures(*bad)
    bad = list(args)
    bad[3] = args[3].copy()
    bad[3][0] = 12
    with pytest.raises(ValueError, match=r"s_indices\[0\] = 12 lies outside 0..11"):
        ws_step_figures(*bad)
    bad = list(args)
    bad[1] = args[1].copy()
    bad[1][-1] = 29
    with pytest.raises(ValueError, match="k_b must be 5 bounds from 0 to 30"):
        ws_step_figures(*bad)
    bad = list(args)
    bad[7] = args[7][:-1]
    with pytest.raises(ValueError, match="the block arrays must have 12 entries"):
        ws_step_figures(*bad)


def test_the_busiest_pe_is_the_first_at_the_maximum():
    """A batch where a compressed and a dense PE tie as the busiest: the report names the
    first in row-major order (np.argmax), here a dense one ("compute", not "scalar")."""
    rng = np.random.default_rng(2976)
    cfg = wk.WaferConfig.small(16, 16)
    M, K = (int(v) for v in rng.integers(1, 120, 2))
    N = int(rng.choice([1, 2, 4, 8]))
    d = float(rng.choice([0.05, 0.2, 0.5, 1.0]))
    W = sps.random(M, K, density=d, format="csr", random_state=rng, dtype=np.float32)
    W.data[:] = 1
    stats = WeightStats(W)
    R = int(rng.integers(1, min(M, 6) + 1))
    C = int(rng.integers(1, min(K, 6) + 1))
    x_nz = rng.random((K, N)) < float(rng.choice([0.1, 0.5, 1.0]))
    region = (0, 0, R, C)
    rep = analytic.weight_stationary(W, x_nz, cfg, region, exact=False, full=False,
                                     ops=analytic.Operands(W, x_nz, stats))
    busy = np.asarray(rep.busy_cycles)[:R, :C]
    use_comp = rep.details["use_comp"]
    at_max = busy == busy.max()
    assert use_comp[at_max].any() and not use_comp[at_max].all()     # the tie this tests
    assert rep.bottleneck == "compute"
    assert analytic.weight_stationary_figures(stats, x_nz, cfg, region) == \
        (rep.macs_performed, rep.macs_dense, rep.bottleneck)
