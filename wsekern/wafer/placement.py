"""Where a product lives on the wafer: the ``Placement`` value and the one placer.

A placement is decided before anything is timed in detail: the region, the mapping,
the block bounds of the operands over the region's PE rows and columns, the format of
each block (dense or compressed), and the SRAM ledger that proves it fits. The
analytic model (analytic.py) and the event engine (event.py) each take a Placement
and cost it; neither re-derives it. MeshGEMV and MeshGEMM keep their own placement
values (``mesh.GemvPlacement``, ``mesh.GemmPlacement``) next to their instruction-level
programs.

The placer's search (:func:`search`) prices candidate rectangles with a cheap screen
of a mapping's cost model and keeps the cheapest; a new mapping is a placement rule
here plus a cost function in analytic.py, both named by the mapping.
"""
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sps

from ..errors import SramOverflowError
from .ledger import SramLedger
from .mesh import MappingUnfit

FIFO_BYTES = 256     # [A] input FIFO that extends the router queue (vendor topic-09), per PE


def bounds(n, parts):
    """Balanced split of range(n) into ``parts`` blocks: boundaries, length parts + 1."""
    return np.linspace(0, n, parts + 1).round().astype(np.int64)


def block_of(bounds, n):
    """The block of each of range(n) under ``bounds``."""
    return np.searchsorted(bounds, np.arange(n), side="right") - 1


# --------------------------------------------------------------------------------------
# The operands' structure, cached per partition
# --------------------------------------------------------------------------------------
class WeightStats:
    """What the models need from a weight's nonzero structure, cached per partition, so
    the placer can price many regions, and a training loop many batches, cheaply."""

    def __init__(self, W):
        W = sps.csr_array(W)
        self.M, self.K = W.shape
        # the nonzeros in W's order (rows ascending): W.tocoo()'s, without its int32 copies
        nnz = int(W.indptr[-1])
        self.w_row = np.repeat(np.arange(self.M, dtype=np.int64), np.diff(W.indptr))
        self.w_col = W.indices[:nnz].astype(np.int64)
        self.nnz = len(self.w_col)
        self.col_nnz = np.bincount(self.w_col, minlength=self.K).astype(np.int64)
        self._rows, self._cols, self._blocks = {}, {}, {}
        self._per_row_block = {}        # R -> nonzeros per (row block, column), R x K
        self._static = {}               # region -> the batch-independent part of a placement
        # every (m, k) stored once: a block's nonzeros per column are then its rows
        self.full = self.nnz == self.M * self.K and (self.nnz == 0 or int(np.bincount(
            self.w_row * self.K + self.w_col, minlength=self.nnz).max()) == 1)
        self.cache = {}                 # the cost models' own structure, per partition

    def row_block(self, R):
        """(boundaries, block of each row) for R row blocks."""
        if R not in self._rows:
            b = bounds(self.M, R)
            self._rows[R] = (b, block_of(b, self.M))
        return self._rows[R]

    def col_block(self, C):
        if C not in self._cols:
            b = bounds(self.K, C)
            self._cols[C] = (b, block_of(b, self.K))
        return self._cols[C]

    def blocks(self, R, C):
        """(nnz per block, R x C; the block of each nonzero). The last few partitions are
        kept (a training loop reuses one; the placer walks many, each nnz integers long)."""
        if (R, C) not in self._blocks:
            _, rb = self.row_block(R)
            _, cb = self.col_block(C)
            blk = rb[self.w_row]            # rb[w_row] * C + cb[w_col], in place
            blk *= C
            blk += cb[self.w_col]
            if len(self._blocks) >= 4:
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[(R, C)] = (np.bincount(blk, minlength=R * C).reshape(R, C), blk)
        return self._blocks[(R, C)]

    def scalar_work(self, R, C, A_k):
        """sum of A_k[k] over the nonzeros (., k) of each block, R x C. A fully-nonzero W:
        each block's rows times its columns' activations; else, when R x K is smaller than
        nnz, from the nonzeros per (row block, column), counted once per R (a batch then
        costs O(R * K), not O(nnz)). Integer sums: the same whichever way."""
        if self.full:
            rb, _ = self.row_block(R)
            kb, _ = self.col_block(C)
            cum = np.concatenate([[0], np.cumsum(A_k, dtype=np.int64)])
            return np.outer(np.diff(rb), cum[kb[1:]] - cum[kb[:-1]]).astype(np.float64)
        if R * self.K >= self.nnz:
            _, blk = self.blocks(R, C)
            return np.bincount(blk, weights=A_k[self.w_col], minlength=R * C).reshape(R, C)
        if R not in self._per_row_block:
            _, rb = self.row_block(R)
            if len(self._per_row_block) >= 4:
                self._per_row_block.pop(next(iter(self._per_row_block)))
            self._per_row_block[R] = np.bincount(rb[self.w_row] * self.K + self.w_col,
                                                 minlength=R * self.K).reshape(R, self.K)
        kb, _ = self.col_block(C)
        cum = np.zeros((R, self.K + 1), np.int64)
        np.cumsum(self._per_row_block[R] * A_k.astype(np.int64), axis=1, out=cum[:, 1:])
        return (cum[:, kb[1:]] - cum[:, kb[:-1]]).astype(np.float64)


