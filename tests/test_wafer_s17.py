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


# -- 2. a saved report loads back --------------------------------------------------------
def _same(a, b, path="report"):
    """Equal value by value and type by type (arrays: dtype, shape, NaN where NaN)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, (float, np.floating)) and np.isnan(a):
        assert np.isnan(b), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _same_report(a, b):
    import dataclasses
    for f in dataclasses.fields(a):
        _same(getattr(a, f.name), getattr(b, f.name), f.name)


def _reports():
    W, X = _operands(48, 40, 3, 0.2)
    wafer = Wafer(WaferConfig.small(4, 4))
    out = [wafer.spmm(W, X, mapping=m, mode=mode)[1]
           for m in ("weight-stationary", "activation-stationary") for mode in ("analytic",
                                                                                "event")]
    out += [wafer.spmm(W, X[:, 0], mapping="meshgemv", mode=mode)[1]
            for mode in ("analytic", "event")]
    out += [wafer.spmm(W, X, region=(1, 1))[1], wafer.matmul(np.ones((8, 8)), np.ones((8, 4)))[1],
            wafer.matmul(np.ones((8, 8)), np.ones((8, 4)), mapping="summa")[1],
            wafer.sddmm(np.ones((48, 2)), np.ones((40, 2)), W)[1]]
    out.append(out[0] + out[2])
    return out


REPORTS = _reports()


@pytest.mark.parametrize("i", range(len(REPORTS)),
                         ids=[f"{r.mapping}-{r.details.get('mode', 'analytic')}" for r in REPORTS])
def test_a_saved_report_loads_back_field_by_field(i, tmp_path):
    """Every field, the per-PE maps and the details' arrays with their dtypes, tuples and
    NumPy scalars; through from_dict and through a file."""
    r = REPORTS[i]
    again = wsekern.SimReport.from_dict(r.to_dict(exact=True))
    _same_report(again, r)
    path = r.save(tmp_path / "r.json")
    loaded = wsekern.load_report(path)
    _same_report(loaded, r)
    assert str(loaded) == str(r) and loaded.to_dict() == r.to_dict()


def test_a_report_with_nan_and_odd_values_loads_back(tmp_path):
    import dataclasses
    r = REPORTS[0]
    odd = dataclasses.replace(
        r, busy_cycles=np.where(r.busy_cycles > 0, np.nan, -np.inf),
        energy_joules=np.float32(1.5), details={"k": (1, np.int16(-3), [np.bool_(True)]),
                                                "empty": np.zeros((0, 3), np.uint8),
                                                "__wsekern__": "not a tag", "inf": float("inf")},
        problem={3: "int key"})
    _same_report(wsekern.load_report(odd.save(tmp_path / "odd.json")), odd)


def test_save_is_atomic_and_refuses_what_it_cannot_keep(tmp_path):
    """A report holding an object it cannot write leaves the file as it was."""
    import dataclasses
    path = REPORTS[0].save(tmp_path / "r.json")
    before = path.read_bytes()
    bad = dataclasses.replace(REPORTS[1], details={"f": object()})
    with pytest.raises(ValueError, match="object cannot be saved"):
        bad.save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_cli_save_writes_what_load_report_reads(tmp_path, capsys):
    import json

    from wsekern.cli import main
    path = tmp_path / "cli.json"
    args = ["simulate", "spmm", "--m", "60", "--k", "40", "--n", "4", "--wafer", "small"]
    assert main(args + ["--json", "--save", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    loaded = wsekern.load_report(path)
    assert loaded.to_dict() == printed
    assert loaded.problem["operands"]["W"]["shape"] == [60, 40]
    (tmp_path / "summary.json").write_text(json.dumps(printed))      # --json's summary
    with pytest.raises(ValueError, match="summary.*--save"):
        wsekern.load_report(tmp_path / "summary.json")


def _array(dtype="<f8", shape=(4, 4), data=None):
    import base64
    import zlib
    if data is None:
        data = np.zeros(shape, dtype).tobytes()
    return {"__wsekern__": "ndarray", "dtype": dtype, "shape": list(shape),
            "zlib_base64": base64.b64encode(zlib.compress(data)).decode()}


@pytest.mark.parametrize("make, match", [   # make(the saved dict) -> the hostile one
    (lambda d: dict(d, version=2), "version 2"),
    (lambda d: dict(d, version=True), "version True"),
    (lambda d: dict(d, format="other"), "'other'"),
    (lambda d: {"cycles": 1.0}, "format"),
    (lambda d: [], "dict"),
    (lambda d: {k: v for k, v in d.items() if k != "region"}, r"missing \['region'\]"),
    (lambda d: dict(d, extra=1), r"unknown \['extra'\]"),
    (lambda d: dict(d, cycles="12"), "cycles must be a number"),
    (lambda d: dict(d, macs_dense=1.5), "macs_dense must be a whole number"),
    (lambda d: dict(d, macs_dense=True), "macs_dense must be a whole number"),
    (lambda d: dict(d, bottleneck="slow"), "bottleneck must be one of"),
    (lambda d: dict(d, region=[0, 0, 4, 4]), "region must be 4 whole numbers"),
    (lambda d: dict(d, busy_cycles=_array(shape=(4, 5))), "per-PE maps"),
    (lambda d: dict(d, busy_cycles=_array("|O")), "dtype '|O'"),
    (lambda d: dict(d, busy_cycles=_array(">f8")), "dtype '>f8'"),
    (lambda d: dict(d, busy_cycles=_array(data=b"\0" * 8)), "needs 128 B"),
    (lambda d: dict(d, busy_cycles=_array(data=b"\0" * 10 ** 6)), "needs 128 B"),   # zip bomb
    (lambda d: dict(d, busy_cycles=_array(shape=(10 ** 6,) * 2, data=b"")), "larger than any"),
    (lambda d: dict(d, busy_cycles=_array(shape=(-4, 4), data=b"")), "shape must be"),
    (lambda d: dict(d, busy_cycles={**_array(), "zlib_base64": "%%%"}), "not zlib-compressed"),
    (lambda d: dict(d, busy_cycles={**_array(), "zlib_base64": 7}), "not zlib-compressed"),
    (lambda d: dict(d, details={"__wsekern__": "pickle", "items": []}), "unknown saved kind"),
    (lambda d: dict(d, details={"__wsekern__": "scalar", "dtype": "<i1", "value": 300}),
     "not a int8"),
    (lambda d: dict(d, details={"__wsekern__": "dict", "items": [[[1], 2]]}), "hashable"),
])
def test_from_dict_refuses_what_is_not_a_saved_report(make, match):
    d = make(REPORTS[0].to_dict(exact=True))
    with pytest.raises(ValueError, match=match):
        wsekern.SimReport.from_dict(d)


HOSTILE_FILES = r'''
import json, sys, wsekern
from wsekern.wafer.report import SimReport
path = sys.argv[1]
good = open(path, "rb").read()
cases = {"truncated": good[: len(good) // 2], "empty": b"", "binary": b"\xff\xfe\x00",
         "nested lists": b"[" * 200000 + b"]" * 200000,
         "nested dicts": b'{"a":' * 200000 + b"1" + b"}" * 200000,
         "nested details": json.dumps({**json.loads(good), "details": {}}).encode().replace(
             b'"details": {}', b'"details": ' + b'{"a": ' * 500 + b"1" + b"}" * 500)}
for name, data in cases.items():
    open(path, "wb").write(data)
    try:
        wsekern.load_report(path)
        print(name, "LOADED")
    except ValueError as e:
        print(name, "ValueError", str(e)[:120].replace("\n", " "))
'''


def test_hostile_files_are_refused_in_a_child(tmp_path):
    """Truncated, empty, non-UTF-8 and deeply nested files: a ValueError naming the file,
    never a crash (run in a child: a crash would take the test process with it)."""
    import subprocess
    import sys
    path = REPORTS[0].save(tmp_path / "r.json")
    proc = subprocess.run([sys.executable, "-c", HOSTILE_FILES, str(path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 6, proc.stdout
    for line in lines:
        assert " ValueError " in line and "r.json" in line, line
    assert any("not a complete JSON document" in line for line in lines)
    assert any("nested deeper" in line for line in lines)


# -- 3. SUMMA runs only the slices of K that exist -----------------------------------------
@pytest.mark.parametrize("M, K, N, R, C", [
    (64, 4, 64, 8, 8),        # K < steps: 4 steps, not 8
    (64, 8, 64, 8, 8),        # K = steps (a guard: the old count was right)
    (64, 10, 64, 8, 8),       # K > steps, not a multiple: slices 2, 2, 2, 2, 2 (5 steps)
    (64, 64, 64, 8, 8),       # a multiple (a guard)
    (30, 3, 20, 4, 6),        # rectangular, K < steps
    (40, 41, 40, 5, 1),       # slices 9, 9, 9, 9, 5
    (24, 7, 24, 2, 5),        # slices 2, 2, 2, 1
])
def test_summa_counts_only_the_slices_of_k_that_exist(M, K, N, R, C):
    """Reference: a brute force over the slices of K (ceil(K / max(R, C)) deep, the last
    what is left), each a step whose root column (k mod C) broadcasts its A slice along
    every row and whose root row (k mod R) its B slice down every column; each step's
    cycles in closed form from the documented instruction costs; the energy from the
    config's pJ constants. The old model ran max(R, C) full-depth steps whatever K.
    (s18: the grid is the PEs holding a tile of C, each PE's tile what it holds, and a
    dimension of one PE neither broadcasts nor waits for a receive; see test_wafer_s18.)"""
    import math
    cfg = WaferConfig.wse2()
    A = np.random.default_rng(0).random((M, K))
    B = np.random.default_rng(1).random((K, N))
    _, rep = Wafer(cfg).matmul(A, B, region=(R, C), mapping="summa", compute=False)
    Mt, Nt = -(-M // R), -(-N // C)
    M_r = [max(0, min(Mt, M - r * Mt)) for r in range(R)]
    N_c = [max(0, min(Nt, N - c * Nt)) for c in range(C)]
    Rs, Cs = sum(m > 0 for m in M_r), sum(n > 0 for n in N_c)
    steps, vpw = max(Rs, Cs), cfg.values_per_dense_wavelet
    Kt = -(-K // steps)
    slices = [min(Kt, K - k0) for k0 in range(0, K, Kt)]
    assert len(slices) <= steps and sum(slices) == K
    links = np.zeros((R, C, 4))                 # N, E, S, W
    sent = 0
    e, ts = cfg.fabric_elem_cycles, (2 + (Rs > 1) + (Cs > 1)) * cfg.task_switch_cycles
    lat = (steps - 1) * cfg.hop_cycles + cfg.ramp_cycles
    cycles = cfg.launch_cycles + cfg.setup_cycles + math.ceil(Mt * Nt / cfg.lanes) + lat
    for k, d in enumerate(slices):
        s, t = k % Cs, k % Rs
        for r in range(Rs):
            for c in range(Cs):
                a, b = -(-M_r[r] * d // vpw), -(-d * N_c[c] // vpw)
                links[r, c, 1] += a if s <= c < Cs - 1 else 0
                links[r, c, 3] += a if 0 < c <= s else 0
                links[r, c, 2] += b if t <= r < Rs - 1 else 0
                links[r, c, 0] += b if 0 < r <= t else 0
        sent += sum(-(-m * d // vpw) for m in M_r) * (Cs > 1) \
            + sum(-(-n * d // vpw) for n in N_c) * (Rs > 1)
        comp = d * (cfg.setup_cycles + Nt * (cfg.dsd_issue_cycles + math.ceil(Mt / cfg.lanes)))
        comm = cfg.setup_cycles + max(Mt * (Cs > 1), Nt * (Rs > 1)) * d * e + e
        cycles += max(ts + max(comp, comm), lat)
    np.testing.assert_array_equal(rep.link_wavelets[:R, :C], links)
    assert rep.wavelets_sent == sent and rep.wavelet_hops == links.sum()
    assert rep.cycles == pytest.approx(cycles, rel=1e-12)
    pj = (cfg.pj_per_fmac[cfg.dtype] * M * K * N + cfg.pj_per_sram_byte * 3 * cfg.elem_bytes
          * M * K * N + cfg.pj_per_wavelet_hop * links.sum()
          + cfg.static_pj_per_pe_cycle * R * C * cycles)
    assert rep.energy_joules == pytest.approx(pj * 1e-12, rel=1e-12)
    assert rep.cycles_lower <= rep.cycles <= rep.cycles_upper


# -- 4. nothing to multiply is not "compute" -------------------------------------------------
@pytest.mark.parametrize("mode", ["analytic", "event"])
@pytest.mark.parametrize("mapping", ["weight-stationary", "activation-stationary"])
@pytest.mark.parametrize("case", ["W zero", "X zero", "both zero"])
def test_a_run_that_multiplies_nothing_is_bound_by_overhead(case, mapping, mode):
    """A fully sparse W reported "compute" or "scalar" (the multiply-adds or the scalar
    walk set the time) with no multiply-add done. Activation-stationary multiplies X's
    zeros (X is stored dense), so a zero X alone is still compute there."""
    W, X = _operands(48, 40, 3, 0.3)
    if case != "X zero":
        W = sps.csr_array(W.shape, dtype=W.dtype)
    if case != "W zero":
        X = np.zeros_like(X)
    _, r = Wafer(WaferConfig.small(4, 4)).spmm(W, X, mapping=mapping, mode=mode)
    if mapping == "activation-stationary" and case == "X zero":
        assert r.macs_performed > 0 and r.bottleneck == "compute"       # a guard
        return
    assert r.macs_performed == 0 and r.cycles > 0
    assert r.bottleneck == "overhead"
    assert "no multiply-add" in r.explanation()["bottleneck"] and "overhead" in str(r)


def test_an_empty_run_is_bound_by_nothing():
    """An empty X (no columns) or W (no rows) costs no cycles: it said "latency"."""
    W, X = _operands(48, 40, 3, 0.3)
    wafer = Wafer(WaferConfig.small(4, 4))
    for w, x, mode in ((W, X[:, :0], "analytic"), (W[:0], X, "analytic"), (W, X[:, :0], "event")):
        _, r = wafer.spmm(w, x, mode=mode)
        assert r.cycles == 0 and r.bottleneck == "none"
        assert "nothing runs" in r.explanation()["bottleneck"]
    _, r = wafer.matmul(np.ones((0, 4)), np.ones((4, 3)))
    assert r.bottleneck == "none"


def test_dense_mappings_multiplying_zeros_stay_compute_bound():
    """Guard: the resident mapping multiplies W's zeros too: compute is the truth there."""
    W = sps.csr_array((16, 16), dtype=np.float32)
    _, r = Wafer(WaferConfig.small(4, 4)).spmm(W, np.ones((16, 2), np.float32), region=(1, 1))
    assert r.macs_performed == 16 * 16 * 2 and r.bottleneck == "compute"


