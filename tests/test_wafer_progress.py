"""Feedback from the wafer's long calls: the placer's search and event runs report progress
through a hook, event runs are estimated and refused beyond the limits before they run."""
import io

import numpy as np
import pytest
import scipy.sparse as sps

from wsekern import _progress, cli
from wsekern.errors import WorkLimitError
from wsekern.wafer import Wafer, WaferConfig
from wsekern.wafer.estimate import event_cost


def _operands(M=96, K=80, N=6, seed=0):
    W = sps.random(M, K, density=0.2, random_state=seed, format="csr")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((K, N)) * (rng.random((K, N)) < 0.5)
    return W, X


class Calls(list):
    def __call__(self, stage, done, total):
        self.append((stage, done, total))

    def of(self, stage):
        return [(d, t) for s, d, t in self if s == stage]


def test_the_search_reports_its_candidates():
    W, X = _operands()
    calls = Calls()
    _, report = Wafer(WaferConfig.small(8, 8)).spmm(W, X, progress=calls)
    placed = calls.of("placement")
    assert placed and placed[-1][0] == placed[-1][1]
    assert [d for d, _ in placed] == sorted(d for d, _ in placed)
    assert not calls.of("events")
    # the hook changes nothing of the answer
    assert Wafer(WaferConfig.small(8, 8)).spmm(W, X)[1].cycles == report.cycles


def test_an_event_run_reports_its_events_against_the_estimate():
    W, X = _operands()
    calls = Calls()
    config = WaferConfig.small(8, 8)
    Y, report = Wafer(config).spmm(W, X, mode="event", progress=calls)
    np.testing.assert_allclose(Y, W @ X, rtol=1e-6, atol=1e-9)
    events = calls.of("events")
    estimate = event_cost(sps.csr_array(W), X, config, report.region, report.mapping).events
    assert events and all(t == estimate for _, t in events)
    assert events[-1][0] == report.details["events"]


def test_conv2d_reports_the_search():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    calls = Calls()
    Wafer(WaferConfig.small(8, 8)).conv2d(x, w, padding=1, compute=False, progress=calls)
    placed = calls.of("placement")
    assert placed and placed[-1][0] == placed[-1][1]


def test_progress_true_draws_bars_on_stderr(capsys):
    W, X = _operands()
    Wafer(WaferConfig.small(8, 8)).spmm(W, X, mode="event", progress=True)
    err = capsys.readouterr().err
    assert "placement" in err and "events" in err


def test_a_bad_progress_is_refused():
    W, X = _operands()
    with pytest.raises(TypeError, match="progress must be True, False, None or a callable"):
        Wafer(WaferConfig.small(8, 8)).spmm(W, X, progress="yes")


def test_an_absurd_event_run_from_python_is_refused_naming_estimate_and_knob():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    calls = Calls()
    with pytest.raises(WorkLimitError, match=r"about [\d,]+ wavelet-link events .* over "
                                             r"max_events=10; raise Wafer\(max_events=...\)"):
        Wafer(WaferConfig.small(8, 8), max_events=10).conv2d(x, w, padding=1, mode="event",
                                                             progress=calls)
    assert not calls.of("events")          # refused before it ran


def test_simulate_conv_passes_a_bar_on_a_terminal(monkeypatch, capsys):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr("sys.stderr", Tty())
    seen = []

    class Recording(_progress.Bars):
        def __call__(self, stage, done, total):
            seen.append(stage)
            super().__call__(stage, done, total)
    monkeypatch.setattr(_progress, "Bars", Recording)
    assert cli.main(["simulate", "conv", "--wafer", "small", "--batch", "1", "--channels", "4",
                     "--out-channels", "4", "--size", "6"]) in (0, None)
    assert "placement" in seen
    seen.clear()
    cli.main(["simulate", "conv", "--wafer", "small", "--batch", "1", "--channels", "4",
              "--out-channels", "4", "--size", "6", "--json"])
    assert not seen                         # --json: no bars
