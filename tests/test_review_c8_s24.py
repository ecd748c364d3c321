"""review_c8 (stop 41): acct24's cheaper step costing and wafer24's root input queue.

- A queued step whose costing raises mid-flush leaves the steps after it queued, in their
  order and with their bytes; costed later they give the figures a run without the failure
  gives (that step's cycles left out) -- the reference is that run, not the code's own queue.
- A placement that hands no step over in a queued step is not costed on an earlier step's
  operands (the flush's skip of the per-placement reset when every placement is in the step).
- wafer24's root input-queue term keeps a weight-stationary estimate at or below the event:
  one 3 x 3 case where it does not (strict xfail; it holds on main dc577e2).
"""
import numpy as np
import pytest
from test_strategy_deferred import (
    BATCH,
    SAMPLES,
    _figures,
    _fit,
    _held,
    _quiet_fit_ends,
    _setup,
    _sparse,
    _x,
)
from test_strategy_lazy import _same

from wsekern.nn import columns
from wsekern.nn import strategy as S


def _fit_failing_once(K, fail_at):
    """A sparse model's epoch with the fail_at-th cost_step raising (0: none); the queue is
    left as the failure leaves it (fit's end quiet)."""
    orig = S.LayerPlacement.cost_step
    calls = {"n": 0}

    def cost_step(self, cfg, mode):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise RuntimeError("injected")
        return orig(self, cfg, mode)
    strategy, model = _setup(_sparse, None, K)
    _quiet_fit_ends(strategy)
    rng = np.random.default_rng(3)
    x, y = _x(_sparse, rng, SAMPLES), rng.integers(0, 10, SAMPLES)
    S.LayerPlacement.cost_step = cost_step
    try:
        try:
            model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        except RuntimeError as e:
            assert str(e) == "injected"
    finally:
        S.LayerPlacement.cost_step = orig
    return strategy, model


@pytest.mark.parametrize("fail_at", [5, 8, 10])
def test_a_step_raising_mid_flush_leaves_the_later_steps_queued_in_order(fail_at):
    plain, _ = _fit_failing_once(16, 0)
    plain._flush()
    want = _held(plain)._step_cycles
    strategy, model = _fit_failing_once(16, fail_at)
    failed = (fail_at - 1) // 3                  # three layers a step, all handed over
    queued = list(_held(strategy)._queue)
    # fit's first step is costed when taken, steps 1-4 are queued and costed when the
    # epoch's last, shorter batch (a new plan) comes: the failure stops fit there, and
    # the steps after the failed one stay queued, in order, with their bytes
    assert len(want) == 6 and len(queued) == 4 - failed
    assert _held(strategy)._queue_bytes == sum(e[3] for e in queued) > 0
    assert _held(strategy)._step_cycles == want[:failed]
    strategy._flush()
    assert _held(strategy)._step_cycles == want[:failed] + want[failed + 1:5]
    held = _held(strategy)
    assert strategy.steps == 4 and not held._queue and held._queue_bytes == 0


def _hand_over(strategy, rng, skip=()):
    """Every placement's operands as a layer hands them over (taken patterns, queueable),
    but those in ``skip``, which hand nothing over."""
    for j, p in enumerate(strategy.placements):
        if j in skip:
            p.last_input = p.last_grad = None
            continue
        N = p._primed[4]
        p.last_input = columns.taken((rng.random((p.shape[1], N)) - 0.5).astype(np.float32))
        p.last_grad = columns.taken((rng.random((p.shape[0], N)) - 0.5).astype(np.float32))


def test_a_placement_missing_from_a_queued_step_is_not_costed_on_live_operands():
    """Steps where the middle layer handed nothing over are queued; when the queue is
    costed, a step not yet recorded holds every layer's operands: the queued steps must
    not cost the middle layer on them. Against eager costing (K=1)."""
    got = []
    for K in (1, 16):
        strategy, model, _ = _fit(_sparse, None, K, epochs=1)
        rng = np.random.default_rng(9)
        for i in range(4):
            _hand_over(strategy, rng, skip=(1,) if i % 2 == 0 else ())
            strategy.record_step(model, 5)
        assert len(_held(strategy)._queue) == (4 if K > 1 else 0)
        _hand_over(strategy, rng)                   # a step handed over, not recorded
        live = [(p.last_input, p.last_grad) for p in strategy.placements]
        figures = _figures(strategy, model)
        assert [(p.last_input, p.last_grad) for p in strategy.placements] == live
        got.append(figures)
    _same(got[1], got[0])


def _agree_case_95():
    """review_c8's agree.py (seed 41) case 95: a 3 x 3 weight-stationary region, W 39 x 12
    with 50-95 % zeros, X 12 x 5; queue_depth 3, ramp 0 (the generator's draws replayed)."""
    from wsekern import WaferConfig
    rng = np.random.default_rng(41)
    for case in range(96):
        R, C = int(rng.integers(1, 4)), int(rng.integers(1, 8))
        M = int(rng.integers(1, 40))
        K = int(rng.integers(C, 6 * C + 1))
        N = int(rng.choice([1, 2, 5, 16, 33]))
        dense_w = rng.random() < 0.4
        W = rng.standard_normal((M, K)).astype(np.float32)
        if not dense_w:
            W[rng.random((M, K)) < rng.choice([0.5, 0.8, 0.95])] = 0
        X = ((rng.random((K, N)) < rng.choice([0.05, 0.3, 0.7, 1.0]))
             * rng.standard_normal((K, N))).astype(np.float32)
        rng.choice([0.1, 0.2, 0.25, 1 / 3, 0.5, 0.7, 1.0, 2.0])
        q = int(rng.choice([1, 2, 3, 4, 8, 16]))
        ramp = float(rng.choice([0.0, 1.0, 1.0, 2.0, 3.0, 5.0]))
        dtype = str(rng.choice(["fp16", "fp32"]))
    assert (R, C, M, K, N, q, ramp, dtype) == (3, 3, 39, 12, 5, 3, 0.0, "fp32")
    return WaferConfig.wse2(rows=16, cols=16, dtype=dtype).with_(
        link_wavelets_per_cycle=0.5, queue_depth=q, ramp_cycles=ramp), W, X


@pytest.mark.xfail(strict=True, reason="review_c8: wafer24's root input-queue term puts "
                   "this case's estimates 1 cycle above the event (185 vs 184; main "
                   "dc577e2: 182), at a whole dt of 2: the term is not a lower bound of the "
                   "root's end here (queue 3, ramp 0, 3 PE rows)")
def test_the_root_term_stays_at_or_below_the_event_on_a_three_row_region():
    from wsekern import Wafer
    from wsekern.wafer import analytic
    cfg, W, X = _agree_case_95()
    _, a = Wafer(cfg).spmm(W, X, mapping="weight-stationary", region=(3, 3), compute=False)
    _, e = Wafer(cfg).spmm(W, X, mapping="weight-stationary", region=(3, 3), mode="event")
    ne = analytic.weight_stationary(W, X, cfg, (0, 0, 3, 3), exact=False).cycles
    assert a.cycles_lower <= e.cycles <= a.cycles_upper
    assert a.cycles <= e.cycles and ne <= e.cycles, (a.cycles, ne, e.cycles)
