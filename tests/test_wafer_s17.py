"""s17 wafer: the two modes cost the same program; reports load back; SUMMA's short K;
what a run with nothing to compute is bound by. Each test failed on main eedefa4 unless
its docstring says it is a guard."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern
from wsekern import Wafer, WaferConfig


def _operands(M=64, K=64, N=4, density=0.1, seed=0):
    W = sps.random_array((M, K), density=density, format="csr", dtype=np.float32,
                         random_state=seed)
    X = np.maximum(np.random.default_rng(seed).standard_normal((K, N)), 0).astype(np.float32)
    return W, X


# -- 1. one mapping choice, both modes ----------------------------------------------------
def test_event_mode_refuses_the_resident_mapping_it_cannot_simulate():
    """region=(1, 1) with no mapping is the resident mapping in analytic mode; event mode
    used to run weight-stationary there instead, silently (4,398 against 7,940 cycles)."""
    W, X = _operands()
    wafer = Wafer(WaferConfig.wse2())
    _, r = wafer.spmm(W, X, region=(1, 1))
    assert r.mapping == "resident"
    with pytest.raises(ValueError, match=r"resident.*mapping='weight-stationary'"):
        wafer.spmm(W, X, region=(1, 1), mode="event")
    x = np.maximum(np.random.default_rng(1).standard_normal((1, 2, 5, 5)), 0)
    w = np.random.default_rng(2).standard_normal((3, 2, 3, 3))
    with pytest.raises(ValueError, match="resident"):
        wafer.conv2d(x, w, padding=1, region=(1, 1), mode="event")


@pytest.mark.parametrize("region", [(1, 1), (1, 2), (2, 1), (2, 2), (1, 3, 1, 1)])
@pytest.mark.parametrize("mapping", [None, "weight-stationary", "activation-stationary"])
@pytest.mark.parametrize("op", ["spmm", "conv2d"])
def test_both_modes_cost_the_same_mapping_and_agree_within_the_bounds(op, region, mapping):
    """Guard (passes on the old code except where region is 1x1 and no mapping is named):
    the event run is of the mapping and region the analytic report names, and its
    cycles lie within the analytic bounds (the documented tolerance between the modes)."""
    wafer = Wafer(WaferConfig.small(4, 4))
    if op == "spmm":
        W, X = _operands(48, 40, 3, 0.2)
        run = lambda mode: wafer.spmm(W, X, region=region, mapping=mapping, mode=mode)  # noqa: E731
    else:
        x = np.maximum(np.random.default_rng(1).standard_normal((1, 2, 5, 5)), 0)
        w = np.random.default_rng(2).standard_normal((3, 2, 3, 3))
        w[np.abs(w) < 0.5] = 0
        run = lambda mode: wafer.conv2d(x, w, padding=1, region=region,  # noqa: E731
                                        mapping=mapping, mode=mode)
    y_a, a = run("analytic")
    if region[-2:] == (1, 1) and mapping is None:
        assert a.mapping == "resident"
        with pytest.raises(ValueError, match="resident"):
            run("event")
        return
    y_e, e = run("event")
    assert (e.mapping, e.region) == (a.mapping, a.region)
    assert a.cycles_lower <= e.cycles <= a.cycles_upper
    np.testing.assert_allclose(y_e, y_a, rtol=1e-5, atol=1e-5)


def test_matmul_on_one_pe_runs_the_mapping_it_is_given():
    """matmul(region=(1, 1)) ran the resident mapping whatever ``mapping`` said, and took
    an unknown mapping name without a word."""
    wafer = Wafer(WaferConfig.small(4, 4))
    A, B = np.ones((8, 8)), np.ones((8, 3))
    assert wafer.matmul(A, B, region=(1, 1))[1].mapping == "resident"
    for m in ("summa", "meshgemm"):
        _, r = wafer.matmul(A, B, region=(1, 1), mapping=m)
        assert r.mapping == m and r.region == (0, 0, 1, 1)
    with pytest.raises(ValueError, match="'bogus'"):
        wafer.matmul(A, B, region=(1, 1), mapping="bogus")
