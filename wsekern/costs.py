"""The dispatcher's cost model: nanoseconds per unit of work on one core, per
microarchitecture and SIMD path, measured with `wsekern bench spmm` (1 thread, float32,
OPENBLAS_CORETYPE unset). Only the ratios between the entries of one row matter.

A per-microarchitecture table with a default per SIMD path, not a calibration at run time:
the choice of path is the same on every run of a machine, and a machine the table does not
know takes the row of its SIMD path (measured on the CPU named there). ``WSEKERN_COSTS``
names a row to use instead (``wsekern.get_config()['cost_table']`` tells which is in use).

OpenBLAS runs the kernels of the core it picks at load time (``OPENBLAS_CORETYPE`` or its
own detection), not always the CPU's widest: a row's BLAS terms are priced at the kernels it
was measured with (``blas_core``) and scaled at run time to the core NumPy's OpenBLAS reports
(wsekern/_blas_core.py, ``BLAS_CORE_TIME``). A row named by ``WSEKERN_COSTS`` is used as
measured: the name pins the routes, whatever the BLAS core.
"""
import dataclasses
import os
from dataclasses import dataclass

from ._blas_core import blas_core, core_class
from ._cpu import cpu_info

# OpenBLAS sgemm and dgemm time per multiply-add by the width of the core's kernels, over
# the AVX-512 (SkylakeX) kernels' (fp32, fp64). Measured on Zen 5 (s26 blas26, gemm_cores.py:
# each core forced by OPENBLAS_CORETYPE in its own process, alternating, best of 7 thread CPU
# times, 1 thread; 1024^2 x 16-256 and 512^2 x 64): Haswell and Zen (which reads back as
# Haswell) 1.7-1.95 and 1.4-1.7, Sandybridge 1.9-2.2 and 1.4-1.8, Nehalem 5.0-5.5 and
# 3.1-3.7. At 4096^2 x 64, where W streams from memory (blas_stream, not scaled), the
# whole call's ratios are lower (1.8-1.9 / 1.2-1.3 Haswell, 4.3 / 2.6 Nehalem) as this
# model gives them. Other CPUs take Zen 5's ratios (one factor per width, not per cell).
BLAS_CORE_TIME = {"avx512": (1.0, 1.0), "avx2": (1.85, 1.5), "avx": (2.1, 1.7),
                  "sse": (5.2, 3.6)}

# The CSR kernel's density term (CostTable.spmm_sweep): W's density where it starts, where
# it is whole, and the least bytes of an X row it applies to. Zen 5 AVX-512, 1024^2 x 64,
# M = 1024, K 256-2048: the rise began at 30-45 % density; at N = 16 fp32 and fp64 (64 and
# 128 bytes a row) there was none.
SWEEP_FROM = 0.3
SWEEP_TO = 0.5
SWEEP_ROW_BYTES = 256