class Operands:
    """The weight's cached structure plus what the models need from X (its nonzeros).

    ``search=True`` (the placer is about to price many regions) keeps summed-area tables
    of W's nonzeros, plain and weighted by A_k, when W's dense M x K fits under
    ``TABLE_LIMIT``: any block's nonzeros and scalar work are then four lookups, so a
    region costs O(R C) instead of O(nnz)."""

    def __init__(self, W, X, weights=None, search=False):
        self.w = weights if weights is not None else WeightStats(W)
        self.M, self.K = self.w.M, self.w.K
        self.N = X.shape[1]
        self.x_nz = X != 0
        self._nz = None
        self.A_k = self.x_nz.sum(axis=1).astype(np.int64)
        self.useful = int(self.w.col_nnz @ self.A_k)
        self._acts = {}
        self._tables = None
        self.search = search and self.M * self.K <= TABLE_LIMIT
        self.cache = {}          # the cost models' own structure of (W, X), per partition

    def tables(self):
        """(nonzeros, sum of A_k over nonzeros) summed-area tables, (M + 1) x (K + 1), or
        None when not searching or W is too large for them."""
        if self.table("work") is None:
            return None
        return self.table("nnz"), self.table("work")

    def table(self, which):
        """One of :meth:`tables` ("nnz" or "work"), made when first asked (the placer's
        bounds read only the work; a candidate whose blocks fit however full they are
        needs no count of its nonzeros)."""
        if not self.search:
            return None
        if self._tables is None:
            self._tables = {}
        if which not in self._tables:
            w = self.w
            weighted = self.A_k[w.w_col]
            # one integer type for both (the screen reads them together)
            big = int(weighted.sum()) >= 2 ** 31 or w.nnz >= 2 ** 31
            v = np.ones(w.nnz, np.int64) if which == "nnz" else weighted
            self._tables[which] = _summed_area(w.w_row, w.w_col, v, self.M, self.K,
                                               np.int64 if big else np.int32)
        return self._tables[which]

    def release_tables(self):
        """Let the summed-area tables go and make no more (a search has screened its
        candidates): without them the models count the same integers from W's nonzeros."""
        self._tables = None
        self.search = False

    def block_nnz(self, R, C):
        """Nonzeros per block, R x C, from the table (None without one, or when the
        placer has not needed it)."""
        t = self._tables.get("nnz") if self._tables else None
        if t is None:
            return None
        m_b, _ = self.row_block(R)
        k_b, _ = self.col_block(C)
        return _block_sums(t, m_b, k_b)

    def scalar_work(self, R, C):
        """:meth:`WeightStats.scalar_work` of these activations (from the table if any)."""
        t = self.table("work")
        if t is None:
            return self.w.scalar_work(R, C, self.A_k)
        m_b, _ = self.row_block(R)
        k_b, _ = self.col_block(C)
        return _block_sums(t, m_b, k_b).astype(np.float64)

    def scalar_work_strips(self, R, C, r, c):
        """The scalar work of the blocks of PE row r (C values) and PE column c (R). A
        caller asking this is bounding candidates of a search: the tables are made then
        (where W allows them) and kept, as with ``search=True``."""
        if not self.search and self.M * self.K <= TABLE_LIMIT:
            self.search = True
        t = self.table("work")
        m_b, _ = self.row_block(R)
        k_b, _ = self.col_block(C)
        if t is None:
            if R * C > 4 * (R + C) and len(self.w.w_col) > R * C:
                return np.zeros(C), np.zeros(R)     # no table: a weaker bound, still a bound
            work = self.w.scalar_work(R, C, self.A_k)
            return work[r], work[:, c]
        # one strip each: differences of two table rows (columns), no R x C blocks
        row = t[m_b[r + 1], k_b].astype(np.int64) - t[m_b[r], k_b]
        col = t[m_b, k_b[c + 1]].astype(np.int64) - t[m_b, k_b[c]]
        return np.diff(row).astype(np.float64), np.diff(col).astype(np.float64)

    @property
    def nz_k(self):
        """Rows of X's nonzeros (row-major order), with :attr:`nz_n` their columns."""
        if self._nz is None:
            self._nz = np.nonzero(self.x_nz)
        return self._nz[0]

    @property
    def nz_n(self):
        if self._nz is None:
            self._nz = np.nonzero(self.x_nz)
        return self._nz[1]

    @property
    def w_col(self):
        return self.w.w_col

    def row_block(self, R):
        return self.w.row_block(R)

    def col_block(self, C):
        return self.w.col_block(C)

    def activations(self, C):
        """a[c, n]: nonzero activations arriving at PE column c in sample n."""
        if C not in self._acts:
            kb, _ = self.col_block(C)
            # block sums of X's nonzero indicator, by a cumulative sum over its rows (kept
            # while searching: the placer asks for many C)
            cum = self._acts.get("cum")
            if cum is None:
                cum = np.zeros((self.K + 1, self.N), np.int64)
                np.cumsum(self.x_nz, axis=0, dtype=np.int64, out=cum[1:])
                if self.search:
                    self._acts["cum"] = cum
            self._acts[C] = cum[kb[1:]] - cum[kb[:-1]]
        return self._acts[C]


