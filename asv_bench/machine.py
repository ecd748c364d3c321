"""Record this machine for asv with what ties a number to it: the CPU model, its caches and
the SIMD path wsekern takes go into asv's `cpu` field (asv keeps it with every result).

    cd asv_bench && python machine.py [--machine NAME]     (then asv run ... as usual)
"""
import os
import platform
import subprocess
import sys

from wsekern._cpu import describe
from wsekern.sysinfo import get_config


def machine_args():
    cfg = get_config()
    cpu = f"{describe()}; wsekern SIMD {cfg['simd']}; cost table {cfg['cost_table']}"
    return ["--yes", "--arch", platform.machine(), "--cpu", cpu,
            "--num_cpu", str(os.cpu_count() or 1), "--os", platform.platform()]


if __name__ == "__main__":
    # asv 0.6 stores fields given on the command line only into a machine it already knows
    # (on a first run it fails with KeyError: 'machine'): record the defaults first.
    first = subprocess.call(["asv", "machine", "--yes", *sys.argv[1:]])
    sys.exit(first or subprocess.call(["asv", "machine", *machine_args(), *sys.argv[1:]]))