@dataclass(frozen=True)
class CostTable:
    name: str
    blas_mac: float       # dense GEMM (NumPy's BLAS), per multiply-add
    spmm_mac: float       # CSR row kernel, per stored weight per column of X
    dense_scan: float     # compacting a dense W row to its nonzeros, per element (of a
    #                       W read from memory where dense_scan_cached is measured)
    densify: float        # CSR -> dense, per element of the dense result
    # conv2d paths, time relative to im2col + BLAS as (fixed, per density): the direct path
    # per kept-weight fraction, the input-stationary one per nonzero-pixel fraction (fitted
    # on x 8x64x32x32, w 64x64x3x3, pad 1, 1 thread: `wsekern bench conv`).
    conv_direct: tuple
    conv_input: tuple
    # dropping a CSR row's nonzeros that meet zero rows of X, per stored weight (a gather
    # + compress: 1.3-2.4 ns on Zen 3's AVX2); the skip pays only when this is less than
    # the multiply-adds it saves, (zero rows / K) * N * spmm_mac per stored weight.
    csr_compact: float = 2.0
    # the column (CSC) path for a packed W meeting zero rows of X, per multiply-add of the
    # live columns: each adds into rows of an L2 buffer (read-modify-write), so dearer per
    # MAC than spmm_mac (1.5x on Zen 3's AVX2, 1.7-1.9x baseline: 1024^2 x 256, 4096^2 x 64,
    # half of X's rows zero), but no work at all for the nonzeros meeting dead rows: it
    # wins for narrow X (N up to ~80 at half the rows dead), where compaction does not pay.
    spmm_scatter_mac: float = 0.116
    # The column path's kernel takes each whole vector of X's row in registers, one pass over
    # the column's weights for each (whole vectors of the SIMD path: 64 bytes AVX-512, 32
    # AVX2, 16 baseline); each column left over (N % lanes) takes one more pass of scalar
    # read-modify-writes, per live weight: ``spmm_scatter_tail`` ns (None: not measured,
    # every column priced at spmm_scatter_mac). At such narrow X the CSR kernel too costs
    # at least ``spmm_weight`` per stored weight (its index, value and X's line), however
    # few the columns: the column path is weighed against that. The column path's call costs
    # ``spmm_scatter_call`` ns more than the CSR route's (its (M, 32) buffer, its OpenMP
    # region, six arrays' buffers): it decides for small W.
    spmm_scatter_tail: float = None
    spmm_weight: float = 0.0
    spmm_scatter_call: float = 0.0
    # the panel path for a packed W meeting zero rows of X (W as row panels of 64 rows in
    # CSC form, kernels.PANEL_ROWS): the CSR kernel's multiply-adds of the weights meeting
    # live rows, plus appending each of those weights to its row's list (``panel_nnz``)
    # and a pointer step per panel and live row of X (``panel_step``); no work for a
    # weight meeting a dead row. Not measured (None): the path is not taken (on Zen 4 a
    # weight cost 2-4x csr_compact, so guessing from csr_compact could not tell).
    panel_nnz: float = None
    panel_step: float = 1.0
    # csr_compact where the CSR kernel runs X in column blocks: W's kept weights are then
    # written to a copy of its arrays and read back per block, an extra pass over W (None:
    # csr_compact, not measured apart).
    csr_compact_blocked: float = None
    # densifying a CSR also scatters each stored weight into its row: 1.4-1.9 ns each on
    # Zen 3 (fp32, 1024^2 at 50-100 % zeros, fitted with ``densify`` per element); without
    # it the model densified at 50-70 % zeros and N = 16, 0.75-1.15x SciPy's speed.
    densify_nnz: float = 1.5
    # the densified route's cost per call, apart from its work (ns): the native CSR route
    # declines it and the Python route repeats the checks, X's scan and W's index check
    # before csr_to_dense and BLAS; and BLAS per multiply-add grows for a small W as
    # (1 + blas_small / M + blas_small / K). 0: not measured (the Zen 3 rows). On Zen 4
    # (s18, fp32 50-60 % zeros, 64^2 to 512^2 and 64 x 8192, 8192 x 64, N 16-1024, 1 thread)
    # the densified call took 20-25 us more than csr_to_dense + matmul at 64^2-128^2 and
    # ~1 ns more per stored weight at 512^2 (refitted into densify_nnz, +1 ns), and lost to
    # the CSR kernel in 29 of the 36 cells it was chosen in on the avx512 path, 2.45x at
    # worst (64^2 x 64: 41 us against 17, SciPy 22). With 20 us, +1 ns and blas_small 8,
    # the route chosen over the faster one in those cells: mean 1.04 (avx512), 1.03 (avx2),
    # 1.005 (baseline); worst 1.38, 1.24, 1.09 (was 1.39 / 1.35 / 1.18, worst 2.45 / 2.39 /
    # 2.21). Fitted on those same cells (s18 simd19).
    densify_call: float = 0.0
    blas_small: float = 0.0
    # BLAS per multiply-add grows for narrow X as (1 + blas_narrow_n / N): OpenBLAS's sgemm
    # on Zen 3 ran 0.034-0.045 ns a MAC at N = 16, 0.028-0.031 at N = 32 (1024^2).
    blas_narrow_n: float = 16.0
    # A dense W whose bytes pass half of L3 is read from memory on each call; one that fits
    # stays in cache between calls. Its scan then costs ``dense_scan_cached`` an element, not
    # ``dense_scan`` (None: one rate), and BLAS, which packs W as it goes, ``blas_stream``
    # more per byte of W past L3 (0: not measured). float64 BLAS per multiply-add against
    # the CSR kernel's, over float32's ratio (``blas_fp64``), for the dense-W choice.
    dense_scan_cached: float = None
    blas_stream: float = 0.0
    blas_fp64: float = 1.0

    # the sparse Dense step (wsekern/sparse_dense.py): the SDDMM of its weight gradient, per
    # stored weight per batch row, and its tiled transposes, per element (measured at the
    # GPT's and MLP's shapes, 1 thread, on Zen 3's AVX2 with other jobs running: 0.09-0.11
    # and 0.25-0.45 ns)
    sampled_mac: float = 0.10
    transpose: float = 0.35
    # the transposes the forward and input-gradient products write as they go (each column
    # block of their result while in L2), per element: 0.36-0.78 ns on Zen 3's AVX2, 1
    # thread, other jobs running (784x1024 and 1024^2 at batch 128, 128x512 and 512x128 at
    # 2048 rows) - no cheaper than ``transpose`` from memory, measured
    transpose_l2: float = 0.45
    # the width of the OpenBLAS kernels the BLAS terms were measured with (BLAS_CORE_TIME)
    blas_core: str = "avx512"
    # fp64 BLAS per multiply-add on the core in use over the row's, beyond fp32's ratio
    # (set by at_blas_core): the densified route's only fp64 term. ``blas_fp64`` applied
    # there moved 26 fp64 cells with X all live off it, 23 of them slower, 0.96-1.47x (s26
    # review_a10, zen5/avx512, W 128x512-2048^2, N 8-2048, 30-90 % zeros).
    blas_fp64_core: float = 1.0
    # BLAS over X's live rows of a dense W first reads W's finiteness and copies its kept
    # columns: ns per element of W (0: not measured). Zen 5 (s26): 0.14 + 0.23 fp32, 0.34 + 0.2 fp64
    # at 512^2-2048^2, half the columns kept.
    blas_gather: float = 0.0
    # The densified route over X's live rows densifies only the columns of W they meet
    # (M x k_live elements at ``densify``; no gather), each stored weight then costing
    # ``densify_live_nnz`` more than ``densify_nnz``: its destination looked up (a live
    # column or a scratch row) and its dropped columns' finiteness read. Zen 5 (s27 route27,
    # every path: the code, not the vector width, sets it): the kernel 0.7-0.9 ns a weight
    # fp32 at 1024^2-2048^2 against csr_to_dense's 0.36-0.47; whole calls less BLAS 0.9-1.7
    # (fp64 1.5-2.3) against the all-live route's ~0.85 a weight.
    densify_live_nnz: float = 0.45
    # The CSR kernel's time per MAC rises with W's density on wide vectors: a row's sorted
    # indices walk X's rows upwards, and once consecutive nonzeros meet rows under ~3 apart
    # (density above SWEEP_FROM) that walk ran up to 1.5x as long a MAC (the same rows in a
    # shuffled order ran flat at 10-90 % zeros: the order, not the work). ``spmm_sweep``:
    # the extra over ``spmm_mac`` once density reaches SWEEP_TO, rising linearly from
    # SWEEP_FROM, for X rows of at least SWEEP_ROW_BYTES (one or two cache lines a row: flat).
    # Zen 5 AVX-512 (s27 route27, 1024^2, N 64/256/1024, fp32 0.022-0.027 ns a MAC at 70-90 %
    # zeros, 0.031-0.040 at 10-50 %; fp64 0.042-0.046 and 0.062-0.074): 0.3 over spmm_mac.
    # AVX2 rose 1.05-1.25x, the baseline not at all: 0 there (not measured elsewhere).
    spmm_sweep: float = 0.0

    def at_blas_core(self, width):
        """This row with BLAS priced at OpenBLAS kernels of ``width`` (a BLAS_CORE_TIME key;
        None: unknown, the row as measured): ``blas_mac`` scaled by the fp32 ratio to the
        row's own kernels, ``blas_fp64`` by the fp64 ratio over the fp32 one."""
        if width is None or width == self.blas_core:
            return self
        own32, own64 = BLAS_CORE_TIME[self.blas_core]
        new32, new64 = BLAS_CORE_TIME[width]
        f32, f64 = new32 / own32, new64 / own64
        return dataclasses.replace(self, blas_mac=self.blas_mac * f32,
                                   blas_fp64=self.blas_fp64 * f64 / f32,
                                   blas_fp64_core=self.blas_fp64_core * f64 / f32,
                                   blas_core=width)

    def blas(self, macs, n, m=None, k=None):
        """Nanoseconds for ``macs`` multiply-adds of a BLAS product with N = ``n`` (and W
        of ``m`` x ``k``, when given: the small-W term)."""
        t = macs * self.blas_mac * (1 + self.blas_narrow_n / max(n, 1))
        if m is not None and self.blas_small:
            t *= 1 + self.blas_small / max(m, 1) + self.blas_small / max(k, 1)
        return t

    def dense_w(self, M, K, k_live, N, density, itemsize=4, l3=0):
        """(BLAS, scan) nanoseconds for spmm of a dense (M, K) W holding ``density`` nonzeros
        against X's ``k_live`` live rows of ``N`` columns: BLAS, or the scan compacting W and
        the CSR kernel on its nonzeros. ``l3``: this CPU's L3 in bytes (0: unknown, W taken
        as read from memory)."""
        t_blas = self.blas(M * k_live * N, N)
        if itemsize == 8:
            t_blas *= self.blas_fp64
        if k_live < K:
            t_blas += M * K * self.blas_gather
        scan = self.dense_scan
        if M * K * itemsize > l3 // 2:
            t_blas += M * K * itemsize * self.blas_stream
        elif self.dense_scan_cached is not None:
            scan = self.dense_scan_cached
        return t_blas, M * K * scan + density * M * k_live * N * self.spmm_mac

    def csr_weight(self, n):
        """Nanoseconds per stored weight of the CSR kernel against X of ``n`` columns."""
        return max(n * self.spmm_mac, self.spmm_weight)

    def column(self, live, n, lanes):
        """Nanoseconds for the column path: ``live`` weights meeting X's live rows of ``n``
        columns, the SIMD path's vectors holding ``lanes`` values."""
        if self.spmm_scatter_tail is None:
            return self.spmm_scatter_call + live * n * self.spmm_scatter_mac
        tail = n % max(lanes, 1)
        return self.spmm_scatter_call + live * (
            (n - tail) * self.spmm_scatter_mac + tail * self.spmm_scatter_tail)

    def csr_sweep(self, density, n, itemsize=4):
        """The CSR kernel's extra time per MAC over ``spmm_mac``, as a fraction of it, for W
        of ``density`` against X rows of ``n`` values of ``itemsize`` bytes (spmm_sweep)."""
        if not self.spmm_sweep or n * itemsize < SWEEP_ROW_BYTES:
            return 0.0
        ramp = (density - SWEEP_FROM) / (SWEEP_TO - SWEEP_FROM)
        return self.spmm_sweep * min(max(ramp, 0.0), 1.0)

    def csr_extra(self, M, K, k_live, N, nnz, itemsize=4):
        """Nanoseconds the CSR route takes past ``nnz * k_live / K * N * spmm_mac``, the
        figure both spmm routes weigh densifying against: the kernel's rise with W's density
        (``csr_sweep``) and, X's rows being dead, the compaction of the weights meeting them
        (``csr_compact`` a weight, where kernels' compact_pays takes it) or, where it does
        not, the multiply-adds of the dead rows too."""
        mac = self.spmm_mac * (1 + (self.csr_sweep(nnz / (M * K), N, itemsize) if M * K
                                    else 0.0))
        live = k_live / K if K else 1.0
        t = nnz * N * mac
        if k_live < K and self.csr_compact < (1 - live) * N * self.spmm_mac:
            t = nnz * (self.csr_compact + live * N * mac)
        return t - nnz * live * N * self.spmm_mac

    def densified(self, M, K, k_live, N, nnz, itemsize=4):
        """Nanoseconds for spmm's densified route: the (M, K) W holding ``nnz`` weights
        densified (only the ``k_live`` columns meeting X's live rows when rows are dead),
        then BLAS against X's ``k_live`` live rows of ``N`` columns (float64 as measured,
        moved only by the BLAS core's ``blas_fp64_core``); less ``csr_extra``, what the CSR
        route costs past ``nnz * k_live / K * N * spmm_mac``. Less, because that is the
        figure both spmm routes weigh this against (kernels.py and csr_spmm_plain in
        src/_spmm.pyx, which reads no other term)."""
        t_blas = self.blas(M * k_live * N, N, M, k_live)
        if itemsize == 8:
            t_blas *= self.blas_fp64_core
        per_nnz = self.densify_nnz + (self.densify_live_nnz if k_live < K else 0.0)
        t = self.densify_call + M * k_live * self.densify + nnz * per_nnz + t_blas
        return t - self.csr_extra(M, K, k_live, N, nnz, itemsize)


