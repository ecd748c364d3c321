"""spmm's plain route (csr_spmm_plain) gathers X's live rows into one kept buffer of
transparent huge pages (_spmm._live_buffer / _live_release) and multiplies them there.

The buffer: 2 MiB-aligned where the platform has MADV_HUGEPAGE, the same one reused call
after call, a fresh NumPy one while it is taken or when the size is out of its range. The
products: calls one after another that leave the buffer stale (more live rows, then fewer:
the next zero row sits where a live row was; inf/NaN weights on dead rows meet it), fp32
and fp64, int32 and int64 indices, against a float64 SciPy reference (NaN exactly where it
has one) and bit for bit against csr_spmm on live_rows' fresh X_live (the same kernel and
sums); threads calling at once; a declined call (a column out of range) gives the buffer
back."""

import mmap
import threading

import numpy as np
import pytest
import scipy.sparse as sps

from wsekern import _spmm, kernels

HUGE = getattr(mmap, "MADV_HUGEPAGE", None) is not None


def _addr(a):
    return a.__array_interface__["data"][0]


def _reset():                 # no buffer made yet: the next call makes it
    _spmm._live_kept[0] = None
    _spmm._live_made[0] = False


def _weight(rng, M, K, dtype, idx, dead=None):
    W = sps.random(M, K, density=0.1, format="csr", dtype=dtype, random_state=rng)
    W.indices = W.indices.astype(idx)
    W.indptr = W.indptr.astype(idx)
    if dead is not None and len(dead):       # inf/NaN weights on dead rows of X
        rows = np.arange(0, M, 7)
        W = W.tolil()
        for j, i in enumerate(rows):
            W[i, dead[j % len(dead)]] = (np.inf, -np.inf, np.nan)[j % 3]
        W = W.tocsr()
        W.indices = W.indices.astype(idx)
        W.indptr = W.indptr.astype(idx)
    return W


def _dead_x(rng, K, N, dtype, frac):
    X = rng.standard_normal((K, N)).astype(dtype)
    dead = np.flatnonzero(rng.random(K) < frac)
    X[dead] = 0
    return X, dead


def _check(W, X, got):
    ref = W.astype(np.float64) @ X.astype(np.float64)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        fin = np.isfinite(ref)
        tol = 1e-4 if X.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got[fin], ref[fin], rtol=tol, atol=tol)
        np.testing.assert_array_equal(got[~fin], ref[~fin])


def _same_as_fresh(W, X, got):
    # the kernel on live_rows' fresh X_live with the same remap: the same sums, bit for bit
    alive = np.empty(X.shape[0], np.uint8)
    n_alive = _spmm.scan_alive(X, alive, X.shape[1])[0]
    X_live, remap = _spmm.live_rows(X, alive, n_alive, W.indices.dtype)
    out = np.empty((W.shape[0], X.shape[1]), X.dtype)
    _spmm.csr_spmm(W.data, W.indices, W.indptr, X_live, out, remap, 1, 0)
    np.testing.assert_array_equal(got.view(np.uint8), out.view(np.uint8))


@pytest.mark.skipif(not HUGE, reason="no MADV_HUGEPAGE on this platform")
def test_live_buffer_kept_aligned_and_reused():
    _reset()
    lo, hi = _spmm._LIVE_HUGE_MIN, _spmm._LIVE_KEEP_BYTES
    a, raw = _spmm._live_buffer(lo + 192)
    assert raw is not None and a.shape == (lo + 192,) and a.dtype == np.uint8
    assert _addr(a) % (2 << 20) == 0 and raw.shape[0] == hi
    b, raw_b = _spmm._live_buffer(hi)         # taken: NumPy's, no second one made
    assert raw_b is None and _addr(b) % 64 == 0 and b.shape == (hi,)
    _spmm._live_release(raw_b)                # None: nothing given back
    assert _spmm._live_kept[0] is None
    _spmm._live_release(raw)
    c, raw_c = _spmm._live_buffer(hi)
    assert raw_c is raw and _addr(c) == _addr(a)
    _spmm._live_release(raw_c)
    for n in (1, 64, lo - 1, hi + 1):         # out of range: NumPy's, the kept one kept
        d, raw_d = _spmm._live_buffer(n)
        assert raw_d is None and d.shape == (n,) and _addr(d) % 64 == 0
        assert _spmm._live_kept[0] is raw


