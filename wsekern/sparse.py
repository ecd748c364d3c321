"""Sparse weights: validation of SciPy inputs and the packed layout the kernels use."""
import operator

import numpy as np
import scipy.sparse as sps

from . import _optim, _spmm
from ._budget import check_expanded, check_memory

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ALIGN = 64  # bytes: one cache line, one AVX-512 vector


def check_float_dtype(dtype, name):
    """Raise TypeError unless ``dtype`` is float32 or float64 (``name``: the array's)."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        native = dtype.newbyteorder("=")
        if native in FLOAT_DTYPES:      # '>f8' from a file: float64, but byte-swapped
            raise TypeError(f"{name} must have dtype float32 or float64 in this machine's "
                            f"byte order; received {dtype.str} ({native.name}, byte-swapped, "
                            f"as read from some files). Convert it first, e.g. "
                            f"{name}.astype(np.{native.name})")
        raise TypeError(f"{name} must have dtype float32 or float64; received {dtype}. "
                        f"Convert it first, e.g. {name}.astype(np.float32)")
    return dtype


def _value_dtype(dtype):
    """A ``dtype=`` argument (pack, PackedSparse.astype) as float32 or float64, else a
    TypeError that names what was asked."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64; received {dtype!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64 (the kernels' value types); "
                        f"received {dtype}")
    return dtype


def check_csr_conversion(W, n_rows, what):
    """Refuse, before SciPy allocates it, a CSR copy of the sparse ``W`` with ``n_rows``
    rows beyond the memory budget: its row pointers alone take ``n_rows + 1`` entries,
    however few values W stores (a COO of 2**33 empty rows asks for 64 GiB)."""
    nnz = W.nnz if W.format in ("dok", "lil") else np.asarray(W.data).size
    check_memory((n_rows + 1) * 8 + nnz * (16 + np.dtype(W.dtype).itemsize),
                 f"{what} in CSR form ({n_rows:,} rows, up to {nnz:,} stored values)",
                 "pass a matrix with fewer rows, or in CSR form already")


def as_dense_operand(X, name):
    """``X`` as a float32/float64 NumPy array; a sparse operand (SciPy or PackedSparse) is
    a TypeError that says how to pass it."""
    if sps.issparse(X) or isinstance(X, PackedSparse):
        raise TypeError(f"{name} must be a dense array; received a sparse "
                        f"{type(X).__name__}. Use {name}.toarray() or swap the operands")
    X = native_order(np.asarray(X), name)
    check_float_dtype(X.dtype, name)
    check_expanded(X, name)
    return X


def native_order(a, name):
    """``a`` (an ndarray) in this machine's byte order: float32/float64 byte-swapped (as
    read from a big-endian file) is converted, as NumPy and SciPy compute with it (a copy,
    after the budget check of a broadcast view); any other array is returned as it is."""
    if a.dtype.kind != "f" or a.dtype.isnative:
        return a
    native = a.dtype.newbyteorder("=")
    check_float_dtype(native, name)
    check_expanded(a, name)
    return a.astype(native)


def native_weight(W, name):
    """A weight (ndarray or scipy.sparse) in this machine's byte order: :func:`native_order`
    for an array; a SciPy matrix whose float values are byte-swapped gets a copy of them in
    native order (its structure is shared); anything else is returned as it is."""
    if isinstance(W, np.ndarray):
        return native_order(W, name)
    if sps.issparse(W) and W.dtype.kind == "f" and not W.dtype.isnative:
        return W.astype(check_float_dtype(W.dtype.newbyteorder("="), name))
    return W


def _aligned_copy(a, dtype):
    """A contiguous copy of ``a`` as ``dtype`` whose data starts on a 64-byte boundary."""
    a = np.asarray(a)
    dtype = np.dtype(dtype)
    n = a.size
    buf = np.empty(n * dtype.itemsize + _ALIGN, dtype=np.uint8)
    offset = (-buf.ctypes.data) % _ALIGN
    out = buf[offset:offset + n * dtype.itemsize].view(dtype).reshape(a.shape)
    out[...] = a
    return out


