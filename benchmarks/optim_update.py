"""One optimizer update alone: wsekern's one-pass update (wsekern._optim) against its NumPy
code and torch.optim (foreach, and the per-parameter loop), one thread, the same float32
variable; best of ``--repeat`` interleaved rounds of ``--steps`` updates each.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/optim_update.py [--shape 1024 784] [--optimizer adam]
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from wsekern.bench import machine_line
from wsekern.nn import optimizers
from wsekern.nn.tensor import Tensor

PEERS = {"adam": ("Adam", {}), "adamw": ("AdamW", {"weight_decay": 0.004}),
         "sgd_momentum": ("SGD", {"momentum": 0.9}), "rmsprop": ("RMSprop", {})}


def ours(name, w0, g, fused):
    cls, kwargs = PEERS[name]
    lr = 0.01 if cls == "SGD" else 0.001
    opt = getattr(optimizers, cls)(lr, **kwargs)
    opt._use_fused = fused
    w = Tensor(w0.copy(), requires_grad=True)
    w.grad = g

    def run(steps):
        for _ in range(steps):
            opt.apply_gradients([w])
    return run


def theirs(torch, name, w0, g, foreach):
    cls, kwargs = PEERS[name]
    lr = 0.01 if cls == "SGD" else 0.001
    extra = {} if cls == "SGD" else {"eps": 1e-7}
    if cls == "RMSprop":
        extra["alpha"] = 0.9
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    p.grad = torch.from_numpy(g.copy())
    opt = getattr(torch.optim, cls)([p], lr=lr, foreach=foreach, **kwargs, **extra)

    def run(steps):
        for _ in range(steps):
            opt.step()
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[1024, 784])
    parser.add_argument("--optimizer", choices=sorted(PEERS), default="adam")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeat < 1 or min(args.shape) < 1:
        parser.error("--steps, --repeat and every --shape entry must be >= 1")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(args.shape).astype(np.float32)
    g = (rng.standard_normal(args.shape) * 1e-2).astype(np.float32)
    runs = {"wsekern fused": ours(args.optimizer, w0, g, True),
            "wsekern numpy": ours(args.optimizer, w0, g, False)}
    try:
        import torch
        torch.set_num_threads(1)
        runs["torch foreach"] = theirs(torch, args.optimizer, w0, g, True)
        runs["torch for-loop"] = theirs(torch, args.optimizer, w0, g, False)
    except ImportError:
        pass
    best = {k: float("inf") for k in runs}
    with threadpool_limits(1):
        for fn in runs.values():
            fn(2)                                   # warm-up: slots allocated
        for _ in range(args.repeat):
            for k, fn in runs.items():
                t0 = time.perf_counter()
                fn(args.steps)
                best[k] = min(best[k], (time.perf_counter() - t0) / args.steps)
    print(machine_line())
    print(f"{args.optimizer} update of one float32 {tuple(args.shape)} variable, 1 thread, "
          f"best of {args.repeat} x {args.steps} steps")
    ref = best["wsekern fused"]
    for k, t in best.items():
        print(f"{k:<16} {t * 1e6:9.0f} us  {t / ref:5.2f}x the fused update")


if __name__ == "__main__":
    main()
