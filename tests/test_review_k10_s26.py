"""review_k10's findings on stop 43's branches (base26, nn26, peers26), each a test that
failed on the branch as reviewed."""
import subprocess

import pytest

from wsekern import bench_peers


def test_an_interrupt_while_a_held_bench_runs_leaves_no_child_running(monkeypatch):
    """``--peers-isa same`` re-runs the bench in a child (bench_peers.rerun_held): a Ctrl-C
    (or any failure) while its output is relayed must not leave it running. Popen's
    ``with`` waits 0.25 s on a KeyboardInterrupt and returns without killing it, so a
    benchmark of minutes went on alone. The interrupt is raised by ``out`` on the child's
    first line (its header), long before its benchmark ends."""
    if not bench_peers.can_hold():
        pytest.skip("no peer switches on this CPU")
    made = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    def interrupted(line):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_peers.subprocess, "Popen", Recorded)
    monkeypatch.setenv("WSEKERN_SIMD", "baseline")
    argv = ["bench", "spmm", "--peers-isa", "same", "--size", "2048", "2048", "512",
            "--sparsity", "0.5", "--threads", "1", "--repeat", "200"]
    try:
        with pytest.raises(KeyboardInterrupt):
            bench_peers.rerun_held("baseline", argv, out=interrupted)
        assert len(made) == 1
        assert made[0].poll() is not None, "the held child is still running"
    finally:
        for child in made:
            if child.poll() is None:
                child.kill()
                child.wait()


class _CollectedOnSecondRead:
    """A model's weak reference whose model the collector takes right after its first read
    (a gc pass between two reads of ``ModelPlacement.model``)."""

    def __init__(self, model):
        self.model = model

    def __call__(self):
        model, self.model = self.model, None
        return model


def test_a_model_collected_between_two_reads_of_its_placement_is_skipped():
    """WaferStrategy.place and .models read a held model's weak reference twice (``if
    m.model is not None ... m.model.layers``): a gc pass between the reads (any
    allocation, in a model's reference cycle) made the second None, an AttributeError
    while building another model in the scope."""
    import numpy as np

    import wsekern as wk
    from wsekern import nn
    from wsekern.nn import layers as L

    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))

    def build(tag):
        with strategy.scope():
            return nn.Sequential([nn.Input((6,)), L.Dense(3, name=f"d_{tag}")], name=tag)

    first = build("first")
    first.compile(optimizer="sgd", loss="mse")
    first.train_on_batch(np.ones((4, 6), np.float32), np.ones((4, 3), np.float32))
    held = strategy.model_placement(first)
    held._model_ref = _CollectedOnSecondRead(first)
    second = build("second")                        # place(): reads first's twice
    assert strategy.model_placement(second) is not None
    held._model_ref = _CollectedOnSecondRead(first)
    assert all(m is not None for m in strategy.models)


@pytest.mark.skipif(not bench_peers.can_hold(), reason="the peers' ISA switches are x86-64's")
def test_a_second_read_back_in_one_process_names_what_the_first_did():
    """``bench conv --threads 1 2`` prints one header per table, each from
    bench_peers.read_back(); oneDNN prints its ISA line (and MKL its dispatch line) once per
    process, so the second header lost both (and a oneDNN switch that did not take went
    unwarned there). What the libraries run cannot change within a process."""
    pytest.importorskip("torch")
    from conftest import run_in_child
    done = run_in_child("""
        import json
        from wsekern.bench_peers import read_back
        print(json.dumps([read_back(), read_back()]))
    """, timeout=300)
    assert done.returncode == 0, done.stderr
    import json
    first, second = json.loads(done.stdout.strip().splitlines()[-1])
    assert first["onednn"] is not None
    assert second == first


def test_the_costing_clock_reads_the_models_while_another_thread_changes_them():
    """A model's fit reads ``strategy._cost_clock()`` at each step, summing over the held
    models; another thread building a model in the strategy's scope (``place`` adds an
    entry) or dropping one (``_retire`` deletes it) changed the dict mid-sum:
    RuntimeError('dictionary changed size during iteration') in the training thread
    (reproduced with two real threads: review_k10/clock_race.py, on main and on nn26).
    Here the change comes, deterministically, from the read of one model's clock."""
    import types

    import wsekern as wk

    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))

    class Intruding:
        @property
        def _cost_seconds(self):
            # what another thread's place() does between two steps of the sum
            strategy._models[object()] = types.SimpleNamespace(_cost_seconds=2.0)
            return 1.0

    strategy._models[1] = Intruding()
    strategy._models[2] = types.SimpleNamespace(_cost_seconds=0.5)
    assert strategy._cost_clock() == 1.5
