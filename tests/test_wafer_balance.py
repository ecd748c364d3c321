"""Layer-pipelined balancing (wafer.training.balance): the slowest layer sets the pipeline's
rate, so the regions must make it as fast as the columns allow, side by side with no idle
columns between neighbours. Checked against a brute force over every combination of widths
from the same per-layer profiles."""
import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from wsekern.errors import SramOverflowError
from wsekern.wafer import training
from wsekern.wafer.config import WaferConfig
from wsekern.wafer.placement import WeightStats, geometric


def _layers(shapes, density=0.3):
    out = []
    for i, (m, k) in enumerate(shapes):
        W = sp.random(m, k, density=density, random_state=i, format="csr", dtype=np.float32)
        out.append((f"layer{i}", W, WeightStats(W)))
    return out


def _brute_force_bottleneck(layers, cfg, batch):
    profiles = [training.width_profile(W, s, cfg, batch) for _, W, s in layers]
    best = np.inf
    for combo in itertools.product(*profiles):
        if sum(C for _, (_, C), _ in combo) <= cfg.cols:
            best = min(best, max(t for *_, t in combo))
    return best


@pytest.mark.parametrize("shapes, cols", [
    ([(24, 40), (24, 24), (10, 24)], 16),
    ([(48, 40), (10, 48)], 12),
    ([(8, 64), (64, 8), (16, 64)], 24),
])
def test_the_bottleneck_is_the_lowest_any_widths_give(shapes, cols):
    cfg = WaferConfig.small(16, cols)
    layers = _layers(shapes)
    regions = training.balance(layers, cfg, 16)
    got = max(training.forward_estimate(W, s, cfg, r, 16)
              for (_, W, s), r in zip(layers, regions))
    assert got == pytest.approx(_brute_force_bottleneck(layers, cfg, 16), rel=1e-12)


def test_regions_sit_side_by_side_inside_the_wafer():
    cfg = WaferConfig.small(16, 24)
    layers = _layers([(24, 40), (24, 24), (10, 24)])
    regions = training.balance(layers, cfg, 16)
    assert regions[0][:2] == (0, 0)
    for (r0, c0, R, C), (s0, d0, _, _) in zip(regions, regions[1:]):
        assert d0 == c0 + C                       # the next layer starts at the next column
        assert training.link_hops((r0, c0, R, C), (s0, d0, 1, 1)) <= 1
    r0, c0, R, C = regions[-1]
    assert c0 + C <= cfg.cols and all(r[0] + r[2] <= cfg.rows for r in regions)


def test_too_many_layers_for_the_columns_are_refused_with_the_count():
    cfg = WaferConfig.small(8, 3)
    with pytest.raises(SramOverflowError, match=r"4 layers need at least 4 columns"):
        training.balance(_layers([(8, 8)] * 4), cfg, 4)


def _full_scan_profile(W, stats, cfg, batch):
    """Every candidate row count at every width, no bound: what width_profile prunes."""
    M, K = W.shape
    cand_r = geometric(min(cfg.rows, M), 8)
    ops = training.assumed_operands(W, stats, batch)
    profile, best = [], ((cand_r[-1], 1), np.inf)
    for C in geometric(min(cfg.cols, K), 8):
        for R in cand_r:
            t = training.forward_estimate(W, stats, cfg, (0, 0, R, C), batch, ops)
            if t < best[1]:
                best = ((R, C), t)
        profile.append((C, *best))
    return profile


@pytest.mark.parametrize("m, k, density, rows, cols", [
    (300, 200, 0.1, 32, 32), (64, 512, 0.3, 64, 48), (48, 40, 1.0, 16, 16), (10, 300, 0.1, 8, 64),
])
def test_the_bound_prunes_nothing_the_full_scan_would_pick(m, k, density, rows, cols):
    W = sp.random(m, k, density=density, random_state=m, format="csr", dtype=np.float32)
    cfg, stats = WaferConfig.small(rows, cols), WeightStats(W)
    assert training.width_profile(W, stats, cfg, 16) == _full_scan_profile(W, stats, cfg, 16)


def test_layers_of_one_structure_share_a_profile_and_others_do_not(monkeypatch):
    calls = []
    profile = training.width_profile
    monkeypatch.setattr(training, "width_profile",
                        lambda W, *a: calls.append(W.shape) or profile(W, *a))
    a = _layers([(16, 24)])[0][1]
    twin = a.copy()
    twin.data = twin.data * 3 + 1                 # other values, the same places
    other = _layers([(16, 24)], density=0.5)[0][1]
    layers = [(n, W, WeightStats(W)) for n, W in (("a", a), ("twin", twin), ("other", other))]
    regions = training.balance(layers, WaferConfig.small(16, 48), 8)
    assert len(calls) == 2
    assert regions[0][2:] == regions[1][2:]


def test_idle_columns_would_make_no_layer_faster():
    """Columns the bottleneck leaves idle go to the other layers (the estimate is not the
    real step): at the end no layer has a faster rectangle within its width plus the idle
    columns."""
    cfg = WaferConfig.small(16, 64)
    layers = _layers([(24, 40), (48, 24), (10, 48)])
    regions = training.balance(layers, cfg, 16)
    idle = cfg.cols - sum(r[3] for r in regions)
    for (_, W, s), (_, _, R, C) in zip(layers, regions):
        now = training.forward_estimate(W, s, cfg, (0, 0, R, C), 16)
        faster = [e for e in training.width_profile(W, s, cfg, 16)
                  if e[1][1] <= C + idle and e[2] < now]
        assert not faster
