"""The CSR kernel's leftover columns (src/wsk_simd.h, wsk_spmm_tail: the N % LANES columns
past the vector tiles, one pass over the row with a partial vector). On every SIMD path, in
a child process each (the path is chosen at import), for every N % LANES of fp32 and fp64
(N = 1 to two vectors and one), int32 and int64 indices, rows of 0 to 11 nonzeros with
unsorted and repeated columns, X whole and X with its rows remapped (the per-row
compaction, which reaches the rows kernel at any N): the product against SciPy's float64
one, nothing written past ``out``, and the leftover columns' exact bits against their sums
done in order (the even nonzeros, the odd ones, then the two) by NumPy, fused where the
path has FMA, as the compiler contracts them there (x86-64 only: elsewhere it may fuse or
not). And with X's last row and ``out``'s last row ending where a PROT_NONE page begins:
a read or write past the leftover columns is a segfault of the child."""

import platform

import pytest
from conftest import assert_child_says, run_on_simd

_X86 = platform.machine() in ("x86_64", "AMD64")

_SUMS = """
import platform
from fractions import Fraction
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, simd_path
path = simd_path.SIMD_PATH
vbytes = {"baseline": 16, "avx2": 32, "avx512": 64}[path]
exact = platform.machine() in ("x86_64", "AMD64")
fused = path != "baseline"
rng = np.random.default_rng(26)
M, K = 23, 37
counts = np.arange(M) % 12                       # 0 to 11 nonzeros a row
checked = bits = 0

def in_order(vals, cols, ptr, X, j0, dt):
    # Y[:, j0:] as the tail sums it: s0 over the even nonzeros of a row, s1 over the odd
    # ones, in order, then s0 + s1; each step v * x + s rounded once where fused
    N = X.shape[1]
    Y = np.zeros((M, N - j0), dt)
    for i in range(M):
        for j in range(j0, N):
            s = [dt(0), dt(0)]
            for q, p in enumerate(range(ptr[i], ptr[i + 1])):
                v, x = vals[p], X[cols[p], j]
                if not fused:
                    s[q % 2] = dt(s[q % 2] + dt(v * x))
                elif dt == np.float32:       # v * x is exact in float64; one rounding
                    s[q % 2] = dt(np.float64(v) * np.float64(x) + np.float64(s[q % 2]))
                else:
                    s[q % 2] = dt(float(Fraction(float(v)) * Fraction(float(x))
                                        + Fraction(float(s[q % 2]))))
            Y[i, j - j0] = s[0] + s[1]
    return Y

for dt in (np.float32, np.float64):
    lanes = vbytes // np.dtype(dt).itemsize
    for it in (np.int32, np.int64):
        for N in range(1, 2 * lanes + 2):
            cols = np.concatenate([rng.integers(0, K, c) for c in counts]).astype(it)
            ptr = np.concatenate([[0], np.cumsum(counts)]).astype(it)
            vals = rng.uniform(-1, 1, len(cols)).astype(dt)
            X = rng.standard_normal((K, N)).astype(dt)
            ref = sps.csr_array((vals.astype(np.float64), cols, ptr), shape=(M, K)) @ X
            # X whole; X's rows through a remap (all live) and a zero row after them
            Xr = np.vstack([X, np.zeros((1, N), dt)])
            for remap in (None, np.arange(K, dtype=it)):
                buf = np.full(M * N + 2 * lanes, 7, dt)
                out = buf[:M * N].reshape(M, N)
                assert _spmm.csr_spmm(vals, cols, ptr, X if remap is None else Xr, out,
                                      remap, 1, 0) == 0
                assert (buf[M * N:] == 7).all(), ("written past out", dt, it, N)
                tol = 1e-5 if dt == np.float32 else 1e-13
                np.testing.assert_allclose(out, ref, rtol=tol, atol=tol,
                                           err_msg=f"{dt} {it} N={N} remap={remap is not None}")
                checked += 1
                n = N % lanes
                # N narrower than half a vector without a remap takes the narrow kernel
                tail = remap is not None or 2 * N >= lanes
                if exact and n and tail:
                    want = in_order(vals, cols, ptr, X, N - n, dt)
                    got = out[:, N - n:]
                    assert got.tobytes() == want.tobytes(), (
                        "tail bits", dt, it, N, remap is not None,
                        np.argwhere(got != want)[:5].tolist())
                    bits += 1
print(checked, bits > 0 or not exact)
"""

