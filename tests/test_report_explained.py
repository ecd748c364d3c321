"""Reports that say what they are a report of and what their figures mean; plots that show
them legibly (wafer/plots.py)."""
import json
import os

import numpy as np
import pytest
import scipy.sparse as sps

from wsekern import Wafer, WaferConfig
from wsekern.wafer import plots
from wsekern.wafer.report import SKIP_NOTES, config_name, zero_fraction


def _operands(m=96, k=80, n=6, w_zeros=0.8, x_zeros=0.5, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, k)).astype(np.float32)
    W[rng.random(W.shape) < w_zeros] = 0
    X = rng.standard_normal((k, n)).astype(np.float32)
    X[rng.random(X.shape) < x_zeros] = 0
    return W, X


def test_spmm_report_echoes_its_problem_in_text_and_json():
    W, X = _operands()
    wafer = Wafer(WaferConfig.wse3(rows=12, cols=10, dtype="fp32"))
    _, rep = wafer.spmm(sps.csr_array(W), X, mapping="weight-stationary", compute=False)
    d = json.loads(json.dumps(rep.to_dict()))
    p = d["problem"]
    assert p["op"] == "spmm" and p["mapping"] == "weight-stationary" and p["mode"] == "analytic"
    assert p["operands"]["W"]["shape"] == [96, 80] and p["operands"]["X"]["shape"] == [80, 6]
    # the zero fractions, counted independently
    assert p["operands"]["W"]["zero_fraction"] == pytest.approx(np.mean(W == 0), abs=1e-6)
    assert p["operands"]["X"]["zero_fraction"] == pytest.approx(np.mean(X == 0), abs=1e-6)
    assert p["operands"]["X"]["dtype"] == "float32"
    assert p["config"] == {"preset": "wse3 (cols, rows changed)", "rows": 12, "cols": 10,
                           "dtype": "fp32", "sram_bytes": 49152, "clock_hz": 850e6}
    text = str(rep)
    assert "problem             spmm: W 96x80 float32" in text and "12x10 PEs, fp32" in text
    # the keys that were there stay
    for key in ("cycles", "cycles_lower", "cycles_upper", "mapping", "dtype", "region",
                "utilization", "bottleneck", "macs_useful"):
        assert key in d


@pytest.mark.parametrize("op", ["conv2d", "matmul", "sddmm", "event"])
def test_every_wafer_method_records_its_problem(op):
    wafer = Wafer(WaferConfig.small(8, 8))
    rng = np.random.default_rng(1)
    if op == "conv2d":
        x = np.maximum(rng.standard_normal((1, 3, 6, 6)), 0).astype(np.float32)
        w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
        _, rep = wafer.conv2d(x, w, padding=1, stride=1)
        assert rep.problem["operands"]["x"]["shape"] == [1, 3, 6, 6]
        assert rep.problem["padding"] == 1
        assert rep.problem["operands"]["x"]["zero_fraction"] == pytest.approx(np.mean(x == 0))
    elif op == "matmul":
        _, rep = wafer.matmul(np.ones((16, 8)), np.ones((8, 4)), region=(2, 2))
        assert rep.problem["region"] == [2, 2]
        assert rep.problem["operands"]["A"]["dtype"] == "float64"
    elif op == "sddmm":
        P = sps.random(12, 10, density=0.3, format="csr", random_state=0)
        _, rep = wafer.sddmm(rng.standard_normal((12, 5)), rng.standard_normal((10, 5)), P)
        assert rep.problem["operands"]["pattern"]["zero_fraction"] == pytest.approx(
            1 - P.nnz / 120)
    else:
        W, X = _operands(40, 32, 3)
        _, rep = wafer.spmm(W, X, mode="event", region=(4, 4))
        assert rep.problem["mode"] == "event" and "event simulation" in str(rep)
    assert rep.problem["op"] == ("spmm" if op == "event" else op)
    json.dumps(rep.to_dict())
    assert str(rep).splitlines()[1].startswith(f"  problem             {rep.problem['op']}")


def test_bounds_bottleneck_and_skipped_zeros_are_explained():
    W, X = _operands()
    wafer = Wafer(WaferConfig.small(8, 8))
    _, ws = wafer.spmm(W, X, mapping="weight-stationary", compute=False)
    _, ast = wafer.spmm(W, X, mapping="activation-stationary", compute=False)
    for rep in (ws, ast):
        why = rep.to_dict()["explanation"]
        assert why["zeros_skipped"] == SKIP_NOTES[rep.mapping]
        assert why["bounds"]["lower"] and why["bounds"]["upper"] != why["bounds"]["lower"]
        text = str(rep)
        assert "lower bound" in text and "upper bound" in text and "meaning" in text
    assert "X's zeros are never sent" in ws.explanation()["zeros_skipped"]
    assert "W's zeros are never sent" in ast.explanation()["zeros_skipped"]


