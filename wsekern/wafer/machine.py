"""``Wafer``: run kernels on the simulated machine; each call returns (result, report).

``mode="analytic"`` (the default): the result is exactly what the CPU kernel returns
for the same call; the report is the analytic cost of the chosen mapping on the chosen
region (see analytic.py). ``mode="event"`` (spmm, conv2d): the placer still chooses the
region and mapping analytically, then the event-level simulation (event.py) runs that
placement wavelet by wavelet; the result is what the simulated PEs computed, and the
report its measured cycles, with per-PE stalls and the analytic estimate in ``details``.
"""
import operator

import numpy as np
import scipy.sparse as sps

from .. import conv as _conv_mod
from ..kernels import sddmm as cpu_sddmm
from ..kernels import spmm as cpu_spmm
from ..sparse import (
    PackedSparse,
    as_dense_operand,
    check_csr_conversion,
    check_float_dtype,
    check_sparse_operand,
    native_weight,
)
from . import analytic, event, mesh, mesh_event, placement
from .config import WaferConfig
from .estimate import event_cost
from .report import problem_of

MAPPINGS = ("weight-stationary", "activation-stationary", "meshgemv")
MATMUL_MAPPINGS = ("summa", "meshgemm")
MODES = ("analytic", "event")
MAX_EVENTS = 10 ** 8          # default limits of an event run (Wafer's keywords)
MAX_MEMORY = 4 << 30


