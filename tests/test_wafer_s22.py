"""wafer22: the weight-stationary estimate takes the send queue at slow links.

The mechanism is wafer21's (tests/test_wafer_s21.py): a reduction chain's first PE pushes
its stored sums into its router's send queue, one a cycle, up to ``queue_depth +
ceil(turnaround + ramp)`` wavelets, and is free for its next round once the last is in
that queue, not once the slow link has taken it. Weight-stationary's chains (one per PE
row, the first PE at column 0) run the same sender; its estimate (the exact model's
ws_pipeline, the screen, and the training step's chain) now frees that PE as the
activation-stationary estimate does. The event engine is the reference.
"""
import numpy as np
import pytest
from test_wafer_s21 import _pattern, _send_release, _x

from wsekern import Wafer, WaferConfig
from wsekern._pipeline import grid_pipeline
from wsekern._screen import DenseStep, dense_stream
from wsekern._step_cost import WsStep, ws_step_columns
from wsekern.wafer import analytic, event
from wsekern.wafer.placement import Operands, WeightStats


def _cfg(base, dtype, rate, **extra):
    return getattr(WaferConfig, base)(rows=16, cols=16, dtype=dtype).with_(
        link_wavelets_per_cycle=rate, **extra)


CONFIGS = [("wse2", "fp16", {}), ("wse2", "fp32", {"queue_depth": 16})]
CASES = [(22, 3, 40, 3), (18, 2, 9, 4), (17, 1, 7, 7)]


@pytest.mark.parametrize("rate", [1 / 3, 0.5])
@pytest.mark.parametrize("M,K,N,C", CASES)
@pytest.mark.parametrize("base,dtype,extra", CONFIGS)
def test_weight_stationary_one_row_estimate_is_near_the_event_at_slow_links(
        base, dtype, extra, M, K, N, C, rate):
    """One-row regions (a single chain of C PEs) at a third and half a wavelet a cycle:
    the estimate was 1.15-1.33x the event (event/estimate 0.75-0.87 on these cases: it
    held the first PE until the link had taken its sums); now within 0.97-1.12 of it,
    and the event inside the bounds; the product checked against W @ X."""
    cfg = _cfg(base, dtype, rate, **extra)
    W, X = _pattern(M, K), _x(K, N)
    _, a = Wafer(cfg).spmm(W, X, mapping="weight-stationary", region=(1, C), compute=False)
    Y, e = Wafer(cfg).spmm(W, X, mapping="weight-stationary", region=(1, C), mode="event")
    np.testing.assert_allclose(Y, W.astype(np.float64) @ X.astype(np.float64), rtol=1e-4,
                               atol=1e-4)
    assert a.cycles_lower <= e.cycles <= a.cycles_upper
    assert 0.97 <= e.cycles / a.cycles <= 1.12, (e.cycles, a.cycles)


@pytest.mark.parametrize("rate", [0.25, 1 / 3, 0.5, 1.0])
@pytest.mark.parametrize("queue", [1, 2, 8])
def test_a_weight_stationary_rows_first_pe_is_free_once_its_sums_are_in_its_send_queue(
        rate, queue):
    """The engine's own trace for weight-stationary: PE (0, 0) of a one-row region, the
    chain's first PE, finishes each round's send at wafer21's closed form (its push
    capacity, then one wavelet per slot the link frees) for round 0, its link free: the
    mechanism the estimate now takes (at a wavelet a cycle, the old release too)."""
    cfg = _cfg("wse2", "fp16", rate, queue_depth=queue, ramp_cycles=1.0, setup_cycles=17.0)
    M, K, N = 34, 3, 4                            # fp16: 17 wavelets of sums a round
    W = np.zeros((M, K), np.float32)
    Y, rep = event.weight_stationary(W, _x(K, N), cfg, (0, 0, 1, 3), trace=True)
    assert not Y.any()
    tr = rep.details["trace"]
    G, done = tr["sums_ready"][0, 0, 0], tr["reduced"][0, 0, 0]
    assert done == _send_release(cfg, 17, G)


def _step_args(rng, K, C, R=2):
    """ws_step_columns' structure for an all-dense K-row W over R x C blocks."""
    k_b = np.linspace(0, K, C + 1).astype(np.int_)
    indptr = np.arange(K + 1, dtype=np.int64) * R
    rows = np.tile(np.arange(R, dtype=np.int32), K)
    data = rng.integers(1, 4, K * R).astype(np.int32)
    t_dense = rng.integers(1, 3, R).astype(np.float64)     # short tasks: the sums bind
    choice = np.zeros(R * C, np.int8)
    total = np.full(R * C, 100, np.int64)
    return (k_b, indptr, rows, data, t_dense, choice, total, total.copy())


