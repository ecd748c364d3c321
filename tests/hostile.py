"""Hostile inputs for the public entry points, run in a child process by test_fuzz_hostile.py.

Each case is a function that returns normally when wsekern gave the reference answer or
raised the expected exception with a message; anything else raises AssertionError. A
segfault, an abort or a hang kills the child, which the parent reports by case name.
`python hostile.py CASES_FILE` runs the cases listed in CASES_FILE (a pickle of
(name, spec) pairs) under a 4 GB address-space limit and prints one JSON line per case.
"""
import json
import os
import pickle
import re
import resource
import sys

import numpy as np
import scipy.sparse as sps

LIMIT_BYTES = 4 << 30
X_COLS = 3


# -- the rules the reference applies, written independently of wsekern's validator -------
def reference_dense(fmt, raw, shape):
    """The dense matrix the raw arrays describe, or None when they describe none."""
    M, K = shape
    D = np.zeros((M, K))
    if fmt == "coo":
        row, col, data = raw["row"], raw["col"], raw["data"]
        if not (len(row) == len(col) == len(data)):
            return None
        if any(not (0 <= r < M) for r in row) or any(not (0 <= c < K) for c in col):
            return None
        for r, c, v in zip(row, col, data):
            D[r, c] += v
        return D
    if fmt in ("csr", "csc"):
        n_major, n_minor = (M, K) if fmt == "csr" else (K, M)
        indptr, indices, data = raw["indptr"], raw["indices"], raw["data"]
        if (len(indptr) != n_major + 1 or indptr[0] != 0 or indptr[-1] != len(indices)
                or len(data) != len(indices) or any(np.diff(indptr) < 0)
                or any(not (0 <= c < n_minor) for c in indices)):
            return None
        for i in range(n_major):
            for p in range(indptr[i], indptr[i + 1]):
                if fmt == "csr":
                    D[i, indices[p]] += data[p]
                else:
                    D[indices[p], i] += data[p]
        return D
    if fmt == "lil":
        rows, vals = raw["rows"], raw["vals"]
        if len(rows) != M or len(vals) != M:
            return None
        for i, (r, v) in enumerate(zip(rows, vals)):
            if len(r) != len(v) or any(not (0 <= c < K) for c in r):
                return None
            for c, x in zip(r, v):
                D[i, c] += x
        return D
    if fmt == "dia":
        offsets, data = raw["offsets"], raw["data"]
        # wsekern's documented bound: a diagonal lies within M + K of the main one.
        if (data.ndim != 2 or data.shape[0] != len(offsets)
                or len(set(offsets.tolist())) != len(offsets)
                or any(abs(o) > M + K for o in offsets)):
            return None
        for k, d in enumerate(offsets):
            for j in range(min(data.shape[1], K)):
                if 0 <= j - d < M:
                    D[j - d, j] += data[k, j]
        return D
    raise ValueError(fmt)


def hostile_matrix(fmt, raw, shape):
    """A SciPy matrix of format ``fmt`` and ``shape`` whose raw arrays are ``raw``, set
    behind SciPy's back as a careless caller could."""
    if fmt == "coo":
        A = sps.coo_array(shape)
        A.coords = (raw["row"], raw["col"])
        A.data = raw["data"]
    elif fmt in ("csr", "csc"):
        A = (sps.csr_array if fmt == "csr" else sps.csc_array)(shape)
        A.indptr, A.indices, A.data = raw["indptr"], raw["indices"], raw["data"]
    elif fmt == "lil":
        A = sps.lil_array(shape)
        rows = np.empty(len(raw["rows"]), dtype=object)
        vals = np.empty(len(raw["vals"]), dtype=object)
        rows[:] = [list(r) for r in raw["rows"]]
        vals[:] = [list(v) for v in raw["vals"]]
        A.rows, A.data = rows, vals
    elif fmt == "dia":
        A = sps.dia_array(shape)
        A.offsets, A.data = raw["offsets"], raw["data"]
    else:
        raise ValueError(fmt)
    return A


def _expect_error(fn, types=(ValueError, TypeError), match=None):
    try:
        fn()
    except types as exc:
        msg = str(exc)
        assert msg, f"{type(exc).__name__} without a message"
        assert match is None or re.search(match, msg), f"message {msg!r} lacks {match!r}"
        return msg
    raise AssertionError("no exception raised")


def _close(got, expected):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected, rtol=1e-10,
                               atol=1e-10)


