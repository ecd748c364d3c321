"""Analytic cost of the wafer mappings, from the real nonzero structure of the operands.

Every model here is O(nnz + PEs + blocks * samples) — never O(M * K * N) — and
returns a :class:`SimReport` with an estimate and a lower and an upper bound. The
placement (where blocks live, their format, the SRAM) comes from placement.py; the
functions here only cost it.

Notation (suffixes name the axes an array runs over)
    M, K, N     W is M x K, X is K x N (N samples, the batch); R x C the region's PEs
    r, c, n, k  a PE row, a PE column, a sample, a column of W / row of X
    M_r, K_c    rows of W held by PE row r, columns held by PE column c (block sizes)
    a_cn        nonzero activations arriving at PE column c in sample n; A_c = sum_n a_cn
    A_k         nonzero activations in row k of X over the batch
    nnz_rc      nonzeros of W's block (r, c); use_comp (R x C) the blocks stored compressed
    v_cn        wavelets streamed down column c in sample n (values, then an EOS marker)
    L           wavelets of partial sums a PE sends per sample (per round) on its chain
    fill        cycles for the first wavelet to cross the region
    t_dense     a dense column's task per nonzero activation (task + setup + AXPY)
    busy_rc     each PE's cycles of work over the whole batch

Weight-stationary (layer-pipelined; the vendor's gemv-checkerboard, spmv-hypersparse)
    Y = W @ X on an R x C region: PE (r, c) holds block W[rows_r, cols_c], dense or
    compressed (the cheaper that fits; the exact model also costs the pace-safe formats,
    see :func:`weight_stationary_placement`). Each sample's X[cols_c, n] streams from the
    north edge down PE column c; only nonzeros become wavelets, and an end-of-stream
    marker closes each sample. A nonzero x_k starts a task costing
    ``task + setup + ceil(M_r / fmac)`` over a dense column, or
    ``task + scalar * nnz(W[rows_r, k])`` over a compressed one. Partial sums
    (dense, M_r values per sample) are reduced eastward along each PE row.
    Time (src/_pipeline.pyx): where rows cost differently per wavelet, each multicast
    column is followed wavelet by wavelet through its routers' and cores' queues
    (``queue_depth``); then every PE row is a reduction chain, followed sample by
    sample: a PE's compute of sample n waits for its stream and for the reduction of
    sample n - 2 to leave it (double-buffered accumulators); the chain's first PE
    launches a send, each stage turns a wavelet round in ``stage_cycles``, a sender
    waits for its receiver's queues, the root ends each sample with a task.
    A link holds a wavelet ``1 / link_wavelets_per_cycle`` cycles, rounded up to whole
    cycles, at least one (the fabric is clocked: :func:`_link_dt`), so a link rate of 0.8
    costs what 0.5 does: a message of sums is
    serialised on every link (its wavelets that far apart, or a cycle apart where the
    link is faster than the reducer), and a core's ramp, which carries both its column's
    stream and the sums from the west, takes a sample's first sums only after that
    sample's end-of-stream marker has left it; the exact estimate is never below the
    busiest ramp's load.
    Measured against the event simulation by ``wsekern validate``.
Activation-stationary (weight streaming)
    X sits dense on the PEs (rows of X over PE rows, samples over PE columns); the
    nonzero weights stream in at the external bandwidth, each one a full-rate AXPY
    over the stationary activations of its PE row; partial rows of Y are reduced
    southward, a row of W per round, on the same chain recurrence.
Resident (region 1x1; the vendor's single-tile-matvec)
    One PE holds A, B and C; C[:, n] += A[:, k] * B[k, n] as AXPYs, zeros included.
SUMMA (dense x dense, the vendor's gemm-collectives_2d)
    On the PEs holding a tile of C, P steps; at step s PE column s broadcasts its A tile
    along rows and PE row s its B tile along columns (not along a side of one PE); each
    PE then does a tile GEMM, costed with the instruction-level
    steps of mesh.py (MeshGEMM, Cannon on the two-hop ring, is the other dense mapping).
"""
import hashlib
import math
import sys

import numpy as np
import scipy.sparse as sps

from .._screen import DenseStep as _DenseStep
from .._screen import any_zero as _any_zero
from .._screen import dense_stream as _dense_stream
from .._step_cost import WsStep as _WsStep
from .._step_cost import ws_dead_columns as _ws_dead_columns
from .._step_cost import ws_pack_entries as _ws_pack_entries
from .._step_cost import ws_step_columns as _ws_step_columns
from .._step_cost import ws_step_figures as _ws_step_figures
from .._step_cost import ws_table as _ws_table
from . import placement as placer
from .figures import energy as _energy
from .figures import wafer_array as _wafer_array
from .ledger import SramLedger
from .mesh import map_op, mem_op
from .placement import FIFO_BYTES, Operands
from .placement import block_of as _block_of
from .placement import bounds as _bounds
from .report import SimReport, named_bottleneck

# PEs x rounds (or stream wavelets x rows) the exact models follow one by one
PER_PE_LIMIT = 1 << 25


# --------------------------------------------------------------------------------------
# Weight-stationary
# --------------------------------------------------------------------------------------
def weight_stationary(W, X, config, region, *, what="spmm", ops=None, exact=True, full=True,
                      placement=None, choose_formats=None):
    """Cost of Y = W @ X with W stationary and the nonzeros of X streamed.

    ``ops`` reuses an :class:`Operands` of (W, X); ``placement`` a
    :class:`placement.Placement` of it on ``region`` (else the placer's rule makes one).
    ``exact=False`` (the placer's screen) takes a compressed block's per-sample work as
    its batch work shared in proportion to the activations arriving in each sample,
    instead of counting it exactly.
    ``choose_formats`` (default: when no placement is given) takes the placement as the
    placer's per-block format choice and, in the exact model, costs the pace-safe one
    too (:func:`weight_stationary_placement`), keeping the faster.
    """
    ops = ops if ops is not None else Operands(W, X)
    if choose_formats is None:
        choose_formats = placement is None
    pl = placement if placement is not None else placer.weight_stationary(ops, config, region,
                                                                          what)
    if choose_formats and exact:
        pl, timing = _ws_choose(ops, pl, config, what)
    else:
        timing = _ws_cycles(ops, pl, config, *_ws_work(ops, pl, config, exact), exact=exact)
    return _ws_report(ops, pl, config, timing, full)


def weight_stationary_placement(ops, config, region, what="spmm"):
    """The placement :func:`weight_stationary` (exact) costs for the :class:`Operands`
    ``ops`` on ``region``: the formats a program compiled for W and the batch would take.

    The placer's rule stores a block compressed where that block alone is faster over
    the batch. The rows of a PE column share one multicast stream, though: a compressed
    block cheaper in total but dearer on some wavelets paces the column (a 90 %-sparse
    W could cost more than a 50 %-sparse one on the same region). So the exact model
    also costs the pace-safe formats (:func:`placement.pace_safe_formats`: compressed only
    where never dearer per wavelet, or where dense does not fit) and keeps the faster;
    the event simulation runs the same placement."""
    pl = placer.weight_stationary(ops, config, region, what)
    return _ws_choose(ops, pl, config, what)[0]


def _ws_choose(ops, pl, config, what):
    """(placement, its exact timing): the placer's ``pl`` or its pace-safe formats,
    whichever the exact model finds faster (the placer's on a tie)."""
    timing = _ws_cycles(ops, pl, config, *_ws_work(ops, pl, config, True))
    if not pl.use_comp.any():
        return pl, timing
    safe = placer.pace_safe_formats(ops, config, pl.region, pl.use_comp)
    if np.array_equal(safe, pl.use_comp):
        return pl, timing
    if _ws_busy_bound(ops, pl, config, safe) >= timing["est"]:
        return pl, timing          # the pace-safe formats cannot be faster: skip their pass
    alt = placer.weight_stationary(ops, config, pl.region, what, use_comp=safe)
    alt_timing = _ws_cycles(ops, alt, config, *_ws_work(ops, alt, config, True))
    return (alt, alt_timing) if alt_timing["est"] < timing["est"] else (pl, timing)


def _ws_busy_bound(ops, pl, config, use_comp):
    """The busiest-PE term of :func:`_ws_cycles`' lower bound for ``pl``'s blocks stored
    as ``use_comp`` says: the exact model never costs that placement less."""
    busy = np.where(use_comp, pl.block["comp_time"], pl.block["dense_time"])
    return (config.hop_cycles + config.ramp_cycles + busy.max(initial=0)
            + ops.N * config.task_cycles + config.task_cycles)


def has_zero(w):
    """Whether the array ``w`` holds a zero of either sign (``(w == 0).any()``; NaN is not
    zero), in one pass without the mask where ``w`` is C-contiguous float32 or float64: a
    Dense kernel is checked every step for weights that became zero."""
    return _any_zero(w)


def _nonzero_pattern(x_nz, K):
    """``x_nz`` as X's nonzero pattern (K x samples, bool), refused in another shape."""
    x_nz = np.asarray(x_nz)
    if x_nz.ndim != 2 or x_nz.shape[0] != K:
        raise ValueError(f"x_nz must be X's nonzero pattern, {K} x samples; received "
                         f"shape {x_nz.shape}")
    return x_nz if x_nz.dtype == np.bool_ else x_nz != 0


def weight_stationary_cycles(w, x_nz, config, region):
    """(cycles, lower bound, SRAM peak bytes) that :func:`weight_stationary` with
    ``exact=False`` reports (``cycles``, ``cycles_lower``, ``sram_peak_bytes``) for the
    spmm of W (``w``, its WeightStats) on ``region`` and X's nonzero pattern ``x_nz``
    (K x N, bool), without building the placement or the report: the same formats, work
    and pipeline on the same values, so the same floats. A training step costs its
    products with this; the reports wait until read.

    What no batch changes is worked out once per (W, config, region) and kept on W's stats
    (:func:`_step_structure`): the blocks' bytes and which format fits, and the nonzeros
    per (block, column of W). A batch then costs one pass over X and one over the blocks
    (src/_step_cost.pyx: the format each takes, the per-column maxima, each column's
    stream) and the pipeline over columns x samples.
    Raises the placement's SramOverflowError where a block fits in neither format."""
    x_nz = _nonzero_pattern(x_nz, w.K)
    st = _step_structure(w, config, region)
    if st["overflow"]:
        # raises, naming the PE
        placer.weight_stationary(Operands(None, x_nz, w), config, region)
    # placement.weight_stationary's format choice and _ws_work's (exact=False) work per
    # column and sample, in one pass down each PE column (its X rows, its blocks); then
    # _ws_cycles' estimate and lower bound (one chain of the columns' slowest PEs)
    # (and, in the same call, grid_pipeline's chain of the columns over the samples)
    return _ws_step_cycles(st)(x_nz)


def weight_stationary_step(w, config, region):
    """:func:`weight_stationary_cycles` for W (``w``, its WeightStats) on ``region`` as a
    function of ``x_nz`` alone, its structure looked up once: a training plan's steps call
    it (the same checks, the same floats)."""
    st = _step_structure(w, config, region)
    if st["overflow"]:          # every call raises, naming the PE
        return lambda x_nz: weight_stationary_cycles(w, x_nz, config, region)
    step = _ws_step_cycles(st)
    K = w.K

    def cycles(x_nz):
        if type(x_nz) is not np.ndarray or x_nz.dtype != np.bool_ or x_nz.ndim != 2 \
                or x_nz.shape[0] != K:
            x_nz = _nonzero_pattern(x_nz, K)
        return step(x_nz)
    return cycles


def weight_stationary_many(w, config, region):
    """:func:`weight_stationary_step` for several patterns at once: ``cycles(x_nzs)`` gives
    the (cycles, lower bounds, SRAM peaks) of X's patterns ``x_nzs``, in order, as three
    lists, from one native call (src/_step_cost.pyx's WsStep.cycles_many: the same run
    and bound, so the same floats)."""
    st = _step_structure(w, config, region)
    if st["overflow"]:          # the first pattern raises, naming the PE
        one = weight_stationary_step(w, config, region)
        return lambda x_nzs: tuple(map(list, zip(*map(one, x_nzs)))) or ([], [], [])
    step, bound, K = st["step"], st["bound"], w.K

    def cycles(x_nzs):
        x_nzs = [x if type(x) is np.ndarray and x.dtype == np.bool_ and x.ndim == 2
                 and x.shape[0] == K else _nonzero_pattern(x, K) for x in x_nzs]
        est, lower, sram = step.cycles_many(x_nzs, *bound)
        return est.tolist(), lower.tolist(), sram.tolist()
    return cycles


def _ws_step_cycles(st):
    """The step of :func:`weight_stationary_cycles` on the structure ``st`` after its
    checks, for X's pattern (K x N, bool): one function per structure, kept on it."""
    step = st.get("cycles")
    if step is not None:
        return step
    run = st["step"].run
    first_hop, task, dt, L_max, blocks, chained = st["bound"]

    def step(x_nz):
        busy, v_max, sram, est, v_west = run(x_nz.view(np.uint8))
        N = x_nz.shape[1]
        busy_max = busy + N * task if blocks else 0.0      # each sample's end-of-stream task
        lower = max(first_hop + busy_max, first_hop + v_max * dt,
                    N * (L_max + task) if chained else 0.0) + task
        # _ws_cycles' ramp term: a core's ramp takes its column's stream and the sums
        # (the estimate's floor too)
        ramp_load = v_west + N * L_max if chained and L_max > 0 else 0
        if ramp_load:
            ramp_bound = first_hop + (ramp_load - 1) * dt + task
            lower = max(lower, ramp_bound)
            est = max(est, ramp_bound)
        return float(est), float(min(lower, est)), sram
    st["cycles"] = step
    return step


