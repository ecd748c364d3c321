"""The machine half of training a model on the wafer: fit, balance and cost its layers.

Functions of weight matrices, activations, shapes and a ``WaferConfig``; a layer is
named by a string in errors and known by nothing else (``wsekern.nn.strategy`` walks a
model and calls these). Two modes:

- layer-pipelined: each layer gets its own rectangle, side by side, sized so the slowest
  layer is as fast as the wafer's columns allow (:func:`balance`); a step costs the forward
  product, the input gradient (W.T on the same PEs), the weight gradient (an SDDMM left
  where the weights live) and the update, each on the layer's placement;
- weight streaming: one layer at a time on the whole wafer, X stationary, the weights
  crossing the external link (forward, backward, gradients out), the update off-wafer.
"""
import collections.abc
import dataclasses
import hashlib
import math

import numpy as np

from ..errors import SramOverflowError
from . import analytic, placement
from .placement import Operands

ASSUMED_ACTIVATION_DENSITY = 0.5      # for placement, before any data is seen
UPDATE_OPS = 4                         # Adam: m, v, and two for the weight, per stored weight


def training_bytes(W, cfg, columns):
    """SRAM a layer of weight W (M x K, scipy sparse) needs on the wafer while training:
    weights, gradients, Adam's m and v (values + indices when sparse), and its input
    activations kept for backward: K x ``columns`` (the batch times the columns each sample
    streams: OH*OW for a convolution's im2col, T for a Dense on (B, T, d))."""
    M, K = W.shape
    dense = M * K * cfg.elem_bytes
    sparse = W.nnz * (cfg.elem_bytes + 2)
    return 4 * min(dense, sparse) + K * columns * cfg.elem_bytes


def check_streaming_fits(cfg, name, K, columns):
    """Raise SramOverflowError if layer ``name``'s K x ``columns`` activations cannot sit on
    the whole wafer (weight streaming keeps them stationary, double-buffered)."""
    per_pe = math.ceil(K * columns / (cfg.rows * cfg.cols)) * cfg.elem_bytes * 2
    if per_pe + cfg.reserve_bytes > cfg.sram_bytes:
        raise SramOverflowError(
            f"layer {name!r} cannot run even with weight streaming: its {K} x {columns:,} "
            f"activations ({K * columns * cfg.elem_bytes:,} B) need {per_pe:,} B per PE on "
            f"{cfg.rows}x{cfg.cols} PEs, which hold {cfg.sram_bytes - cfg.reserve_bytes:,} B "
            f"each for data; use a larger wafer or a smaller batch", pe=(0, 0), needed=per_pe,
            capacity=cfg.sram_bytes, free=cfg.data_bytes)


def assumed_operands(W, stats, columns):
    """W with K x ``columns`` activations at the assumed density (seeded), for the screen."""
    rng = np.random.default_rng(0)
    X = (rng.random((W.shape[1], columns)) < ASSUMED_ACTIVATION_DENSITY).astype(np.float32)
    return Operands(W, X, stats)


def forward_estimate(W, stats, cfg, region, columns, ops=None):
    """Three forward products' cycles of W on ``region`` with ``columns`` assumed activation
    columns (the placer's screen; ``ops`` from :func:`assumed_operands` to reuse across
    regions); inf if the forward product or the weight gradient overflows the region's
    SRAM (the SDDMM keeps rows of ``columns`` output gradients on each PE: a convolution's
    batch x OH x OW can exceed any PE)."""
    try:
        analytic.sddmm_check_fits(stats, columns, cfg, region)  # fails fast, before the screen
        ops = ops if ops is not None else assumed_operands(W, stats, columns)
        X = ops.x_nz.astype(np.float32)
        r = analytic.weight_stationary(W, X, cfg, region, exact=False, full=False, ops=ops)
    except SramOverflowError:
        return np.inf
    return 3 * r.cycles