def check_sparse_operand(W, name="W", *, values="float", csr_index_range=True):
    """Check the raw arrays of a SciPy sparse matrix or array before any SciPy code reads them.

    SciPy's conversions trust their input, and a malformed matrix (an index past the
    shape, a LIL row shorter than its values, a short ``indptr``) can crash them or
    return garbage. Every wsekern entry point that takes a sparse operand calls this
    first. Checked, per format: COO row/col lengths and ranges; CSR/CSC/BSR ``indptr``
    length, start, end and order and every index in range; BSR block shape; LIL one list
    of in-range integer columns per row with as many values; DIA offsets distinct and
    one data row each; DOK keys (row, column) integer pairs in range. Unsorted and
    duplicate indices are valid (they are summed, as SciPy does). O(nnz + rows).

    Parameters
    ----------
    W : scipy.sparse matrix or array
        Any of SciPy's formats.
    name : str, default "W"
        What to call the operand in error messages.
    values : {"float", "real"}
        "float": float32/float64 required (kernels); "real": any real or boolean dtype
        (a pattern, or a file's integers).
    csr_index_range : bool, default True
        False leaves a CSR's column-index range unchecked (everything else is checked):
        only for a caller that checks it before any index is read, by
        :func:`check_csr_index_range` or in a kernel (``csr_spmm``'s ``check_cols``).

    Returns
    -------
    scipy.sparse matrix or array
        W, or a copy whose index arrays are int64 when they were narrower or unsigned:
        SciPy's own arithmetic on those wraps (a uint8 DIA offset negated by a
        transpose) or fails.

    Raises
    ------
    ValueError
        A malformed array, naming the format, the array and what was wrong.
    TypeError
        W is not a SciPy sparse matrix or array of a known format.
    """
    fmt = getattr(W, "format", None)
    if not sps.issparse(W) or fmt not in _FORMAT_CHECKS:
        raise TypeError(f"{name} must be a scipy.sparse matrix or array; received "
                        f"{type(W).__name__}")
    what = f"{name} ({fmt.upper()})"
    M, K = _check_shape(W.shape, what)
    what = f"{name} ({fmt.upper()}, shape {(M, K)})"
    dtype = np.dtype(W.dtype)
    if values == "float":
        check_float_dtype(dtype, name)
    elif dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real values; received dtype {dtype}")
    if fmt == "csr" and not csr_index_range:
        _check_compressed(W, M, K, what, index_range=False)
    else:
        _FORMAT_CHECKS[fmt](W, M, K, what)
    return _wide_indices(W)


def _wide_indices(W):
    """W itself when its index arrays are int32/int64, else a copy with int64 ones."""
    fmt, cls = W.format, type(W)
    wide = (np.dtype(np.int32), np.dtype(np.int64))
    if fmt in ("csr", "csc", "bsr"):
        if W.indices.dtype in wide and W.indptr.dtype in wide:
            return W
        return cls((W.data, W.indices.astype(np.int64), W.indptr.astype(np.int64)),
                   shape=W.shape)
    if fmt == "coo":
        row, col = W.coords if hasattr(W, "coords") else (W.row, W.col)
        if row.dtype in wide and col.dtype in wide:
            return W
        return cls((W.data, (row.astype(np.int64), col.astype(np.int64))), shape=W.shape)
    if fmt == "dia" and W.offsets.dtype not in wide:
        return cls((W.data, W.offsets.astype(np.int64)), shape=W.shape)
    return W                     # LIL and DOK hold Python integers


_MAX_DIM = np.iinfo(np.int64).max


