"""The per-step shortcuts of the training cost agree with the direct counts they replace:
a compressed block's work from per-(row block, column) counts, the useful weight-gradient
pairs from per-sample counts less W's zeros, activations per PE column by a cumulative sum,
and an SDDMM's cost from cached blocks."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern.kernels import sddmm
from wsekern.wafer import analytic, figures, training
from wsekern.wafer.placement import Operands, WeightStats


def _w(rng, M, K, density):
    dense = rng.standard_normal((M, K)) * (rng.random((M, K)) < density)
    return sps.csr_array(dense.astype(np.float32))


@pytest.mark.parametrize("density", [1.0, 0.95, 0.3])
@pytest.mark.parametrize("R,C", [(1, 1), (3, 5), (7, 2), (12, 9)])
def test_scalar_work_matches_the_per_nonzero_sum(density, R, C):
    rng = np.random.default_rng(R * 31 + C)
    W = _w(rng, 13, 11, density)
    stats = WeightStats(W)
    A_k = rng.integers(0, 40, 11)
    _, rb = stats.row_block(R)
    _, cb = stats.col_block(C)
    want = np.bincount(rb[stats.w_row] * C + cb[stats.w_col], weights=A_k[stats.w_col],
                       minlength=R * C).reshape(R, C)
    np.testing.assert_array_equal(stats.scalar_work(R, C, A_k), want)
    stats.full = False          # the per-(row block, column) path as well
    np.testing.assert_array_equal(stats.scalar_work(R, C, A_k), want)


@pytest.mark.parametrize("density", [1.0, 0.9, 0.6, 0.2])
def test_sddmm_useful_from_counts_matches_the_kernel(density):
    rng = np.random.default_rng(3)
    W = _w(rng, 20, 17, density)
    G = rng.standard_normal((20, 9)) * (rng.random((20, 9)) < 0.5)
    X = rng.standard_normal((17, 9)) * (rng.random((17, 9)) < 0.4)
    want = int(sddmm((G != 0).astype(np.float32), (X != 0).astype(np.float32), W).sum())
    assert training.sddmm_useful(G, X, W, WeightStats(W)) == want
    assert training.sddmm_useful(G, X, W) == want


@pytest.mark.parametrize("C", [1, 4, 17, 30])
def test_activations_per_column_match_the_nonzero_count(C):
    rng = np.random.default_rng(C)
    X = rng.standard_normal((17, 6)) * (rng.random((17, 6)) < 0.5)
    ops = Operands(_w(rng, 5, 17, 0.5), X)
    _, cb = ops.col_block(C)
    want = np.bincount(cb[ops.nz_k] * 6 + ops.nz_n, minlength=C * 6).reshape(C, 6)
    np.testing.assert_array_equal(ops.activations(C), want)


def test_sddmm_cost_is_the_same_from_cached_blocks():
    rng = np.random.default_rng(5)
    W = _w(rng, 24, 30, 0.4)
    G, X = rng.standard_normal((24, 8)), rng.standard_normal((30, 8))
    cfg = wk.WaferConfig.small(8, 8)
    stats = WeightStats(W)
    for region in [(0, 0, 3, 4), (0, 2, 5, 6), (0, 0, 3, 4)]:
        a = analytic.sddmm_cost(G, X, W, cfg, region, 17, full=False).to_dict()
        b = analytic.sddmm_cost(G, X, W, cfg, region, 17, full=False, weights=stats).to_dict()
        assert a == b


def _relu_like(rng, rows, n, zeros):
    """Activations with ``zeros`` of them zero, some whole rows and samples zero too."""
    x = rng.standard_normal((rows, n)) * (rng.random((rows, n)) >= zeros)
    x[rng.random(rows) < 0.1] = 0.0
    if n > 1:
        x[:, rng.integers(0, n)] = 0.0
    return x


@pytest.mark.parametrize("cfg", [wk.WaferConfig.wse2(), wk.WaferConfig.small(16, 16),
                                 wk.WaferConfig.small(16, 16, dtype="fp32")],
                         ids=["wse2", "small", "small-fp32"])
@pytest.mark.parametrize("M,K,region", [(40, 30, (0, 0, 5, 7)), (10, 64, (0, 3, 5, 12)),
                                        (12, 8, (0, 0, 4, 11)), (33, 17, (0, 0, 1, 1))])
def test_dense_step_equals_the_full_step_cost(cfg, M, K, region):
    """The shortcut for a fully nonzero W gives the very floats step_cost gives, for
    batches of any sparsity and size (whole zero rows and samples included), with and
    without the input gradient, C- and F-ordered, and with more PE columns than W has
    columns (12 x 8 on 11 columns: empty blocks)."""
    rng = np.random.default_rng(M * K)
    W = sps.csr_array(rng.standard_normal((M, K)).astype(np.float32) + 5.0)
    stats, stats_t = WeightStats(W), WeightStats(W.T)
    assert analytic.dense_screen(stats, cfg, region) is not None
    for n, zeros in [(16, 0.5), (7, 0.9), (1, 0.0), (32, 1.0), (5, 0.2)]:
        X, G = _relu_like(rng, K, n, zeros), _relu_like(rng, M, n, 0.3)
        for needs, order in ((True, "C"), (False, "F")):     # F: a layer's transposed batch
            x_nz, g_nz = np.asarray(X != 0, order=order), np.asarray(G != 0, order=order)
            args = (cfg, "layer-pipelined", region, W, stats, stats_t, x_nz, g_nz, needs)
            parts, _, latency = training.step_cost(*args)
            plan = training.dense_step_plan(*args[:6], n, needs)
            assert training.dense_step(plan, x_nz, g_nz) == (parts, latency)


def test_dense_step_declines_what_it_does_not_cover():
    """A W with a zero, weight streaming and a block the placer could store compressed
    (a cheap scalar walk) all go to step_cost; a step of another batch size is refused."""
    cfg = wk.WaferConfig.small(16, 16)
    dense = sps.csr_array(np.ones((20, 12), np.float32))
    holed = np.ones((20, 12), np.float32)
    holed[3, 4] = 0.0
    holed = sps.csr_array(holed)
    region = (0, 0, 4, 4)

    def step(W, mode="layer-pipelined"):
        return training.dense_step_plan(cfg, mode, region, W, WeightStats(W),
                                        WeightStats(W.T), 4, True)
    assert step(dense) is not None
    with pytest.raises(ValueError, match="steps of 4 samples; received x_nz with 5"):
        training.dense_step(step(dense), np.ones((12, 5), bool), np.ones((20, 5), bool))
    with pytest.raises(ValueError, match="steps of 4 samples; received g_nz with 5"):
        training.dense_step(step(dense), np.ones((12, 4), bool), np.ones((20, 5), bool))
    with pytest.raises(ValueError, match="x_nz must be a 2-D bool array"):   # not read as bytes
        training.dense_step(step(dense), np.ones((12, 4)), np.ones((20, 4), bool))
    assert step(holed) is None
    assert step(dense, "weight-streaming") is None
    cheap = wk.WaferConfig.small(16, 16, scalar_cycles_per_element=1.0, setup_cycles=40.0)
    assert analytic.dense_screen(WeightStats(dense), cheap, region) is None


def test_dense_stream_refuses_bounds_outside_x():
    from wsekern._screen import dense_stream
    x = np.ones((4, 3), np.uint8)
    for k_b in ([0, 2, 5], [0, 3, 2], [-1, 4]):
        with pytest.raises(ValueError, match="k_b must be"):
            dense_stream(x, np.array(k_b, dtype=np.int_), 1.0, 1.0, 1, 1.0, 0.0)
    work, first, last, a_max, v_max = dense_stream(x, np.array([0, 1, 4], dtype=np.int_),
                                                   2.0, 1.0, 1, 1.0, 0.0)
    np.testing.assert_array_equal(work, [[3.0, 7.0]] * 3)        # a = 1 and 3 per sample
    np.testing.assert_array_equal(last, [[1.0, 3.0], [3.0, 7.0], [5.0, 11.0]])
    assert (a_max, v_max) == (9, 12)


def _fields(report):
    """A SimReport's fields, arrays as lists (comparable with ==)."""
    import dataclasses
    out = {}
    for f in dataclasses.fields(report):
        v = getattr(report, f.name)
        out[f.name] = v.tolist() if isinstance(v, np.ndarray) else \
            {k: (x.tolist() if isinstance(x, np.ndarray) else x) for k, x in v.items()} \
            if isinstance(v, dict) else v
    return out