def weight_stationary_figures(w, x_nz, config, region):
    """(``macs_performed``, ``macs_dense``, ``bottleneck``) of :func:`weight_stationary`'s
    report with ``exact=False`` for the spmm of W (``w``, its WeightStats) on ``region`` and
    X's nonzero pattern ``x_nz`` (K x N), without the report: one native pass over X and
    the blocks (src/_step_cost.pyx's ws_step_figures: the placement's formats, the same
    counts and the same timing terms as :func:`_ws_work` and :func:`_ws_cycles`) and the
    cycles of :func:`weight_stationary_cycles`; no bounds, traffic or per-PE maps. A
    training epoch's report reads these of each layer's last step. None where the count
    passes 2**53 (the report sums it in float64). Raises the placement's
    SramOverflowError where a block fits in neither format."""
    x_nz = _nonzero_pattern(x_nz, w.K)
    # the cycles (the report names its bottleneck from them too: none, overhead); raises
    # where a block fits in neither format
    cycles = weight_stationary_cycles(w, x_nz, config, region)[0]
    st = _step_structure(w, config, region)
    R, C, N = st["R"], st["C"], x_nz.shape[1]
    fig = st.get("figures")
    if fig is None:         # the block arrays row-major, and the row blocks' heights
        fig = st["figures"] = (
            np.ascontiguousarray(st["choice_cm"].reshape(C, R).T, np.int8).ravel(),
            np.diff(w.row_block(R)[0]).astype(np.int64))
    S = st["S"]
    performed, work_max, v_max, busiest_comp, any_comp = _ws_step_figures(
        x_nz.view(np.uint8), st["k_b"], S.indptr, S.indices, S.data, st["t_dense"], fig[1],
        fig[0], st["task"], st["scalar"], st["task"], st["wpv"], False)
    if any_comp and performed >= 1 << 53:
        return None
    L, dt = st["L_max"], st["dt"]
    terms = {"compute": float(work_max.sum()), "fabric": float((v_max * dt).sum()),
             "reduction": float(N * (L * dt)),
             "latency": float(R * config.hop_cycles + config.ramp_cycles
                              + _chain_latency(config, C, L))}
    bottleneck = max(terms, key=terms.get)
    if bottleneck == "compute" and busiest_comp:
        bottleneck = "scalar"
    return performed, int(w.M) * int(w.K) * int(N), \
        named_bottleneck(bottleneck, performed, cycles)


# _entries_by_column counts in a dense K x R table up to this many cells (one pass of
# bincount), beyond it through SciPy's sort (the same matrix)
_DENSE_COUNT_CELLS = 1 << 24


def _entries_by_column(w, rb, cb, R, C):
    """W's nonzeros per (block, column of W), by column of W (a step skips the columns no
    activation reaches): K x R * C CSR, row k holding blocks b = r * C + cb[k] in r order
    and their counts (duplicates summed); indptr int64, indices int32, counts int64."""
    K = w.K
    if K * R <= _DENSE_COUNT_CELLS:
        counts = np.bincount(w.w_col * R + rb[w.w_row], minlength=K * R)
        cell = np.flatnonzero(counts)           # by k, then r (2-D nonzero is far slower)
        k, r = np.divmod(cell, R) if R else (cell, cell)
        indptr = np.zeros(K + 1, np.int64)
        np.cumsum(np.bincount(k, minlength=K), out=indptr[1:])
        S = sps.csr_array((counts[cell].astype(np.int64), r * C + cb[k], indptr),
                          shape=(K, R * C))
    else:
        S = sps.csr_array((np.ones(w.nnz, np.int64),
                           (rb[w.w_row] * C + cb[w.w_col], w.w_col)), shape=(R * C, K))
        S.sum_duplicates()
        S = S.T.tocsr()
    S.indptr, S.indices = S.indptr.astype(np.int64), S.indices.astype(np.int32)
    return S


