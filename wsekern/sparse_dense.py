"""The products of a sparse-weight layer's training step: a dense batch times a sparse kernel.

A Dense layer with a pruned kernel W (K inputs x N outputs, fixed pattern, values
changing every step) multiplies in three ways per step. With the batch held transposed
(``Xt``: K x B, the batch contiguous), each is a loop over W's stored values only, on a
contiguous row of B:

- forward ``Y^T = W^T Xt`` (:func:`times_wt`, CSR of W^T),
- input gradient ``dX^T = W dY^T`` (:func:`times_w`, CSR of W),
- weight gradient ``dW = Xt dY`` at W's pattern only (:func:`pattern_grad`, an SDDMM).

Each is ``nnz(W) * B`` multiply-adds against ``K * N * B`` for the dense GEMM. The forward
adds the bias and applies a GELU or ReLU as each output row leaves the product
(:func:`forward`). The forward and input-gradient products also write their result
batch-major, each column block transposed while still in L2 (:func:`forward_batch_major`,
:func:`times_w_batch_major`); the other transposes go by register tiles
(:func:`transpose`), the backward's one applying the activation's derivative and summing
the bias gradient on the way (:func:`scale_rows` when the operand came already
transposed). Whether that whole step beats the dense GEMMs on the masked kernel is
decided by :func:`sparse_pays` from this CPU's measured rates (``wsekern/costs.py``). W
and its transpose live in one :class:`PackedSparse`, built once: only the values are
refreshed per step (``set_values``). The products' big outputs come from buffers kept
here across steps (:func:`_empty`), each handed out again only once no array refers to it
(a step's fresh multi-MiB outputs otherwise fault in every page again);
:func:`release_buffers` drops them.

Semantics are scipy.sparse's: a weight that is not stored is not multiplied, so a NaN or
inf of X reaches only the outputs its stored weights connect it to.
"""
import sys
import threading

import numpy as np

from . import _sparse_dense
from ._threads import resolve_threads
from .costs import cost_table
from .kernels import column_block
from .simd_path import SIMD_PATH  # noqa: F401  (imported: selects this module's SIMD path)
from .sparse import PackedSparse

# -- output buffers reused across steps -----------------------------------------------------
# A training step allocates the same big outputs every step (a GPT's 512 x 2048 float32
# forward writes three 4 MiB arrays a layer). Freed at the end of a step, glibc hands such
# blocks back to the system and the next step's first writes fault every page in again:
# the forward of a 128 -> 512 layer at batch 2048 took 6.2 ms with fresh arrays and 2.9 ms
# with reused ones (Zen 4, avx512, one thread). So outputs from POOL_MIN_BYTES up live in
# raw buffers kept here and handed out again once nothing refers to them.
POOL_MIN_BYTES = 256 << 10      # below this malloc reuses its own blocks
POOL_MAX_BYTES = 256 << 20      # kept at most, all sizes together (beyond: np.empty)
_ALIGN = 64
_pool = {}                      # byte size -> [(bytearray, offset of its first aligned byte)]
_pool_bytes = 0
_pool_lock = threading.Lock()


def _empty(shape, dtype):
    """``np.empty(shape, dtype)`` starting on a 64-byte boundary, from a kept buffer when
    it is big enough.

    A buffer is handed out only when no array refers to it any more (its reference count:
    each array made from it holds it through its base). The array returned is a view whose
    own base chain ends at a memoryview, not at a kept array, so code that watches the
    lifetime of an output's owning array (the transposes the sparse layers share,
    ``wsekern/nn/layers/transposes.py``, by weak reference) sees it die with its last view,
    as it would a fresh array."""
    dtype = np.dtype(dtype)
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    if nbytes < POOL_MIN_BYTES:
        return _aligned_empty(shape, dtype, count)
    global _pool_bytes
    with _pool_lock:
        # least recently handed out first: a step's outputs die in the order the previous
        # step made them, so the first buffer looked at is usually free
        kept = _pool.setdefault(nbytes, [])
        for i, entry in enumerate(kept):
            # referrers: the entry tuple, getrefcount's argument; any more is an array alive
            if sys.getrefcount(entry[0]) == 2:
                del kept[i]
                break
        else:
            if _pool_bytes + nbytes + _ALIGN > POOL_MAX_BYTES:
                return _aligned_empty(shape, dtype, count)
            raw = bytearray(nbytes + _ALIGN)
            entry = (raw, -np.frombuffer(raw, np.uint8).ctypes.data % _ALIGN)
            del raw
            _pool_bytes += nbytes + _ALIGN
        kept.append(entry)
        return np.frombuffer(entry[0], dtype, count, entry[1]).reshape(shape)