# (uarch, simd path) -> costs. uarch as named by wsekern._cpu; None = any CPU on that path.
TABLES = {
    # Zen 3 (AMD EPYC, family 25 model 1), 2 cores, 512 KiB L2/core: measured here, BLAS
    # on the core OpenBLAS detects there (Zen: the Haswell kernels).
    ("zen3", "avx2"): CostTable("zen3/avx2", 0.022, 0.075, 0.34, 0.16, (0.0, 2.2), (0.3, 1.2),
                                blas_core="avx2"),
    ("zen3", "baseline"): CostTable("zen3/baseline", 0.022, 0.13, 1.35, 0.16, (0.2, 3.2),
                                    (1.1, 3.5), csr_compact=4.0, spmm_scatter_mac=0.234,
                                    blas_core="avx2"),
    # Zen 4 (AMD EPYC, family 25 model 17), 2 cores, 1 MiB L2/core, AVX-512 on 256-bit
    # units: measured here with a script timing each kernel alone (best of 7, thread CPU
    # time, 1 thread, OPENBLAS_CORETYPE unset), two runs on each path while other jobs
    # shared the 2 cores (lower of the two kept; runs differed by up to 1.5x): BLAS (the same
    # OpenBLAS on every path) 0.021-0.026 ns a MAC at N = 256, 0.027-0.032 at N = 16
    # (blas_narrow_n 4); the CSR kernel at 90 % zeros (1024^2 x 64 and 256, 4096^2 x 64,
    # fp32) 0.058-0.070 avx512, 0.062-0.083 avx2, 0.078-0.13 baseline; the dense-W scan with
    # N = 4; csr_to_dense at 99.9 and 50 % zeros (densify, densify_nnz); compaction and the
    # column path with half of X's rows dead (N = 16, 64); sddmm at D = 64, 128. Not
    # measured, carried over: transpose, transpose_l2 (the Zen 3 rates) and conv_input (the
    # default row of each path). conv_direct fitted on the row-tile kernel (src/wsk_conv_tile.h)
    # against im2col + BLAS on `wsekern bench conv`'s problem, 1 thread, each path forced
    # (baseline up to 50 % of weights kept); with every weight kept it ties im2col + BLAS.
    # The panel path (panel_nnz, panel_step; csr_compact_blocked on the baseline path) was
    # fitted on its kernel alone against the CSR kernel's time per MAC from this table,
    # W 90 % zeros packed, X half dead, 1024^2 x 16, 64, 256 and 4096^2 x 64 fp32, load 5-7
    # (s13 halfdead2): 1.6-2.5 ns a live weight avx512, 0.6-2.0 avx2 (1.8 kept: with 1.3 the
    # whole call lost to the column path at 4096^2 x 64), 2.0-2.6 baseline, the step set to
    # 1 ns. The baseline's blocked compaction: 1.2 ns a weight (the CSR kernel with W
    # compacted inside against W compacted beforehand, 1.17 at 4096^2 x 64, 1.34 at 1024^2
    # x 256, s15, since the kept rows run through the rows kernel; it was 2.6, s12). With
    # it, packed fp32 4096^2 x 64 and fp64 1024^2 and 2048^2 x 64 take csr-skip-rows, not
    # the panels: x the dense call, same process, 3 runs, 1.29-1.31 against 1.18-1.24,
    # 1.47-1.51 against 1.28-1.40, 1.52-1.58 against 1.00-1.11 (fp32 1024^2 x 64: 1.19-1.21
    # against 1.16-1.24).
    # AVX2's csr_compact_blocked is its csr_compact (no rate of its own): it only turns on
    # kernels' guard against the panels where X's live rows pass a quarter of L2 and W's
    # arrays fit in L2. Since the column blocks copy the live rows straight from X (s14),
    # csr-skip-rows beat or tied the panels there in every run, same process, x the dense
    # call: fp32 1024^2 x 256, 5 runs (1.49-1.58 against 1.26-1.57); fp64 512^2 x 256,
    # 3 runs (1.48-1.55 against 1.41-1.48).
    # AVX2's csr_compact 0.9 (1.2 before s18; both fields): the compaction measured 0.6-0.9
    # ns a weight (s17 halfdead7, crossover at N 24-32). Whole spmm calls, W 90 % zeros
    # (SciPy CSR and packed), X half dead, 1024^2 and 4096^2 x 16-128, fp32 and fp64, each
    # table in the same process (median of 9): of the 22 cells whose route moved (CSR at
    # N 28-32 to csr-skip-rows; packed at N 28-128 from csr, csc- or panel-skip-rows to
    # csr-skip-rows), 20 ran 1.03-1.63x faster with 0.9, one tied (0.99), one 0.83x (fp64
    # 1024^2 x 80 packed, panels before).
    ("zen4", "avx512"): CostTable("zen4/avx512", 0.022, 0.06, 0.45, 0.05, (0.1, 0.88),
                                  (0.2, 1.25), csr_compact=0.5, spmm_scatter_mac=0.08,
                                  densify_nnz=1.55, densify_call=20000.0, blas_small=8.0,
                                  blas_narrow_n=4.0, sampled_mac=0.12,
                                  panel_nnz=2.2, panel_step=1.0, spmm_scatter_tail=0.48,
                                  spmm_weight=0.35, spmm_scatter_call=5500.0),
    # AVX2's spmm_scatter_mac 0.1 (0.09 before s21): packed fp32 W, half of X's rows dead,
    # whole calls, old/new in alternating processes (3 rounds): csr-skip-rows beat the
    # column path it replaces at 1024^2 x 56 and x 64 (a new map each call 0.22 against
    # 0.24 ms), 2048^2 x 64 (0.80 against 0.83-0.89) and 4096^2 x 64 (3.79-3.84 against
    # 4.26-4.66), and a map met again then skips the compaction (the packed W keeps it:
    # 4096^2 x 64 2.4 against 3.8-4.6 ms). The crossover at half dead moves from N = 72 to
    # 51; 4096^2 x 48 stays on the column path (the kernels alone: within 5-12 %).
    # spmm_scatter_tail, spmm_weight and spmm_scatter_call on every Zen 4 row (so on the
    # default rows): measured on Zen 5 per path (s25), not on Zen 4 (a scalar pass per
    # leftover column and the call's fixed work: the code, not the vector width, sets them).
    # Without them the Zen 4 rows sent a packed W with half of X's rows dead to the column
    # path at N = 2-15 on Zen 5, 1.1-4.2x slower than the CSR kernel (avx512, 36 cells of
    # 1024^2 and 4096^2: >5 % slower in 21 -> 9, worst 4.17 -> 1.53; before the call term
    # avx2 17 -> 10, 2.43 -> 1.31, baseline 14 -> 12, 1.44 -> 1.35), and small W (64^2-512^2)
    # there at 1.2-1.95x (avx512: 22 of 24 cells -> 1). s24's whole-call grid: the moved
    # cells ran 0.70 (avx512), 0.65 (avx2), 0.73 (baseline) of the time, none slower.
    ("zen4", "avx2"): CostTable("zen4/avx2", 0.022, 0.065, 0.43, 0.05, (0.06, 1.05), (0.3, 1.2),
                                csr_compact=0.9, spmm_scatter_mac=0.1, densify_nnz=2.0,
                                densify_call=20000.0, blas_small=8.0,
                                blas_narrow_n=4.0, sampled_mac=0.11, panel_nnz=1.8,
                                panel_step=1.0, csr_compact_blocked=0.9,
                                spmm_scatter_tail=0.44, spmm_weight=0.35,
                                spmm_scatter_call=5500.0),
    # baseline spmm_mac refitted after its column blocks went to 1/8 of L2 and a row's last
    # nonzeros began prefetching the next row's X (s13): the whole spmm call at 90 % zeros
    # (fp32 1024^2 x 256 and x 64, 4096^2 x 64; best of 7 thread-CPU times, 1 thread) is
    # 3.42-3.63x NumPy's dense fp32 1024^2 x 256 product per MAC in the same process, three
    # rounds (3.73-3.91x before): 0.022 * 3.52 (median) = 0.077; it was 0.09.
    ("zen4", "baseline"): CostTable("zen4/baseline", 0.022, 0.077, 1.23, 0.07, (0.12, 2.3),
                                    (1.1, 3.5), csr_compact=0.8, spmm_scatter_mac=0.14,
                                    densify_nnz=1.55, densify_call=20000.0, blas_small=8.0,
                                    blas_narrow_n=4.0, sampled_mac=0.15,
                                    panel_nnz=2.6, panel_step=1.0, csr_compact_blocked=1.2,
                                    spmm_scatter_tail=0.45, spmm_weight=0.35,
                                    spmm_scatter_call=5500.0),
    # Zen 5 (AMD EPYC, family 26 model 2), 2 cores, L1d 48 KiB, 1 MiB L2/core, AVX-512 on
    # 512-bit units (s24 zen5): each route forced through a table that leaves it the only
    # choice, whole spmm calls (W 90 % zeros as SciPy CSR, or packed for the column and panel
    # paths; X half its rows dead for the skips), fp32, 1 thread, best of 9 thread CPU times,
    # three runs per path at load 5-9 (s24 zen5's calibrate.py). BLAS (the same
    # OpenBLAS on every path) 0.0080-0.0088 ns a MAC at N = 64 and 256 (1024^2), 0.0112-0.0118
    # at N = 16 (blas_narrow_n 5), 0.011-0.012 at 4096^2 x 64: 2.6x Zen 4's. The CSR kernel
    # at N 64-256 (1024^2 x 64 and 256, 4096^2 x 64) 0.022-0.034 ns a MAC avx512,
    # 0.031-0.036 avx2, 0.053-0.058 baseline; at N = 32 0.031-0.044 avx512; at N = 16
    # 0.048-0.06, 0.048-0.056, 0.071-0.072; at 50 % zeros (1024^2 x 128) 0.037 avx512. One
    # rate per path cannot follow that: spmm_mac is set where whole calls chose best (below).
    # The dense-W scan at N = 4, 1024^2 and 4096^2: 0.28-0.52, 0.2-0.47, 1.0-1.1 ns an element.
    # csr_to_dense at 99.9 and 50 % zeros (1024^2, 2048^2): 0.039-0.059 ns an element and
    # 0.34-0.69 a weight on every path; the densified call at 1024^2 x 128, 50 % zeros, cost
    # ~0.85 ns a weight beyond csr_to_dense's element term and BLAS (densify_nnz 0.8, with
    # Zen 4's densify_call). Compaction past dead rows (SciPy CSR, the map new each call):
    # 0.2-0.4 ns a weight avx512 at N = 16-32, ~0 at N = 64 (the fused livebits kernel), 0.6
    # at N = 256 (column blocks); 0.4-0.6 avx2; 1.15-1.4 baseline. The column path 0.058-0.09
    # ns a live MAC avx512 (0.058-0.07 at 1024^2, 0.084-0.094 at 4096^2 x 32-64), 0.045-0.07
    # avx2, 0.09-0.11 baseline. The panels 0.9-1.2 ns a live weight at 1024^2, 1.6-1.7 at
    # 4096^2 (every path). conv_direct: the direct path's time (conv_fit.py, 100-10 % of
    # weights kept, x 8x64x32x32; avx512 6.15 ms at 100 %, 1.48 at 20 %) over im2col +
    # BLAS's 4.9 ms from `wsekern bench conv` at load 4.5 (forced in conv_fit at load 8-9 it
    # ran 7.1-7.3 ms, and a fit on that sent dense weights to the direct path, 1.22x slower):
    # it crosses im2col at 79 % kept avx512, 63 % avx2, 36 % baseline. Carried over
    # from Zen 4's rows, not measured: conv_input, sampled_mac, densify_call, blas_small,
    # transpose, transpose_l2. Whole calls (routes.py: fp32/fp64, 256^2 to 4096^2, N 1-1024,
    # 50-99 % zeros, X dense or half dead; each row's route timed in the same process,
    # alternating, median of 5; load 8-10) against the Zen 4 row on Zen 5 (the default now):
    # avx512 spmm_mac 0.028 (0.025 densified nothing at 50 % zeros and N = 128-256, 1.3-1.4x
    # slower; 0.03 densified 70 % zeros at N = 1024, 1.24x slower); a packed W with half of
    # X's rows dead compacts at N = 32 (1024^2 0.07 against the column path's 0.11 ms,
    # 4096^2 1.0 against 2.5) as at N = 64 (Zen 4's row too: 0.09 against 0.21, 1.3 against
    # 4.9); at N = 1-16 it takes the CSR kernel, not the column path: 1.4-2.3x faster at
    # N = 4 (fp32/fp64 1024^2 and 4096^2; the column path took 0.12-0.13 ms at 1024^2 x 4,
    # 0.05-0.07 at x 1 and x 16), 1.1-1.8x slower at N = 1 and 16.
    # avx2 csr_compact 0.45 (0.55 kept N = 32 from compacting: 1.9 against 3.8 ms, fp64
    # 4096^2 packed). baseline: the compaction and panel rates measured here (1.2, 1.0) sent
    # packed W with half-dead X to the panels where Zen 4's row's csr-skip-rows ran faster
    # (fp32 1024^2 x 32 0.18 against 0.11 ms, 4096^2 x 32 2.95 against 1.53; a map met again
    # skips the compaction): Zen 4's csr_compact, panel_nnz and csr_compact_blocked kept.
    # avx512 dense_scan 0.33 (0.4 before, s24 lead): idle, the dense-W route less the CSR
    # kernel on the same W (fp32, 70-99 % zeros, N 16-256) is 0.29-0.38 ns an element at
    # 4096^2 (a 64 MiB W streamed from memory) and 0.06-0.2 at 1024^2-2048^2 (in cache);
    # at 0.4, 4096^2 x 64 90 % zeros took BLAS (11.1 ms) where the scan runs 8.4 (2048^2 x
    # 128 80 %: 4.3 against 3.1). At 0.33 the choice is the faster route (or within 5 %) in
    # 23 of that sweep's 25 cells; 1024^2 x 64 80 % and 4096^2 x 16 99 % take BLAS, 1.14x
    # and 1.10x slower than the scan, as at 0.4 (the in-cache scan runs below this rate).
    # s25 dispatch25, idle-to-load 8: W's size against L3 (dense_grid.py, each route forced,
    # best of 7, fp32 and fp64, 512^2-4096^2, N 16-256, 70-99 % zeros): the scan less the
    # CSR kernel at 0.028 runs 0.04-0.2 ns an element (fp32) while W's bytes fit half of L3
    # (16 MiB here), 0.27-0.40 past it (32-128 MiB): dense_scan_cached 0.15. BLAS on a
    # streamed W ran 0.12-0.14 ns an element over blas() (3072^2 x 32, 4096^2 x 16 and 64):
    # blas_stream 0.032 a byte. fp64 BLAS 2.5-2.6x fp32's time a MAC where the CSR kernel's
    # is 2.1-2.25x (packed W, 50-70 % zeros): blas_fp64 1.16. Whole calls where a route
    # is >5 % slower than the other: 19-21 of 75 -> 3 (worst 1.26, was 2.19).
    # The column path's leftover columns (s25): N % 16 fp32 columns at N = 1-12 cost 0.48 ns
    # a live weight each (0.44 AVX2, 0.45 baseline; 1024^2 and 4096^2 packed, 90 % zeros,
    # half of X dead), against ~1 ns a live weight for a whole vector's pass; the CSR kernel
    # costs ~0.35 ns a weight at N = 1-8 whatever N. The column path's call costs ~5.5 us
    # more than the CSR route's (64^2-512^2 packed, N 1-32: 12-14 against 6-10 us).
    # densify_call and blas_small (Zen 4's) checked on Zen 5 (s25): the densified route
    # against the CSR kernel at 64^2-512^2, N 16-1024, 50-60 % zeros, fp32/fp64: the faster
    # route (or within 5 %) in 59 of 64 cells; with densify_call 5-20 us and blas_small 0-8
    # (every pair, offline, these cells and 42 more at 1024^2-4096^2) 9-11 of the 106 stay
    # on the slower route (10 with these values): the misses are the CSR kernel's rate rising
    # with density (0.023 ns a MAC at 70 % zeros, 0.029 at 50 %, 1024^2 x 64), not these.
    ("zen5", "avx512"): CostTable("zen5/avx512", 0.0086, 0.028, 0.33, 0.045, (0.05, 1.2),
                                  (0.2, 1.25), csr_compact=0.3, spmm_scatter_mac=0.058,
                                  densify_nnz=0.8, densify_call=20000.0, blas_small=8.0,
                                  blas_narrow_n=5.0, sampled_mac=0.12,
                                  panel_nnz=1.0, panel_step=1.0, dense_scan_cached=0.15,
                                  blas_stream=0.032, blas_fp64=1.16, spmm_scatter_tail=0.48,
                                  spmm_weight=0.35, spmm_scatter_call=5500.0,
                                  blas_gather=0.45, spmm_sweep=0.3),
    # s25 base25: the rows kernels' block mode 1 (_spmm._BLOCK_MODE) made the CSR kernel
    # 1.20-1.29x faster at 1024^2 and 1.03-1.07x at 4096^2 x 64 on both paths; whole calls
    # at 90 % zeros (fp32, 1 thread, best of 5, load 9-11): baseline 0.039-0.043 ns a MAC
    # at 1024^2 x 64-1024, 0.048 at 4096^2 x 64 (spmm_mac 0.045, was 0.056); avx2
    # 0.024-0.025 and 0.028 (0.028, was 0.034). csr_compact scaled with it (baseline 0.7,
    # avx2 0.4 and csr_compact_blocked 0.4): at the new spmm_mac alone, X half dead at
    # N = 32 lost its compaction, 1.3-2.1x slower (fp64 4096^2 and 4096x512). Against the
    # rows before (routes.py, N 16-1024, 50-90 % zeros, fp32/fp64, 256^2 to 4096^2, X dense
    # or half dead, each route timed alternating in one process, median of 3, load 13):
    # baseline 45 cells moved, 0.85 of the time (geomean; 7 slower, 1.14-1.78x: densified
    # W 256^2 and 4096x512 at 60-80 % zeros taken to the CSR kernel, fp64 4096x512 x 32
    # packed half-dead X not compacted); avx2 22 cells, 0.93 (7 slower, 1.07-1.26x, the
    # same kind at 50-60 % zeros); the big gains are 4096^2 at 50-70 % zeros (0.6-0.75).
    # The AVX2 and baseline rows price the column path's leftover columns and call as
    # measured per path above (s25): without them, packed W with half of X dead took the
    # column path at 1024^2 x 4 (AVX2: 130 against 56 us), 4096^2 x 4 (2061 against 1176)
    # and 128^2 x 1 and x 16 (both paths: 13-15 against 8-10 us).
    ("zen5", "avx2"): CostTable("zen5/avx2", 0.0086, 0.028, 0.35, 0.045, (0.04, 1.53),
                                (0.3, 1.2), csr_compact=0.4, spmm_scatter_mac=0.05,
                                densify_nnz=0.8, densify_call=20000.0, blas_small=8.0,
                                blas_narrow_n=5.0, sampled_mac=0.11, panel_nnz=1.2,
                                panel_step=1.0, csr_compact_blocked=0.4,
                                spmm_scatter_tail=0.44, spmm_weight=0.35,
                                spmm_scatter_call=5500.0, blas_gather=0.45),
    ("zen5", "baseline"): CostTable("zen5/baseline", 0.0086, 0.045, 1.05, 0.045, (0.03, 2.67),
                                    (1.1, 3.5), csr_compact=0.7, spmm_scatter_mac=0.1,
                                    densify_nnz=0.8, densify_call=20000.0, blas_small=8.0,
                                    blas_narrow_n=5.0, sampled_mac=0.15,
                                    panel_nnz=2.6, panel_step=1.0, csr_compact_blocked=1.2,
                                    spmm_scatter_tail=0.45, spmm_weight=0.35,
                                    spmm_scatter_call=5500.0, blas_gather=0.45),
}
# Any other CPU on a path: Zen 4's rows, the path's most recent full measurement (s13-s21)
# and checked against whole calls on Zen 5 too (s24). The row the AVX-512 default held
# before, fitted on the Intel machine the kernels were first tuned on (before the column,
# panel and livebits routes changed), sent 4096^2 x 64 with half of X's rows dead to the
# column path on Zen 5 at 0.5-0.8x the speed of X dense; the Zen 3 rates the AVX2 and
# baseline defaults held stay as Zen 3's own rows.
for _path in ("avx512", "avx2", "baseline"):
    TABLES[(None, _path)] = dataclasses.replace(TABLES[("zen4", _path)],
                                               name=f"default/{_path}")


