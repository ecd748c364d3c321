"""The placer's rectangle search against an exhaustive screen of every candidate.

The reference prices every (mapping, rows, columns) of the candidate grid
(``placement.geometric`` sizes) with the mapping's screen, takes each mapping's cheapest
and costs it exactly; the search must choose the same placement, or one with fewer
cycles. Seeded problems of several shapes, sparsities and machines, small grids
included, where the exhaustive screen is cheap enough to run here.
"""
import textwrap

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import assert_refused_in_child

from wsekern.errors import SramOverflowError
from wsekern.wafer import Wafer, WaferConfig, placement
from wsekern.wafer.mesh import MappingUnfit


def _captured(wafer, W, X, monkeypatch, **kw):
    """The search's report, and what it was given (cost, dims, mappings)."""
    seen = {}
    search = placement.search

    def spy(cost, dims, mappings, region, config, **kwargs):
        seen.update(cost=cost, dims=dims, mappings=mappings, config=config)
        return search(cost, dims, mappings, region, config, **kwargs)
    monkeypatch.setattr(placement, "search", spy)
    _, report = wafer.spmm(W, X, compute=False, **kw)
    monkeypatch.undo()
    return report, seen


def _exhaustive(seen):
    """The exhaustive screen: each mapping's cheapest candidate by the screen, costed
    exactly; the report with the fewest cycles."""
    cost, dims, config = seen["cost"], seen["dims"], seen["config"]
    chosen = None
    for m in seen["mappings"]:
        max_r, max_c = dims[m]
        best = (np.inf, None)
        for R in placement.geometric(min(config.rows, max_r)):
            for C in placement.geometric(min(config.cols, max_c)):
                try:
                    price = cost(m, (0, 0, R, C), exact=False, full=False).cycles
                except (SramOverflowError, MappingUnfit):
                    continue
                if price < best[0]:
                    best = (price, (R, C))
        if best[1] is None:
            continue
        report = cost(m, (0, 0) + best[1])
        if chosen is None or report.cycles < chosen.cycles:
            chosen = report
    return chosen