@pytest.mark.parametrize("config,mode,density,region", [
    (c, "layer-pipelined", d, r) for c in ("wse2", "small")
    for d, r in ((0.1, (0, 0, 6, 5)), (0.6, (0, 2, 3, 9)), (0.02, (0, 0, 1, 1)))] + [
    # (weight streaming on the whole of wse2 is minutes of exact model per step)
    ("small", "weight-streaming", 0.3, None), ("small", "weight-streaming", 1.0, None)])
def test_every_step_plan_gives_the_full_step_cost(config, mode, density, region):
    """A planned step (a W with zeros placed per step, or weight streaming's fixed parts)
    gives the very floats step_cost gives, and the SRAM peak of its reports, for batches
    of any sparsity (whole zero samples, an all-zero batch), with and without the input
    gradient; weight streaming's plan costed on zeros equals one given a step's parts."""
    cfg = wk.WaferConfig.wse2() if config == "wse2" else wk.WaferConfig.small(16, 16)
    rng = np.random.default_rng(int(density * 100))
    M, K = 40, 30
    W = _w(rng, M, K, density)
    region = region or (0, 0, cfg.rows, cfg.cols)
    stats, stats_t = WeightStats(W), WeightStats(W.T)
    for needs in (True, False):
        plan = training.step_plan(cfg, mode, region, W, stats, stats_t, 12, needs)
        assert plan["kind"] == ("sparse" if mode == "layer-pipelined" else "fixed")
        for zeros_x, zeros_g in [(0.5, 0.3), (0.9, 0.0), (1.0, 1.0), (0.0, 0.5)]:
            x_nz = _relu_like(rng, K, 12, zeros_x) != 0
            g_nz = _relu_like(rng, M, 12, zeros_g) != 0
            parts, reports, latency = training.step_cost(cfg, mode, region, W, stats,
                                                         stats_t, x_nz, g_nz, needs)
            sram = max(r.sram_peak_bytes for r in reports.values())
            got_parts, got_latency, got_sram = training.planned_step(plan, x_nz, g_nz)
            assert (got_parts, got_latency) == (parts, latency)
            assert got_sram == (sram if mode == "layer-pipelined" else None)
            if mode == "weight-streaming":
                assert plan["sram"] == sram         # costed without the reports
                given = training.step_plan(cfg, mode, region, W, stats, stats_t, 12, needs,
                                           costed=(parts, latency, reports))
                assert training.planned_step(given, x_nz, g_nz)[:2] == (parts, latency)
                # the reports too, field by field (the useful MACs from this step's nonzeros)
                for p in (plan, given):
                    got = training.planned_reports(p, x_nz, g_nz)
                    assert sorted(got) == sorted(reports)
                    for k, r in reports.items():
                        assert _fields(got[k]) == _fields(r), k
            else:
                assert training.planned_reports(plan, x_nz, g_nz) is None
        with pytest.raises(ValueError, match="steps of 12 samples; received x_nz"):
            training.planned_step(plan, np.ones((K, 5), bool), np.ones((M, 12), bool))
    assert training.step_plan(cfg, mode, region, W, stats, stats_t, 0, True) is None


