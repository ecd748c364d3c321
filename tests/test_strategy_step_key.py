"""A layer's step follows the plan of the last fully costed step only when every entry of
that step's key is the same: the config (by identity), the mode, the region, W (by
identity), the batch's columns and whether the input gradient is needed. A step that
differs in any one of them is costed as training.step_cost costs it."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern import nn
from wsekern.nn import columns
from wsekern.nn import layers as L
from wsekern.nn.strategy import LayerPlacement
from wsekern.wafer import training
from wsekern.wafer.placement import WeightStats


def _placed(mode, sparsity):
    """A small MLP trained two steps under a WaferStrategy, its first layer's placement
    and the operands (x, g) its last step handed over, kept as the strategy got them."""
    handed = {}
    original = LayerPlacement.cost_step

    def keep(self, cfg, mode):
        handed[id(self)] = (self.last_input, self.last_grad)
        return original(self, cfg, mode)
    strategy = wk.WaferStrategy(wk.WaferConfig.small(24, 24), mode=mode)
    nn.utils.set_random_seed(0)
    with strategy.scope():
        model = nn.Sequential([nn.Input((20,)),
                               L.Dense(48, activation="relu", name="a", sparsity=sparsity),
                               L.Dense(24, activation="relu", name="b"),
                               L.Dense(4, name="c")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    LayerPlacement.cost_step = keep
    try:
        for _ in range(2):
            x = np.maximum(rng.standard_normal((8, 20)), 0).astype(np.float32)
            model.train_on_batch(x, rng.integers(0, 4, 8))
    finally:
        LayerPlacement.cost_step = original
    p = strategy.placements[1]          # "b": its input gradient is needed
    assert p._plan is not None and p.needs_input_grad
    return strategy, p, handed[id(p)]


def _cost(p, cfg, mode, x, g):
    """The parts p.cost_step adds to the layer's totals for the step of (x, g)."""
    before = dict(p.totals)
    p.last_input, p.last_grad = x, g
    p.cost_step(cfg, mode)
    return {k: p.totals[k] - before[k] for k in before}


def _want(p, cfg, mode, x, g):
    W = p.weight_matrix()
    W = sps.csr_array((W != 0).astype(np.float64))
    return training.step_cost(cfg, mode, p.region, W, WeightStats(W),
                              WeightStats(sps.csr_array(W.T)), columns.pattern(x),
                              columns.pattern(g), p.needs_input_grad)[0]


def _same_parts(got, want):
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12, abs=0.0), k


@pytest.mark.parametrize("sparsity", [0.0, 0.5])
@pytest.mark.parametrize("entry", ["config", "mode", "region", "needs_input_grad",
                                   "batch", "none"])
def test_a_step_differing_in_one_key_entry_is_costed_afresh(entry, sparsity):
    strategy, p, (x, g) = _placed("layer-pipelined", sparsity)
    cfg, mode = strategy.config, strategy.mode
    # a step with the key as it was primes the layer's plan (and follows it)
    old = _want(p, cfg, mode, x, g)
    _same_parts(_cost(p, cfg, mode, x, g), old)
    if entry == "config":               # another config: its tasks take twice as long
        cfg = wk.WaferConfig.small(24, 24, task_cycles=2 * cfg.task_cycles)
    elif entry == "mode":
        mode = "weight-streaming"
    elif entry == "region":             # one PE column fewer
        r0, c0, R, C = p.region
        p.region = (r0, c0, R, C - 1)
    elif entry == "needs_input_grad":
        p.needs_input_grad = False
    elif entry == "batch":              # the first 5 samples
        x, g = np.ascontiguousarray(columns.pattern(x)[:, :5]), \
            np.ascontiguousarray(columns.pattern(g)[:, :5])
    want = _want(p, cfg, mode, x, g)
    # the changed entry changes the step's cost (else the test could not tell)
    assert (want != old) == (entry != "none"), (want, old)
    _same_parts(_cost(p, cfg, mode, x, g), want)
    # and the next step with that key follows its new plan, as costed afresh
    _same_parts(_cost(p, cfg, mode, x, g), want)


@pytest.mark.parametrize("sparsity", [0.0, 0.5])
def test_steps_of_no_columns_have_no_plan_and_are_each_costed_in_full(sparsity):
    """A step of no columns makes no plan (training.step_plan gives None): the next one,
    with the same key, is costed in full again, not from a plan."""
    strategy, p, (x, g) = _placed("layer-pipelined", sparsity)
    cfg, mode = strategy.config, strategy.mode
    x0 = np.zeros((columns.pattern(x).shape[0], 0), bool)
    g0 = np.zeros((columns.pattern(g).shape[0], 0), bool)
    for _ in range(2):
        _same_parts(_cost(p, cfg, mode, x0, g0), _want(p, cfg, mode, x0, g0))
        assert p._plan is None
    _same_parts(_cost(p, cfg, mode, x, g), _want(p, cfg, mode, x, g))
