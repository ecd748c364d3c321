"""The wsekern command line."""
import json

import pytest
import scipy.io
from conftest import random_csr

from wsekern.cli import main


def test_simulate_spmm_prints_a_report(capsys):
    assert main(["simulate", "spmm", "--m", "200", "--k", "150", "--n", "8", "--wafer", "small",
                 "--sparsity", "0.8", "--act-sparsity", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "SimReport" in out and "bottleneck" in out


def test_simulate_json_and_matrix_market(tmp_path, capsys):
    path = tmp_path / "w.mtx"
    W = random_csr(60, 40, 0.1, seed=2)
    scipy.io.mmwrite(str(path), W)
    assert main(["simulate", "spmm", "--matrix", str(path), "--n", "4", "--wafer", "wse3",
                 "--rows", "6", "--cols", "6", "--dtype", "fp32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dtype"] == "fp32" and report["macs_dense"] == 60 * 40 * 4


def test_simulate_conv_and_matmul_with_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["simulate", "conv", "--batch", "1", "--channels", "4", "--out-channels", "4",
                 "--size", "8", "--wafer", "small", "--plot", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").exists()
    assert main(["simulate", "matmul", "--m", "16", "--k", "16", "--n", "16", "--wafer", "small",
                 "--region", "1", "1"]) == 0
    assert "resident" in capsys.readouterr().out


def test_simulate_reports_overflow_and_bad_input(capsys):
    assert main(["simulate", "spmm", "--m", "3000", "--k", "3000", "--wafer", "small", "--rows",
                 "1", "--cols", "1", "--mapping", "weight-stationary"]) == 3
    assert "SramOverflowError" in capsys.readouterr().err
    assert main(["simulate", "spmm", "--sparsity", "1.5", "--wafer", "small"]) == 2
    assert "sparsity" in capsys.readouterr().err


def test_train_mlp_writes_the_placement_plot(tmp_path, capsys):
    plot = tmp_path / "train.png"
    assert main(["train", "mlp", "--dataset", "digits", "--epochs", "2", "--wafer", "small",
                 "--quiet", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "Wafer report" in out
    assert plot.exists()


def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--epochs", "2", "--plot", str(tmp_path / "demo.png")]) == 0
    out = capsys.readouterr().out
    assert "90% sparse" in out and "sparse/dense time" in out


def test_train_transformer_prints_losses_sample_and_report(tmp_path, capsys):
    text = tmp_path / "tiny.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    assert main(["train", "transformer", "--text", str(text), "--layers", "1", "--d-model", "16",
                 "--heads", "2", "--context", "16", "--batch-size", "4", "--steps", "6",
                 "--wafer", "small"]) == 0
    out = capsys.readouterr().out
    assert "val loss" in out and "tokens/s" in out and "--- sample ---" in out
    assert "Wafer report" in out


@pytest.mark.parametrize("argv, flag", [
    (["simulate", "spmm", "--m", "-3"], "--m"),
    (["simulate", "conv", "--kernel", "0"], "--kernel"),
    (["simulate", "spmm", "--seed", "-1"], "--seed"),
    (["bench", "spmm", "--threads", "0"], "--threads"),
    (["bench", "spmm", "--size", "0", "0", "0"], "--size"),
    (["bench", "spmm", "--table", "--table-repeat", "0"], "--table-repeat"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["train", "mlp", "--batch-size", "0"], "--batch-size"),
    (["train", "transformer", "--lr", "nan"], "--lr"),
])
def test_out_of_range_flags_are_refused_by_name(argv, flag, capsys):
    """Each reached NumPy, torch or an AttributeError (a traceback) or ran a benchmark of
    nothing before; now argparse refuses it, naming the flag and what would work."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "received" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["simulate", "spmm", "--m", "100000", "--k", "100000", "--n", "100000"],
    ["simulate", "matmul", "--m", "100000", "--k", "100000", "--n", "100000"],
    ["simulate", "conv", "--padding", "100000", "--batch", "1", "--channels", "1",
     "--out-channels", "1", "--json"],
])
def test_absurd_sizes_are_refused_with_an_estimate_before_allocating(argv, capsys,
                                                                      monkeypatch):
    from wsekern import _budget
    monkeypatch.setattr(_budget, "memory_budget", lambda: 2**30)   # the same on any machine
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.startswith("wsekern: MemoryError:") and "GiB" in err and "budget" in err


def test_a_region_may_start_at_row_and_column_0_and_limits_may_be_lifted(capsys):
    assert main(["simulate", "matmul", "--m", "64", "--k", "64", "--n", "64", "--wafer", "small",
                 "--region", "0", "0", "4", "4", "--max-events", "inf", "--max-memory-gb",
                 "inf"]) == 0
    assert "at (0, 0)" in capsys.readouterr().out