def test_weight_stationary_cycles_equal_the_placed_report():
    """The step's cycles without a placement or a report: the same cycles, lower bound and
    SRAM peak as weight_stationary(exact=False), over regions where the blocks take both
    formats (the batch decides some), one format only, and more PE columns than W has
    columns; a block that fits in neither format raises the placement's error."""
    rng = np.random.default_rng(11)
    formats = set()
    for cfg in (wk.WaferConfig.wse2(), wk.WaferConfig.small(16, 16)):
        for density, (M, K), region in [(0.1, (64, 48), (0, 0, 8, 6)),
                                        (0.3, (40, 30), (0, 2, 5, 9)),
                                        (0.05, (90, 70), (0, 0, 3, 4)),
                                        (0.5, (12, 8), (0, 0, 4, 11)),
                                        (1.0, (20, 10), (0, 0, 2, 3)),
                                        (0.01, (400, 300), (0, 0, 2, 2))]:
            W = _w(rng, M, K, density)
            stats = WeightStats(W)
            for zeros in (0.0, 0.5, 0.95, 1.0):
                x_nz = _relu_like(rng, K, 9, zeros) != 0
                r = analytic.weight_stationary(W, x_nz, cfg, region, exact=False, full=False,
                                               ops=Operands(W, x_nz, stats))
                formats.add(int(r.details["compressed_blocks"] > 0)
                            + int(r.details["compressed_blocks"] < region[2] * region[3]) * 2)
                got = analytic.weight_stationary_cycles(stats, x_nz, cfg, region)
                assert got == (r.cycles, r.cycles_lower, r.sram_peak_bytes)
    assert formats >= {1, 2, 3}          # compressed only, dense only, and both
    tiny = wk.WaferConfig.small(4, 4)
    W = _w(rng, 4000, 3000, 0.9)
    with pytest.raises(wk.SramOverflowError, match="weight-stationary"):
        analytic.weight_stationary_cycles(WeightStats(W), np.ones((3000, 2), bool), tiny,
                                          (0, 0, 1, 1))