def width_profile(W, stats, cfg, columns):
    """The fastest rectangle for each width a layer streaming ``columns`` activation
    columns per step might be given: a list of (width, (R, C), estimated cycles), widths
    ascending (geometric sizes up to min(the wafer's columns, K)) and cycles non-increasing
    (a wider strip can always hold a narrower rectangle). Every candidate row count is
    looked at for every width (the estimate is not unimodal in the rows: a descent stops at
    local minima), in the order of the placer's lower bound, and none is estimated whose
    bound cannot beat the best so far: the result is the full scan's. Empty when the weight
    gradient fits no rectangle."""
    M, K = W.shape
    cand_r = placement.geometric(min(cfg.rows, M), 8)
    try:     # the weight gradient's rows of ``columns`` fit nowhere if not on the most PEs
        analytic.sddmm_check_fits(stats, columns, cfg, (0, 0, cand_r[-1], min(cfg.cols, K)))
    except SramOverflowError:
        return []
    ops = assumed_operands(W, stats, columns)
    profile = []
    best = ((cand_r[-1], 1), np.inf)
    for C in placement.geometric(min(cfg.cols, K), 8):
        floors = sorted((3 * analytic.placer_bound("weight-stationary", ops, cfg, R, C), R)
                        for R in cand_r)
        here = (np.inf, 0)               # this width's best (cycles, rows): ties to fewer rows
        for floor, R in floors:
            if floor >= best[1] or floor > here[0]:
                break
            here = min(here, (forward_estimate(W, stats, cfg, (0, 0, R, C), columns, ops), R))
        if here[0] < best[1]:                # ties to the narrower width
            best = ((here[1], C), here[0])
        profile.append((C, *best))
    return profile


def _structure_key(stats):
    """What the estimates read of W: its shape and its stored entries' places (a digest)."""
    digest = hashlib.blake2b(np.ascontiguousarray(stats.w_row, np.int64).tobytes())
    digest.update(np.ascontiguousarray(stats.w_col, np.int64).tobytes())
    return stats.M, stats.K, digest.hexdigest()


def balance(layers, cfg, columns):
    """Regions for ``layers`` (a list of (name, W, WeightStats of W)), each streaming its
    ``columns`` activation columns per step (one count for all, or one per layer), side by
    side from column 0 in the given order, so that the slowest layer (the pipeline's rate)
    is as fast as the wafer's columns allow: the lowest bound T for which every layer's
    narrowest rectangle estimated at <= T fits in the columns together; the columns left
    over then make the slowest of the others faster. Neighbours stay adjacent, so a link between
    consecutive layers crosses no idle columns. Raises SramOverflowError naming a layer
    that never fits, or when the layers together need more columns."""
    if isinstance(columns, (int, np.integer)):
        columns = [columns] * len(layers)
    if len(columns) != len(layers):
        raise ValueError(f"columns must be one count or one per layer ({len(layers)}); "
                         f"received {len(columns)}")
    profiles, seen = [], {}
    for (name, W, stats), N in zip(layers, columns):
        key = _structure_key(stats) + (int(N),)
        if key not in seen:             # a transformer's blocks repeat their shapes
            seen[key] = [entry for entry in width_profile(W, stats, cfg, N)
                         if np.isfinite(entry[2])]
        profile = seen[key]
        if not profile:
            raise SramOverflowError(
                f"layer {name!r} does not fit any rectangle of the {cfg.rows}x{cfg.cols} "
                f"wafer in layer-pipelined mode: its forward product or its weight gradient "
                f"(which holds rows of {int(N):,} output-gradient columns on each PE) "
                f"overflows every PE's SRAM; use WaferStrategy(config, "
                f"mode='weight-streaming') or a larger wafer", pe=(0, 0))
        profiles.append(profile)

    def narrowest(profile, bound):
        return next(entry[1] for entry in profile if entry[2] <= bound)

    for bound in sorted({entry[2] for profile in profiles for entry in profile}):
        if all(profile[-1][2] <= bound for profile in profiles):
            shapes = [narrowest(profile, bound) for profile in profiles]
            if sum(C for _, C in shapes) <= cfg.cols:
                break
    else:
        need = sum(profile[0][1][1] for profile in profiles)
        raise SramOverflowError(
            f"{len(layers)} layers need at least {need:,} columns side by side in "
            f"layer-pipelined mode; the wafer has {cfg.cols:,}; use WaferStrategy(config, "
            f"mode='weight-streaming') or a larger wafer", pe=(0, 0))
    # The columns the bound leaves idle go to the slowest layers first (each its fastest
    # rectangle within its width plus what is left): the estimate is not the real step
    # (other activations, the backward products), and a layer sized just under the bound
    # could turn out the bottleneck.
    slack = cfg.cols - sum(C for _, C in shapes)
    times = [next(e[2] for e in profile if e[1] == shape)
             for profile, shape in zip(profiles, shapes)]
    for i in sorted(range(len(shapes)), key=lambda i: -times[i]):
        room = shapes[i][1] + slack
        fastest = min((e for e in profiles[i] if e[1][1] <= room), key=lambda e: e[2])
        slack -= fastest[1][1] - shapes[i][1]
        shapes[i] = fastest[1]
    regions, col0 = [], 0
    for R, C in shapes:
        regions.append((0, col0, R, C))
        col0 += C
    return regions