def run_raw(spec):
    """One generated case: raw arrays of a format through one entry point."""
    import wsekern
    fmt, raw, shape, entry = spec["fmt"], spec["raw"], spec["shape"], spec["entry"]
    W = hostile_matrix(fmt, raw, shape)
    D = reference_dense(fmt, raw, shape)
    M, K = shape
    X = np.arange(1.0, K * X_COLS + 1).reshape(K, X_COLS)
    XT = np.arange(1.0, M * X_COLS + 1).reshape(M, X_COLS)
    if entry == "spmm":
        call, expected = (lambda: wsekern.spmm(W, X)), (None if D is None else D @ X)
    elif entry == "spmm-T":
        call = lambda: wsekern.spmm(W, XT, transpose=True)      # noqa: E731
        expected = None if D is None else D.T @ XT
    elif entry == "pack":
        call, expected = (lambda: wsekern.pack(W) @ X), (None if D is None else D @ X)
    elif entry == "sddmm":
        A = np.arange(1.0, 2 * M + 1).reshape(M, 2)
        B = np.arange(1.0, 2 * K + 1).reshape(K, 2)
        if D is None:
            return _expect_error(lambda: wsekern.sddmm(A, B, W))
        # Every stored entry of the result holds (A @ B.T) at its place (duplicates of a
        # CSR pattern stay, COO's are summed by SciPy's conversion), at the stored places.
        S = wsekern.sddmm(A, B, W)
        rows = np.repeat(np.arange(M), np.diff(S.indptr))
        _close(S.data, (A @ B.T)[rows, S.indices])
        assert set(zip(rows.tolist(), S.indices.tolist())) == set(
            zip(*(v.tolist() for v in np.nonzero(_pattern(fmt, raw, shape)))))
        return
    elif entry == "wafer":
        wafer = wsekern.Wafer(wsekern.WaferConfig.small(2, 2))
        call, expected = (lambda: wafer.spmm(W, X)[0]), (None if D is None else D @ X)
    else:
        raise ValueError(entry)
    if expected is None:
        _expect_error(call)
    else:
        _close(call(), expected)


def _pattern(fmt, raw, shape):
    """Where the structure stores a value (stored zeros included): sddmm samples there."""
    ones = dict(raw)
    if fmt == "lil":
        ones["vals"] = [[1.0] * len(v) for v in raw["vals"]]
    else:
        ones["data"] = np.ones_like(raw["data"], dtype=np.float64)
    return reference_dense(fmt, ones, shape)


# -- named cases: each reproduces a defect of issue 12 or a neighbour of it -----------------
def case_coo_huge_row_wafer():
    import wsekern
    W = sps.coo_array((np.ones(2), (np.array([0, 1]), np.array([0, 1]))), shape=(4, 4))
    W.coords = (np.array([0, 10**7]), np.array([0, 1]))
    wafer = wsekern.Wafer(wsekern.WaferConfig.small(2, 2))
    _expect_error(lambda: wafer.spmm(W, np.ones((4, 2))), match="row index 10000000")


def case_lil_column_100_pack():
    import wsekern
    W = sps.lil_array((3, 4))
    W[0, 1] = 1.0
    W.rows[0] = [100]
    _expect_error(lambda: wsekern.pack(W), match="column index 100")
    _expect_error(lambda: wsekern.spmm(W, np.ones((4, 2)), transpose=False), match="100")


def case_lil_column_huge_spmm():
    import wsekern
    W = sps.lil_array((3, 4))
    W[0, 1] = 1.0
    W.rows[0] = [10**7]
    for transpose, X in ((False, np.ones((4, 2))), (True, np.ones((3, 2)))):
        _expect_error(lambda: wsekern.spmm(W, X, transpose=transpose), match="10000000")


def case_lil_rows_shorter_than_shape():
    import wsekern
    W = sps.lil_array((3, 4))
    W.rows = W.rows[:2]
    _expect_error(lambda: wsekern.spmm(W, np.ones((4, 2))), match="3 lists")


def case_dia_malformed():
    import wsekern
    for offsets, data, match in (([0, 2**62], np.ones((2, 5)), "far outside"),
                                 ([0], np.ones((2, 5)), "one row per offset"),
                                 ([0, 0], np.ones((2, 5)), "distinct"),
                                 ([0, 1], np.ones(5), "2-D")):
        W = sps.dia_array((4, 5))
        W.offsets, W.data = np.asarray(offsets), data
        for transpose, X in ((False, np.ones((5, 2))), (True, np.ones((4, 2)))):
            _expect_error(lambda: wsekern.spmm(W, X, transpose=transpose), match=match)


def case_dok_bad_keys():
    import wsekern
    W = sps.dok_array((3, 3))
    W[1, 1] = 2.0
    W._dict[(1, 10**7)] = 1.0          # behind SciPy's checks
    _expect_error(lambda: wsekern.spmm(W, np.ones((3, 1))), match="out of range")
    W = sps.dok_array((3, 3))
    W._dict[(1, 2, 3)] = 1.0
    _expect_error(lambda: wsekern.pack(W), match="pairs of integers")