@pytest.mark.parametrize("density", [1.0, 0.3, 0.0])
def test_activation_stationary_cycles_equal_the_report(density):
    """Weight streaming's step cycles without the report's per-PE maps: the same cycles,
    lower bound and SRAM peak as activation_stationary's report, on regions of one PE
    row or column, more PEs than blocks, and batches of one sample to many; and the same
    refusal where X does not fit."""
    cfg = wk.WaferConfig.small(16, 16)
    rng = np.random.default_rng(int(density * 10))
    W = _w(rng, 40, 30, density)
    stats = WeightStats(W)
    for region in [(0, 0, 1, 1), (0, 0, 1, 9), (0, 0, 7, 1), (2, 3, 5, 6), (0, 0, 16, 16)]:
        for N in (1, 12, 50):
            X = rng.standard_normal((30, N)) * (rng.random((30, N)) < 0.5)
            rep = analytic.activation_stationary(W, X, cfg, region, full=False,
                                                 ops=Operands(W, X, stats))
            got = analytic.activation_stationary_cycles(stats, N, cfg, region)
            assert got == (rep.cycles, rep.cycles_lower, rep.sram_peak_bytes), (region, N)
            assert isinstance(got[2], int)
    big = np.ones((30, 200_000))
    with pytest.raises(wk.SramOverflowError) as want:
        analytic.activation_stationary(W, big, cfg, (0, 0, 1, 1), full=False)
    with pytest.raises(wk.SramOverflowError) as got:
        analytic.activation_stationary_cycles(stats, 200_000, cfg, (0, 0, 1, 1))
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("needs", [True, False])
def test_weight_streaming_step_reports_are_the_products(needs):
    """step_cost's weight-streaming reports, field by field, those of activation_stationary
    on the step's own products: W over X (forward and weight gradient alike), W.T over G."""
    cfg = wk.WaferConfig.small(16, 16)
    rng = np.random.default_rng(7)
    W = _w(rng, 40, 30, 0.3)
    x_nz = _relu_like(rng, 30, 12, 0.5) != 0
    g_nz = _relu_like(rng, 40, 12, 0.2) != 0
    region = (0, 0, 16, 16)
    _, reports, _ = training.step_cost(cfg, "weight-streaming", region, W, WeightStats(W),
                                       WeightStats(W.T), x_nz, g_nz, needs)
    fwd = analytic.activation_stationary(W, x_nz, cfg, region, full=False)
    want = {"forward": fwd, "weight-gradient": fwd}
    if needs:
        want["input-gradient"] = analytic.activation_stationary(sps.csr_array(W.T), g_nz, cfg,
                                                                region, full=False)
    assert sorted(reports) == sorted(want)
    for k, r in want.items():
        assert _fields(reports[k]) == _fields(r), k
    assert reports["weight-gradient"].details is not reports["forward"].details


@pytest.mark.parametrize("limit", [analytic.PER_PE_LIMIT, 1])     # 1: every chain is one
def test_activation_stationary_timings_kept_per_batch_are_the_fresh_ones(monkeypatch, limit):
    """Weight streaming's timings kept on W's stats (per config, region, N; the one-chain
    model per pace of the slowest column) equal those of fresh stats, whatever order of
    batch sizes asked for them, reports included."""
    monkeypatch.setattr(analytic, "PER_PE_LIMIT", limit)
    cfg = wk.WaferConfig.small(12, 9)
    rng = np.random.default_rng(11)
    W = _w(rng, 40, 30, 0.4)
    region = (0, 0, 12, 9)
    kept = WeightStats(W)
    for N in [16, 10, 9, 16, 3, 27, 10, 12, 5, 16]:      # shared paces, and evictions
        got = analytic.activation_stationary_cycles(kept, N, cfg, region)
        assert got == analytic.activation_stationary_cycles(WeightStats(W), N, cfg, region)
        X = np.ones((30, N), np.float32)
        a = analytic.activation_stationary(None, X, cfg, region, full=False,
                                           ops=Operands(None, X, kept))
        b = analytic.activation_stationary(W, X, cfg, region, full=False)
        assert (a.cycles, a.cycles_lower, a.cycles_upper, a.energy_joules, a.wavelet_hops,
                a.sram_peak_bytes, a.details) == (b.cycles, b.cycles_lower, b.cycles_upper,
                                                  b.energy_joules, b.wavelet_hops,
                                                  b.sram_peak_bytes, b.details)
        assert got == (a.cycles, a.cycles_lower, a.sram_peak_bytes)
        # the energy's wavelet-hops are the link map's sum
        performed = a.macs_performed
        assert a.energy_joules == figures.energy(
            cfg, performed, performed * 3 * cfg.elem_bytes + a.details["external_bytes"],
            float(a.link_wavelets.sum()), 12 * 9, a.cycles)