def step_cost(cfg, mode, region, W, stats, stats_t, X, G, needs_input_grad):
    """One training step of a layer of weight W (M x K) on ``region``: X (K x B) its input,
    G (M x B) its output's gradient. Returns (cycles per part, reports per product,
    pipeline latency)."""
    reports = step_reports(cfg, mode, region, W, stats, stats_t, X, G, needs_input_grad)
    fwd = reports["forward"]
    gin = reports["input-gradient"] if needs_input_grad else None
    gw = reports["weight-gradient"]
    if mode == "layer-pipelined":
        upd = update_cycles(cfg, region, W)
        latency = fwd.cycles_lower / max(X.shape[1], 1) * 2
    else:
        upd = 0.0     # off-wafer, in MemoryX
        latency = 0.0
    parts = {"forward": fwd.cycles, "input-gradient": gin.cycles if gin else 0.0,
             "weight-gradient": gw.cycles, "update": upd}
    return parts, dict(reports), latency


def step_reports(cfg, mode, region, W, stats, stats_t, X, G, needs_input_grad):
    """:func:`step_cost`'s reports per product, each made when first read (a reader of
    the forward's alone pays for that product alone)."""
    def make(k):
        if mode == "layer-pipelined":
            if k == "forward":
                return analytic.weight_stationary(W, X, cfg, region, exact=False, full=False,
                                                  ops=Operands(W, X, stats))
            if k == "input-gradient":
                # W.T on the same PEs: each holds the transpose of its block.
                # (W.T is read only through stats_t: no transpose built per step)
                return analytic.weight_stationary(None, G, cfg, region, exact=False,
                                                  full=False, ops=Operands(None, G, stats_t))
            return analytic.sddmm_cost(G, X, W, cfg, region, sddmm_useful(G, X, W, stats),
                                       full=False, weights=stats)
        if k == "forward":
            return analytic.activation_stationary(W, X, cfg, region, passes=1, full=False,
                                                  ops=Operands(W, X, stats))
        if k == "input-gradient":
            return analytic.activation_stationary(None, G, cfg, region, passes=1, full=False,
                                                  ops=Operands(None, G, stats_t))
        # dW = dY @ X.T streams out to MemoryX: costed like a pass of the weights, the
        # forward's very report (the same call), with its own details
        fwd = reports["forward"]
        return dataclasses.replace(fwd, details=dict(fwd.details))
    reports = LazyReports(_report_names(needs_input_grad), make)
    return reports


def update_cycles(cfg, region, W):
    """Adam's update of W's weights where they live (layer-pipelined), on the busiest PE."""
    nnz_pe = max(1, math.ceil(W.nnz / (region[2] * region[3])))
    return UPDATE_OPS * (cfg.setup_cycles + math.ceil(nnz_pe / cfg.fmacs))


def dense_step_plan(cfg, mode, region, W, stats, stats_t, N, needs_input_grad):
    """What :func:`dense_step` needs that no step of N samples changes, or None where its
    shortcut does not hold: it holds layer-pipelined, W fully nonzero and its blocks (and
    W.T's) stored dense whatever the batch (analytic.dense_screen)."""
    if mode != "layer-pipelined" or N == 0:
        return None
    fwd = analytic.dense_screen(stats, cfg, region)
    gin = analytic.dense_screen(stats_t, cfg, region) if needs_input_grad else False
    if fwd is None or gin is None:
        return None
    return {"cfg": cfg, "N": N, "forward": fwd, "input-gradient": gin,
            "weight-gradient": analytic.sddmm_cycles(stats, N, cfg, region),
            "update": update_cycles(cfg, region, W)}


