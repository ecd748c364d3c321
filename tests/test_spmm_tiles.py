"""The CSR row kernel's register tiles (src/wsk_simd.h) around their loop boundaries: the
nonzeros that prefetch (all but the last WSK_PREFETCH_AHEAD = 16, less a step of 1, 2 or 4
nonzeros) run in a loop of their own, then the rest, then a single-nonzero remainder. Rows of
0 to 44 nonzeros cover each boundary for every tile width (8x1, 4x2, 2x4, 1x4 vectors and the
sub-vector tail), with duplicate and unsorted column indices, int32 and int64 indices, with
and without column blocks, NaN and inf in W and X, against a float64 reference built
independently (np.add.at over the stored entries), on every SIMD path this CPU runs (each in a
child process: the path is chosen at import)."""
import os

import pytest
from conftest import run_in_child

import wsekern

_CHILD = """
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
for dt, widths in ((np.float32, (1, 3, 4, 5, 8, 31, 32, 33, 48, 60, 64, 100)),
                   (np.float64, (1, 2, 3, 8, 15, 16, 17, 30, 32, 50))):
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
            for n_block in sorted({0, max(1, n // 3), n}):
                out = np.full((M, n), 7, dt)
                bad = _spmm.csr_spmm(vals, cols.astype(idx), indptr.astype(idx), X, out,
                                     None, 1, n_block, True)
                assert bad == 0, bad
                case = str((dt, n, idx, n_block))
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
    if simd not in wsekern.sysinfo.simd_available():
        pytest.skip(f"this CPU does not run the {simd} path")
    env = dict(os.environ, WSEKERN_SIMD=simd)
    env.pop("WSEKERN_COSTS", None)
    res = run_in_child(_CHILD, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] == simd
    assert int(res.stdout.split()[1]) > 100
