"""spmm and sddmm: validated wrappers and the dispatcher over the Cython loops."""
import functools
import math

import numpy as np
import scipy.sparse as sps

from . import (
    _budget,  # noqa: F401 (read by _spmm.csr_spmm_plain through _GLOBALS)
    _densify,
    _spmm,
)
from ._budget import check_expanded, check_memory
from ._cpu import l2_bytes, l3_bytes
from ._threads import check_threads, min_work_per_thread, resolve_threads
from .costs import cost_table
from .sparse import (
    FLOAT_DTYPES,
    LazyText,
    PackedSparse,
    as_dense_operand,
    check_csr_index_range,
    check_float_dtype,
    check_sparse_operand,
    csr_parts,
    csr_parts_unchecked,
    dense_to_csr,
    native_weight,
)

# The dispatcher's costs per unit of work come from wsekern.costs (per CPU and SIMD path).
# Skip zero rows of X when at least this fraction of them are zero.
ZERO_ROW_SKIP_FRACTION = 0.05
# Below this density of X, multiply only nonzero pairs (sparse x sparse).
SPARSE_X_DENSITY = 0.02
_SAMPLE = 1024     # standard error of the density estimate <= 0.016
# SciPy's own CSR classes, exactly: the SciPy W that _spmm.csr_spmm_plain takes (it takes a
# PackedSparse too).
_PLAIN_CSR = (sps.csr_matrix, sps.csr_array)


def _estimate_density(W):
    """Density of a dense matrix from a fixed-seed sample: O(1), deterministic."""
    if W.size <= _SAMPLE:
        return np.count_nonzero(W) / max(W.size, 1)
    rows, cols = _sample_positions(*W.shape)
    return np.count_nonzero(W[rows, cols]) / _SAMPLE


@functools.lru_cache(maxsize=64)
def _sample_positions(m, n):
    """The sampled (rows, cols) for an m x n matrix, drawn once per shape (the draw cost
    as much as a small spmm)."""
    # A fixed, arbitrary seed: deterministic, and unlikely to replay the draws that made W
    # (seed 0 did: matrices from default_rng(0).integers were sampled at their nonzeros).
    rng = np.random.default_rng(0x5A17_D3E5)
    flat = np.sort(rng.integers(0, m * n, size=_SAMPLE))      # sorted: fewer cache misses
    rows, cols = np.divmod(flat, n)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def _check_out(out, shape, dtype):
    if out is None:
        nbytes = math.prod(shape) * dtype.itemsize      # Python ints: no overflow
        check_memory(nbytes, LazyText("the {} output of shape {}", dtype, shape),
                     "multiply fewer rows or columns at a time")
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray; received {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {dtype} array of shape {shape}; received "
                         f"{out.dtype} array of shape {out.shape}"
                         f"{'' if out.flags.c_contiguous else ', not C-contiguous'}")
    if not out.flags.writeable:
        raise ValueError(f"out must be writeable; received a read-only {dtype} array of "
                         f"shape {shape} (pass one from np.empty, or out=None)")
    return out