class Wafer:
    """A simulated wafer-scale engine running wsekern's kernels.

    Each method computes what the CPU kernel computes and returns it with a
    :class:`~wsekern.SimReport` of what the same work costs on the wafer: the placer picks
    a rectangle of PEs and a mapping (weight-stationary, activation-stationary, MeshGEMV;
    SUMMA or MeshGEMM for a dense matmul) with the fewest cycles that fits in SRAM, unless
    ``region`` and ``mapping`` name them. ``mode="event"`` then runs that placement wavelet
    by wavelet instead of costing it analytically.

    Parameters
    ----------
    config : WaferConfig, optional
        The machine (``WaferConfig.wse2()`` when None).
    max_events : float or None, default 1e8
        An event run estimated above this many wavelet-link events is refused with a
        ``WorkLimitError`` before it starts (None: no limit).
    max_memory : float or None, default 4 GiB
        Likewise for the bytes an event run would allocate.

    Raises
    ------
    TypeError
        ``config`` is not a WaferConfig.
    ValueError
        A limit that is not a positive number or None.

    See Also
    --------
    WaferConfig : the machine's parameters and presets.
    SimReport : what a report holds.

    Notes
    -----
    The defaults allow about 10 s to 2 min of event simulation on one core; an analytic
    cost takes O(nonzeros + PEs) time, never O(M K N).

    Examples
    --------
    >>> import numpy as np, wsekern
    >>> wafer = wsekern.Wafer(wsekern.WaferConfig.small(8, 8))
    >>> W = np.eye(64, dtype=np.float32)
    >>> X = np.ones((64, 4), np.float32)
    >>> Y, report = wafer.spmm(W, X)
    >>> bool(np.allclose(Y, X)), report.problem["op"]
    (True, 'spmm')
    """

    def __init__(self, config=None, *, max_events=MAX_EVENTS, max_memory=MAX_MEMORY):
        if config is None:
            config = WaferConfig.wse2()
        if not isinstance(config, WaferConfig):
            raise TypeError(f"config must be a WaferConfig; received {type(config).__name__}")
        for name, v in (("max_events", max_events), ("max_memory", max_memory)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.number))
                                  or not v > 0):
                raise ValueError(f"{name} must be a positive number or None (no limit); "
                                 f"received {v!r}")
        self.config = config
        self.max_events = max_events
        self.max_memory = max_memory

    def __repr__(self):
        c = self.config
        return f"Wafer({c.rows}x{c.cols} PEs, {c.sram_bytes:,} B SRAM each, {c.dtype})"

    # -- regions -------------------------------------------------------------
    def _region(self, region):
        """(row0, col0, rows, cols) from None, (rows, cols) or (row0, col0, rows, cols)."""
        c = self.config
        if region is None:
            return None
        try:            # whole numbers only: "22" or 1.7 must not become (2, 2) or 1
            if isinstance(region, str) or any(isinstance(v, bool) for v in region):
                raise TypeError
            vals = tuple(operator.index(v) for v in region)
        except (TypeError, ValueError):
            raise TypeError(f"region must be (rows, cols) or (row0, col0, rows, cols); "
                            f"received {region!r}") from None
        if len(vals) == 2:
            vals = (0, 0) + vals
        if len(vals) != 4:
            raise ValueError(f"region must have 2 or 4 entries; received {region!r}")
        r0, c0, R, C = vals
        if R < 1 or C < 1:
            raise ValueError(f"region {vals} (row0, col0, rows, cols) must have at least one "
                             f"row and one column of PEs; received {R} x {C}")
        if r0 < 0 or c0 < 0 or r0 + R > c.rows or c0 + C > c.cols:
            raise ValueError(f"region {vals} (row0, col0, rows, cols) does not lie within the "
                             f"{c.rows}x{c.cols} wafer")
        return vals

    def _choose(self, cost, dims, mappings, region, bound=None, progress=None, price=None,
                bounds=None):
        return placement.search(cost, dims, mappings, region, self.config, bound=bound,
                                price=price, progress=progress, bounds=bounds)

    def _mappings(self, mapping):
        if mapping is None:
            return MAPPINGS
        if mapping not in MAPPINGS:
            raise ValueError(f"mapping must be one of {MAPPINGS} or None (the placer picks); "
                             f"received {mapping!r}")
        return (mapping,)

    # -- kernels ------------------------------------------------------------
    def spmm(self, W, X, *, region=None, mapping=None, n_threads=None, compute=True,
             mode="analytic", progress=None):
        """``wsekern.spmm(W, X)`` and its cost: (Y, SimReport).

        ``region=(1, 1)`` with no ``mapping`` uses the resident single-PE mapping (W, X
        and Y dense in one SRAM: no zero is skipped, so it can take more cycles than
        weight-stationary on the same PE); ``mode="event"`` refuses it (nothing crosses
        the fabric to simulate): name a mapping to run that one on one PE in both modes.
        ``compute=False`` skips the CPU kernel and returns (None, report): design-space
        sweeps want the cost only. ``mode="event"`` simulates the chosen placement
        wavelet by wavelet and returns what the PEs computed.

        Parameters
        ----------
        W : scipy.sparse matrix or array, PackedSparse, or 2-D ndarray, shape (M, K)
            The weight; its zeros are skipped where the mapping can.
        X : ndarray, shape (K, N) or (K,)
            Dense activations; their zeros are never sent (weight-stationary).
        region : tuple, optional
            ``(rows, cols)`` or ``(row0, col0, rows, cols)``; None: the placer chooses.
        mapping : {None, "weight-stationary", "activation-stationary", "meshgemv"}
            None: the placer chooses.
        n_threads : int, optional
            Threads of the CPU kernel.
        compute : bool, default True
            False: cost only, Y is None.
        mode : {"analytic", "event"}
            The analytic model, or the event-level simulation of the same placement.
        progress : bool or callable, optional
            True: a bar on stderr for the placer's search of regions and for an event
            run (its total the estimated wavelet-link events). A callable is called as
            ``progress(stage, done, total)``, stage "placement" or "events".

        Returns
        -------
        Y : ndarray or None
            ``W @ X`` (what the simulated PEs computed, in event mode).
        report : SimReport
            The cost, with ``report.problem`` recording these inputs.

        Raises
        ------
        SramOverflowError
            No candidate region fits (or the given one does not).
        WorkLimitError
            An event run estimated above the Wafer's limits.
        ValueError
            Shapes that do not match, a bad region, mapping or mode.
        """
        _check_mode(mode)
        Wm = _as_scipy(native_weight(W, "W"))
        X2 = as_dense_operand(X, "X")
        if X2.ndim not in (1, 2):
            raise ValueError(f"X must be 1-D or 2-D; received an array of shape {X2.shape}")
        check_float_dtype(Wm.dtype, "W")
        vector = X2.ndim == 1
        X2 = X2[:, None] if vector else X2
        asked = dict(mapping=mapping, region=region, mode=mode)
        progress = _hook(progress)
        if mode == "event":
            Y, report = self._event(Wm, X2, region, mapping, "spmm", progress)
            Y = Y.astype(np.result_type(Wm.dtype, X2.dtype, np.float32), copy=False)
            report.problem = problem_of("spmm", self.config, {"W": Wm, "X": X2}, **asked)
            return (Y[:, 0] if vector else Y), report
        Y = cpu_spmm(W, X, n_threads=n_threads) if compute else None
        report = self._matmul_cost(Wm, X2, region, mapping, "spmm", progress)
        report.problem = problem_of("spmm", self.config, {"W": Wm, "X": X2}, **asked)
        return Y, report

    def _event(self, Wm, X2, region, mapping, what, progress=None):
        """The analytic placer's choice of region and mapping, simulated event by event,
        once its estimate is within the Wafer's limits."""
        if X2.ndim != 2 or X2.shape[0] != Wm.shape[1]:
            raise ValueError(f"expected W with {Wm.shape[1]} columns to match X with "
                             f"{X2.shape[0]} rows; received W.shape={Wm.shape}, X.shape={X2.shape}")
        if _resident(self._region(region), self._mappings(mapping)):
            # the one choice both modes make: refuse rather than simulate another program
            raise ValueError(
                f"region={region!r} with mapping=None is the resident single-PE mapping (W, X "
                f"and Y dense in one SRAM, no fabric traffic), which mode='event' has no "
                f"wavelets to simulate; pass mapping='weight-stationary' or "
                f"'activation-stationary' to simulate that program on one PE, or "
                f"mode='analytic' for the resident cost")
        chosen = self._matmul_cost(Wm, X2, region, mapping, what, progress)
        if chosen.cycles == 0 and min(Wm.shape[0], Wm.shape[1], X2.shape[1]) == 0:
            return np.zeros((Wm.shape[0], X2.shape[1])), chosen
        if chosen.mapping == "meshgemv":
            y, rep = mesh_event.meshgemv(self.config, chosen.region, chosen.details["group_num"],
                                         W=Wm, x=X2[:, 0])
            return y[:, None], rep
        estimate = event_cost(Wm, X2, self.config, chosen.region, chosen.mapping)
        estimate.check(self.max_events, self.max_memory)
        simulate = (event.weight_stationary if chosen.mapping == "weight-stationary"
                    else event.activation_stationary)
        hook = None
        if progress is not None:
            def hook(done):
                progress("events", done, estimate.events)
        return simulate(Wm, X2, self.config, chosen.region, what=what, progress=hook)

    def _matmul_cost(self, Wm, X2, region, mapping, what, progress=None):
        """The placer's choice (or the given region and mapping) costed analytically;
        ``progress(stage, done, total)`` follows the search."""
        region = self._region(region)
        mappings = self._mappings(mapping)
        M, K = Wm.shape
        N = X2.shape[1]
        if X2.shape[0] != K:
            raise ValueError(f"expected W with {K} columns to match X with {X2.shape[0]} rows; "
                             f"received W.shape={Wm.shape}, X.shape={X2.shape}")
        if _resident(region, mappings):
            return analytic.resident(Wm, X2, self.config, region, what=what)
        if min(M, K, N) == 0:
            return analytic.empty(self.config, M, K, N, mapping or "weight-stationary")
        ops = placement.Operands(Wm, X2, search=region is None)
        if N != 1 or what != "spmm":
            if mapping == "meshgemv":
                raise ValueError(f"mapping='meshgemv' is a matrix-vector product (spmm with one "
                                 f"column of X); received {what} with X of {N} columns")
            mappings = tuple(m for m in mappings if m != "meshgemv")

        def cost(m, reg, exact=True, full=True):
            placed = None
            if exact:
                # the screen is done: its summed-area tables (W's dense size in integers)
                # go before the exact model makes its arrays (a weight-stationary
                # placement reads its blocks' counts from them first; the models count
                # the same integers without them)
                if m == "weight-stationary":
                    placed = placement.weight_stationary(ops, self.config, reg, what)
                ops.release_tables()
            if m == "meshgemv":
                stats = mesh.gemv_stats_from(ops, reg[2], reg[3], exact=exact)
                return mesh.meshgemv(self.config, reg, W=Wm, x=X2[:, 0], full=full,
                                     stats=stats)
            if m == "weight-stationary":
                return analytic.weight_stationary(Wm, X2, self.config, reg, what=what, ops=ops,
                                                  exact=exact, full=full, placement=placed,
                                                  choose_formats=True)
            return analytic.activation_stationary(Wm, X2, self.config, reg, what=what, ops=ops,
                                                  exact=exact, full=full)
        def bound(m, R, C, exact):
            return analytic.placer_bound(m, ops, self.config, R, C, exact)

        def price(m, reg):
            if m == "weight-stationary":
                return analytic.screen_price(ops, self.config, reg, what)
            return None

        def bounds(m, rows, cols):
            return analytic.placer_bounds(m, ops, self.config, rows, cols)

        def searched(done, total):
            progress("placement", done, total)
        dims = {"weight-stationary": (M, K), "activation-stationary": (K, N), "meshgemv": (K, M)}
        return self._choose(cost, dims, mappings, region, bound,
                            searched if progress is not None else None, price, bounds)

    def sddmm(self, A, B, pattern, *, region=None, n_threads=None):
        """``wsekern.sddmm(A, B, pattern)`` and its cost: the result stays where W lives.

        Parameters
        ----------
        A : ndarray, shape (M, D)
        B : ndarray, shape (N, D)
        pattern : scipy.sparse matrix or array, or PackedSparse, shape (M, N)
            Where the products are wanted (W's pattern for a weight gradient).
        region : tuple, optional
            As for :meth:`spmm`.
        n_threads : int, optional
            Threads of the CPU kernel.

        Returns
        -------
        result : sparse, pattern's structure
            ``(A @ B.T)`` at the pattern's entries, as :func:`wsekern.sddmm`.
        report : SimReport
        """
        result = cpu_sddmm(A, B, pattern, n_threads=n_threads)
        A, B = np.asarray(A), np.asarray(B)         # the CPU kernel took lists; so does the model
        P = _as_scipy(pattern, "pattern", values="real")
        ind = sps.csr_array((np.ones(P.nnz), P.indices, P.indptr), shape=P.shape)
        useful = cpu_sddmm((np.asarray(A) != 0).astype(np.float64),
                           (np.asarray(B) != 0).astype(np.float64), ind).sum()
        problem = problem_of("sddmm", self.config, {"A": A, "B": B, "pattern": P},
                             region=region, mode="analytic")
        region = self._region(region)
        (M, N), D = P.shape, np.shape(A)[1]
        if min(M, N, D) == 0:
            report = analytic.empty(self.config, M, D, N, "weight-stationary")
        else:
            def cost(m, reg, exact=True, full=True):
                return analytic.sddmm_cost(A, B, P, self.config, reg, useful, full=full)
            dims = {"weight-stationary": P.shape}
            report = self._choose(cost, dims, ("weight-stationary",), region)
        report.problem = problem
        return result, report

    def matmul(self, A, B, *, region=None, compute=True, mapping=None):
        """Dense A @ B: SUMMA or MeshGEMM (Cannon on the interleaved two-hop ring, square
        regions), the faster that fits unless ``mapping`` names one; resident on one PE
        with region=(1, 1).

        A and B are dense float32/float64 arrays (the wafer's arithmetic is real).

        Parameters
        ----------
        A : ndarray, shape (M, K)
        B : ndarray, shape (K, N)
        region : tuple, optional
            As for :meth:`spmm`; ``(1, 1)`` keeps A, B and the result on one PE.
        compute : bool, default True
            False: cost only, the result is None.
        mapping : {None, "summa", "meshgemm"}
            None: the faster that fits.

        Returns
        -------
        result : ndarray or None
            ``A @ B``.
        report : SimReport
        """
        A, B = as_dense_operand(A, "A"), as_dense_operand(B, "B")
        if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
            raise ValueError(f"matmul expects A (M x K) and B (K x N); received A.shape={A.shape}, "
                             f"B.shape={B.shape}")
        result = A @ B if compute else None
        problem = problem_of("matmul", self.config, {"A": A, "B": B}, mapping=mapping,
                             region=region, mode="analytic")
        result, report = self._matmul(A, B, result, region, mapping)
        report.problem = problem
        return result, report

    def _matmul(self, A, B, result, region, mapping):
        region = self._region(region)
        if min(A.shape + B.shape) == 0:
            return result, analytic.empty(self.config, A.shape[0], A.shape[1], B.shape[1],
                                          "summa")
        M, K = A.shape
        if mapping is not None and mapping not in MATMUL_MAPPINGS:
            raise ValueError(f"matmul mapping must be one of {MATMUL_MAPPINGS} or None (the "
                             f"placer picks); received {mapping!r}")
        mappings = MATMUL_MAPPINGS if mapping is None else (mapping,)
        if _resident(region, mappings, MATMUL_MAPPINGS):
            return result, analytic.resident(A, B, self.config, region, what="matmul")

        def cost(m, reg, exact=True, full=True):
            if m == "meshgemm":
                P = min(reg[2], reg[3])
                if region is not None and reg[2] != reg[3]:
                    raise mesh.MappingUnfit(f"MeshGEMM runs on a square region; received "
                                            f"{reg[2]}x{reg[3]} PEs")
                return mesh.meshgemm(self.config, (reg[0], reg[1], P, P), A=A, B=B, full=full)
            return analytic.summa(A, B, self.config, reg)
        dims = {"summa": (M, B.shape[1]), "meshgemm": (M, B.shape[1])}
        return result, self._choose(cost, dims, mappings, region)

    def conv2d(self, x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
               region=None, mapping=None, n_threads=None, compute=True, mode="analytic",
               progress=None):
        """``wsekern.conv2d`` and its cost, mapped as a matmul over (C_out) x (C_in*kh*kw)
        with the input pixels (im2col columns, zeros included in the count) streamed.
        With ``groups`` > 1 that matmul is block-diagonal: its MACs dense count the weights
        between groups too (``groups`` times the convolution's), as zero weights the
        mapping skips or multiplies like any other.

        Parameters
        ----------
        x, w, bias, stride, padding, dilation, groups, n_threads
            As for :func:`wsekern.conv2d`.
        region, mapping, compute, mode, progress
            As for :meth:`spmm`.

        Returns
        -------
        y : ndarray or None
            The convolution (what the simulated PEs computed, in event mode).
        report : SimReport
        """
        _check_mode(mode)
        x_given, padding_given = x, padding
        if isinstance(padding, str):        # torch's 'same'/'valid' as ints (x padded if odd)
            x, padding, _ = _conv_mod.string_padding(x, w, padding, stride, dilation)
        x, w, bias, g, dtype = _conv_mod.conv_operands(x, w, bias, stride, padding, dilation,
                                                       groups)
        y = _conv_mod.conv2d(x, w, bias, stride=stride, padding=padding, dilation=dilation,
                             groups=groups, n_threads=n_threads) \
            if compute and mode == "analytic" else None
        g.check_memory(x.itemsize, im2col=True)         # the columns are built even uncomputed
        cols = _conv_mod.im2col(x, g)                                   # (G, Kg, B*OH*OW)
        Og = g.O // g.groups
        X2 = cols.reshape(cols.shape[0] * cols.shape[1], cols.shape[2])   # (G*Kg, B*OH*OW)
        blocks = [sps.csr_array(w.reshape(g.O, g.depth_per_filter)[gi * Og:(gi + 1) * Og])
                  for gi in range(g.groups)]
        Wm = sps.block_diag(blocks, format="csr")                         # (O, G*Kg)
        problem = problem_of("conv2d", self.config, {"x": x_given, "w": w}, stride=stride,
                             padding=padding_given, dilation=dilation, groups=groups,
                             mapping=mapping, region=region, mode=mode)
        progress = _hook(progress)
        if mode == "event":
            Y2, report = self._event(Wm, X2, region, mapping, "conv2d", progress)
            report.problem = problem
            _zero_weight_meets_nonfinite(w.reshape(g.O, g.depth_per_filter), cols, Y2)
            out = Y2.reshape(g.O, g.B, g.OH, g.OW).transpose(1, 0, 2, 3)
            if bias is not None:
                out = out + bias.astype(np.float64)[None, :, None, None]
            return np.ascontiguousarray(out, dtype=dtype), report
        report = self._matmul_cost(Wm, X2, region, mapping, "conv2d", progress)
        report.problem = problem
        return y, report


