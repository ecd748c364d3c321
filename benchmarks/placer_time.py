"""The placer's time on the full WSE-2, cold and warm: ``Wafer.spmm(W, X, compute=False)``
for W 4096 x 4096 at 90 % zeros and X 4096 x 64 at 50 % zeros (``wsekern simulate spmm``'s
defaults and operands), the placer choosing region and mapping. Issue 16's target: at
most 1 s beyond the kernel (compute=False runs no kernel).

Each round is a fresh process: its first call is the cold time (what ``wsekern simulate
spmm`` pays once wsekern is imported and the operands are drawn), then ``--warm`` more
calls on the same operands, of which the fastest is the warm time. Wall time and the
process's CPU time (user + system) are both shown; on a shared machine the CPU time is
the steadier, and the system part is mostly the kernel giving the process fresh pages.
Every round must choose the same placement (mapping, region, cycles): it is printed.

    python benchmarks/placer_time.py [--rounds 5] [--warm 3] [--m 4096 --k 4096 --n 64]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = "--child"


def child(args):
    import numpy as np

    from wsekern import workloads
    from wsekern.wafer import Wafer, WaferConfig
    W = workloads.random_weight(args.m, args.k, args.sparsity, np.float32, args.seed)
    X = workloads.activations((args.k, args.n), args.act_sparsity, args.seed + 1)
    wafer = Wafer(WaferConfig.wse2())
    times, chosen = [], set()
    for _ in range(1 + args.warm):
        cpu, wall = _cpu(), time.perf_counter()
        _, report = wafer.spmm(W, X, compute=False)
        times.append((time.perf_counter() - wall, _cpu() - cpu))
        chosen.add((report.mapping, report.region, report.cycles))
    print(json.dumps({"times": times, "chosen": sorted(map(list, chosen))}))


def _cpu():
    t = os.times()
    return t.user + t.system


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="fresh processes")
    p.add_argument("--warm", type=int, default=3, help="calls after the first, per process")
    p.add_argument("--m", type=int, default=4096)
    p.add_argument("--k", type=int, default=4096)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--act-sparsity", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(CHILD, action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1; received {args.rounds}")
    if args.warm < 0:
        p.error(f"--warm must be 0 or more; received {args.warm}")
    if args.child:
        return child(args)
    cold, warm, chosen = [], [], set()
    for i in range(args.rounds):
        out = subprocess.run([sys.executable, __file__, CHILD] + (argv or sys.argv[1:]),
                             check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        (cw, cc), rest = row["times"][0], row["times"][1:]
        cold.append((cw, cc))
        if rest:
            warm.append(min(rest, key=lambda t: t[1]))
        chosen.update(json.dumps(c) for c in row["chosen"])
        print(f"round {i + 1}: cold {cw:.3f} s wall {cc:.3f} s CPU"
              + (f"; warm {warm[-1][0]:.3f} s wall {warm[-1][1]:.3f} s CPU" if rest else ""))
    for name, rows in (("cold", cold), ("warm", warm)):
        if rows:
            walls, cpus = [r[0] for r in rows], [r[1] for r in rows]
            print(f"{name}: wall best {min(walls):.3f} median {statistics.median(walls):.3f} s; "
                  f"CPU best {min(cpus):.3f} median {statistics.median(cpus):.3f} s")
    print("chosen (mapping, region, cycles):", "; ".join(sorted(chosen)))
    if len(chosen) != 1:
        raise SystemExit("the rounds chose different placements")


if __name__ == "__main__":
    main()
