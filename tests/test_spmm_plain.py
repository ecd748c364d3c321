"""_spmm.csr_spmm_plain, the native entry spmm tries first (a plain SciPy CSR W or a
PackedSparse, a C-contiguous X of its dtype, no out, 1 thread): bit for bit the Python
route's result on every SIMD path, and None ("take the Python route") for everything else,
refusals included, so that every message stays the Python route's."""
import os

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import assert_child_says, run_in_child, run_on_simd

from wsekern import _spmm, kernels
from wsekern.sparse import PackedSparse, pack


def plain(W, X, transpose=False, out=None, n_threads=1):
    return _spmm.csr_spmm_plain(W, X, transpose, out, n_threads, kernels._GLOBALS)


# Runs in a child per forced SIMD path: every case must be taken by the plain entry and give
# exactly the Python route's array (which takes "csr"), and match a float64 reference
# summed over the stored weights only (NaN/inf propagate as in SciPy).
_SAME_CODE = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels
from wsekern.sparse import PackedSparse
from wsekern.sysinfo import get_config

def ref(W, X):
    W = W.tocsr()
    out = np.zeros((W.shape[0], X.shape[1]))
    for i in range(W.shape[0]):
        s, e = W.indptr[i], W.indptr[i + 1]
        if e > s:
            out[i] = (W.data[s:e, None].astype(np.float64)
                      * X[W.indices[s:e]].astype(np.float64)).sum(0)
    return out

np.seterr(invalid="ignore", over="ignore")
rng = np.random.default_rng(7)
n = 0
for dt in (np.float32, np.float64):
    for idx in (np.int32, np.int64):
        for M, K, N, density, form in ((40, 30, 8, 0.1, "sorted"), (64, 50, 33, 0.6, "sorted"),
                                       (1, 1, 1, 1.0, "sorted"), (200, 100, 5, 0.05, "dup"),
                                       (50, 60, 70, 0.3, "unsorted"),
                                       (30, 20, 256, 0.9, "special"), (128, 128, 64, 0.2, "cls")):
            W = sps.random(M, K, density=density, format="csr", dtype=dt, random_state=n)
            data, indices, indptr = W.data.copy(), W.indices.astype(idx), W.indptr.astype(idx)
            if form == "dup":            # every stored weight twice, the copies first
                rows = np.repeat(np.arange(M), np.diff(W.indptr))
                order = np.argsort(np.concatenate([rows, rows]), kind="stable")
                data = np.concatenate([data, data * 0.5])[order]
                indices = np.concatenate([indices, indices])[order].astype(idx)
                indptr = (2 * W.indptr).astype(idx)
            if form == "unsorted":
                for i in range(M):
                    s, e = indptr[i], indptr[i + 1]
                    p = rng.permutation(e - s)
                    data[s:e], indices[s:e] = data[s:e][p], indices[s:e][p]
            X = rng.standard_normal((K, N)).astype(dt)
            if form == "special":        # NaN/inf in X (no row left all zero) and in W
                X[rng.random(X.shape) < 0.05] = np.nan
                X[rng.random(X.shape) < 0.05] = np.inf
                X[rng.random(X.shape) < 0.05] = -np.inf
                data[::7] = np.nan
                data[1::11] = np.inf
            cls = sps.csr_array if form == "cls" else sps.csr_matrix
            W = cls((data, indices, indptr), shape=(M, K))
            W.indices, W.indptr = indices, indptr      # SciPy narrows int64 that fit
            assert W.indices.dtype == idx and W.indptr.dtype == idx
            got = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
            want, path = kernels._spmm_impl(W, X, False, None, 1)
            assert got is not None, (dt, idx, M, K, N, form, path)
            assert path == "csr", path
            assert got.dtype == want.dtype == dt and got.shape == want.shape == (M, N)
            assert got.flags.c_contiguous
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (dt, idx, form)
            tol = 1e-4 if dt == np.float32 else 1e-12
            r = ref(W, X)
            assert np.array_equal(np.isnan(got), np.isnan(r)), form
            scale = max(1, np.abs(r[np.isfinite(r)]).max(initial=0))
            assert np.allclose(got, r, rtol=tol, atol=tol * scale, equal_nan=True), form
            whole = kernels.spmm(W, X, n_threads=1)
            assert np.array_equal(whole.view(np.uint8), got.view(np.uint8))
            n += 1
            # The same weights packed (duplicates summed, sorted; this index type): W and,
            # once its transpose is cached, W.T through the entry, as the Python route.
            S = W.copy()
            S.sum_duplicates()
            P = PackedSparse(S.data, S.indices.astype(idx), S.indptr.astype(idx), (M, K))
            assert P.indices.dtype == idx
            Xt = rng.standard_normal((M, N)).astype(dt)
            if form == "special":        # NaN in X rules densifying out, as above
                Xt[rng.random(Xt.shape) < 0.05] = np.nan
            assert _spmm.csr_spmm_plain(P, Xt, True, None, 1, kernels._GLOBALS) is None
            P.transpose()
            for A, B, tr in ((P, X, False), (P, Xt, True)):
                got = _spmm.csr_spmm_plain(A, B, tr, None, 1, kernels._GLOBALS)
                want, path = kernels._spmm_impl(A, B, tr, None, 1)
                assert got is not None and path == "csr", (dt, idx, M, K, N, form, tr, path)
                assert got.dtype == want.dtype == dt and got.shape == want.shape
                assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (dt, form, tr)
                r = ref(S.T if tr else S, B)
                assert np.array_equal(np.isnan(got), np.isnan(r)), (form, tr)
                scale = max(1, np.abs(r[np.isfinite(r)]).max(initial=0))
                assert np.allclose(got, r, rtol=tol, atol=tol * scale, equal_nan=True), form
                whole = kernels.spmm(A, B, transpose=tr, n_threads=1)
                assert np.array_equal(whole.view(np.uint8), got.view(np.uint8))
                n += 1