def _check_shape(shape, what):
    """(M, K) as Python ints: the shape attribute is as open to tampering as the arrays."""
    try:
        M, K = (operator.index(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must have a 2-D shape of integers; received "
                         f"shape {shape!r}") from None
    if M < 0 or K < 0:
        raise ValueError(f"{what} must have a non-negative shape; received {(M, K)}")
    if max(M, K) > _MAX_DIM:
        raise ValueError(f"{what}: a dimension beyond 2**63 - 1 cannot be indexed (int64 "
                         f"indices); received shape {(M, K)}")
    return M, K


def _index_array(a, what, label):
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{what}: {label} must be 1-D; received an array of shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise TypeError(f"{what}: {label} must be an integer array; received dtype {a.dtype}")
    return a


def _check_range(a, n, what, label):
    """Every entry of the integer array ``a`` lies in [0, n)."""
    if len(a) and (a.min() < 0 or a.max() >= n):
        bad = a[(a < 0) | (a >= n)][0]
        raise ValueError(f"{what}: {label} index {bad} is out of range for {n} {label}s "
                         f"(valid: 0 to {n - 1})")


def _check_data(data, shape, what, label="data"):
    data = np.asarray(data)
    if data.shape != shape:
        raise ValueError(f"{what}: {label} must have shape {shape} to match the index "
                         f"arrays; received {data.shape}")


def _check_structure(indptr, indices, n_major, n_minor, what, index_range=True):
    """Validate a compressed (CSR/CSC) structure; returns it as one signed index type.
    Without ``index_range`` the minor indices' range is left to the caller."""
    indptr = _index_array(indptr, what, "indptr")
    indices = _index_array(indices, what, "indices")
    if len(indptr) != n_major + 1:
        raise ValueError(f"{what}: indptr must have {n_major + 1} entries (one more than the "
                         f"{n_major} rows/columns it compresses); received {len(indptr)}")
    for a, label in ((indptr, "indptr"), (indices, "indices")):
        if a.dtype == np.uint64 and len(a) and a.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{what}: {label} holds {a.max()}, beyond any valid index")
    ip, ix = _unify_indices(indptr, indices)
    msg = _spmm.check_csr(ip, ix, n_minor, index_range)
    if msg is not None:
        raise ValueError(f"{what}: {msg}")
    return ip, ix


def check_csr_index_range(indptr, indices, n_cols, what):
    """Raise the ValueError :func:`check_sparse_operand` would for a column index out of
    range (``indptr`` already checked; both of one signed index type)."""
    msg = _spmm.check_csr(indptr, indices, n_cols)
    if msg is not None:
        raise ValueError(f"{what}: {msg}")


def _unify_indices(indptr, indices):
    """indptr and indices as one contiguous signed type (int64 if either is wider or
    unsigned)."""
    wide = max(indptr.dtype.itemsize, indices.dtype.itemsize) > 4 or "u" in (
        indptr.dtype.kind + indices.dtype.kind)
    index_dtype = np.int64 if wide else np.int32
    return (np.ascontiguousarray(indptr, dtype=index_dtype),
            np.ascontiguousarray(indices, dtype=index_dtype))


def _check_compressed(W, M, K, what, index_range=True):
    n_major, n_minor = (M, K) if W.format == "csr" else (K, M)
    _check_structure(W.indptr, W.indices, n_major, n_minor, what, index_range)
    _check_data(W.data, (len(W.indices),), what)


def _check_bsr(W, M, K, what):
    data = np.asarray(W.data)
    if data.ndim != 3 or data.shape[1] < 1 or data.shape[2] < 1:
        raise ValueError(f"{what}: BSR data must be 3-D (blocks, R, C) with R, C >= 1; "
                         f"received shape {data.shape}")
    R, C = data.shape[1:]
    if M % R or K % C:
        raise ValueError(f"{what}: blocksize {(R, C)} does not divide the shape {(M, K)}")
    _check_structure(W.indptr, W.indices, M // R, K // C, what)
    _check_data(data, (len(W.indices), R, C), what)


def _check_coo(W, M, K, what):
    coords = getattr(W, "coords", None)
    coords = (W.row, W.col) if coords is None else coords
    if len(coords) != 2:
        raise ValueError(f"{what}: expected 2 coordinate arrays (row, col); received "
                         f"{len(coords)}")
    row = _index_array(coords[0], what, "row")
    col = _index_array(coords[1], what, "col")
    _check_data(col, row.shape, what, "col")
    _check_data(W.data, row.shape, what)
    _check_range(row, M, what, "row")
    _check_range(col, K, what, "column")


def _check_lil(W, M, K, what):
    for label in ("rows", "data"):
        a = getattr(W, label)
        if not isinstance(a, np.ndarray) or a.shape != (M,):
            shape = a.shape if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{what}: LIL {label} must be an object array of {M} lists "
                             f"(one per row); received {shape}")
    for i, (r, d) in enumerate(zip(W.rows, W.data)):
        if not isinstance(r, list) or not isinstance(d, list) or len(r) != len(d):
            raise ValueError(f"{what}: row {i} must hold two lists of equal length (column "
                             f"indices and values); received {_describe(r)} and "
                             f"{_describe(d)}")
        if not r:
            continue
        if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in r):
            raise TypeError(f"{what}: row {i} must hold integer column indices; received "
                            f"{r[:8]!r}")
        if not all(0 <= c < K for c in r):
            bad = next(c for c in r if not 0 <= c < K)
            raise ValueError(f"{what}, row {i}: column index {bad} is out of range for {K} "
                             f"columns (valid: 0 to {K - 1})")