def dense_step(plan, x_nz, g_nz, nnz=(None, None)):
    """:func:`step_cost`'s (cycles per part, latency) for the step of ``plan``
    (:func:`dense_step_plan`) from X's and G's nonzero patterns (``x_nz``, ``g_nz``: X != 0,
    G != 0) alone, without the reports: the same computation, so the same floats. The
    caller keeps the patterns to build the reports when they are read. ``nnz``: the
    patterns' nonzero counts where the caller has them (else counted here)."""
    cfg = plan["cfg"]
    for name, nz in (("x_nz", x_nz), ("g_nz", g_nz)):
        if nz.dtype != np.bool_ or nz.ndim != 2:        # read as bytes by the recurrence
            raise ValueError(f"{name} must be a 2-D bool array (X != 0); received "
                             f"{nz.dtype} of shape {nz.shape}")
        if nz.shape[1] != plan["N"]:
            raise ValueError(f"the plan is for steps of {plan['N']} samples; received "
                             f"{name} with {nz.shape[1]}")
    fwd, fwd_lower = analytic.dense_screen_cycles(plan["forward"], x_nz, cfg, nnz[0])
    gin = plan["input-gradient"]
    parts = {"forward": fwd,
             "input-gradient": analytic.dense_screen_cycles(gin, g_nz, cfg, nnz[1])[0]
             if gin is not False else 0.0,
             "weight-gradient": plan["weight-gradient"], "update": plan["update"]}
    return parts, fwd_lower / max(plan["N"], 1) * 2


def step_plan(cfg, mode, region, W, stats, stats_t, N, needs_input_grad, costed=None):
    """What :func:`planned_step` needs that no step of N samples changes, or None for an
    empty batch (:func:`step_cost` alone). Three kinds, each giving step_cost's floats:

    - ``"dense"``: :func:`dense_step_plan` (layer-pipelined, W fully nonzero);
    - ``"sparse"``: layer-pipelined with zeros in W: the forward and input-gradient
      products are placed and timed per step (their formats follow the batch's
      activations), the weight gradient and the update are fixed (the SDDMM's cycles read
      W's pattern, not the operands); the useful MACs are left to the reports;
    - ``"fixed"``: weight streaming: every product's time reads W's structure and N, not
      the operands' values (X sits dense on the PEs; the weights stream), so the parts of
      one step are every step's, and so are its reports but for the useful MACs
      (:func:`planned_reports`). ``costed`` gives them, as (parts, latency, reports) of
      step_cost for a step of N samples; else the parts are costed here without the
      reports (:func:`streaming_parts`), which wait until first read. The plan's
      ``"sram"`` is the step's SRAM peak.
    """
    if N == 0:
        return None
    if mode == "layer-pipelined":
        dense = dense_step_plan(cfg, mode, region, W, stats, stats_t, N, needs_input_grad)
        if dense is not None:
            return {"kind": "dense", **dense, "region": region, "stats": stats,
                    "stats_t": stats_t, "needs_input_grad": needs_input_grad}
        return {"kind": "sparse", "cfg": cfg, "N": N, "region": region, "W": W,
                "stats": stats, "stats_t": stats_t, "needs_input_grad": needs_input_grad,
                "weight-gradient": analytic.sddmm_cycles(stats, N, cfg, region),
                "update": update_cycles(cfg, region, W)}
    if costed is None:
        parts, latency, sram = streaming_parts(cfg, region, stats, stats_t, N,
                                               needs_input_grad)
        reports = None
    else:
        parts, latency, reports = costed
        reports = dict(reports)
        sram = int(max(r.sram_peak_bytes for r in reports.values()))
    return {"kind": "fixed", "N": N, "parts": dict(parts), "latency": latency,
            "reports": reports, "sram": sram, "stats": stats, "stats_t": stats_t,
            "step": (cfg, mode, region, W, needs_input_grad)}