print("ok", n, get_config()["simd"])
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_plain_entry_is_the_python_route_bit_for_bit(simd):
    assert_child_says(run_on_simd(simd, _SAME_CODE, timeout=300), ["ok", "84", simd])


def test_plain_entry_uses_column_blocks_like_the_python_route(monkeypatch):
    """A tiny L2 makes the column block narrower than X: the same blocks, the same bits."""
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 4096)
    W = sps.random(300, 200, density=0.3, format="csr", dtype=np.float64, random_state=3)
    X = np.random.default_rng(3).standard_normal((200, 100))
    assert 0 < kernels.column_block(200, 100, 8, reuse=W.nnz / 200) < 100
    got = plain(W, X)
    assert got is not None
    assert np.array_equal(got, kernels._spmm_impl(W, X, False, None, 1)[0])
    np.testing.assert_allclose(got, W.toarray() @ X, rtol=1e-12, atol=1e-12)


def _w(M=20, K=16, dt=np.float64, density=0.4, seed=0):
    return sps.random(M, K, density=density, format="csr", dtype=dt, random_state=seed)


def _x(K=16, N=8, dt=np.float64, seed=1):
    return np.random.default_rng(seed).standard_normal((K, N)).astype(dt)


class _CSR(sps.csr_matrix):
    pass


class _Packed(PackedSparse):
    pass