def _aligned_empty(shape, dtype, count):
    """``np.empty(shape, dtype)`` starting on a 64-byte boundary (malloc's blocks start on
    16 bytes). The sparse MLP's weight-gradient SDDMM took 210 or 254 us a step depending
    on where its 100-128 KB operands (784 x 32 and 1024 x 32 float32) happened to start.
    The base is a fresh array no one else holds: the result dies with its last view."""
    size = dtype.itemsize
    if size == 0 or _ALIGN % size:                # no whole number of items reaches 64
        return np.empty(shape, dtype)
    raw = np.empty(count + _ALIGN // size, dtype)
    start = _sparse_dense.data_offset(raw, _ALIGN)
    if start % size:                              # never from malloc, but then unaligned
        return np.empty(shape, dtype)
    start = (_ALIGN - start) % _ALIGN // size
    return raw[start:start + count].reshape(shape)


def release_buffers():
    """Drop the kept output buffers no array refers to (those still in use stay until their
    arrays die, then are simply freed)."""
    global _pool_bytes
    with _pool_lock:
        _pool.clear()
        _pool_bytes = 0


def step_costs(P, batch, cost=None):
    """Estimated seconds of one training step of a layer with kernel ``P`` on ``batch`` rows,
    ``(sparse, dense)``, at this CPU's rates (``wsekern/costs.py``). Both paths are one
    fused node (bias and activation alike on both, so left out): the sparse step is its three
    zero-skipping products plus the four transposes between the batch-major activations and
    the batch-contiguous layout they run on - two from memory (the input X and the output
    gradient dY, ``transpose``) and two the products write as they go (their results Y and
    dX, ``transpose_l2``); the dense one is the three GEMMs on the masked kernel plus
    building that kernel."""
    cost = cost or cost_table()
    K, N = P.shape
    sparse = (P.nnz * batch * (2 * cost.spmm_mac + cost.sampled_mac)
              + batch * (K + N) * (cost.transpose + cost.transpose_l2))
    dense = 3 * K * N * batch * cost.blas_mac + K * N * cost.densify
    return sparse * 1e-9, dense * 1e-9


def sparse_pays(P, batch, cost=None):
    """Whether the sparse step (:func:`step_costs`) beats the dense GEMMs on the masked
    kernel for kernel ``P`` and ``batch`` rows, at this CPU's rates."""
    sparse, dense = step_costs(P, batch, cost)
    return sparse < dense


def transpose(a, *, scale=None, row_sums=False, n_threads=None):
    """``a.T`` as a C-contiguous array, by register tiles (several times faster than
    NumPy's strided copy here). With ``scale`` (``a.T``'s shape) the result is
    ``a.T * scale``, and with ``row_sums`` the pair ``(result, result.sum(axis=1))`` is
    returned, both in the same pass (the backward of a fused bias + GELU)."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"transpose expects a 2-D array; received shape {a.shape}")
    fast = a.dtype in (np.float32, np.float64)
    if scale is not None:
        scale = np.asarray(scale)
        if scale.shape != a.shape[::-1] or scale.dtype != a.dtype or not fast:
            raise ValueError(f"scale must be an array of a.T's shape {a.shape[::-1]} and a's "
                             f"dtype (float32 or float64); received a {a.dtype} {a.shape}, "
                             f"scale {scale.dtype} {scale.shape}")
        scale = np.ascontiguousarray(scale)
    if not fast:
        out = np.ascontiguousarray(a.T)
        return (out, out.sum(axis=1)) if row_sums else out
    if scale is None and not row_sums and a.T.flags.c_contiguous:
        return np.ascontiguousarray(a.T)
    a = np.ascontiguousarray(a)
    out = _empty(a.shape[::-1], a.dtype)
    sums = np.empty(a.shape[1], dtype=a.dtype) if row_sums else None
    _sparse_dense.transpose(a, out, resolve_threads(n_threads, a.size // 8), scale, sums)
    return (out, sums) if row_sums else out


def scale_rows(a, scale=None, *, row_sums=False, n_threads=None):
    """``a * scale`` computed in place (``a`` a C-contiguous float32/float64 array, ``scale``
    of its shape and dtype) and, with ``row_sums``, the pair ``(a, a.sum(axis=1))``, in one
    pass: :func:`transpose`'s scaling for an operand that is already transposed."""
    if not isinstance(a, np.ndarray) or a.ndim != 2 or not a.flags.c_contiguous \
            or not a.flags.writeable or a.dtype not in (np.float32, np.float64):
        raise ValueError(f"scale_rows expects a writeable C-contiguous 2-D float32/float64 "
                         f"array; received {type(a).__name__} "
                         f"{getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}")
    if scale is not None:
        scale = np.asarray(scale)
        if scale.shape != a.shape or scale.dtype != a.dtype:
            raise ValueError(f"scale must be an array of a's shape {a.shape} and dtype "
                             f"{a.dtype}; received {scale.dtype} {scale.shape}")
        scale = np.ascontiguousarray(scale)
    sums = np.empty(a.shape[0], dtype=a.dtype) if row_sums else None
    _sparse_dense.scale_rows(a, scale, sums, resolve_threads(n_threads, a.size // 8))
    return (a, sums) if row_sums else a


def _check(P, X, rows, what):
    if not isinstance(P, PackedSparse):
        raise TypeError(f"the kernel must be a PackedSparse (wsekern.pack); received "
                        f"{type(P).__name__}")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != rows:
        raise ValueError(f"expected {what} of shape ({rows}, batch) for a kernel of shape "
                         f"{P.shape}; received shape {X.shape}")
    if X.dtype.kind != "f" and X.dtype.kind not in "iub":
        raise TypeError(f"{what} must hold real numbers; received dtype {X.dtype}")
    return np.ascontiguousarray(X, dtype=P.dtype)


ACTIVATIONS = (None, "gelu", "relu")      # what the fused forward applies


def _times(P, X, n_threads, bias=None, activation=None):
    """``P @ X`` for a C-contiguous X of P's dtype, on P's CSR rows (+ bias per row, then
    the activation, returning its derivative too)."""
    M = P.shape[0]
    B = X.shape[1]
    out = _empty((M, B), P.dtype)
    d = _empty((M, B), P.dtype) if activation else None
    if M and B:
        threads = resolve_threads(n_threads, P.nnz * B)
        block = column_block(X.shape[0], B, X.itemsize)
        _sparse_dense.rows_times_dense(P.data, P.indices, P.indptr, X, out, threads, block,
                                       bias, d, activation == "relu")
    return (out, d) if activation else out


def times_wt(P, Xt, *, n_threads=None):
    """``W^T @ Xt`` (N x B) for the kernel ``P`` (K x N) and ``Xt`` (K x B): the forward
    product ``Y^T`` of ``Y = X W``. Work O(nnz * B)."""
    Xt = _check(P, Xt, P.shape[0], "Xt")
    return _times(P.T, Xt, n_threads)


def _check_epilogue(P, bias, activation):
    """The forward's bias (one per output, as P's dtype, or None) after checking it and
    ``activation``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}; received {activation!r}")
    if bias is None:
        return None
    bias = np.asarray(bias)
    if bias.shape != (P.shape[1],):
        raise ValueError(f"expected a bias of shape ({P.shape[1]},) for a kernel of shape "
                         f"{P.shape}; received shape {bias.shape}")
    return np.ascontiguousarray(bias, dtype=P.dtype)


def forward(P, Xt, bias=None, activation=None, *, n_threads=None):
    """The fused forward of a sparse Dense layer, batch-contiguous: ``Z = W^T Xt + bias``
    (N x B, bias per row) and, with ``activation`` ``"gelu"`` (exact) or ``"relu"``, the
    pair ``(act(Z), act'(Z))``; without, ``Z``. The bias and activation are applied to
    each output segment as the product leaves it (no extra pass). Work O(nnz * B) plus
    O(N * B) for the activation."""
    Xt = _check(P, Xt, P.shape[0], "Xt")
    bias = _check_epilogue(P, bias, activation)
    return _times(P.T, Xt, n_threads, bias, activation)


def _times_t(P, X, n_threads, bias=None, activation=None):
    """``(P @ X)^T`` (B x M) and ``P @ X`` (M x B) in one pass, for a C-contiguous X of P's
    dtype (+ bias per row of P, then the activation, returning its derivative (M x B))."""
    M = P.shape[0]
    B = X.shape[1]
    out_t = _empty((B, M), P.dtype)
    out = _empty((M, B), P.dtype)
    d = _empty((M, B), P.dtype) if activation else None
    if M and B:
        threads = resolve_threads(n_threads, P.nnz * B)
        block = column_block(X.shape[0], B, X.itemsize)
        _sparse_dense.rows_times_dense_t(P.data, P.indices, P.indptr, X, out_t, out, threads,
                                         block, bias, d, activation == "relu")
    return out_t, out, d


def forward_batch_major(P, Xt, bias=None, activation=None, *, n_threads=None):
    """:func:`forward` with the result also batch-major: ``(Y, Yt, D)`` where ``Yt`` is
    ``act(W^T Xt + bias)`` (N x B), ``Y`` its transpose (B x N: the layer's output) and
    ``D`` the activation's derivative (N x B; None without an activation). Each band of
    ``Yt`` is transposed into ``Y`` while it is still in L2 (not read back from memory)."""
    Xt = _check(P, Xt, P.shape[0], "Xt")
    bias = _check_epilogue(P, bias, activation)
    return _times_t(P.T, Xt, n_threads, bias, activation)


def times_w_batch_major(P, Gt, *, n_threads=None):
    """:func:`times_w` with the result also batch-major: ``(dX, dXt)``, ``dXt = W @ Gt``
    (K x B) and ``dX`` its transpose (B x K: the input gradient of ``Y = X W``)."""
    Gt = _check(P, Gt, P.shape[1], "Gt")
    out_t, out, _ = _times_t(P, Gt, n_threads)
    return out_t, out


def times_w(P, Gt, *, n_threads=None):
    """``W @ Gt`` (K x B) for the kernel ``P`` (K x N) and ``Gt`` (N x B): the input
    gradient ``dX^T`` of ``Y = X W``. Work O(nnz * B)."""
    Gt = _check(P, Gt, P.shape[1], "Gt")
    return _times(P, Gt, n_threads)


def pattern_grad(P, Xt, Gt, *, n_threads=None):
    """``(Xt @ Gt^T)`` at the stored positions of ``P``, in its storage order (``nnz``
    values): the weight gradient of ``Y = X W`` with W's pruned entries left out.
    ``Xt`` is K x B, ``Gt`` N x B. Work O(nnz * B)."""
    Xt = _check(P, Xt, P.shape[0], "Xt")
    Gt = _check(P, Gt, P.shape[1], "Gt")
    if Xt.shape[1] != Gt.shape[1]:
        raise ValueError(f"Xt and Gt must have the same batch (columns); received "
                         f"Xt.shape={Xt.shape}, Gt.shape={Gt.shape}")
    out = np.empty(P.nnz, dtype=P.dtype)
    if P.nnz:
        threads = resolve_threads(n_threads, P.nnz * Xt.shape[1])
        # unblocked: blocks of Gt's columns kept in L2 measured no faster on Zen 3 (128 x 512
        # and 512 x 128 at 2048 rows, fp32: 0.087-0.09 vs 0.089-0.10 ns a multiply-add,
        # 0.075-0.14 vs 0.073-0.093), and shorter dots pay their reduction more often
        _sparse_dense.sampled_dots(Xt, Gt, P.indices, P.indptr, out, threads)
    return out

