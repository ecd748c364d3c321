"""The rows kernels' block mode (src/wsk_simd.h, wsk_spmm_block_mode; _spmm._BLOCK_MODE): on
Zen 5 the baseline and AVX2 clones run a column block of one 8x1 tile with the block's pitch
a constant, four nonzeros an iteration, no prefetch while the block is in L2 (256 KiB or
less) and 16 nonzeros ahead past it. Mode 1 must give mode 0's bits (the same sums in the
same order) on every path, whatever the CPU: rows of 0 to 44 nonzeros (either side of the
four-a-step loop and of the prefetch distance), unsorted and duplicate indices, NaN and inf
in W and X, int32 and int64 indices, a block in L2 and one past it, X off its vector line,
and N not a multiple of the block; against a float64 reference too, and on the x86-64
baseline (SSE2: no FMA) against the same sums done in order by NumPy (elsewhere, e.g.
aarch64, the compiler may fuse the multiply-add, as it is allowed to). Each path in a
child process (the path is chosen at import)."""

import platform

import pytest
from conftest import assert_refused_in_child, run_in_child, run_on_simd

_CHILD = """
import platform
import numpy as np, scipy.sparse as sps
import wsekern
from wsekern import _spmm, kernels, simd_path
in_order = simd_path.SIMD_PATH == "baseline" and platform.machine() in ("x86_64", "AMD64")
rng = np.random.default_rng(19)
path = simd_path.SIMD_PATH
M = 90
counts = np.arange(M) % 45                      # 0 to 44 nonzeros a row
checked = exact = 0

def csr(K, dt, it, poison):
    # each row's columns drawn with replacement (duplicates) and left unsorted
    cols = np.concatenate([rng.integers(0, K, c) for c in counts]).astype(it)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(it)
    vals = rng.uniform(-1, 1, len(cols)).astype(dt)
    if poison:
        vals[7] = np.nan
        vals[50] = np.inf
        vals[-3] = -np.inf
    return vals, cols, ptr

def reference(vals, cols, ptr, X):
    # SciPy's float64 CSR product: each stored weight (duplicates too) meets its row of X,
    # unstored ones none
    W = sps.csr_array((vals.astype(np.float64), cols, ptr), shape=(M, X.shape[0]))
    return W @ X.astype(np.float64)

def product(vals, cols, ptr, X, nb, mode):
    _spmm.block_mode(mode)
    out = np.full((M, X.shape[1]), 7, X.dtype)
    assert _spmm.csr_spmm(vals, cols, ptr, X, out, None, 1, nb if nb < X.shape[1] else 0) == 0
    return out

for dt in (np.float32, np.float64):
    nb = kernels.TILE_BYTES[path] // np.dtype(dt).itemsize     # one 8x1 tile
    for it in (np.int32, np.int64):
        for K in (301, 2101):                    # X's block in L2 / past 256 KiB
            for N, off in ((nb, 0), (nb, 1), (2 * nb + 3, 0)):
                for poison in (False, True):
                    vals, cols, ptr = csr(K, dt, it, poison)
                    buf = rng.standard_normal(K * N + off).astype(dt)
                    X = buf[off:].reshape(K, N)          # off = 1: X off its vector line
                    if poison:
                        X[cols[3], 1] = np.nan
                        X[cols[100], N - 1] = np.inf
                        X[cols[200], 0] = -np.inf
                    old = product(vals, cols, ptr, X, nb, 0)
                    new = product(vals, cols, ptr, X, nb, 1)
                    assert old.tobytes() == new.tobytes(), (dt, it, K, N, off, poison)
                    with np.errstate(invalid="ignore", over="ignore"):
                        ref = reference(vals, cols, ptr, X)
                    np.testing.assert_array_equal(np.isnan(new), np.isnan(ref))
                    np.testing.assert_array_equal(np.isinf(new), np.isinf(ref))
                    tol = 1e-4 if dt == np.float32 else 1e-12
                    np.testing.assert_allclose(new, ref, rtol=tol, atol=tol)
                    checked += 1
                    if in_order and not poison:
                        # no FMA on x86-64's baseline: each Y entry of the 8x1 tiles'
                        # columns (the rest is the tail's two running sums) is NumPy's
                        # float sum over the row, in order
                        t = N // nb * nb
                        seq = np.zeros((M, t), dt)
                        for i in range(M):
                            for p in range(ptr[i], ptr[i + 1]):
                                seq[i] = seq[i] + vals[p] * X[cols[p], :t]
                        assert seq.tobytes() == new[:, :t].tobytes(), (dt, it, K, N, off)
                        exact += 1
# the public call, N not a multiple of the vector width, mode 1
_spmm.block_mode(1)
for dt in (np.float32, np.float64):
    for N in (5, 31, 67):
        W = sps.random(500, 700, density=0.1, format="csr", dtype=dt, random_state=N)
        X = rng.standard_normal((700, N)).astype(dt)
        got = wsekern.spmm(W, X, n_threads=1)
        tol = 1e-4 if dt == np.float32 else 1e-12
        np.testing.assert_allclose(got, W.astype(np.float64) @ X.astype(np.float64),
                                   rtol=tol, atol=tol)
        checked += 1
print(path, checked, exact)
"""


@pytest.mark.parametrize("simd, exact", [("baseline", 24), ("avx2", 0), ("avx512", 0)])
def test_block_mode_keeps_the_bits_and_the_reference(simd, exact):
    res = run_on_simd(simd, _CHILD, env_pop=("WSEKERN_COSTS",), timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    if platform.machine() not in ("x86_64", "AMD64"):
        exact = 0           # the in-order check is x86-64's baseline only (no FMA there)
    assert res.stdout.split() == [simd, "54", str(exact)]


def test_block_mode_is_chosen_per_cpu_and_refuses_others():
    res = run_in_child("""
        from wsekern import _spmm
        _spmm.simd_init(0, "zen5"); a = _spmm.block_mode()
        _spmm.simd_init(0, "zen4"); b = _spmm.block_mode()
        _spmm.simd_init(0, ""); c = _spmm.block_mode()
        print(a, b, c, _spmm.block_mode(1), _spmm.block_mode())
        try:
            _spmm.block_mode(2)
        except ValueError as e:
            print("refused" if "0 or 1" in str(e) and "2" in str(e) else e)
    """)
    assert res.stdout.split() == ["1", "0", "0", "0", "1", "refused"], res.stderr


@pytest.mark.parametrize("simd", ["baseline", "avx2"])
def test_bad_indices_are_refused_in_block_mode(simd):
    from wsekern.simd_path import simd_available
    if simd not in simd_available():
        pytest.skip(f"this CPU does not run the {simd} path")
    import os
    env = dict(os.environ, WSEKERN_SIMD=simd)
    env.pop("WSEKERN_COSTS", None)
    assert_refused_in_child("""
        import numpy as np, scipy.sparse as sps, wsekern
        from wsekern import _spmm
        _spmm.block_mode(1)
        def case(bad, K, N):
            W = sps.random(64, K, density=0.2, format="csr", dtype=np.float32, random_state=1)
            W.indices[len(W.indices) // 2] = bad
            X = np.ones((K, N), np.float32)
            return lambda: wsekern.spmm(W, X, n_threads=1)
        # one 8x1 tile of the baseline (32) and of AVX2 (64), a block in L2 and past it
        cases = [case(bad, K, N) for bad in (-1, 2101, 2**31 - 1)
                 for K, N in ((2100, 32), (2100, 64), (300, 32))]
    """, 9, errors=(ValueError,), needles=("index", "indices", "column"), env=env)
