"""The CSR kernel's time per multiply-add against W's density: spmm with X all live and
densifying priced out (the route is ``csr``), W M x K at 10-90 % zeros, N 16-1024.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        WSEKERN_SIMD=avx512|avx2|baseline PYTHONPATH=<tree> python benchmarks/csr_rate.py \\
        [--sizes 1024,2048] [--dtypes float32,float64] [--repeat 5]

One line a cell: ns per MAC (best of ``--repeat`` thread CPU times, 1 thread; the zero
fractions of one (size, N, dtype) timed alternating, twice) and the route taken.
"""
import argparse
import dataclasses
import os

import numpy as np
import scipy.sparse as sps
from route_cells import time_call

import wsekern
from wsekern import costs, kernels

ZEROS = (0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
NS = (16, 64, 256, 1024)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--ns", default=",".join(map(str, NS)))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    table = costs.cost_table()
    csr = dataclasses.replace(table, densify_call=1e18)
    kernels.cost_table = lambda: csr
    print(f"# wsekern {wsekern.__file__}; table {table.name}; SIMD "
          f"{os.environ.get('WSEKERN_SIMD', 'default')}; load {os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(27)
    for dtype in args.dtypes.split(","):
        for m in map(int, args.sizes.split(",")):
            Ws = {z: sps.random_array((m, m), density=1 - z, rng=rng, format="csr",
                                      dtype=dtype) for z in ZEROS}
            for n in map(int, args.ns.split(",")):
                X = rng.standard_normal((m, n)).astype(dtype)
                best = {}
                for _ in range(2):
                    for z, W in Ws.items():
                        best[z] = min(best.get(z, np.inf), time_call(W, X, args.repeat))
                for z, W in Ws.items():
                    print(f"{dtype} {m} N={n:4d} zeros={z:.1f} nnz/row={W.nnz / m:7.1f} "
                          f"{best[z] / (W.nnz * n):.4f} ns/MAC {best[z] / 1e6:8.3f} ms "
                          f"{kernels.spmm_path(W, X)}", flush=True)


if __name__ == "__main__":
    main()
