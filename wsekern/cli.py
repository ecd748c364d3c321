"""The ``wsekern`` command."""
import argparse
import sys


def _cmd_config(args):
    from .config import show_config
    show_config()


def _cmd_bench(args):
    from . import bench
    warning = bench.openblas_warning()
    if warning:
        print(warning)
    if args.kernel == "conv":
        for t in args.threads:
            bench.bench_conv(repeat=args.repeat, threads=t)
    if args.kernel == "spmm":
        sizes = bench.SIZES if not args.size else [tuple(args.size)]
        sparsities = args.sparsity or bench.SPARSITIES
        bench.bench_spmm(sizes=sizes, sparsities=sparsities, threads=args.threads,
                         repeat=args.repeat)


def _cmd_demo(args):
    from .demo import run_demo
    run_demo(size=args.size, sparsity=args.sparsity)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="wsekern",
        description="Zero-skipping sparse kernels, and their cost on a simulated wafer.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", help="show the build and run-time configuration")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("bench", help="compare wsekern against NumPy, SciPy, MKL and torch")
    p.add_argument("kernel", choices=["spmm", "conv"])
    p.add_argument("--size", type=int, nargs=3, metavar=("M", "K", "N"),
                   help="one problem size instead of the default two")
    p.add_argument("--sparsity", type=float, nargs="+", help="fractions of W that are zero")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=5)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("demo", help="multiply a pruned weight by sparse activations")
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError) as exc:
        print(f"wsekern: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