def _declined_cases():
    W, X = _w(), _x()
    sparse_x = np.zeros((16, 64))
    sparse_x[:, 0] = 1                # every row alive, 1/64 of X nonzero (counted whole)
    sparse_wide = np.zeros((16, 4096))
    sparse_wide[:, 5] = 1             # every row alive, X sampled below X_SAMPLE_DENSE
    mixed = W.copy()
    mixed.indices, mixed.indptr = W.indices.astype(np.int32), W.indptr.astype(np.int64)
    strided_data = sps.csr_matrix(W.shape)
    strided_data.data = np.repeat(W.data, 2)[::2]
    strided_data.indices, strided_data.indptr = W.indices, W.indptr
    bad_start = W.copy()
    bad_start.indptr = W.indptr.copy()
    bad_start.indptr[0] = 1
    decreasing = W.copy()
    decreasing.indptr = W.indptr.copy()
    decreasing.indptr[3] = decreasing.indptr[4] + 1
    short_end = W.copy()
    short_end.indptr = W.indptr.copy()
    short_end.indptr[-1] -= 1
    too_big, negative = W.copy(), W.copy()
    too_big.indices = W.indices.copy()
    too_big.indices[-1] = 16
    negative.indices = W.indices.copy()
    negative.indices[0] = -1
    P, packed_t = pack(W), pack(W)
    packed_t.transpose()
    # X half dead, N = 16: the Python route takes the column path of a packed W (deciding
    # it needs the transpose, not built yet)
    csc_w = pack(sps.random(64, 96, density=0.2, format="csr", random_state=0))
    csc_x = _x(96, 16)
    csc_x[::2] = 0
    return {
        "out": lambda: plain(W, X, out=np.empty((20, 8))),
        "transpose": lambda: plain(W.T.tocsr(), X, transpose=True),
        "n_threads 0": lambda: plain(W, X, n_threads=0),
        "n_threads 1.0": lambda: plain(W, X, n_threads=1.0),
        "n_threads np.int64(1)": lambda: plain(W, X, n_threads=np.int64(1)),
        "n_threads True": lambda: plain(W, X, n_threads=True),
        # (a C-contiguous 1-D X is taken since s19: tests/test_spmm_narrow.py)
        "X 1-D, not contiguous": lambda: plain(W, np.repeat(X[:, 0], 2)[::2]),
        "X Fortran": lambda: plain(W, np.asfortranarray(X)),
        "X strided": lambda: plain(W, _x(N=16)[:, ::2]),
        "X list": lambda: plain(W, X.tolist()),
        "X int": lambda: plain(W, X.astype(np.int64)),
        "X float32, W float64": lambda: plain(W, X.astype(np.float32)),
        "X big-endian": lambda: plain(W, X.astype(">f8")),
        "X broadcast": lambda: plain(W, np.broadcast_to(X[:1], (16, 8))),
        "X subclass": lambda: plain(W, np.ma.masked_array(X)),
        "W csc": lambda: plain(W.tocsc(), X),
        "W coo": lambda: plain(W.tocoo(), X),
        "W csr subclass": lambda: plain(_CSR(W), X),
        "W packed, transpose not cached": lambda: plain(pack(W), _x(K=20), transpose=True),
        "W packed, transpose 1": lambda: plain(packed_t, _x(K=20), transpose=1),
        "W packed, out": lambda: plain(pack(W), X, out=np.empty((20, 8))),
        "W packed float32, X float64": lambda: plain(pack(W, dtype=np.float32), X),
        "W packed subclass": lambda: plain(_Packed._trusted(P.data, P.indices, P.indptr,
                                                            P.shape), X),
        "W packed, X sparse": lambda: plain(P, sparse_x),
        "W packed, densified": lambda: plain(pack(_w(64, 64, density=0.9)), _x(64, 64)),
        "W packed, csc candidate, transpose not cached": lambda: plain(csc_w, csc_x),
        "W dense": lambda: plain(W.toarray(), X),
        "W int32/int64 indices": lambda: plain(mixed, X),
        "W data strided": lambda: plain(strided_data, X),
        "M 0": lambda: plain(sps.csr_matrix((0, 16)), X),
        "K 0": lambda: plain(sps.csr_matrix((20, 0)), np.zeros((0, 8))),
        "N 0": lambda: plain(W, np.zeros((16, 0))),
        "shape mismatch": lambda: plain(W, _x(K=15)),
        "indptr[0] != 0": lambda: plain(bad_start, X),
        "indptr decreasing": lambda: plain(decreasing, X),
        "indptr[-1] != nnz": lambda: plain(short_end, X),
        "index == K": lambda: plain(too_big, X),
        "index -1": lambda: plain(negative, X),
        "X sparse, counted": lambda: plain(W, sparse_x),
        "X sparse, sampled": lambda: plain(W, sparse_wide),
        "densified": lambda: plain(_w(64, 64, density=0.9), _x(64, 64)),
    }


def test_plain_entry_declines():
    """Everything but its case returns None (the Python route then runs); run in a child:
    the malformed structures must not be read past their ends."""
    names = list(_declined_cases())
    code = ("from test_spmm_plain import _declined_cases\n"
            "bad = [n for n, f in _declined_cases().items() if f() is not None]\n"
            "print('taken:', bad, len(_declined_cases()))\n")
    proc = run_in_child(code, env=dict(os.environ, PYTHONPATH=_root()))
    assert proc.returncode == 0 and proc.stdout.strip() == f"taken: [] {len(names)}", (
        proc.stdout[-2000:] + proc.stderr[-2000:])


def test_plain_entry_declines_beyond_the_memory_budget(monkeypatch):
    from wsekern import _budget
    W, X = _w(), _x()
    assert plain(W, X) is not None
    monkeypatch.setattr(_budget, "memory_budget", lambda: 20 * 8 * 8 - 1)
    assert plain(W, X) is None
    with pytest.raises(MemoryError, match="output of shape"):
        kernels.spmm(W, X, n_threads=1)


def test_plain_entry_reads_the_dispatcher_constants(monkeypatch):
    """A replaced cost table or threshold reaches the plain entry (tests force paths so)."""
    W, X = _w(), _x()
    assert plain(W, X) is not None
    monkeypatch.setattr(kernels, "SPARSE_X_DENSITY", 2.0)     # X always sparse enough
    assert plain(W, X) is None