def _named(name):
    for table in TABLES.values():
        if table.name == name:
            return table
    known = ", ".join(t.name for t in TABLES.values())
    raise ValueError(f"WSEKERN_COSTS must name a cost table ({known}); received {name!r}")


_cache = {}
_simd_in_use = []     # SIMD_PATH, read once (every spmm call asks for the table)
# os.environ.get("WSEKERN_COSTS") took ~0.8 us when the name is unset (os.environ raises and
# catches a KeyError inside), about 1/5 of a small spmm call (Zen 4): os.environ's own dict
# is read instead, the same lookup without the exception (any other mapping: its get)
_ENVIRON = type(os.environ)
_COSTS_KEY = os.environ.encodekey("WSEKERN_COSTS")


def _costs_env():
    env = os.environ
    if type(env) is _ENVIRON:
        raw = env._data.get(_COSTS_KEY)
        return "" if raw is None else env.decodevalue(raw)
    return env.get("WSEKERN_COSTS", "")


def measured_row(simd):
    """The row measured for this CPU on the SIMD path ``simd`` (its BLAS as measured)."""
    return TABLES.get((cpu_info()["uarch"], simd)) or TABLES[(None, simd)]


def cost_table(simd=None):
    """The cost table for this CPU on the SIMD path in use (or ``simd``), its BLAS priced at
    the core NumPy's OpenBLAS runs (the row named by ``WSEKERN_COSTS``: as measured)."""
    if simd is None:
        if not _simd_in_use:
            from .simd_path import SIMD_PATH
            _simd_in_use.append(SIMD_PATH)
        simd = _simd_in_use[0]
    raw = _costs_env()
    table = _cache.get((raw, simd))
    if table is None:
        override = raw.strip()
        if override:
            table = _named(override)
        else:
            table = measured_row(simd).at_blas_core(core_class(blas_core()[0]))
        _cache[(raw, simd)] = table
    return table


def blas_scale(table):
    """(fp32, fp64): ``table``'s BLAS time per multiply-add over its row's as measured."""
    row = _named(table.name)
    return (table.blas_mac / row.blas_mac,
            table.blas_mac * table.blas_fp64 / (row.blas_mac * row.blas_fp64))
