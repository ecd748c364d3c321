"""The simulated wafer: configuration, results, invariants, closed forms, SRAM, placement."""
import json

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import random_csr

import wsekern as wk
from wsekern.wafer.analytic import _distinct_per_block
from wsekern.wafer.ledger import SramLedger
from wsekern.wafer.placement import block_of, bounds


def _problem(M=96, K=80, N=12, w_density=0.2, x_density=0.5, seed=0):
    rng = np.random.default_rng(seed)
    W = random_csr(M, K, w_density, seed=seed)
    X = rng.standard_normal((K, N)) * (rng.random((K, N)) < x_density)
    return W, X


def _structural_useful(W, X):
    """Independent count: pairs of a nonzero weight and a nonzero activation."""
    return int(((W.toarray() != 0).astype(np.int64) @ (X != 0).astype(np.int64)).sum())


# -- configuration --------------------------------------------------------------------
def test_presets_and_overrides():
    w2, w3 = wk.WaferConfig.wse2(), wk.WaferConfig.wse3()
    assert (w2.rows, w2.cols, w2.sram_bytes, w2.clock_hz) == (750, 994, 49_152, 850e6)
    assert w2.data_bytes == 44_976
    assert w3.hop_cycles == 2 and w3.turn_cycles == 20 and w3.fmac_per_cycle["fp32"] == 0.5
    assert wk.WaferConfig.wse2(dtype="fp32").fmacs == 1.0
    small = wk.WaferConfig.small(4, 6)
    assert (small.rows, small.cols) == (4, 6)
    assert json.dumps(w2.to_dict())


@pytest.mark.parametrize("kwargs, match", [
    (dict(rows=0), "rows"), (dict(cols=-3), "cols"), (dict(reserve_bytes=50_000), "reserve"),
    (dict(dtype="bf16"), "dtype"), (dict(clock_hz=0), "clock_hz"), (dict(hop_cycles=-1), "hop"),
    (dict(fmac_per_cycle={"fp32": 1.0}), "fmac_per_cycle"),
])
def test_impossible_configs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        wk.WaferConfig(**kwargs)


# -- results equal the CPU kernels ----------------------------------------------------------
@pytest.mark.parametrize("mapping", [None, "weight-stationary", "activation-stationary"])
def test_spmm_result_is_the_cpu_result(mapping):
    W, X = _problem()
    Y, report = wk.Wafer(wk.WaferConfig.small(6, 6)).spmm(W, X, mapping=mapping)
    np.testing.assert_array_equal(Y, wk.spmm(W, X))
    assert isinstance(report, wk.SimReport)
    if mapping:
        assert report.mapping == mapping


def test_other_kernels_return_cpu_results():
    wafer = wk.Wafer(wk.WaferConfig.small(4, 4))
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((20, 8)), rng.standard_normal((15, 8))
    P = random_csr(20, 15, 0.3)
    S, rep = wafer.sddmm(A, B, P)
    np.testing.assert_array_equal(S.toarray(), wk.sddmm(A, B, P).toarray())
    assert rep.macs_performed == P.nnz * 8
    C, rep = wafer.matmul(A, B.T)
    np.testing.assert_array_equal(C, A @ B.T)
    x = rng.standard_normal((2, 4, 8, 8))
    w = rng.standard_normal((6, 4, 3, 3)) * (rng.random((6, 4, 3, 3)) < 0.3)
    y, rep = wafer.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(y, wk.conv2d(x, w, padding=1))
    assert rep.macs_dense == 2 * 6 * 4 * 9 * 64


@pytest.mark.parametrize("shape, region", [((44, 3), (2, 8)), ((3, 44), (8, 2)),
                                           ((5, 4), (8, 8))])
def test_sddmm_more_pes_than_rows_and_columns(shape, region):
    # regions with more PE rows or columns than the pattern has: the idle PEs hold nothing
    # (add.reduceat raised IndexError here, and counted a repeated bound's column)
    P = random_csr(*shape, 0.5, seed=3)
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((shape[0], 8)), rng.standard_normal((shape[1], 8))
    config = wk.WaferConfig.small(8, 8)
    S, rep = wk.Wafer(config).sddmm(A, B, P, region=region)
    np.testing.assert_allclose(S.toarray(), (A @ B.T) * (P.toarray() != 0))
    R, C = region
    m_b, n_b = bounds(shape[0], R), bounds(shape[1], C)
    coo = P.tocoo()
    cols = np.zeros((R, C), np.int64)          # distinct columns per block, counted by sets
    nnz = np.zeros((R, C), np.int64)
    for r in range(R):
        for c in range(C):
            inside = ((coo.row >= m_b[r]) & (coo.row < m_b[r + 1])
                      & (coo.col >= n_b[c]) & (coo.col < n_b[c + 1]))
            cols[r, c] = len(set(coo.col[inside].tolist()))
            nnz[r, c] = inside.sum()
    rb = block_of(m_b, shape[0])[coo.row]
    np.testing.assert_array_equal(_distinct_per_block(rb, coo.col, n_b, R), cols)
    t_dot = config.setup_cycles + np.ceil(8 / config.fmacs) + np.log2(config.fmacs) + 1
    np.testing.assert_allclose(rep.busy_cycles[:R, :C], cols * config.task_cycles + nnz * t_dot)


