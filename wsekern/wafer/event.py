"""Event-level simulation of the wafer mappings: the check of the analytic model.

Each wavelet is simulated as it crosses each link (see src/_event.pyx): routers with
per-colour input queues of ``queue_depth`` wavelets and back-pressure, multicast
routes, hop / ramp / turn latency, one wavelet per link per cycle, one data task at a
time per core, end-of-stream markers. The cores do the arithmetic on what they hold
and receive, so the result proves the mapping computes the product.

It takes a ``placement.Placement`` (block bounds, dense or compressed blocks, the SRAM
ledger) as the analytic model does, and shares no timing code with it. Its own timing
parameters, all from ``WaferConfig``:

- a relay or reduction stage turns a wavelet round in ``stage_cycles`` from router in
  to router out (ramp up, ``stage - 2 * ramp`` in the core, ramp down), one wavelet per
  cycle; HPDC'24's ``2 * T_R + 1`` on WSE-2;
- a core that sends a stored vector first runs a task that launches a send DSD
  (``task_cycles + setup_cycles``); a reduction's root ends each round with a task;
- a data task costs ``task + setup + ceil(len / fmac)`` as a vector AXPY, or
  ``task + scalar * nnz`` over a compressed column; an end of stream costs ``task``.
"""
import time

import numpy as np
import scipy.sparse as sps

from .._event import Colour, Engine, Mode, Port, Wavelet
from . import analytic, figures
from . import placement as placer
from .figures import wafer_array
from .report import SimReport

# The engine's protocol (src/_event.pyx defines it once), as plain ints for NumPy.
N, E, S, W, RAMP, EDGE, NO_PORT = (int(p) for p in (
    Port.NORTH, Port.EAST, Port.SOUTH, Port.WEST, Port.RAMP, Port.EDGE, Port.NO_PORT))
MODE_NONE, MODE_WS, MODE_AS = int(Mode.MODE_NONE), int(Mode.MODE_WS), int(Mode.MODE_AS)
EOS, INDEX_HALF = int(Wavelet.EOS), int(Wavelet.INDEX_HALF)
NO_COLOUR = int(Colour.NO_COLOUR)


# How a router picks between colours whose wavelets wait for one out-port in the same cycle
# (the vendor documents no rule: MACHINE.md says only that sources to one link serialise):
# "colour-order" (the higher colour first: the engine's order of agents, so on a core's
# ramp the partial sums beat the column's stream) or "round-robin" (the colour whose turn
# comes first after the port's last user). A module setting, read when an engine is made.
ARBITRATION = "round-robin"


def _params(config, *, rounds, mode, store_forward=False, trace=False):
    return {"hop": float(config.hop_cycles), "ramp": float(config.ramp_cycles),
            "turn": float(config.turn_cycles), "link_rate": float(config.link_wavelets_per_cycle),
            "lat": max(1.0, config.stage_cycles - 2 * config.ramp_cycles),
            "setup": float(config.setup_cycles), "task": float(config.task_cycles),
            "scalar": float(config.scalar_cycles_per_element), "fmac": float(config.fmacs),
            "vpw": int(config.values_per_dense_wavelet), "store_forward": int(store_forward),
            "rounds": int(rounds), "mode": mode, "x_colour": 0, "trace": bool(trace),
            "arbitration": ARBITRATION}


class _Routes:
    """Route table of a logical R x C grid: per (PE, colour) where wavelets come from
    and the set of ports they leave by."""

    def __init__(self, R, C, n_colours):
        self.R, self.C = R, C
        self.tx = np.zeros((R * C, n_colours), np.uint8)
        self.rx = np.full((R * C, n_colours), NO_PORT, np.int8)

    def set(self, pe, colour, rx, tx_ports):
        self.rx[pe, colour] = rx
        mask = 0
        for d in tx_ports:
            mask |= 1 << d
        self.tx[pe, colour] = mask


def _chain_east(routes, R, C, first_colour):
    """Reduction chains along each logical row into the last column, on two colours that
    alternate so a PE receives on one and sends on the other. Returns the topology."""
    P = R * C
    child_ptr = np.zeros(P + 1, np.int64)
    child_col, send_col = [], np.full(P, NO_COLOUR, np.int32)
    for p in range(P):
        c = p % C
        if c > 0:
            col = first_colour + (c - 1) % 2
            routes.set(p, col, W, [RAMP])
            child_col.append(col)
        if c < C - 1:
            col = first_colour + c % 2
            routes.set(p, col, RAMP, [E])
            send_col[p] = col
        child_ptr[p + 1] = len(child_col)
    return child_ptr, np.asarray(child_col, np.int32), send_col


