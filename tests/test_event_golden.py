"""The event engine's numbers, pinned bit for bit: seeded runs over grids, both stationary
mappings, densities, dtypes, machines, queue depths, a trace, the collectives and the Wafer
API's spmm and conv2d, whose every reported number (cycles, per-PE busy and stall maps, link
traffic, MACs performed and skipped, energy, bottleneck, terms, events, the result Y) must
hash to what the engine gave before its inner loop was made fast
(tests/data/event_golden.json). A change to the engine's speed must keep these identical.

Regenerate (only when a change to the event model is intended):
``python tests/test_event_golden.py --write``; ``--scale`` also checks (or, with
``--write``, records) the two SCALE_CASES of wafer/validate.py, a minute or more each.
"""
import hashlib
import json
import pathlib
import sys

import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern import workloads
from wsekern.wafer import event
from wsekern.wafer.config import WaferConfig

GOLDEN = pathlib.Path(__file__).parent / "data" / "event_golden.json"


def _digest(a):
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(str((a.dtype.str, a.shape)).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:24]


def _walk(v):
    """Every number of a report's value: floats by repr (bit-exact), arrays by digest."""
    if isinstance(v, np.ndarray):
        return _digest(v)
    if isinstance(v, dict):
        return {str(k): _walk(x) for k, x in sorted(v.items())
                if k not in ("wall_seconds", "cpu_seconds", "events_per_second",
                              "events_per_cpu_second")}
    if isinstance(v, (list, tuple)):
        return [_walk(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    return v


def fingerprint(Y, rep):
    """The numeric content of an event run: the result and every field of its report."""
    out = {"Y": _digest(np.asarray(Y))}
    for name in ("cycles", "cycles_lower", "cycles_upper", "macs_dense", "macs_useful",
                 "macs_performed", "macs_skipped_weight", "macs_skipped_activation",
                 "busy_cycles", "sram_bytes", "link_wavelets", "wavelets_sent",
                 "energy_joules", "bottleneck", "region", "mapping"):
        out[name] = _walk(getattr(rep, name))
    out["details"] = _walk(rep.details)
    return out


def _problem(M, K, N, w_density, x_density, seed):
    rng = np.random.default_rng(seed)
    W = sps.random_array((M, K), density=w_density, format="csr", rng=rng,
                         data_sampler=rng.standard_normal)
    X = rng.standard_normal((K, N)) * (rng.random((K, N)) < x_density)
    return W, X


def _direct(simulate, M, K, N, wd, xd, config, grid, seed, **kw):
    def run():
        W, X = _problem(M, K, N, wd, xd, seed)
        return fingerprint(*simulate(W, X, config(), (0, 0) + grid, **kw))
    return run


def _wafer_spmm():
    rng = np.random.default_rng(3)
    W = sps.random_array((96, 80), density=0.2, format="csr", rng=rng).astype(np.float32)
    X = (rng.standard_normal((80, 6)) * (rng.random((80, 6)) > 0.5)).astype(np.float32)
    return fingerprint(*wk.Wafer(WaferConfig.small(8, 8)).spmm(W, X, mode="event"))


def _wafer_conv():
    rng = np.random.default_rng(4)
    x = np.maximum(rng.standard_normal((2, 3, 10, 10)), 0).astype(np.float32)
    k = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    return fingerprint(*wk.Wafer(WaferConfig.small(8, 8)).conv2d(x, k, b, padding=1, stride=2,
                                                                   mode="event"))


def _collectives():
    out = {}
    for config, name in ((WaferConfig.wse2(), "wse2"), (WaferConfig.wse3(), "wse3")):
        for P, K, topology in ((8, 3, "chain"), (16, 2, "tree"), (5, 1, "chain")):
            T, vec = event.reduce_row(config, P, K, topology)
            out[f"{name}-{P}-{K}-{topology}"] = [repr(float(T)), _digest(vec)]
        out[f"{name}-relay"] = repr(float(event.relay(config, 4, 9)))
    return out


WS, AS = event.weight_stationary, event.activation_stationary
SMALL16 = lambda **kw: lambda: WaferConfig.small(16, 16, **kw)   # noqa: E731
CASES = {
    "ws-fp16-8x8": _direct(WS, 256, 256, 8, 0.05, 0.5, SMALL16(), (8, 8), 1),
    "ws-fp32-4x6": _direct(WS, 200, 150, 5, 0.1, 0.3, SMALL16(dtype="fp32"), (4, 6), 2),
    "ws-compressed-wse2-16x16": _direct(WS, 1024, 1024, 3, 0.01, 0.5, WaferConfig.wse2,
                                        (16, 16), 3),
    "ws-wse3-12x5": _direct(WS, 300, 400, 4, 0.2, 0.4, WaferConfig.wse3, (12, 5), 4),
    "ws-queue1-backpressure": _direct(WS, 128, 128, 6, 0.3, 0.8,
                                      SMALL16(queue_depth=1), (4, 4), 5),
    "ws-trace-3x3": _direct(WS, 60, 60, 3, 0.3, 0.5, SMALL16(), (3, 3), 6, trace=True),
    "ws-reduction-2x16": _direct(WS, 640, 64, 8, 0.9, 0.9, SMALL16(), (2, 16), 10),
    "ws-x-all-zero": _direct(WS, 50, 40, 3, 0.5, 0.0, SMALL16(dtype="fp32"), (3, 2), 11),
    "as-fp16-6x4": _direct(AS, 120, 90, 16, 0.1, 0.9, SMALL16(), (6, 4), 7),
    "as-fp32-wse3-5x3": _direct(AS, 80, 100, 9, 0.2, 1.0, lambda: WaferConfig.wse3(dtype="fp32"),
                                (5, 3), 8),
    "as-trace-2x3": _direct(AS, 30, 40, 6, 0.3, 1.0, SMALL16(), (2, 3), 9, trace=True),
    "wafer-spmm-event": _wafer_spmm,
    "wafer-conv2d-event": _wafer_conv,
    "collectives": _collectives,
}


def scale_case(n, density, grid):
    """validate.SCALE_CASES's run (same operands, WSE-2, whole grid x grid region)."""
    W = workloads.random_weight(n, n, 1 - density, dtype=np.float64, seed=0)
    x = workloads.pruned((n, 1), 0.5, 1, dtype=np.float64)
    return fingerprint(*event.weight_stationary(W, x, WaferConfig.wse2(), (0, 0, grid, grid)))


def _golden():
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_event_numbers_unchanged(name):
    assert CASES[name]() == _golden()[name]


if __name__ == "__main__":
    from wsekern.wafer.validate import SCALE_CASES
    write, scale = "--write" in sys.argv, "--scale" in sys.argv
    got = {name: run() for name, run in CASES.items()}
    old = _golden() if GOLDEN.exists() else {}
    if scale:
        for case in SCALE_CASES:
            got["scale-%d-%g-%d" % case] = scale_case(*case)
    else:
        got.update({k: v for k, v in old.items() if k.startswith("scale-")})
    if write:
        tmp = GOLDEN.with_suffix(".tmp")
        tmp.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        tmp.replace(GOLDEN)
        print(f"wrote {len(got)} cases to {GOLDEN}")
    else:
        bad = [k for k in got if old.get(k) != got[k]]
        print("identical" if not bad else f"DIFFERENT: {bad}")
        sys.exit(1 if bad else 0)