# -- invariants -------------------------------------------------------------------------
CASES = [dict(), dict(w_density=0.02, x_density=0.1), dict(w_density=1.0, x_density=1.0),
         dict(M=40, K=300, N=3, w_density=0.05), dict(M=300, K=30, N=1, x_density=0.9),
         dict(w_density=0.0)]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mapping", ["weight-stationary", "activation-stationary"])
@pytest.mark.parametrize("region", [(1, 2), (3, 3), (5, 4), (2, 0, 3, 7)])
@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_report_invariants(case, mapping, region, dtype):
    W, X = _problem(**case)
    cfg = wk.WaferConfig.small(6, 8, dtype=dtype)
    _, r = wk.Wafer(cfg).spmm(W, X, region=region, mapping=mapping)
    assert (r.sram_bytes <= cfg.sram_bytes).all()
    assert r.macs_useful == _structural_useful(W, X)
    assert r.macs_useful <= r.macs_performed
    assert r.macs_performed + r.macs_skipped_weight + r.macs_skipped_activation == r.macs_dense
    assert min(r.macs_performed, r.macs_skipped_weight, r.macs_skipped_activation) >= 0
    assert r.cycles_lower <= r.cycles <= r.cycles_upper
    assert r.busy_cycles.shape == (6, 8) and r.link_wavelets.shape == (6, 8, 4)
    assert r.dtype == dtype and r.region[2:] == tuple(region[-2:])
    assert 0 <= r.utilization <= 1
    assert r.energy_joules > 0
    _, again = wk.Wafer(cfg).spmm(W, X, region=region, mapping=mapping)
    assert again.to_dict() == r.to_dict()                       # deterministic


@pytest.mark.parametrize("mapping", ["weight-stationary", "activation-stationary"])
def test_zeros_added_to_the_streamed_operand_never_cost_cycles(mapping):
    rng = np.random.default_rng(3)
    W, X = _problem(w_density=0.3, x_density=0.9)
    cfg = wk.WaferConfig.small(4, 4)
    streamed = "X" if mapping == "weight-stationary" else "W"
    previous = np.inf
    for drop in (0.0, 0.3, 0.6, 0.9, 1.0):
        if streamed == "X":
            X2, W2 = X * (rng.random(X.shape) >= drop), W
        else:
            W2, X2 = W.multiply(rng.random(W.shape) >= drop).tocsr(), X
        _, r = wk.Wafer(cfg).spmm(W2, X2, region=(4, 4), mapping=mapping)
        assert r.cycles <= previous
        previous = r.cycles
        W, X = W2, X2


def test_larger_region_does_not_slow_a_compute_bound_op():
    W, X = _problem(M=512, K=512, N=32, w_density=0.5, x_density=0.9)
    wafer = wk.Wafer(wk.WaferConfig.small(16, 16))
    previous = np.inf
    for side in (4, 8, 12, 16):
        _, r = wafer.spmm(W, X, region=(side, side), mapping="weight-stationary")
        assert r.bottleneck in ("compute", "scalar")
        assert r.cycles <= previous
        previous = r.cycles


def test_weight_stationary_counts_by_hand():
    """One PE column, dense blocks: the work and the wavelets have closed forms."""
    cfg = wk.WaferConfig.small(2, 1)
    W = sps.csr_array(np.ones((8, 6)))
    X = np.zeros((6, 3))
    X[[0, 2], 0] = 1.0       # sample 0: 2 nonzeros; sample 1: none; sample 2: 6
    X[:, 2] = 2.0
    _, r = wk.Wafer(cfg).spmm(W, X, region=(2, 1), mapping="weight-stationary")
    t_task = cfg.task_cycles + cfg.setup_cycles + np.ceil(4 / cfg.fmacs)   # 4 rows per PE
    busy = (2 + 0 + 6) * t_task + 3 * cfg.task_cycles                      # + end-of-stream
    np.testing.assert_allclose(r.busy_cycles[:, 0], [busy, busy])
    assert r.link_wavelets[0, 0, 2] == (2 + 0 + 6) + 3                      # south: nonzeros + EOS
    assert r.macs_performed == 8 * (2 + 6)
    assert r.macs_skipped_activation == 8 * 6 * 3 - 8 * 8


