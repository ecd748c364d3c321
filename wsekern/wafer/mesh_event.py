"""Event-level simulation of MeshGEMV and MeshGEMM: every PE's program, op by op, and every
message over every link it crosses.

Each PE runs the WaferLLM program of its role (mesh.py); every op starts when the PE's
previous op has ended and, for a fabric input, ends when its last element has arrived; a
message is a train of elements (its first and last element times) that crosses each link
hop by hop and waits for a link still carrying an earlier train (one element a cycle). The
PEs do the arithmetic on what they hold and receive, so the result checks the mapping.
Per-op costs are the same WaferConfig fields as the analytic model's (mesh.py); what this
model adds is the whole grid: every chain, every group, both broadcast directions, the
ring's turns, uneven local work, and link sharing, instead of one critical path.
"""
import time

import numpy as np
import scipy.sparse as sps

from . import mesh

EVENT_LIMIT = 1 << 30       # PEs x rounds the event model is willing to follow
PRODUCT_LIMIT = 2e10        # MACs of Cannon's tile products (the arithmetic check) it will do


def _check_work(pes, rounds, knob):
    if pes * rounds > EVENT_LIMIT:
        raise ValueError(f"the event model would follow {pes:,} PEs x {rounds:,} rounds "
                         f"(> {EVENT_LIMIT:,}); {knob}")


class _Links:
    """Free-at times of the vertical links of C columns (both directions), one element a
    cycle: a train entering a busy link waits for it."""

    def __init__(self, R, C, elem_cycles):
        self.free = {+1: np.zeros((max(R - 1, 1), C)), -1: np.zeros((max(R - 1, 1), C))}
        self.dt = elem_cycles

    def cross(self, f, l, frm, to, config, every=False):
        """A train (first, last) leaving row ``frm``'s router at (f, l) toward row ``to``:
        its (first, last) at ``to``'s core; ``every``: a multicast, delivered to the core of
        every row it passes, [(row, first, last), ...]."""
        step = 1 if to > frm else -1
        out = []
        for r in range(frm, to, step):
            link = r if step > 0 else r - 1
            free = self.free[step][link]
            delay = np.maximum(free - f, 0.0)
            f, l = f + delay, l + delay
            self.free[step][link] = np.maximum(free, l + self.dt)
            f, l = f + config.hop_cycles, l + config.hop_cycles
            if every:
                out.append((r + step, f + config.ramp_cycles, l + config.ramp_cycles))
        if every:
            return out
        return f + config.ramp_cycles, l + config.ramp_cycles