def streaming_parts(cfg, region, stats, stats_t, N, needs_input_grad):
    """:func:`step_cost`'s (cycles per part, latency) of a weight-streaming step of N
    samples, and its reports' SRAM peak, without the reports (their per-PE maps): the
    same placements and timing, so the same floats. The weight gradient streams W over X
    as the forward does (step_cost costs it with the same call)."""
    fwd, _, sram = analytic.activation_stationary_cycles(stats, N, cfg, region)
    gin = 0.0
    if needs_input_grad:
        gin, _, sram_t = analytic.activation_stationary_cycles(stats_t, N, cfg, region)
        sram = max(sram, sram_t)
    return {"forward": fwd, "input-gradient": gin, "weight-gradient": fwd,
            "update": 0.0}, 0.0, sram


def planned_reports(plan, x_nz, g_nz):
    """The reports :func:`step_cost` gives a step of a ``"fixed"`` plan (weight streaming):
    the plan's, with the useful MACs (the one field the operands' values change) counted
    from this step's patterns, as Operands counts them. None for the other plans (their
    reports are step_cost's to build). ``x_nz`` and ``g_nz``: X's and G's nonzero patterns
    (K x N, M x N), or only the nonzeros of each of their rows (length K, M): all that the
    count reads."""
    if plan is None or plan["kind"] != "fixed":
        return None
    useful_x = int(plan["stats"].col_nnz @ _row_nnz(x_nz, plan["stats"].K, "x_nz"))
    useful = {"forward": useful_x, "weight-gradient": useful_x,     # both stream W over X
              "input-gradient": int(plan["stats_t"].col_nnz
                                    @ _row_nnz(g_nz, plan["stats_t"].K, "g_nz"))}

    def report(k):
        r = _plan_report(plan, k)
        return dataclasses.replace(r, macs_useful=useful[k], details=dict(r.details))
    return LazyReports(_report_names(plan["step"][4]), report)


def planned_forward(plan):
    """(MACs performed, dense MACs, bottleneck) of the forward report
    :func:`planned_reports` gives a ``"fixed"`` plan's step, without making that report
    (its per-PE maps of the whole region); None for the other plans."""
    if plan is None or plan["kind"] != "fixed":
        return None
    if plan["reports"] is not None or "forward" in plan.get("made", {}):
        r = _plan_report(plan, "forward")
        return r.macs_performed, r.macs_dense, r.bottleneck
    cfg, _, region, _, _ = plan["step"]
    return analytic.activation_stationary_figures(plan["stats"], plan["N"], cfg, region)


def step_forward_figures(plan, cfg, mode, region, W, stats, stats_t, X, G, needs_input_grad):
    """(MACs performed, dense MACs, bottleneck) of the forward report :func:`step_reports`
    gives a layer-pipelined step (arguments as there; ``plan`` the step's
    :func:`step_plan`, or None), without making it: analytic.dense_screen_figures for a
    dense plan, else analytic.weight_stationary_figures. None for weight streaming (its
    figures are :func:`planned_forward`'s, or the report's)."""
    if mode != "layer-pipelined":
        return None
    if plan is not None and plan["kind"] == "dense" and plan["cfg"] is cfg \
            and plan["N"] == X.shape[1] and plan["region"] is region:
        return analytic.dense_screen_figures(plan["forward"], X, cfg, stats.M)
    return analytic.weight_stationary_figures(stats, X, cfg, region)


def _report_names(needs_input_grad):
    """The products a step's reports name, in step_cost's order."""
    return (("forward", "input-gradient", "weight-gradient") if needs_input_grad
            else ("forward", "weight-gradient"))


def _plan_report(plan, k):
    """Product ``k``'s report of a ``"fixed"`` plan, as :func:`step_cost` makes it on zero
    operands (the useful MACs aside, the operands change no field): the plan's own when it
    was costed with them, else made when first asked and kept on the plan (each report
    holds per-PE maps of the whole region: a reader of the forward's alone pays for one)."""
    if plan["reports"] is not None:
        return plan["reports"][k]
    made = plan.setdefault("made", {})
    if k not in made:
        cfg, _, region, W, _ = plan["step"]
        N = plan["N"]
        if k == "weight-gradient":          # step_cost's: the forward's very report
            fwd = _plan_report(plan, "forward")
            made[k] = dataclasses.replace(fwd, details=dict(fwd.details))
        elif k == "forward":
            X = np.zeros((W.shape[1], N), bool)
            made[k] = analytic.activation_stationary(W, X, cfg, region, passes=1, full=False,
                                                     ops=Operands(W, X, plan["stats"]))
        else:
            G = np.zeros((W.shape[0], N), bool)
            made[k] = analytic.activation_stationary(None, G, cfg, region, passes=1,
                                                     full=False,
                                                     ops=Operands(None, G, plan["stats_t"]))
    return made[k]