# -- closed forms on one PE ---------------------------------------------------------------
def test_resident_gemv_and_gemm_closed_forms():
    cfg = wk.WaferConfig.wse2()
    rng = np.random.default_rng(0)
    for (M, K, N) in ((32, 16, 1), (20, 24, 7)):
        A, B = rng.standard_normal((M, K)), rng.standard_normal((K, N))
        _, r = wk.Wafer(cfg).matmul(A, B, region=(1, 1))
        assert r.mapping == "resident"
        assert r.cycles == K * N * (cfg.setup_cycles + np.ceil(M / cfg.fmacs)) + cfg.task_cycles
        assert r.sram_bytes[0, 0] == (M * K + K * N + M * N) * 2 + cfg.reserve_bytes
        assert r.macs_performed == M * K * N


def test_largest_gemv_that_fits_one_pe():
    """(n^2 + 2n) fp16 values plus the 4,176 B reserve within 49,152 B: n = 148."""
    cfg = wk.WaferConfig.wse2()
    n = max(n for n in range(1, 400) if (n * n + 2 * n) * 2 + cfg.reserve_bytes <= cfg.sram_bytes)
    assert n == 148
    wafer = wk.Wafer(cfg)
    wafer.matmul(np.ones((n, n)), np.ones((n, 1)), region=(1, 1))
    with pytest.raises(wk.SramOverflowError) as info:
        wafer.matmul(np.ones((n + 1, n + 1)), np.ones((n + 1, 1)), region=(1, 1))
    err = info.value
    assert err.pe == (0, 0) and err.needed > err.capacity == 49_152
    assert "A" in err.breakdown and "reserve" in str(err)


def test_too_small_wafer_overflows_and_a_larger_one_fits():
    W = random_csr(400, 400, 0.5, seed=1)
    X = np.ones((400, 4))
    small = wk.Wafer(wk.WaferConfig.small(1, 2))
    with pytest.raises(wk.SramOverflowError, match="needs .* B of SRAM"):
        small.spmm(W, X, mapping="weight-stationary")
    # The placer falls back to weight streaming, where only X must fit.
    _, r = small.spmm(W, X)
    assert r.mapping == "activation-stationary"
    _, r = wk.Wafer(wk.WaferConfig.small(8, 8)).spmm(W, X, mapping="weight-stationary")
    assert (r.sram_bytes <= 49_152).all()
    with pytest.raises(wk.SramOverflowError):      # neither mapping fits: X too large too
        small.spmm(W, np.ones((400, 200)))


def test_overflow_error_is_a_wsekern_error():
    assert issubclass(wk.SramOverflowError, wk.WsekernError)


# -- placement ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [dict(M=200, K=160, N=16, w_density=0.1),
                                  dict(M=64, K=400, N=4, w_density=0.3, x_density=0.2),
                                  dict(M=300, K=300, N=64, w_density=0.05, x_density=0.9)])
def test_placer_within_5_percent_of_brute_force(case):
    W, X = _problem(**case)
    cfg = wk.WaferConfig.small(12, 12)
    wafer = wk.Wafer(cfg)
    _, chosen = wafer.spmm(W, X)
    best = np.inf
    for mapping in ("weight-stationary", "activation-stationary"):
        for R in range(1, 13):
            for C in range(1, 13):
                try:
                    _, r = wafer.spmm(W, X, region=(R, C), mapping=mapping)
                except wk.SramOverflowError:
                    continue
                best = min(best, r.cycles)
    assert chosen.cycles <= 1.05 * best


def test_region_validation():
    wafer = wk.Wafer(wk.WaferConfig.small(4, 4))
    W, X = _problem()
    with pytest.raises(ValueError, match="does not lie within"):
        wafer.spmm(W, X, region=(5, 1))
    with pytest.raises(ValueError, match="mapping must be"):
        wafer.spmm(W, X, mapping="row-stationary")
    with pytest.raises(TypeError, match="region"):
        wafer.spmm(W, X, region="big")


# -- golden: the vendor's spmv-hypersparse memory formula ---------------------------------
# The formula and the mapping's buffers, allocated through the SRAM ledger (test-only).
def spmv_hypersparse_memory_per_pe(nnz, nnz_cols, nnz_rows, vec, out_vec):
    """memory_per_pe() of sdk-examples spmv-hypersparse, in bytes:
    (4+2)*nnz + 3*2*nnz_cols + 5*4*vec + 2*nnz_rows + 4*(4+2)*nnz_rows + 4*out_vec."""
    return ((4 + 2) * nnz + 3 * 2 * nnz_cols + 5 * 4 * vec + 2 * nnz_rows
            + 4 * (4 + 2) * nnz_rows + 4 * out_vec)


