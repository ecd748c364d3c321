"""Validation of the analytic model against the event-level simulation.

``validate()`` runs a sweep of problems — regions 1x1 to 32x32, W and X sparsity 0 to
0.99, uniform and power-law (R-MAT) rows, tall, wide and square shapes, batch 1 to 64,
both mappings, fp16 and fp32 — through both models and tabulates, per regime, the
median and worst relative error of the analytic cycles against the event cycles and
how often the event cycles fall inside the analytic bounds. ``placer_check()`` runs
the event simulation on every candidate region of a few problems and compares the
region the placer picks with the best one.
"""
import itertools
import time
from dataclasses import dataclass

import numpy as np

from .. import workloads
from ..errors import SramOverflowError
from . import event, mesh_event
from .config import WaferConfig

SHAPES = {"square": (256, 256), "tall": (1024, 128), "wide": (128, 1024)}
REGIONS = (1, 2, 4, 8, 16, 32)
W_SPARSITY = (0.0, 0.5, 0.9, 0.99)
X_SPARSITY = (0.0, 0.5, 0.9, 0.99)
BATCHES = (1, 8, 64)
MAPPINGS = ("weight-stationary", "activation-stationary")
DTYPES = ("fp16", "fp32")
ROWS = ("uniform", "power-law")

# Targets of the issue, per regime: (median, worst) relative error.
TARGETS = {"compute-bound": (0.03, 0.10), "latency-bound": (0.10, 0.10),
           "fabric-bound": (0.10, 0.25), "sparse or power-law": (0.10, 0.25)}


@dataclass
class Case:
    shape: str
    rows: str
    w_sparsity: float
    x_sparsity: float
    batch: int
    region: int
    mapping: str
    dtype: str
    seed: int = 0

    def operands(self):
        rng = np.random.default_rng(self.seed)
        M, K = SHAPES[self.shape]
        nnz = int(round(M * K * (1 - self.w_sparsity)))
        if self.rows == "power-law":
            W = workloads.power_law(M, K, max(nnz, 1), rng)
        else:
            W = workloads.uniform_sparse(M, K, 1 - self.w_sparsity, rng)
        X = workloads.pruned((K, self.batch), self.x_sparsity, rng, dtype=np.float64)
        return W, X


def cases(quick=False, seed=0):
    """The validation sweep (``quick``: a smaller one, for tests and a first look)."""
    out = []
    rng = np.random.default_rng(seed)
    shapes = ("square", "tall", "wide")
    grid = itertools.product(shapes, ROWS, W_SPARSITY, X_SPARSITY, BATCHES, MAPPINGS, DTYPES)
    for shape, rows, ws, xs, batch, mapping, dtype in grid:
        if rows == "power-law" and ws == 0.0:
            continue
        if quick and rng.random() > 0.08:
            continue
        region = int(rng.choice(REGIONS))
        out.append(Case(shape, rows, ws, xs, batch, region, mapping, dtype,
                        seed=int(rng.integers(1 << 31))))
    return out


def regime(case, report):
    """Regimes of the targets: by the event run's bottleneck, and (separately) sparse or
    power-law problems."""
    names = []
    b = report.bottleneck
    names.append("compute-bound" if b in ("compute", "scalar", "overhead")   # the PEs' work
                 else "latency-bound" if b in ("latency", "none")   # none: a 0-cycle run
                 else "fabric-bound")
    if case.w_sparsity >= 0.9 or case.x_sparsity >= 0.9 or case.rows == "power-law":
        names.append("sparse or power-law")
    return names


def run_case(case, config=None):
    """(event report, analytic report) of one case, or None where it does not fit."""
    base = config or WaferConfig.small(32, 32)
    config = base.with_(dtype=case.dtype)
    W, X = case.operands()
    region = (0, 0, case.region, case.region)
    M, K = W.shape
    if case.mapping == "weight-stationary":
        if case.region > min(M, K):
            return None
        simulate = event.weight_stationary
    else:
        if case.region > min(K, case.batch):
            region = (0, 0, min(case.region, K), min(case.region, case.batch))
        simulate = event.activation_stationary
    try:
        Y, rep = simulate(W, X, config, region)
    except SramOverflowError:
        return None
    if not np.allclose(Y, W @ X, rtol=1e-9, atol=1e-9):
        raise AssertionError(f"event simulation computed a wrong product for {case}")
    return rep


def validate(case_list=None, config=None, progress=None):
    """Run the sweep; returns a list of row dicts (one per case that fits)."""
    rows = []
    for case in case_list if case_list is not None else cases():
        rep = run_case(case, config)
        if progress is not None:
            progress()
        if rep is None:
            continue
        a = rep.details["analytic"]
        rows.append({"case": case, "event": rep.cycles, "analytic": a["cycles"],
                     "lower": a["cycles_lower"], "upper": a["cycles_upper"],
                     "error": (a["cycles"] - rep.cycles) / rep.cycles,
                     "inside": a["cycles_lower"] <= rep.cycles <= a["cycles_upper"],
                     "regimes": regime(case, rep), "bottleneck": rep.bottleneck,
                     "events": rep.details["events"], "wall": rep.details["wall_seconds"]})
    return rows


