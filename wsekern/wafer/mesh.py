"""MeshGEMV and MeshGEMM: the mappings real wafer programs use (WaferLLM, He et al. OSDI'25),
placed once and costed by a closed-form critical path (the event model, mesh_event.py, walks
every PE and link of the same placement).

MeshGEMV (y = W @ x, W M x K): on an R x C region PE (r, c) holds x[K block r] and the tile
W[M block c, K block r]. It computes its local product (an Nt-long vector, Nt = M / C), then
each PE column reduces in two levels: the column is cut into ``group_num`` groups of
s = R / group_num PEs; in a group, chains from both ends stream partial sums to the group's
middle PE (root1 = s // 2); the group roots chain-reduce the same way toward the global
root (group group_num // 2); the root then broadcasts y's block north and south, so every
PE of column c ends with y[M block c].

MeshGEMM (C = X @ W, square P x P region): Cannon on an interleaved ring where each PE
talks to the PE two hops away. X is aligned in P / 2 shift rounds, then P steps, each
sending the X tile along the row and the W tile along the column to the ring neighbour,
overlapped with Kt rank-1 updates (Kt * Nt FMACs of length Mt issued from a @map loop).
Tiles are double-buffered.

The instruction-level costs, one op each (WaferConfig fields; fits in calibrate.py):
  a DSD op on memory         setup + ceil(len / lanes)
  a DSD op on a fabric operand  setup + len * fabric_elem (the first element out after
                             setup + fabric_elem; a receive ends fabric_elem after the last
                             element arrives)
  a message over d hops      + d * hop + ramp
  a relaying core (faddh fabric -> fabric, cut-through)  stream_stage after the element
                             arrives, never before its own setup
  a @map of n instructions   setup + n * (dsd_issue + ceil(len / lanes))
  a local task               task_switch
  a program iteration        launch
"""
import math
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sps

from .figures import energy as _energy
from .figures import wafer_array
from .ledger import SramLedger
from .report import SimReport


class MappingUnfit(ValueError):
    """The mapping cannot be placed on this region (the placer tries another)."""


GEMV_QUEUES = 6      # input queues 2-7 of the WSE-3 program (memcpy takes 0-1) [P: WaferLLM]
GEMM_QUEUES = 4      # input queues 2-5 (X, X shift both ways, W)


def _bounds(n, parts):
    return np.linspace(0, n, parts + 1).round().astype(np.int64)


# --------------------------------------------------------------------------------------
# Instruction-level costs (shared by both models: they are the machine's parameters)
# --------------------------------------------------------------------------------------
def mem_op(config, length):
    """A DSD instruction over ``length`` elements in memory."""
    return config.setup_cycles + math.ceil(length / config.lanes)


def map_op(config, count, length):
    """A @map loop issuing ``count`` vector instructions of ``length`` elements each (scalars
    or arrays); no instruction, no cost."""
    count, length = np.asarray(count), np.asarray(length)
    cycles = config.setup_cycles + count * (config.dsd_issue_cycles
                                            + np.ceil(length / config.lanes))
    out = np.where(count > 0, cycles, 0.0)
    return float(out) if out.ndim == 0 else out


def transit(config, hops):
    return hops * config.hop_cycles + config.ramp_cycles