TABLE_LIMIT = 1 << 24    # W's M x K at most, for Operands' summed-area tables (int32: 64 MiB)


def _summed_area(rows, cols, values, M, K, dtype):
    """T[i, j] = sum of ``values`` at (row < i, col < j): (M + 1) x (K + 1)."""
    from .._screen import summed_area_fill
    T = np.zeros((M + 1, K + 1), dtype)
    summed_area_fill(T, *(np.ascontiguousarray(a, dtype=np.int64) for a in (rows, cols, values)))
    return T


def _block_sums(T, row_bounds, col_bounds):
    """Sums of the blocks between consecutive bounds, from a summed-area table."""
    S = T[np.ix_(row_bounds, col_bounds)].astype(np.int64)
    return S[1:, 1:] - S[:-1, 1:] - S[1:, :-1] + S[:-1, :-1]


# --------------------------------------------------------------------------------------
# The Placement value and the placement rules of the two stationary mappings
# --------------------------------------------------------------------------------------
@dataclass(eq=False)
class Placement:
    """One mapping of Y = W @ X on one region.

    ``row_bounds`` / ``col_bounds`` split the dimensions over the region's PE rows and
    columns (weight-stationary: W's rows M and columns K; activation-stationary: X's rows
    K and columns N). ``use_comp`` (R x C) marks the blocks stored compressed; ``sram``
    (R x C) the bytes each PE holds, ``ledger`` their breakdown by buffer. ``colours``
    names the routing colours the mapping uses. ``block`` keeps what the format choice
    compared, for the cost models: nnz per block, the block of each nonzero, a
    compressed block's scalar work and both formats' batch times; ``memo`` what the cost
    models derive from these alone, shared by the placements of one region and formats.
    """
    mapping: str
    region: tuple
    row_bounds: np.ndarray
    col_bounds: np.ndarray
    sram: np.ndarray
    ledger: SramLedger
    use_comp: np.ndarray = None
    colours: dict = field(default_factory=dict)
    block: dict = field(default_factory=dict)

    @property
    def shape(self):
        """(R, C): PE rows and columns of the region."""
        return int(self.region[2]), int(self.region[3])


# Colours of the stationary mappings (event.py routes them): the stream, then the two
# alternating colours of each reduction chain.
STREAM_COLOURS = {"stream": 0, "reduce": (1, 2)}


