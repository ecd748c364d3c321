"""The CSR row kernel's two forms on the baseline path (src/wsk_simd.h): register tiles, or
streaming each nonzero's whole row of X. Rows of at least WSK_STREAM_NNZ (64) nonzeros, or
an X whose row pitch is a multiple of 4 KiB, stream once the row is 128 fp32 / 64 fp64
columns wide; shorter rows at any other pitch take the tiles. Both forms, in one W and on
either side of each boundary, against the float64 reference, with NaN and inf in X, on every
SIMD path this CPU runs (each in a child process: the path is chosen at import). Also: the
tiles' loop boundaries, and csr-skip-rows' compaction with inf/NaN weights."""

import pytest
from conftest import run_on_simd

_CHILD = """
import numpy as np, scipy.sparse as sps
import wsekern
from wsekern import kernels
kernels.MIN_REUSE = 10**9                  # no column blocks: the kernel sees X's own pitch
rng = np.random.default_rng(5)
K, M = 600, 150
# Row i holds i % 75 nonzeros (0 to 74): short rows (tiles) and long ones (stream) in one W,
# 63 and 64 among them.
counts = np.arange(M) % 75
rows = np.repeat(np.arange(M), counts)
cols = np.concatenate([rng.choice(K, size=c, replace=False) for c in counts])
checked = 0
for dt, widths in ((np.float32, (127, 128, 129, 250, 256, 1024, 1030)),
                   (np.float64, (63, 64, 65, 250, 256, 512, 520))):
    W = sps.csr_array((rng.uniform(-1, 1, len(rows)).astype(dt), (rows, cols)), shape=(M, K))
    W64 = W.astype(np.float64)
    for n in widths:
        X = rng.standard_normal((K, n)).astype(dt)
        for poison in (False, True):
            if poison:                     # NaN and inf where some stored weights meet them
                X[3, 5] = np.nan
                X[40, n - 1] = np.inf
                X[41, 0] = -np.inf
            path = kernels.spmm_path(W, X)
            assert path == "csr", (dt, n, path)
            got = wsekern.spmm(W, X)
            ref = W64 @ X.astype(np.float64)      # unstored weights are not multiplied
            assert got.dtype == dt
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
            np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
            tol = 1e-4 if dt == np.float32 else 1e-12
            np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
            checked += 1
print(wsekern.get_config()["simd"], checked)
"""


def _run_on(simd, child):
    """``child``'s output words, run with the SIMD path ``simd`` forced (skips when this CPU
    does not run it)."""
    res = run_on_simd(simd, child, env_pop=("WSEKERN_COSTS",))
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_tiled_and_streamed_rows_agree_with_the_reference(simd):
    assert _run_on(simd, _CHILD) == [simd, "28"]


_DEAD_CHILD = """
import numpy as np, scipy.sparse as sps
import wsekern
from wsekern import kernels
rng = np.random.default_rng(6)
K, M, N = 300, 120, 96
checked = 0
for dt in (np.float32, np.float64):
    for it in (np.int32, np.int64):
        W = sps.random(M, K, density=0.15, format="csr", dtype=dt, random_state=7)
        W.indices = W.indices.astype(it); W.indptr = W.indptr.astype(it)
        # inf/NaN weights, some on columns that meet dead rows of X (kept: inf * 0 = NaN)
        W.data[::37] = np.nan
        W.data[5::41] = np.inf
        W.data[9::43] = -np.inf
        X = rng.standard_normal((K, N)).astype(dt)
        X[rng.permutation(K)[:K // 2]] = 0
        X[np.flatnonzero(X.any(axis=1))[0], 3] = np.nan
        ref = W.astype(np.float64) @ X.astype(np.float64)
        for blocks in (False, True):
            kernels.MIN_REUSE = 0 if blocks else 10**9
            kernels.l2_bytes = (lambda: 4096) if blocks else (lambda: 1 << 20)
            assert kernels.spmm_path(W, X) == "csr-skip-rows", kernels.spmm_path(W, X)
            got = wsekern.spmm(W, X)
            assert got.dtype == dt
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
            np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
            fin = np.isfinite(ref)
            tol = 1e-4 if dt == np.float32 else 1e-12
            np.testing.assert_allclose(got[fin], ref[fin], rtol=tol, atol=tol)
            np.testing.assert_array_equal(got[~fin], ref[~fin])
            checked += 1
print(wsekern.get_config()["simd"], checked)
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_dead_rows_compaction_keeps_nonfinite_weights(simd):
    """csr-skip-rows (the compaction of W's nonzeros that meet live rows of X, per row or once
    for all column blocks) with NaN/inf weights, some meeting dead rows: the reference's NaN
    and inf positions (inf * 0 = NaN, as in SciPy), fp32/fp64 x int32/int64 indices."""
    assert _run_on(simd, _DEAD_CHILD) == [simd, "8"]


_TILES_CHILD = """
import numpy as np
import wsekern
from wsekern import _spmm
rng = np.random.default_rng(11)
K, M = 300, 90
counts = np.arange(M) % 45                 # 0 to 44 nonzeros a row, each count twice
indptr = np.concatenate([[0], np.cumsum(counts)])
cols = []
for i, c in enumerate(counts):
    row = rng.integers(0, K, size=c)       # duplicates allowed, in no order
    if i % 3 == 0:
        row = np.sort(row)
    cols.append(row)