def _stream_engine(config, R, C, rounds, mode, trace, acc_len_per_row):
    """An engine on a logical R x C grid: colour 0 streams from the edge down every
    column to each core (main thread); colours 1 and 2 reduce each row eastward."""
    eng = Engine(R, C, 3, config.queue_depth,
                 _params(config, rounds=rounds, mode=mode, trace=trace))
    routes = _Routes(R, C, 3)
    for p in range(R * C):
        r = p // C
        routes.set(p, 0, EDGE if r == 0 else N, [RAMP] + ([S] if r < R - 1 else []))
    child_ptr, child_col, send_col = _chain_east(routes, R, C, 1)
    eng.set_routes(routes.tx.ravel(), routes.rx.ravel(), np.array([0, 1, 1], np.uint8))
    eng.set_reduction(child_ptr, child_col, send_col, np.repeat(acc_len_per_row, C))
    return eng


def _column_streams(keys_col, keys_round, idx, val, n_cols, rounds, fp32_sparse):
    """Per logical column, the stream of (idx, value) items ordered by round, with an
    end-of-stream marker closing every round (and, in fp32, an index wavelet ahead of
    each value wavelet)."""
    eos_col = np.repeat(np.arange(n_cols), rounds)
    eos_round = np.tile(np.arange(rounds), n_cols)
    cols = np.concatenate([keys_col, eos_col])
    rnds = np.concatenate([keys_round, eos_round])
    kind = np.concatenate([np.zeros(len(keys_col), np.int8), np.ones(len(eos_col), np.int8)])
    idx = np.concatenate([idx, np.full(len(eos_col), EOS)]).astype(np.int32)
    val = np.concatenate([val, np.zeros(len(eos_col))])
    order = np.lexsort((idx, kind, rnds, cols))          # stable: data by index, then EOS
    cols, idx, val, kind = cols[order], idx[order], val[order], kind[order]
    if fp32_sparse:
        data = kind == 0
        reps = np.where(data, 2, 1)
        cols = np.repeat(cols, reps)
        val = np.repeat(val, reps)
        idx = np.repeat(idx, reps)
        first = np.zeros(len(idx), bool)
        first[np.cumsum(reps)[data] - 2] = True
        idx[first] = INDEX_HALF
    ptr = np.zeros(n_cols + 1, np.int64)
    ptr[1:] = np.cumsum(np.bincount(cols, minlength=n_cols))
    return ptr, idx, val


def _to_physical(link_count, transpose):
    """Logical (R, C, 6) link counters to the physical (R, C, 4) N, E, S, W layout."""
    links = link_count[:, :, :4].astype(np.float64)
    if transpose:      # logical S is physical E, E is S, N is W, W is N
        links = links.transpose(1, 0, 2)[:, :, [W, S, E, N]]
    return links


