"""Sparse weights: validation of SciPy inputs and the packed layout the kernels use."""
import numpy as np
import scipy.sparse as sps

from . import _spmm

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ALIGN = 64  # bytes: one cache line, one AVX-512 vector


def check_float_dtype(dtype, name):
    """Raise TypeError unless ``dtype`` is float32 or float64."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64; received {dtype}. "
                        f"Convert it first, e.g. {name}.astype(np.float32)")
    return dtype


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


def _check_structure(indptr, indices, n_major, n_minor, what):
    """Validate a compressed (CSR/CSC) structure without trusting SciPy to have done so."""
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    if indptr.ndim != 1 or indices.ndim != 1:
        raise ValueError(f"{what}: indptr and indices must be 1-D; received "
                         f"indptr.ndim={indptr.ndim}, indices.ndim={indices.ndim}")
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise TypeError(f"{what}: indptr and indices must be integer arrays; received "
                        f"{indptr.dtype} and {indices.dtype}")
    if len(indptr) != n_major + 1:
        raise ValueError(f"{what}: indptr must have {n_major + 1} entries for shape with "
                         f"{n_major} major rows/columns; received {len(indptr)}")
    index_dtype = np.int64 if (indptr.dtype.itemsize > 4 or indices.dtype.itemsize > 4
                               or indptr.dtype.kind == "u" or indices.dtype.kind == "u") else np.int32
    ip = np.ascontiguousarray(indptr, dtype=index_dtype)
    ix = np.ascontiguousarray(indices, dtype=index_dtype)
    msg = _spmm.check_csr(ip, ix, n_minor)
    if msg is not None:
        raise ValueError(f"{what}: {msg}")
    return ip, ix


def validate_scipy(W, name="W"):
    """Check the raw arrays of a SciPy sparse matrix before any SciPy conversion touches them.

    SciPy's own conversions trust their input; a malformed matrix can crash them.
    """
    check_float_dtype(W.dtype, name)
    if len(W.shape) != 2:
        raise ValueError(f"{name} must be 2-D; received shape {W.shape}")
    M, K = W.shape
    fmt = W.format
    what = f"{name} ({fmt.upper()}, shape {W.shape})"
    if fmt == "csr":
        _check_structure(W.indptr, W.indices, M, K, what)
        _check_len(W.data, len(W.indices), what)
    elif fmt == "csc":
        _check_structure(W.indptr, W.indices, K, M, what)
        _check_len(W.data, len(W.indices), what)
    elif fmt == "bsr":
        R, C = W.blocksize
        if M % R or K % C:
            raise ValueError(f"{what}: blocksize {W.blocksize} does not divide the shape")
        _check_structure(W.indptr, W.indices, M // R, K // C, what)
        if W.data.shape != (len(W.indices), R, C):
            raise ValueError(f"{what}: data must have shape {(len(W.indices), R, C)}; "
                             f"received {W.data.shape}")
    elif fmt == "coo":
        row, col = np.asarray(W.row), np.asarray(W.col)
        _check_len(W.data, len(row), what)
        _check_len(col, len(row), what)
        for arr, n, axis in ((row, M, "row"), (col, K, "column")):
            if len(arr) and (arr.min() < 0 or arr.max() >= n):
                bad = arr[(arr < 0) | (arr >= n)][0]
                raise ValueError(f"{what}: {axis} index {bad} is out of range for {n} "
                                 f"{axis}s (valid: 0 to {n - 1})")
    # DIA, LIL and DOK are built by SciPy's Python code and convert safely.


def _check_len(data, n, what):
    if len(data) != n:
        raise ValueError(f"{what}: data has {len(data)} entries but the structure has {n}")


def csr_parts(W, dtype, transpose=False, name="W"):
    """(data, indices, indptr, shape) of W (or W.T) in CSR, validated, with ``dtype`` values.

    Duplicates stay (the kernels sum them, as SciPy does); order within a row is kept.
    """
    if isinstance(W, PackedSparse):
        P = W.T if transpose else W
        data = P.data if P.data.dtype == dtype else P.data.astype(dtype)
        return data, P.indices, P.indptr, P.shape
    validate_scipy(W, name)
    A = W.T if transpose else W
    if A.format != "csr":
        A = A.tocsr()
    indptr, indices = _check_structure(A.indptr, A.indices, A.shape[0], A.shape[1],
                                       f"{name} (shape {A.shape})")
    data = np.ascontiguousarray(A.data, dtype=dtype)
    return data, indices, indptr, A.shape


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


class PackedSparse:
    """A sparse weight laid out once for the wsekern kernels.

    CSR with sorted, unique column indices, the narrowest index type that fits
    (int32 unless the matrix needs int64), values on a 64-byte boundary, and
    the transpose built lazily and cached (layers multiply by W and W.T).  The
    pattern is fixed; the values can change in place with :meth:`set_values`
    (pruned weights keep their pattern while training).  Explicitly stored
    zeros stay in the pattern and are multiplied, exactly as in SciPy.

    Create one with :func:`wsekern.pack`.
    """

    def __init__(self, data, indices, indptr, shape):
        self._data = data
        self._indices = indices
        self._indptr = indptr
        self._shape = (int(shape[0]), int(shape[1]))
        self._transpose = None   # (PackedSparse, permutation into our data)
        self._finite = None
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
        """The stored values, read-only: change them with :meth:`set_values`."""
        v = self._data.view()
        v.flags.writeable = False
        return v

    @property
    def indices(self):
        return self._indices

    @property
    def indptr(self):
        return self._indptr

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
            order = np.arange(self.nnz, dtype=np.int64)
            T = sps.csr_array((order, self._indices, self._indptr), shape=self._shape).T.tocsr()
            T.sort_indices()
            perm = np.ascontiguousarray(T.data, dtype=np.int64)
            idx_dtype = self._indices.dtype
            packed_T = PackedSparse(_aligned_copy(self._data[perm], self.dtype),
                                    np.ascontiguousarray(T.indices, dtype=idx_dtype),
                                    np.ascontiguousarray(T.indptr, dtype=idx_dtype), (K, M))
            packed_T._transpose = (self, None)
            self._transpose = (packed_T, perm)
        return self._transpose[0]

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
        self._data[...] = values
        self._finite = None
        self._sync_transpose()
        return self

    def _sync_transpose(self):
        if self._transpose is None:
            return
        other, perm = self._transpose
        other._finite = None
        if perm is not None:        # we are the original: refresh the cached transpose
            other._data[...] = self._data[perm]
        else:                       # we are a transpose: refresh the original
            _, operm = other._transpose
            other._data[operm] = self._data

    def copy(self):
        return PackedSparse(_aligned_copy(self._data, self.dtype), self._indices.copy(),
                            self._indptr.copy(), self._shape)

    def with_values(self, values):
        """A new PackedSparse with this pattern (shared, read-only) and ``values``."""
        values = np.asarray(values)
        if values.shape != (self.nnz,):
            raise ValueError(f"expected {self.nnz} values; received shape {values.shape}")
        out = PackedSparse(_aligned_copy(values, values.dtype), self._indices, self._indptr,
                           self._shape)
        return out

    # -- conversions ------------------------------------------------------
    def to_scipy(self):
        """A scipy.sparse.csr_array copy."""
        return sps.csr_array((self._data.copy(), self._indices.copy(), self._indptr.copy()),
                             shape=self._shape)

    def toarray(self):
        return self.to_scipy().toarray()

    def astype(self, dtype):
        dtype = check_float_dtype(dtype, "dtype")
        if dtype == self.dtype:
            return self
        return PackedSparse(_aligned_copy(self._data, dtype), self._indices, self._indptr,
                            self._shape)

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
    """
    if isinstance(W, PackedSparse):
        return W if dtype is None else W.astype(dtype)
    if sps.issparse(W):
        validate_scipy(W)
        dtype = check_float_dtype(W.dtype if dtype is None else dtype, "dtype")
        A = W.tocsr(copy=True)
        A.sum_duplicates()          # also sorts indices
    else:
        A = np.asarray(W)
        if A.ndim != 2:
            raise ValueError(f"pack expects a 2-D matrix; received an array of shape {A.shape}")
        check_float_dtype(A.dtype, "W")
        dtype = check_float_dtype(A.dtype if dtype is None else dtype, "dtype")
        data, indices, indptr = dense_to_csr(np.ascontiguousarray(A))
        A = sps.csr_array((data, indices, indptr), shape=A.shape)
    M, K = A.shape
    index_dtype = np.int32 if max(M, K, A.nnz) < 2**31 - 1 else np.int64
    return PackedSparse(_aligned_copy(A.data, dtype),
                        np.ascontiguousarray(A.indices, dtype=index_dtype),
                        np.ascontiguousarray(A.indptr, dtype=index_dtype), A.shape)
