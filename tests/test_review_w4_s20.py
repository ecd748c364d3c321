"""review_w4 (session 20): fresh eyes on wafer20's whole-cycle link and acct20's fused
step chain. The event engine, closed forms and the Python recurrence are the references."""
import numpy as np
import pytest

from wsekern import Wafer, WaferConfig


def _both(cfg, W, X, region, mapping="weight-stationary"):
    _, a = Wafer(cfg).spmm(W, X, mapping=mapping, region=region, compute=False)
    _, e = Wafer(cfg).spmm(W, X, mapping=mapping, region=region, mode="event")
    return a, e


# (rate, the rate of the whole cycles a wavelet the engine takes at it): a reciprocal a
# few parts in 1e10 above a whole number is not that number to the engine (t + dt, t
# whole, keeps the excess until t is ~1e9 cycles, so ceil takes the next cycle), while
# one an ulp or two above it is lost at once (1 / (1 / 49) is 49.00000000000001)
HAIR = [(0.4999999999, 1 / 3), (0.3333333333, 0.25), (0.9999999996, 0.5),
        (0.09999999999, 1 / 11), (0.04999999995, 1 / 21), (0.01999999999, 1 / 51),
        (0.0123, 1 / 82), (1 / 3, 1 / 3), (0.1, 0.1)]


@pytest.mark.parametrize("rate, same", HAIR)
@pytest.mark.parametrize("M, K", [(16, 8), (2, 2), (16, 8 * 2)])
def test_a_link_a_hair_slower_than_whole_is_costed_as_the_next_whole_cycle(M, K, rate, same):
    """The event at such a rate is the event at the rate of the next whole cycle a
    wavelet, and so are the estimate and lower bound (before: _link_dt's tolerance of
    1e-9 relative took the whole number below, the estimate up to 1.6x below the event
    in wafer20's fuzz at 0.4999999999)."""
    W = np.ones((M, K), np.float32)
    X = np.ones((K, 1), np.float32)
    got = _both(WaferConfig.wse2(rows=4, cols=4, link_wavelets_per_cycle=rate), W, X, (1, 2))
    want = _both(WaferConfig.wse2(rows=4, cols=4, link_wavelets_per_cycle=same), W, X, (1, 2))
    assert got[1].cycles == want[1].cycles
    assert got[0].cycles == want[0].cycles, (got[0].cycles, want[0].cycles)
    assert got[0].cycles_lower == want[0].cycles_lower


def test_an_unpickled_config_with_a_fraction_of_a_cycle_is_refused_as_a_new_one_is():
    """A WaferConfig pickled before wafer20 (hop_cycles 0.5: the event then above the
    upper bound) is checked on load: the same error as WaferConfig(hop_cycles=0.5). A
    valid one round-trips equal, through pickle and copy."""
    import copy
    import pickle
    cfg = WaferConfig.wse3(rows=16, cols=16, dtype="fp32", queue_depth=1)
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert copy.deepcopy(cfg) == cfg and copy.copy(cfg) == cfg
    old = copy.copy(cfg)
    object.__setattr__(old, "hop_cycles", 0.5)          # as an older release stored it
    blob = pickle.dumps(old)
    with pytest.raises(ValueError, match=r"hop_cycles must be a whole number of cycles.*"
                                         r"received 0\.5: take 0 or 1"):
        pickle.loads(blob)
