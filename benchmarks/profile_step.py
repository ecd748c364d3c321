"""Where the time of one training step goes: cProfile over a run of ``train_on_batch`` steps
of one of ``wsekern bench train``'s models (the same model and batches), one thread, after
warm-up steps; the top functions by their own time, per step.

    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py --model mlp [--strategy]
    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py --model convnet
    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py --model convnet-pruned
    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py --model gpt
    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py --model gpt --sparsity 0.9

``--strategy`` builds the model inside ``WaferStrategy(WaferConfig.wse2())`` placed for the
model's batch, so every step is costed on the wafer too. The clock is wall time
(``--timer cpu``: this process's CPU time, steadier on a shared machine but a system call
per profiled event, which inflates functions called often). cProfile adds its own cost to
each Python call: compare the shares, not the absolute times, with an unprofiled run.
"""
import argparse
import cProfile
import os
import pstats
import time

from threadpoolctl import threadpool_limits

import wsekern as wk
from wsekern import bench_train

MODELS = {
    "mlp": bench_train.Case("MLP 784-1024-10, MNIST, batch 32", "mlp", (784, 1024, 10),
                            0, 32),
    "convnet": bench_train.Case("keras.io MNIST convnet, batch 128", "convnet", (), 0, 128),
    "convnet-pruned": bench_train.Case("keras.io MNIST convnet, conv 90% pruned, batch 128",
                                       "convnet", (), 0, 128, 0.9),
    "gpt": bench_train.Case("char GPT 2x d128, batch 32", "gpt", (), 0, 32, 0.0, "adamw"),
}


def build(case, strategy):
    if strategy is None:
        return bench_train.wsekern_model(case)
    with strategy.scope():
        model = bench_train.wsekern_model(case)
    if strategy.batch != case.batch:
        strategy.place(model, case.batch)
    return model


def _where(func):
    """'file:line(name)' with the path cut to the package (or the file's name)."""
    path, line, name = func
    if path == "~":                              # a built-in
        return name
    parts = path.replace(os.sep, "/").split("/")
    short = "/".join(parts[parts.index("wsekern"):]) if "wsekern" in parts else parts[-1]
    return f"{short}:{line}({name})"


def top_lines(profile, steps, top):
    """[(own us per step, share of the total, calls per step, where)] for the ``top``
    functions by their own time."""
    stats = pstats.Stats(profile)
    total = stats.total_tt
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    return total, [(tt / steps * 1e6, tt / total if total else 0.0, nc / steps, _where(f))
                   for f, (_, nc, tt, _, _) in rows]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--strategy", action="store_true",
                        help="build it inside WaferStrategy(WaferConfig.wse2())")
    parser.add_argument("--sparsity", type=float, default=None,
                        help="the weight sparsity of the model's sparse layers (as "
                             "`wsekern bench train`'s sparse rows: the MLP's hidden Dense "
                             "layers, the GPT's MLP blocks)")
    parser.add_argument("--steps", type=int, default=20, help="profiled steps")
    parser.add_argument("--warmup", type=int, default=3, help="steps run before profiling")
    parser.add_argument("--top", type=int, default=10, help="functions shown")
    parser.add_argument("--timer", choices=("wall", "cpu"), default="wall",
                        help="the profiler's clock: wall time, or this process's CPU time")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.top < 1:
        parser.error(f"--steps and --top must be >= 1 and --warmup >= 0; received "
                     f"--steps {args.steps}, --warmup {args.warmup}, --top {args.top}")
    base = MODELS[args.model]
    changes = {"samples": (args.steps + args.warmup) * base.batch}
    if args.sparsity is not None:
        if not 0 <= args.sparsity < 1:
            parser.error(f"--sparsity must be in [0, 1); received {args.sparsity}")
        changes["sparsity"] = args.sparsity
        if args.model == "mlp":                  # the bench's sparse MLP row
            changes.update(name=f"MLP 784-1024-1024-10, {args.sparsity:.0%} sparse, batch 128",
                           sizes=(784, 1024, 1024, 10), batch=128)
            changes["samples"] = (args.steps + args.warmup) * 128
        else:
            changes["name"] = f"{base.name}, {args.sparsity:.0%} sparse"
    case = bench_train.Case(**{**base.__dict__, **changes})
    x, y = bench_train.case_data(case)
    strategy = wk.WaferStrategy(wk.WaferConfig.wse2()) if args.strategy else None
    model = build(case, strategy)
    b = case.batch
    with threadpool_limits(1):
        for i in range(args.warmup):
            model.train_on_batch(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b])
        clock = time.process_time if args.timer == "cpu" else time.perf_counter
        profile = cProfile.Profile(clock)
        t0 = clock()
        profile.enable()
        for i in range(args.warmup, args.warmup + args.steps):
            model.train_on_batch(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b])
        profile.disable()
        spent = clock() - t0
    total, rows = top_lines(profile, args.steps, args.top)
    under = " under WaferStrategy(wse2)" if strategy else ""
    print(f"{case.name}{under}: {args.steps} steps profiled, {spent / args.steps * 1e3:.2f} ms "
          f"({args.timer}) a step, profiled")
    print(f"{'own us/step':>11} {'share':>6} {'calls/step':>10}  function")
    for us, share, calls, where in rows:
        print(f"{us:>11,.0f} {share:>6.1%} {calls:>10.1f}  {where}")


if __name__ == "__main__":
    main()