class LazyReports(collections.abc.Mapping):
    """A step's reports by product name, each made when first read (then kept)."""

    def __init__(self, names, make):
        self._names, self._make, self._made = tuple(names), make, {}

    def __getitem__(self, k):
        if k not in self._names:
            raise KeyError(k)
        if k not in self._made:
            self._made[k] = self._make(k)
        return self._made[k]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


def _row_nnz(a, rows, name):
    """The nonzeros of each of the ``rows`` rows of a pattern (2-D), or those counts as
    given (1-D), as int64."""
    a = np.asarray(a)
    if a.ndim == 2 and a.shape[0] == rows:
        return a.sum(axis=1).astype(np.int64)
    if a.ndim == 1 and a.shape[0] == rows and a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    raise ValueError(f"{name} must be a pattern with {rows} rows or its {rows} row counts; "
                     f"received {a.dtype} of shape {a.shape}")


def planned_step(plan, x_nz, g_nz, sram=False, nnz=(None, None)):
    """:func:`step_cost`'s (cycles per part, latency) and the step's SRAM peak (None where
    the plan's placement cannot change it: every step of a dense or a fixed plan has the
    first's; with ``sram``, a dense plan's step gives it too, as its reports would, or None
    where a block fits in neither format) for the
    step of ``plan`` (:func:`step_plan`), from X's and G's nonzero patterns (bool, K x N
    and M x N) alone, without the reports. ``nnz``: the patterns' nonzero counts where
    the caller has them (a dense plan reads them)."""
    kind = plan["kind"]
    if kind == "dense":
        parts, latency = dense_step(plan, x_nz, g_nz, nnz)
        if not sram:
            return parts, latency, None
        # its blocks are dense whatever the batch: the peak reads W's structure alone
        peaks = [analytic.dense_sram_peak(s, plan["cfg"], plan["region"])
                 for s in (plan["stats"], plan["stats_t"])[:1 + plan["needs_input_grad"]]]
        if None in peaks:               # a block fits in neither format: step_cost's
            return parts, latency, None
        return parts, latency, max(*peaks, _sddmm_sram(plan))
    for name, nz in (("x_nz", x_nz), ("g_nz", g_nz)):
        if nz.ndim != 2 or nz.shape[1] != plan["N"]:
            raise ValueError(f"the plan is for steps of {plan['N']} samples; received "
                             f"{name} of shape {nz.shape}")
    if kind == "fixed":
        return dict(plan["parts"]), plan["latency"], None
    # weight_stationary_cycles of each product, its structure looked up once per plan
    steps = _per_product(plan, "ws-steps", analytic.weight_stationary_step)
    fwd, fwd_lower, sram = steps[0](x_nz)
    gin = 0.0
    if steps[1] is not None:
        gin, _, sram_t = steps[1](g_nz)
        sram = max(sram, sram_t)
    parts = {"forward": fwd, "input-gradient": gin,
             "weight-gradient": plan["weight-gradient"], "update": plan["update"]}
    return parts, fwd_lower / max(plan["N"], 1) * 2, max(sram, _sddmm_sram(plan))


def _per_product(plan, key, make):
    """(forward's, input gradient's or None where it is not costed) ``make(stats, cfg,
    region)`` for a sparse plan's products, made once and kept on the plan under ``key``."""
    got = plan.get(key)
    if got is None:
        cfg, region = plan["cfg"], plan["region"]
        got = plan[key] = (make(plan["stats"], cfg, region),
                           make(plan["stats_t"], cfg, region)
                           if plan["needs_input_grad"] else None)
    return got