def _mapping(addr):
    # (permissions, {smaps field: value}) of the mapping holding addr, or None
    try:
        lines = open("/proc/self/smaps").read().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):
            if found is not None:
                break
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            if lo <= addr < hi:
                found = (head[1], {})
        elif found is not None and head:
            found[1][head[0].rstrip(":")] = head[1]
    return found


@pytest.mark.skipif(not HUGE, reason="no MADV_HUGEPAGE on this platform")
def test_live_buffer_private_and_thp_eligible():
    # a shared anonymous map would be shmem, which anonymous THP never backs
    _reset()
    a, raw = _spmm._live_buffer(_spmm._LIVE_HUGE_MIN)
    try:
        a[:] = 1
        m = _mapping(_addr(a))
        if m is None:
            pytest.skip("no /proc/self/smaps")
        perms, fields = m
        assert perms.endswith("p"), perms
        try:
            mode = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
        except OSError:
            mode = ""
        if "THPeligible" in fields and ("[always]" in mode or "[madvise]" in mode):
            assert fields["THPeligible"] == "1", fields
    finally:
        _spmm._live_release(raw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("idx", [np.int32, np.int64])
def test_plain_route_stale_buffer(dtype, idx, monkeypatch):
    # column blocks (no X_live) are chosen against L2 and the SIMD path's tiles (the avx2 and
    # baseline paths blocked some of these cases on Zen 4): a 64 MiB L2 keeps every case on X_live
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 64 << 20)
    rng = np.random.default_rng(11)
    _reset()
    # more live rows, then fewer (the zero row lands on a row the last call filled), then a
    # different width; every X_live at least _LIVE_HUGE_MIN bytes, so the kept buffer
    cases = [(4096, 64, 0.55), (4096, 64, 0.75), (2048, 64, 0.6), (4096, 64, 0.6),
             (1000, 128, 0.6)]
    M = 300
    for K, N, frac in cases:
        X, dead = _dead_x(rng, K, N, dtype, frac)
        W = _weight(rng, M, K, dtype, idx, dead)
        assert kernels.spmm_path(W, X) == "csr-skip-rows", (K, N, frac)
        got = kernels.spmm(W, X, n_threads=1)
        _check(W, X, got)
        _same_as_fresh(W, X, got)
        if HUGE:                              # taken and given back by the plain route
            kept = _spmm._live_kept[0]
            assert kept is not None and _addr(kept) % (2 << 20) == 0


def test_threads_at_once():
    rng = np.random.default_rng(12)
    jobs = []
    for t in range(4):
        X, dead = _dead_x(rng, 4096, 64, np.float32, 0.5)
        jobs.append((_weight(rng, 400, 4096, np.float32, np.int32, dead), X))
    results = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(t):
        W, X = jobs[t]
        start.wait()
        results[t] = [kernels.spmm(W, X, n_threads=1) for _ in range(20)]

    threads = [threading.Thread(target=run, args=(t,)) for t in range(len(jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for (W, X), res in zip(jobs, results):
        for got in res:
            _check(W, X, got)
            np.testing.assert_array_equal(got.view(np.uint8), res[0].view(np.uint8))


def test_declined_call_gives_the_buffer_back():
    rng = np.random.default_rng(13)
    X, dead = _dead_x(rng, 4096, 64, np.float32, 0.5)
    W = _weight(rng, 64, 4096, np.float32, np.int32)
    W.indices[W.indptr[5] + 1] = 4096          # one column out of range
    _reset()
    with pytest.raises(ValueError, match="4096"):
        kernels.spmm(W, X, n_threads=1)
    if HUGE:
        assert _spmm._live_kept[0] is not None