def _skewed(M, K, density, seed):
    """A weight whose rows carry very different nonzero counts (compressed and dense blocks
    side by side)."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0.02, 1.0, M)[:, None] * density * 2
    return sps.csr_array((rng.random((M, K)) < np.minimum(p, 1)) * rng.standard_normal((M, K)))


def _acts(K, N, zeros, seed):
    rng = np.random.default_rng(seed + 1)
    return (rng.standard_normal((K, N)) * (rng.random((K, N)) >= zeros)).astype(np.float32)


CASES = [
    # (config, M, K, N, weight sparsity, activation sparsity, skewed)
    (WaferConfig.small(8, 8), 64, 64, 8, 0.5, 0.5, False),
    (WaferConfig.small(16, 16), 300, 200, 16, 0.9, 0.5, False),
    (WaferConfig.small(24, 12), 500, 90, 32, 0.95, 0.0, True),
    (WaferConfig.small(20, 32), 257, 511, 1, 0.9, 0.3, False),      # N = 1: MeshGEMV too
    (WaferConfig.small(12, 40, dtype="fp32"), 160, 700, 24, 0.8, 0.7, True),
    (WaferConfig.wse2(), 24, 1000, 16, 0.9, 0.5, False),
    (WaferConfig.wse3(), 40, 300, 8, 0.99, 0.2, True),
]


def _problem(case):
    """(config, W as a CSR array, X) of CASES[case]."""
    config, M, K, N, zeros, act_zeros, skewed = CASES[case]
    W = _skewed(M, K, 1 - zeros, case) if skewed else sps.random(
        M, K, density=1 - zeros, random_state=case, format="csr", dtype=np.float32)
    return config, sps.csr_array(W), _acts(K, N, act_zeros, case)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_search_matches_exhaustive_screen(case, monkeypatch):
    config, M, K, N, zeros, act_zeros, skewed = CASES[case]
    W = _skewed(M, K, 1 - zeros, case) if skewed else sps.random(
        M, K, density=1 - zeros, random_state=case, format="csr", dtype=np.float32)
    X = _acts(K, N, act_zeros, case)
    got, seen = _captured(Wafer(config), W, X, monkeypatch)
    ref = _exhaustive(seen)
    assert got.cycles <= ref.cycles * (1 + 1e-12), (got.mapping, got.region, got.cycles,
                                                    ref.mapping, ref.region, ref.cycles)


def test_search_reports_progress_over_its_candidates(monkeypatch):
    """The hook follows every candidate (priced or pruned) up to their total."""
    config = WaferConfig.small(16, 16)
    W = sps.random(300, 200, density=0.1, random_state=0, format="csr", dtype=np.float32)
    X = _acts(200, 16, 0.5, 0)
    calls = []
    _, seen = _captured(Wafer(config), W, X, monkeypatch)
    report = placement.search(seen["cost"], seen["dims"], seen["mappings"], None, config,
                              progress=lambda done, total: calls.append((done, total)))
    total = sum(len(placement.geometric(min(config.rows, seen["dims"][m][0])))
                * len(placement.geometric(min(config.cols, seen["dims"][m][1])))
                for m in seen["mappings"])
    done = [d for d, _ in calls]
    assert calls and done == sorted(done) and done[-1] == total
    assert {t for _, t in calls} == {total}
    assert report.cycles == _exhaustive(seen).cycles


@pytest.mark.parametrize("case", [0, 2, 4])
def test_bounds_never_exceed_the_price(case):
    """The branch and bound is exact only if every bound is a true lower bound: of the
    screen's price, and (activation-stationary) of the exact model's cycles."""
    from wsekern.wafer import analytic
    config, W, X = _problem(case)
    (M, K), N = W.shape, X.shape[1]
    ops = placement.Operands(W, X, search=True)
    checked = 0
    for m, (rows, cols) in placement.candidates(
            {"weight-stationary": (M, K), "activation-stationary": (K, N)},
            ("weight-stationary", "activation-stationary"), config).items():
        model = getattr(analytic, m.replace("-", "_"))
        for R in rows[::2]:
            for C in cols[::2]:
                try:
                    price = model(W, X, config, (0, 0, R, C), ops=ops, exact=False,
                                  full=False).cycles
                    exact = model(W, X, config, (0, 0, R, C), ops=ops).cycles
                except SramOverflowError:
                    continue
                assert analytic.placer_bound(m, ops, config, R, C) <= price * (1 + 1e-12)
                floor = analytic.placer_bound(m, ops, config, R, C, exact=True)
                assert floor is None or floor <= exact * (1 + 1e-12), (m, R, C, floor, exact)
                checked += 1
    assert checked > 10


def test_grid_pipeline_refuses_arrays_of_other_shapes():
    """Its loop runs without bounds checks: every array is checked against work first."""
    from wsekern._pipeline import grid_pipeline
    G, P, N = 4, 3, 5
    work, zeros, L = np.ones((G, P, N)), np.zeros((G, P, N)), np.ones(G, dtype=np.int_)
    args = (1.0, 2.0, 0.0, 19.0, 4.0, 10.0)
    assert grid_pipeline(work, zeros, zeros, L, *args) > 0
    with pytest.raises(ValueError, match=r"fill \(1\) need one entry per chain \(4\)"):
        grid_pipeline(work, zeros, zeros, L, *args, fill=np.zeros(1))
    with pytest.raises(ValueError, match=r"first has shape \(2, 3, 5\); work has \(4, 3, 5\)"):
        grid_pipeline(work, zeros[:2], zeros, L, *args)
    with pytest.raises(ValueError, match=r"L \(2\)"):
        grid_pipeline(work, zeros, zeros, L[:2], *args)


def test_the_pipelines_refuse_a_negative_cushion_or_wavelet_count_in_a_child_process():
    """A cushion below 0 (or NaN) made the recurrence read rounds past the last one (a
    segfault), a negative L likewise: both entry points refuse them, naming the value."""
    code = textwrap.dedent("""
        import numpy as np
        from wsekern._pipeline import grid_pipeline
        from wsekern._screen import ws_pipeline
        G, P, N = 4, 3, 5
        work, zeros, L = np.ones((G, P, N)), np.zeros((G, P, N)), np.ones(G, dtype=np.int_)
        args = (1.0, 2.0, 0.0, 19.0, 4.0)
        R, C = 2, 3
        ws = (np.ones(R), np.ones((C, N), np.int64), np.zeros(R * C, np.uint8),
              np.zeros(R * C + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32),
              np.ones((1, N), np.uint8), 1.0, 1.0, 1.0, np.zeros((C, N)), np.zeros((C, N)),
              np.zeros(R))
        cases = [
            lambda: grid_pipeline(work, zeros, zeros, L, *args, -1e9),
            lambda: grid_pipeline(work, zeros, zeros, L, *args, float("nan")),
            lambda: grid_pipeline(work, zeros, zeros, -L, *args, 10.0),
            lambda: ws_pipeline(*ws, np.ones(R, np.int_), 1.0, 2.0, 0.0, 19.0, -1.0,
                                np.zeros((C, N))),
            lambda: ws_pipeline(*ws, -np.ones(R, np.int_), 1.0, 2.0, 0.0, 19.0, 10.0,
                                np.zeros((C, N))),
        ]
    """)
    assert_refused_in_child(code, 5, needles=("received", "must be >= 0"))


@pytest.mark.parametrize("case", range(len(CASES)))
def test_screen_price_is_the_screen_report(case):
    """The placer prices weight-stationary candidates without building their reports
    (analytic.screen_price): the same cycles as the screen's report on every candidate,
    and the same overflow where a PE does not fit."""
    from wsekern.wafer import analytic
    config, W, X = _problem(case)
    M, K = W.shape
    ops = placement.Operands(W, X, search=True)
    plain = placement.Operands(W, X)                 # the report's path, without tables
    assert plain.tables() is None and analytic.screen_price(plain, config, (0, 0, 1, 1)) is None
    priced = overflows = 0
    for R in placement.geometric(min(config.rows, M)):
        for C in placement.geometric(min(config.cols, K)):
            region = (0, 0, R, C)
            try:
                want = analytic.weight_stationary(W, X, config, region, ops=plain, exact=False,
                                                  full=False).cycles
            except SramOverflowError as exc:
                with pytest.raises(SramOverflowError) as got:
                    analytic.screen_price(ops, config, region)
                assert str(got.value) == str(exc)
                overflows += 1
                continue
            assert analytic.screen_price(ops, config, region) == want, (R, C)
            priced += 1
    assert priced > 10
    assert overflows or case not in (3, 4)          # those two have overflowing ones


def test_summed_area_fill_matches_numpy():
    from wsekern._screen import summed_area_fill
    rng = np.random.default_rng(0)
    M, K, n = 37, 53, 400                       # repeated positions are summed
    rows, cols = rng.integers(0, M, n), rng.integers(0, K, n)
    values = rng.integers(0, 1000, n)
    ref = np.zeros((M + 1, K + 1), np.int64)
    np.add.at(ref, (rows + 1, cols + 1), values)
    ref = ref.cumsum(axis=0).cumsum(axis=1)
    for dtype in (np.int32, np.int64):
        T = np.zeros((M + 1, K + 1), dtype)
        summed_area_fill(T, rows, cols, values)
        np.testing.assert_array_equal(T, ref)
    with pytest.raises(ValueError, match="outside 37x53"):
        summed_area_fill(np.zeros((M + 1, K + 1), np.int64), rows + 1, cols, values)
    with pytest.raises(ValueError, match="one length"):
        summed_area_fill(np.zeros((M + 1, K + 1), np.int64), rows, cols[:-1], values)


@pytest.mark.parametrize("case, rows", [(4, 6), (6, 6), (2, 1)])
def test_exact_work_matches_the_numpy_model(case, rows, monkeypatch):
    """The exact model's work per PE and sample is written in one Cython pass
    (analytic._ws_work); the NumPy expression it replaced (dense blocks' AXPY tasks, the
    chunked wsekern.spmm count of compressed blocks, the end-of-stream task) gives the same
    floats, and the same largest per column."""
    from wsekern.wafer import analytic
    config, W, X = _problem(case)
    (M, K), N = W.shape, X.shape[1]
    ops = placement.Operands(W, X)
    R, C = min(config.rows, M, rows), min(config.cols, K, 5)
    pl = placement.weight_stationary(ops, config, (0, 0, R, C))
    use_comp = pl.use_comp.copy()
    use_comp.ravel()[::3] = ~use_comp.ravel()[::3]          # both formats side by side
    pl.use_comp = use_comp
    # the per-PE model without the multicast's coupling of rows (as on large problems)
    monkeypatch.setattr(analytic, "PER_PE_LIMIT", R * C * N)
    assert K * R > R * C * N or R == 1
    a_cn = ops.activations(C)
    comp = analytic._compressed_work(pl.block["of_nonzero"], ops.w_col, ops.x_nz, a_cn,
                                     use_comp, R, C, config, per_block=True, chunk=2 * N * C)
    ref = np.where(use_comp[:, :, None], 0.0, pl.block["t_dense"][:, None, None] * a_cn[None])
    ref += comp
    ref += config.task_cycles
    blocks, _, arrivals, per_pe = analytic._ws_work(ops, pl, config, True)
    assert per_pe and arrivals is None
    work, work_cn = blocks.materialise()
    np.testing.assert_array_equal(work, ref)
    np.testing.assert_array_equal(work_cn, ref.max(axis=0))
    assert use_comp.any() and (~use_comp).any() and comp[use_comp].max() > 0


@pytest.mark.parametrize("case, rows", [(4, 6), (6, 6), (2, 1), (0, 8)])
def test_row_by_row_pipeline_is_the_pipeline_of_the_whole_work(case, rows, monkeypatch):
    """The exact model costs its work one PE row at a time (ws_pipeline), never holding
    R x C x N floats: the same cycles as grid_pipeline over the whole array, and the same
    largest work per column."""
    from wsekern.wafer import analytic
    config, W, X = _problem(case)
    (M, K), N = W.shape, X.shape[1]
    ops = placement.Operands(W, X)
    R, C = min(config.rows, M, rows), min(config.cols, K, 5)
    pl = placement.weight_stationary(ops, config, (0, 0, R, C))
    pl.use_comp = pl.use_comp.copy()
    pl.use_comp.ravel()[::2] = ~pl.use_comp.ravel()[::2]        # both formats side by side
    monkeypatch.setattr(analytic, "PER_PE_LIMIT", R * C * N)
    blocks, _, _, per_pe = analytic._ws_work(ops, pl, config, True)
    assert per_pe and isinstance(blocks, analytic._BlockWork)
    work, work_cn = blocks.materialise()
    v = ops.activations(C) * config.wavelets_per_sparse_value + 1
    dt = 1.0 / config.link_wavelets_per_cycle
    fill = np.arange(1, R + 1) * config.hop_cycles + config.ramp_cycles
    L = np.ceil(np.diff(pl.row_bounds) / config.values_per_dense_wavelet).astype(np.int64)
    for chains in (L, np.zeros(R, np.int64)):
        want = analytic._pipeline_cycles(config, work, v, dt, fill, chains)
        est, cn = blocks.pipeline(config, v, dt, fill, chains)
        assert est == want and want > 0
        np.testing.assert_array_equal(cn, work_cn)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_bounds_of_all_candidates_at_once_are_each_candidates_bound(case):
    """The search bounds every candidate in one call (analytic.placer_bounds: Cython for
    weight-stationary, closed-form over the column counts for activation-stationary): the
    same floats as placer_bound one candidate at a time, with the tables or without."""
    from wsekern.wafer import analytic
    config, W, X = _problem(case)
    (M, K), N = W.shape, X.shape[1]
    dims = {"weight-stationary": (M, K), "activation-stationary": (K, N)}
    for search in (True, False):
        for m, (rows, cols) in placement.candidates(dims, tuple(dims), config).items():
            ops = placement.Operands(W, X, search=search)
            grid = analytic.placer_bounds(m, ops, config, rows, cols)
            ref = [[analytic.placer_bound(m, ops, config, R, C) for C in cols] for R in rows]
            np.testing.assert_array_equal(grid, np.array(ref), err_msg=f"{m} search={search}")


def _random_problem(seed):
    """A seeded problem of random shape, sparsity, skew, machine and element type."""
    rng = np.random.default_rng(100 + seed)
    rows, cols = (int(v) for v in rng.integers(2, 40, 2))
    config = WaferConfig.small(rows, cols, dtype=("fp16", "fp32")[seed % 2])
    M, K, N = int(rng.integers(1, 400)), int(rng.integers(1, 400)), int(rng.integers(1, 40))
    density = float(rng.choice([0.005, 0.05, 0.2, 0.6, 1.0]))
    W = _skewed(M, K, density, seed) if seed % 3 == 0 else sps.random(
        M, K, density=density, random_state=seed, format="csr", dtype=np.float32)
    return config, sps.csr_array(W), _acts(K, N, float(rng.choice([0.0, 0.5, 0.9])), seed)


@pytest.mark.parametrize("seed", range(12))
def test_search_matches_exhaustive_screen_on_random_problems(seed, monkeypatch):
    config, W, X = _random_problem(seed)
    try:
        got, seen = _captured(Wafer(config), W, X, monkeypatch)
    except (SramOverflowError, MappingUnfit):
        pytest.skip("fits nowhere")     # the exhaustive screen then has nothing to compare
    ref = _exhaustive(seen)
    assert (got.mapping, got.region) == (ref.mapping, ref.region) \
        or got.cycles < ref.cycles, (got.mapping, got.region, got.cycles, ref.mapping,
                                     ref.region, ref.cycles)


def test_summed_area_fill_refuses_sums_beyond_its_integers():
    """The table's own entry point refuses values whose partial sums leave its integer type
    (before, an int32 table wrapped silently where its caller did not check); in a child
    process, since the fill runs unchecked loops."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import numpy as np
        from wsekern._screen import summed_area_fill
        big = np.array([2**30, 2**30], np.int64)
        at = np.zeros(2, np.int64)
        cases = [
            lambda: summed_area_fill(np.zeros((2, 2), np.int32), at, at, big),
            lambda: summed_area_fill(np.zeros((2, 2), np.int32), at, at, -big),
            lambda: summed_area_fill(np.zeros((2, 2), np.int64), at, at,
                                     np.array([2**62, 2**62], np.int64)),
        ]
        T = np.zeros((2, 2), np.int32)
        summed_area_fill(T, at, at, np.array([2**30, 2**30 - 1], np.int64))
        assert T[1, 1] == 2**31 - 1, T
        """, 3, errors=(OverflowError,), needles=("bit integers",))


@pytest.mark.parametrize("m, k, D, rows, cols", [(300, 200, 64, 16, 16), (40, 900, 700, 8, 30),
                                                 (500, 50, 300, 24, 12)])
def test_sddmm_fit_check_is_the_ledgers(m, k, D, rows, cols):
    """The balance's SDDMM fit check skips counting blocks where even the fullest PE
    would fit: it raises exactly where the ledger does, with its message."""
    from wsekern.wafer import analytic
    W = sps.random(m, k, density=0.3, random_state=m, format="csr", dtype=np.float32)
    stats, config = placement.WeightStats(W), WaferConfig.small(rows, cols)
    fits = overflows = 0
    for R in placement.geometric(min(rows, m)):
        for C in placement.geometric(min(cols, k)):
            try:
                analytic._sddmm_ledger(stats, D, config, (0, 0, R, C))
            except SramOverflowError as exc:
                with pytest.raises(SramOverflowError) as got:
                    analytic.sddmm_check_fits(stats, D, config, (0, 0, R, C))
                assert str(got.value) == str(exc)
                overflows += 1
                continue
            analytic.sddmm_check_fits(stats, D, config, (0, 0, R, C))
            fits += 1
    assert fits and overflows


def test_layer_placement_is_unchanged_by_the_tables(monkeypatch):
    """width_profile's bounds take the summed-area tables once asked (a tighter bound,
    fewer rectangles estimated): the balance places every layer where it did without."""
    from wsekern.wafer import training
    rng = np.random.default_rng(3)
    layers = []
    for i, (m, k, density) in enumerate([(128, 384, 1.0), (128, 128, 0.1), (512, 128, 0.1),
                                         (65, 128, 1.0)]):
        W = sps.random(m, k, density=density, random_state=i, format="csr", dtype=np.float32)
        layers.append((f"layer{i}", W, placement.WeightStats(W)))
    config = WaferConfig.small(40, 96)
    columns = [int(v) for v in rng.integers(64, 512, len(layers))]
    fast = training.balance(layers, config, columns)
    monkeypatch.setattr(placement, "TABLE_LIMIT", 0)
    fresh = [(n, W, placement.WeightStats(W)) for n, W, _ in layers]
    assert training.balance(fresh, config, columns) == fast


def test_screen_bounds_refuse_bounds_outside_their_table():
    """ws_screen_bounds reads the table without bounds checks: offsets that do not split
    the bounds, or bounds beyond the table, are refused first (in a child process)."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import numpy as np
        from wsekern._screen import ws_screen_bounds
        T = np.zeros((5, 7), np.int64)
        i = lambda *v: np.array(v, np.int64)
        args = (4, 1.0, 15.0, 4.0, 22.0, 1.0, 1.0, 1.0, 2.0, 1.0, 2.0)
        ok = ws_screen_bounds(T, i(0, 2, 4), i(0, 3), i(0, 3, 6), i(0, 3), i(5, 7), *args)
        assert ok.shape == (1, 1), ok
        cases = [
            lambda: ws_screen_bounds(T, i(0, 2, 5), i(0, 3), i(0, 3, 6), i(0, 3), i(5, 7),
                                     *args),
            lambda: ws_screen_bounds(T, i(0, 2, 4), i(0, 3), i(0, 3, 7), i(0, 3), i(5, 7),
                                     *args),
            lambda: ws_screen_bounds(T, i(0, 2, 4), i(0, 9), i(0, 3, 6), i(0, 3), i(5, 7),
                                     *args),
            lambda: ws_screen_bounds(T, i(0, 2, 4), i(0, 3), i(0, 3, 6), i(0, 3), i(5,),
                                     *args),
            lambda: ws_screen_bounds(T, i(0, 2, 4), i(0, 1, 3), i(0, 3, 6), i(0, 3), i(5, 7),
                                     *args),
        ]
        """, 5, needles=("bound", "split", "fewer than two"))
