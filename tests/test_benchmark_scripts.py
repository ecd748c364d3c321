"""The benchmark scripts refuse what they cannot run, before any child process starts."""
import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("argv, needle", [(["--rounds", "0"], "--rounds"),
                                          (["--rounds", "-2"], "--rounds"),
                                          (["--warm", "-1"], "--warm")])
def test_placer_time_refuses_counts_it_cannot_run(argv, needle):
    """benchmarks/placer_time.py: no rounds ended in 'the rounds chose different
    placements', and a negative --warm in an IndexError after a child ran; both are usage
    errors (argparse's exit status 2, naming the option), before any child starts."""
    script = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "placer_time.py")
    done = subprocess.run([sys.executable, script] + argv, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and needle in done.stderr, (done.returncode, done.stderr)