def test_the_strategy_figures_name_the_reports_bottleneck():
    """activation_stationary_figures (the strategy's per-layer table reads it without the
    report) says what the report says, for a fully sparse W too."""
    from wsekern.wafer import analytic, placement
    cfg, region = WaferConfig.small(8, 8), (0, 0, 4, 4)
    for density in (0.0, 0.3):
        W = sps.random_array((24, 20), density=density, format="csr", dtype=np.float32,
                             random_state=0)
        X = np.zeros((20, 5), bool)
        r = analytic.activation_stationary(W, X, cfg, region, full=False,
                                           ops=placement.Operands(W, X, placement.WeightStats(W)))
        got = analytic.activation_stationary_figures(placement.WeightStats(W), 5, cfg, region)
        assert got == (r.macs_performed, r.macs_dense, r.bottleneck)
        assert r.bottleneck == ("overhead" if density == 0 else "compute")


# -- 5. the step's AVX-512 pass takes sw = NULL -------------------------------------------------
def test_step_blocks_avx512_takes_no_scalar_work_under_sanitizers(tmp_path):
    """wsk_step_blocks_avx512 formed ``sw + r`` and loaded from it with sw NULL (which its
    scalar twin allows): a fault at address 0 on the old code. The C block of
    src/_step_cost.pyx is compiled as it stands, before tests/c/step_blocks_null.c."""
    import os
    import re
    import shutil
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on PATH")
    pyx = (root / "src" / "_step_cost.pyx").read_text()
    block = re.search(r'cdef extern from \*:\n    """\n(.*?wsk_step_blocks_avx512.*?)\n    """',
                      pyx, re.S).group(1)
    src = tmp_path / "step_blocks_null.c"
    src.write_text("#include <stddef.h>\ntypedef ptrdiff_t Py_ssize_t;\n" + block + "\n"
                   + (root / "tests" / "c" / "step_blocks_null.c").read_text())
    exe = tmp_path / "step_blocks_null"
    flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
             "-fno-omit-frame-pointer", "-Wno-psabi"]
    built = subprocess.run([cc, *flags, str(src), "-o", str(exe), "-lm"], capture_output=True,
                           text=True, timeout=300)
    if built.returncode and "sanitize" in built.stderr:
        pytest.skip(f"{cc} builds no sanitizers here: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    env.pop("LD_PRELOAD", None)
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    if ran.stdout.startswith("SKIP"):
        pytest.skip(ran.stdout.strip())
    assert ran.stdout.strip() == "ok"