def planned_steps(plan, x_nzs, g_nzs, nnzs):
    """:func:`planned_step` (without ``sram``) of several steps of a ``"sparse"`` or
    ``"dense"`` plan, in order, from their patterns ``x_nzs``, ``g_nzs`` and counts
    ``nnzs`` (pairs, as planned_step's ``nnz``): a list of ((forward, input-gradient,
    weight-gradient, update) cycles, latency, SRAM peak) per step, the same floats, each
    product of the steps timed in one native call. Refuses what planned_step refuses."""
    kind, N = plan["kind"], plan["N"]
    for name, nzs in (("x_nz", x_nzs), ("g_nz", g_nzs)):
        for nz in nzs:
            if kind == "dense" and (nz.dtype != np.bool_ or nz.ndim != 2):
                raise ValueError(f"{name} must be a 2-D bool array (X != 0); received "
                                 f"{nz.dtype} of shape {nz.shape}")
            if nz.ndim != 2 or nz.shape[1] != N:
                raise ValueError(f"the plan is for steps of {N} samples; received "
                                 f"{name} of shape {nz.shape}")
    n = len(x_nzs)
    if kind == "dense":
        cfg, gin = plan["cfg"], plan["input-gradient"]
        fwd, lower = analytic.dense_screen_cycles_many(plan["forward"], x_nzs, cfg,
                                                       [c[0] for c in nnzs])
        gin = analytic.dense_screen_cycles_many(gin, g_nzs, cfg, [c[1] for c in nnzs])[0] \
            if gin is not False else [0.0] * n
        sram = [None] * n
    elif kind == "sparse":
        many = _per_product(plan, "ws-many", analytic.weight_stationary_many)
        fwd, lower, sram = many[0](x_nzs)
        gin = [0.0] * n
        if many[1] is not None:
            gin, _, sram_t = many[1](g_nzs)
            sram = [max(a, b) for a, b in zip(sram, sram_t)]
        sram_w = _sddmm_sram(plan)
        sram = [max(a, sram_w) for a in sram]
    else:
        raise ValueError(f"planned_steps takes a sparse or dense plan; received {kind!r}")
    wgrad, update, per = plan["weight-gradient"], plan["update"], max(N, 1)
    return [((f, g, wgrad, update), low / per * 2, m)
            for f, g, low, m in zip(fwd, gin, lower, sram)]


def _sddmm_sram(plan):
    """The weight gradient's SRAM peak in a step of ``plan``: W's structure and N alone."""
    sram_w = plan.get("sddmm_sram")
    if sram_w is None:
        sram_w = plan["sddmm_sram"] = int(analytic.sddmm_sram_peak(
            plan["stats"], plan["N"], plan["cfg"], plan["region"]))
    return sram_w


def sddmm_useful(G, X, W, stats=None):
    """Pairs of nonzero gradient and nonzero activation summed over the kept weights.

    With ``stats`` (a WeightStats of a W without duplicate entries) and W mostly nonzero:
    every pair of the M x K box, sample by sample, less those at W's zeros, in
    O((M + K) * B + zeros * B) rather than O(nnz * B)."""
    from ..kernels import sddmm
    M, K = W.shape
    if stats is None or 2 * W.nnz <= M * K or not W.has_canonical_format:
        return int(sddmm((G != 0).astype(np.float32), (X != 0).astype(np.float32), W).sum())
    g, x = G != 0, X != 0
    total = int(np.count_nonzero(g, axis=0) @ np.count_nonzero(x, axis=0))
    zr, zc = _box_zeros(stats)
    return total - int(np.count_nonzero(g[zr] & x[zc])) if len(zr) else total


def _box_zeros(stats):
    """(rows, columns) of the M x K box where W stores nothing, kept on its stats."""
    if "zeros" not in stats.cache:
        box = np.ones((stats.M, stats.K), bool)
        box[stats.w_row, stats.w_col] = False
        stats.cache["zeros"] = np.nonzero(box)
    return stats.cache["zeros"]


