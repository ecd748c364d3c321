"""The default thread count against n_threads=1, with another process keeping a core busy.

    python benchmarks/threads_under_load.py [--no-competitor] [--repeat 15]

Starts a child process spinning on one core (unless --no-competitor), then times
``wsekern.spmm`` with the default thread count and with ``n_threads=1``, interleaved, on
problems from below the threading threshold to well above it, and prints the median
ratio default / 1 thread (the goal: at most 1.2). The default's thread count is printed
too (what wsekern._threads decided at the time).
"""
import argparse
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sps

import wsekern
from wsekern import _threads

SPIN = "while True: pass"
# (M, K, N, sparsity): below the threshold, the demo's layer, a mid-size and a large spmm.
CASES = ((256, 256, 16, 0.9), (256, 256, 64, 0.9), (1024, 1024, 64, 0.9),
         (1024, 1024, 256, 0.9), (4096, 4096, 64, 0.99), (4096, 4096, 64, 0.9))


def median_time(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-competitor", action="store_true")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    spinner = None if args.no_competitor else subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(1.0)
        rng = np.random.default_rng(0)
        print(f"competitor: {'none' if spinner is None else 'a process spinning on one core'}; "
              f"CPUs {_threads.machine_threads()}, OpenMP max {_threads.max_threads()}")
        print(f"{'M':>5} {'K':>5} {'N':>4} {'sparsity':>8} {'threads':>7} {'default ms':>10} "
              f"{'1 thread ms':>11} {'ratio':>6}")
        for M, K, N, s in CASES:
            W = sps.random_array((M, K), density=1 - s, format="csr", dtype=np.float32,
                                 random_state=1)
            P = wsekern.pack(W)
            X = rng.random((K, N), dtype=np.float32)
            calls = max(1, int(2e7 // max(P.nnz * N, 1)))
            wsekern.spmm(P, X)
            ratios, t_def, t_one = [], [], []
            for _ in range(args.repeat):
                a = median_time(lambda: wsekern.spmm(P, X), calls)
                b = median_time(lambda: wsekern.spmm(P, X, n_threads=1), calls)
                ratios.append(a / b)
                t_def.append(a)
                t_one.append(b)
            threads = _threads.resolve_threads(None, P.nnz * N)
            print(f"{M:5d} {K:5d} {N:4d} {s:8.2f} {threads:7d} {np.median(t_def) * 1e3:10.3f} "
                  f"{np.median(t_one) * 1e3:11.3f} {np.median(ratios):6.2f}")
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


if __name__ == "__main__":
    main()