def dense_task_cycles(config, rows):
    """A dense column's task for one nonzero activation: task + setup + one AXPY."""
    return config.task_cycles + config.setup_cycles + np.ceil(rows / config.fmacs)


def weight_stationary(ops, config, region, what="spmm", use_comp=None):
    """W's blocks on the PEs of ``region``, each dense or compressed (the faster that
    fits; where neither fits, the smaller, for the error message), with the ledger.
    ``use_comp`` (R x C bool, optional) sets the formats instead (a block marked dense
    must fit dense: :func:`pace_safe_formats` keeps that). Raises SramOverflowError
    naming the fullest PE."""
    r0, c0, R, C = region
    st = _ws_static(ops, config, region)
    m_b, k_b, t_dense = st["m_b"], st["k_b"], st["t_dense"]
    A_c = ops.activations(C).sum(axis=1)
    # sum_k A_k * nnz(W[rows_r, k]) is a compressed block's work over the batch
    nnz_rc = st["nnz"]
    scalar_work_rc = ops.scalar_work(R, C)
    dense_time, comp_time, chosen = block_formats(st, config, A_c, scalar_work_rc)
    use_comp = chosen if use_comp is None else np.asarray(use_comp, bool).reshape(R, C)
    if st["use_comp"] is None or not np.array_equal(use_comp, st["use_comp"]):
        # the ledger depends on the batch only through the formats chosen
        ledger = SramLedger(config, region)
        ledger.alloc("weights (dense)", np.where(use_comp, 0, st["dense_bytes"]))
        ledger.alloc("weights (compressed values + row indices + column starts)",
                     np.where(use_comp, st["comp_bytes"], 0))
        for name, b in st["buffers"].items():
            ledger.alloc(name, b)
        sram = ledger.check(f"{what} weight-stationary, W {ops.M}x{ops.K} on {R}x{C} PEs")
        st.update(use_comp=use_comp, ledger=ledger, sram=sram, memo={})
    return Placement("weight-stationary", region, m_b, k_b, st["sram"], st["ledger"], use_comp,
                     STREAM_COLOURS,
                     _BlockFacts({"nnz": nnz_rc, "scalar_work": scalar_work_rc,
                                  "t_dense": t_dense, "dense_time": dense_time,
                                  "comp_time": comp_time, "memo": st["memo"]},
                                 lambda: _of_nonzero(ops, st, R, C)))


def block_formats(st, config, A_c, scalar_work_rc):
    """(dense_time, comp_time, use_comp), R x C: each block's batch time in either format
    and whether it is stored compressed: the faster format that fits, else the smaller
    (for the error message). ``st`` is :func:`_ws_static`'s (t_dense and which fits),
    ``A_c`` the activations per PE column, ``scalar_work_rc`` each block's scalar work."""
    dense_time = A_c[None, :] * st["t_dense"][:, None]
    comp_time = A_c[None, :] * config.task_cycles \
        + config.scalar_cycles_per_element * scalar_work_rc
    use_comp = np.where(st["either_fits"], st["comp_fits"] & (~st["dense_fits"]
                                                             | (comp_time < dense_time)),
                        st["comp_smaller"])
    return dense_time, comp_time, use_comp


def pace_safe_formats(ops, config, region, use_comp):
    """``use_comp`` (R x C) less the blocks that could pace their PE column: a block stays
    compressed only where dense does not fit, or where no column of it costs a wavelet
    more than its dense task (``task + scalar * nnz(W[rows_r, k]) <= t_dense`` for every
    k of the block). The rows of a PE column share one multicast stream, so a
    compressed block cheaper over the batch but dearer on some wavelets can hold the
    others back (the 3,566 compressed blocks of a 90 %-sparse 1024^2 W on 64 x 392 PEs:
    6,022 cycles where all dense costs 5,866). With fewer nonzeros in W no block's
    per-wavelet cost rises under this rule. O(nnz(W) + R K); a sort of the nonzeros
    where R K is far larger."""
    st = _ws_static(ops, config, region)
    worst = config.task_cycles + config.scalar_cycles_per_element * block_column_most(
        ops, config, region)
    safe = worst <= st["t_dense"][:, None]
    return np.asarray(use_comp, bool) & (safe | ~st["dense_fits"])


