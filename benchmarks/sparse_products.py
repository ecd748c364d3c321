"""Nanoseconds per multiply-add of the three products of a sparse Dense layer's step, at the
shapes of ``wsekern bench train``'s sparse rows, against the dense GEMM of the same shape.

    OPENBLAS_NUM_THREADS=1 python benchmarks/sparse_products.py [--sparsity 0.9] [--repeat 7]

A multiply-add is one stored weight times one batch row (``nnz * batch`` per product; the
GEMM's ``K * N * batch``). Products interleaved, best of ``--repeat``, one thread.
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import wsekern as wk
from wsekern import sparse_dense as sd

# (label, K inputs, N outputs, batch)
SHAPES = [
    ("MLP 784->1024 B32", 784, 1024, 32),
    ("MLP 1024->1024 B32", 1024, 1024, 32),
    ("MLP 784->1024 B128", 784, 1024, 128),
    ("MLP 1024->1024 B128", 1024, 1024, 128),
    ("GPT 128->512 B2048", 128, 512, 2048),
    ("GPT 512->128 B2048", 512, 128, 2048),
]


def best(fn, repeat):
    fn()
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'shape':22s} {'forward':>8s} {'dX':>8s} {'dW':>8s} {'GEMM':>8s}  ns/MAC")
    with threadpool_limits(1):
        for label, K, N, B in SHAPES:
            W = rng.standard_normal((K, N)).astype(np.float32)
            W[rng.random((K, N)) < args.sparsity] = 0
            P = wk.pack(W)
            P.T                                   # built once, as a layer keeps it
            Xt = rng.standard_normal((K, B)).astype(np.float32)
            Gt = rng.standard_normal((N, B)).astype(np.float32)
            X = np.ascontiguousarray(Xt.T)
            macs = P.nnz * B
            fwd = best(lambda: sd.times_wt(P, Xt, n_threads=1), args.repeat)
            dx = best(lambda: sd.times_w(P, Gt, n_threads=1), args.repeat)
            dw = best(lambda: sd.pattern_grad(P, Xt, Gt, n_threads=1), args.repeat)
            gemm = best(lambda: X @ W, args.repeat)
            print(f"{label:22s} {fwd / macs * 1e9:8.3f} {dx / macs * 1e9:8.3f} "
                  f"{dw / macs * 1e9:8.3f} {gemm / (K * N * B) * 1e9:8.3f}")


if __name__ == "__main__":
    main()