def _check_dia(W, M, K, what):
    offsets = _index_array(W.offsets, what, "offsets")
    data = np.asarray(W.data)
    if data.ndim != 2 or data.shape[0] != len(offsets):
        raise ValueError(f"{what}: DIA data must be 2-D with one row per offset "
                         f"({len(offsets)} offsets); received shape {data.shape}")
    if len(np.unique(offsets)) != len(offsets):
        raise ValueError(f"{what}: DIA offsets must be distinct; received {offsets.tolist()}")
    # Offsets beyond the matrix hold nothing (SciPy drops them), but a huge one overflows
    # SciPy's index arithmetic: accept what a diagonal of this shape could be, and more.
    lo, hi = -(M + K), M + K
    if len(offsets) and (offsets.min() < lo or offsets.max() > hi):
        bad = offsets[(offsets < lo) | (offsets > hi)][0]
        raise ValueError(f"{what}: DIA offset {bad} is far outside the matrix "
                         f"(its diagonals run from {-(M - 1)} to {K - 1})")


def _check_dok(W, M, K, what):
    for key in W.keys():
        if not (isinstance(key, tuple) and len(key) == 2 and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in key)):
            raise ValueError(f"{what}: DOK keys must be (row, column) pairs of integers; "
                             f"received {key!r}")
        if not (0 <= key[0] < M and 0 <= key[1] < K):
            raise ValueError(f"{what}: DOK key {key!r} is out of range (valid: rows 0 to "
                             f"{M - 1}, columns 0 to {K - 1})")


def _describe(v):
    return f"a list of {len(v)}" if isinstance(v, list) else type(v).__name__


_FORMAT_CHECKS = {"csr": _check_compressed, "csc": _check_compressed, "bsr": _check_bsr,
                  "coo": _check_coo, "lil": _check_lil, "dia": _check_dia, "dok": _check_dok}


def _check_sorted_unique(indices, indptr, what):
    """Column indices strictly increasing within each row (a valid CSR structure)."""
    if len(indices) < 2:
        return
    ok = np.diff(indices) > 0
    starts = indptr[1:-1]
    ok[starts[(starts > 0) & (starts < len(indices))] - 1] = True   # a row starts anew
    if not ok.all():
        p = int(np.argmin(ok)) + 1
        row = int(np.searchsorted(indptr, p, side="right")) - 1
        raise ValueError(f"{what}: column indices must be sorted and unique within each row; "
                         f"row {row} has {indices[p - 1]} then {indices[p]}. "
                         f"wsekern.pack(scipy_matrix) sorts them and sums duplicates")


def csr_parts(W, dtype, transpose=False, name="W"):
    """(data, indices, indptr, shape) of W (or W.T) in CSR, validated, with ``dtype`` values.

    Duplicates stay (the kernels sum them, as SciPy does); order within a row is kept.
    """
    if isinstance(W, PackedSparse):
        P = W.T if transpose else W
        data = P.data if P.data.dtype == dtype else P.data.astype(dtype)
        return data, P.indices, P.indptr, P.shape
    W = check_sparse_operand(W, name)
    A = W.T if transpose else W
    if A.format != "csr":
        check_csr_conversion(A, A.shape[0], f"{name}.T" if transpose else name)
        A = A.tocsr()
    if A is W:              # checked just above: only the index dtype is left to unify
        indptr, indices = _unify_indices(A.indptr, A.indices)
    else:
        indptr, indices = _check_structure(A.indptr, A.indices, A.shape[0], A.shape[1],
                                           f"{name} (shape {A.shape})")
    data = np.ascontiguousarray(A.data, dtype=dtype)
    return data, indices, indptr, A.shape