def case_csr_index_out_of_range_every_route():
    """A SciPy CSR's column indices are checked inside the CSR kernel (each row before it is
    multiplied) and by a separate pass before every other route: one bad index in a middle
    row, on each route, blocked and not, 1 and 2 threads, after a good call on the same
    matrix (nothing about it may be remembered). These products are far below the work a
    second thread needs, so the threshold is lowered meanwhile: n_threads=2 then runs 2."""
    from wsekern import _threads
    saved = _threads.PARALLEL_OVERHEAD_SECONDS
    _threads.PARALLEL_OVERHEAD_SECONDS = 0.0
    try:
        if _threads._spmm.openmp_enabled() and _threads.machine_threads() >= 2:
            assert _threads.resolve_threads(2, 40 * 64) == 2, "2 threads not reached"
        _csr_index_out_of_range_every_route()
    finally:
        _threads.PARALLEL_OVERHEAD_SECONDS = saved


def _csr_index_out_of_range_every_route():
    import wsekern
    rng = np.random.default_rng(5)
    K = 64
    X_dead = rng.standard_normal((K, 256))
    X_dead[::2] = 0
    X_sparse = np.zeros((K, 16))
    X_sparse[3, 4] = 1.0
    cases = [(0.1, rng.standard_normal((K, n)), None) for n in (1, 3, 16, 300)]
    cases += [(0.1, X_dead, "csr-skip-rows"), (0.1, X_sparse, "csr-sparse-x"),
              (0.5, rng.standard_normal((K, 256)), "blas-densified"),
              (0.1, np.ones((K, 0)), "empty")]
    for dtype in (np.float32, np.float64):
        for density, X, route in cases:
            W = sps.random(40, K, density=density, format="csr", dtype=dtype, random_state=1)
            if route is not None:
                assert wsekern.spmm_path(W, X) == route, (wsekern.spmm_path(W, X), route)
            good = W.indices.copy()
            for bad in (K, -1, 2**31 - 1):
                for n_threads in (1, 2):
                    W.indices[:] = good
                    expected = W.toarray() @ X
                    _close(wsekern.spmm(W, X, n_threads=n_threads), expected)
                    W.indices[len(good) // 2] = bad
                    _expect_error(lambda: wsekern.spmm(W, X, n_threads=n_threads),
                                  match=f"column index {bad} at position {len(good) // 2}")


def case_bsr_zero_blocksize():
    import wsekern
    W = sps.bsr_array(np.eye(4), blocksize=(2, 2))
    W.data = np.ones((2, 0, 0))
    _expect_error(lambda: wsekern.spmm(W, np.ones((4, 1))), match="R, C >= 1")


def case_packed_constructor():
    import wsekern
    ok = wsekern.PackedSparse(np.array([1.0, 2.0]), np.array([0, 2]), np.array([0, 1, 2]),
                              (2, 3))
    _close(ok @ np.ones((3, 1)), np.array([[1.0], [2.0]]))
    bad = [(np.array([1.0, 2.0]), np.array([0, 10**8]), np.array([0, 1, 2]), (2, 3),
            "column index 100000000"),
           (np.array([1.0, 2.0]), np.array([0, 1]), np.array([0, 3, 2]), (2, 3), "indptr"),
           (np.array([1.0, 2.0]), np.array([2, 1]), np.array([0, 2, 2]), (2, 3), "sorted"),
           (np.array([1.0, 2.0]), np.array([1, 1]), np.array([0, 2, 2]), (2, 3), "unique"),
           (np.array([1.0]), np.array([0, 1]), np.array([0, 1, 2]), (2, 3), "data"),
           (np.array([1, 2]), np.array([0, 1]), np.array([0, 1, 2]), (2, 3), "float32"),
           (np.array([1.0, 2.0]), np.array([0.0, 1.0]), np.array([0, 1, 2]), (2, 3), "integer"),
           (np.array([1.0, 2.0]), np.array([0, 1]), np.array([0, 1, 2]), (2, -3), "non-neg")]
    for data, indices, indptr, shape, match in bad:
        _expect_error(lambda: wsekern.PackedSparse(data, indices, indptr, shape), match=match)
    P = wsekern.pack(np.eye(3))
    try:
        P.indices.flags.writeable = True
    except ValueError:
        pass
    else:
        raise AssertionError("a PackedSparse's indices could be made writeable")


def case_out_aliasing_every_path():
    import wsekern
    rng = np.random.default_rng(1)
    K = 64
    for density in (0.02, 0.3, 0.95):
        W = sps.random_array((K, K), density=density, rng=rng, format="csr")
        for x_density in (0.01, 0.6, 1.0):
            for Wop in (W, W.toarray(), wsekern.pack(W)):
                X = rng.standard_normal((K, K)) * (rng.random((K, K)) < x_density)
                expected = (W.toarray() @ X)
                got = wsekern.spmm(Wop, X, out=X)
                assert got is X
                _close(X, expected)
    Wd = rng.standard_normal((K, K))
    expected = Wd @ Wd
    _close(wsekern.spmm(Wd, Wd, out=Wd), expected)      # out is W itself


def case_thousand_threads():
    import wsekern
    W = sps.random_array((400, 400), density=0.5, rng=np.random.default_rng(2), format="csr")
    X = np.random.default_rng(3).standard_normal((400, 300))
    _close(wsekern.spmm(W, X, n_threads=1000), W.toarray() @ X)
    x = np.random.default_rng(4).standard_normal((2, 16, 12, 12))
    w = np.random.default_rng(5).standard_normal((16, 16, 3, 3))
    assert np.isfinite(wsekern.conv2d(x, w, n_threads=1000)).all()


def case_conv_huge_stride():
    import wsekern
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 0.0], [0.0, 2.0]]]])
    for stride in (3000, 20000, (10**6, 7)):
        y = wsekern.conv2d(x, w, stride=stride)
        _close(y, np.array([[[[x[0, 0, 0, 0] + 2 * x[0, 0, 1, 1]]]]]))
        gx, gw, _ = wsekern.conv2d_backward(np.ones_like(y), x, w, stride=stride)
        _close(gw, np.array([[[[0.0, 1.0], [4.0, 5.0]]]]))
        assert gx.sum() == 3.0