def meshgemv(config, region, group_num, *, W=None, x=None, M=None, K=None, local_product=True):
    """Event simulation of y = W @ x by MeshGEMV; returns (y or None, SimReport).

    ``W``/``x`` None: timing of dense operands ``M x K`` (no arithmetic)."""
    t0 = time.perf_counter()
    if W is not None:
        M, K = W.shape
    pl = mesh.gemv_place(config, M, K, region, group_num)
    R, C, n = pl.R, pl.C, pl.Nt
    _check_work(R * C, n, "use a smaller region")
    stats = None if W is None else mesh.gemv_stats(pl, W, x)
    local, use_comp, w_bytes = mesh.gemv_local_work(config, pl, stats)
    if not local_product:
        local = np.zeros_like(local)
    sram = mesh.gemv_ledger(config, pl, w_bytes).check(f"MeshGEMV, W {M}x{K} on {R}x{C} PEs")
    ready = mesh.gemv_ready(config, pl, local)                     # R x C
    red = _GemvReduction(config, pl, _Links(R, C, config.fabric_elem_cycles),
                         None if W is None else _gemv_partials(pl, W, x))
    s, r1, G = pl.group_size, pl.root1, pl.group_num

    # phase 1: in every group, chains from both ends to the group root
    done1 = {}
    for g in range(G):
        base = g * s
        top = [base + i for i in range(r1 + 1)]
        bottom = [base + i for i in range(s - 1, r1 - 1, -1)]
        down = red.chain(top, ready)
        up = red.chain(bottom, ready) if len(bottom) > 1 else None
        root = base + r1
        done1[root] = red.root_receive(root, ready, up, down)
        red.end[root] = done1[root]
    # phase 2: the group roots reduce the same way toward the global root
    roots = [g * s + r1 for g in range(G)]
    t1 = ready.copy()
    for r, t in done1.items():
        t1[r] = t
    top = roots[:G // 2 + 1]
    bottom = roots[G // 2:][::-1]
    down = red.chain(top, t1)
    up = red.chain(bottom, t1) if len(bottom) > 1 else None
    r2 = pl.root2
    finish = red.broadcast(r2, red.root_receive(r2, t1, up, down))
    T = float(finish.max())

    y = None
    if red.acc is not None:
        y = np.zeros(M)
        for cc in range(C):
            m0, m1 = pl.m_bounds[cc], pl.m_bounds[cc + 1]
            y[m0:m1] = red.acc[r2, cc, :m1 - m0]
    wall = time.perf_counter() - t0
    rep = mesh.gemv_report(config, pl, T, local, use_comp, sram,
                           mapping_details={"local_product": local_product},
                           macs=mesh.gemv_macs(pl, stats, use_comp), mode="event",
                           extra={"wall_seconds": wall, "pe_finish": finish})
    return y, rep


def _gemv_partials(pl, W, x):
    """Partial sums of every PE (R x C x Nt): its local product."""
    R, C, n = pl.R, pl.C, pl.Nt
    Wc = sps.csr_array(W)
    xv = np.asarray(x, dtype=np.float64).ravel()
    part = np.zeros((R, C, n))
    for r in range(R):
        k0, k1 = pl.k_bounds[r], pl.k_bounds[r + 1]
        seg = Wc[:, k0:k1] @ xv[k0:k1]
        for cc in range(C):
            m0, m1 = pl.m_bounds[cc], pl.m_bounds[cc + 1]
            part[r, cc, :m1 - m0] = seg[m0:m1]
    return part


class _GemvReduction:
    """MeshGEMV's reduction and broadcast along each PE column, all columns at once:
    ``end`` (R x C) when each PE's reduction ops end, ``acc`` the values (None: timing)."""

    def __init__(self, config, pl, links, part):
        self.config, self.pl, self.links = config, pl, links
        self.n = pl.Nt
        (self.f_out, self.l_out), self.recv = mesh._gemv_ops(config, self.n)
        self.end = np.zeros((pl.R, pl.C))
        self.acc = None if part is None else part.copy()

    def chain(self, rows, t_ready):
        """Rows of a chain, leaf first, ending at its root (the last row, not relayed):
        the train arriving at the root, its values, and each member's end time."""
        config, acc, n = self.config, self.acc, self.n
        S, e, c = config.setup_cycles, config.fabric_elem_cycles, config.stream_stage_cycles
        leaf = rows[0]
        f, l = t_ready[leaf] + self.f_out, t_ready[leaf] + self.l_out
        self.end[leaf] = l
        val = None if acc is None else acc[leaf].copy()
        for i in range(1, len(rows)):
            f, l = self.links.cross(f, l, rows[i - 1], rows[i], config)
            if i == len(rows) - 1:
                break
            r = rows[i]
            f = np.maximum(t_ready[r] + S + e, f + c)
            l = np.maximum(f + (n - 1) * e, l + c)
            self.end[r] = l
            if val is not None:
                val = val + acc[r]
        return (f, l), val

    def root_receive(self, r, t_ready, up, down):
        e, recv, acc = self.config.fabric_elem_cycles, self.recv, self.acc
        t = t_ready[r]
        if up is not None:
            t = np.maximum(t + recv, up[0][1] + e)
            if acc is not None:
                acc[r] += up[1]
        t = np.maximum(t + recv, down[0][1] + e)
        if acc is not None:
            acc[r] += down[1]
        return t

    def broadcast(self, r2, done2):
        """y from the global root north, then south, multicast through every router on the
        way: when each PE finishes (R x C)."""
        config, e = self.config, self.config.fabric_elem_cycles
        R = self.pl.R
        f, l = done2 + self.f_out, done2 + self.l_out
        delivered = self.links.cross(f, l, r2, 0, config, every=True)
        ends = [l]
        if r2 < R - 1:
            f2, l2 = l + self.f_out, l + self.l_out
            ends.append(l2)
            delivered += self.links.cross(f2, l2, r2, R - 1, config, every=True)
        finish = np.zeros((R, self.pl.C))
        finish[r2] = np.maximum.reduce(ends)
        for r, _, la in delivered:
            finish[r] = np.maximum(self.end[r] + self.recv, la + e)
        return finish


def meshgemm(config, region, *, A=None, B=None, M=None, K=None, N=None):
    """Event simulation of C = A @ B by MeshGEMM (Cannon on the interleaved ring); returns
    (C or None, SimReport). ``A``/``B`` None: timing of dense ``M x K @ K x N``."""
    t0 = time.perf_counter()
    if A is not None:
        A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
        M, K = A.shape
        N = B.shape[1]
    pl = mesh.gemm_place(config, M, K, N, region)
    P = pl.P
    _check_work(P * P, P + P // 2, "use a smaller region")
    macs = float(P) ** 3 * pl.Mt * pl.Kt * pl.Nt
    if A is not None and macs > PRODUCT_LIMIT:
        raise ValueError(f"the event run's tile products would take {macs:.3g} MACs "
                         f"(> {PRODUCT_LIMIT:.3g}); pass M, K, N instead of A, B for the "
                         f"timing alone, or use a smaller problem")
    mesh.gemm_ledger(config, pl).check(f"MeshGEMM, {M}x{K} @ {K}x{N} on {P}x{P} PEs")
    S, e, tau = config.setup_cycles, config.fabric_elem_cycles, config.task_switch_cycles
    x_el, w_el = pl.Mt * pl.Kt, pl.Kt * pl.Nt
    comp = mesh.gemm_step_compute(config, pl)
    # logical ring coordinates: the neighbour a PE receives from is the next position;
    # hops[q] = hops from ring position q + 1 to q (the turns are one hop)
    hops = mesh.ring_hops(P)
    arrive_row = hops * config.hop_cycles + config.ramp_cycles     # per ring position
    arrive_col = arrive_row

    start = np.full((P, P), config.launch_cycles + mesh.mem_op(config, pl.Mt * pl.Nt))
    if P > 1:
        nxt, tmp = np.empty((P, P)), np.empty((P, P))
        sent_x = S + x_el * e
        for _ in range(P // 2):          # alignment: every PE shifts its X tile each round
            _from_next(start, 1, tmp)
            tmp += arrive_row[None, :] + sent_x + e
            np.maximum(start + sent_x, tmp, out=start)
            start += tau
        own = max(comp, S + max(x_el, w_el) * e)          # its compute and its own sends
        x_lat = arrive_row[None, :] + sent_x + e           # a neighbour's tile received
        w_lat = arrive_col[:, None] + S + w_el * e + e
        for _ in range(P):
            np.add(start, own, out=nxt)
            _from_next(start, 1, tmp)
            tmp += x_lat
            np.maximum(nxt, tmp, out=nxt)
            _from_next(start, 0, tmp)
            tmp += w_lat
            np.maximum(nxt, tmp, out=nxt)
            nxt += 4 * tau
            start, nxt = nxt, start
    else:                                # one PE: its step, no shift to wait for
        start = start + comp + 4 * tau
    T = float(start.max())

    Cmat = None if A is None else _cannon(A, B, pl)
    wall = time.perf_counter() - t0
    rep = mesh.meshgemm(config, region, M=M, K=K, N=N)
    if A is not None:
        rep.macs_useful = int(np.count_nonzero(A, axis=0) @ np.count_nonzero(B, axis=1))
    analytic = rep.cycles
    rep.cycles = rep.cycles_lower = rep.cycles_upper = T
    rep.details = dict(rep.details, mode="event", wall_seconds=wall, analytic=analytic)
    return Cmat, rep


def _from_next(a, axis, out):
    """out[q] = a[q + 1] along ``axis``, cyclically (what a PE receives from the next ring
    position), without allocating."""
    if axis == 1:
        out[:, :-1] = a[:, 1:]
        out[:, -1] = a[:, 0]
    else:
        out[:-1] = a[1:]
        out[-1] = a[0]
    return out


def _cannon(A, B, pl):
    """C = A @ B computed as the PEs do: tiles (zero-padded to P tiles a side), X skewed by
    the alignment rounds, W pre-skewed by the host, P steps of tile products and shifts."""
    P, Mt, Kt, Nt = pl.P, pl.Mt, pl.Kt, pl.Nt
    Ap = np.zeros((P * Mt, P * Kt))
    Ap[:A.shape[0], :A.shape[1]] = A
    Bp = np.zeros((P * Kt, P * Nt))
    Bp[:B.shape[0], :B.shape[1]] = B
    X = Ap.reshape(P, Mt, P, Kt).transpose(0, 2, 1, 3)          # X[i, k] tile
    Wt = Bp.reshape(P, Kt, P, Nt).transpose(0, 2, 1, 3)         # W[k, j] tile
    i, j = np.meshgrid(np.arange(P), np.arange(P), indexing="ij")
    X = X[i, (i + j) % P]                                        # PE (i, j) holds X[i, i+j]
    Wt = Wt[(i + j) % P, j]                                      # and W[i+j, j]
    Ct = np.zeros((P, P, Mt, Nt))
    for _ in range(P):
        Ct += np.einsum("ijmk,ijkn->ijmn", X, Wt)
        X = np.roll(X, -1, axis=1)
        Wt = np.roll(Wt, -1, axis=0)
    return Ct.transpose(0, 2, 1, 3).reshape(P * Mt, P * Nt)[:A.shape[0], :B.shape[1]]