def csr_parts_unchecked(W, dtype, transpose=False, name="W"):
    """:func:`csr_parts` plus what to call W in an error message when its column indices
    were left unchecked (a SciPy CSR taken as it is: no transpose, no SciPy conversion
    reads them), else None. The caller must then check them before any is read
    (:func:`check_csr_index_range`, or a kernel that checks each row first): a separate
    pass over them cost ~20 us of a 1024^2 x 16 product's ~250."""
    if not transpose and type(W) in _PLAIN_CSR:
        parts = _plain_csr_parts(W, dtype, name)
        if parts is not None:
            return parts
    if (isinstance(W, PackedSparse) or transpose or not sps.issparse(W)
            or getattr(W, "format", None) != "csr"):
        return (*csr_parts(W, dtype, transpose, name), None)
    W = check_sparse_operand(W, name, csr_index_range=False)
    indptr, indices = _unify_indices(W.indptr, W.indices)
    data = np.ascontiguousarray(W.data, dtype=dtype)
    shape = tuple(int(v) for v in W.shape)
    return data, indices, indptr, W.shape, LazyText(_CSR_NAME, name, shape)


# SciPy's own CSR classes, exactly (a subclass may change what its attributes return).
_PLAIN_CSR = (sps.csr_matrix, sps.csr_array)
_INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
_CSR_NAME = "{} (CSR, shape {})"      # a CSR operand in an error message


class LazyText:
    """``template.format(*args)``, formatted only when read: the names of operands in error
    messages that are rarely raised (an f-string on every spmm call cost about a
    microsecond)."""
    __slots__ = ("template", "args")

    def __init__(self, template, *args):
        self.template, self.args = template, args

    def __str__(self):
        return self.template.format(*self.args)

    def __format__(self, spec):
        return format(str(self), spec)


def _plain_csr_parts(W, dtype, name):
    """:func:`csr_parts_unchecked` of a plain SciPy CSR whose arrays are already what the
    kernels take (1-D contiguous indptr and indices of one type, int32 or int64; 1-D
    contiguous float data; a shape of non-negative Python ints), checked with the same one
    pass over indptr as the general route; else None (the general route then runs, and
    raises the same messages as before). The general route's dozen Python steps cost a
    tiny product ~10 us; these cost ~2."""
    indptr, indices, data = W.indptr, W.indices, W.data
    shape = W.shape
    if not (type(indptr) is np.ndarray and type(indices) is np.ndarray
            and type(data) is np.ndarray and type(shape) is tuple and len(shape) == 2):
        return None
    M, K = shape
    if not (type(M) is int and type(K) is int and 0 <= M and 0 <= K <= _MAX_DIM
            and indptr.dtype == indices.dtype and indptr.dtype in _INDEX_DTYPES
            and data.dtype in FLOAT_DTYPES and indptr.ndim == 1 and indices.ndim == 1
            and data.ndim == 1 and len(indptr) == M + 1 and len(data) == len(indices)
            and indptr.flags.c_contiguous and indices.flags.c_contiguous):
        return None
    if _spmm.check_csr(indptr, indices, K, False) is not None:
        return None
    if data.dtype != dtype or not data.flags.c_contiguous:
        data = np.ascontiguousarray(data, dtype=dtype)
    return data, indices, indptr, shape, LazyText(_CSR_NAME, name, shape)


def dense_to_csr(W, n_threads=1):
    """(data, indices, indptr) of the nonzeros of a C-contiguous dense matrix, two passes."""
    M, K = W.shape
    index_dtype = np.int32 if M * K < 2**31 else np.int64
    indptr = np.zeros(M + 1, dtype=index_dtype)
    _spmm.count_nonzero_rows(W, indptr, n_threads)
    np.cumsum(indptr, out=indptr)
    nnz = int(indptr[-1])
    indices = np.empty(nnz, dtype=index_dtype)
    data = np.empty(nnz, dtype=W.dtype)
    _spmm.fill_csr_from_dense(W, indptr, indices, data, n_threads)
    return data, indices, indptr


def _read_only(a):
    """A view of 1-D ``a`` whose writeable flag cannot be set back, not even through its
    ``base`` (a read-only memoryview): our caches of the array would go stale."""
    return np.frombuffer(memoryview(a).toreadonly(), dtype=a.dtype)


