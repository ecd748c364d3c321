"""Review of s17's merge (wafer17's saved reports and SUMMA, the lead's conv padding strings):
what the review found, each test failing on the code before its fix (or marked a guard)."""
import json
import subprocess
import sys

import numpy as np
import pytest

import wsekern
from wsekern import Wafer, WaferConfig

# -- saved reports: a file that loads must also print, add and save ----------------------
# Each mutation of a saved report's dict was loaded by load_report before the fix, and then
# str(report) raised KeyError/TypeError/AttributeError/OverflowError/ZeroDivisionError (or
# NumPy's bare "Maximum allowed dimension exceeded"). The problem is free-form (a hand-made
# report may hold anything there), so it loads and prints as recorded; the numbers the
# report divides by are refused. Run in a child: hostile input.
HOSTILE_FIELDS = r'''
import copy, json, os, sys, tempfile, numpy as np, wsekern
_, rep = wsekern.Wafer(wsekern.WaferConfig.small(4, 4)).spmm(
    np.eye(8, dtype=np.float32), np.ones((8, 2), np.float32))
base = rep.to_dict(exact=True)
empty = {"__wsekern__": "ndarray", "dtype": "<f8", "shape": [0, 10**30],
         "zlib_base64": "eJwDAAAAAAE="}
cases = {
    "problem": {"op": "spmm"},
    "problem ": {"sequence": 5},
    "problem  ": {"op": "x", "operands": [1], "config": {}},
    "problem   ": {"op": "x", "operands": {"W": {"shape": "8x8"}}, "config": {}},
    "problem    ": {"op": "sequence", "sequence": [3, {"op": 5}]},
    "cycles": 10**400,
    "clock_hz": 0,
    "macs_performed": 10**400,
    "busy_cycles": empty,
}
for name, value in cases.items():
    d = copy.deepcopy(base)
    d[name.strip()] = value
    path = os.path.join(tempfile.mkdtemp(), "r.json")
    with open(path, "w") as f:
        json.dump(d, f)
    try:
        r = wsekern.load_report(path)
        text = str(r) + str(r + r)
        r.to_dict(), r.explanation()
        print(name.strip(), "loaded", [ln for ln in text.splitlines() if "problem" in ln][0])
    except ValueError as e:
        print(name.strip(), "ValueError", str(e).replace("\n", " "))
# a number past Python's int digit limit: json.loads raises a bare ValueError
path = os.path.join(tempfile.mkdtemp(), "r.json")
with open(path, "w") as f:
    f.write('{"format": "wsekern.SimReport", "version": 1, "cycles": ' + "9" * 5000 + "}")
try:
    wsekern.load_report(path)
except ValueError as e:
    print("digits", "ValueError", str(e).replace("\n", " "))
'''