def _report(config, region, engine, T, wall, analytic_report, *, mapping, transpose, what,
            macs_dense, macs_useful, cpu):
    st = engine.stats()
    busy = st["busy"] + st["reducer_busy"]
    main_busy = st["busy"]
    red_busy = st["reducer_busy"]
    wait_data, back = st["wait_data"], st["backpressure"]
    if transpose:
        busy, main_busy, red_busy, wait_data, back = (
            a.T for a in (busy, main_busy, red_busy, wait_data, back))
    links = _to_physical(st["link_count"], transpose)
    ramps = st["link_count"][:, :, 4:].sum()
    events = int(st["link_count"].sum() + st["edge_wavelets"])
    full = wafer_array
    performed = st["macs"]
    if mapping == "weight-stationary":
        skipped_w = analytic_report.macs_skipped_weight
    else:
        skipped_w = macs_dense - performed
    terms = {"compute": float(main_busy.max(initial=0)),
             "fabric": float(links.max(initial=0) / config.link_wavelets_per_cycle),
             "reduction": float(red_busy.max(initial=0))}
    bottleneck = max(terms, key=terms.get)
    if terms[bottleneck] < 0.5 * T:
        bottleneck = "latency"
    if bottleneck == "compute" and analytic_report.details.get("compressed_blocks", 0):
        r, c = np.unravel_index(int(np.argmax(main_busy)), main_busy.shape)
        if analytic_report.details["use_comp"][r, c]:
            bottleneck = "scalar"
    if mapping == "activation-stationary":
        t_ext = analytic_report.details["terms"]["weight-streaming"]
        if t_ext >= 0.5 * T and t_ext >= max(terms.values()):
            bottleneck = "weight-streaming"
    elem = config.elem_bytes
    energy = figures.energy(config, performed, performed * 3 * elem, float(links.sum()),
                            region[2] * region[3], T)
    return SimReport(
        cycles=float(T), cycles_lower=float(T), cycles_upper=float(T), clock_hz=config.clock_hz,
        macs_dense=int(macs_dense), macs_useful=int(macs_useful), macs_performed=int(performed),
        macs_skipped_weight=int(skipped_w),
        macs_skipped_activation=int(macs_dense - performed - skipped_w),
        busy_cycles=full(config, region, busy), sram_bytes=analytic_report.sram_bytes,
        link_wavelets=full(config, region, links, (4,)),
        wavelets_sent=int(st["edge_wavelets"] + st["link_count"][:, :, 5].sum()),
        energy_joules=energy, bottleneck=bottleneck, region=tuple(int(v) for v in region),
        mapping=mapping, dtype=config.dtype, fmac_per_cycle=config.fmacs,
        details={"mode": "event", "what": what, "events": events,
                 "events_per_second": events / wall if wall > 0 else float("inf"),
                 "events_per_cpu_second": events / cpu if cpu > 0 else float("inf"),
                 "wall_seconds": wall, "cpu_seconds": cpu, "ramp_wavelets": int(ramps),
                 "stalls": {"wait_data": full(config, region, wait_data),
                            "backpressure": full(config, region, back)},
                 "terms": terms, "tasks": st["tasks"],
                 "trace": _trace(st["trace"], transpose),
                 "analytic": {"cycles": analytic_report.cycles,
                              "cycles_lower": analytic_report.cycles_lower,
                              "cycles_upper": analytic_report.cycles_upper,
                              "bottleneck": analytic_report.bottleneck}})


TRACE_LIMIT = 1 << 24     # PEs x rounds a trace may hold


def _check_trace(trace, pes, rounds):
    if trace and pes * rounds > TRACE_LIMIT:
        raise ValueError(f"trace=True keeps {pes:,} PEs x {rounds:,} rounds; traces are for "
                         f"small runs (at most {TRACE_LIMIT:,})")


def _trace(trace, transpose):
    """The engine's trace in the region's layout: per PE and round, when its sums were
    ready and when they left it; per PE and time window (``window_cycles`` long), the
    wavelets it sent N, E, S, W and the task cycles it started."""
    if trace is None:
        return None
    links = trace["links"][:, :, :4]
    out = {"sums_ready": trace["sums_ready"], "reduced": trace["reduced"], "busy": trace["busy"],
           "window_cycles": trace["window_cycles"]}
    if transpose:
        out = {k: (v.transpose(1, 0, 2) if isinstance(v, np.ndarray) else v)
               for k, v in out.items()}
        links = links.transpose(1, 0, 2, 3)[:, :, [W, S, E, N]]
    out["links"] = links
    return out