_GUARD = """
import ctypes, mmap
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, simd_path
vbytes = {"baseline": 16, "avx2": 32, "avx512": 64}[simd_path.SIMD_PATH]
libc = ctypes.CDLL(None)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
page = mmap.PAGESIZE
rng = np.random.default_rng(27)
keep = []

def guarded(shape, dt):
    # an array whose last byte is the last before a PROT_NONE page
    nbytes = int(np.prod(shape)) * np.dtype(dt).itemsize
    size = (nbytes + page - 1) // page * page + page
    m = mmap.mmap(-1, size)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    assert libc.mprotect(addr + size - page, page, 0) == 0
    keep.append(m)
    a = np.frombuffer(m, dtype=dt, count=int(np.prod(shape)), offset=size - page - nbytes)
    return a.reshape(shape)

M, K = 9, 13
done = 0
for dt in (np.float32, np.float64):
    lanes = vbytes // np.dtype(dt).itemsize
    for N in range(1, 2 * lanes + 2):
        # every row ends on X's last row (the one at the guard); row 4 empty
        rows = [sorted(rng.integers(0, K - 1, 3)) + [K - 1] if i != 4 else [] for i in range(M)]
        cols = np.array([c for r in rows for c in r], np.int32)
        ptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int32)
        vals = rng.uniform(-1, 1, len(cols)).astype(dt)
        X = guarded((K, N), dt)
        X[...] = rng.standard_normal((K, N))
        ref = sps.csr_array((vals.astype(np.float64), cols, ptr), shape=(M, K)) @ X
        out = guarded((M, N), dt)
        assert _spmm.csr_spmm(vals, cols, ptr, X, out, None, 1, 0) == 0
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
        # X's row 0 dead (remapped to the zero row, the last, at the guard); an inf
        # weight meeting it is kept and reads the zero row: inf * 0 = NaN, as in SciPy
        Xr = guarded((K, N), dt)
        Xr[:K - 1] = X[1:]
        Xr[K - 1] = 0
        remap = np.concatenate([[K - 1], np.arange(K - 1)]).astype(np.int32)
        v2 = vals.copy()
        v2[0] = np.inf
        c2 = cols.copy()
        c2[0] = 0
        with np.errstate(invalid="ignore"):
            ref2 = sps.csr_array((v2.astype(np.float64), c2, ptr), shape=(M, K)) @ np.where(
                np.arange(K)[:, None] == 0, 0, X.astype(np.float64))
        out[...] = 7
        assert _spmm.csr_spmm(v2, c2, ptr, Xr, out, remap, 1, 0) == 0
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref2))
        ok = ~np.isnan(ref2)
        np.testing.assert_allclose(out[ok], ref2[ok], rtol=1e-5, atol=1e-5)
        done += 1
print("guarded", done)
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_leftover_columns_match_scipy_and_the_in_order_sums(simd):
    proc = run_on_simd(simd, _SUMS, timeout=300)
    lanes = {"baseline": 4, "avx2": 8, "avx512": 16}[simd]
    checked = 4 * ((2 * lanes + 1) + (lanes + 1))     # (ints x remap) x N of each dtype
    assert_child_says(proc, [str(checked), "True"])


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_leftover_columns_read_and_write_nothing_past_the_arrays(simd):
    if not _X86 and simd != "baseline":
        pytest.skip("x86 paths only")
    proc = run_on_simd(simd, _GUARD)
    lanes = {"baseline": 4, "avx2": 8, "avx512": 16}[simd]
    assert_child_says(proc, ["guarded", str((2 * lanes + 1) + (lanes + 1))])