def summary(rows):
    """Per regime: count, median and worst |error|, the fraction inside the bounds, and
    whether the targets are met."""
    table = []
    names = list(TARGETS) + ["all"]
    for name in names:
        sel = [r for r in rows if name == "all" or name in r["regimes"]]
        if not sel:
            continue
        err = np.abs([r["error"] for r in sel])
        inside = np.mean([r["inside"] for r in sel])
        med, worst = float(np.median(err)), float(err.max())
        target = TARGETS.get(name)
        met = None if target is None else bool(med <= target[0] and worst <= target[1]
                                               and inside == 1)
        table.append({"regime": name, "cases": len(sel), "median": med, "worst": worst,
                      "inside_bounds": float(inside), "target": target, "met": met})
    return table


def format_summary(table):
    lines = [f"{'regime':<22}{'cases':>6}{'median':>9}{'worst':>9}{'in bounds':>11}  "
             f"target (median/worst)"]
    for t in table:
        target = "-" if t["target"] is None else f"{t['target'][0]:.0%} / {t['target'][1]:.0%}"
        met = "" if t["met"] is None else ("  met" if t["met"] else "  MISSED")
        lines.append(f"{t['regime']:<22}{t['cases']:>6}{t['median']:>9.2%}{t['worst']:>9.2%}"
                     f"{t['inside_bounds']:>11.1%}  {target}{met}")
    return "\n".join(lines)


def placer_check(problems=None, config=None):
    """For each problem, the event cycles of the placer's choice (mapping and region)
    against the best of the candidate regions of both mappings; rows with the ratio."""
    from .machine import Wafer
    config = config or WaferConfig.small(32, 32)
    wafer = Wafer(config)
    rows = []
    for W, X in problems if problems is not None else _placer_problems():
        _, chosen = wafer.spmm(W, X, compute=False)
        simulate = {"weight-stationary": event.weight_stationary,
                    "activation-stationary": event.activation_stationary}
        M, K = W.shape
        limits = {"weight-stationary": (M, K), "activation-stationary": (K, X.shape[1])}
        best = None
        for mapping, run in simulate.items():
            max_r, max_c = limits[mapping]
            for R in REGIONS:
                for C in REGIONS:
                    if R > min(max_r, config.rows) or C > min(max_c, config.cols):
                        continue
                    try:
                        _, rep = run(W, X, config, (0, 0, R, C))
                    except SramOverflowError:
                        continue
                    if best is None or rep.cycles < best[0]:
                        best = (rep.cycles, (R, C), mapping)
        if chosen.mapping == "meshgemv":
            _, picked = mesh_event.meshgemv(config, chosen.region, chosen.details["group_num"],
                                            W=W, x=X[:, 0])
        else:
            _, picked = simulate[chosen.mapping](W, X, config, chosen.region)
        if best is None or picked.cycles < best[0]:
            best = (picked.cycles, chosen.region[2:], chosen.mapping)
        rows.append({"shape": W.shape, "batch": X.shape[1], "picked": chosen.region[2:],
                     "picked_mapping": chosen.mapping, "picked_cycles": picked.cycles,
                     "best": best[1], "best_mapping": best[2], "best_cycles": best[0],
                     "ratio": picked.cycles / best[0]})
    return rows


def _placer_problems(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for (M, K), ws, xs, n in [((256, 256), 0.9, 0.5, 8), ((512, 128), 0.5, 0.0, 1),
                              ((128, 512), 0.99, 0.5, 16), ((256, 256), 0.0, 0.9, 4),
                              ((64, 512), 0.99, 0.0, 64), ((1024, 128), 0.999, 0.0, 32)]:
        W = workloads.uniform_sparse(M, K, 1 - ws, rng)
        X = workloads.pruned((K, n), xs, rng, dtype=np.float64)
        out.append((W, X))
    return out


# The scale cases: (n, density, grid) for W n x n, x half zeros.
SCALE_CASES = ((16384, 0.02, 128), (65536, 0.001, 512))


def scale_run(n, density, grid, seed=0):
    """One SpMV simulated event by event on a grid x grid region of a WSE-2; wall time
    and peak memory of this process (run each case in a fresh process for a clean peak).
    The engine's rate is given per wall second and per CPU second of its run: on a busy
    machine the wall rate also counts the time other processes held the core."""
    import resource
    W = workloads.random_weight(n, n, 1 - density, dtype=np.float64, seed=seed)
    x = workloads.pruned((n, 1), 0.5, seed + 1, dtype=np.float64)
    t0 = time.perf_counter()
    y, rep = event.weight_stationary(W, x, WaferConfig.wse2(), (0, 0, grid, grid))
    seconds = time.perf_counter() - t0
    err = float(np.abs(y - W @ x).max())
    return {"n": n, "density": density, "grid": grid, "seconds": seconds,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "events": rep.details["events"], "events_per_second": rep.details["events_per_second"],
            "events_per_cpu_second": rep.details["events_per_cpu_second"],
            "cycles": rep.cycles, "analytic_cycles": rep.details["analytic"]["cycles"],
            "max_abs_error": err}