def block_column_most(ops, config, region):
    """The most nonzeros of one column of W in each block of ``region`` (R x C int64):
    what a compressed block's task over one activation costs at most, in scalar steps.
    Kept with the region's batch-independent facts (:func:`_ws_static`)."""
    st = _ws_static(ops, config, region)
    if st.get("most") is None:
        st["most"] = most_per_column(ops, int(region[2]), int(region[3]))
    return st["most"]


def most_per_column(ops, R, C):
    """:func:`block_column_most` worked out: O(nnz + R K); a sort of the nonzeros where
    R K is far larger."""
    _, row_block = ops.row_block(R)
    # count per (row block, column k), then the largest per (row block, column block)
    kb, col_of = ops.col_block(C)
    keys = row_block[ops.w.w_row] * ops.K + ops.w_col
    most = np.zeros((R, C), np.int64)
    if R * ops.K <= max(4 * len(keys), 1 << 22):
        # a counting pass and a segmented max, O(nnz + R K): np.unique's sort cost 0.15 s
        # CPU on the CLI's default case (1.7 M nonzeros), more than the exact pass it gates
        counts = np.bincount(keys, minlength=R * ops.K).reshape(R, ops.K)
        filled = np.diff(kb) > 0                  # reduceat needs non-empty segments
        if filled.any():
            most[:, filled] = np.maximum.reduceat(counts, kb[:-1][filled], axis=1)
    else:                                         # hypersparse: R x K would dwarf nnz
        keys, counts = np.unique(keys, return_counts=True)
        np.maximum.at(most, (keys // ops.K, col_of[keys % ops.K]), counts)
    return most


class _BlockFacts(dict):
    """A placement's block facts; "of_nonzero" (the block of each nonzero, nnz integers) is
    found only when a model asks for it: the placer's screen never does."""

    def __init__(self, facts, of_nonzero):
        super().__init__(facts)
        self._of_nonzero = of_nonzero

    def __missing__(self, key):
        if key != "of_nonzero":
            raise KeyError(key)
        self[key] = value = self._of_nonzero()
        return value


def _of_nonzero(ops, st, R, C):
    if st["blk"] is None:
        st["blk"] = ops.w.blocks(R, C)[1]
    return st["blk"]


def _ws_static(ops, config, region):
    """What :func:`weight_stationary` needs that no batch changes (bounds, block sizes and
    bytes, which format fits), kept on the weight's stats for the last few regions: a
    training loop places the same region every step."""
    key = (id(config), tuple(int(v) for v in region))
    st = ops.w._static.get(key)
    if st is not None and st["config"] is config:
        return st
    r0, c0, R, C = region
    elem = config.elem_bytes
    m_b, _ = ops.row_block(R)
    k_b, _ = ops.col_block(C)
    M_r, K_c = np.diff(m_b), np.diff(k_b)
    nnz_rc, blk = ops.block_nnz(R, C), None
    if nnz_rc is None:
        nnz_rc, blk = ops.w.blocks(R, C)
    dense_bytes = (M_r[:, None] * K_c[None, :]) * elem
    comp_bytes = nnz_rc * (elem + 2) + (K_c[None, :] + 1) * 2   # values, 16-bit rows, col starts
    buffers = _ws_buffers(config, M_r, R, C)
    room = config.data_bytes - sum(buffers.values()).max()
    dense_fits = dense_bytes <= room
    comp_fits = comp_bytes <= room
    st = {"config": config, "m_b": m_b, "k_b": k_b, "t_dense": dense_task_cycles(config, M_r),
          "nnz": nnz_rc, "blk": blk, "dense_bytes": dense_bytes, "comp_bytes": comp_bytes,
          "buffers": buffers, "dense_fits": dense_fits, "comp_fits": comp_fits,
          "either_fits": dense_fits | comp_fits, "comp_smaller": comp_bytes < dense_bytes,
          "use_comp": None, "ledger": None, "sram": None, "memo": {}}
    if len(ops.w._static) >= 4:
        ops.w._static.pop(next(iter(ops.w._static)))
    ops.w._static[key] = st
    return st


def _ws_buffers(config, M_r, R, C):
    """Buffers besides the weights, per PE (R x C arrays)."""
    elem = config.elem_bytes
    acc = np.broadcast_to((2 * M_r * elem)[:, None], (R, C))     # double-buffered accumulators
    red = np.broadcast_to((M_r * elem)[:, None], (R, C))         # partial sums from the west
    return {"input FIFO": np.full((R, C), FIFO_BYTES),
            "accumulators (double-buffered)": acc,
            "reduction buffer": np.where(np.arange(C)[None, :] > 0, red, 0)}


def activation_stationary(ops, config, region, what="spmm"):
    """X dense on the PEs of ``region`` (its rows over PE rows, samples over PE columns)
    with the ledger of the streamed weights' FIFO, accumulators and reduction buffer."""
    r0, c0, R, C = region
    K, N = ops.K, ops.N
    elem = config.elem_bytes
    k_b, n_b = bounds(K, R), bounds(N, C)
    K_r, N_c = np.diff(k_b), np.diff(n_b)
    ledger = SramLedger(config, region)
    ledger.alloc("activations (stationary)", (K_r[:, None] * N_c[None, :]) * elem)
    ledger.alloc("accumulators (double-buffered)", np.broadcast_to(2 * N_c[None, :] * elem, (R, C)))
    ledger.alloc("reduction buffer", np.broadcast_to(N_c[None, :] * elem, (R, C)) * (R > 1))
    ledger.alloc("weight FIFO", FIFO_BYTES)
    sram = ledger.check(f"{what} activation-stationary, X {K}x{N} on {R}x{C} PEs")
    return Placement("activation-stationary", region, k_b, n_b, sram, ledger,
                     colours=STREAM_COLOURS)


# --------------------------------------------------------------------------------------
# The rectangle search
# --------------------------------------------------------------------------------------
def geometric(top, count=20):
    """1 .. top: every value up to 12, then about ``count`` geometric steps."""
    top = int(top)
    vals = set(range(1, min(top, 12) + 1))
    if top > 12:
        vals.update(np.unique(np.round(np.geomspace(12, top, count)).astype(int)).tolist())
    return sorted(v for v in vals if 1 <= v <= top)


def search(cost, dims, mappings, region, config, *, bound=None, price=None, progress=None,
           bounds=None):
    """Evaluate ``cost(mapping, region)``; with region None, search rectangles.

    Every candidate (rows, cols) of geometric sizes (:func:`geometric`, ``dims[mapping]``
    capping a mapping's rows and columns: no more PEs than blocks) is priced with the
    mapping's screen (``cost(..., exact=False, full=False)``), overflowing ones skipped;
    each mapping's cheapest is then costed exactly and the fewest cycles win.

    ``bound(mapping, R, C, exact)`` (optional) is a lower bound of the screen's price
    (``exact=False``) or of the exact cycles (``exact=True``; None: no bound): candidates
    are priced in order of their bound and the search stops where the bound passes the
    cheapest price found (branch and bound: the choice is the exhaustive screen's), and a
    mapping whose exact bound passes the best exact cycles is not costed exactly. A
    mapping without a bound (``bound`` None, or returning None) takes two rounds of
    coordinate descent from the largest rectangle instead. ``progress(done, total)`` is
    called as candidates are done (priced or pruned) out of all of them.

    ``price(mapping, region)`` (optional) gives the screen's cycles without its report
    (None: ask ``cost``); it raises as ``cost`` does where a candidate does not fit.
    ``bounds(mapping, rows, cols)`` (optional) gives ``bound``'s screen bounds of every
    candidate at once (an array, rows x cols; None: ask ``bound`` one by one).
    """
    if region is not None:
        if len(mappings) == 1:
            return cost(mappings[0], region)
        return best([(m, region) for m in mappings], cost)[1]
    chosen = None
    last_error = None
    total = sum(len(r) * len(c) for r, c in candidates(dims, mappings, config).values())
    done = 0

    def tick(n):
        nonlocal done
        done += n
        if progress is not None and n:
            progress(done, total)
    for mapping in mappings:
        try:
            R, C = _screen(cost, mapping, dims[mapping], config, bound, tick, price, bounds)
        except (SramOverflowError, MappingUnfit) as exc:
            last_error = exc
            continue
        floor = bound(mapping, R, C, True) if bound is not None else None
        if chosen is not None and floor is not None and floor >= chosen.cycles:
            continue                                # cannot beat the best exactly
        report = cost(mapping, (0, 0, R, C))        # the exact model for the choice
        if chosen is None or report.cycles < chosen.cycles:
            chosen = report
    if chosen is None:
        raise _nothing_fits(last_error, mappings, config)
    return chosen


def _nothing_fits(exc, mappings, config):
    """The error of a search in which no candidate fitted: the last candidate's, said as
    the search's (its own advice, "region=None to let the placer choose", was already
    followed)."""
    msg = str(exc).replace(" Use a larger region, region=None to let the placer choose, or "
                           "another mapping.", "").rstrip(".")
    msg = (f"no region of the {config.rows}x{config.cols} wafer fits this problem with "
           f"{', '.join(mappings)}; the last candidate tried: {msg}. It needs a wafer with "
           f"more PEs or more SRAM per PE, or a smaller problem")
    if isinstance(exc, SramOverflowError):
        return SramOverflowError(msg, pe=exc.pe, needed=exc.needed, capacity=exc.capacity,
                                 free=exc.free, breakdown=exc.breakdown)
    return type(exc)(msg)


def candidates(dims, mappings, config):
    """Candidate rectangles per mapping: {mapping: (rows, cols)}, each ascending."""
    return {m: (geometric(min(config.rows, dims[m][0])), geometric(min(config.cols, dims[m][1])))
            for m in mappings}


def _screen(cost, mapping, dims, config, bound, tick, price=None, bounds=None):
    """The (R, C) of the cheapest screen price for one mapping, or the last overflow if
    no candidate fits; ``tick(n)``: n more candidates done."""
    cand_r, cand_c = candidates({mapping: dims}, (mapping,), config)[mapping]
    cache = {}
    last_error = None

    def evaluate(R, C):
        nonlocal last_error
        if (R, C) not in cache:
            try:
                cycles = price(mapping, (0, 0, R, C)) if price is not None else None
                if cycles is None:
                    cycles = cost(mapping, (0, 0, R, C), exact=False, full=False).cycles
                cache[(R, C)] = cycles
            except (SramOverflowError, MappingUnfit) as exc:
                last_error = exc
                cache[(R, C)] = np.inf
            tick(1)
        return cache[(R, C)]

    floors = None
    grid = bounds(mapping, cand_r, cand_c) if bounds is not None else None
    if grid is not None:
        floors = [(f, R, C) for R, row in zip(cand_r, grid.tolist()) for C, f in zip(cand_c, row)]
    elif bound is not None:
        floors = [(bound(mapping, R, C, False), R, C) for R in cand_r for C in cand_c]
        if any(f is None for f, _, _ in floors):
            floors = None
    if floors is None:
        R, C = descend(evaluate, cand_r, cand_c)
        tick(len(cand_r) * len(cand_c) - len(cache))
    else:
        # ties go to the smallest (rows, cols), as a scan in ascending order keeps them
        top = (np.inf, np.inf, np.inf)
        floors.sort()
        for i, (floor, R, C) in enumerate(floors):
            if (floor, R, C) > top:
                tick(len(floors) - i)
                break
            top = min(top, (evaluate(R, C), R, C))
        R, C = top[1], top[2]
        if not np.isfinite(top[0]):
            raise last_error
    if not np.isfinite(evaluate(R, C)):
        raise last_error
    return R, C


def descend(price, cand_r, cand_c):
    """Two rounds of coordinate descent over candidate rows and columns (ascending),
    from the largest rectangle: the (R, C) of the lowest ``price(R, C)`` found."""
    R, C = cand_r[-1], cand_c[-1]
    for _ in range(2):
        R = min(cand_r, key=lambda r: price(r, C))
        C = min(cand_c, key=lambda c: price(R, c))
    return R, C


def best(pairs, cost):
    """The cheapest ((mapping, region), report) of ``pairs`` that fits."""
    results = []
    error = None
    for mapping, region in pairs:
        try:
            results.append(((mapping, region), cost(mapping, region)))
        except (SramOverflowError, MappingUnfit) as exc:
            error = exc
    if not results:
        raise error
    return min(results, key=lambda t: t[1].cycles)
