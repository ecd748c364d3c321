"""The densified route over X's live rows: only W's columns meeting them densified
(_densify.csr_to_dense_live), the same product bit for bit as densifying W whole and taking
those columns, NaN/inf in the dropped columns read from the stored weights."""
import dataclasses

import numpy as np
import pytest
import scipy.sparse as sps

import wsekern
from wsekern import _densify, _spmm, costs, kernels

DTYPES = [np.float32, np.float64]
INDEX = [np.int32, np.int64]


def _dense_reference(data, indices, indptr, K):
    """The dense form, duplicates added in stored order (np.add.at is unbuffered)."""
    M = len(indptr) - 1
    dense = np.zeros((M, K), dtype=data.dtype)
    rows = np.repeat(np.arange(M), np.diff(indptr))
    with np.errstate(over="ignore", invalid="ignore"):
        np.add.at(dense, (rows, indices), data)
    return dense


def _messy_csr(rng, M, K, density, dtype, index, special=None):
    """A CSR with unsorted indices, duplicates and empty rows; ``special``: values placed
    at chosen positions as (row, col, value) triples, appended to their rows."""
    nnz = int(M * K * density)
    rows = rng.integers(0, M, nnz)
    cols = rng.integers(0, K, nnz)
    vals = rng.standard_normal(nnz).astype(dtype)
    dup = rng.integers(0, max(nnz, 1), nnz // 4) if nnz else np.zeros(0, int)
    rows, cols, vals = (np.concatenate([a, a[dup]]) for a in (rows, cols, vals))
    rows[rows == M // 2] = (M // 2 + 1) % M          # an empty row
    for r, c, v in special or ():
        rows, cols = np.append(rows, r), np.append(cols, c)
        vals = np.append(vals, np.asarray(v, dtype=dtype))
    order = np.argsort(rows, kind="stable")
    rows, cols, vals = rows[order], cols[order], vals[order].astype(dtype)
    indptr = np.searchsorted(rows, np.arange(M + 1)).astype(index)
    return vals, cols.astype(index), indptr


def _alive(rng, K):
    alive = (rng.random(K) < 0.5).astype(np.uint8)
    return alive, int(alive.sum())


def _live_densify(data, indices, indptr, alive, n_alive, n_threads=1):
    remap, _ = _spmm.live_map(alive, n_alive, indptr.dtype)
    out = np.full((len(indptr) - 1, n_alive), 7, dtype=data.dtype)    # overwritten
    ok = _densify.csr_to_dense_live(data, indices, indptr, remap, out, n_threads)
    return out, ok


def _bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", INDEX)
@pytest.mark.parametrize("kind", ["finite", "inf-live", "nan-dead", "inf-dead",
                                  "overflow-dead", "overflow-live", "cancel-dead"])
def test_live_columns_equal_the_dense_reference_bit_for_bit(dtype, index, kind):
    rng = np.random.default_rng([7, len(kind), np.dtype(dtype).itemsize])
    M, K = 37, 53
    alive, n_alive = _alive(rng, K)
    live_col, dead_col = int(np.flatnonzero(alive)[0]), int(np.flatnonzero(~alive.view(bool))[0])
    big = np.finfo(dtype).max * 0.75
    special = {"finite": [],
               "inf-live": [(3, live_col, np.inf)],
               "nan-dead": [(4, dead_col, np.nan)],
               "inf-dead": [(5, dead_col, -np.inf)],
               # two finite duplicates summing past the type's maximum: inf in the dense W
               "overflow-dead": [(6, dead_col, big), (6, dead_col, big)],
               "overflow-live": [(6, live_col, big), (6, live_col, big)],
               # finite again once summed: inf - inf would be NaN, but big - big is 0
               "cancel-dead": [(8, dead_col, big), (8, dead_col, -big)]}[kind]
    data, indices, indptr = _messy_csr(rng, M, K, 0.3, dtype, index, special)
    ref = _dense_reference(data, indices, indptr, K)
    for n_threads in (1, 3):
        out, ok = _live_densify(data, indices, indptr, alive, n_alive, n_threads)
        np.testing.assert_array_equal(_bits(out), _bits(ref[:, alive.view(bool)]))
        assert ok == bool(np.isfinite(ref[:, ~alive.view(bool)]).all())
    assert ok == (kind not in ("nan-dead", "inf-dead", "overflow-dead"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_shapes(dtype):
    rng = np.random.default_rng(3)
    # no live column, every column live, no stored weight, one row
    for M, K, density, live in ((5, 6, 0.5, 0.0), (5, 6, 0.5, 1.0), (4, 9, 0.0, 0.5),
                                (1, 40, 0.5, 0.5)):
        data, indices, indptr = _messy_csr(rng, M, K, density, dtype, np.int32)
        alive = (rng.random(K) < live).astype(np.uint8)
        out, ok = _live_densify(data, indices, indptr, alive, int(alive.sum()))
        ref = _dense_reference(data, indices, indptr, K)
        np.testing.assert_array_equal(_bits(out), _bits(ref[:, alive.view(bool)]))
        assert ok


def _force_densified(monkeypatch):
    table = dataclasses.replace(costs.cost_table(), densify_call=0.0, densify=0.0,
                                densify_nnz=0.0, densify_live_nnz=0.0, blas_mac=0.0)
    monkeypatch.setattr(kernels, "cost_table", lambda: table)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", INDEX)
@pytest.mark.parametrize("kind", ["finite", "nan-dead", "overflow-dead", "inf-live"])
def test_spmm_densified_over_live_rows_is_the_dense_product_bit_for_bit(monkeypatch, dtype,
                                                                         index, kind):
    """spmm's densified route: BLAS over the live columns when the dropped ones are finite
    (the bits of matmul(W_dense[:, live], X[live])), over the whole dense W otherwise
    (inf/NaN meeting X's zero rows gives NaN, as the dense product does)."""
    _force_densified(monkeypatch)
    rng = np.random.default_rng([11, len(kind)])
    M, K, N = 40, 64, 9
    X = rng.standard_normal((K, N)).astype(dtype)
    X[1::2] = 0
    alive = np.any(X != 0, axis=1)
    live_col, dead_col = int(np.flatnonzero(alive)[0]), int(np.flatnonzero(~alive)[0])
    big = np.finfo(dtype).max * 0.75
    special = {"finite": [], "nan-dead": [(2, dead_col, np.nan)],
               "overflow-dead": [(6, dead_col, big), (6, dead_col, big)],
               "inf-live": [(3, live_col, np.inf)]}[kind]
    data, indices, indptr = _messy_csr(rng, M, K, 0.4, dtype, index, special)
    W = sps.csr_array((data, indices, indptr), shape=(M, K))
    W.has_sorted_indices = False
    ref = _dense_reference(data, indices, indptr, K)
    with np.errstate(invalid="ignore", over="ignore"):
        got = wsekern.spmm(W, X)
        if kind in ("nan-dead", "overflow-dead"):
            expected, path = np.matmul(ref, X), "blas-densified"
        else:
            expected = np.matmul(np.take(ref, np.flatnonzero(alive), axis=1), X[alive])
            path = "blas-skip-rows-densified"
        assert kernels.spmm_path(W, X) == path
        dense64 = np.matmul(ref.astype(np.float64), X.astype(np.float64))
    np.testing.assert_array_equal(_bits(got), _bits(expected))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(dense64))   # NaN where dense has


def test_densified_over_live_rows_is_priced_on_the_live_columns(monkeypatch):
    """The densify term counts only X's live columns: a W whose whole densify (M x K at
    ``densify``) costs more than the CSR kernel but whose live half does not takes the
    densified route when half of X's rows are dead (the whole-W price kept it on CSR)."""
    M = K = 256
    N = 64
    base = costs._named("zen3/avx2")
    nnz = M * K // 2
    # CSR kernel over the live half: nnz/2 * N * spmm_mac; densify priced so that the live
    # columns' densify plus BLAS fit under it, the whole W's densify does not
    t_sparse = nnz * 0.5 * N * base.spmm_mac
    blas = base.blas(M * (K // 2) * N, N)
    per_elem = (t_sparse - blas) / (M * K) * 1.5      # live half: 0.75 of the room
    table = dataclasses.replace(base, densify=per_elem, densify_nnz=0.0, densify_live_nnz=0.0,
                                densify_call=0.0)
    assert table.densified(M, K, K // 2, N, nnz) < t_sparse
    assert M * K * per_elem + blas > t_sparse           # the whole-W densify would lose
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    rng = np.random.default_rng(2)
    Wd = rng.standard_normal((M, K)) * (rng.random((M, K)) < 0.5)
    W = sps.csr_array(Wd)
    X = rng.standard_normal((K, N))
    X[1::2] = 0
    assert kernels.spmm_path(W, X) == "blas-skip-rows-densified"
    np.testing.assert_allclose(wsekern.spmm(W, X), Wd @ X, rtol=1e-10, atol=1e-10)
