"""The panel path for X with dead rows (kernels' "panel-skip-rows"): a PackedSparse W as row
panels in CSC form (PackedSparse.row_panels), multiplied by _spmm.panel_spmm_live over X's
live rows only.

Reference: each row is the CSR row kernel's sum over the row's weights meeting live rows
of X, in ascending column order, so bit for bit csr_spmm on X's live rows with the remap
and no column blocks (kernels' csr-skip-rows compacted per row), on every SIMD path; and
within float tolerance of SciPy in float64, with the same NaN positions."""

import numpy as np
import pytest
from conftest import assert_child_says, assert_refused_in_child, run_on_simd

_SAME_CODE = """
import dataclasses
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels, pack
from wsekern.costs import cost_table
from wsekern.sparse import PackedSparse
from wsekern.sysinfo import get_config

simd = get_config()["simd"]
np.seterr(invalid="ignore", over="ignore")
base_cost = cost_table()
kernels.cost_table = lambda: dataclasses.replace(base_cost, panel_nnz=0.0, panel_step=0.0,
                                                  densify=1e9, spmm_scatter_mac=1.0)
kernels.SPARSE_X_DENSITY = -1.0          # X with every row dead stays on the dead-rows paths

def compacted(P, X, alive):
    # the CSR kernel on X's live rows, each row's weights meeting dead rows dropped
    X_live, remap = _spmm.live_rows(X, alive, int(alive.sum()), P._indices.dtype)
    out = np.full((P.shape[0], X.shape[1]), np.nan, X.dtype)
    _spmm.csr_spmm(P._data, P._indices, P._indptr, X_live, out, remap, 1, 0)
    return out

rng = np.random.default_rng(3)
n = taken = native = 0
for dt in (np.float32, np.float64):
    for idx in (np.int32, np.int64):
        for M, K, N, density, dead, form in (
                (64, 96, 64, 0.2, 0.5, "plain"), (130, 70, 150, 0.1, 0.5, "plain"),
                (1, 40, 3, 0.5, 0.5, "plain"), (200, 300, 16, 0.05, 0.9, "plain"),
                (70, 50, 1, 0.3, 0.5, "plain"), (64, 50, 80, 0.4, 1.0, "plain"),
                (150, 60, 33, 0.3, 0.5, "empty-panels"), (90, 40, 65, 0.3, 0.5, "dup"),
                (80, 60, 40, 0.02, 0.5, "plain"), (100, 64, 72, 0.3, 0.5, "nan-x"),
                (66, 64, 70, 0.3, 0.5, "signed-zero")):
            W = sps.random(M, K, density=density, format="csr", dtype=dt, random_state=n)
            if form == "empty-panels":     # rows 0-63 and 128-149 hold no weight
                W = sps.csr_matrix(W.multiply(
                    ((np.arange(M) >= 64) & (np.arange(M) < 128))[:, None]))
            if form == "dup":              # duplicate and unsorted entries, summed by pack
                coo = W.tocoo()
                W = sps.coo_matrix((np.r_[coo.data, coo.data * 0.5][::-1],
                                    (np.r_[coo.row, coo.row][::-1],
                                     np.r_[coo.col, coo.col][::-1])), shape=(M, K))
            S = sps.csr_matrix(W)
            S.sum_duplicates()
            S.data = S.data.astype(dt)
            if form == "signed-zero":      # -0.0 weights and products
                S.data[::3] = -0.0
            P = PackedSparse(S.data, S.indices.astype(idx), S.indptr.astype(idx), (M, K))
            X = rng.standard_normal((K, N)).astype(dt)
            dead_rows = rng.permutation(K)[:int(round(dead * K))]
            X[dead_rows] = 0
            if form == "signed-zero":
                X[:, 0] = -0.0
            if form == "nan-x":            # NaN/inf in live rows of X
                live = np.setdiff1d(np.arange(K), dead_rows)
                X[live[0], 0] = np.nan
                X[live[-1], -1] = np.inf
            alive = np.zeros(K, np.uint8)
            alive[np.any(X != 0, axis=1)] = 1          # NaN != 0: alive
            p, r, d, max_row = P.row_panels(kernels.PANEL_ROWS)
            rows = kernels.PANEL_ROWS
            assert p.dtype == r.dtype == idx and len(p) == -(-M // rows) * K + 1
            got = np.full((M, N), np.nan, dt)
            _spmm.panel_spmm_live(d, r, p, rows, max_row, X, alive, got, 1)
            want = compacted(P, X, alive)
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (dt, idx, form)
            got2 = np.full((M, N), np.nan, dt)
            _spmm.panel_spmm_live(d, r, p, rows, max_row, X, alive, got2, 2)
            assert np.array_equal(got.view(np.uint8), got2.view(np.uint8))
            # through spmm (the native entry and the Python route, W and W.T of its cached
            # transpose): the panel path where X has dead rows, the same bits
            ref = S.astype(np.float64) @ X.astype(np.float64)
            tol = 1e-4 if dt == np.float32 else 1e-12
            scale = max(1, np.abs(ref[np.isfinite(ref)]).max(initial=0))
            for A, tr in ((P, False), (P.transpose(), True)):
                want, path = kernels._spmm_impl(A, X, tr, None, 1)
                if 0 < alive.sum() <= K * (1 - kernels.ZERO_ROW_SKIP_FRACTION):
                    assert path == "panel-skip-rows", (path, form)
                    taken += 1
                    assert np.array_equal(want.view(np.uint8), got.view(np.uint8)), form
                plain = _spmm.csr_spmm_plain(A, X, tr, None, 1, kernels._GLOBALS)
                native += plain is not None and path == "panel-skip-rows"
                if plain is not None:
                    assert np.array_equal(plain.view(np.uint8), want.view(np.uint8)), form
                whole = kernels.spmm(A, X, transpose=tr)
                assert np.array_equal(whole.view(np.uint8), want.view(np.uint8)), form
                assert np.array_equal(np.isnan(whole), np.isnan(ref)), (dt, form, tr)
                assert np.allclose(whole, ref, rtol=tol, atol=tol * scale, equal_nan=True)
            n += 1
assert taken >= 80 and native >= 80, (taken, native)
print("ok", n, simd)
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_panel_path_bit_for_bit(simd):
    assert_child_says(run_on_simd(simd, _SAME_CODE, timeout=300), ["ok", "44", simd])


def _dead_half(K, N, dt, seed=0):
    X = np.random.default_rng(seed).standard_normal((K, N)).astype(dt)
    X[::2] = 0
    return X


def _dead_most(K, N, dt, seed=0):
    # 3 rows of 4 dead: where the zen4 baseline row prices the panels below the compaction
    # in column blocks (1.2 ns a weight, against 2.6 x the live share for the panel lists)
    X = np.random.default_rng(seed).standard_normal((K, N)).astype(dt)
    X[np.arange(K) % 4 != 0] = 0
    return X


def test_panels_cached_and_refreshed_by_set_values(monkeypatch):
    import dataclasses

    import scipy.sparse as sps

    from wsekern import kernels, pack
    base = kernels.cost_table()
    monkeypatch.setattr(kernels, "cost_table", lambda: dataclasses.replace(
        base, panel_nnz=0.0, panel_step=0.0, densify=1e9, spmm_scatter_mac=1.0))
    W = sps.random(100, 80, density=0.2, format="csr", dtype=np.float32, random_state=1)
    P = pack(W)
    X = _dead_half(80, 40, np.float32)
    assert kernels.spmm_path(P, X) == "panel-skip-rows"
    first = P.row_panels(kernels.PANEL_ROWS)
    assert all(a is b for a, b in zip(first, P.row_panels(kernels.PANEL_ROWS)))  # cached
    for values in (W.data * 3, -W.data):                 # the values follow set_values
        P.set_values(values)
        want = sps.csr_matrix((values, W.indices, W.indptr), shape=W.shape) @ X
        assert np.allclose(kernels.spmm(P, X), want, rtol=1e-5, atol=1e-5)
    # the transpose's own panels follow the original's values, and the other way round
    T = P.transpose()
    XT = _dead_half(100, 24, np.float32, 1)
    assert kernels.spmm_path(T, XT) == "panel-skip-rows"
    P.set_values(W.data * 5)
    assert np.allclose(kernels.spmm(T, XT), (W * 5).T @ XT, rtol=1e-5, atol=1e-4)
    T.set_values(T.data * 2)
    assert np.allclose(kernels.spmm(P, X), (W * 10) @ X, rtol=1e-5, atol=1e-4)
    assert np.allclose(kernels.spmm(T, XT), (W * 10).T @ XT, rtol=1e-5, atol=1e-4)


def test_panel_path_not_taken_for_nonfinite_or_thin_weights(monkeypatch):
    import dataclasses

    import scipy.sparse as sps

    from wsekern import kernels, pack
    base = kernels.cost_table()
    monkeypatch.setattr(kernels, "cost_table", lambda: dataclasses.replace(
        base, panel_nnz=0.0, panel_step=0.0, densify=1e9, spmm_scatter_mac=1.0))
    W = sps.random(90, 70, density=0.2, format="csr", dtype=np.float64, random_state=2)
    X = _dead_half(70, 20, np.float64)
    W.data[W.indices == 0] = np.inf                       # meets X's dead row 0
    W.data[W.indices == 2] = np.nan
    out = kernels.spmm(pack(W), X)
    assert kernels.spmm_path(pack(W), X) != "panel-skip-rows"
    ref = W @ X
    assert np.array_equal(np.isnan(out), np.isnan(ref)) and np.isnan(ref[:, 0]).any()
    # a W so thin that its panel pointers would outnumber its weights: no panels built
    thin = pack(sps.random(640, 3000, density=0.0004, format="csr", random_state=3))
    assert thin.row_panels(kernels.PANEL_ROWS) is None and thin._panels is None
    Xt = _dead_half(3000, 8, np.float64)
    assert kernels.spmm_path(thin, Xt) != "panel-skip-rows"
    assert np.allclose(kernels.spmm(thin, Xt), thin.to_scipy() @ Xt)
    # zero-size operands: the usual empty results
    for M, K, N in ((0, 5, 3), (4, 0, 3), (4, 5, 0)):
        P = pack(sps.random(M, K, density=0.5, format="csr", random_state=0))
        assert kernels.spmm(P, np.zeros((K, N))).shape == (M, N)
        assert not kernels.spmm(P, np.zeros((K, N))).any()


def test_panel_functions_refuse_inconsistent_arrays():
    assert_refused_in_child("""
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, pack
d = np.ones(4, np.float32); r = np.zeros(4, np.int32); p = np.zeros(2 * 3 + 1, np.int32)
X = np.ones((3, 5), np.float32); alive = np.ones(3, np.uint8); out = np.empty((70, 5), np.float32)
ind = np.array([0, 1, 2, 0], np.int32); ptr = np.array([0, 2, 4], np.int32)
P = pack(sps.random(70, 3, density=0.9, format="csr", dtype=np.float32, random_state=0))
pp, pr, pd, mr = P.row_panels(64)
far = pr.copy(); far[0] = 64                       # a row outside its panel
cases = [
    lambda: _spmm.panel_spmm_live(d, r, p[:-1], 64, 4, X, alive, out),    # short pointers
    lambda: _spmm.panel_spmm_live(d, r, p, 0, 4, X, alive, out),          # no rows a panel
    lambda: _spmm.panel_spmm_live(d, r, p, 64, 4, X, alive[:2], out),     # short flags
    lambda: _spmm.panel_spmm_live(d, r[:3], p, 64, 4, X, alive, out),     # rows != values
    lambda: _spmm.panel_spmm_live(d, r, p, 64, 4, X[:, :4], alive, out),  # X's width
    lambda: _spmm.panel_spmm_live(d, r, p, 64, -1, X, alive, out),        # max_row < 0
    lambda: _spmm.panel_spmm_live(pd, pr, pp, 64, mr - 1, X, alive, out), # rows too long
    lambda: _spmm.panel_spmm_live(pd, far, pp, 64, mr, X, alive, out),    # outside panel
    lambda: _spmm.build_row_panels(ind, ptr, 3, 64, p[:3], r, r.copy()),  # short pointers
    lambda: _spmm.build_row_panels(ind, ptr, 3, 0, p[:4], r, r.copy()),   # no rows a panel
    lambda: _spmm.build_row_panels(ind, ptr, 3, 64, p[:4], r[:3], r),     # short rows
]
""", 11)


def test_panel_route_follows_the_cost_table(monkeypatch):
    """The Zen 4 rows, 3 of 4 rows of X dead: the baseline path's compaction in column blocks
    (an extra pass over W) loses to the panels; AVX-512's compaction per row does not; a
    table that has not measured the path (panel_nnz None) never takes it. L2 and the
    column-block rule (tile width and L2 share of the path) fixed here."""
    import scipy.sparse as sps

    from wsekern import costs, kernels, pack
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 1 << 20)
    P = pack(sps.random(512, 2048, density=0.1, format="csr", dtype=np.float32,
                        random_state=4))
    X = _dead_most(2048, 64, np.float32)
    want = P.to_scipy() @ X
    for table, path, panels in ((("zen4", "baseline"), "baseline", True),
                                (("zen4", "avx512"), "avx512", False),
                                (("zen3", "baseline"), "baseline", False)):
        monkeypatch.setattr(kernels, "cost_table", lambda t=costs.TABLES[table]: t)
        monkeypatch.setattr(kernels, "_block_rule_in_use",
                            lambda p=path: (kernels.TILE_BYTES[p], kernels.L2_SHARE[p]))
        assert (kernels.spmm_path(P, X) == "panel-skip-rows") == panels, table
        assert np.allclose(kernels.spmm(P, X, n_threads=1), want, rtol=1e-4, atol=1e-4)


def test_panel_route_declines_a_w_with_one_long_row(monkeypatch):
    """Each thread's lists take PANEL_ROWS x (W's longest row) entries: one dense row in W
    would make them spill from L2 (or take gigabytes), so the route declines the panels
    there and another path gives the product."""
    import scipy.sparse as sps

    from wsekern import costs, kernels, pack
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 1 << 20)
    monkeypatch.setattr(kernels, "cost_table", lambda: costs.TABLES[("zen4", "baseline")])
    monkeypatch.setattr(kernels, "_block_rule_in_use",
                        lambda: (kernels.TILE_BYTES["baseline"], kernels.L2_SHARE["baseline"]))
    W = sps.random(512, 2048, density=0.1, format="lil", dtype=np.float32, random_state=4)
    X = _dead_most(2048, 64, np.float32)
    assert kernels.spmm_path(pack(W.tocsr()), X) == "panel-skip-rows"
    W[7, :] = 1.0                                   # 64 x 2048 x 8 B = 1 MiB of lists
    P = pack(W.tocsr())
    assert kernels.spmm_path(P, X) != "panel-skip-rows"
    assert np.allclose(kernels.spmm(P, X, n_threads=1), P.to_scipy() @ X, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("path", ["baseline", "avx2"])
def test_panels_guarded_where_x_passes_a_quarter_of_l2_and_w_fits(monkeypatch, path):
    """The Zen 4 baseline and AVX2 rows price the compaction in column blocks
    (``csr_compact_blocked``): X's live rows past a quarter of L2 (512 KiB of 1 MiB here) with
    W's arrays in L2 (0.8 MiB) take csr-skip-rows. On AVX2, whose rate is its csr_compact, the
    guard is all it changes: without the rate the panels are taken, and a W past L2 (3.2 MiB)
    still takes them. L2 and the block rule fixed here."""
    import dataclasses

    import scipy.sparse as sps

    from wsekern import costs, kernels, pack
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 1 << 20)
    monkeypatch.setattr(kernels, "_block_rule_in_use",
                        lambda: (kernels.TILE_BYTES[path], kernels.L2_SHARE[path]))
    table = costs.TABLES[("zen4", path)]
    X = _dead_half(2048, 128, np.float32)
    small = pack(sps.random(512, 2048, density=0.1, format="csr", dtype=np.float32,
                            random_state=4))
    cases = [(table, "csr-skip-rows")]
    if path == "avx2":
        assert table.csr_compact_blocked == table.csr_compact
        # at the rate before s18 (1.2; 0.9 now prices csr-skip-rows below the panels
        # without the guard, as the whole calls measured at N 80-128): there the guard
        # alone decides (s18 review_n2: the case at 0.9 passes with the guard removed)
        cases.append((dataclasses.replace(table, csr_compact=1.2, csr_compact_blocked=1.2),
                      "csr-skip-rows"))
        cases.append((dataclasses.replace(table, csr_compact=1.2, csr_compact_blocked=None),
                      "panel-skip-rows"))
    for t, route in cases:
        monkeypatch.setattr(kernels, "cost_table", lambda t=t: t)
        assert kernels.spmm_path(small, X) == route, (t.name, t.csr_compact_blocked)
        assert np.allclose(kernels.spmm(small, X, n_threads=1), small.to_scipy() @ X,
                           rtol=1e-4, atol=1e-4)
    if path == "avx2":
        # the guard at the rate before s18: with 0.9 the big W takes csr-skip-rows on the
        # rate alone (1.26x faster than the panels, whole calls, avx2 path, fp32 N = 128)
        old = dataclasses.replace(table, csr_compact=1.2, csr_compact_blocked=1.2)
        monkeypatch.setattr(kernels, "cost_table", lambda: old)
        big = pack(sps.random(512, 2048, density=0.4, format="csr", dtype=np.float32,
                              random_state=4))
        assert kernels.spmm_path(big, X) == "panel-skip-rows"
        assert np.allclose(kernels.spmm(big, X, n_threads=1), big.to_scipy() @ X,
                           rtol=1e-3, atol=1e-3)
