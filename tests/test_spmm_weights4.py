"""Block mode 1's four-a-step loops (src/wsk_simd.h, wsk_spmm_mac4): on the baseline the
four weights of a step come from one 16-byte load (fp64: two), each broadcast by a pshufd.
On every SIMD path, in a child process each, in mode 1: X one 8x1 tile wide, the block in
L2 (no prefetch) and past 256 KiB (the prefetching loop), fp32 and fp64, int32 and int64
indices, rows of 0 to 40 nonzeros (every length mod 4), unsorted and repeated columns,
W's values and indices each ending where a PROT_NONE page begins (the last row's last four
weights are the array's last bytes: a load past them is a segfault of the child). The
product against SciPy's float64 one and, on the baseline (no FMA), bit for bit against the
sums done in order by NumPy (one accumulator, each product rounded, then added)."""

import platform

import pytest
from conftest import assert_child_says, run_on_simd

_X86 = platform.machine() in ("x86_64", "AMD64")

_W4 = """
import ctypes, mmap
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, simd_path
path = simd_path.SIMD_PATH
vbytes = {"baseline": 16, "avx2": 32, "avx512": 64}[path]
_spmm.block_mode(1)
libc = ctypes.CDLL(None)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
page = mmap.PAGESIZE
keep = []

def guarded(n, dt):
    # n entries whose last byte is the last before a PROT_NONE page
    nbytes = n * np.dtype(dt).itemsize
    size = (nbytes + page - 1) // page * page + page
    m = mmap.mmap(-1, size)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    assert libc.mprotect(addr + size - page, page, 0) == 0
    keep.append(m)
    return np.frombuffer(m, dtype=dt, count=n, offset=size - page - nbytes)

rng = np.random.default_rng(44)
M = 45
counts = np.arange(M) % 41
counts[-1] = 8                      # the last row: two steps of four, ending at the guard
done = 0
for dt in (np.float32, np.float64):
    N = 8 * vbytes // np.dtype(dt).itemsize          # one 8x1 tile: block mode 1
    for it in (np.int32, np.int64):
        for K in (37, 2600):                          # in L2 / past 256 KiB (prefetching)
            nnz = int(counts.sum())
            cols = guarded(nnz, it)
            cols[:] = np.concatenate([rng.integers(0, K, c) for c in counts])
            vals = guarded(nnz, dt)
            vals[:] = rng.uniform(-1, 1, nnz)
            ptr = np.concatenate([[0], np.cumsum(counts)]).astype(it)
            X = rng.standard_normal((K, N)).astype(dt)
            out = np.empty((M, N), dt)
            assert _spmm.csr_spmm(vals, cols, ptr, X, out, None, 1, 0) == 0
            ref = sps.csr_array((vals.astype(np.float64), cols, ptr), shape=(M, K)) @ X
            tol = 1e-5 if dt == np.float32 else 1e-12
            np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
            if path == "baseline":
                for i in range(M):
                    s = np.zeros(N, dt)
                    for p in range(ptr[i], ptr[i + 1]):
                        s = s + vals[p] * X[cols[p]]          # dt ops: each rounded
                    assert np.array_equal(out[i].view(np.uint8), s.view(np.uint8)), (
                        dt.__name__, it.__name__, K, i)
            done += 1
print("steps", done, "mode", _spmm.block_mode())
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_four_weights_a_step_give_the_in_order_sums_and_read_nothing_past_w(simd):
    if not _X86 and simd != "baseline":
        pytest.skip("x86 paths only")
    proc = run_on_simd(simd, _W4, timeout=300)
    assert_child_says(proc, ["steps", "8", "mode", "1"])