def case_conv_huge_padding():
    """Padding far beyond the windows read: the work follows the output, and an output
    beyond memory is refused with the estimate before anything is allocated."""
    import wsekern
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    w = np.full((1, 1, 1, 1), 2.0)
    y = wsekern.conv2d(x, w, padding=10**6, stride=10**6)    # windows at -1e6, 0 and 1e6
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 2.0 * x[0, 0, 0, 0]
    _close(y, expected)
    gx, gw, _ = wsekern.conv2d_backward(np.ones_like(y), x, w, padding=10**6, stride=10**6)
    assert gx[0, 0, 0, 0] == 2.0 and gx.sum() == 2.0 and gw.ravel()[0] == x[0, 0, 0, 0]
    huge = np.broadcast_to(1.0, (1, 1, 200004, 200004))    # no memory behind it
    for call in (lambda: wsekern.conv2d(x, w, padding=10**5),
                 lambda: wsekern.conv2d_backward(huge, x, w, padding=10**5)):
        _expect_error(call, MemoryError, match=r"GiB.*lower the padding")


def case_mtx_declares_1e8_square(tmpdir):
    from wsekern.cli import main
    path = os.path.join(tmpdir, "big.mtx")
    with open(path, "w") as f:
        f.write("%%MatrixMarket matrix coordinate real general\n100000000 100000000 1\n1 1 1.0\n")
    assert os.path.getsize(path) < 100
    assert main(["simulate", "spmm", "--matrix", path, "--wafer", "small"]) == 2
    assert main(["simulate", "spmm", "--matrix", path, "--n", "1", "--wafer", "small"]) == 2


def case_mtx_malformed_entries(tmpdir):
    from wsekern.cli import main
    for body in ("3 3 2\n1 1 1.0\n9 1 2.0\n", "3 3 2\n1 1 1.0\n", "3 3 1\n1 1\n"):
        path = os.path.join(tmpdir, "bad.mtx")
        with open(path, "w") as f:
            f.write("%%MatrixMarket matrix coordinate real general\n" + body)
        assert main(["simulate", "spmm", "--matrix", path, "--wafer", "small"]) == 2


NAMED = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("case_")}


def run(name, spec, tmpdir):
    if name == "segfault":          # the harness's own test: a case that kills the child
        import ctypes
        ctypes.string_at(0)
    if name == "raw":
        return run_raw(spec)
    fn = NAMED[name]
    return fn(tmpdir) if fn.__code__.co_argcount else fn()


def main(cases_file):
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))
    with open(cases_file, "rb") as f:
        cases = pickle.load(f)
    tmpdir = os.path.dirname(cases_file)
    for i, (name, spec) in enumerate(cases):
        try:
            run(name, spec, tmpdir)
            result = {"i": i, "ok": True}
        except BaseException as exc:        # noqa: BLE001 - reported to the parent
            result = {"i": i, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