def _run(engine, progress=None):
    """(the engine's cycles, its wall seconds, the CPU seconds the calling thread, which
    runs the engine, spent in them: less than the wall where the machine's other work took
    turns on the core)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    T = engine.run(progress=progress)
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    done, rounds = engine.check_drained()
    if done != rounds:     # a deadlock would be a bug of the mapping, never of the input
        raise RuntimeError(f"event simulation stalled: a reducer finished {done} of {rounds} "
                           f"rounds")
    return T, wall, cpu


# --------------------------------------------------------------------------------------
# Weight-stationary
# --------------------------------------------------------------------------------------
def weight_stationary(W, X, config, region, *, what="spmm", trace=False, placement=None,
                      progress=None):
    """Event simulation of Y = W @ X with W stationary; returns (Y, SimReport).

    ``placement`` (a :class:`placement.Placement` of W on ``region``; by default the
    placer's rule makes it) gives the block bounds, dense or compressed blocks and SRAM;
    the analytic cost of the same placement is kept in ``details["analytic"]``.
    ``trace=True`` keeps a compact trace for small runs (``details["trace"]``,
    region-shaped): per PE and sample, the cycle its partial sums were complete and the
    cycle they left it; per PE and time window (256 windows, doubling in length as the
    run grows), the wavelets it sent in each direction and the task cycles it started.
    ``progress(events)`` is called with the wavelet-link events so far, about every
    million and at the end.
    """
    W = sps.csc_array(W)
    W.sort_indices()
    X = np.asarray(X, dtype=np.float64)
    r0, c0, R, C = region
    _check_trace(trace, R * C, X.shape[1])
    ops = placer.Operands(W, X)
    # the analytic model's formats (the placer's or the pace-safe ones, the faster)
    pl = placement if placement is not None else analytic.weight_stationary_placement(
        ops, config, region, what)
    ana = analytic.weight_stationary(W, X, config, region, what=what, ops=ops, placement=pl)
    M, K = W.shape
    Nb = X.shape[1]
    m_b, k_b = pl.row_bounds, pl.col_bounds
    eng = _stream_engine(config, R, C, Nb, MODE_WS, trace, np.diff(m_b))
    Y = np.zeros((M, Nb))
    eng.set_output(Y, m_b[:-1], Nb, 1)
    nz_n, nz_k = np.nonzero(X.T)
    col_of = placer.block_of(k_b, K)
    ptr, idx, val = _column_streams(col_of[nz_k], nz_n, nz_k, X[nz_k, nz_n], C, Nb,
                                    config.dtype == "fp32")
    eng.set_streams(ptr, idx, val, np.full(C, 1.0 / config.link_wavelets_per_cycle))
    eng.set_weights(W.indptr, W.indices, W.data, m_b[:-1], m_b[1:], pl.use_comp.ravel(), k_b)
    T, wall, cpu = _run(eng, progress)
    _nonfinite_meets_zero(W, X, Y)
    report = _report(config, region, eng, T, wall, ana, mapping="weight-stationary",
                     transpose=False, what=what, macs_dense=ana.macs_dense,
                     macs_useful=ana.macs_useful, cpu=cpu)
    return Y, report


def _nonfinite_meets_zero(W, X, Y):
    """A zero x is never sent, so a stored inf/NaN weight never meets it on the fabric; the
    product over W's stored pattern is NaN there (IEEE, as the CPU kernel and SciPy say)."""
    bad = ~np.isfinite(W.data)
    if bad.any():
        cols = np.repeat(np.arange(W.shape[1]), np.diff(W.indptr))[bad]
        hit = sps.csr_array((np.ones(len(cols)), (W.indices[bad], cols)), shape=W.shape)
        Y[(hit @ (X == 0).astype(np.float64)) > 0] = np.nan


# --------------------------------------------------------------------------------------
# Activation-stationary
# --------------------------------------------------------------------------------------
def activation_stationary(W, X, config, region, *, what="spmm", trace=False,
                          placement=None, progress=None):
    """Event simulation of Y = W @ X with X stationary and W's nonzeros streamed in
    along the PE rows at the external bandwidth; returns (Y, SimReport). A round is a
    row of W (``trace`` and ``progress`` as in :func:`weight_stationary`)."""
    W = sps.csr_array(W)
    W.sum_duplicates()
    X = np.asarray(X, dtype=np.float64)
    r0, c0, R, C = region
    _check_trace(trace, R * C, W.shape[0])
    ops = placer.Operands(W, X)
    pl = placement if placement is not None else placer.activation_stationary(
        ops, config, region, what)
    ana = analytic.activation_stationary(W, X, config, region, what=what, ops=ops, placement=pl)
    M, K = W.shape
    Nb = X.shape[1]
    k_b, n_b = pl.row_bounds, pl.col_bounds
    # Logical grid: a logical column is a physical PE row (its stream flows east), a
    # logical row a physical PE column (its partial rows of Y are reduced south).
    Rl, Cl = C, R
    eng = _stream_engine(config, Rl, Cl, M, MODE_AS, trace, np.diff(n_b))
    Y = np.zeros((M, Nb))
    eng.set_output(Y, n_b[:-1], 1, Nb)
    coo = W.tocoo()
    row_of = placer.block_of(k_b, K)
    cols = row_of[coo.col]
    ptr, idx, val = _column_streams(cols, coo.row.astype(np.int64), coo.col.astype(np.int64),
                                    coo.data.astype(np.float64), Cl, M, config.dtype == "fp32")
    # The external link feeds every row its share, at most one wavelet per cycle each.
    ext_rate = config.external_bytes_per_s / config.clock_hz / 4.0
    count = np.diff(ptr).astype(np.float64)
    share = ext_rate * count / max(count.sum(), 1.0)
    dt = np.maximum(1.0 / config.link_wavelets_per_cycle, 1.0 / np.maximum(share, 1e-300))
    eng.set_streams(ptr, idx, val, dt)
    eng.set_activations(X, n_b[:-1], n_b[1:])
    T, wall, cpu = _run(eng, progress)
    report = _report(config, region, eng, T, wall, ana, mapping="activation-stationary",
                     transpose=True, what=what, macs_dense=ana.macs_dense,
                     macs_useful=ana.macs_useful, cpu=cpu)
    return Y, report


# --------------------------------------------------------------------------------------
# Collectives held against published measurements
# --------------------------------------------------------------------------------------
def _collective(config, P, K, topology, vectors=None, store_forward=False):
    """Reduce (or relay) vectors of K wavelets from P PEs in a row into PE 0 (the west
    end). Returns (cycles, the reduced vector of K * values-per-wavelet elements).
    ``topology`` is "chain" or "tree" (binomial, one colour per level).
    """
    if P < 1 or K < 1:
        raise ValueError(f"need P >= 1 PEs and K >= 1 elements; received P={P}, K={K}")
    n = K * config.values_per_dense_wavelet
    if vectors is None:
        vectors = np.arange(P * n, dtype=np.float64).reshape(P, n) % 7 + 1
    if topology == "chain":
        nc = 2
    elif topology == "tree":
        nc = max(1, int(np.ceil(np.log2(max(P, 2)))))
        if nc > config.colors:
            raise ValueError(f"a binomial tree over {P} PEs needs {nc} colours; the config "
                             f"has {config.colors}")
    else:
        raise ValueError(f"topology must be 'chain' or 'tree'; received {topology!r}")
    eng = Engine(1, P, nc, config.queue_depth,
                 _params(config, rounds=1, mode=MODE_NONE, store_forward=store_forward))
    routes = _Routes(1, P, nc)
    children = [[] for _ in range(P)]
    send = np.full(P, NO_COLOUR, np.int32)
    if topology == "chain":
        for i in range(1, P):
            routes.set(i, i % 2, RAMP, [W])
            routes.set(i - 1, i % 2, E, [RAMP])
            children[i - 1].append(i % 2)
            send[i] = i % 2
    else:
        for j in range(nc):
            step = 1 << j
            for i in range(step, P, 2 * step):
                routes.set(i, j, RAMP, [W])
                for m in range(i - step + 1, i):
                    routes.set(m, j, E, [W])
                routes.set(i - step, j, E, [RAMP])
                children[i - step].append(j)
                send[i] = j
    eng.set_routes(routes.tx.ravel(), routes.rx.ravel(), np.ones(nc, np.uint8))
    child_ptr = np.concatenate([[0], np.cumsum([len(c) for c in children])])
    child_col = np.asarray([c for cs in children for c in cs], np.int32)
    acc0 = np.zeros((P, 2, n))
    acc0[:, 0, :] = vectors
    eng.set_reduction(child_ptr, child_col, send, np.full(P, n), acc0)
    out = np.zeros(n)
    eng.set_output(out, np.zeros(1, np.int64), 1, 0)
    T, _, _ = _run(eng)
    return T, out


def reduce_row(config, P, K, topology="chain", vectors=None):
    """Cycles to reduce vectors of K wavelets (K fp32 or 2K fp16 values) from P PEs in a
    row into the west end PE, and the reduced vector."""
    return _collective(config, P, K, topology, vectors)


def relay(config, stages, wavelets):
    """Cycles for ``wavelets`` values sent from a PE through ``stages`` store-and-forward
    legs (stages - 1 relaying PEs, each storing the whole message before sending it on)."""
    if stages < 1:
        raise ValueError(f"stages must be >= 1; received {stages}")
    T, _ = _collective(config, stages + 1, wavelets, "chain", store_forward=True)
    return T