# --------------------------------------------------------------------------------------
# MeshGEMV
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GemvPlacement:
    """Where MeshGEMV puts y = W @ x: block bounds, groups and roots (rows of the region
    index the reduced dimension K, columns the output M)."""
    region: tuple
    group_num: int
    k_bounds: np.ndarray
    m_bounds: np.ndarray

    @property
    def R(self):
        return self.region[2]

    @property
    def C(self):
        return self.region[3]

    @property
    def group_size(self):
        return self.R // self.group_num

    @property
    def root1(self):
        return self.group_size // 2

    @property
    def root2(self):
        return (self.group_num // 2) * self.group_size + self.root1

    @property
    def Nt(self):
        return int(np.diff(self.m_bounds).max())

    @property
    def Mt(self):
        return int(np.diff(self.k_bounds).max())


def group_nums(config, R):
    """The group counts MeshGEMV can use on a column of R PEs: divisors of R with groups of
    at least 2 PEs (the program's roles need a group first, last and root), at most the
    routing paths a PE has (one phase-2 path per group)."""
    return [g for g in range(2, R // 2 + 1)
            if R % g == 0 and g <= config.routing_paths_per_pe]


def gemv_place(config, M, K, region, group_num):
    r0, c0, R, C = region
    if config.colors < GEMV_QUEUES:
        raise MappingUnfit(f"MeshGEMV needs {GEMV_QUEUES} input queues per PE; the config has "
                         f"colors={config.colors}")
    valid = group_nums(config, R)
    if group_num not in valid:
        raise MappingUnfit(f"group_num={group_num!r} does not fit a column of {R} PEs: it must "
                         f"divide {R}, leave groups of >= 2 PEs and be <= routing_paths_per_pe="
                         f"{config.routing_paths_per_pe}; valid here: {valid or 'none (R < 4)'}")
    if K < R or M < C:
        raise MappingUnfit(f"MeshGEMV of W {M}x{K} on {R}x{C} PEs leaves PEs without a block: "
                         f"need K >= rows and M >= cols")
    return GemvPlacement(tuple(int(v) for v in region), int(group_num), _bounds(K, R),
                         _bounds(M, C))


def gemv_ledger(config, pl, w_bytes):
    """SRAM per PE: W tile (dense or compressed), x block, y block (zeroed, reduced in place)."""
    elem = config.elem_bytes
    ledger = SramLedger(config, pl.region)
    ledger.alloc("W tile", w_bytes)
    ledger.alloc("x block", (np.diff(pl.k_bounds) * elem)[:, None] * np.ones((1, pl.C), np.int64))
    ledger.alloc("y block (reduced in place)", (np.diff(pl.m_bounds) * elem)[None, :]
                 * np.ones((pl.R, 1), np.int64))
    return ledger


def gemv_stats(pl, W, x):
    """(nonzeros of each W tile, nonzeros walked for a nonzero x, nonzero x per PE row):
    R x C, R x C, R."""
    R, C = pl.R, pl.C
    W = sps.csc_array(W)
    xnz = np.asarray(x).ravel() != 0
    kb = np.searchsorted(pl.k_bounds, np.arange(W.shape[1]), side="right") - 1
    coo = W.tocoo()
    mb = np.searchsorted(pl.m_bounds, coo.row, side="right") - 1
    rb = kb[coo.col]
    nnz_w = np.bincount(rb * C + mb, minlength=R * C).reshape(R, C)
    used = xnz[coo.col]
    walked = np.bincount(rb[used] * C + mb[used], minlength=R * C).reshape(R, C)
    return nnz_w, walked, np.bincount(kb[xnz], minlength=R)


def gemv_stats_from(ops, R, C, exact=True):
    """gemv_stats from the placer's cached operand structure (placement.Operands of W and
    a one-column X): the same block bounds. ``exact=False`` (the placer's screen) spreads
    each K block's nonzeros over the M blocks in proportion to their rows: O(K + R * C)."""
    if exact:
        nnz_cr, blk = ops.w.blocks(C, R)                 # W's (M block, K block)
        walked = np.bincount(blk, weights=ops.A_k[ops.w_col], minlength=R * C).reshape(C, R)
        return nnz_cr.T, walked.T.astype(np.int64), ops.activations(R)[:, 0]
    k_b, kb = ops.col_block(R)
    share = np.diff(_bounds(ops.M, C)) / max(ops.M, 1)
    per_k = np.bincount(kb, weights=ops.w.col_nnz, minlength=R)
    per_k_walked = np.bincount(kb, weights=ops.w.col_nnz * ops.A_k, minlength=R)
    return (np.round(per_k[:, None] * share[None, :]).astype(np.int64),
            np.round(per_k_walked[:, None] * share[None, :]).astype(np.int64),
            ops.activations(R)[:, 0])


def gemv_local_work(config, pl, stats=None):
    """(cycles of each PE's local product, R x C; compressed tiles mask; bytes of W per PE).

    A dense tile is a @map over the block's nonzero x (a zero x issues no instruction), one
    Nt-long FMAC each; a compressed tile (values, 16-bit rows, column starts) is walked at
    the scalar rate over the stored nonzeros of the columns whose x is nonzero. The faster
    that fits is used, per PE. ``stats`` (gemv_stats) None: dense operands.
    """
    R, C, elem = pl.R, pl.C, config.elem_bytes
    Kr, Mc = np.diff(pl.k_bounds), np.diff(pl.m_bounds)
    dense_bytes = Kr[:, None] * Mc[None, :] * elem
    if stats is None:
        per = map_op(config, Kr[:, None], Mc[None, :])
        return per, np.zeros((R, C), bool), dense_bytes
    nnz_w, walked, nnz_x = stats
    dense = map_op(config, nnz_x[:, None], Mc[None, :])
    comp = config.task_cycles + config.scalar_cycles_per_element * walked
    comp_bytes = nnz_w * (elem + 2) + (Kr[:, None] + 1) * 2
    room = config.data_bytes - (Kr[:, None] + Mc[None, :]) * elem
    use_comp = (comp_bytes <= room) & ((comp < dense) | (dense_bytes > room))
    return np.where(use_comp, comp, dense), use_comp, np.where(use_comp, comp_bytes, dense_bytes)


def _gemv_ops(config, n):
    """(send, receive) of an n-element vector: (first out, last out) after the op starts,
    and the receive op's own length."""
    S, e = config.setup_cycles, config.fabric_elem_cycles
    return (S + e, S + n * e), S + n * e


def gemv_critical(config, pl, ready):
    """The analytic cycles of one MeshGEMV: the critical path of a column whose PEs are
    ready (zeroed y and local product done) at ``ready`` (the slowest PE), through the
    top and bottom ends' loops: chain -> group root -> global root -> broadcast back."""
    n = pl.Nt
    S, e, c = config.setup_cycles, config.fabric_elem_cycles, config.stream_stage_cycles
    (f_out, l_out), recv = _gemv_ops(config, n)
    s, r1, G = pl.group_size, pl.root1, pl.group_num

    def chain(stages, hops_each, t_ready):
        """(first, last) arriving at the chain's root after ``stages`` links from a leaf,
        relaying cores between links."""
        if stages == 0:
            return None
        f, l = t_ready + f_out, t_ready + l_out
        for i in range(stages):
            f, l = f + transit(config, hops_each), l + transit(config, hops_each)
            if i < stages - 1:                           # a relaying core
                f = max(t_ready + S + e, f + c)
                l = max(f + (n - 1) * e, l + c)
        return f, l

    def root(t, up, down):
        """A root receives the up side (if any), then the down side."""
        if up is not None:
            t = max(t + recv, up[1] + e)
        return max(t + recv, down[1] + e)

    done1 = root(ready, chain(s - 1 - r1, 1, ready), chain(r1, 1, ready))
    done2 = root(done1, chain(G - 1 - G // 2, s, done1), chain(G // 2, s, done1))
    top_hops, bottom_hops = pl.root2, pl.R - 1 - pl.root2
    bc_up = (done2 + f_out, done2 + l_out)
    bc_down = (bc_up[1] + f_out, bc_up[1] + l_out)
    leaf_free = ready + l_out                            # a leaf's own send is done
    end_top = max(leaf_free + recv, bc_up[1] + transit(config, top_hops) + e)
    end = end_top
    if bottom_hops > 0:
        end = max(end, max(leaf_free + recv, bc_down[1] + transit(config, bottom_hops) + e))
    return end


def gemv_ready(config, pl, local):
    """When each PE is ready to reduce: the iteration's launch, zeroing y, the local product."""
    return config.launch_cycles + mem_op(config, pl.Nt) + local


def gemv_report(config, pl, cycles, local, use_comp, sram, *, mapping_details, macs, full=True,
                mode="analytic", extra=None):
    R, C = pl.R, pl.C
    n_wav = math.ceil(pl.Nt / config.values_per_dense_wavelet)
    links = _gemv_links(pl, n_wav)
    sent = int(links.sum())
    performed, dense, useful = macs
    busy = local + config.setup_cycles + pl.Nt * config.fabric_elem_cycles * 2
    energy = _energy(config, performed, performed * 3 * config.elem_bytes, float(links.sum()),
                     R * C, cycles)
    terms = {"compute": float(np.max(local, initial=0)), "reduction": float(cycles)
             - float(np.max(local, initial=0))}
    details = {"group_num": pl.group_num, "group_size": pl.group_size, "root1": pl.root1,
               "root2": pl.root2, "Mt": pl.Mt, "Nt": pl.Nt, "terms": terms, "mode": mode,
               "compressed_blocks": int(use_comp.sum()), "use_comp": use_comp}
    details.update(mapping_details)
    if extra:
        details.update(extra)
    return SimReport(
        cycles=float(cycles), cycles_lower=float(cycles), cycles_upper=float(cycles),
        clock_hz=config.clock_hz, macs_dense=int(dense), macs_useful=int(useful),
        macs_performed=int(performed), macs_skipped_weight=int(dense - performed) if
        use_comp.any() else 0,
        macs_skipped_activation=int(0 if use_comp.any() else dense - performed),
        busy_cycles=wafer_array(config, pl.region, busy, full=full),
        sram_bytes=wafer_array(config, pl.region, sram, full=full).astype(np.int64),
        link_wavelets=wafer_array(config, pl.region, links, (4,), full=full),
        wavelets_sent=sent, energy_joules=energy,
        bottleneck="latency" if terms["reduction"] >= terms["compute"] else "compute",
        region=pl.region, mapping="meshgemv", dtype=config.dtype, fmac_per_cycle=config.fmacs,
        details=details)


def _gemv_links(pl, n_wav):
    """Wavelets each PE sends N and S (R x C x 4, N E S W): the group chains toward their
    roots, the roots' chains through the routers between them, the broadcast back."""
    R, C = pl.R, pl.C
    south, north = np.zeros(R), np.zeros(R)
    rem = np.arange(R) % pl.group_size
    south[rem < pl.root1] += n_wav                     # phase 1, top halves
    north[rem > pl.root1] += n_wav                     # phase 1, bottom halves
    roots = np.arange(pl.group_num) * pl.group_size + pl.root1
    for a, b in zip(roots[:-1], roots[1:]):            # phase 2, through every router between
        if b <= pl.root2:
            south[a:b] += n_wav
        else:
            north[a + 1:b + 1] += n_wav
    north[1:pl.root2 + 1] += n_wav                     # the broadcast, multicast both ways
    south[pl.root2:R - 1] += n_wav
    links = np.zeros((R, C, 4))
    links[:, :, 0] = north[:, None]
    links[:, :, 2] = south[:, None]
    return links


def gemv_macs(pl, stats, use_comp):
    """(performed, dense, useful) MACs of the local products: a dense tile multiplies its
    whole column for each nonzero x, a compressed one the nonzeros only."""
    M, K = int(pl.m_bounds[-1]), int(pl.k_bounds[-1])
    dense = M * K
    if stats is None:
        return dense, dense, dense
    nnz_w, walked, nnz_x = stats
    dense_work = nnz_x[:, None] * np.diff(pl.m_bounds)[None, :]
    performed = int(np.where(use_comp, walked, dense_work).sum())
    return performed, dense, int(walked.sum())


def meshgemv(config, region, group_num=None, *, W=None, x=None, M=None, K=None,
             local_product=True, full=True, stats=None):
    """Analytic cost of y = W @ x by MeshGEMV on ``region`` with ``group_num`` groups
    (None: the count of fewest cycles, the placer's choice).

    ``W``/``x`` None costs dense operands of shape ``M x K`` (the hardware sweep);
    ``stats`` (gemv_stats_from) reuses the placer's operand structure.
    ``local_product=False`` costs the program without its local product (the measured
    WaferLLM source compiles it out: only the zeroing and the allreduce are timed).
    """
    if W is not None:
        M, K = W.shape
    candidates = [group_num] if group_num is not None else group_nums(config, region[2])
    if not candidates:
        raise MappingUnfit(f"MeshGEMV needs a column of at least 4 PEs (groups of >= 2, "
                           f"group_num >= 2); received region {region}")
    pl = gemv_place(config, M, K, region, candidates[0])
    if stats is None and W is not None:
        stats = gemv_stats(pl, W, x)
    local, use_comp, w_bytes = gemv_local_work(config, pl, stats)
    if not local_product:
        local = np.zeros_like(local)
    sram = gemv_ledger(config, pl, w_bytes).check(
        f"MeshGEMV, W {M}x{K} on {pl.R}x{pl.C} PEs")
    ready = gemv_ready(config, pl, float(np.max(local)))
    best = None
    for g in candidates:
        p = replace(pl, group_num=g) if g != pl.group_num else pl
        if g != pl.group_num:
            gemv_place(config, M, K, region, g)          # validates g
        cycles = gemv_critical(config, p, ready)
        if best is None or cycles < best[0]:
            best = (cycles, p)
    cycles, pl = best
    return gemv_report(config, pl, cycles, local, use_comp, sram,
                       mapping_details={"local_product": local_product},
                       macs=gemv_macs(pl, stats, use_comp), full=full)


# --------------------------------------------------------------------------------------
# MeshGEMM (Cannon on the interleaved two-hop ring)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GemmPlacement:
    region: tuple
    M: int
    K: int
    N: int

    @property
    def P(self):
        return self.region[2]

    @property
    def Mt(self):
        return math.ceil(self.M / self.P)

    @property
    def Kt(self):
        return math.ceil(self.K / self.P)

    @property
    def Nt(self):
        return math.ceil(self.N / self.P)


def ring_hops(P):
    """Hops from each ring position's PE to the next one's on the interleaved ring (logical
    position i sits at physical 2i for the outbound half, 2(P-1-i)+1 back): two hops except
    at the two turns, where the ring changes direction in one hop."""
    phys = np.empty(P, np.int64)
    out = (P + 1) // 2
    phys[:out] = 2 * np.arange(out)
    phys[out:] = 2 * np.arange(P - out)[::-1] + 1
    return np.abs(phys - np.roll(phys, -1)) if P > 1 else np.zeros(1, np.int64)


def gemm_place(config, M, K, N, region):
    r0, c0, R, C = region
    if R != C:
        raise MappingUnfit(f"MeshGEMM runs on a square region; received {R}x{C} PEs")
    if config.colors < GEMM_QUEUES:
        raise MappingUnfit(f"MeshGEMM needs {GEMM_QUEUES} input queues per PE; the config has "
                         f"colors={config.colors}")
    return GemmPlacement(tuple(int(v) for v in region), int(M), int(K), int(N))


def gemm_ledger(config, pl):
    elem = config.elem_bytes
    ledger = SramLedger(config, pl.region)
    ledger.alloc("X tiles (double-buffered)", 2 * pl.Mt * pl.Kt * elem)
    ledger.alloc("W tiles (double-buffered)", 2 * pl.Kt * pl.Nt * elem)
    ledger.alloc("C tile", pl.Mt * pl.Nt * elem)
    return ledger


def gemm_step_compute(config, pl, nnz_w=None):
    """One Cannon step's rank-1 updates: per k a @map over the W tile row (Nt FMACs of
    length Mt); ``nnz_w`` (per k, the nonzeros of the W tile row) skips zero weights."""
    if nnz_w is None:
        return pl.Kt * map_op(config, pl.Nt, pl.Mt)
    return float(sum(map_op(config, int(n), pl.Mt) for n in nnz_w))


def gemm_comm(config, elems, hops=2):
    """A tile sent to the ring neighbour and received: both async DSD ops; the receive
    ends ``fabric_elem`` after the last element lands."""
    S, e = config.setup_cycles, config.fabric_elem_cycles
    return S + elems * e + transit(config, hops) + e


def meshgemm_cycles(config, pl, step_compute=None):
    """Launch, zeroing C, P/2 alignment rounds (a shift of X, its finish task), then P steps:
    the X and W shifts overlapped with the step's compute, four task switches to hand over
    (x_finish, y_finish, jumpcast_finish, next_step)."""
    P, tau = pl.P, config.task_switch_cycles
    comp = gemm_step_compute(config, pl) if step_compute is None else step_compute
    hops = int(ring_hops(P).max()) if P > 1 else 0
    x_el, w_el = pl.Mt * pl.Kt, pl.Kt * pl.Nt
    align = (P // 2) * (tau + gemm_comm(config, x_el, hops)) if P > 1 else 0.0
    comm = gemm_comm(config, max(x_el, w_el), hops) if P > 1 else 0.0
    steps = P * (4 * tau + max(comm, comp))
    return config.launch_cycles + mem_op(config, pl.Mt * pl.Nt) + align + steps, \
        {"align": align, "steps": steps, "step_compute": comp, "step_comm": comm}


def meshgemm(config, region, *, A=None, B=None, M=None, K=None, N=None, full=True):
    """Analytic cost of C = A @ B by MeshGEMM (Cannon) on a square ``region``."""
    if A is not None:
        M, K = A.shape
        N = B.shape[1]
    pl = gemm_place(config, M, K, N, region)
    sram = gemm_ledger(config, pl).check(f"MeshGEMM, {M}x{K} @ {K}x{N} on {pl.P}x{pl.P} PEs")
    cycles, terms = meshgemm_cycles(config, pl)
    P = pl.P
    vpw = config.values_per_dense_wavelet
    xw, ww = math.ceil(pl.Mt * pl.Kt / vpw), math.ceil(pl.Kt * pl.Nt / vpw)
    hops = ring_hops(P) if P > 1 else np.zeros(1, np.int64)
    links = np.zeros((P, P, 4))
    links[:, :, 3] = (P + P // 2) * xw * hops.mean()     # X shifts along rows
    links[:, :, 0] = P * ww * hops.mean()                # W shifts along columns
    macs = M * K * N
    useful = macs if A is None else int(np.count_nonzero(A, axis=0) @ np.count_nonzero(B, axis=1))
    energy = _energy(config, macs, macs * 3 * config.elem_bytes, float(links.sum()), P * P,
                     cycles)
    bottleneck = "compute" if terms["step_compute"] >= terms["step_comm"] else "fabric"
    if 4 * config.task_switch_cycles > max(terms["step_compute"], terms["step_comm"]):
        bottleneck = "latency"
    return SimReport(
        cycles=float(cycles), cycles_lower=float(cycles), cycles_upper=float(cycles),
        clock_hz=config.clock_hz, macs_dense=macs, macs_useful=useful, macs_performed=macs,
        macs_skipped_weight=0, macs_skipped_activation=0,
        busy_cycles=wafer_array(config, pl.region, P * terms["step_compute"], full=full),
        sram_bytes=wafer_array(config, pl.region, sram, full=full).astype(np.int64),
        link_wavelets=wafer_array(config, pl.region, links, (4,), full=full),
        wavelets_sent=int(P * P * ((P + P // 2) * xw + P * ww)), energy_joules=energy,
        bottleneck=bottleneck, region=pl.region, mapping="meshgemm", dtype=config.dtype,
        fmac_per_cycle=config.fmacs,
        details={"terms": terms, "Mt": pl.Mt, "Kt": pl.Kt, "Nt": pl.Nt, "mode": "analytic"})