cols = np.concatenate(cols)
rows = np.repeat(np.arange(M), counts)
checked = 0
for dt, widths in ((np.float32, (1, 3, 4, 5, 8, 31, 32, 33, 48, 60, 64, 96, 100)),
                   (np.float64, (1, 2, 3, 8, 15, 16, 17, 30, 32, 48, 50))):
    vals = rng.uniform(-1, 1, len(cols)).astype(dt)
    vals[7] = np.inf                       # a weight that is inf, one that is NaN
    vals[500] = np.nan
    for n in widths:
        X = rng.standard_normal((K, n)).astype(dt)
        X[cols[30], n - 1] = np.nan
        X[cols[900], 0] = -np.inf
        ref = np.zeros((M, n))
        np.add.at(ref, rows, vals[:, None].astype(np.float64) * X[cols].astype(np.float64))
        for idx in (np.int32, np.int64):
            for n_block, check in [(b, c) for b in sorted({0, max(1, n // 3), n})
                                   for c in (True, False)]:
                out = np.full((M, n), 7, dt)
                bad = _spmm.csr_spmm(vals, cols.astype(idx), indptr.astype(idx), X, out,
                                     None, 1, n_block, check)
                assert bad == 0, bad
                case = str((dt, n, idx, n_block, check))
                np.testing.assert_array_equal(np.isnan(out), np.isnan(ref), err_msg=case)
                np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
                fin = np.isfinite(ref)
                tol = 1e-4 if dt == np.float32 else 1e-12
                np.testing.assert_allclose(out[fin], ref[fin], rtol=tol, atol=tol)
                checked += 1
print(wsekern.get_config()["simd"], checked)
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_tile_loop_boundaries_agree_with_the_reference(simd):
    """The register tiles around their loop boundaries. On the baseline the nonzeros that
    prefetch (all but the last WSK_PREFETCH_AHEAD = 16, less a step of 1, 2 or 4) run in a
    loop of their own, then the rest, then single nonzeros; the AVX2/AVX-512 clones test each
    nonzero. Rows of 0 to 44 nonzeros cover each boundary for every tile (8x1, 4x2, 2x4, 1x4
    vectors, the sub-vector tail), with duplicate and unsorted column indices, int32 and
    int64 indices, with and without column blocks, NaN and inf in W and X, against a float64
    reference built independently (np.add.at over the stored entries), with the kernel
    checking the indices or not. A row one 8x1 tile wide (32 fp32 / 16 fp64 columns, whole
    or a column block) prefetches, in its last 8 nonzeros (16 for an X over 256 KiB), what
    the next row's first ones meet (wsk_spmm_rows, 16 rows a call)."""
    assert _run_on(simd, _TILES_CHILD) == [simd, "280"]


_AHEAD_CHILD = """
import itertools
import numpy as np
import wsekern
from wsekern import _spmm
rng = np.random.default_rng(3)
M = 40                                  # 16 rows a kernel call: 3 calls
counts = 5 + np.arange(M) % 30
indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
vals = rng.uniform(-1, 1, indptr[-1]).astype(np.float32)
rows = np.repeat(np.arange(M), counts)
checked = 0
# K = 2100: a 32-column fp32 block is 269 KiB, prefetched 16 ahead (8 at 256 KiB or less)
for K, bad_row in itertools.product((200, 2100), (1, 7, 15, 16, M - 1)):
    cols = np.random.default_rng(K).integers(0, K, size=indptr[-1]).astype(np.int32)
    X = rng.standard_normal((K, 96)).astype(np.float32)
    for bad in (K, 2**31 - 1, -1, -2**31):
        c = cols.copy()
        c[indptr[bad_row] + 2] = bad      # prefetched by the row before, never read
        good = np.arange(M) != bad_row
        keep = good[rows]
        for n in (32, 96):
            ref = np.zeros((M, n))
            np.add.at(ref, rows[keep], vals[keep, None].astype(np.float64)
                      * X[c[keep], :n].astype(np.float64))
            for n_block in (0, 32):
                out = np.zeros((M, n), np.float32)
                n_bad = _spmm.csr_spmm(vals, c, indptr, np.ascontiguousarray(X[:, :n]), out,
                                       None, 1, n_block, True)
                assert n_bad == 1, n_bad
                np.testing.assert_allclose(out[good], ref[good], rtol=1e-4, atol=1e-4)
                checked += 1
print(wsekern.get_config()["simd"], checked)
"""


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_out_of_range_index_in_the_next_row_is_refused_not_read(simd):
    """A row's last nonzeros prefetch the pieces of X the next row meets before the kernel
    has checked that row's column indices: an index out of range there (K, 2**31 - 1, -1,
    -2**31) names an address that is prefetched, never read. Bad rows on either side of a
    kernel call's 16 rows, X blocks prefetched 8 and 16 ahead. The kernel reports that row
    and every other row is right, on every path, in a child process."""
    assert _run_on(simd, _AHEAD_CHILD) == [simd, "160"]
