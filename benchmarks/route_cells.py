"""The route spmm chooses against the best of its sparse-W routes, cell by cell: each route
forced through a cost table that leaves it the only choice, timed in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        PYTHONPATH=<tree> python benchmarks/route_cells.py [--grid densify|density] \\
        [--dtypes float32,float64] [--repeat 5]

Routes: ``chosen`` (the cost table in use), ``csr`` (densifying priced out: the CSR family's
own choice), ``densified`` (densifying free: BLAS over the densified W). Each cell's routes
alternate, best of ``--repeat`` thread CPU times, 1 thread. One line a cell: the routes'
milliseconds, the chosen route's name and its time over the faster of the two others.
Grids: ``densify`` (W 1024^2 and 2048^2, N 64/256/1024, 30/50/70/90 % zeros, X all live
or every other row zero: s26 review_a10's cells) and ``density`` (W 1024^2, N 16-1024,
10-90 % zeros, X all live: the CSR kernel against density).
"""
import argparse
import dataclasses
import os
import time

import numpy as np
import scipy.sparse as sps

import wsekern
from wsekern import costs, kernels

GRIDS = {
    "densify": dict(sizes=(1024, 2048), ns=(64, 256, 1024), zeros=(0.3, 0.5, 0.7, 0.9),
                    dead=(False, True)),
    "density": dict(sizes=(1024,), ns=(16, 64, 256, 1024),
                    zeros=(0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9), dead=(False,)),
}


def _forced(table, route):
    if route == "csr":
        return dataclasses.replace(table, densify_call=1e18)
    return dataclasses.replace(table, densify_call=0.0, densify=0.0, densify_nnz=0.0,
                               blas_mac=0.0, blas_gather=0.0,
                               **({"densify_live_nnz": 0.0}
                                  if hasattr(table, "densify_live_nnz") else {}))


def time_call(W, X, repeat):
    """Best of ``repeat`` thread CPU times of spmm(W, X), in ns, after one warm call."""
    wsekern.spmm(W, X)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.thread_time_ns()
        wsekern.spmm(W, X)
        best = min(best, time.thread_time_ns() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", choices=sorted(GRIDS), default="densify")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    table = costs.cost_table()
    print(f"# wsekern {wsekern.__file__}; table {table.name}; SIMD "
          f"{os.environ.get('WSEKERN_SIMD', 'default')}; load {os.getloadavg()[0]:.1f}")
    grid = GRIDS[args.grid]
    rng = np.random.default_rng(27)
    tables = {r: _forced(table, r) for r in ("csr", "densified")}
    tables["chosen"] = table
    for dtype in args.dtypes.split(","):
        for m in grid["sizes"]:
            for z in grid["zeros"]:
                W = sps.random_array((m, m), density=1 - z, rng=rng, format="csr",
                                     dtype=dtype)
                for n in grid["ns"]:
                    for dead in grid["dead"]:
                        X = rng.standard_normal((m, n)).astype(dtype)
                        if dead:
                            X[1::2] = 0
                        times, names = {}, {}
                        for _ in range(2):          # the routes alternate
                            for route, t in tables.items():
                                kernels.cost_table = lambda t=t: t
                                try:
                                    ms = time_call(W, X, args.repeat) / 1e6
                                    names[route] = kernels.spmm_path(W, X)
                                finally:
                                    kernels.cost_table = costs.cost_table
                                times[route] = min(times.get(route, ms), ms)
                        best = min(times["csr"], times["densified"])
                        print(f"{dtype} {m} N={n:4d} zeros={z:.1f} "
                              f"{'half-dead' if dead else 'live     '} "
                              f"csr {times['csr']:8.3f} dens {times['densified']:8.3f} "
                              f"chosen {times['chosen']:8.3f} {names['chosen']:26s} "
                              f"x{times['chosen'] / best:.2f}", flush=True)


if __name__ == "__main__":
    main()