def spmm(W, X, *, transpose=False, out=None, n_threads=None):
    """``W @ X`` (or ``W.T @ X``) skipping the zeros of W and, where it pays, of X.

    Parameters
    ----------
    W : scipy.sparse matrix/array (CSR, CSC, COO, BSR, ...), PackedSparse, or dense 2-D array
        The weight, shape (M, K) (or (K, M) with ``transpose=True``). Zeros of a dense W
        are not stored and so never multiplied; explicitly stored zeros of a sparse W are.
    X : dense array, shape (K, N) or (K,)
        C- or Fortran-ordered, any strides. A 1-D X gives a 1-D result, as in SciPy.
    transpose : bool
        Multiply by ``W.T`` instead of ``W``.
    out : ndarray, optional
        C-contiguous array of the result's shape and dtype to write into. It may
        overlap X or W (``out=X``): as in ``numpy.matmul``, the product is then
        computed into a temporary and copied.
    n_threads : int, optional
        Threads for wsekern's own loops: None all, -1 all CPUs, -2 all but one, ...;
        never more than the threads this process may run on (``os.sched_getaffinity``).
        Small problems run on one thread. BLAS, where chosen, uses its own setting.

    Returns
    -------
    ndarray of shape (M, N) (or (M,)), dtype ``np.result_type(W.dtype, X.dtype)``.

    Notes
    -----
    float32 and float64 values, int32 and int64 indices; duplicates are summed and
    column order within a row does not matter. Zeros of X are skipped only when
    every stored weight is finite, so NaN and inf propagate exactly as in
    ``scipy.sparse`` (a weight that is not stored is not multiplied). Work is
    O(nnz(W) * N) on the CSR path; :func:`spmm_path` tells which path is taken.
    """
    # The common case (a plain SciPy CSR or a PackedSparse, a C-contiguous X of its dtype,
    # no out, 1 thread: n_threads=1, or a product too small for a second thread) in one
    # native call: validation, X's scan, the route and the kernel. None: anything it does
    # not handle, every refusal included, takes the Python route below. Warm, it saves
    # ~5 us a call on Zen 4 (64^2 and 256^2 x 16; 5-6 us for a packed W); at 1024^2 x 256
    # the call is the kernel.
    result = _spmm.csr_spmm_plain(W, X, transpose, out, n_threads, _GLOBALS)
    if result is not None:
        return result
    if out is not None and _overlaps(out, W, X):
        result = _spmm_impl(W, X, transpose, None, n_threads)[0]
        _check_out(out, result.shape, result.dtype)[...] = result
        return out
    return _spmm_impl(W, X, transpose, out, n_threads)[0]


def _overlaps(out, W, X):
    """Whether ``out`` may share memory with an operand (bounds test: cheap, conservative)."""
    if not isinstance(out, np.ndarray):
        return False
    arrays = [X]
    if isinstance(W, PackedSparse):
        arrays += [W.data, W.indices, W.indptr]
    elif sps.issparse(W):
        arrays += [getattr(W, name) for name in ("data", "indices", "indptr", "row", "col",
                                                 "offsets") if hasattr(W, name)]
    else:
        arrays.append(W)
    return any(isinstance(a, np.ndarray) and np.may_share_memory(out, a) for a in arrays)


def spmm_path(W, X, *, transpose=False):
    """The path :func:`spmm` takes for these operands (runs it once).

    Parameters
    ----------
    W, X, transpose
        As for :func:`spmm`.

    Returns
    -------
    str
        One of ``"csr"``, ``"csr-skip-rows"``, ``"csc-skip-rows"``, ``"panel-skip-rows"``,
        ``"csr-sparse-x"``,
        ``"dense-skip-zeros"``, ``"blas"``, ``"blas-skip-rows"``, ``"blas-densified"``.
    """
    return _spmm_impl(W, X, transpose, None, 1)[1]


