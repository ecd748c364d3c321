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