def spmv_hypersparse_ledger(W, config, grid):
    """Allocate the spmv-hypersparse mapping's buffers by name on a ``grid`` of PEs.

    A is 2-D partitioned; each PE stores fp32 values with 16-bit local indices, per
    nonzero column a (pointer, length, index) triple, the x slice in five buffers
    (``vec``), per nonzero row its index and four (fp32 value, 16-bit index) partial
    buffers for the east/west trains, and the y slice (``out_vec``).
    Returns the ledger (without the code reserve check) and the per-PE formula inputs.
    """
    W = sps.csr_array(W)
    R, C = grid
    m_b, k_b = bounds(W.shape[0], R), bounds(W.shape[1], C)
    coo = W.tocoo()
    rb, cb = block_of(m_b, W.shape[0])[coo.row], block_of(k_b, W.shape[1])[coo.col]
    nnz = np.zeros((R, C), np.int64)
    np.add.at(nnz, (rb, cb), 1)
    cols = _distinct_per_block(rb, coo.col, k_b, R)          # nonzero columns per PE
    rows = _distinct_per_block(cb, coo.row, m_b, C).T        # nonzero rows per PE
    vec = np.broadcast_to(np.diff(k_b)[None, :], (R, C))
    out_vec = np.broadcast_to(np.diff(m_b)[:, None], (R, C))
    ledger = SramLedger(config.with_(reserve_bytes=0), (0, 0, R, C))
    ledger.alloc("values (fp32) + 16-bit row indices", (4 + 2) * nnz)
    ledger.alloc("column pointer, length, index (3 x 16-bit)", 3 * 2 * cols)
    ledger.alloc("x slice, 5 fp32 buffers", 5 * 4 * vec)
    ledger.alloc("nonzero row indices (16-bit)", 2 * rows)
    ledger.alloc("partial y trains, 4 x (fp32 + 16-bit index)", 4 * (4 + 2) * rows)
    ledger.alloc("y slice (fp32)", 4 * out_vec)
    return ledger, dict(nnz=nnz, nnz_cols=cols, nnz_rows=rows, vec=vec, out_vec=out_vec)


@pytest.mark.parametrize("seed, shape, density, grid", [(0, (64, 64), 0.05, (4, 4)),
                                                       (1, (100, 37), 0.2, (3, 5)),
                                                       (2, (256, 256), 0.01, (8, 2))])
def test_spmv_hypersparse_memory_formula(seed, shape, density, grid):
    W = random_csr(*shape, density, seed=seed)
    ledger, _ = spmv_hypersparse_ledger(W, wk.WaferConfig.wse2(), grid)
    total = ledger.total()
    R, C = grid
    m_b = np.linspace(0, shape[0], R + 1).round().astype(int)
    k_b = np.linspace(0, shape[1], C + 1).round().astype(int)
    dense = W.toarray()
    for r in range(R):
        for c in range(C):
            block = dense[m_b[r]:m_b[r + 1], k_b[c]:k_b[c + 1]]
            expected = spmv_hypersparse_memory_per_pe(
                nnz=np.count_nonzero(block), nnz_cols=np.count_nonzero(block.any(axis=0)),
                nnz_rows=np.count_nonzero(block.any(axis=1)), vec=block.shape[1],
                out_vec=block.shape[0])
            assert total[r, c] == expected


# -- reports --------------------------------------------------------------------------------
def test_report_add_to_dict_str_and_plot(tmp_path):
    W, X = _problem()
    wafer = wk.Wafer(wk.WaferConfig.small(6, 6))
    _, a = wafer.spmm(W, X, region=(2, 2))
    _, b = wafer.spmm(W, X, region=(0, 2, 3, 3), mapping="activation-stationary")
    s = a + b
    assert s.cycles == a.cycles + b.cycles and s.macs_useful == a.macs_useful + b.macs_useful
    np.testing.assert_array_equal(s.busy_cycles, a.busy_cycles + b.busy_cycles)
    np.testing.assert_array_equal(s.sram_bytes, np.maximum(a.sram_bytes, b.sram_bytes))
    assert s.energy_joules == pytest.approx(a.energy_joules + b.energy_joules)
    assert 0 < s.utilization <= 1
    d = json.loads(json.dumps(s.to_dict()))
    assert d["cycles"] == s.cycles and d["mapping"] == "weight-stationary+activation-stationary"
    text = str(a)
    assert "cycles" in text and "bottleneck" in text and "utilization" in text
    pytest.importorskip("matplotlib")
    a.plot(tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 1000