class PackedSparse:
    """A sparse weight laid out once for the wsekern kernels.

    CSR with sorted, unique column indices, the narrowest index type that fits
    (int32 unless the matrix needs int64), values on a 64-byte boundary, and
    the transpose built lazily and cached (layers multiply by W and W.T).  The
    pattern is fixed; the values can change in place with :meth:`set_values`
    (pruned weights keep their pattern while training).  Explicitly stored
    zeros stay in the pattern and are multiplied, exactly as in SciPy.

    Create one with :func:`wsekern.pack`, or from CSR arrays with
    ``PackedSparse(data, indices, indptr, shape)``: the constructor checks them (indptr
    of ``M + 1`` non-decreasing entries from 0 to ``len(indices)``, column indices in
    range, sorted and unique within each row, one float32/float64 value per index)
    and copies them, so a PackedSparse is valid for as long as it lives.

    Parameters
    ----------
    data : ndarray of float32 or float64
        The stored values, row by row.
    indices : ndarray of int
        Their column indices (sorted and unique within each row).
    indptr : ndarray of int, length M + 1
        Where each row starts in ``data`` and ``indices``.
    shape : (int, int)
        (M, K).

    Attributes
    ----------
    shape : (int, int)
    nnz : int
        Stored entries.
    dtype : numpy.dtype
        The values' type.
    """

    def __init__(self, data, indices, indptr, shape):
        M, K = _check_shape(shape, "PackedSparse")
        what = f"PackedSparse (shape {(M, K)})"
        indptr, indices = _check_structure(indptr, indices, M, K, what)
        _check_sorted_unique(indices, indptr, what)
        data = np.asarray(data)
        check_float_dtype(data.dtype, "data")
        _check_data(data, indices.shape, what)
        self._init(_aligned_copy(data, data.dtype), np.array(indices), np.array(indptr),
                   (M, K))

    @classmethod
    def _trusted(cls, data, indices, indptr, shape):
        """From arrays already valid (pack's own, or another PackedSparse's): no checks."""
        obj = cls.__new__(cls)
        obj._init(data, indices, indptr, shape)
        return obj

    def _init(self, data, indices, indptr, shape):
        # Own the index arrays: a view's base could be written, and with it the indices.
        indices, indptr = (a if a.flags.owndata else a.copy() for a in (indices, indptr))
        self._data = data
        self._indices = indices
        self._indptr = indptr
        self._shape = (int(shape[0]), int(shape[1]))
        self._transpose = None   # (PackedSparse, permutation into our data)
        self._finite = None
        self._panels = None      # row_panels' cache: [rows, pindptr, prows, perm, data,
        #                          max_row, fresh]
        self._views = None       # read-only (data, indices, indptr), made on first use
        self._kept = None        # spmm's W compacted to one live map of X (_spmm._kept_w);
        #                          dropped whenever the values change
        for a in (self._indices, self._indptr):
            a.flags.writeable = False

    # -- properties -----------------------------------------------------
    @property
    def shape(self):
        return self._shape

    @property
    def nnz(self):
        return len(self._data)

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self):
        return 2

    @property
    def density(self):
        M, K = self._shape
        return self.nnz / (M * K) if M * K else 0.0

    @property
    def data(self):
        """The stored values, read-only: change them with :meth:`set_values`. A view through
        a read-only buffer, so its flag cannot be set back (the cached transpose and the
        finiteness check would go stale)."""
        return self._view(0)

    @property
    def indices(self):
        """Column indices, read-only (through a read-only buffer, as :attr:`data`)."""
        return self._view(1)

    @property
    def indptr(self):
        """Row pointers, read-only (through a read-only buffer, as :attr:`data`)."""
        return self._view(2)

    def _view(self, i):
        """A fresh view of the kept read-only view of array ``i`` (a caller may reshape
        its own view; the kept one's buffer is read-only, so no view of it is writeable)."""
        views = self._views
        if views is None:
            views = self._views = tuple(_read_only(a) for a in
                                        (self._data, self._indices, self._indptr))
        return views[i].view()

    @property
    def T(self):
        return self.transpose()

    @property
    def all_finite(self):
        """True when no stored value is NaN or infinite (cached until values change)."""
        if self._finite is None:
            self._finite = bool(np.isfinite(self._data).all())
        return self._finite

    def transpose(self):
        """The transpose as a PackedSparse, built once and kept in step with set_values."""
        if self._transpose is None:
            M, K = self._shape
            # the transpose's row pointers have K + 1 entries, whatever the nonzero count
            check_memory((K + 1) * self._indptr.itemsize + self.nnz * 24,
                         f"the transpose of a {M}x{K} PackedSparse",
                         "a matrix with this many columns cannot be transposed here")
            order = np.arange(self.nnz, dtype=np.int64)
            T = sps.csr_array((order, self._indices, self._indptr), shape=self._shape).T.tocsr()
            T.sort_indices()
            # where each of the transpose's values sits in ours: int32 when it fits (half
            # the bytes the per-update refresh reads)
            perm = np.ascontiguousarray(
                T.data, dtype=np.int32 if self.nnz < 2**31 else np.int64)
            idx_dtype = self._indices.dtype
            packed_T = PackedSparse._trusted(_aligned_copy(self._data[perm], self.dtype),
                                    np.ascontiguousarray(T.indices, dtype=idx_dtype),
                                    np.ascontiguousarray(T.indptr, dtype=idx_dtype), (K, M))
            packed_T._transpose = (self, None)
            self._transpose = (packed_T, perm)
        return self._transpose[0]

    def row_panels(self, rows):
        """This matrix as row panels in CSC form, for the dead-rows path of spmm: a tuple
        (pindptr, prows, data, max_row). Panel ``b`` holds rows ``b * rows`` to
        ``b * rows + rows - 1``; its column ``k`` is entries ``pindptr[b * K + k]`` to
        ``pindptr[b * K + k + 1]`` of ``prows`` (row within the panel, ascending) and
        ``data``; ``max_row`` is the most stored weights in a row. Built once per ``rows``
        and cached (the values are refreshed after :meth:`set_values`), like the transpose.

        None, and nothing built, when the form is not worth its memory: its
        ``ceil(M / rows) * K + 1`` pointers would outnumber the stored weights more than
        4 to 1 (a density below about 1 / (4 * rows)), or its estimate is beyond the
        memory budget."""
        cached = self._panels
        if cached is None or cached[0] != rows:
            M, K = self._shape
            n_ptr = -(-M // rows) * K + 1
            if n_ptr > 4 * self.nnz + K + 1:
                return None
            isz = self._indptr.itemsize
            try:
                check_memory(n_ptr * isz + self.nnz * (2 * isz + self.dtype.itemsize)
                             + K * isz, "", "")
            except MemoryError:
                return None
            idx = self._indptr.dtype
            pindptr = np.empty(n_ptr, dtype=idx)
            prows = np.empty(self.nnz, dtype=idx)
            perm = np.empty(self.nnz, dtype=idx)
            _spmm.build_row_panels(self._indices, self._indptr, K, rows, pindptr, prows, perm)
            max_row = int(np.diff(self._indptr).max(initial=0))
            cached = self._panels = [rows, pindptr, prows, perm,
                                     _aligned_copy(self._data[perm], self.dtype), max_row, True]
        if not cached[6]:
            np.take(self._data, cached[3], out=cached[4], mode="clip")
            cached[6] = True
        return cached[1], cached[2], cached[4], cached[5]

    def _panels_stale(self):
        if self._panels is not None:
            self._panels[6] = False

    def _values_changed(self):
        # what is cached from the values: the finiteness flag, the panels' copy, the
        # compaction to a live map (the kept entries' values)
        self._finite = None
        self._kept = None
        self._panels_stale()

    # -- values -----------------------------------------------------------
    def set_values(self, values):
        """Replace the stored values in place, keeping the pattern.

        ``values`` is either a 1-D array of ``nnz`` values in storage order, or a
        dense array of the full shape whose entries at the pattern are taken.
        """
        values = np.asarray(values)
        if values.ndim == 2 and values.shape == self._shape:
            rows = np.repeat(np.arange(self._shape[0]), np.diff(self._indptr))
            values = values[rows, self._indices]
        elif values.shape != (self.nnz,):
            raise ValueError(f"set_values expects {self.nnz} values (the stored count) or a "
                             f"dense array of shape {self._shape}; received shape {values.shape}")
        if values.dtype.kind not in "fiu":
            raise TypeError(f"set_values expects real numbers; received dtype {values.dtype}")
        self._values_changed()
        cached = self._transpose
        if cached is not None and cached[1] is not None:
            # we are the original with a cached transpose: our values and the transpose's
            # in one native pass (same type, contiguous), else NumPy below
            other, perm = cached
            other._values_changed()
            if _optim.copy_and_gather(values, self._data, perm, other._data):
                self._kept_dropped()
                return self
        self._data[...] = values
        self._sync_transpose()
        self._kept_dropped()
        return self

    def _kept_dropped(self):
        # after the values are written, the compaction dropped again, on both sides: one
        # that another thread made while they were being written holds some old values
        # (_kept_w keeps its arrays only if _kept is still the tuple it started from)
        self._kept = None
        if self._transpose is not None:
            self._transpose[0]._kept = None

    def _sync_transpose(self):
        if self._transpose is None:
            return
        other, perm = self._transpose
        other._values_changed()
        if perm is not None:        # we are the original: refresh the cached transpose
            # in place (mode "clip": "raise" buffers out); perm is in range by construction
            np.take(self._data, perm, out=other._data, mode="clip")
        else:                       # we are a transpose: refresh the original
            _, operm = other._transpose
            other._data[operm] = self._data

    def copy(self):
        return PackedSparse._trusted(_aligned_copy(self._data, self.dtype),
                                     self._indices.copy(), self._indptr.copy(), self._shape)

    def with_values(self, values):
        """A new PackedSparse with this pattern (shared, read-only) and ``values``."""
        values = np.asarray(values)
        if values.shape != (self.nnz,):
            raise ValueError(f"expected {self.nnz} values; received shape {values.shape}")
        check_float_dtype(values.dtype, "values")
        return PackedSparse._trusted(_aligned_copy(values, values.dtype), self._indices,
                                     self._indptr, self._shape)

    # -- conversions ------------------------------------------------------
    def to_scipy(self):
        """A scipy.sparse.csr_array copy."""
        return sps.csr_array((self._data.copy(), self._indices.copy(), self._indptr.copy()),
                             shape=self._shape)

    def toarray(self):
        return self.to_scipy().toarray()

    def astype(self, dtype):
        dtype = _value_dtype(dtype)
        if dtype == self.dtype:
            return self
        return PackedSparse._trusted(_aligned_copy(self._data, dtype), self._indices,
                                     self._indptr, self._shape)

    def __matmul__(self, other):
        from .kernels import spmm
        return spmm(self, other)

    def __repr__(self):
        return (f"<PackedSparse {self._shape[0]}x{self._shape[1]}, nnz={self.nnz} "
                f"(density {self.density:.3g}), {self.dtype}, {self._indices.dtype} indices>")


def pack(W, *, dtype=None):
    """Convert a weight once into the layout the kernels want: a :class:`PackedSparse`.

    ``W`` is a SciPy sparse matrix or array (any format) or a dense 2-D array whose
    zeros are dropped.  Duplicates are summed and column indices sorted, as in
    ``W.tocsr(); W.sum_duplicates()``.  ``dtype`` defaults to W's (float32/float64).

    Parameters
    ----------
    W : scipy.sparse matrix or array, or 2-D ndarray
        The weight; its raw arrays are checked before SciPy converts them.
    dtype : {None, numpy.float32, numpy.float64}
        The values' type (None: W's).

    Returns
    -------
    PackedSparse

    Raises
    ------
    ValueError
        Malformed sparse arrays, a non-float dtype or W not 2-D.

    Examples
    --------
    >>> import numpy as np, wsekern
    >>> P = wsekern.pack(np.array([[0, 2.0], [3.0, 0]], np.float32))
    >>> P.nnz, P.shape
    (2, (2, 2))
    """
    if isinstance(W, PackedSparse):
        return W if dtype is None else W.astype(dtype)
    W = native_weight(W, "W")
    if sps.issparse(W):
        W = check_sparse_operand(W)
        dtype = _value_dtype(W.dtype if dtype is None else dtype)
        check_csr_conversion(W, W.shape[0], "W")
        A = W.tocsr(copy=True)
        # The flags are the caller's word, not a fact: clear them so the sums are done.
        A.has_sorted_indices = False
        A.has_canonical_format = False
        A.sum_duplicates()          # also sorts indices
    else:
        A = np.asarray(W)
        if A.ndim != 2:
            raise ValueError(f"pack expects a 2-D matrix; received an array of shape {A.shape}")
        check_float_dtype(A.dtype, "W")
        dtype = _value_dtype(A.dtype if dtype is None else dtype)
        check_expanded(A, "W")
        data, indices, indptr = dense_to_csr(np.ascontiguousarray(A))
        A = sps.csr_array((data, indices, indptr), shape=A.shape)
    M, K = A.shape
    index_dtype = np.int32 if max(M, K, A.nnz) < 2**31 - 1 else np.int64
    return PackedSparse._trusted(_aligned_copy(A.data, dtype),
                        np.ascontiguousarray(A.indices, dtype=index_dtype),
                        np.ascontiguousarray(A.indptr, dtype=index_dtype), A.shape)
