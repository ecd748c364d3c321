"""What the wafer accounting costs a training epoch: the same model built plain and inside
``WaferStrategy(WaferConfig.wse2())``, one thread, interleaved. Issue 16's target: at most
1.2x. Models (``wsekern bench train``'s): ``mlp`` 784-1024-10, Adam, batch 32, on 4,000 real
MNIST digits (the default); ``sparse-mlp`` the same with 90% of each hidden kernel pruned;
``convnet`` keras.io's MNIST convnet, Adam, batch 128, on 2,000 images.

The strategy's epoch includes reading its report (``str(model.wafer_report())``: per-step
reports are built when read); the placement is made before the epoch, for its batch and its
last, shorter batch (made once, it is not the per-step accounting; ``--place-inside`` times
it with the epoch, against the plain epoch alone). Wall time and this process's CPU time
are both shown (on a shared machine the CPU time is the steadier), per pair, as the median
ratio, and as the ratio of the fastest epochs (timeit's rule: the least disturbed run).
Steadier still when the machine is loaded: the costing's own share of the strategy's epoch,
timed inside it (``strategy.cost_seconds`` against the rest of that epoch; it leaves out any
other cost of the strategy, such as a layer's product taking another path when placed).

``--defer-steps K`` sets the strategy's ``defer_steps`` (steps costed together; 1 costs each
step when it is taken; default: the strategy's own).

    OPENBLAS_NUM_THREADS=1 python benchmarks/strategy_overhead.py [--repeat 2] [--model mlp]
        [--place-inside] [--defer-steps K]
"""
import argparse
import time

from threadpoolctl import threadpool_limits

import wsekern as wk
from wsekern import bench_train

MODELS = {
    "mlp": bench_train.Case("MLP 784-1024-10, batch 32", "mlp", (784, 1024, 10), 4000, 32),
    "sparse-mlp": bench_train.Case("MLP 784-1024-10, 90% sparse, batch 32", "mlp",
                                   (784, 1024, 10), 4000, 32, 0.9),
    "convnet": bench_train.Case("keras.io MNIST convnet, batch 128", "convnet", (), 2000, 128),
}


def epoch_seconds(case, x, y, strategy, place_inside=False):
    if strategy is None:
        model = bench_train.wsekern_model(case)
    else:
        with strategy.scope():
            model = bench_train.wsekern_model(case)
    t0, c0 = time.perf_counter(), time.process_time()
    if strategy is not None:
        # placed for fit's batch and the epoch's last, shorter one (else fit would place
        # again at its first step, for its batch)
        strategy.place(model, case.batch, samples=len(x))
        if not place_inside:
            t0, c0 = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=case.batch, epochs=1, verbose=0)
    if strategy is not None:
        str(model.wafer_report())
    wall = time.perf_counter() - t0
    share = strategy.cost_seconds / (wall - strategy.cost_seconds) if strategy else 0.0
    return wall, time.process_time() - c0, share


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="interleaved pairs of epochs")
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--place-inside", action="store_true",
                        help="time the placement with the strategy's epoch")
    parser.add_argument("--defer-steps", type=int, default=None,
                        help="WaferStrategy's defer_steps (default: its own)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1; received {args.repeat}")
    if args.defer_steps is not None and args.defer_steps < 1:
        parser.error(f"--defer-steps must be >= 1; received {args.defer_steps}")
    defer = {} if args.defer_steps is None else {"defer_steps": args.defer_steps}
    case = MODELS[args.model]
    x, y = bench_train.case_data(case)
    print(f"{case.name}, {len(x):,} samples, one epoch; placement "
          f"{'inside' if args.place_inside else 'before'} the strategy's epoch")
    ratios, epochs = [], []
    with threadpool_limits(1):
        # untimed: a process's first epoch also grows the allocator's heap (the convnet's
        # first epoch takes thousands of page faults a step, none after), which would favour
        # whichever epoch comes second in the first pair
        epoch_seconds(case, x, y, None)
        for _ in range(args.repeat):
            plain = epoch_seconds(case, x, y, None)
            placed = epoch_seconds(case, x, y,
                                   wk.WaferStrategy(wk.WaferConfig.wse2(), **defer),
                                   args.place_inside)
            ratios.append((placed[0] / plain[0], placed[1] / plain[1], 1 + placed[2]))
            epochs.append(plain[:2] + placed[:2])
            print(f"plain {plain[0]:.2f} s (CPU {plain[1]:.2f} s), under WaferStrategy(wse2) "
                  f"{placed[0]:.2f} s (CPU {placed[1]:.2f} s), ratio {ratios[-1][0]:.2f}x "
                  f"(CPU {ratios[-1][1]:.2f}x); costing inside that epoch: "
                  f"+{placed[2]:.1%} of the rest")
    wall, cpu, inside = (sorted(r)[len(r) // 2] for r in zip(*ratios))
    print(f"median ratio {wall:.2f}x (CPU {cpu:.2f}x; costing inside the epoch "
          f"{inside:.3f}x) over {args.repeat} pairs")
    fastest = [min(t) for t in zip(*epochs)]
    print(f"fastest epochs: plain {fastest[0]:.2f} s (CPU {fastest[1]:.2f} s), under the "
          f"strategy {fastest[2]:.2f} s (CPU {fastest[3]:.2f} s), ratio "
          f"{fastest[2] / fastest[0]:.2f}x (CPU {fastest[3] / fastest[1]:.2f}x)")


if __name__ == "__main__":
    main()
