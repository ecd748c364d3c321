"""A flush's steps timed in one native call per product (src/_step_cost.pyx
``WsStep.cycles_many``, src/_screen.pyx ``DenseStep.cycles_many``, through
analytic.weight_stationary_many, analytic.dense_screen_cycles_many and
training.planned_steps) against the same steps timed one call each (weight_stationary_step,
dense_screen_cycles, planned_step): every figure the same, zeros' signs and types too,
on each SIMD path; links of several rates (the ramp term binding or not), all-zero and
all-nonzero patterns (a full pattern's figures kept on the plan), X in either memory order."""
import dataclasses

import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern.wafer import analytic, training
from wsekern.wafer.placement import WeightStats


def _same(got, want):
    assert [repr(v) for v in got] == [repr(v) for v in want]
    assert [type(v) for v in got] == [type(v) for v in want]


def _case(rng, full):
    """(W's stats, config, region, N, patterns, W) of a random layer and batch."""
    M, K, N = int(rng.integers(2, 40)), int(rng.integers(2, 60)), int(rng.integers(1, 12))
    W = rng.standard_normal((M, K)) + 5.0
    if not full:
        W[rng.random((M, K)) < 0.7] = 0.0
    rate = float(rng.choice([1.0, 0.5, 0.25, 0.1]))
    cfg = dataclasses.replace(wk.WaferConfig.small(16, 16), link_wavelets_per_cycle=rate)
    region = (0, 0, int(rng.integers(1, min(M, 6) + 1)), int(rng.integers(1, min(K, 8) + 1)))
    xs = [rng.random((K, N)) < d for d in (0.0, 0.3, 0.9, 1.0, 0.5, 1.0)]
    xs.append(np.asfortranarray(np.ones((K, N), bool)))        # full again, F order
    xs.append(np.ascontiguousarray(xs[1].T).T)                    # samples-major
    W = sps.csr_array(W)
    return WeightStats(W), cfg, region, N, xs, W


@pytest.mark.parametrize("path", ["avx512", "baseline"])
def test_ws_steps_timed_together_are_timed_one_by_one(paths, path):
    paths(path)
    rng = np.random.default_rng(1)
    for _ in range(40):
        w, cfg, region, _, xs, _ = _case(rng, full=False)
        one = analytic.weight_stationary_step(w, cfg, region)
        want = list(zip(*[one(x) for x in xs]))
        got = analytic.weight_stationary_many(w, cfg, region)(xs)
        for g, v in zip(got, want):
            _same(g, v)


@pytest.mark.parametrize("path", ["avx512", "baseline"])
def test_dense_steps_timed_together_are_timed_one_by_one(paths, path):
    paths(path)
    rng = np.random.default_rng(2)
    ramps = 0
    for _ in range(60):
        w, cfg, region, _, xs, _ = _case(rng, full=True)
        # two plans of the same placement: one timed together, one call a pattern
        together, alone = (analytic._dense_screen(w, cfg, region) for _ in range(2))
        if together is None:
            continue
        counts = [None if i % 2 else int(x.sum()) for i, x in enumerate(xs)]
        want = list(zip(*[analytic.dense_screen_cycles(alone, x, cfg, c)
                          for x, c in zip(xs, counts)]))
        got = analytic.dense_screen_cycles_many(together, xs, cfg, counts)
        for g, v in zip(got, want):
            _same(g, v)
        assert together["seen"] == alone["seen"]          # the last full pattern's kept
        # and a second list finds the first's full pattern as the calls would
        got = analytic.dense_screen_cycles_many(together, xs[3:4], cfg, [None])
        _same(got[0], [analytic.dense_screen_cycles(alone, xs[3], cfg)[0]])
        call, (_, task, hop, _, L, chained) = together["step"][1]
        ramps += int(analytic._DenseStep(xs[0].shape[0], *call).cycles_many(
            xs, task, hop, L, chained)[2].sum())
    assert ramps > 0                    # the ramp term's pass over X was taken


@pytest.mark.parametrize("full", [False, True], ids=["sparse", "dense"])
def test_planned_steps_are_planned_step_step_by_step(full):
    rng = np.random.default_rng(3)
    kinds = set()
    for _ in range(20):
        w, cfg, region, N, xs, W = _case(rng, full)
        stats_t = WeightStats(sps.csr_array(W.T))
        for needs in (False, True):
            plan = training.step_plan(cfg, "layer-pipelined", region, W, w, stats_t, N, needs)
            kinds.add(plan["kind"])
            gs = [rng.random((w.M, N)) < d for d in (0.2, 1.0, 0.0, 0.6, 1.0, 0.4, 1.0, 0.9)]
            counts = [(int(x.sum()), None) for x in xs]
            got = training.planned_steps(plan, xs, gs, counts)
            want = [training.planned_step(plan, x, g, nnz=c) for x, g, c in zip(xs, gs, counts)]
            assert len(got) == len(want)
            for (parts, latency, sram), (w_parts, w_latency, w_sram) in zip(got, want):
                _same(parts, tuple(w_parts.values()))
                _same((latency, sram), (w_latency, w_sram))
    assert kinds == {"dense" if full else "sparse"}

