"""Helpers of the livebits tests' child scripts (test_spmm_livebits*.py), imported there: X
at a byte offset from a 64-byte line, X with half its rows dead, the route before the
livebits kernels (X's live rows copied out, the rows kernels on them with the remap), and
the check that a column index out of range is refused by name."""
import numpy as np

from wsekern import _spmm


def at(X, off):
    """A copy of X starting ``off`` bytes past a 64-byte boundary."""
    raw = np.empty(X.nbytes + 128, np.uint8)
    s = -raw.ctypes.data % 64 + off
    Y = raw[s:s + X.nbytes].view(X.dtype).reshape(X.shape)
    Y[...] = X
    assert Y.ctypes.data % 64 == off and Y.flags.c_contiguous
    return Y


def x_dead(K, N, seed, nan_live=False, dead=0.5):
    """float32 (K, N), about ``dead`` of its rows dead (row 0 live), some of them -0.0;
    with ``nan_live`` a NaN in a live row."""
    r = np.random.default_rng(seed)
    X = r.standard_normal((K, N)).astype(np.float32)
    rows = r.random(K) < dead
    rows[0] = False
    X[rows] = 0
    X[np.flatnonzero(rows)[::3]] = -0.0
    if nan_live:
        X[np.flatnonzero(~rows)[1], 9] = np.nan
    return X


def before(data, indices, indptr, X, n_block=0):
    """The route before: X's live rows copied out (live_rows), csr_spmm on them with the
    remap, in column blocks of ``n_block`` (0: none)."""
    alive = X.any(axis=1).astype(np.uint8)
    X_live, remap = _spmm.live_rows(X, alive, int(alive.sum()), np.int32)
    out = np.full((len(indptr) - 1, X.shape[1]), 7, np.float32)
    _spmm.csr_spmm(data, indices, indptr, X_live, out, remap, 1, n_block)
    return out


def refused(call, bad):
    """1 when ``call()`` raises a ValueError naming the column index ``bad``; an
    AssertionError when it names another or returns."""
    try:
        call()
    except ValueError as e:
        assert str(bad) in str(e), str(e)
        return 1
    raise AssertionError("an index out of range was not refused")