def prepare_step(cfg, mode, region, W, stats, stats_t, N=None):
    """Work out once what every step's cost reads of W's structure on ``region`` (the
    forward's and the input gradient's blocks and formats, the weight gradient's blocks,
    where W stores nothing, the per-step structure of analytic.weight_stationary_cycles,
    with N the placed batch's columns the weight gradient's figures), kept on the stats:
    a step then pays only for its batch. Layer-pipelined only; caches, so no step's
    numbers change."""
    if mode != "layer-pipelined":
        return
    analytic.prepare_weight_stationary(stats, cfg, region)
    analytic.prepare_weight_stationary(stats_t, cfg, region)
    if analytic.dense_screen(stats, cfg, region) is None \
            or analytic.dense_screen(stats_t, cfg, region) is None:
        # a "sparse" plan (step_plan): its products are timed per step from this
        # structure, found on the stats by the same (config, region)
        analytic.prepare_step_structure(stats, cfg, region)
        analytic.prepare_step_structure(stats_t, cfg, region)
    if N:
        try:        # the weight gradient of N columns: W's structure and N alone
            analytic.sddmm_cycles(stats, N, cfg, region)
        except SramOverflowError:
            pass    # the step raises it, as it would have
    analytic.sddmm_structure(stats, int(region[2]), int(region[3]))
    if 2 * W.nnz > W.shape[0] * W.shape[1] and W.has_canonical_format:  # as sddmm_useful
        _box_zeros(stats)


def prepare_streaming(cfg, region, stats, stats_t, N):
    """Time once, when placed, a weight-streaming step of N activation columns (the
    forward and the weight gradient stream W, the input gradient W.T): those times read
    W's structure and N alone and are kept on the stats
    (analytic.activation_stationary_cycles), so the steps of the placed batch find them.
    A product that does not fit is left to the step (a first layer's input gradient is
    never costed)."""
    for s in (stats, stats_t):
        try:
            analytic.activation_stationary_cycles(s, int(N), cfg, region)
        except SramOverflowError:
            pass


def link_hops(src, dst):
    """Hops between the nearest edges of two regions (at least 1)."""
    (r0, c0, R, C), (s0, d0, S, D) = src, dst
    gap_cols = max(0, d0 - (c0 + C - 1), c0 - (d0 + D - 1))
    gap_rows = max(0, s0 - (r0 + R - 1), r0 - (s0 + S - 1))
    return max(1, gap_cols + gap_rows)


def link_step(cfg, src, dst, values, nnz, size, backward, plan=None):
    """One step of activations sent from region ``src`` to ``dst``: ``values`` forward as
    sparse wavelets (zeros never sent) or dense ones, whichever is fewer, at the zero
    fraction of the consumer's input (``nnz`` of ``size``); with ``backward``, the gradient
    back dense; over the rows the two regions share, after the hops between them.
    Returns (forward wavelets, backward wavelets, cycles, hop latency). ``plan``:
    :func:`link_plan` of (cfg, src, dst), where the caller keeps it."""
    per_dense, per_sparse, lanes, hop_cycles = plan or link_plan(cfg, src, dst)
    nonzeros = round(values * nnz / max(size, 1))
    dense = math.ceil(values / per_dense)
    forward = min(dense, nonzeros * per_sparse)
    back = dense if backward else 0
    return forward, back, (forward + back) / lanes + hop_cycles, hop_cycles


def link_plan(cfg, src, dst):
    """What :func:`link_step` reads of the config and the two regions, the same every step:
    (values per dense wavelet, wavelets per sparse value, lanes, hop latency)."""
    lanes = max(1, min(src[2], dst[2])) * cfg.link_wavelets_per_cycle
    hop_cycles = link_hops(src, dst) * cfg.hop_cycles + 2 * cfg.ramp_cycles
    return cfg.values_per_dense_wavelet, cfg.wavelets_per_sparse_value, lanes, hop_cycles


def attention_step(cfg, shape, pes):
    """Cycles of one step of attention products (Q K^T and A V, dense x dense) and the
    softmax for ``shape`` = (B, heads, Tq, Tk, key_dim, value_dim) on ``pes`` PEs: a coarse
    compute-or-fabric estimate (forward, and twice that for backward)."""
    B, h, Tq, Tk, k, v = shape
    macs = B * h * Tq * Tk * (k + v)
    compute = macs / (pes * cfg.fmacs)
    softmax = 5 * B * h * Tq * Tk / (pes * cfg.fmacs)          # max, sub, exp, sum, div
    moved = B * h * (Tq * k + Tk * (k + v)) / cfg.values_per_dense_wavelet
    fabric = moved / max(2 * np.sqrt(pes), 1) / cfg.link_wavelets_per_cycle
    return 3 * (max(compute, fabric) + softmax)
