"""WaferStrategy's numbers, pinned: seeded runs (an MLP, a sparse MLP, a graph, a CNN, weight
streaming) whose reports, every step's cycles and every step's per-product reports (cycles,
bounds, MACs, traffic, energy, SRAM) must equal the values the per-step costing gave before
it was made fast (tests/data/strategy_golden.json). Integers and strings exactly, floats to
rel 1e-12.

Regenerate (only when a change to the cost model is intended):
``python tests/test_strategy_golden.py --write``.
"""
import json
import math
import pathlib
import sys

import numpy as np
import pytest

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L

GOLDEN = pathlib.Path(__file__).parent / "data" / "strategy_golden.json"
STEPS = 3
BATCH = 16


def _mlp(sparsity):
    return nn.Sequential([L.Dense(48, activation="relu", input_shape=(40,), sparsity=sparsity,
                                  name="d1"),
                          L.Dense(24, activation="relu", name="d2"),
                          L.Dense(10, activation="softmax", name="d3")])


def _graph():
    inp = nn.Input(shape=(40,))
    a = L.Dense(32, activation="relu", name="a")(inp)
    b = L.Dense(24, activation="relu", name="b")(a)
    c = L.Dense(24, activation="relu", name="c", sparsity=0.7)(a)
    out = L.Dense(10, activation="softmax", name="out")(L.add([b, c]))
    return nn.Model(inp, out)


def _cnn():
    return nn.Sequential([nn.Input((10, 10, 2)),
                          L.Conv2D(6, 3, activation="relu", padding="same", name="c1"),
                          L.Conv2D(8, 3, activation="relu", sparsity=0.5, name="c2"),
                          L.Flatten(name="flat"), L.Dense(10, activation="softmax", name="d")])


MODELS = {"mlp": (_mlp, (0.0,), (40,)), "sparse_mlp": (_mlp, (0.8,), (40,)),
          "graph": (_graph, (), (40,)), "cnn": (_cnn, (), (10, 10, 2))}
CONFIGS = {"wse2": lambda: wk.WaferConfig.wse2(), "small": lambda: wk.WaferConfig.small(16, 16)}
CASES = [(m, c, None) for m in MODELS for c in CONFIGS] + [
    ("mlp", "small", "weight-streaming"), ("cnn", "small", "weight-streaming")]


def _case_id(case):
    model, config, mode = case
    return f"{model}-{config}" + (f"-{mode}" if mode else "")


def _report(r):
    d = r.to_dict()
    for k in ("explanation", "seconds", "utilization", "pes", "clock_hz", "dtype",
              "fmac_per_cycle", "problem"):
        d.pop(k)                # words, the config's constants, ratios of numbers kept here
    d["terms"] = r.details.get("terms")
    return d


def run_case(model_name, config_name, mode):
    """The numeric content of a seeded run: the report, each step's cycles, and each
    step's per-product reports of every placed layer."""
    build, args, shape = MODELS[model_name]
    nn.utils.set_random_seed(0)
    strategy = wk.WaferStrategy(CONFIGS[config_name](), mode=mode)
    with strategy.scope():
        model = build(*args)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(7)
    steps = []
    for _ in range(STEPS):
        x = (rng.random((BATCH,) + shape) - 0.3).astype(np.float32)
        model.train_on_batch(x, rng.integers(0, 10, BATCH))
        steps.append({"cycles": strategy.step_cycles[-1], "layers": [
            {"useful": p.last_useful, "input_nnz": p.last_input_nnz,
             "latency": p.last_latency,
             "reports": {k: _report(r) for k, r in sorted(p.reports.items())}}
            for p in strategy.placements]})
    report = model.wafer_report().to_dict()
    report.pop("cpu_samples_per_s")          # measured, not simulated
    report["steps"] = strategy.steps
    report["samples"] = strategy.samples
    return {"report": report, "steps": steps}


def _plain(value):
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(type(v).__name__)


def assert_same(got, want, path="run"):
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), path
        for k in want:
            assert_same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert isinstance(got, (int, float)), path
        assert got == want or math.isclose(got, want, rel_tol=1e-12, abs_tol=0.0), \
            f"{path}: {got!r} != {want!r}"
    else:
        assert type(got) is type(want) and got == want, f"{path}: {got!r} != {want!r}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_strategy_numbers_are_unchanged(case):
    want = json.loads(GOLDEN.read_text())[_case_id(case)]
    assert_same(_plain(run_case(*case)), want)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.parent.mkdir(exist_ok=True)
    runs = {_case_id(c): _plain(run_case(*c)) for c in CASES}
    lines = [json.dumps(k) + ": " + json.dumps(v, sort_keys=True, separators=(",", ":"))
             for k, v in runs.items()]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