def _resident(region, mappings, every=MAPPINGS):
    """The resident single-PE mapping is what ``region=(1, 1)`` with no mapping named runs,
    in every mode (one decision, so the two modes never cost different programs); a named
    mapping runs as named there too."""
    return region is not None and region[2:] == (1, 1) and tuple(mappings) == every


def _hook(progress):
    """``progress=`` of the Wafer's calls as a ``(stage, done, total)`` callable or None:
    True draws bars on stderr (wsekern._progress.Bars)."""
    if progress is None or progress is False:
        return None
    if progress is True:
        from .._progress import Bars
        return Bars(always=True)
    if not callable(progress):
        raise TypeError(f"progress must be True, False, None or a callable (stage, done, "
                        f"total); received {type(progress).__name__}")
    return progress


def _zero_weight_meets_nonfinite(w2, cols, Y2):
    """conv2d's contract is the dense IEEE answer (a zero weight times an inf pixel is NaN);
    the fabric never stores or sends a zero weight, so mark those products after the run."""
    bad = ~np.isfinite(cols)                                     # (G, Kg, B*OH*OW)
    if not bad.any():
        return
    Og = w2.shape[0] // cols.shape[0]
    for gi in range(cols.shape[0]):
        zero = (w2[gi * Og:(gi + 1) * Og] == 0).astype(np.float64)      # (Og, Kg)
        Y2[gi * Og:(gi + 1) * Og][zero @ bad[gi].astype(np.float64) > 0] = np.nan


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; received {mode!r}")


def _as_scipy(W, name="W", values="float"):
    """W as a csr_array; a SciPy operand's raw arrays are checked before SciPy converts it."""
    if isinstance(W, PackedSparse):
        return W.to_scipy()
    if sps.issparse(W):
        W = check_sparse_operand(W, name, values=values)
        if W.format != "csr":
            check_csr_conversion(W, W.shape[0], name)
        return sps.csr_array(W)
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D; received shape {W.shape}")
    if W.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (float32 or float64); received "
                        f"{W.dtype}")
    return sps.csr_array(W)