def test_utilization_factors_multiply_to_the_utilization():
    W, X = _operands(200, 160, 12, w_zeros=0.95)
    for mapping in ("weight-stationary", "activation-stationary"):
        _, rep = Wafer(WaferConfig.small(8, 8)).spmm(W, X, mapping=mapping, compute=False)
        f = rep.utilization_factors()
        assert f["useful_of_performed"] == pytest.approx(rep.macs_useful / rep.macs_performed)
        busy = rep.busy_cycles[:rep.region[2], :rep.region[3]]
        assert f["balance"] == pytest.approx(busy.mean() / busy.max())
        assert 0 < f["balance"] <= 1 and 0 < f["busiest_pe_busy"] <= 1
        assert np.prod(list(f.values())) == pytest.approx(rep.utilization, rel=1e-9)
        assert "useful of the MACs performed" in str(rep)
    # a sum of reports has no such decomposition: said by omission, not made up
    assert (rep + rep).utilization_factors() == rep.utilization_factors()
    _, other = Wafer(WaferConfig.small(8, 8)).spmm(W, X, region=(2, 3), compute=False)
    assert (rep + other).utilization_factors() == {}
    assert (rep + other).problem["op"] == "sequence"


def test_config_names():
    assert config_name(WaferConfig.wse2()) == "wse2"
    assert config_name(WaferConfig.wse3()) == "wse3"
    assert config_name(WaferConfig.wse3(dtype="fp32")) == "wse3"
    assert config_name(WaferConfig.small(4, 4)) == "wse2 (cols, rows changed)"
    assert config_name(WaferConfig.wse2(hop_cycles=3.0)) == "custom"


def test_zero_fraction_counts_stored_zeros_of_a_sparse_operand():
    A = sps.csr_array((np.array([0.0, 1.0, 2.0]), np.array([0, 1, 2]), np.array([0, 2, 3])),
                      shape=(2, 3))
    assert zero_fraction(A) == pytest.approx(4 / 6)
    assert zero_fraction(np.zeros((0, 3))) == 0.0


def test_spread_note_calls_a_flat_map_flat():
    assert "nearly uniform" in plots.spread_note(np.array([4450, 4460, 4470]), "B")
    assert "min 4,450 .. max 4,470 B" in plots.spread_note(np.array([4450, 4470]), "B")
    assert "uniform" not in plots.spread_note(np.array([0, 100]))


@pytest.fixture
def captured(monkeypatch):
    """The figures the plot functions would save, kept open for inspection."""
    pytest.importorskip("matplotlib")
    figs = []

    def keep(fig, path):
        fig.canvas.draw()
        figs.append(fig)
        return path
    monkeypatch.setattr(plots, "save", keep)
    return figs


def test_placement_labels_are_whole_and_inside_the_figure(captured):
    # a wide wafer with a big layer at one edge and two slivers: the labels of the slivers
    # go outside their rectangles, and every label stays inside the figure
    layers = [{"name": "dense", "region": (0, 0, 69, 61), "cycles": 3327.0, "forward": 3000.0},
              {"name": "dense_1", "region": (0, 61, 69, 165), "cycles": 7887.0},
              {"name": "conv", "region": (0, 300, 8, 1), "cycles": 1326.0},
              {"name": "dense_2", "region": (0, 923, 5, 70), "cycles": 8833.0}]
    plots.placement(layers, wafer_shape=(750, 994), title="t", path="unused.png",
                    bottleneck="dense_2", parts=("forward",))
    fig = captured[0]
    renderer = fig.canvas.get_renderer()
    fig_box = fig.bbox
    texts = [t for ax in fig.axes for t in ax.texts]
    for t in texts:
        box = t.get_window_extent(renderer)
        assert box.x0 >= fig_box.x0 - 1 and box.x1 <= fig_box.x1 + 1, t.get_text()
    # a label drawn inside a rectangle fits inside that rectangle
    zoom = fig.axes[1]
    for t in zoom.texts:
        if t.get_text().startswith("dense_1"):
            box = t.get_window_extent(renderer)
            (x0, _), (x1, _) = zoom.transData.transform([(61, 0), (226, 0)])
            assert x0 <= box.x0 and box.x1 <= x1
    whole = {t.get_text() for t in texts}
    for name, cycles in (("dense", "3,327"), ("conv", "1,326"), ("dense_2", "8,833")):
        assert f"{name}\n{cycles} cycles/step" in whole
    bars = fig.axes[-1]
    assert "dense_2 (bottleneck)" in [t.get_text() for t in bars.get_yticklabels()]


