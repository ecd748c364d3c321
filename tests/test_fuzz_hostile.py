"""Hostile input in child processes: a segfault, an abort or a hang fails a test, it does
not kill the run. Cases live in hostile.py; each batch runs in one child under a 4 GB
address-space limit and a timeout; when the child dies, its cases are re-run one by one
to name the culprit."""
import json
import os
import pickle
import subprocess
import sys

import hostile
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TIMEOUT_S = 120
HERE = os.path.dirname(os.path.abspath(__file__))


def _run_child(cases, tmp_path):
    """(results by index, returncode, stderr) of one child running ``cases``."""
    path = tmp_path / f"cases-{os.getpid()}-{id(cases)}.pkl"
    with open(path, "wb") as f:
        pickle.dump(cases, f)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    try:
        proc = subprocess.run([sys.executable, os.path.join(HERE, "hostile.py"), str(path)],
                              capture_output=True, text=True, timeout=TIMEOUT_S, env=env,
                              cwd=str(tmp_path))
    except subprocess.TimeoutExpired:
        return {}, "timeout", ""
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[r["i"]] = r
    return results, proc.returncode, proc.stderr[-3000:]


def run_batch(cases, tmp_path):
    """Run ``cases`` ((name, spec) pairs) in a child; fail naming every bad case."""
    results, rc, err = _run_child(cases, tmp_path)
    failures = []
    if rc != 0 or len(results) != len(cases):
        for i, case in enumerate(cases):        # the child died: find who killed it
            one, rc1, err1 = _run_child([case], tmp_path)
            if rc1 != 0 or 0 not in one:
                failures.append(f"{_label(case)}: child exited with {rc1}: {err1[-800:]}")
            elif not one[0]["ok"]:
                failures.append(f"{_label(case)}: {one[0]['error']}")
    else:
        failures = [f"{_label(cases[i])}: {r['error']}" for i, r in results.items()
                    if not r["ok"]]
    assert not failures, "\n".join(failures)


def _label(case):
    name, spec = case
    if name != "raw":
        return name
    return f"raw {spec['fmt']} via {spec['entry']}, shape {spec['shape']}: {spec['raw']!r}"


def test_named_hostile_cases(tmp_path):
    """Every defect of issue 12 on the kernel side, reproduced by name, in one child."""
    run_batch([(name, None) for name in hostile.NAMED], tmp_path)


# -- generated malformed formats -------------------------------------------------------------
ENTRIES = ["spmm", "spmm-T", "pack", "sddmm", "wafer"]
INDEX_DTYPES = [np.int32, np.int64, np.uint32, np.int8, np.uint8, np.int16]


@st.composite
def raw_case(draw):
    M, K = draw(st.integers(0, 5)), draw(st.integers(0, 5))
    fmt = draw(st.sampled_from(["coo", "csr", "csc", "lil", "dia"]))
    idx = st.integers(-3, 8) if draw(st.booleans()) else st.integers(-(2**31), 2**31 - 1)
    dtype = draw(st.sampled_from(INDEX_DTYPES))

    def ints(n, elements=idx):
        vals = draw(st.lists(elements, min_size=n, max_size=n))
        if np.dtype(dtype).kind == "u":
            vals = [v for v in vals if v >= 0] or [0] * n
        return np.array(vals, dtype=np.int64).astype(dtype)

    nnz = draw(st.integers(0, 7))
    values = lambda n: np.arange(1.0, n + 1)                        # noqa: E731
    if fmt == "coo":
        raw = {"row": ints(nnz), "col": ints(nnz + draw(st.sampled_from([0, 0, 0, 1]))),
               "data": values(nnz + draw(st.sampled_from([0, 0, 0, -1])) if nnz else 0)}
    elif fmt in ("csr", "csc"):
        n_major = M if fmt == "csr" else K
        if draw(st.booleans()):     # a plausible indptr, often valid
            counts = draw(st.lists(st.integers(0, 3), min_size=n_major, max_size=n_major))
            indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64).astype(dtype)
        else:
            indptr = ints(draw(st.integers(0, n_major + 2)))
        n_ind = int(indptr[-1]) if len(indptr) and 0 <= int(indptr[-1]) < 20 else nnz
        n_ind += draw(st.sampled_from([0, 0, 0, 1]))
        raw = {"indptr": indptr, "indices": ints(n_ind, st.integers(-2, 6)),
               "data": values(n_ind)}
    elif fmt == "lil":
        n_rows = M + draw(st.sampled_from([0, 0, 0, -1, 1]))
        rows = [draw(st.lists(st.integers(-2, 7), max_size=3)) for _ in range(max(n_rows, 0))]
        vals = [[1.0 + i] * (len(r) + draw(st.sampled_from([0, 0, 0, 1])))
                for i, r in enumerate(rows)]
        raw = {"rows": rows, "vals": vals}
    else:
        n_off = draw(st.integers(0, 3))
        offsets = ints(n_off, st.integers(-12, 12) if draw(st.booleans()) else idx)
        L = draw(st.integers(0, 7))
        n_data = n_off + draw(st.sampled_from([0, 0, 0, 1]))
        raw = {"offsets": offsets, "data": np.arange(1.0, n_data * L + 1).reshape(n_data, L)}
    return ("raw", {"fmt": fmt, "raw": raw, "shape": (M, K),
                    "entry": draw(st.sampled_from(ENTRIES))})


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(cases=st.lists(raw_case(), min_size=40, max_size=40))
def test_malformed_formats_at_every_entry_point(cases, tmp_path):
    """COO, CSR, CSC, LIL and DIA raw arrays (lengths, ranges, order, dtypes all drawn)
    through spmm, spmm(transpose), pack, sddmm and Wafer.spmm: the answer of an explicit
    loop over the raw arrays, or a clear ValueError/TypeError when they describe no
    matrix. 40 cases per child."""
    run_batch(cases, tmp_path)


def test_runner_names_a_case_that_kills_the_child(tmp_path):
    """The harness itself: a segfaulting case fails with its name, not a dead run."""
    cases = [("raw", {"fmt": "coo", "raw": {"row": np.array([0]), "col": np.array([0]),
                                            "data": np.array([1.0])},
                      "shape": (1, 1), "entry": "spmm"}), ("segfault", None)]
    with pytest.raises(AssertionError, match="segfault: child exited with -11"):
        run_batch(cases, tmp_path)