@pytest.mark.parametrize("dt", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("seed", range(3))
def test_the_step_kernels_take_the_send_queue_as_grid_pipeline_does(seed, dt):
    """The training step's chain (ws_step_columns, WsStep, dense_stream, DenseStep with
    an eighth ``pipeline`` figure, ``push``): the same float as grid_pipeline(push=) on
    the arrays the pass makes; at a wavelet a cycle or faster (dt <= 1) the same float as
    the seven-figure pipeline; slower, earlier than it (short tasks: the sums bind).
    Both kept steps pair rounds (wsk_chain_next2) only where the queue cannot bind."""
    rng = np.random.default_rng(seed)
    K, C, N = 24, 4, int(rng.integers(3, 30))
    x = (rng.random((K, N)) < 0.2).astype(np.uint8)
    args = _step_args(rng, K, C)
    L = np.array([int(rng.integers(10, 20))], np.int_)
    hop, ramp, lat, launch, task, cushion, fill = 1.0, 1.0, 3.0, 21.0, 4.0, 17.0, 3.0
    pipe7 = (L, hop, ramp, lat, launch, cushion, fill)
    pipe8 = pipe7 + (6,)
    kw = dict(hop=hop, ramp=ramp, lat=lat, launch=launch, task=task, cushion=cushion)
    ref = ws_step_columns(x, *args, task, 1.0, task, 1, dt)
    work, first, last = (a.T[None] for a in ref[:3])
    want = grid_pipeline(work, first, last, L, fill=np.array([fill]), dt=dt, push=6, **kw)
    plain = grid_pipeline(work, first, last, L, fill=np.array([fill]), dt=dt, **kw)
    got = ws_step_columns(x, *args, task, 1.0, task, 1, dt, pipeline=pipe8)[-1]
    step = WsStep(K, *args, task, 1.0, task, 1, dt, pipeline=pipe8).run(x)
    assert got == step[3] == want
    assert step[:3] == WsStep(K, *args, task, 1.0, task, 1, dt, pipeline=pipe7).run(x)[:3]
    assert want == plain if dt <= 1 else want < plain
    # the all-dense screen's stream (its fill in the arrivals, unshifted)
    k_b = args[0]
    d7 = (L, hop, ramp, lat, launch, task, cushion)
    d = dense_stream(x, k_b, 20.0, task, 1, dt, fill)
    dwant = grid_pipeline(*(a.T[None] for a in d[:3]), L, dt=dt, push=6, **kw)
    assert dense_stream(x, k_b, 20.0, task, 1, dt, fill, d7 + (6,))[-1] == dwant
    assert DenseStep(K, k_b, 20.0, task, 1, dt, fill, d7 + (6,)).run(x)[2] == dwant
    if dt <= 1:
        assert dwant == DenseStep(K, k_b, 20.0, task, 1, dt, fill, d7).run(x)[2]


def test_a_pipeline_of_the_wrong_length_is_refused_naming_it():
    rng = np.random.default_rng(0)
    args = _step_args(rng, 8, 2)
    x = np.ones((8, 3), np.uint8)
    with pytest.raises(ValueError, match="7 figures, or 8 with push; received 6"):
        ws_step_columns(x, *args, 1.0, 1.0, 1.0, 1, 2.0,
                        pipeline=(np.array([2]), 1.0, 1.0, 3.0, 9.0, 17.0))
    # nine is push and the ramp floor's flag (wafer23): ten is refused
    with pytest.raises(ValueError, match="7 figures, or 8 with push; received 10"):
        dense_stream(x, args[0], 20.0, 1.0, 1, 2.0, 3.0,
                     (np.array([2]), 1.0, 1.0, 3.0, 9.0, 1.0, 17.0, 6, False, 0))


@pytest.mark.parametrize("rate", [0.25, 0.5, 1.0, 4.0])
def test_the_training_step_agrees_with_the_estimate_at_slow_links(rate):
    """weight_stationary_cycles (the training step's chain, fused into its pass) and the
    all-dense screen (dense_screen_cycles) give the float weight_stationary reports with
    exact=False, send queue included, on one-row and square regions."""
    cfg = _cfg("wse2", "fp16", rate, queue_depth=2)
    rng = np.random.default_rng(3)
    for region, M, K, N in [((0, 0, 1, 5), 20, 10, 9), ((0, 0, 3, 3), 24, 9, 17)]:
        W = _pattern(M, K)
        X = _x(K, N) * (rng.random((K, N)) < 0.7)
        want = analytic.weight_stationary(W, X, cfg, region, exact=False).cycles
        assert analytic.weight_stationary_cycles(WeightStats(W), X != 0, cfg, region)[0] \
            == want
        Wd = W + 3.0                                       # every entry nonzero
        plan = analytic.dense_screen(WeightStats(Wd), cfg, region)
        assert plan is not None
        assert analytic.dense_screen_cycles(plan, X != 0, cfg)[0] == \
            analytic.weight_stationary(Wd, X, cfg, region, exact=False).cycles


@pytest.mark.parametrize("base,dtype", [("wse2", "fp16"), ("wse3", "fp32")])
def test_weight_stationary_estimates_at_a_wavelet_a_cycle_do_not_move(base, dtype, monkeypatch):
    """At a wavelet a cycle or faster the queue drains as fast as it fills: every
    weight-stationary figure the same float with the send queue as without it."""
    W, X = _pattern(20, 12), _x(12, 9)
    for rate in (1.0, 2.0):
        cfg = _cfg(base, dtype, rate)
        for region in ((1, 4), (3, 3), (4, 1)):
            new = Wafer(cfg).spmm(W, X, mapping="weight-stationary", region=region,
                                  compute=False)[1].cycles
            monkeypatch.setattr(analytic, "_send_queue", lambda c: -1)
            old = Wafer(cfg).spmm(W, X, mapping="weight-stationary", region=region,
                                  compute=False)[1].cycles
            monkeypatch.undo()
            assert new == old


# review_w5's seed 1128 (wafer21's fuzz): activation-stationary on 3 x 1 PEs, WSE-3 fp32,
# queue 8, task 1; W 8 x 12 with these nonzeros, X 12 x 17
_W1128 = [(0, 5), (0, 8), (0, 11), (1, 9), (5, 5), (5, 6), (6, 0), (6, 4), (6, 7), (7, 0)]


def _case_1128(rate):
    W = np.zeros((8, 12), np.float32)
    for i, (m, k) in enumerate(_W1128):
        W[m, k] = 0.5 + 0.25 * i
    cfg = _cfg("wse3", "fp32", rate, queue_depth=8, task_cycles=1.0)
    return cfg, W, _x(12, 17)


def _engine_queues(config):
    """The wavelets the event engine's queues hold between two reducers (src/_event.pyx:
    each queue its depth plus those in flight on what feeds it): the sender's push
    capacity, the next router's link queue (hop + turn) and the receiver's ramp queue."""
    q = config.queue_depth
    lat = max(1.0, config.stage_cycles - 2 * config.ramp_cycles)
    return ((q + int(np.ceil(lat + config.ramp_cycles)))
            + (q + int(np.ceil(config.hop_cycles + config.turn_cycles)))
            + (q + int(np.ceil(config.ramp_cycles))))


@pytest.mark.parametrize("config", [
    WaferConfig.wse2(rows=4, cols=4), WaferConfig.wse3(rows=4, cols=4),
    WaferConfig.wse3(rows=4, cols=4, dtype="fp16").with_(queue_depth=8, hop_cycles=3.0),
    WaferConfig.wse2(rows=4, cols=4).with_(ramp_cycles=1.0, turn_cycles=3.0, queue_depth=1)])
def test_the_cushion_is_what_the_engines_queues_hold(config):
    """The recurrence's cushion (wavelets a relay may run ahead of its receiver) is the
    engine's queues between two reducers, the link queue's turn credit included (WSE-3's
    turn of 20 cycles: 48 wavelets at its defaults, not 28)."""
    assert analytic._cushion(config) == _engine_queues(config)


def test_a_relay_runs_ahead_of_a_busy_root_by_the_engines_queues():
    """Seed 1128's trace: the root (PE row 2) computes round 0 until cycle 108 and takes
    no sums before; the relay (row 1) meanwhile ends round 2, 3 x 17 = 51 wavelets pushed:
    more than the old cushion (40 at queue 8) let it, within the engine's queues (60)."""
    cfg, W, X = _case_1128(1.0)
    _, rep = event.activation_stationary(W, X, cfg, (0, 0, 3, 1), trace=True)
    tr = rep.details["trace"]
    root_takes = tr["sums_ready"][2, 0, 0]
    assert tr["reduced"][1, 0, 2] <= root_takes < tr["reduced"][1, 0, 3]
    q, lat = cfg.queue_depth, max(1.0, cfg.stage_cycles - 2 * cfg.ramp_cycles)
    old = (q + lat + cfg.ramp_cycles) + (q + cfg.hop_cycles) + (q + cfg.ramp_cycles)
    assert old < 3 * 17 <= analytic._cushion(cfg) == _engine_queues(cfg) == 60


@pytest.mark.parametrize("rate", [1.0, 2.0, 4.0])
def test_seed_1128_at_a_wavelet_a_cycle_is_costed_at_the_event(rate):
    """review_w5's seed 1128 at fast links: the estimate was 428 against the event's 383
    (0.895; the relay held 20 wavelets early); now within 2 % of it, inside the bounds."""
    cfg, W, X = _case_1128(rate)
    _, a = Wafer(cfg).spmm(W, X, mapping="activation-stationary", region=(3, 1),
                           compute=False)
    Y, e = Wafer(cfg).spmm(W, X, mapping="activation-stationary", region=(3, 1), mode="event")
    np.testing.assert_allclose(Y, W.astype(np.float64) @ X.astype(np.float64), rtol=1e-4,
                               atol=1e-4)
    assert a.cycles_lower <= e.cycles <= a.cycles_upper
    assert 0.98 <= e.cycles / a.cycles <= 1.02, (e.cycles, a.cycles)


# wafer21's fuzz seed 357: activation-stationary on 6 x 1 PEs, WSE-3 fp16, hop 3, ramp 0,
# task 1, setup 8, stage 9; W 18 x 21 with these nonzeros, X 21 x 1
_W357 = [(2, 16), (5, 4), (5, 8), (7, 18), (8, 3), (9, 17), (12, 8), (13, 6)]


def _case_357(rate):
    W = np.zeros((18, 21), np.float32)
    for i, (m, k) in enumerate(_W357):
        W[m, k] = 1.0 - 0.125 * i
    cfg = _cfg("wse3", "fp16", rate, hop_cycles=3.0, ramp_cycles=0.0, task_cycles=1.0,
               setup_cycles=8.0, stage_cycles=9.0)
    return cfg, W, (np.arange(21) % 4 + 1.0).astype(np.float32)[:, None]


@pytest.mark.parametrize("rate", [0.25, 1 / 3])
def test_a_receivers_ramp_load_bounds_the_activation_stationary_estimate(rate):
    """Seed 357 (one column of 6 PEs, few weights, slow links): each relay's ramp carries
    its weights and the sums it receives, and a core starts round n in round n - 2's
    accumulator, so by round n's end the ramp has carried every weight to round n and the
    sums of rounds n - 2 and before. The estimate was 0.76x the event (event/estimate
    1.32); with that floor, within 0.97-1.05 of it, inside the bounds."""
    cfg, W, X = _case_357(rate)
    _, a = Wafer(cfg).spmm(W, X, mapping="activation-stationary", region=(6, 1),
                           compute=False)
    Y, e = Wafer(cfg).spmm(W, X, mapping="activation-stationary", region=(6, 1), mode="event")
    np.testing.assert_allclose(Y, W.astype(np.float64) @ X.astype(np.float64), rtol=1e-4,
                               atol=1e-4)
    assert a.cycles_lower <= e.cycles <= a.cycles_upper
    assert 0.97 <= e.cycles / a.cycles <= 1.05, (e.cycles, a.cycles)


@pytest.mark.parametrize("rate", [0.25, 1 / 3, 0.5, 1.0])
@pytest.mark.parametrize("case", [_case_357, _case_1128])
def test_the_ramp_floor_is_below_every_round_the_engine_ends(case, rate):
    """The floor against the engine's trace: every PE row past the first ends each round
    (sums_ready) no sooner than its stream's fill, the floor and an end-of-stream task
    (a fuzz of 46,012 rounds over one-column regions found none earlier)."""
    cfg, W, X = case(rate)
    R = 6 if case is _case_357 else 3
    _, rep = event.activation_stationary(W, X, cfg, (0, 0, R, 1), trace=True)
    ready = rep.details["trace"]["sums_ready"][:, 0, :]
    M = W.shape[0]
    _, rows = Operands(W, X).col_block(R)           # each row of X's PE row
    nnz = np.zeros((R, M))
    for m, k in zip(*np.nonzero(W)):
        nnz[rows[k], m] += 1
    v = nnz * cfg.wavelets_per_sparse_value + 1
    dt = analytic._link_dt(cfg)
    L = int(np.ceil(X.shape[1] / cfg.values_per_dense_wavelet))
    floor = analytic._ramp_floor(v, dt, L) + cfg.hop_cycles + cfg.ramp_cycles + cfg.task_cycles
    assert np.isneginf(floor[0]).all()
    assert (ready[1:] >= floor[1:]).all()
    assert (floor[1:, 2:] > (np.cumsum(v, axis=1) * dt - dt)[1:, 2:]).all()   # it binds