def test_heatmap_scales_start_at_zero_and_sram_at_capacity(captured):
    W, X = _operands()
    _, rep = Wafer(WaferConfig.small(8, 8)).spmm(W, X, compute=False)
    rep.plot("unused.png")
    fig = captured[0]
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 3
    for im in images:
        assert im.get_clim()[0] == 0
    assert images[1].get_clim()[1] == 49152              # SRAM: up to the capacity
    title = images[1].axes.get_title()
    assert "SRAM per PE" in title and "min" in title


def test_plots_are_written_atomically(tmp_path):
    pytest.importorskip("matplotlib")
    W, X = _operands()
    _, rep = Wafer(WaferConfig.small(8, 8)).spmm(W, X, compute=False)
    path = rep.plot(tmp_path / "r.png")
    assert path == tmp_path / "r.png"
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["r.png"]                 # no temporary file left
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask     # as open() would make it
    with pytest.raises(OSError):
        rep.plot(tmp_path / "missing" / "r.png")
    assert os.listdir(tmp_path) == ["r.png"]


def test_sweep_notes_say_which_zeros_the_mapping_skips():
    pytest.importorskip("pandas")
    from wsekern import sweeps as sw
    space = {"sparsity": [0.5, 0.9], "act_sparsity": [0.5], "m": [128], "k": [128], "n": [8],
             "mapping": ["weight-stationary", "activation-stationary"]}
    frame = sw.sweep(space, "spmm", client=False, base="small")
    ws = frame[frame["mapping_used"] == "weight-stationary"]
    ast = frame[frame["mapping_used"] == "activation-stationary"]
    # the premise, from the models: weight-stationary multiplies W's zeros (dense blocks),
    # activation-stationary never sends them
    assert ws["cycles"].nunique() == 1 and ast["cycles"].nunique() == 2
    notes = sw.skip_notes(frame)
    assert len(notes) == 1 and "sparsity 0.5, 0.9 (W's zeros) with weight-stationary" in notes[0]
    assert sw.skip_notes(ast.reset_index(drop=True)) == []


def test_train_writes_no_png_unless_asked(tmp_path, monkeypatch, capsys):
    from wsekern.cli import build_parser
    args = build_parser().parse_args(["train", "mlp"])
    assert args.plot is None
    monkeypatch.chdir(tmp_path)
    from wsekern import cli
    calls = []
    monkeypatch.setattr("wsekern.train.train", lambda **kw: calls.append(kw))
    assert cli.main(["train", "mlp", "--epochs", "1", "--quiet"]) == 0
    assert calls[0]["plot"] is None and os.listdir(tmp_path) == []


def _subcommands():
    import argparse

    from wsekern.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_cli_option_has_help_and_shows_its_default(name):
    import argparse
    command = _subcommands()[name]
    text = command.format_help()
    assert command.description, f"wsekern {name} --help has no description"
    for action in command._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"wsekern {name}: {action.option_strings or action.dest} has no help"
        shown = action.default is not None and action.default is not False
        if shown and action.option_strings:
            formatted = command._get_formatter()._get_help_string(action) % vars(action)
            assert f"(default: {action.default})" in formatted, \
                f"wsekern {name} --help does not show the default of {action.option_strings}"
    assert "%(default" not in text


def test_sweep_notes_group_points_whose_region_is_a_list():
    pd = pytest.importorskip("pandas")
    from wsekern import sweeps as sw
    frame = pd.DataFrame({"sparsity": [0.5, 0.9, 0.5, 0.9],
                          "region": [[4, 4], [4, 4], [8, 8], [8, 8]], "key": list("abcd"),
                          "status": ["ok"] * 4, "cycles": [10.0, 10.0, 7.0, 5.0],
                          "mapping_used": ["weight-stationary"] * 2
                          + ["activation-stationary"] * 2})
    notes = sw.skip_notes(frame)
    assert len(notes) == 1 and "with weight-stationary" in notes[0]
