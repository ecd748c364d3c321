"""Review of s23's spmm kernel branches (dead23's livebits route): a column index out of
range must never be read through, and no array is read past its ends.
X and W's arrays are placed against PROT_NONE pages (an mmap'd buffer, a guard page on each
side, the array ending at the second one and starting on a page for X), so that a read of
X's row K or row -1, or past any array's end, faults: run in a child per SIMD path.

- livebits (one thread, csr-skip-rows at 64 float32 columns, a new live map; AVX-512 with
  VPOPCNTDQ, elsewhere the route before): a SciPy CSR whose first, middle or last row holds
  column K or -1 with an inf weight (a non-finite weight is kept whatever its row's live
  bit) or column 4096 + a live row (its live bit read modulo 4096) is declined by the
  native call and named by spmm; the row is left unread. A valid W on the same guarded
  arrays gives NumPy's product (float64 reference).
"""
import pytest
from conftest import assert_child_says, run_on_simd

_GUARD = """
import ctypes, mmap
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels, spmm
from wsekern.simd_path import SIMD_PATH

np.seterr(all="ignore")
kernels.l2_bytes = lambda: 1 << 20
_libc = ctypes.CDLL(None)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_keep = []


def guarded(a):
    '''a copy of ``a`` ending where a PROT_NONE page starts, another one before it'''
    a = np.ascontiguousarray(a)
    pages = -(-a.nbytes // 4096)
    m = mmap.mmap(-1, (pages + 2) * 4096)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    assert _libc.mprotect(base, 4096, 0) == 0
    assert _libc.mprotect(base + (pages + 1) * 4096, 4096, 0) == 0
    off = (pages + 1) * 4096 - a.nbytes
    out = np.frombuffer(m, np.uint8, a.nbytes, off).view(a.dtype).reshape(a.shape)
    out[...] = a
    _keep.append(m)
    return out


def guarded_csr(data, indices, indptr, shape):
    d, i, p = guarded(data), guarded(indices), guarded(indptr)
    W = sps.csr_matrix((d, i, p), shape=shape, copy=False)
    W.data, W.indices, W.indptr = d, i, p      # SciPy may have copied or narrowed them
    return W


def refused(W, X, bad):
    assert _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS) is None
    try:
        spmm(W, X, n_threads=1)
    except ValueError as e:
        assert "out of range" in str(e) and str(bad) in str(e), str(e)
    else:
        raise SystemExit(f"column {bad} accepted")
"""

_LIVEBITS = _GUARD + """
flags = open("/proc/cpuinfo").read()
assert _spmm.livebits_fused() == (SIMD_PATH == "avx512" and "avx512_vpopcntdq" in flags)
N, n = 64, 0
for K in (1008, 4096):          # X on whole pages: rows -1 and K are in the guard pages
    rng = np.random.default_rng(K)
    X0 = rng.standard_normal((K, N)).astype(np.float32)
    X0[rng.random(K) < 0.5] = 0
    X0[0] = 1                   # row 0 live: column 4096 reads its live bit
    X = guarded(X0)
    assert X.ctypes.data % 4096 == 0
    V0 = sps.random(300, K, density=0.1, format="csr", random_state=K, dtype=np.float32)
    W = guarded_csr(V0.data, V0.indices.astype(np.int32), V0.indptr.astype(np.int32),
                    V0.shape)
    assert kernels._spmm_impl(W, X, False, None, 1)[1] == "csr-skip-rows"
    got = _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)
    assert np.allclose(got, V0.astype(np.float64) @ X0.astype(np.float64), rtol=1e-4,
                       atol=1e-3)
    for row in (0, 150, 299):
        for bad, w in ((K, np.inf), (-1, np.inf), (-1, -np.inf), (4096, 1.0),
                       (4096 + K - 1, np.nan)):
            ind = V0.indices.astype(np.int32)
            data = V0.data.copy()
            p = V0.indptr[row] + 1
            ind[p], data[p] = bad, w
            refused(guarded_csr(data, ind, V0.indptr.astype(np.int32), V0.shape), X, bad)
            n += 1
print("ok", n, SIMD_PATH)
"""

@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_livebits_bad_column_never_read(simd):
    """Columns K, -1 (inf weights) and past 4096 in the first, a middle and the last row:
    declined, named, and X's neighbouring pages never read (a fault fails the child)."""
    assert_child_says(run_on_simd(simd, _LIVEBITS, timeout=300), ["ok", "30", simd])

