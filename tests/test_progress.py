"""Feedback on long work: bars only on a terminal, estimates before, a size knob everywhere."""
import io
import json
import os

import pytest
from conftest import run_in_child

from wsekern import _progress, cli
from wsekern.simd_path import simd_available


def test_bars_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not _progress.shown()
    assert _progress.bar(3).disable
    monkeypatch.setattr("sys.stderr", Tty())
    assert _progress.shown() and not _progress.shown(quiet=True)
    bar = _progress.bar(3, "x")
    assert not bar.disable
    bar.update()
    bar.close()


@pytest.mark.parametrize("seconds, text", [(0.28, "0.3 s"), (40, "40 s"), (210, "3.5 min"),
                                           (4320, "72.0 min"), (7200, "2.0 h")])
def test_duration(seconds, text):
    assert _progress.duration(seconds) == text


def test_quick_knob_shrinks_the_long_commands(monkeypatch):
    parser = cli.build_parser()
    args = parser.parse_args(["train", "transformer", "--steps", "3000"])
    cli._quick(args)
    assert args.steps == cli.QUICK["train"]["steps"] < 3000
    args = parser.parse_args(["bench", "sweep"])
    cli._quick(args)
    assert args.points == cli.QUICK["bench"]["points"]
    args = parser.parse_args(["demo"])
    cli._quick(args)
    assert args.epochs == cli.QUICK["demo"]["epochs"]
    # --size means a different problem per benchmark: each gets a small one of its own kind
    args = parser.parse_args(["bench", "conv"])
    cli._quick(args)
    batch, channels, side = args.size
    assert batch * channels * side * side <= 2 * 16 * 16 * 16
    args = parser.parse_args(["bench", "spmm"])
    cli._quick(args)
    assert args.size == [512, 512, 64]
    args = parser.parse_args(["bench", "train"])
    cli._quick(args)
    assert args.scale < 0.1


def test_bench_sweep_size_knob():
    from wsekern.bench import SWEEP_POINTS, sweep_space
    from wsekern.sweeps import points_of
    assert len(points_of(sweep_space())) == SWEEP_POINTS
    assert len(points_of(sweep_space(3))) == 3
    with pytest.raises(ValueError, match="points must be from 1 to 200.*received 0"):
        sweep_space(0)
    with pytest.raises(ValueError, match="received 300"):
        sweep_space(300)


def test_transformer_training_estimates_its_time_first():
    """Issue 17: 3,000 steps (~20 min) ran with no word of how long."""
    from wsekern.train import ESTIMATE_AFTER_STEPS, train_transformer
    lines = []
    train_transformer(text=None, layers_=1, d_model=16, heads=2, context=8, batch_size=4,
                      steps=ESTIMATE_AFTER_STEPS + 2, eval_every=1000, eval_batches=1,
                      wafer=None, sample_chars=4, out=lines.append)
    estimate = [i for i, line in enumerate(lines) if "a step over the first" in line]
    losses = [i for i, line in enumerate(lines) if line.startswith("step")]
    assert estimate and losses and estimate[0] < losses[0]
    assert f"the {ESTIMATE_AFTER_STEPS + 2:,} steps take about" in lines[estimate[0]]


def test_bench_conv_size_knob():
    from wsekern.bench import bench_conv
    lines = []
    rows = bench_conv(repeat=1, out=lines.append, shape=(1, 4, 6))
    # the header follows the machine line (and, on a forced narrow path, the torch@isa line)
    assert any(line.startswith("conv2d x 1x4x6x6, w 4x4x3x3") for line in lines[1:3]), lines
    assert [(r["w"], r["x"]) for r in rows] == [(0.0, 0.0), (0.0, 0.8), (0.8, 0.0), (0.8, 0.8),
                                               (0.9, 0.0), (0.9, 0.8)]
    with pytest.raises(ValueError, match=r"three positive numbers.*\(1, 0, 6\)"):
        bench_conv(repeat=1, out=lines.append, shape=(1, 0, 6))


def test_bench_conv_forced_path_times_torch_at_that_isa():
    """A forced narrow path is also compared with torch held to that path's ISA (oneDNN and
    ATen read their limit at start, so torch runs in a child with the limit set)."""
    pytest.importorskip("torch")
    if simd_available() == ["baseline"]:
        pytest.skip("this CPU runs only the baseline path: nothing narrower to force")
    code = """
        import json
        from wsekern.bench import bench_conv
        lines = []
        rows = bench_conv(repeat=1, out=lines.append, shape=(1, 4, 6))
        print(json.dumps({"lines": lines, "isa": [r.get("torch_at_isa") for r in rows]}))
    """
    done = run_in_child(code, env={**os.environ, "WSEKERN_SIMD": "baseline"}, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    header = [line for line in got["lines"] if line.startswith("torch@isa")]
    assert header and "ONEDNN_MAX_CPU_ISA=SSE41" in header[0] and "failed" not in header[0]
    assert len(got["isa"]) == 6 and all(t is not None and t > 0 for t in got["isa"])