def test_a_saved_report_that_loads_can_be_printed_or_is_refused():
    proc = subprocess.run([sys.executable, "-c", HOSTILE_FIELDS], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 10, proc.stdout + proc.stderr[-2000:]
    for line in lines:
        name, verdict, message = (line.split(" ", 2) + [""])[:3]
        if name == "problem":
            assert verdict == "loaded" and "as recorded: {" in message, line
        else:
            assert verdict == "ValueError", line
            assert "r.json" in message and (name in message or name == "digits"), line


@pytest.mark.parametrize("mode", ["analytic", "event"])
@pytest.mark.parametrize("padding", ["same", 1])
def test_conv2d_reports_load_back(mode, padding, tmp_path):
    """A guard (passes on the merged code too): wafer17's round trip left conv2d out; its
    problem holds the padding string, and a sum of unlike reports a sequence."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 3, 6, 6))
    w = rng.standard_normal((4, 3, 2, 2)) * (rng.random((4, 3, 2, 2)) < 0.5)
    wafer = Wafer(WaferConfig.small(4, 4))
    r = wafer.conv2d(x, w, padding=padding, mode=mode, mapping="weight-stationary")[1]
    r = r + wafer.matmul(np.ones((8, 8)), np.ones((8, 4)))[1]
    again = wsekern.load_report(r.save(tmp_path / "r.json"))
    assert str(again) == str(r)
    assert json.dumps(again.to_dict()) == json.dumps(r.to_dict())
    assert np.array_equal(again.link_wavelets, r.link_wavelets)


# -- conv2d padding="same": the corners the merged tests leave out -----------------------
@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("hw, k, dilation, groups", [
    ((1, 1), (2, 2), 1, 1),            # input smaller than the kernel
    ((3, 7), (5, 2), (1, 3), 2),       # odd total on one axis, even on the other
    ((5, 6), (1, 4), (2, 2), 2),       # even kernel, even dilation: even totals
])
def test_same_with_bias_and_weight_mask_matches_torch(hw, k, dilation, groups):
    """A guard (passes on the merged code): bias, its gradient and weight_mask with 'same',
    which the lead's tests do not cover, against torch autograd."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4) + hw) * (rng.random((2, 4) + hw) < 0.7)
    w = rng.standard_normal((6, 4 // groups) + k)
    mask = rng.random(w.shape) < 0.5
    b = rng.standard_normal(6)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding="same", dilation=dilation, groups=groups)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    y = wsekern.conv2d(x, w, b, padding="same", dilation=dilation, groups=groups)
    gx, gw, gb = wsekern.conv2d_backward(g, x, w, padding="same", dilation=dilation,
                                         groups=groups, weight_mask=mask)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, tw.grad.numpy() * mask, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert gx.shape == x.shape and gx.flags.c_contiguous


# -- the merged loader tests that could not fail: strengthened --------------------------
def test_a_save_that_fails_while_writing_leaves_the_old_file(tmp_path, monkeypatch):
    """The merged test's save fails before the file is opened, so a save writing in place
    passed it too; here the write itself fails (fsync), after bytes went out."""
    import os
    wafer = Wafer(WaferConfig.small(4, 4))
    first = wafer.matmul(np.ones((8, 8)), np.ones((8, 4)))[1]
    path = first.save(tmp_path / "r.json")
    before = path.read_bytes()

    def broken(fd):
        raise OSError(5, "disk gone")
    monkeypatch.setattr(os, "fsync", broken)
    other = wafer.spmm(np.eye(8), np.ones((8, 2)))[1]
    with pytest.raises(OSError, match="disk gone"):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_zip_bomb_is_not_inflated_past_the_declared_shape():
    """The merged test's 1 MB bomb is refused whether or not decompression is capped; this
    one inflates to 256 MiB, and the decoder may not allocate it (tracemalloc's peak)."""
    import base64
    import tracemalloc
    import zlib
    z = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    packed = b"".join(z.compress(chunk) for _ in range(256)) + z.flush()
    d = Wafer(WaferConfig.small(4, 4)).spmm(np.eye(8), np.ones((8, 2)))[1].to_dict(exact=True)
    d["busy_cycles"] = {"__wsekern__": "ndarray", "dtype": "<f8", "shape": [4, 4],
                        "zlib_base64": base64.b64encode(packed).decode()}
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="needs 128 B"):
            wsekern.SimReport.from_dict(d)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"decoding allocated {peak:,} B"


# -- the CLI's word for the event mode's refusal of the resident mapping ----------------
@pytest.mark.parametrize("op, region", [("spmm", ["1", "1"]), ("conv", ["2", "3", "1", "1"])])
def test_cli_event_mode_on_one_pe_says_which_flag_to_add(op, region, capsys):
    """`simulate --region 1 1 --mode event` exits 2 (since s17); the message used to name
    Python keywords (mapping='weight-stationary', mode='analytic') a shell user cannot type."""
    from wsekern.cli import main
    args = ["simulate", op, "--wafer", "small", "--region", *region, "--mode", "event"]
    args += ["--m", "16", "--k", "16", "--n", "2"] if op == "spmm" else ["--size", "4"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--mapping weight-stationary" in err and "drop --mode event" in err, err
    assert "mapping=" not in err
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    assert "resident single-PE mapping, analytic only" in " ".join(capsys.readouterr().out.split())
    # with a mapping named it runs that program on one PE
    assert main(args + ["--mapping", "weight-stationary", "--json"]) == 0


def test_array_data_with_bytes_after_its_stream_is_refused():
    """The decoder's end-of-stream check (unused_data) had no test: the right bytes followed
    by a second stream or junk are not what save wrote."""
    import base64
    import zlib
    d = Wafer(WaferConfig.small(4, 4)).spmm(np.eye(8), np.ones((8, 2)))[1].to_dict(exact=True)
    for tail in (b"junk", zlib.compress(b"\0" * 8)):
        packed = zlib.compress(np.zeros((4, 4)).tobytes()) + tail
        d["busy_cycles"] = {"__wsekern__": "ndarray", "dtype": "<f8", "shape": [4, 4],
                            "zlib_base64": base64.b64encode(packed).decode()}
        with pytest.raises(ValueError, match=r"busy_cycles: the array data is 128\+ B"):
            wsekern.SimReport.from_dict(d)