def _spmm_impl(W, X, transpose, out, n_threads):
    n_threads = check_threads(n_threads)
    if type(X) is np.ndarray and X.dtype in FLOAT_DTYPES:     # as_dense_operand's checks
        check_expanded(X, "X")
    else:
        X = as_dense_operand(X, "X")
    if X.ndim not in (1, 2):
        raise ValueError(f"X must be 1-D or 2-D; received an array of shape {X.shape}")
    vector = X.ndim == 1
    X2 = X[:, None] if vector else X

    dense_W = not (sps.issparse(W) or isinstance(W, PackedSparse))
    if dense_W:
        W = np.asarray(W)
        if W.ndim != 2:
            raise ValueError(f"W must be 2-D; received an array of shape {W.shape}")
        check_expanded(W, "W")
    elif len(W.shape) != 2:      # SciPy's sparse arrays may be 1-D
        raise ValueError(f"W must be 2-D; received a {type(W).__name__} of shape {W.shape}")
    W = native_weight(W, "W")
    check_float_dtype(W.dtype, "W")
    M, K = (W.shape[1], W.shape[0]) if transpose else W.shape
    if X2.shape[0] != K:
        op = "W.T" if transpose else "W"
        raise ValueError(f"expected {op} with {K} columns to match X's rows ({X2.shape[0]}); "
                         f"received "
                         f"W.shape={W.shape}, X.shape={X.shape}"
                         f"{' (transpose=True)' if transpose else ''}")
    N = X2.shape[1]
    dtype = W.dtype if W.dtype == X.dtype else np.result_type(W.dtype, X.dtype)
    unchecked = None         # a SciPy CSR's column indices are checked by the CSR kernel
    if not dense_W:          # validate the structure even when there is nothing to compute
        data, indices, indptr, _, unchecked = csr_parts_unchecked(W, dtype, transpose)

    def check_indices():     # before any path but the plain CSR kernel reads an index
        if unchecked is not None:
            check_csr_index_range(indptr, indices, K, unchecked)
    result_shape = (M,) if vector else (M, N)
    if out is not None:      # a caller's out stays untouched when the call fails
        check_indices()
        unchecked = None
    out = _check_out(out, result_shape, dtype)
    out2 = out[:, None] if vector else out
    if M == 0 or N == 0 or K == 0:
        check_indices()
        if K == 0:
            out2[...] = 0
        return out, "empty"
    Xc = np.ascontiguousarray(X2, dtype=dtype)

    alive = np.empty(K, dtype=np.uint8)
    n_alive, x_finite, x_nnz = _scan_x(Xc, alive)
    skip_rows = n_alive <= K * (1 - ZERO_ROW_SKIP_FRACTION)

    def finite():            # X all finite: read only before a path that needs it
        nonlocal x_finite
        if x_finite is None:
            x_finite = _spmm.all_finite(Xc.reshape(-1))
        return x_finite
    k_live = n_alive if skip_rows else K

    cost = cost_table()
    if dense_W:
        Wop = np.ascontiguousarray(W.T if transpose else W, dtype=dtype)
        density = _estimate_density(Wop)
        t_blas, t_sparse = cost.dense_w(M, K, k_live, N, density, Wop.itemsize, l3_bytes())
        # With inf/NaN in X, BLAS would multiply them by W's zeros, which are not stored.
        if t_blas <= t_sparse and finite():
            return out, _blas(Wop, Xc, alive, skip_rows, out2)
        if K >= 2**31:
            raise ValueError(f"a dense W with {K} columns is too wide; pass it as a sparse matrix")
        X_live, remap = _live_rows(Xc, alive, n_alive, skip_rows, np.int32)
        threads = resolve_threads(n_threads, M * K + density * M * k_live * N)
        _spmm.dense_spmm(Wop, X_live, out2, alive, remap, threads)
        return out, "dense-skip-zeros" + ("-rows" if skip_rows else "")

    nnz = len(data)
    t_sparse = nnz * (k_live / K) * N * cost.spmm_mac
    # Densified, W's unstored zeros would meet X's inf/NaN (0 * inf = NaN): X must be finite.
    t_densified = cost.densified(M, K, k_live, N, nnz, np.dtype(dtype).itemsize)
    if t_densified < t_sparse and finite():
        check_indices()
        if skip_rows and _blas_live_densified(data, indices, indptr, Xc, alive, n_alive,
                                              n_threads, out2):
            return out, "blas-skip-rows-densified"
        # X all live, or a dropped column of W not finite: BLAS over the whole dense W
        dense = np.empty((M, K), dtype=dtype)
        _spmm.csr_to_dense(data, indices, indptr, dense, resolve_threads(n_threads, M * K))
        return out, _blas(dense, Xc, alive, False, out2) + "-densified"
    # Single zeros of X may be skipped only when no stored weight is inf/NaN (inf * 0 = NaN);
    # X's density is exact when it may be this low (_scan_x), W's finiteness read only when
    # it matters.
    if x_nnz is not None and x_nnz < SPARSE_X_DENSITY * K * N and (
            W.all_finite if isinstance(W, PackedSparse) else _spmm.all_finite(data)):
        check_indices()
        x_data, x_indices, x_indptr = dense_to_csr(Xc)
        x_indices = x_indices.astype(indptr.dtype, copy=False)
        x_indptr = x_indptr.astype(indptr.dtype, copy=False)
        threads = resolve_threads(n_threads, nnz * max(len(x_data), 1) // K)
        _spmm.csr_spmm_sparse_x(data, indices, indptr, x_data, x_indices, x_indptr,
                                out2, threads)
        return out, "csr-sparse-x"
    threads = _threads_for(n_threads, nnz * N, cost)
    # Dropping the nonzeros that meet zero rows costs a gather per nonzero: narrow X loses.
    compact_pays = cost.csr_compact < (K - n_alive) / K * N * cost.spmm_mac
    # A packed W's row panels: a weight meeting a dead row costs nothing (the test and its
    # costs: _panels_for_live_rows).
    panels = None
    if skip_rows:
        panels = _panels_for_live_rows(W, transpose, dtype, M, K, N, nnz, n_alive,
                                       compact_pays, cost)
    if panels is not None:
        _spmm.panel_spmm_live(*panels, Xc, alive, out2,
                              resolve_threads(n_threads, nnz * n_alive / K * N))
        return out, "panel-skip-rows"
    # Its (M, SCATTER_BLOCK) buffer must sit in L2: at 4096^2 x 64 fp32 (512 KiB, all of
    # Zen 3's L2) the column path lost to csr-skip-rows in 3 of 4 table runs.
    csc = None
    if skip_rows and M * SCATTER_BLOCK * Xc.itemsize <= l2_bytes() // 2:
        csc = _csc_for_live_columns(W, transpose, dtype)
    if csc is not None:
        if _column_pays(cost, nnz, n_alive, K, N, Xc.itemsize, compact_pays):
            _spmm.csc_spmm_live(csc.data, csc.indices, csc.indptr, Xc, alive, out2,
                                resolve_threads(n_threads, nnz * n_alive / K * N),
                                SCATTER_BLOCK)
            return out, "csc-skip-rows"
    if skip_rows and compact_pays:
        check_indices()
        n_block = column_block(n_alive + 1, N, Xc.itemsize, reuse=nnz / K)
        if 0 < n_block < N:
            # The column blocks copy the live rows from X itself: no X_live copy first.
            remap, rows = _spmm.live_map(alive, n_alive, indptr.dtype)
            _spmm.csr_spmm(data, indices, indptr, Xc, out2, remap, threads, n_block,
                           x_rows=rows)
        else:
            X_live, remap = _live_rows(Xc, alive, n_alive, True, indptr.dtype)
            _spmm.csr_spmm(data, indices, indptr, X_live, out2, remap, threads, n_block)
        return out, "csr-skip-rows"
    if _spmm.csr_spmm(data, indices, indptr, Xc, out2, None, threads,
                      column_block(K, N, Xc.itemsize, reuse=nnz / K), unchecked is not None):
        check_indices()          # raises, naming the first index out of range
        raise RuntimeError("csr_spmm found a column index out of range that check_csr did "
                           "not: an index array changed during the call?")
    return out, "csr"


def _threads_for(n_threads, work, cost):
    """resolve_threads(n_threads, work) (``n_threads`` already checked), without its reads of
    the machine and the environment when ``work`` is below what one more thread needs:
    the answer is then 1 whatever they say."""
    if work < min_work_per_thread(cost):
        return 1
    return resolve_threads(n_threads, work)


def _column_pays(cost, nnz, n_alive, K, N, itemsize, compact_pays):
    """Whether the column path (``nnz`` weights, X's ``n_alive`` of ``K`` rows alive, ``N``
    columns) costs less than the CSR kernel, with the compaction where that pays."""
    per_weight = cost.csr_weight(N)
    t_csr = nnz * per_weight
    if compact_pays:
        t_csr = nnz * (cost.csr_compact + n_alive / K * per_weight)
    return cost.column(nnz * n_alive / K, N, _vector_bytes() // itemsize) < t_csr


def _vector_bytes():
    """Bytes of a vector of the SIMD path in use (its widest tile is 8 of them)."""
    return _block_rule_in_use()[0] // 8


# Columns of out per block of the CSC path: its (M, 32) buffer stayed in L2 and beat 16 and
# 64 in most cells at 1024^2 x {16, 64, 256} and 4096^2 x 64 on Zen 3, both paths.
SCATTER_BLOCK = 32


def _csc_for_live_columns(W, transpose, dtype):
    """W's CSC (as a PackedSparse over its columns) when the column path may run: W packed
    (the CSC is its transpose, built once and cached; with ``transpose`` it is W itself),
    values of ``dtype`` and all finite (a skipped dead row would lose inf * 0 = NaN)."""
    if not isinstance(W, PackedSparse) or W.dtype != dtype or not W.all_finite:
        return None
    return W if transpose else W.transpose()


# Rows of W per panel of the panel path (PackedSparse.row_panels). A thread's lists of a
# panel's live weights take PANEL_ROWS * (W's longest row) values and indices (240 KB at
# 4096^2, 90 % zeros, fp32: in L2). 64 and 128 ran alike at 1024^2 x 64, 256 and 4096^2 x 64
# (Zen 4, avx512 and baseline, the kernel alone); 32 was up to 1.2x slower, 16 up to 1.6x.
PANEL_ROWS = 64


def _panels_for_live_rows(W, transpose, dtype, M, K, N, nnz, n_alive, compact_pays, cost):
    """(data, prows, pindptr, PANEL_ROWS, max_row): W (or W.T) as row panels in CSC form,
    the arguments of _spmm.panel_spmm_live, when the panel path is the cheapest way past
    X's dead rows; else None.

    Only where the cost table has measured the path (``panel_nnz`` not None), for a
    PackedSparse of ``dtype`` whose stored weights are all finite (a skipped dead
    row would otherwise lose inf * 0 = NaN), and X's live rows in half of L2 (in a quarter
    where W's arrays fit in L2 and the table prices ``csr_compact_blocked``). Its cost,
    from the cost table: the CSR kernel's multiply-adds of the weights meeting live rows
    (``spmm_mac``), appending each of them to its row's list (``panel_nnz``) and a pointer
    step per panel and live row (``panel_step``); it runs when that is below the CSR
    kernel's (with the compaction where it pays: ``csr_compact_blocked`` where X goes in
    column blocks) and the column path's. The panels are built on first use and cached on
    the PackedSparse (:meth:`PackedSparse.row_panels`; None there when not worth their
    memory)."""
    itemsize = np.dtype(dtype).itemsize
    # The row kernel reads X's live rows whole for each panel: they must sit in L2.
    x_bytes = n_alive * N * itemsize
    if (cost.panel_nnz is None or not isinstance(W, PackedSparse) or W.dtype != dtype
            or not W.all_finite or x_bytes > l2_bytes() // 2):
        return None
    # Where the table prices the CSR kernel's compaction in column blocks apart (its extra
    # pass over W), that pass is dear only where W's arrays miss L2: past a quarter of L2
    # (X then goes in column blocks, the panels read it whole) the panels pay only there.
    # Zen 4 baseline fp32, same process, x the dense call: 1024^2 x 256 (X's live rows
    # 512 KB, W 0.84 MB) csr-skip-rows 1.42-1.55 against the panels' 1.34-1.43; 1024^2 x 64
    # (128 KB) panels 1.22-1.37 against 1.09-1.18; 4096^2 x 64 (512 KB, W 13 MB) panels
    # 1.19-1.25 against 0.97-1.01 (s14: since s15 the compacted rows run through the rows
    # kernel, and the costs below send 4096^2 x 64 to csr-skip-rows, 1.29-1.31 against the
    # panels' 1.18-1.24; 1024^2 x 64 ties, 1.19-1.21 against 1.16-1.24). Zen 4 AVX2 (the
    # rate set to its csr_compact, s14): fp32 1024^2 x 256 csr-skip-rows 1.49-1.58 against
    # the panels' 1.26-1.57 (5 runs).
    if (cost.csr_compact_blocked and x_bytes > l2_bytes() // 4
            and nnz * (itemsize + W._indices.itemsize) <= l2_bytes()):
        return None
    live = nnz * n_alive / K * N
    t_csr = nnz * cost.csr_weight(N)
    if compact_pays:
        # in column blocks, the CSR kernel compacts W once into a copy it reads back
        blocked = column_block(n_alive + 1, N, itemsize, reuse=nnz / K)
        compact = cost.csr_compact_blocked if blocked and cost.csr_compact_blocked else (
            cost.csr_compact)
        t_csr = nnz * (compact + n_alive / K * cost.csr_weight(N))
    t_best = t_csr
    if M * SCATTER_BLOCK * itemsize <= l2_bytes() // 2:
        t_best = min(t_best, cost.column(nnz * n_alive / K, N, _vector_bytes() // itemsize))
    steps = -(-M // PANEL_ROWS) * n_alive
    t_panel = live * cost.spmm_mac + nnz * n_alive / K * cost.panel_nnz
    if t_panel + steps * cost.panel_step >= t_best:
        return None
    op = W.transpose() if transpose else W
    panels = op.row_panels(PANEL_ROWS)
    if panels is None:
        return None
    pindptr, prows, data, max_row = panels
    if PANEL_ROWS * max_row * (itemsize + prows.itemsize) > l2_bytes() // 2:
        return None     # a thread's lists (one long row in W) would spill from L2, or worse
    return data, prows, pindptr, PANEL_ROWS, max_row


# The widest register tile of each SIMD path's CSR kernel, in bytes (8 vectors).
TILE_BYTES = {"baseline": 8 * 16, "avx2": 8 * 32, "avx512": 8 * 64}

# The share of L2 a column block of X may fill, per SIMD path (1/L2_SHARE); the rest holds
# W's stream and y. The baseline's 8x1 tile reads 128 bytes of an X row per nonzero, so its
# blocks are narrow anyway, and a smaller block misses L2 less: on Zen 4 (1 MiB L2), 1/8
# instead of 1/4 (32 instead of 64 fp32 columns, 16 instead of 32 fp64 at K = 1024) ran the
# kernel alone 1.03-1.10x as fast at 1024^2 x 256 and x 512, 90 % zeros (C harness,
# interleaved, best of 7-11; the same sums: every column stays in an 8x1 tile). The AVX2 and
# AVX-512 paths keep 1/4 (not measured at 1/8; their wider tiles set the block there).
# fp64 on the baseline (1024^2 x 256, 90 % zeros) stays at 1.7-1.9x SciPy on Zen 4, held by
# two limits at once (s16, C harness, the kernel alone): Zen 4 issued about 2 load-type
# operations a cycle in this loop, and the 8x1 tile issues 13 per nonzero (8 X pieces, the
# weight, 2 indices, 2 prefetches) for 16 multiply-adds (6.5 cycles, the same whether X
# sits in L1 or L2); and every multiply-add reads 8 bytes of X from L2 (the block does not
# fit L1), at 20-24 bytes a cycle. A 12x1 tile on a prepared copy of W (weights stored
# twice, offsets precomputed: 18 loads for 24) was 7-8 % faster with X in L1 but within 3 %
# with X in L2; a leaner-load 8x1 and a prefetching block copy, within 2 %.
L2_SHARE = {"baseline": 8, "avx2": 4, "avx512": 4}


# Blocking X's columns pays only when each row of X is read by at least this many stored
# weights (``reuse`` = nnz / K): the block is a copy of X (K * N elements) and W streams once
# per block, both paid back by the reads of X that then hit L2. At 99 % zeros (1024^2 x 256,
# about 10 reads of each row of X) blocking made the CSR kernel slower on Zen 4.
MIN_REUSE = 16


def column_block(k_rows, n, itemsize, tile_bytes=None, reuse=None, path=None):
    """Columns of X per block of the CSR kernel (0: no blocking): as many as keep a block of
    ``k_rows`` rows in 1/:data:`L2_SHARE` of this CPU's L2 (W streams through the rest and
    would evict a bigger block), in whole widest register tiles of the SIMD path (``path``,
    by default the one in use; a narrower remainder takes extra passes over the row's
    nonzeros), at least one tile. ``tile_bytes`` given alone keeps 1/4 of L2.
    0 when ``reuse`` (stored weights per row of X) is below :data:`MIN_REUSE`.
    On Zen 3: fp64 1024^2 x 256 on the baseline path 1.9x SciPy with 16-column blocks,
    1.1-1.3x with 32-64."""
    if reuse is not None and reuse < MIN_REUSE:
        return 0
    if path is not None:
        tile_bytes, share = TILE_BYTES[path], L2_SHARE[path]
    elif tile_bytes is None:
        tile_bytes, share = _block_rule_in_use()
    else:
        share = 4
    granule = tile_bytes // itemsize
    cols = l2_bytes() // share // max(k_rows * itemsize, 1) // granule * granule
    cols = max(cols, granule)
    return 0 if cols >= n else cols


@functools.lru_cache(maxsize=1)
def _block_rule_in_use():
    """(TILE_BYTES, L2_SHARE) of the SIMD path chosen at import (asked once: an import
    statement in the call path cost microseconds on every spmm)."""
    from .simd_path import SIMD_PATH
    path = SIMD_PATH if SIMD_PATH in TILE_BYTES else "avx512"
    return TILE_BYTES[path], L2_SHARE[path]


# Above this sampled density of X, X is taken as too dense for the sparse-x path and not
# scanned whole (5x SPARSE_X_DENSITY: with 1024 samples a random X at 2 % shows over 10 %
# with a probability below 1e-30).
X_SAMPLE_DENSE = 5 * SPARSE_X_DENSITY


def _scan_x(Xc, alive):
    """(rows of X alive, X all finite or None: not read yet, X's nonzeros or None: more
    than SPARSE_X_DENSITY allows); ``alive`` flags the live rows.

    The dead rows are found exactly by reading each row up to the chunk holding its first
    nonzero (a dead row is read whole), and X's
    density sampled at about _SAMPLE fixed positions (_spmm.scan_alive). Only when the
    sample says X may be sparse enough for the sparse-x path is X read whole
    (_spmm.scan_rows: exact count and finiteness). At 99 % zeros of W (1024^2 x 256) the
    whole pass over X cost 0.08-0.15 ms of a 0.36-0.66 ms call on Zen 4; the finiteness it
    also gave matters only before BLAS (W's unstored zeros would meet X's inf/NaN), which
    reads it then (O(K * N) against BLAS's O(M * K * N))."""
    K, N = Xc.shape
    per_row = -(-_SAMPLE // K)
    n_alive, hits = _spmm.scan_alive(Xc, alive, per_row)
    n_sampled = K * min(per_row, N)
    if per_row >= N:                   # every position read: the count is exact
        return n_alive, None, hits
    if hits >= X_SAMPLE_DENSE * n_sampled:
        return n_alive, None, None
    return _spmm.scan_rows(Xc, alive)


def _live_rows(Xc, alive, n_alive, skip_rows, index_dtype):
    """(X_live, remap): the live rows of X plus one zero row, and where each row went.

    Without skipping, X itself and the identity map (every row alive).
    """
    K = Xc.shape[0]
    if not skip_rows:
        alive[:] = 1
        return Xc, np.arange(K, dtype=index_dtype)
    return _spmm.live_rows(Xc, alive, n_alive, index_dtype)


def _blas_live_densified(data, indices, indptr, Xc, alive, n_alive, n_threads, out):
    """BLAS over X's live rows and only the columns of W (CSR) they meet, densified
    straight into an (M, n_alive) array; False, nothing written, when a dropped column of
    the dense W is not finite (it meets zeros of X: inf * 0 = NaN, so BLAS must take it)."""
    remap, rows = _spmm.live_map(alive, n_alive, indptr.dtype)
    M = out.shape[0]
    dense = np.empty((M, n_alive), dtype=out.dtype)
    if not _densify.csr_to_dense_live(data, indices, indptr, remap, dense,
                                      resolve_threads(n_threads, M * n_alive)):
        return False
    np.matmul(dense, np.take(Xc, rows, axis=0), out=out)
    return True


def _blas(W, Xc, alive, skip_rows, out):
    """Dense BLAS, dropping the zero rows of X (and W's columns they meet); returns the path."""
    if skip_rows:
        keep = alive.view(bool)
        # A dropped column meets only zeros of X; that is exact unless it holds inf/NaN.
        # W's finiteness read in one contiguous pass, its dropped columns gathered only when
        # it is not, and the kept ones by index: boolean masks along W's rows gathered at
        # 0.7-2.9 ns an element of W, np.take at 0.2-0.3 (Zen 5, 512^2-2048^2).
        if _spmm.all_finite(W.reshape(-1)) or np.isfinite(
                np.take(W, np.flatnonzero(~keep), axis=1)).all():
            np.matmul(np.take(W, np.flatnonzero(keep), axis=1), Xc[keep], out=out)
            return "blas-skip-rows"
    np.matmul(W, Xc, out=out)
    return "blas"


def sddmm(A, B, pattern, *, n_threads=None):
    """Sampled dense-dense product: the values of ``A @ B.T`` at the nonzeros of ``pattern``.

    Parameters
    ----------
    A : dense array, shape (M, D)
    B : dense array, shape (N, D)
    pattern : scipy.sparse matrix/array or PackedSparse, shape (M, N)
        Only its structure is used (stored zeros included).

    Returns
    -------
    scipy.sparse.csr_array with the structure of ``pattern`` in CSR (a CSR pattern keeps
    its index order and duplicates), or a PackedSparse sharing the pattern when
    ``pattern`` is one. This is the weight gradient of a sparse layer:
    ``dW = sddmm(dY, X, W)`` for ``Y = W @ X`` (A = dY, B = X). Work O(nnz * D).
    """
    A = as_dense_operand(A, "A")
    B = as_dense_operand(B, "B")
    if A.ndim != 2 or B.ndim != 2:
        raise ValueError(f"A and B must be 2-D; received A.shape={A.shape}, B.shape={B.shape}")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"expected A and B with the same number of columns (A @ B.T); "
                         f"received A.shape={A.shape}, B.shape={B.shape}")
    packed = isinstance(pattern, PackedSparse)
    if not (packed or sps.issparse(pattern)):
        raise TypeError(f"pattern must be a scipy.sparse matrix/array or a PackedSparse; "
                        f"received {type(pattern).__name__}")
    if not packed:
        pattern = check_sparse_operand(pattern, "pattern", values="real")
    if pattern.shape != (A.shape[0], B.shape[0]):
        raise ValueError(f"expected pattern of shape {(A.shape[0], B.shape[0])} "
                         f"(A.shape[0], B.shape[0]); received pattern.shape={pattern.shape}, "
                         f"A.shape={A.shape}, B.shape={B.shape}")
    dtype = np.result_type(A.dtype, B.dtype)
    if packed:
        indices, indptr = pattern.indices, pattern.indptr
    else:
        pat = pattern if pattern.dtype.kind == "f" else pattern.astype(np.float64)
        _, indices, indptr, _ = csr_parts(pat, np.float64, name="pattern")
    Ac = np.ascontiguousarray(A, dtype=dtype)
    Bc = np.ascontiguousarray(B, dtype=dtype)
    values = np.empty(len(indices), dtype=dtype)
    _spmm.sddmm_csr(Ac, Bc, indices, indptr, values,
                    resolve_threads(n_threads, len(indices) * A.shape[1]))
    if packed:
        return pattern.with_values(values)
    return sps.csr_array((values, indices, indptr), shape=pattern.shape)


# This module's namespace, read by _spmm.csr_spmm_plain on each call (tests replace entries).
_GLOBALS = globals()