def _step_structure(w, config, region):
    """What :func:`weight_stationary_cycles` reads of W's structure (``w``, its
    WeightStats) on ``region`` whatever the batch, kept on ``w`` per (config, region)."""
    # a plan's steps pass the same region tuple (immutable): found without the key
    last = w.cache.get("ws-step-last")
    if last is not None and last[0] is config and last[1] is region:
        return last[2]
    key = ("ws-step", id(config), tuple(int(v) for v in region))
    hit = w.cache.get(key)
    if hit is not None and hit[0] is config:
        if type(region) is tuple:
            w.cache["ws-step-last"] = (config, region, hit[1])
        return hit[1]
    R, C = int(region[2]), int(region[3])
    st = placer._ws_static(Operands(None, np.zeros((w.K, 0), bool), w), config, region)
    _, rb = w.row_block(R)
    _, cb = w.col_block(C)
    S = _entries_by_column(w, rb, cb, R, C)
    M_r = np.diff(st["m_b"])
    red_wavelets = np.ceil(M_r / config.values_per_dense_wavelet)
    L = red_wavelets.astype(np.int64) if C > 1 else np.zeros(R, np.int64)
    k_b = np.ascontiguousarray(st["k_b"], np.int_)
    # each block's format: 0 dense, 1 compressed, 2 the faster for the batch
    # (placement.weight_stationary's rule: where both fit, compressed wins only when
    # faster; where neither, the smaller)
    choice = np.where(st["either_fits"],
                      np.where(st["comp_fits"], np.where(st["dense_fits"], 2, 1), 0),
                      st["comp_smaller"].astype(np.int8)).astype(np.int8)
    comp_total, dense_total = _block_bytes(st, config, R, C)
    # the step runs down each PE column: the block arrays numbered b = c * R + r, and each
    # nonzero of W's column k known by its row block (its PE column is the one whose X
    # rows hold k: S's block index is r * C + that column)
    s_cols = S.indices % C if C else S.indices
    pe_col = np.searchsorted(k_b, np.arange(w.K), side="right") - 1
    if not np.array_equal(s_cols, np.repeat(pe_col, np.diff(S.indptr))):
        raise AssertionError("W's column blocks disagree with the placement's X rows")
    # a step reads these from memory the training step has left cold: int32 where every
    # value fits (a block's nonzeros per column always do)
    small = np.iinfo(np.int32).max
    if S.data.size and S.data.max() > small:
        raise ValueError(f"more than {small:,} nonzeros in one column of a PE block")
    narrow = np.int32 if max(comp_total.max(initial=0), dense_total.max(initial=0)) <= small \
        and min(comp_total.min(initial=0), dense_total.min(initial=0)) >= -small else np.int64
    structure = {
        "R": R, "C": C, "S": S, "t_dense": np.ascontiguousarray(st["t_dense"], np.float64),
        "k_b": k_b, "s_indptr": S.indptr,
        "s_rows": np.ascontiguousarray(S.indices // C if C else S.indices, np.int32),
        "s_data": S.data.astype(np.int32),
        "choice_cm": np.ascontiguousarray(choice.reshape(R, C).T).ravel(),
        "overflow": bool((~st["either_fits"]).any()),
        "fill": np.array([R * config.hop_cycles + config.ramp_cycles], np.float64),
        "L": (L.max(keepdims=True) if R else np.zeros(1)).astype(np.int_),
        "comp_total_cm": np.ascontiguousarray(comp_total.T, narrow).ravel(),
        "dense_total_cm": np.ascontiguousarray(dense_total.T, narrow).ravel(),
        # the config's figures a step reads, as weight_stationary_cycles used them
        "task": float(config.task_cycles), "scalar": float(config.scalar_cycles_per_element),
        "wpv": int(config.wavelets_per_sparse_value),
        "dt": _link_dt(config),
        "first_hop": config.hop_cycles + config.ramp_cycles}
    structure["L_max"] = int(structure["L"].max())
    # a PE column no activation of a batch reaches: its blocks' figures, worked out once
    # by the step's own loop (ws_step_columns then skips its R blocks)
    structure["dead"] = _ws_dead_columns(
        structure["t_dense"], structure["choice_cm"], structure["comp_total_cm"],
        structure["dense_total_cm"], structure["task"], structure["scalar"]) if R else None
    # grid_pipeline's figures for the columns' one chain (ws_step_columns runs it)
    structure["pipeline"] = (structure["L"], float(config.hop_cycles),
                             float(config.ramp_cycles), float(_turnaround(config)),
                             float(config.task_cycles + config.setup_cycles),
                             float(_cushion(config)), float(structure["fill"][0]),
                             _send_queue(config), True)
    # each entry's row block and count in one uint16 where both fit in a byte (None
    # otherwise): the step's pass over X reads a quarter of the memory
    structure["packed"] = _ws_pack_entries(structure["s_rows"], structure["s_data"])
    # W's nonzeros per (column of W, row block) as K x R bytes (None where a count passes
    # 255), where that is at most about four bytes per entry: on the AVX-512 path a step
    # adds each active column of W to its R blocks 8 at a time instead of entry by entry
    structure["table"] = _ws_table(S.indptr, structure["s_rows"], structure["s_data"], R) \
        if w.K * R <= 4 * S.nnz else None
    # per PE column, its largest block total in either format: a step reads a column's
    # totals only while its SRAM peak so far is below that (the same peak)
    structure["sram_bound"] = np.maximum(
        structure["comp_total_cm"].reshape(C, R), structure["dense_total_cm"].reshape(C, R)
    ).max(axis=1).astype(np.int64) if R and C else np.zeros(C, np.int64)
    # the O(nnz) checks of the structure, once: every step passes it unchanged (check=False)
    _ws_step_columns(np.zeros((w.K, 0), np.uint8), k_b, structure["s_indptr"],
                     structure["s_rows"], structure["s_data"], structure["t_dense"],
                     structure["choice_cm"],
                     structure["comp_total_cm"], structure["dense_total_cm"], 0.0, 0.0, 0.0, 1,
                     1.0, packed=structure["packed"], table=structure["table"],
                     sram_bound=structure["sram_bound"])
    # what a step passes ws_step_columns after X, and reads for its lower bound, as one
    # tuple each (S checked once above: check=False)
    structure["call"] = (
        k_b, structure["s_indptr"], structure["s_rows"], structure["s_data"],
        structure["t_dense"], structure["choice_cm"], structure["comp_total_cm"],
        structure["dense_total_cm"], structure["task"], structure["scalar"],
        structure["task"], structure["wpv"], structure["dt"], False, structure["pipeline"],
        structure["dead"], structure["packed"], structure["table"], structure["sram_bound"])
    # the same call with the structure taken once: a step passes X alone
    structure["step"] = _WsStep(w.K, *structure["call"])
    structure["bound"] = (structure["first_hop"], config.task_cycles, structure["dt"],
                          structure["L_max"], bool(R * C), C > 1)
    w.cache[key] = (config, structure)
    return structure


def _block_bytes(st, config, R, C):
    """Each PE's bytes (R x C, int64) with its block compressed and dense: the ledger's
    reserve and buffers plus the block's weights in that format (placer._ws_static's)."""
    others = config.reserve_bytes + sum(np.asarray(b, np.int64) for b in st["buffers"].values())
    return (np.asarray(others + st["comp_bytes"], np.int64).reshape(R, C),
            np.asarray(others + st["dense_bytes"], np.int64).reshape(R, C))


def dense_sram_peak(weights, config, region):
    """The SRAM peak bytes :func:`weight_stationary` reports (``exact=False``) for W
    (``weights``, its WeightStats) on ``region`` where :func:`dense_screen` holds (every
    block stored dense whatever the batch): the largest PE's bytes with its block dense,
    as :func:`weight_stationary_cycles` takes them, read without X. None where some
    block fits in neither format (weight_stationary raises)."""
    R, C = int(region[2]), int(region[3])
    st = placer._ws_static(Operands(None, np.zeros((weights.K, 0), bool), weights), config,
                           region)
    if not st["either_fits"].all():
        return None
    return max(0, int(_block_bytes(st, config, R, C)[1].max(initial=0)))


def screen_price(ops, config, region, what="spmm"):
    """The cycles :func:`weight_stationary` with ``exact=False`` reports on ``region``
    (the placer's screen), without a Placement's per-PE maps or a SimReport: the format
    choice reduced per PE column in one pass over the blocks (src/_screen.pyx), then the
    same column work and pipeline as :func:`_ws_work` and :func:`_ws_cycles`, on the same
    values. Needs the summed-area tables of a searching :class:`Operands`: None without
    them. Raises the placement's SramOverflowError where a PE overflows. O(R C + C N)."""
    from .._screen import ws_screen_columns
    work_table = ops.table("work")
    if work_table is None:
        return None
    R, C = int(region[2]), int(region[3])
    m_b, _ = ops.row_block(R)
    k_b, _ = ops.col_block(C)
    M_r = np.diff(m_b)
    t_dense = placer.dense_task_cycles(config, M_r)
    a_cn = ops.activations(C)
    A_c = a_cn.sum(axis=1)
    # where the fullest PE would fit its block in either format even with every entry
    # nonzero, no block's nonzeros change its format or its fit: they are not counted
    elem, M_max, K_max = int(config.elem_bytes), int(M_r.max()), int(np.diff(k_b).max())
    buffers = placer.FIFO_BYTES + (3 if C > 1 else 2) * M_max * elem
    counted = M_max * K_max * (elem + 2) + (K_max + 1) * 2 > config.data_bytes - buffers
    tmax_c, cmax_c, any_comp, overflow = ws_screen_columns(
        ops.table("nnz") if counted else work_table, work_table, m_b, k_b,
        np.ascontiguousarray(A_c, dtype=np.int64),
        np.ascontiguousarray(t_dense, dtype=np.float64), elem,
        placer.FIFO_BYTES, int(config.data_bytes), float(config.task_cycles),
        float(config.scalar_cycles_per_element), counted)
    if overflow:
        placer.weight_stationary(ops, config, region, what)     # raises, naming the PE
        raise AssertionError("screen_price saw an overflow the placement does not")
    # _ws_work (exact=False, one chain of the columns' slowest PEs)
    work_cn = np.zeros((C, a_cn.shape[1]))
    has_dense = np.isfinite(tmax_c)
    work_cn[has_dense] = a_cn[has_dense] * tmax_c[has_dense, None]
    if any_comp:
        share = cmax_c / np.maximum(A_c, 1)
        work_cn = np.maximum(work_cn, a_cn * share[:, None])
    work_cn += config.task_cycles
    # _ws_cycles' estimate
    v_cn = a_cn * config.wavelets_per_sparse_value + 1
    dt = _link_dt(config)
    red_wavelets = np.ceil(M_r / config.values_per_dense_wavelet)
    L = red_wavelets.astype(np.int64) if C > 1 else np.zeros(R, np.int64)
    fill = R * config.hop_cycles + config.ramp_cycles
    est = _pipeline_cycles(config, work_cn[None], v_cn, dt, np.array([fill], np.float64),
                           L.max(keepdims=True), push=_send_queue(config), shared=True)
    # _ws_cycles' floor: the busiest ramp's load
    L_max = int(L.max())
    if C > 1 and L_max > 0:
        ramp_load = v_cn[1:].sum(axis=1).max() + a_cn.shape[1] * L_max
        est = max(est, config.hop_cycles + config.ramp_cycles + (ramp_load - 1) * dt
                  + config.task_cycles)
    return float(est)


def _ws_work(ops, pl, config, exact):
    """Per PE (or per column's slowest PE) and sample, the compute, the end-of-stream
    task included: (work, work_cn, arrivals or None, per_pe)."""
    R, C = pl.shape
    N = ops.N
    use_comp = pl.use_comp
    t_dense = pl.block["t_dense"]
    a_cn = ops.activations(C)
    A_c = a_cn.sum(axis=1)
    # Each PE row is its own reduction chain and the multicast queues let rows drift
    # apart, so the exact model follows every PE; the placer's screen (and problems too
    # large to hold blocks x samples) follow each column's slowest PE on one chain.
    eos = config.task_cycles
    per_pe = exact and R * C * N <= PER_PE_LIMIT
    coupled = per_pe and use_comp.any() and R > 1 and \
        (len(ops.nz_k) * config.wavelets_per_sparse_value + C * N) * R <= PER_PE_LIMIT \
        and ops.K * R <= PER_PE_LIMIT
    if coupled:
        # compressed blocks cost differently per row: the multicast paces the rows
        work, arrivals = _multicast_work(ops, use_comp, t_dense, R, C, config)
        return work, work.max(axis=0), arrivals, per_pe
    if per_pe:
        # each PE's work (src/_screen.pyx), made one PE row at a time as the pipeline
        # needs it: blocks x samples would be hundreds of MB, written then read once
        S = _compressed_blocks(pl.block["of_nonzero"] if use_comp.any() else None,
                               ops.w_col, use_comp, R, C, ops.K)
        return _BlockWork(
            (np.ascontiguousarray(t_dense, np.float64), np.ascontiguousarray(a_cn, np.int64),
             use_comp.ravel().astype(np.uint8), S.indptr.astype(np.int64),
             S.indices.astype(np.int32), S.data.astype(np.int32),
             np.ascontiguousarray(ops.x_nz, np.uint8), float(config.task_cycles),
             float(config.scalar_cycles_per_element), float(eos)), R, C, N), None, None, per_pe
    work_cn = np.zeros((C, N))
    dense_rows = np.where(~use_comp, t_dense[:, None], -np.inf)      # R x C
    tmax_c = dense_rows.max(axis=0)                                  # per column
    has_dense = np.isfinite(tmax_c)
    work_cn[has_dense] = a_cn[has_dense] * tmax_c[has_dense, None]
    if use_comp.any() and exact:
        work_cn = np.maximum(work_cn, _compressed_work(
            pl.block["of_nonzero"], ops.w_col, ops.x_nz, a_cn, use_comp, R, C, config))
    elif use_comp.any():
        share = np.where(use_comp, pl.block["comp_time"], 0).max(axis=0) / np.maximum(A_c, 1)
        work_cn = np.maximum(work_cn, a_cn * share[:, None])
    work_cn += eos
    return work_cn[None], work_cn, None, per_pe


class _BlockWork:
    """The exact model's work per PE and sample, not yet written: the arguments of
    src/_screen.pyx's ws_block_work. :meth:`pipeline` costs it one PE row at a time;
    :meth:`materialise` writes the R x C x N array and its largest per column."""

    def __init__(self, args, R, C, N):
        self.args, self.shape = args, (R, C, N)

    def materialise(self):
        from .._screen import ws_block_work
        R, C, N = self.shape
        work, work_cn = np.empty((R, N, C)).swapaxes(1, 2), np.empty((C, N))
        return ws_block_work(*self.args, work, work_cn)

    def pipeline(self, config, v, dt, fill, L):
        """(:func:`_pipeline_cycles` of the work, the work's largest per column)."""
        from .._screen import ws_pipeline
        R, C, N = self.shape
        vcum = np.cumsum(np.asarray(v, np.float64), axis=1)
        cum = vcum * dt
        work_cn = np.empty((C, N))
        # arrivals samples-major (transposed views): the recurrence reads a round's
        # positions one after another. A column past the first takes its stream and its
        # row's sums through one ramp: ws_pipeline floors each row's last with its own L
        # (_ramp_floor's floats, from vcum)
        est = ws_pipeline(*self.args, np.ascontiguousarray((cum - v * dt).T, np.float64).T,
                          np.ascontiguousarray((cum - dt).T, np.float64).T,
                          np.ascontiguousarray(fill, np.float64),
                          np.ascontiguousarray(L, np.int_), config.hop_cycles,
                          config.ramp_cycles, _turnaround(config),
                          config.task_cycles + config.setup_cycles, _cushion(config), work_cn,
                          dt, _send_queue(config), np.ascontiguousarray(vcum.T).T)
        return est, work_cn


def _ws_cycles(ops, pl, config, work, work_cn, arrivals, per_pe, exact=True):
    """The estimate and its bounds: dict of est, lower, upper and the terms' parts.

    The recurrence gives each core's ramp to its stream and to the sums from the west
    in turn, round by round; on slow links the two share it (the event simulation
    interleaves them), so the estimate is at least the ramp's load (one of the lower
    bound's terms), the exact model's and the placer's screen's (``exact=False``; as
    screen_price, the training step and dense_screen_cycles take it): a true floor, so
    the screen no longer prefers a region whose busiest ramp is slower than its chain."""
    R, C = pl.shape
    N = ops.N
    use_comp = pl.use_comp
    M_r = np.diff(pl.row_bounds)
    t_dense = pl.block["t_dense"]
    a_cn = ops.activations(C)
    eos = config.task_cycles
    memo = _memo(pl, config)
    if "any_comp" not in memo:
        memo["any_comp"] = bool(use_comp.any())
    busy_rc = (np.where(use_comp, pl.block["comp_time"], pl.block["dense_time"])
               if memo["any_comp"] else pl.block["dense_time"]) + N * eos
    # The stream of column c: v wavelets per sample at the link rate, reaching PE row r
    # (r + 1) * hop + ramp after they enter.
    wpv = config.wavelets_per_sparse_value
    v_cn = a_cn * wpv + 1
    dt = _link_dt(config)
    vpw = config.values_per_dense_wavelet
    red_wavelets = np.ceil(M_r / vpw)                          # per PE row, per sample
    L = red_wavelets.astype(np.int64) if C > 1 else np.zeros(R, np.int64)
    fill_r = (np.arange(1, R + 1)) * config.hop_cycles + config.ramp_cycles
    if not per_pe:
        L, fill_r = L.max(keepdims=True), fill_r[-1:]
    if isinstance(work, _BlockWork):
        est, work_cn = work.pipeline(config, v_cn, dt, fill_r, L)
    else:
        est = _pipeline_cycles(config, work, v_cn, dt, fill_r, L, arrivals,
                               push=_send_queue(config), shared=True)
    fill = R * config.hop_cycles + config.ramp_cycles
    L = int(L.max())

    # Bounds: the busiest PE, the busiest stream and the root's reduction work can only
    # add up to more; every sample done alone, one after the other, is the worst case.
    ramp, task = config.ramp_cycles, config.task_cycles
    first = config.hop_cycles + ramp
    # a core's ramp carries its column's stream and, off the chain's first column, the
    # partial sums from the west: one wavelet every dt cycles
    ramp_load = (v_cn[1:].sum(axis=1).max() + N * L) if C > 1 and L > 0 else 0
    ramp_bound = first + (ramp_load - 1) * dt + task if ramp_load else 0.0
    lower = max(first + busy_rc.max(initial=0) + task, first + v_cn.sum(axis=1).max() * dt + task,
                (N * (L + task) if C > 1 else 0.0) + task, ramp_bound)
    if ramp_bound > est:
        est = ramp_bound
    if "wavelet_max" not in memo:
        # per column, any wavelet: a compressed block's task visits one column of W,
        # the most nonzeros of one column at most
        most = placer.block_column_most(ops, config, pl.region) if memo["any_comp"] else 0
        memo["wavelet_max"] = np.where(
            use_comp, task + config.scalar_cycles_per_element * most,
            t_dense[:, None]).max(axis=0)
    wavelet_max = memo["wavelet_max"]
    # the upper bound takes a link's cycles per wavelet whole, as the event engine does
    dt_up = _upper_dt(config)
    chain = _chain_latency(config, C, L, whole=True)
    # sums a core's input queue takes before its own stream ends cross its ramp between
    # the stream's wavelets, and a multicast waits for every ramp below it: where a link
    # holds a wavelet longer than a task takes, a queue of them can delay the column's
    # stream (the rows' chains run side by side: their delays overlap)
    cap_ramp = config.queue_depth + math.ceil(config.ramp_cycles)
    cross = min(L, cap_ramp) * max(0.0, dt_up - task) if C > 1 else 0.0
    upper = float(np.sum(np.max(np.ceil(v_cn * dt_up) + a_cn * wavelet_max[:, None] + eos, axis=0)
                         + fill + chain + cross))
    terms = {"compute": float(work_cn.max(axis=0).sum()),
             "fabric": float((v_cn.max(axis=0) * dt).sum()),
             "reduction": float(N * (L * dt)), "latency": float(fill + chain)}
    return {"est": est, "lower": lower, "upper": upper, "terms": terms, "busy": busy_rc,
            "v_cn": v_cn, "red_wavelets": red_wavelets}


def _memo(pl, config):
    """What a placement's cost derives from its formats alone: shared by the placements of
    one region (placement.weight_stationary's cache), else this placement's own."""
    memo = pl.block.setdefault("memo", {})
    if memo.get("config", config) is not config:
        memo.clear()
    memo["config"] = config
    return memo


def dense_screen(weights, config, region):
    """What :func:`weight_stationary` with ``exact=False`` needs besides X's nonzeros when
    W (``weights``, its WeightStats) has every entry nonzero and every block is stored
    dense whatever the batch; None when some batch could store a block compressed.

    Why the batch cannot change the format: a fully nonzero block of M_r rows whose
    columns receive A activations costs ``A * t_dense`` dense and ``A * (task + scalar *
    M_r)`` compressed; in whole numbers (exact in float64: WaferConfig holds the cycle
    counts whole) the placer's comparison is that of ``task + scalar * M_r`` with
    ``t_dense`` once A > 0, and its tie-break at A = 0.
    Kept on ``weights`` per (config, region)."""
    key = ("dense-screen", id(config), tuple(int(v) for v in region))
    hit = weights.cache.get(key)
    if hit is None or hit[0] is not config:
        hit = weights.cache[key] = (config, _dense_screen(weights, config, region))
    return hit[1]


def _dense_screen(weights, config, region):
    if not weights.full or weights.M == 0 or weights.K == 0:
        return None
    R, C = int(region[2]), int(region[3])
    # the placer's batch-independent part (an empty batch: X is not read)
    st = placer._ws_static(Operands(None, np.zeros((weights.K, 0), bool), weights), config,
                           region)
    M_r, t_dense = np.diff(st["m_b"]), st["t_dense"]
    compressed_task = config.task_cycles + config.scalar_cycles_per_element * M_r
    idle = np.where(st["either_fits"], st["comp_fits"] & ~st["dense_fits"], st["comp_smaller"])
    race = st["either_fits"] & st["comp_fits"] & st["dense_fits"]
    if idle.any() or (race & (compressed_task < t_dense)[:, None]).any():
        return None
    red_wavelets = np.ceil(M_r / config.values_per_dense_wavelet)
    L = red_wavelets.astype(np.int64) if C > 1 else np.zeros(R, np.int64)
    return {"C": C, "k_b": st["k_b"].astype(np.int_), "tmax": float(t_dense.max()),
            "L": L.max(keepdims=True).astype(np.int_),
            "fill": float((np.arange(1, R + 1) * config.hop_cycles + config.ramp_cycles)[-1]),
            "turnaround": _turnaround(config), "cushion": _cushion(config)}


def dense_screen_cycles(plan, x_nz, config, nnz=None):
    """(cycles, lower bound) that :func:`weight_stationary` with ``exact=False`` reports for
    the placement ``plan`` (:func:`dense_screen`) and X's nonzeros ``x_nz`` (K x N, bool):
    the same operations on the same values as _ws_work and _ws_cycles take for an
    all-dense placement, without the per-PE maps. O(K * N + C * N); an all-nonzero pattern
    (a gradient with no zero, inputs with no zero) of the shape of the last all-nonzero one
    ``plan`` saw is one count (``nnz``, where the caller has it): the same figures, kept
    with its shape.
    """
    seen = plan.get("seen")
    if nnz is None:
        nnz = int(np.count_nonzero(x_nz))
    full = nnz == x_nz.size and x_nz.dtype == np.bool_
    if full and seen is not None and seen[0] is config and seen[1] == x_nz.shape:
        return seen[2]
    # what a step reads of the plan and the config, worked out once per config
    step = plan.get("step")
    if step is None or step[0] is not config:
        step = plan["step"] = (config, _dense_screen_step(plan, config), {})
    call, (tmax, task, hop, dt, L, chained) = step[1]
    N = x_nz.shape[1]
    # _ws_work's work and _pipeline_cycles' stream model for one chain, samples along the
    # first axis (the recurrence takes the transposed views)
    # (and, in the same call, grid_pipeline's chain of the columns over the samples)
    if x_nz.ndim == 2:
        # the call's arguments after X taken once per X's rows (_DenseStep): the same figures
        run = step[2].get(x_nz.shape[0])
        if run is None:
            run = step[2][x_nz.shape[0]] = _DenseStep(x_nz.shape[0], *call).run
        a_max, v_max, est = run(x_nz.view(np.uint8))
    else:
        _, _, _, a_max, v_max, est = _dense_stream(x_nz.view(np.uint8), *call)
    busy_max = a_max * tmax + N * task       # the busiest PE: the most activations, slowest row
    lower = max(hop + busy_max, hop + v_max * dt, N * (L + task) if chained else 0.0) + task
    # _ws_cycles' ramp term, the estimate's floor too: its load counted (a pass over X)
    # only where the busiest column's, v_max, could make it bind
    if chained and L > 0 and hop + (v_max + N * L - 1) * dt + task > min(lower, est):
        k_b = plan["k_b"]
        per_row = np.count_nonzero(x_nz, axis=1)
        cum = np.concatenate([[0], np.cumsum(per_row)])
        v_c = (cum[k_b[1:]] - cum[k_b[:-1]]) * config.wavelets_per_sparse_value + N
        ramp_bound = hop + (int(v_c[1:].max()) + N * L - 1) * dt + task
        lower, est = max(lower, ramp_bound), max(est, ramp_bound)
    result = float(est), float(min(lower, est))
    if full:        # a pattern with a zero is not kept: the next batch's differs
        plan["seen"] = (config, x_nz.shape, result)
    return result


def dense_screen_cycles_many(plan, x_nzs, config, nnzs):
    """:func:`dense_screen_cycles` of several patterns ``x_nzs`` (each K x N, bool, of one
    K) in order, ``nnzs`` their counts (None: counted here): two lists, (cycles, lower
    bounds), the same floats, from one native call (src/_screen.pyx's
    DenseStep.cycles_many). An all-nonzero pattern of a shape seen before (in ``plan``, or
    earlier in the list) takes that one's figures, as each call would; ``plan`` keeps the
    last one's, as the last call would. A step whose ramp term could bind is costed by
    dense_screen_cycles itself (its pass over X)."""
    step = plan.get("step")
    if step is None or step[0] is not config:
        step = plan["step"] = (config, _dense_screen_step(plan, config), {})
    call, (_, task, hop, _, L, chained) = step[1]
    counts = [int(np.count_nonzero(x)) if c is None else c for x, c in zip(x_nzs, nnzs)]
    full = [c == x.size and x.dtype == np.bool_ for x, c in zip(x_nzs, counts)]
    seen = plan.get("seen")
    # an all-nonzero pattern's figures by its shape: a result, or its index among the runs
    known = {} if seen is None or seen[0] is not config else {seen[1]: seen[2]}
    runs, source = [], []
    for x, f in zip(x_nzs, full):
        got = known.get(x.shape) if f else None
        if got is None:
            got = len(runs)
            runs.append(x)
            if f:
                known[x.shape] = got
        source.append(got)
    if runs:
        K = runs[0].shape[0]
        kept = step[2].get(K)
        if kept is None:
            kept = step[2][K] = _DenseStep(K, *call).run
        est, low, ramp = kept.__self__.cycles_many(runs, task, hop, L, chained)
        est, low = est.tolist(), low.tolist()
    out_est, out_low, ran = [], [], {}
    for i, got in enumerate(source):
        if type(got) is int:
            j = got
            got = ran.get(j)
            if got is None:
                got = ran[j] = dense_screen_cycles(plan, x_nzs[i], config, counts[i]) \
                    if ramp[j] else (est[j], low[j])
        out_est.append(got[0])
        out_low.append(got[1])
        if full[i]:
            plan["seen"] = (config, x_nzs[i].shape, got)
    return out_est, out_low


def dense_screen_figures(plan, x_nz, config, M):
    """(``macs_performed``, ``macs_dense``, ``bottleneck``) of :func:`weight_stationary`'s
    report with ``exact=False`` for the placement ``plan`` (:func:`dense_screen`: every
    block dense) of a W of ``M`` rows and X's nonzeros ``x_nz`` (K x N, bool), without
    the report: the same counts and timing terms (:func:`_ws_work`, :func:`_ws_cycles`,
    every block dense), the cycles of :func:`dense_screen_cycles`."""
    x_nz = np.asarray(x_nz)
    k_b = plan["k_b"]
    if x_nz.ndim != 2 or x_nz.shape[0] != k_b[-1] or x_nz.dtype != np.bool_:
        raise ValueError(f"x_nz must be X's nonzero pattern, {k_b[-1]} x samples, bool; "
                         f"received {x_nz.dtype} of shape {x_nz.shape}")
    K, N = x_nz.shape
    cum = np.zeros((K + 1, N), np.int64)
    np.cumsum(x_nz, axis=0, dtype=np.int64, out=cum[1:])
    a_cn = cum[k_b[1:]] - cum[k_b[:-1]]
    performed = int(M) * int(a_cn.sum())
    work_cn = a_cn * plan["tmax"]           # every column's slowest row: every row dense
    work_cn += config.task_cycles
    v_cn = a_cn * config.wavelets_per_sparse_value + 1
    dt = _link_dt(config)
    L = int(plan["L"].max())
    terms = {"compute": float(work_cn.max(axis=0).sum()),
             "fabric": float((v_cn.max(axis=0) * dt).sum()),
             "reduction": float(N * (L * dt)),
             "latency": float(plan["fill"] + _chain_latency(config, plan["C"], L))}
    cycles = dense_screen_cycles(plan, x_nz, config)[0]
    return performed, int(M) * int(K) * int(N), \
        named_bottleneck(max(terms, key=terms.get), performed, cycles)


def _dense_screen_step(plan, config):
    """:func:`dense_screen_cycles`' arguments to the stream after X, and the figures of its
    lower bound, for ``plan`` on ``config``."""
    L, task, ramp = plan["L"], config.task_cycles, config.ramp_cycles
    dt = _link_dt(config)
    pipeline = (L, float(config.hop_cycles), float(ramp), float(plan["turnaround"]),
                float(config.task_cycles + config.setup_cycles), float(task),
                float(plan["cushion"]), _send_queue(config), True)
    # the end-of-stream task is the task's cycles (eos)
    call = (plan["k_b"], plan["tmax"], task, config.wavelets_per_sparse_value, dt,
            plan["fill"], pipeline)
    return call, (plan["tmax"], task, config.hop_cycles + ramp, dt, int(L.max()),
                  plan["C"] > 1)


def _ws_report(ops, pl, config, timing, full):
    """The SimReport of a costed weight-stationary placement: traffic, MACs, energy."""
    R, C = pl.shape
    region = pl.region
    M, K, N = ops.M, ops.K, ops.N
    use_comp, nnz_rc = pl.use_comp, pl.block["nnz"]
    M_r, K_c = np.diff(pl.row_bounds), np.diff(pl.col_bounds)
    A_c = ops.activations(C).sum(axis=1)
    v_cn, red_wavelets, busy_rc = timing["v_cn"], timing["red_wavelets"], timing["busy"]
    est = timing["est"]
    # Traffic: input multicast south, partial sums east (the last column keeps Y).
    links = np.zeros((R, C, 4))
    links[:R - 1, :, 2] = v_cn.sum(axis=1)[None, :]
    links[:, :C - 1, 1] = (red_wavelets * N)[:, None]
    wavelets_sent = int(v_cn.sum() + red_wavelets.sum() * N * (C - 1))

    # MACs (see report.py for the identity they satisfy).
    memo = _memo(pl, config)
    if memo.get("any_comp", True):
        performed = int(np.sum(np.where(use_comp, pl.block["scalar_work"],
                                        M_r[:, None] * A_c[None, :])))
    else:
        performed = int(M) * int(A_c.sum())            # every block dense: M_r * A_c summed
    if "skipped_w" not in memo:     # per sample
        memo["skipped_w"] = int(np.sum(np.where(use_comp, M_r[:, None] * K_c[None, :] - nnz_rc,
                                                0)))
    skipped_w = memo["skipped_w"] * int(N)
    macs_dense = int(M) * int(K) * int(N)
    skipped_a = macs_dense - performed - skipped_w

    terms = timing["terms"]
    bottleneck = max(terms, key=terms.get)
    if bottleneck == "compute":
        r, c = np.unravel_index(int(np.argmax(busy_rc)), busy_rc.shape)
        if use_comp[r, c]:
            bottleneck = "scalar"
    energy = _energy(config, performed, performed * 3 * config.elem_bytes, float(links.sum()),
                     R * C, est)
    if ("sram", full) not in memo:
        memo[("sram", full)] = _wafer_array(config, region, pl.sram, full=full).astype(np.int64)
    sram = memo[("sram", full)]
    return SimReport(
        cycles=float(est), cycles_lower=float(min(timing["lower"], est)),
        cycles_upper=float(max(timing["upper"], est)),
        clock_hz=config.clock_hz, macs_dense=macs_dense, macs_useful=ops.useful,
        macs_performed=performed, macs_skipped_weight=skipped_w,
        macs_skipped_activation=int(skipped_a),
        busy_cycles=_wafer_array(config, region, busy_rc, full=full),
        sram_bytes=sram,
        link_wavelets=_wafer_array(config, region, links, (4,), full=full),
        wavelets_sent=wavelets_sent, energy_joules=energy, bottleneck=bottleneck,
        region=tuple(int(v) for v in region), mapping="weight-stationary", dtype=config.dtype,
        fmac_per_cycle=config.fmacs,
        details={"compressed_blocks": int(use_comp.sum()), "blocks": R * C, "terms": terms,
                 "use_comp": use_comp})


def _compressed_blocks(blk, cols, use_comp, R, C, K):
    """The nonzeros of W's compressed blocks as a CSR matrix of ones, blocks x K (row b =
    r * C + c; duplicates summed): the columns each block's tasks visit. ``blk`` (the
    block of each nonzero) None: no block is compressed."""
    if blk is None:
        return sps.csr_array((R * C, K), dtype=np.float32)
    comp = use_comp.ravel()[blk]
    return sps.csr_array((np.ones(int(comp.sum()), np.float32), (blk[comp], cols[comp])),
                         shape=(R * C, K))


def _compressed_work(blk, cols, x_nz, a_cn, use_comp, R, C, config, per_block=False,
                     chunk=1 << 22):
    """Work of the PEs holding compressed blocks, per sample: per block (R x C x N, zero
    where a block is dense) with ``per_block``, else the largest per column (C x N).

    Work of block (r, c) in sample n: task * (activations arriving) + scalar * (weights
    of the block in columns whose activation is nonzero), counted with wsekern.spmm
    over chunks of whole PE rows (about ``chunk`` values each). O(nnz(W) * N / SIMD +
    blocks * N) time.
    """
    from ..kernels import spmm
    S = _compressed_blocks(blk, cols, use_comp, R, C, x_nz.shape[0])
    x = x_nz.astype(np.float32)            # counts stay exact in float32 below 2**24
    N = x_nz.shape[1]
    out = np.zeros((R * C, N)) if per_block else np.zeros((C, N))
    flat_comp = use_comp.ravel()
    chunk = max(1, chunk // max(N, 1) // C) * C        # whole PE rows, about chunk values
    for start in range(0, R * C, chunk):
        rows = np.arange(start, min(start + chunk, R * C))
        visited = spmm(S[start:rows[-1] + 1], x)
        c_of = rows % C
        work = a_cn[c_of] * config.task_cycles + config.scalar_cycles_per_element * visited
        work[~flat_comp[rows]] = 0.0
        if per_block:
            out[rows] = work
        else:
            np.maximum(out, work.reshape(-1, C, N).max(axis=0), out=out)
    return out.reshape(R, C, N) if per_block else out


def _multicast_work(ops, use_comp, t_dense, R, C, config):
    """Per PE and sample, the compute of a multicast column whose rows may cost
    differently per wavelet (R x C x N, end-of-stream tasks included).

    Each column's stream is followed wavelet by wavelet through its routers' and
    cores' queues (src/_pipeline.pyx ``multicast_column``), with no other waits: it
    gives when each sample's first wavelet reaches each row and when the row could end
    the sample at the earliest (the other rows' pace shows there), while a row's work
    is its own tasks (counting the stream's waits as work too would count them twice
    where the row waits for its accumulators anyway).
    Returns (work, (first, last)), each R x C x N. O(nnz(X) * R) time.
    """
    from .._pipeline import multicast_column
    q = config.queue_depth
    cap_link = q + math.ceil(config.hop_cycles + config.turn_cycles)
    cap_ramp = q + math.ceil(config.ramp_cycles)
    cap_edge = q + math.ceil(config.hop_cycles)
    _, row_block = ops.row_block(R)
    k_b, col_block = ops.col_block(C)
    K, N = ops.K, ops.N
    wpv = config.wavelets_per_sparse_value
    task = config.task_cycles
    nnz_kr = np.bincount(ops.w_col * R + row_block[ops.w.w_row], minlength=K * R).reshape(K, R)
    cost_kr = np.where(use_comp.T[col_block], task + config.scalar_cycles_per_element * nnz_kr,
                       t_dense[None, :])
    work = np.zeros((R, C, N))
    first = np.zeros((R, C, N))
    last = np.zeros((R, C, N))
    dt = _link_dt(config)
    for c in range(C):
        lo, hi = k_b[c], k_b[c + 1]
        nz_n, nz_k = np.nonzero(ops.x_nz[lo:hi].T)                   # by sample, then k
        counts = np.bincount(nz_n, minlength=N)
        # the stream: per sample its values (an index wavelet first in fp32), then EOS
        per_sample = counts * wpv + 1
        eos_at = np.cumsum(per_sample) - 1
        cost = np.zeros((int(per_sample.sum()), R))
        value_at = (np.repeat(eos_at - per_sample + 1, counts)
                    + (np.arange(len(nz_k)) - np.repeat(np.cumsum(counts) - counts, counts)) * wpv
                    + (wpv - 1))
        cost[value_at] = cost_kr[lo + nz_k]
        cost[eos_at] = task
        reach, end = multicast_column(cost, config.hop_cycles, config.ramp_cycles, dt,
                                      cap_link, cap_ramp, cap_edge)
        work[:, c, :] = np.add.reduceat(cost, eos_at - per_sample + 1, axis=0).T
        first[:, c, :] = reach[eos_at - per_sample + 1].T
        last[:, c, :] = end[eos_at].T - task       # the free-flowing column's end, less EOS
    return work, (first, last)


def _turnaround(config):
    """Cycles a reduction stage holds a wavelet in its core: the stage less both ramps."""
    return max(1.0, config.stage_cycles - 2 * config.ramp_cycles)


def _spacing(config):
    """Cycles between two wavelets of partial sums on a reduction chain: a link slower than
    a wavelet a cycle holds each for ``1 / link_wavelets_per_cycle`` cycles (the message
    serialised on every link, the stages pipelined); a faster one waits for the reducer,
    which takes one a cycle."""
    return max(1.0, 1.0 / config.link_wavelets_per_cycle)


_EPS = sys.float_info.epsilon


def _link_dt(config):
    """A link's cycles per wavelet as the fabric runs them (the estimates and the lower
    bounds take these): whole. The event engine runs a core or router at whole cycles, so
    a link freed after a fraction of a cycle more is taken at the next whole one (a rate
    of 0.8 costs what 0.5 does), and a router forwards at most one wavelet a cycle (a
    rate above 1 costs what 1 does). A reciprocal a whole number but for its last bit or
    two (1 / (1 / 49) is 49.00000000000001; never more than an ulp for k <= 1e5) is that
    number: the engine's clock plus it loses the excess within the first hundred-odd
    cycles. A larger excess is not lost (t + 2.0000000004 keeps it until t is ~1e9):
    the engine takes the next cycle, and so does this."""
    dt = 1.0 / config.link_wavelets_per_cycle
    if dt <= 1.0:
        return 1.0
    near = round(dt)
    return float(near) if abs(dt - near) <= 4 * _EPS * near else float(math.ceil(dt))


def _upper_dt(config):
    """A link's cycles per wavelet as an upper bound takes them: whole. The event engine
    runs a core or router at whole cycles, so a wavelet a link frees after 1.25 cycles is
    taken at the 2nd (a link rate of 0.8 costs what 0.5 does); at or below a cycle a
    wavelet, and at every whole number of cycles, it is the link's own (a stream of them
    then ends at a whole cycle: the bounds round its span up)."""
    dt = 1.0 / config.link_wavelets_per_cycle
    return float(math.ceil(dt)) if dt > 1.0 else dt


def _chain_latency(config, C, L, whole=False):
    """One sample's partial sums reduced alone along a chain of C PEs: launch, C - 1
    stages, the last wavelet (``_spacing`` after the one before it), the root's
    end-of-message task; and, where a link holds a wavelet longer than an end-of-stream
    task takes, the wait of the first sums for a receiver's ramp, which the sample's own
    end-of-stream marker holds a link's cycles per wavelet (:func:`_link_dt`). ``whole``:
    those rounded up (:func:`_upper_dt`), as the upper bounds take them."""
    if C <= 1 or L == 0:
        return config.task_cycles
    ramp = config.ramp_cycles
    lat = _turnaround(config)
    link_dt = _upper_dt(config) if whole else _link_dt(config)
    sp = max(1.0, link_dt)
    span = L if sp == 1.0 else (L - 1) * sp + 1
    hold = max(0.0, link_dt - config.task_cycles)
    return (config.task_cycles + config.setup_cycles + ramp
            + (C - 2) * (config.hop_cycles + 2 * ramp + lat)
            + config.hop_cycles + ramp + span + 1 + config.task_cycles + hold)


def _pipeline_cycles(config, work, v, dt, fill, L, arrivals=None, push=-1, shared=False):
    """Cycles of rounds streamed into reduction chains (see src/_pipeline.pyx).

    ``work`` (chains x positions x rounds) is the compute of each round, ``v``
    (positions x rounds) the wavelets of each position's stream, entering at ``dt``
    cycles each (a scalar or a column per position) and reaching chain g ``fill[g]``
    cycles later; ``L[g]`` wavelets of partial sums per round. ``arrivals`` (first,
    last; chains x positions x rounds) replaces that stream model where it is known.
    ``push`` (>= 0): the chains' first PEs send through a queue of that many wavelets
    (:func:`_send_queue`; grid_pipeline's ``push``). ``shared``: each position but the
    first takes its stream and the sums it receives through one ramp (:func:`_ramp_floor`
    bounds its streams' ends below, given ``arrivals`` too: chain g's with ``L[g]``)."""
    from .._pipeline import grid_pipeline
    shift = None
    work = np.asarray(work, dtype=np.float64)
    # grid_pipeline walks the positions of a round innermost: with many rounds (or work
    # laid out so already), lay positions next to each other in memory (else every read
    # is a cache miss)
    inner = work.shape[2] > 64 or (work.strides[1] < work.strides[2] and arrivals is None)
    if arrivals is None:
        shift = np.asarray(fill, dtype=np.float64)
        shape = (len(shift),) + np.shape(v)
        if inner:            # the stream worked out samples-major: the same sums, no copies
            v_t, dt_t = np.ascontiguousarray(np.transpose(v)), np.transpose(dt)
            cum = np.cumsum(v_t, axis=0) * dt_t
            first, last = ((cum - v_t * dt_t).T[None], (cum - dt_t).T[None])
        else:
            cum = np.cumsum(v, axis=1) * dt
            first, last = (cum - v * dt)[None], (cum - dt)[None]
        if shared:
            last = np.maximum(last, _ramp_floor(v, dt, int(np.min(L)))[None])
        # one view for every chain (a chain's arrivals are its fill later; grid_pipeline
        # adds it): no chains x positions x rounds copies
        first, last = np.broadcast_to(first, shape), np.broadcast_to(last, shape)
    else:
        first, last = (np.ascontiguousarray(a, dtype=np.float64) for a in arrivals)
        if shared:
            # the multicast's arrivals, per chain (first and last already its fill later):
            # the same floor, with each chain's own sums
            floor = np.stack([_ramp_floor(v, dt, int(g)) for g in np.ravel(L)])
            last = np.maximum(last, floor + np.asarray(fill, np.float64)[:, None, None])
    if inner:
        work = np.ascontiguousarray(np.swapaxes(work, 1, 2)).swapaxes(1, 2)
        if arrivals is not None:
            first, last = (np.ascontiguousarray(np.swapaxes(a, 1, 2)).swapaxes(1, 2)
                           for a in (first, last))
        if first.shape[0] != work.shape[0]:
            first, last = (np.broadcast_to(a[:1], work.shape) for a in (first, last))
    return grid_pipeline(work, first, last, np.ascontiguousarray(L, dtype=np.int_),
                         config.hop_cycles, config.ramp_cycles, _turnaround(config),
                         config.task_cycles + config.setup_cycles, config.task_cycles,
                         _cushion(config), shift, _link_dt(config), push)


def _ramp_floor(v, dt, L):
    """Per position and round (v's shape), the earliest a position's stream of that round
    can have ended, as its ramp's load: a position past a chain's first takes its stream
    and the sums it receives through one ramp, a wavelet per ``dt`` cycles, and its core
    starts round n in the accumulator round n - 2 used (two buffers, src/_event.pyx), so
    round n - 2's sums (``L`` wavelets a round) have crossed that ramp by then. By round
    n's end of stream the ramp has carried sum(v[:n + 1]) + (n - 1) * L wavelets, the
    first no sooner than the stream's start. -inf at the first position (no sums)."""
    v = np.asarray(v, np.float64)
    out = np.full(v.shape, -np.inf)
    if v.shape[0] < 2 or L <= 0:
        return out
    sums = np.maximum(0, np.arange(v.shape[1]) - 1) * float(L)
    out[1:] = ((np.cumsum(v, axis=1) + sums[None]) * dt - dt)[1:]
    return out


def _send_queue(config):
    """Wavelets a core's router queues for it to send: the queue and those in flight on
    the ramp and through the send task's turnaround (the event engine's push capacity). A
    chain's first PE is free once its last sums of a round are in it: on a link slower
    than a wavelet a cycle, before the link has taken them."""
    return int(config.queue_depth + math.ceil(_turnaround(config) + config.ramp_cycles))


def _cushion(config):
    """Wavelets that fit between two reducers, as the event engine sizes their queues: the
    sender's send queue (:func:`_send_queue`), the next router's queue, whose credits
    cover a link's latency with a change of dimension (``queue + ceil(hop + turn)``: the
    turn counts whether or not the chain turns there), and the receiver's input queue
    (``queue + ceil(ramp)``). The turn's credit was left out before: on WSE-3 (turn 20)
    the estimate held a relay 20 wavelets early, up to 12 % above the event."""
    q = config.queue_depth
    return (_send_queue(config) + (q + math.ceil(config.hop_cycles + config.turn_cycles))
            + (q + math.ceil(config.ramp_cycles)))


# --------------------------------------------------------------------------------------
# Activation-stationary (weight streaming)
# --------------------------------------------------------------------------------------
def activation_stationary(W, X, config, region, *, what="spmm", passes=1, ops=None, full=True,
                          exact=True, placement=None):
    """Cost of Y = W @ X with X stationary and the nonzero weights streamed in.

    ``passes`` counts how often the weights cross the external link (3 in a training step).
    ``exact=False`` (the placer's screen) follows one chain paced by the widest block of
    X instead of every PE column. ``placement`` as in :func:`weight_stationary`.
    """
    ops = ops if ops is not None else Operands(W, X)
    pl = placement if placement is not None else placer.activation_stationary(
        ops, config, region, what)
    r0, c0, R, C = region
    M, K, N = ops.M, ops.K, ops.N
    fmac, elem = config.fmacs, config.elem_bytes
    sram = pl.sram
    est, lower, upper, st, red_wavelets, terms = _as_cycles(ops, config, R, C, passes, exact)
    busy_rc, weight_wavelets, stream_bytes = st["busy"], st["weight_wavelets"], st["stream_bytes"]
    bottleneck = max(terms, key=terms.get)

    links = np.zeros((R, C, 4))
    links[:, :C - 1, 1] = weight_wavelets[:, None]            # weights multicast east along rows
    links[:R - 1, :, 2] = red_wavelets[None, :]               # partial rows of Y reduced south
    performed = len(ops.w_col) * int(N)
    macs_dense = int(M) * int(K) * int(N)
    useful = ops.useful
    # links.sum(), from the two figures it repeats: whole numbers, so exact in any order
    hops = float(weight_wavelets.sum()) * max(C - 1, 0) + float(red_wavelets.sum()) * max(R - 1, 0)
    energy = _energy(config, performed, performed * 3 * elem + stream_bytes, hops, R * C, est)
    return SimReport(
        cycles=float(est), cycles_lower=float(min(lower, est)), cycles_upper=float(max(upper, est)),
        clock_hz=config.clock_hz, macs_dense=macs_dense, macs_useful=useful,
        macs_performed=performed, macs_skipped_weight=macs_dense - performed,
        macs_skipped_activation=0,
        busy_cycles=_wafer_array(config, region, busy_rc, full=full),
        sram_bytes=(_wafer_array(config, region, sram, full=full).astype(np.int64) if full
                    else np.array(np.broadcast_to(sram, (R, C)), np.int64)),
        link_wavelets=_wafer_array(config, region, links, (4,), full=full),
        wavelets_sent=int(weight_wavelets.sum() * passes + red_wavelets.sum() * (R - 1)),
        energy_joules=energy, bottleneck=bottleneck, region=tuple(int(v) for v in region),
        mapping="activation-stationary", dtype=config.dtype, fmac_per_cycle=fmac,
        details={"terms": terms, "external_bytes": float(stream_bytes)})


def activation_stationary_cycles(w, N, config, region, passes=1):
    """(cycles, lower bound, SRAM peak bytes) that :func:`activation_stationary` reports
    (``cycles``, ``cycles_lower``, ``sram_peak_bytes``) for W (``w``, its WeightStats)
    streamed over N samples on ``region``, without its report's per-PE maps: the same
    placement (so the same refusal) and timing, so the same floats. X's values change
    none of these (X sits dense on the PEs), so no X is read: kept on ``w`` per (config,
    region, N, passes)."""
    key = ("as-step", id(config), tuple(int(v) for v in region), int(N), passes)
    hit = w.cache.get(key)
    if hit is not None and hit[0] is config:
        return hit[1]
    ops = Operands(None, np.zeros((w.K, N), bool), w)
    pl = placer.activation_stationary(ops, config, region)
    est, lower, _, _, _, _ = _as_cycles(ops, config, region[2], region[3], passes, True)
    result = float(est), float(min(lower, est)), int(pl.sram.max()) if pl.sram.size else 0
    kept = [k for k in w.cache if isinstance(k, tuple) and k and k[0] == "as-step"]
    for k in kept[:max(0, len(kept) + 1 - AS_MEMO)]:
        del w.cache[k]
    w.cache[key] = (config, result)
    return result


def activation_stationary_figures(w, N, config, region, passes=1):
    """(``macs_performed``, ``macs_dense``, ``bottleneck``) of :func:`activation_stationary`'s
    report for W (``w``, its WeightStats) streamed over N samples on ``region``, without
    the report (its per-PE maps): the same counts, and the largest of the same timing's
    terms (kept on ``w``, as :func:`activation_stationary_cycles` keeps them)."""
    ops = Operands(None, np.zeros((w.K, int(N)), bool), w)
    cycles, *_, terms = _as_cycles(ops, config, int(region[2]), int(region[3]), passes, True)
    performed = len(ops.w_col) * int(N)
    return (performed, int(ops.M) * int(ops.K) * int(N),
            named_bottleneck(max(terms, key=terms.get), performed, cycles))


AS_MEMO = 4      # activation-stationary timings kept per weight (a few batch sizes)


def _as_cycles(ops, config, R, C, passes, exact):
    """(estimate, lower bound, upper bound, :func:`_as_stream`'s figures, reduction
    wavelets per PE column, terms) of activation-stationary on R x C.

    They read W's structure and the number of samples N, never X's values (X sits dense on
    the PEs), so they are kept on W's stats per (config, R, C, N, passes, exact): a
    training step's plan and its report, built later from the same step, then share one
    timing (the arrays are read only: the reports hold read-only views of them)."""
    key = ("as-cycles", id(config), int(R), int(C), int(ops.N), passes, bool(exact))
    cache = ops.w.cache
    hit = cache.get(key)
    if hit is not None and hit[0] is config:
        return hit[1]
    result = _as_cycles_of(ops, config, R, C, passes, exact)
    for name, value in result[3].items():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    result[4].flags.writeable = False
    kept = [k for k in cache if isinstance(k, tuple) and k and k[0] == "as-cycles"]
    for k in kept[:max(0, len(kept) + 1 - AS_MEMO)]:
        del cache[k]
    cache[key] = (config, result)
    return result


def _as_cycles_of(ops, config, R, C, passes, exact):
    M = ops.M
    st = _as_stream(ops, config, R, C, passes)
    N_c, t_axpy, compute = st["N_c"], st["t_axpy"], st["compute"]
    dt, t_links, L_c, L, fill, chain = (st[k] for k in ("dt", "t_links", "L_c", "L", "fill",
                                                        "chain"))
    t_external, task = st["t_external"], config.task_cycles
    link_dt = _link_dt(config)
    red_wavelets = M * np.ceil(N_c / config.values_per_dense_wavelet)          # per PE column
    t_red = red_wavelets.max(initial=0) * link_dt if R > 1 else 0.0
    first = config.hop_cycles + config.ramp_cycles
    # a core's ramp carries its PE row's weights and, below the first row, the sums from
    # the north: one wavelet every link_dt cycles (as weight_stationary's _ws_cycles)
    ramp_load = (st["weight_wavelets"][1:].max() + M * L) if R > 1 and L > 0 else 0
    ramp_bound = first + (ramp_load - 1) * link_dt + task if ramp_load else 0.0
    lower = max(max(first + compute, first + t_links, first + t_external,
                    M * (L + task) if R > 1 else 0.0) + task, ramp_bound)
    if exact:
        _, row_block = ops.col_block(R)
        est, _ = _as_exact(ops, config, R, C, row_block, N_c, t_axpy, dt, L_c, fill, chain)
        est = max(est, ramp_bound)
        # the upper bound as weight_stationary's: a link's cycles per wavelet whole, and
        # each output row's sums that cross a core's ramp before its own stream ends
        dt_up = np.where(dt > 1.0, np.ceil(dt), dt)
        cross = (min(L, config.queue_depth + math.ceil(config.ramp_cycles))
                 * max(0.0, _upper_dt(config) - task) if R > 1 else 0.0)
        upper = _as_upper(ops, config, R, row_block, t_axpy, dt_up, fill,
                          _chain_latency(config, R, L, whole=True) + cross)
    else:
        est, upper = _as_screen(st, config, M, R)
    terms = {"weight-streaming": t_external, "compute": float(compute),
             "fabric": t_links, "reduction": float(t_red), "latency": float(fill + chain)}
    return est, lower, upper, st, red_wavelets, terms


def _as_stream(ops, config, R, C, passes=1):
    """What activation-stationary's cost on R x C derives from the weights' stream alone
    (the exact model, the screen and the placer's bounds share it)."""
    M, N = ops.M, ops.N
    task = config.task_cycles
    N_c = np.diff(_bounds(N, C))
    rows = _as_rows(ops, config, R, passes)
    nnz_r = rows["nnz_r"]
    t_axpy = task + config.setup_cycles + np.ceil(N_c / config.fmacs)         # per C
    busy_rc = nnz_r[:, None] * t_axpy[None, :] + M * task                     # + one EOS per row
    vpw = config.values_per_dense_wavelet
    L_c = np.ceil(N_c / vpw).astype(np.int64) if R > 1 else np.zeros(C, np.int64)
    L = int(L_c.max())
    return {"N_c": N_c, "nnz_r": nnz_r, "t_axpy": t_axpy, "busy": busy_rc,
            "compute": busy_rc.max(initial=0), "weight_wavelets": rows["weight_wavelets"],
            "stream_bytes": rows["stream_bytes"], "t_external": rows["t_external"],
            "dt": rows["dt"], "t_links": rows["t_links"], "L_c": L_c, "L": L,
            "fill": C * config.hop_cycles + config.ramp_cycles,
            "chain": _chain_latency(config, R, L)}


def _as_rows(ops, config, R, passes):
    """The part of :func:`_as_stream` that depends on the PE rows only (the placer asks
    for every candidate column count of each row count): kept on ``ops``."""
    key = ("as-rows", id(config), R, passes)
    hit = ops.cache.get(key)
    if hit is not None and hit[0] is config:
        return hit[1]
    M = ops.M
    k_b, _ = ops.col_block(R)                 # X's rows (W's columns) over PE rows
    cum = np.concatenate([[0], np.cumsum(ops.w.col_nnz)])
    nnz_r = cum[k_b[1:]] - cum[k_b[:-1]]                                      # weights per PE row
    # Rounds are the rows of W: PE row r streams W[m, cols_r] then an end of stream;
    # its slowest PE (the widest block of X) paces the multicast along the row.
    wpv = config.wavelets_per_sparse_value
    weight_wavelets = nnz_r * wpv + M                                          # per PE row
    stream_bytes = passes * weight_wavelets.sum() * 4
    t_external = stream_bytes / config.external_bytes_per_s * config.clock_hz
    # The external link feeds each row its share, at most one wavelet per cycle each.
    link_dt = _link_dt(config)
    ext_rate = config.external_bytes_per_s / config.clock_hz / 4.0 / passes
    share = ext_rate * weight_wavelets / max(weight_wavelets.sum(), 1.0)
    dt = np.maximum(link_dt, 1.0 / np.maximum(share, 1e-300))
    rows = {"nnz_r": nnz_r, "weight_wavelets": weight_wavelets, "stream_bytes": stream_bytes,
            "t_external": t_external, "dt": dt,
            "t_links": float((weight_wavelets * dt).max(initial=0))}
    ops.cache[key] = (config, rows)
    return rows


def _as_screen(st, config, M, R):
    """The screen's (estimate, upper bound): the slowest of the stages, each round's
    reduction occupying the chain's first PE (send launch and L wavelets) and its root
    (L and a task)."""
    task, L = config.task_cycles, st["L"]
    lat = _turnaround(config)
    per_round = max(task + config.setup_cycles - lat + L, L + 1 + task) if R > 1 else task
    compute, t_external, t_links = st["compute"], st["t_external"], st["t_links"]
    fill, chain = st["fill"], st["chain"]
    est = max(compute, t_external, t_links, M * per_round) + fill + chain
    upper = compute + t_external + t_links + M * per_round + fill + chain
    return est, upper


def _as_exact(ops, config, R, C, row_block, N_c, t_axpy, dt, L_c, fill, chain):
    """(estimate, upper bound) of activation-stationary: each PE column is a reduction
    chain of R positions (the PE rows), followed round by round."""
    M, task = ops.M, config.task_cycles
    wpv = config.wavelets_per_sparse_value
    nnz_rm = np.bincount(row_block[ops.w_col] * M + ops.w.w_row,
                         minlength=R * M).reshape(R, M).astype(np.float64)
    v_rm = nnz_rm * wpv + 1
    fill_c = np.arange(1, C + 1) * config.hop_cycles + config.ramp_cycles
    if C * R * M <= PER_PE_LIMIT:
        # The chains differ only in their samples per column (N_c: t_axpy and L_c follow
        # from it) and their fill, which grows with the column. The recurrence is made of
        # additions and maxima alone, monotone in a chain's fill even in floating point,
        # so of the chains with one N_c the farthest finishes last: following it alone
        # gives the same floats as following every column.
        _, from_end = np.unique(N_c[::-1], return_index=True)
        keep = C - 1 - from_end
        work = t_axpy[keep, None, None] * nnz_rm[None] + task
        L_c, fill_c = L_c[keep], fill_c[keep]
        est = _pipeline_cycles(config, work, v_rm, dt[:, None], fill_c, L_c,
                               push=_send_queue(config), shared=True)
    else:
        # one chain at the slowest column's pace: it reads N only through that column's
        # samples (t_axpy.max(), L_c.max()), so batches that share them (an epoch's last,
        # smaller batch) share its floats, kept on W's stats
        key = ("as-exact-chain", id(config), int(R), int(C), float(t_axpy.max()),
               int(L_c.max()), hashlib.blake2b(np.ascontiguousarray(dt, np.float64)
                                               .tobytes()).hexdigest())
        hit = ops.w.cache.get(key)
        if hit is not None and hit[0] is config:
            est = hit[1]
        else:
            work = (nnz_rm * t_axpy.max() + task)[None]
            est = _pipeline_cycles(config, work, v_rm, dt[:, None], fill_c[-1:],
                                   L_c.max(keepdims=True), push=_send_queue(config),
                                   shared=True)
            kept = [k for k in ops.w.cache if isinstance(k, tuple) and k
                    and k[0] == "as-exact-chain"]
            for k in kept[:max(0, len(kept) + 1 - AS_MEMO)]:
                del ops.w.cache[k]
            ops.w.cache[key] = (config, est)
    return est, _as_upper(ops, config, R, row_block, t_axpy, dt, fill, chain)


def _as_upper(ops, config, R, row_block, t_axpy, dt, fill, chain):
    """activation-stationary's upper bound: each output row reduced alone, one after the
    other (``chain``: one row's chain latency)."""
    M, task = ops.M, config.task_cycles
    nnz_rm = np.bincount(row_block[ops.w_col] * M + ops.w.w_row,
                         minlength=R * M).reshape(R, M).astype(np.float64)
    v_rm = nnz_rm * config.wavelets_per_sparse_value + 1
    return float(np.sum(np.max(np.ceil(v_rm * dt[:, None]) + nnz_rm * t_axpy.max() + task, axis=0)
                        + fill + chain))


def empty(config, M, K, N, mapping):
    """The report of a product with a zero-size dimension: nothing to place or send."""
    region = (0, 0, 1, 1)
    return SimReport(
        cycles=0.0, cycles_lower=0.0, cycles_upper=0.0, clock_hz=config.clock_hz,
        macs_dense=int(M) * int(K) * int(N), macs_useful=0, macs_performed=0,
        macs_skipped_weight=0, macs_skipped_activation=int(M) * int(K) * int(N),
        busy_cycles=_wafer_array(config, region, 0.0),
        sram_bytes=_wafer_array(config, region, 0.0).astype(np.int64),
        link_wavelets=_wafer_array(config, region, 0.0, (4,)), wavelets_sent=0,
        energy_joules=0.0, bottleneck="latency", region=region, mapping=mapping,
        dtype=config.dtype, fmac_per_cycle=config.fmacs)


# --------------------------------------------------------------------------------------
# Resident single PE, and SUMMA
# --------------------------------------------------------------------------------------
def resident_cycles(M, K, N, config):
    """C (M x N) += A (M x K) @ B (K x N) on one PE: one AXPY of length M per (k, n)."""
    return K * N * (config.setup_cycles + math.ceil(M / config.fmacs)) + config.task_cycles


def resident(A, B, config, region, *, what="matmul"):
    """Dense A @ B (or W @ X) entirely on one PE: the vendor's single-tile-matvec."""
    A = A.toarray() if sps.issparse(A) else np.asarray(A)
    M, K = A.shape
    N = B.shape[1]
    ledger = SramLedger(config, region)
    ledger.alloc("A", M * K * config.elem_bytes)
    ledger.alloc("B", K * N * config.elem_bytes)
    ledger.alloc("C", M * N * config.elem_bytes)
    sram = ledger.check(f"{what} resident on one PE, {M}x{K} @ {K}x{N}")
    cycles = resident_cycles(M, K, N, config)
    macs = M * K * N
    energy = _energy(config, macs, macs * 3 * config.elem_bytes, 0, 1, cycles)
    return SimReport(
        cycles=float(cycles), cycles_lower=float(cycles), cycles_upper=float(cycles),
        clock_hz=config.clock_hz, macs_dense=macs,
        macs_useful=int(np.count_nonzero(A, axis=0) @ np.count_nonzero(B, axis=1)),
        macs_performed=macs, macs_skipped_weight=0, macs_skipped_activation=0,
        busy_cycles=_wafer_array(config, region, cycles),
        sram_bytes=_wafer_array(config, region, sram).astype(np.int64),
        link_wavelets=_wafer_array(config, region, 0.0, (4,)), wavelets_sent=0,
        energy_joules=energy, bottleneck="compute", region=tuple(int(v) for v in region),
        mapping="resident", dtype=config.dtype, fmac_per_cycle=config.fmacs)


def _summa_links(R, C, a_wav, b_wav):
    """Wavelets each PE sends N, E, S, W over SUMMA's steps: at step k the A tile of PE
    column k mod C is broadcast along every PE row (east of the source and west of it, so
    each of a row's C - 1 links carries it once) and the B tile of PE row k mod R down
    every PE column likewise. ``a_wav`` (R x steps) is what row r's source injects at
    step k, ``b_wav`` (C x steps) column c's (none along a dimension of one PE)."""
    a_wav, b_wav = np.asarray(a_wav, np.float64), np.asarray(b_wav, np.float64)
    k = np.arange(a_wav.shape[1])
    links = np.zeros((R, C, 4))
    # A wavelets of row r rooted at column c, B wavelets of column c rooted at row r
    src_a = np.zeros((R, C))
    np.add.at(src_a, (slice(None), k % C), a_wav)
    src_b = np.zeros((C, R))
    np.add.at(src_b, (slice(None), k % R), b_wav)
    east = np.cumsum(src_a, axis=1)          # sources at or west of c: their wave goes east
    west = np.cumsum(src_a[:, ::-1], axis=1)[:, ::-1]      # at or east of c: it goes west
    south = np.cumsum(src_b, axis=1)
    north = np.cumsum(src_b[:, ::-1], axis=1)[:, ::-1]
    links[:, :C - 1, 1] = east[:, :C - 1]
    links[:, 1:, 3] = west[:, 1:]
    links[:R - 1, :, 2] = south[:, :R - 1].T
    links[1:, :, 0] = north[:, 1:].T
    return links


def summa_depths(K, R, C):
    """The K depth of each SUMMA step that holds a slice of K: slices of ceil(K / max(R, C))
    (the tile the buffers hold), the last one what is left. A step with no slice (K
    shorter than max(R, C), or used up early) broadcasts and computes nothing, so it is not
    run."""
    Kt = math.ceil(K / max(R, C))
    if Kt == 0:
        return []
    full, rest = divmod(K, Kt)
    return [Kt] * full + ([rest] if rest else [])


def summa_grid(M, N, R, C):
    """(rows, cols) of PEs that hold a tile of C in SUMMA on R x C: tiles are
    ceil(M / R) x ceil(N / C), so ceil(M / ceil(M / R)) rows (fewer than R when the last
    rows would be empty, e.g. 9 rows on 8: tiles of 2 fill 5) and likewise columns."""
    Mt, Nt = math.ceil(M / R), math.ceil(N / C)
    return (math.ceil(M / Mt) if Mt else 0), (math.ceil(N / Nt) if Nt else 0)


def summa(A, B, config, region, *, what="matmul"):
    """Dense A (M x K) @ B (K x N) on an R x C region, SUMMA-style, on the PEs that hold a
    tile of C (:func:`summa_grid`: Rs x Cs at the region's north-west corner; the other
    PEs hold, send and compute nothing): one step per slice of K (at most max(Rs, Cs);
    see :func:`summa_depths`). A dimension of one PE broadcasts nothing along it."""
    r0, c0, R, C = region
    M, K = A.shape
    N = B.shape[1]
    elem, fmac = config.elem_bytes, config.fmacs
    Rs, Cs = summa_grid(M, N, R, C)
    depths = summa_depths(K, Rs, Cs)
    Mt, Nt, Kt = math.ceil(M / R), math.ceil(N / C), math.ceil(K / max(Rs, Cs))
    # each PE row's rows of C and each column's columns (the last may be short)
    M_r = np.minimum(Mt, M - Mt * np.arange(Rs))
    N_c = np.minimum(Nt, N - Nt * np.arange(Cs))
    used = np.zeros((R, C), bool)
    used[:Rs, :Cs] = True

    def on_used(values):
        out = np.zeros((R, C), np.int64)
        out[:Rs, :Cs] = values
        return out
    ledger = SramLedger(config, region)
    ledger.alloc("A tiles (double-buffered)", on_used(2 * M_r[:, None] * Kt * elem))
    ledger.alloc("B tiles (double-buffered)", on_used(2 * Kt * N_c[None, :] * elem))
    ledger.alloc("C tile", on_used(M_r[:, None] * N_c[None, :] * elem))
    ledger.buffers["reserve (code/runtime)"] = on_used(config.reserve_bytes)
    sram = ledger.check(f"{what} SUMMA, {M}x{K} @ {K}x{N} on {R}x{C} PEs")
    vpw = config.values_per_dense_wavelet
    bcast_a, bcast_b = Cs > 1, Rs > 1          # a row (column) of one PE broadcasts nothing
    d_k = np.asarray(depths, np.int64)
    a_wav = -(-M_r[:, None] * d_k[None, :] // vpw) * bcast_a     # Rs x steps
    b_wav = -(-N_c[:, None] * d_k[None, :] // vpw) * bcast_b     # Cs x steps
    # Instruction-level steps (the costs MeshGEMM is calibrated with, mesh.py): the tile
    # product of a step d deep is d @maps of Nt FMACs of length Mt; the broadcasts are
    # fabric DSD ops received into the second buffer while the step computes; a step hands
    # over through task switches (each receive's finish, the step's end, the next step)
    # and cannot be shorter than a broadcast's trip across the grid (double buffers hide
    # one trip). The largest tiles set each step; the short ones finish early.
    e = config.fabric_elem_cycles
    ts = (2 + bcast_a + bcast_b) * config.task_switch_cycles
    lat = (max(Rs, Cs) - 1) * config.hop_cycles + config.ramp_cycles \
        if bcast_a or bcast_b else 0.0

    def total(f):
        """f summed over the steps: (count of full steps) * f(Kt) + f(the short last)."""
        return sum(depths.count(d) * f(d) for d in sorted(set(depths), reverse=True))

    def t_comp(d):
        return d * map_op(config, Nt, Mt)

    def t_comm(d):
        if not (bcast_a or bcast_b):
            return 0.0
        return config.setup_cycles + max(Mt * d * bcast_a, d * Nt * bcast_b) * e + e

    def step(d):
        return max(ts + max(t_comp(d), t_comm(d)), lat)
    start = config.launch_cycles + mem_op(config, Mt * Nt)
    est = start + total(step) + lat
    lower = start + total(lambda d: max(t_comp(d), t_comm(d))) + lat
    upper = start + total(lambda d: ts + t_comp(d) + t_comm(d) + lat) + lat
    macs = M * K * N
    links = np.zeros((R, C, 4))
    links[:Rs, :Cs] = _summa_links(Rs, Cs, a_wav, b_wav)
    terms = {"compute": total(t_comp), "fabric": total(t_comm),
             "latency": total(lambda d: step(d) - max(t_comp(d), t_comm(d))) + lat}
    energy = _energy(config, macs, macs * 3 * elem, float(links.sum()), R * C, est)
    useful = int(np.count_nonzero(A, axis=0) @ np.count_nonzero(B, axis=1))
    # each PE's own tile products: d @maps of N_c FMACs of length M_r per step
    busy = np.zeros((R, C))
    busy[:Rs, :Cs] = sum(depths.count(d) * d * map_op(config, N_c[None, :], M_r[:, None])
                         for d in set(depths))
    return SimReport(
        cycles=float(est), cycles_lower=float(lower), cycles_upper=float(upper),
        clock_hz=config.clock_hz, macs_dense=macs, macs_useful=useful, macs_performed=macs,
        macs_skipped_weight=0, macs_skipped_activation=0,
        busy_cycles=_wafer_array(config, region, busy),
        sram_bytes=_wafer_array(config, region, sram).astype(np.int64),
        link_wavelets=_wafer_array(config, region, links, (4,)),
        wavelets_sent=int(a_wav.sum() + b_wav.sum()),
        energy_joules=energy,
        bottleneck=max(terms, key=terms.get), region=tuple(int(v) for v in region),
        mapping="summa", dtype=config.dtype, fmac_per_cycle=fmac,
        details={"terms": terms, "pes_used": (Rs, Cs)})


# --------------------------------------------------------------------------------------
# Lower bounds for the placer's branch and bound (placement.search)
# --------------------------------------------------------------------------------------
def placer_bound(mapping, ops, config, R, C, exact=False):
    """A lower bound of the cycles of ``mapping`` on R x C: of the screen's estimate
    (``exact=False``) or of the exact model's; None where there is none. O(R + C + C N)
    (each column's activations are cached per C), so every candidate can be bounded."""
    if mapping == "weight-stationary" and not exact:
        return _ws_screen_bound(ops, config, R, C)
    if mapping == "activation-stationary":
        st = _as_stream(ops, config, R, C)
        if not exact:
            return _as_screen(st, config, ops.M, R)[0]          # the screen is closed-form
        # a PE does its rounds one after another; a row's last weight arrives after all
        # of its stream, one wavelet every dt (src/_pipeline.pyx: E >= last + task)
        arrive = (st["weight_wavelets"] - 1) * st["dt"]
        first = config.hop_cycles + config.ramp_cycles
        return float(max(st["compute"], arrive.max(initial=0) + first + config.task_cycles))
    return None


def placer_bounds(mapping, ops, config, rows, cols):
    """:func:`placer_bound` of the screen (``exact=False``) for every (R, C) of ``rows`` x
    ``cols``: a float64 array, one row per row count, the same floats, or None where
    :func:`placer_bound` has none. Weight-stationary with the summed-area tables is
    bounded in one Cython call (src/_screen.pyx); activation-stationary's is closed-form."""
    if mapping == "weight-stationary" and ops.table("work") is not None:
        from .._screen import ws_screen_bounds
        m_bs = [ops.row_block(R)[0] for R in rows]
        k_bs = [ops.col_block(C)[0] for C in cols]
        acts = [ops.activations(C).sum(axis=1) for C in cols]
        offsets = [np.concatenate([[0], np.cumsum([len(b) for b in bs])]).astype(np.int64)
                   for bs in (m_bs, k_bs)]
        return ws_screen_bounds(
            ops.table("work"), np.concatenate(m_bs).astype(np.int64), offsets[0],
            np.concatenate(k_bs).astype(np.int64), offsets[1],
            np.concatenate(acts).astype(np.int64), int(ops.N), float(config.task_cycles),
            float(config.setup_cycles), float(config.fmacs),
            float(config.scalar_cycles_per_element), float(config.wavelets_per_sparse_value),
            _link_dt(config), float(config.hop_cycles),
            float(config.ramp_cycles), float(_turnaround(config)),
            float(config.values_per_dense_wavelet))
    if mapping == "activation-stationary":
        N_max = np.array([np.diff(_bounds(ops.N, C)).max() for C in cols])
        return np.array([_as_screen_bounds(ops, config, R, cols, N_max) for R in rows])
    out = np.empty((len(rows), len(cols)))
    for i, R in enumerate(rows):
        for j, C in enumerate(cols):
            b = placer_bound(mapping, ops, config, R, C)
            if b is None:
                return None
            out[i, j] = b
    return out


def _as_screen_bounds(ops, config, R, cols, N_max):
    """activation-stationary's screen (:func:`_as_screen` of :func:`_as_stream`) on R x C
    for each C of ``cols`` (``N_max``: each one's most samples on a PE column), at once:
    the same floats. A PE's busy time is its weights times its AXPY task plus the
    end-of-stream tasks, so the slowest is the PE row with the most weights on the PE
    column with the most samples (products and sums of nonnegative floats round
    monotonically)."""
    M, task = ops.M, config.task_cycles
    rows = _as_rows(ops, config, R, 1)
    t_axpy = task + config.setup_cycles + np.ceil(N_max / config.fmacs)
    compute = rows["nnz_r"].max(initial=0) * t_axpy + M * task
    L = np.ceil(N_max / config.values_per_dense_wavelet).astype(np.int64) if R > 1 \
        else np.zeros(len(cols), np.int64)
    fill = np.asarray(cols) * config.hop_cycles + config.ramp_cycles
    lat = _turnaround(config)
    per_round = np.maximum(task + config.setup_cycles - lat + L, L + 1 + task) if R > 1 \
        else np.full(len(cols), task)
    slowest = np.maximum(np.maximum(np.maximum(compute, rows["t_external"]), rows["t_links"]),
                         M * per_round)
    if R <= 1:
        chain = np.full(len(cols), float(task))
    else:           # _chain_latency for each L, its sums in its order
        ramp, hop = config.ramp_cycles, config.hop_cycles
        head = task + config.setup_cycles + ramp + (R - 2) * (hop + 2 * ramp + lat) + hop + ramp
        chain = np.where(L == 0, task, head + L + 1 + task)
    return slowest + fill + chain


def _ws_screen_bound(ops, config, R, C):
    """A lower bound of weight-stationary's screen (:func:`_ws_work` with exact=False, then
    :func:`_pipeline_cycles`), from the recurrence of src/_pipeline.pyx: a chain position
    c ends its rounds no sooner than its first arrival plus all its work, nor before its
    stream's last wavelet plus a task; the last round's sums then still cross the rest of
    the chain from c; the root takes L wavelets and a task per round. A column's work over
    the batch is at least its slowest block's, and a block's at least the faster of its
    two formats (whichever fits); blocks of one PE row and one PE column are looked at."""
    N, task = ops.N, config.task_cycles
    m_b, _ = ops.row_block(R)
    M_r = np.diff(m_b)
    t_dense = placer.dense_task_cycles(config, M_r)
    A_c = ops.activations(C).sum(axis=1)
    dt = _link_dt(config)
    fill = R * config.hop_cycles + config.ramp_cycles
    r, c = int(np.argmax(M_r)), int(np.argmax(A_c))
    sw_row, sw_col = ops.scalar_work_strips(R, C, r, c)      # the blocks of row r, column c
    scalar = config.scalar_cycles_per_element
    work_c = np.minimum(A_c * t_dense[r], A_c * task + scalar * sw_row)
    work_c[c] = max(work_c[c], np.minimum(A_c[c] * t_dense, A_c[c] * task + scalar * sw_col).max())
    stream_c = (A_c * config.wavelets_per_sparse_value + N) * dt - dt + task
    ends_c = fill + np.maximum(work_c + N * task, stream_c)   # each position's last round
    L = int(np.ceil(M_r.max() / config.values_per_dense_wavelet)) if C > 1 else 0
    if C == 1 or L == 0:
        return float(ends_c[-1] + task)
    ramp, hop, lat = config.ramp_cycles, config.hop_cycles, _turnaround(config)
    delta = hop + 2 * ramp + lat                             # one reduction stage
    tail = (C - 2 - np.arange(C)) * delta + L + hop + ramp + task + lat + ramp
    tail[0] += config.task_cycles + config.setup_cycles - lat    # the chain's first launches
    tail[-1] = L + task                                          # the root
    return float(max((ends_c + tail).max(), N * (L + task)))

def _distinct_per_block(rb, idx, bounds, R):
    """How many distinct values of ``idx`` (0 <= idx < bounds[-1]) fall in each block
    (rb, block of idx): O(nnz + R * n) with a bincount, no sort. Empty blocks (more
    blocks than values: repeated bounds) count 0."""
    n = int(bounds[-1])
    seen = np.bincount(rb * n + idx, minlength=R * n).reshape(R, n) > 0
    # differences of a running count, not add.reduceat: reduceat returns the element at
    # a repeated bound instead of 0 and refuses a bound equal to n
    cum = np.zeros((R, n + 1), np.int64)
    np.cumsum(seen, axis=1, out=cum[:, 1:])
    bounds = np.asarray(bounds)
    return cum[:, bounds[1:]] - cum[:, bounds[:-1]]


# --------------------------------------------------------------------------------------
# SDDMM: the weight gradient of a sparse layer, left where the weights live
# --------------------------------------------------------------------------------------
def _sddmm_blocks(w, R, C):
    """What :func:`sddmm_cost` needs of the pattern's structure on R x C PEs: bounds,
    nonzeros per block, distinct columns per block (tasks), rows of B sent per column."""
    m_b, n_b = _bounds(w.M, R), _bounds(w.K, C)
    rb, cb = _block_of(m_b, w.M)[w.w_row], _block_of(n_b, w.K)[w.w_col]
    nnz = np.bincount(rb * C + cb, minlength=R * C).reshape(R, C).astype(np.int64)
    cols_rc = _distinct_per_block(rb, w.w_col, n_b, R)
    used_cols = np.flatnonzero(w.col_nnz)
    sent_c = np.bincount(_block_of(n_b, w.K)[used_cols], minlength=C)
    return m_b, n_b, nnz, cols_rc, sent_c


def sddmm_structure(w, R, C):
    """:func:`_sddmm_blocks` of the pattern's stats ``w`` on R x C PEs, worked out once and
    kept on the stats."""
    if ("sddmm", R, C) not in w.cache:
        w.cache[("sddmm", R, C)] = _sddmm_blocks(w, R, C)
    return w.cache[("sddmm", R, C)]


def prepare_weight_stationary(weights, config, region):
    """What :func:`weight_stationary` and :func:`dense_screen` read of W's structure on
    ``region`` whatever the batch (bounds, blocks, formats that fit), worked out now and
    kept on ``weights`` (its WeightStats), so a later product pays only for its batch."""
    placer._ws_static(Operands(None, np.zeros((weights.K, 0), bool), weights), config,
                      region)
    dense_screen(weights, config, region)


def prepare_step_structure(weights, config, region):
    """What :func:`weight_stationary_cycles` reads of W's structure (``weights``, its
    WeightStats) on ``region`` whatever the batch, worked out now and kept on ``weights``:
    a placement makes it once, so the steps costed on it pay only for their batches (a
    step that finds none builds it)."""
    _step_structure(weights, config, region)


def sddmm_cost(A, B, pattern, config, region, useful, *, full=True, weights=None):
    """Cost of out = (A @ B.T) at the pattern's nonzeros on an R x C region.

    PE (r, c) holds pattern block (r, c) and A[rows_r, :] (stationary); the rows of
    B[cols_c, :] that the block's column needs stream down PE column c (a column with
    no stored position anywhere in the PE column is never sent); each arriving row
    triggers a task with one dot product of length D per stored position in it.
    ``weights`` reuses a :class:`placement.WeightStats` of the pattern (its blocks are
    then counted once per region, not once per call).
    """
    w = weights if weights is not None else placer.WeightStats(pattern)
    fields = dict(_sddmm_cached(w, A.shape[1], config, region, full))
    terms = fields.pop("terms")
    return SimReport(**fields, macs_useful=int(useful), details={"terms": dict(terms)})


def sddmm_cycles(weights, D, config, region):
    """The cycles :func:`sddmm_cost` gives the pattern of ``weights`` (a WeightStats) for
    rows of length D: they depend on neither operand's values."""
    return _sddmm_cached(weights, D, config, region, False)["cycles"]


def sddmm_sram_peak(weights, D, config, region):
    """The SRAM peak bytes of :func:`sddmm_cost`'s report for rows of length D."""
    fields = _sddmm_cached(weights, D, config, region, False)
    return int(fields["sram_bytes"].max()) if fields["sram_bytes"].size else 0


def sddmm_check_fits(weights, D, config, region):
    """Raise the SramOverflowError :func:`sddmm_cost` would for rows of length D on
    ``region``, from its SRAM ledger alone (no report built or kept: the balance asks this
    of every candidate rectangle). Where the PE with the most rows and columns would fit
    even with its block full (or holding every nonzero), the blocks are not counted."""
    R, C = int(region[2]), int(region[3])
    M_r, K_c = np.diff(_bounds(weights.M, R)).max(), np.diff(_bounds(weights.K, C)).max()
    elem = config.elem_bytes
    most = (config.reserve_bytes + int(M_r) * D * elem
            + min(int(M_r) * int(K_c), weights.nnz) * (elem + 2) + (int(K_c) + 1) * 2
            + FIFO_BYTES)
    if most <= config.sram_bytes:
        return
    _sddmm_ledger(weights, D, config, region)


def _sddmm_ledger(w, D, config, region):
    r0, c0, R, C = region
    m_b, n_b, nnz, _, _ = sddmm_structure(w, R, C)
    elem = config.elem_bytes
    ledger = SramLedger(config, region)
    rows_held = np.diff(m_b) * D * elem
    ledger.alloc("A rows (stationary)", rows_held[:, None] * np.ones((1, C), np.int64))
    ledger.alloc("pattern values + 16-bit indices + column starts",
                 nnz * (elem + 2) + (np.diff(n_b)[None, :] + 1) * 2)
    ledger.alloc("input FIFO", FIFO_BYTES)
    return ledger.check(f"sddmm, pattern {w.M}x{w.K}, D={D} on {R}x{C} PEs")


def _sddmm_cached(w, D, config, region, full):
    """Everything but the useful MACs depends on the pattern, the region and D alone:
    the report's fields, kept on the pattern's stats."""
    key = ("sddmm-report", id(config), tuple(int(v) for v in region), D, full)
    hit = w.cache.get(key)
    if hit is None or hit[0] is not config:
        hit = w.cache[key] = (config, _sddmm_fields(w, D, config, region, full))
    return hit[1]


def _sddmm_fields(w, D, config, region, full):
    """The fields of :func:`sddmm_cost`'s report but the useful MACs (and its terms)."""
    r0, c0, R, C = region
    M, N = w.M, w.K
    elem, fmac = config.elem_bytes, config.fmacs
    m_b, n_b, nnz, cols_rc, sent_c = sddmm_structure(w, R, C)
    sram = _sddmm_ledger(w, D, config, region)

    t_dot = config.setup_cycles + math.ceil(D / fmac) + math.log2(max(fmac, 1)) + 1
    busy = cols_rc * config.task_cycles + nnz * t_dot
    vpw = config.values_per_dense_wavelet
    stream = sent_c * math.ceil(D / vpw)                           # wavelets down column c
    latency = 2 * config.ramp_cycles + (R - 1) * config.hop_cycles
    compute = busy.max(initial=0)
    fabric = stream.max(initial=0) / config.link_wavelets_per_cycle
    est = max(compute, fabric) + latency + t_dot
    lower = max(compute, fabric) + latency
    upper = compute + fabric + latency + t_dot
    links = np.zeros((R, C, 4))
    links[:R - 1, :, 2] = stream[None, :]
    performed = int(w.nnz) * int(D)
    dense = int(M) * int(N) * int(D)
    energy = _energy(config, performed, performed * 3 * elem, float(links.sum()), R * C, est)
    terms = {"compute": float(compute), "fabric": float(fabric), "latency": float(latency)}
    return dict(
        cycles=float(est), cycles_lower=float(lower), cycles_upper=float(upper),
        clock_hz=config.clock_hz, macs_dense=dense,
        macs_performed=performed, macs_skipped_weight=dense - performed, macs_skipped_activation=0,
        busy_cycles=_wafer_array(config, region, busy, full=full),
        sram_bytes=_wafer_array(config, region, sram, full=full).astype(np.int64),
        link_wavelets=_wafer_array(config, region, links, (4,), full=full),
        wavelets_sent=int(stream.sum()), energy_joules=energy,
        bottleneck=max(terms, key=terms.get), region=tuple(int(v) for v in region),
        mapping="weight-stationary", dtype=config.dtype, fmac_per_cycle=fmac,
        terms=terms)