_REFUSALS = """
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels
from test_spmm_plain import _declined_cases, _w, _x
from wsekern.sparse import pack
W, X = _w(), _x()
def bad(**kw):
    V = W.copy()
    for k, v in kw.items():
        setattr(V, k, v)
    return V
ip = W.indptr.copy(); ip[0] = 1
dec = W.indptr.copy(); dec[3] = dec[4] + 1
short = W.indptr.copy(); short[-1] -= 1
hi = W.indices.copy(); hi[-1] = 16
neg = W.indices.copy(); neg[0] = -1
cases = [(bad(indptr=ip), X), (bad(indptr=dec), X), (bad(indptr=short), X),
         (bad(indices=hi), X), (bad(indices=neg), X), (W, _x(K=15)), (W, X.astype(np.int64)),
         (W, np.zeros((16, 2, 2))), (W.tocsc(), X.astype(np.float16)),
         (pack(W), _x(K=15)), (pack(W), X.astype(np.int64)), (pack(W), np.zeros((16, 2, 2)))]
def outcome(W, X, n_threads):
    try:
        r = kernels.spmm(W, X, n_threads=n_threads)
    except Exception as e:
        return type(e).__name__ + ": " + str(e)
    return "accepted " + str(r.shape)
both = []
for n_threads in (1, None, np.int64(1), True, 0):
    plain_on = [outcome(W, X, n_threads) for W, X in cases]
    real = _spmm.csr_spmm_plain
    _spmm.csr_spmm_plain = lambda *a: None
    try:
        plain_off = [outcome(W, X, n_threads) for W, X in cases]
    finally:
        _spmm.csr_spmm_plain = real
    assert plain_on == plain_off, [(a, b) for a, b in zip(plain_on, plain_off) if a != b]
    both += plain_on
assert sum(o.startswith("accepted") for o in both) == 0, both
print("refused", len(both))
"""


def test_refusals_are_the_python_routes():
    """Each malformed call raises the same exception and message with the plain entry in
    place and with it disabled (so through the Python route only), for each n_threads."""
    proc = run_in_child(_REFUSALS, env=dict(os.environ, PYTHONPATH=_root()))
    assert proc.returncode == 0 and proc.stdout.strip() == "refused 60", (
        proc.stdout[-2000:] + proc.stderr[-2000:])


def _root():
    return os.path.dirname(os.path.abspath(__file__))


def test_plain_entry_takes_read_only_operands():
    W, X = _w(dt=np.float32), _x(dt=np.float32)
    for a in (W.data, W.indices, W.indptr, X):
        a.flags.writeable = False
    got = plain(W, X)
    assert got is not None and got.dtype == np.float32 and got.flags.writeable
    assert np.array_equal(got, kernels._spmm_impl(W, X, False, None, 1)[0])
    np.testing.assert_allclose(got, W.toarray().astype(np.float64) @ X, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_threads", [None, -1, 2, 64])
def test_plain_entry_takes_other_thread_counts_only_below_a_threads_work(n_threads,
                                                                      monkeypatch):
    """Below min_work_per_thread the Python route runs on one thread whatever n_threads
    says: the plain entry then takes the call, with the same bits; above it, declines."""
    W, X = _w(dt=np.float32), _x(dt=np.float32)
    assert W.nnz * X.shape[1] < kernels.min_work_per_thread(kernels.cost_table())
    got = plain(W, X, n_threads=n_threads)
    assert got is not None
    assert np.array_equal(got, kernels._spmm_impl(W, X, False, None, n_threads)[0])
    assert np.array_equal(kernels.spmm(W, X, n_threads=n_threads), got)
    monkeypatch.setattr(kernels, "min_work_per_thread", lambda cost=None: W.nnz * 8)
    assert plain(W, X, n_threads=n_threads) is None
    assert plain(W, X, n_threads=1) is not None


def test_plain_entry_takes_c_contiguous_views_with_odd_strides_on_unit_axes():
    """NumPy calls these C-contiguous whatever the stride of a length-1 axis."""
    W1 = sps.random(7, 1, density=1.0, format="csr", random_state=0)
    W5 = sps.random(7, 5, density=0.5, format="csr", random_state=0)
    one_row = np.arange(15.0).reshape(3, 5)[:1, :]                       # strides (40, 8)
    one_col = np.lib.stride_tricks.as_strided(np.arange(1.0, 11.0), (5, 1), (8, 80))
    for W, X in ((W1, one_row), (W5, one_col)):
        assert X.flags.c_contiguous
        got = plain(W, X)
        assert got is not None
        assert np.array_equal(got, kernels._spmm_impl(W, X, False, None, 1)[0])
        np.testing.assert_allclose(got, W.toarray() @ X, rtol=1e-13)
