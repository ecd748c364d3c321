"""The CSR kernel's scratch kept between calls (kernels._scratch): its copy of a block of X
and, on the dead-rows path, W's kept nonzeros are carved from one buffer per Python thread
instead of fresh arrays. Results must not depend on what the buffer held before, on the
order of shapes and dtypes (it grows, and is reused by smaller calls), on other threads
calling at the same time, or on the cap. Every SIMD path this CPU runs, each in a child
process (the path is chosen at import); a bad buffer is refused, not written through."""
import os

import pytest
from conftest import assert_refused_in_child, run_in_child

import wsekern

_CHILD = """
import threading
import numpy as np, scipy.sparse as sps
import wsekern
from wsekern import kernels
kernels.l2_bytes = lambda: 64 << 10      # column blocks even at these small shapes
rng = np.random.default_rng(11)


def case(M, K, N, dt, it, dead, poison_w):
    W = sps.random(M, K, density=0.12, format="csr", dtype=dt, random_state=M + N)
    W.indices = W.indices.astype(it); W.indptr = W.indptr.astype(it)
    if poison_w:                            # inf/NaN weights: kept, meet the zero row
        W.data[::29] = np.nan
        W.data[3::31] = np.inf
    X = rng.standard_normal((K, N)).astype(dt)
    if dead:
        X[rng.permutation(K)[:K // 2]] = 0
    return W, X


def check(W, X, route):
    assert kernels.spmm_path(W, X) == route, (kernels.spmm_path(W, X), route)
    assert kernels.column_block(K_of(W), X.shape[1], X.itemsize, reuse=W.nnz / K_of(W)) > 0
    with np.errstate(invalid="ignore"):
        ref = W.astype(np.float64) @ X.astype(np.float64)
    got = wsekern.spmm(W, X, n_threads=1)
    assert got.dtype == X.dtype
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    tol = 1e-4 if X.dtype == np.float32 else 1e-12
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=tol, atol=tol)
    return got


def K_of(W):
    return W.shape[1]


def dirty():                                # what the buffer holds must not matter
    buf = getattr(kernels._scratch_local, "buf", None)
    if buf is not None:
        buf[...] = 0xFF                     # NaN in both float widths, -1 in the indices


checked = 0
# Shapes up and down (the buffer grows, then serves smaller calls), both dtypes and index
# types through the same buffer, dense X (block copy) and half-dead X (compacted W too).
shapes = [(150, 400, 300), (300, 900, 520), (140, 300, 260), (300, 900, 520)]
for M, K, N in shapes:
    for dt in (np.float32, np.float64):
        for it in (np.int32, np.int64):
            for dead, route in ((False, "csr"), (True, "csr-skip-rows")):
                for poison_w in (False, True):
                    W, X = case(M, K, N, dt, it, dead, poison_w)
                    first = check(W, X, route)
                    dirty()
                    again = wsekern.spmm(W, X, n_threads=1)
                    np.testing.assert_array_equal(again, first)   # same kernel, same bits
                    checked += 1
buf = kernels._scratch_local.buf
assert buf is not None and buf.ctypes.data % 64 == 0
W, X = case(140, 300, 260, np.float32, np.int32, True, False)
check(W, X, "csr-skip-rows")
assert kernels._scratch_local.buf is buf    # a smaller call reuses it

# Threads at once: each its own buffer, each result as computed alone.
jobs = [case(200 + 10 * j, 500, 300 + 8 * j, (np.float32, np.float64)[j % 2], np.int32,
             j % 3 != 0, False) for j in range(4)]
alone = [wsekern.spmm(W, X, n_threads=1) for W, X in jobs]
bad = []


def run(j):
    W, X = jobs[j]
    for _ in range(15):
        if not np.array_equal(wsekern.spmm(W, X, n_threads=1), alone[j], equal_nan=True):
            bad.append(j)


threads = [threading.Thread(target=run, args=(j,)) for j in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not bad, bad

# Over the cap: no buffer kept (in a thread of its own), the kernel allocates; same answer.
kernels.SCRATCH_CAP_BYTES = 0
seen = []


def capped():
    W, X = jobs[1]
    seen.append(np.array_equal(wsekern.spmm(W, X, n_threads=1), alone[1], equal_nan=True))
    seen.append(getattr(kernels._scratch_local, "buf", None) is None)


t = threading.Thread(target=capped)
t.start(); t.join()
assert seen == [True, True], seen
print(wsekern.get_config()["simd"], checked)
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_kept_scratch_gives_the_reference_on_every_path(simd):
    if simd not in wsekern.sysinfo.simd_available():
        pytest.skip(f"this CPU does not run the {simd} path")
    env = dict(os.environ, WSEKERN_SIMD=simd)
    env.pop("WSEKERN_COSTS", None)
    res = run_in_child(_CHILD, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert res.stdout.split() == [simd, "64"]


def test_unusable_scratch_is_refused():
    assert_refused_in_child("""
        import numpy as np, scipy.sparse as sps
        from wsekern import _spmm
        W = sps.random(64, 200, density=0.2, format="csr", dtype=np.float32, random_state=1)
        X = np.ones((200, 300), np.float32)
        out = np.empty((64, 300), np.float32)
        raw = _spmm._empty_aligned((1 << 20,), np.uint8)
        bad = [raw[:16],                               # too small
               raw[1:1 + (1 << 19)],                   # not 64-byte aligned
               raw.view(np.float32),                   # not bytes
               np.frombuffer(bytes(1 << 20), np.uint8)]   # read-only
        cases = [lambda b=b: _spmm.csr_spmm(W.data, W.indices, W.indptr, X, out, None, 1, 32,
                                            False, lambda n: b) for b in bad]
    """, 4, needles=("scratch",))
