"""The simulator against cycles measured on a WSE-3, and the mesh mappings behind them
(MeshGEMV, MeshGEMM): placements, both models, and the products they compute."""
import numpy as np
import pytest
import scipy.sparse as sps

from wsekern.cli import main
from wsekern.errors import SramOverflowError
from wsekern.wafer import Wafer, WaferConfig, hardware, mesh, mesh_event

WSE3 = hardware.wse3()


def test_calibration_data_ships_with_its_source():
    rows = hardware.rows()
    assert sum(r["kernel"] == "MeshGEMV" for r in rows) == 15
    assert sum(r["kernel"] == "MeshGEMM" for r in rows) == 13
    from importlib import resources
    head = resources.files("wsekern.wafer").joinpath("data", "wse3_meshgemv.csv").read_text()
    assert "FxPiGaAo/WaferLLM" in head and "WSE-3" in head


@pytest.mark.parametrize("mode", ["analytic", "event"])
def test_every_measured_point_within_ten_percent(mode):
    """The issue's target: each model within 10% of every WSE-3 point, median <= 3%
    (before: weight-stationary chains 4-6x too slow, SUMMA 8x too fast)."""
    table = hardware.compare(event=mode == "event")
    err = np.abs([r[mode + "_error"] for r in table])
    worst = table[int(np.argmax(err))]
    assert err.max() <= 0.10, (worst, err.max())
    assert np.median(err) <= 0.03


def test_out_of_sample_points_of_the_issue():
    """Rows quoted in the issue that the fit never saw (8-wide GEMV, 8x8x8 tiles on 720x720,
    16x16x16 tiles on 64x64): the same model, unchanged, within 15%."""
    rows = [dict(kernel="MeshGEMV", P=720, M=5760, N=5760, K=None, group_num=8, measured=2358),
            dict(kernel="MeshGEMV", P=144, M=1152, N=1152, K=None, group_num=8, measured=632),
            dict(kernel="MeshGEMM", P=720, M=5760, K=5760, N=5760, group_num=None,
                 measured=480748),
            dict(kernel="MeshGEMM", P=64, M=1024, K=1024, N=1024, group_num=None,
                 measured=141351)]
    for r in hardware.compare(event=False, selected=rows):
        assert abs(r["analytic_error"]) <= 0.15, r


def test_group_count_trades_depth_as_measured():
    """At P=80 the measured order is group_num 2 > 4 > 8 cycles; the model follows the
    mechanism (fewer groups, longer chains) rather than the points."""
    cyc = [mesh.meshgemv(WSE3, (0, 0, 80, 80), g, M=80, K=80, local_product=False,
                         full=False).cycles for g in (2, 4, 8)]
    assert cyc[0] > cyc[1] > cyc[2]


def test_ring_keeps_every_shift_within_two_hops():
    for P in (1, 2, 3, 4, 7, 16, 81):
        hops = mesh.ring_hops(P)
        assert len(hops) == P and hops.max(initial=0) <= 2
        if P >= 3:
            assert (hops == 1).sum() == 2          # the two turns
    # the ring visits every physical position once
    P = 9
    out = (P + 1) // 2
    phys = np.r_[2 * np.arange(out), 2 * np.arange(P - out)[::-1] + 1]
    assert sorted(phys) == list(range(P))


def test_group_num_is_checked_with_what_would_work():
    with pytest.raises(ValueError, match=r"group_num=7 .*valid here: \[2, 4, 5, 8, 10"):
        mesh.meshgemv(WSE3, (0, 0, 80, 80), 7, M=80, K=80)
    with pytest.raises(mesh.MappingUnfit, match="at least 4 PEs"):
        mesh.meshgemv(WSE3, (0, 0, 3, 3), M=30, K=30)
    limited = WSE3.with_(routing_paths_per_pe=4)
    assert max(mesh.group_nums(limited, 80)) == 4


@pytest.mark.parametrize("shape,region,g", [((37, 53), (8, 5), 2), ((64, 48), (12, 4), 3),
                                            ((16, 16), (4, 4), 2), ((90, 200), (20, 9), 5)])
def test_meshgemv_event_computes_the_product(shape, region, g):
    rng = np.random.default_rng(sum(shape))
    W = rng.standard_normal(shape)
    x = rng.standard_normal(shape[1]) * (rng.random(shape[1]) > 0.3)
    reg = (0, 0) + region
    y, rep = mesh_event.meshgemv(WSE3, reg, g, W=W, x=x)
    np.testing.assert_allclose(y, W @ x, rtol=1e-12, atol=1e-12)
    ana = mesh.meshgemv(WSE3, reg, g, W=W, x=x)
    # the event run follows every PE, the analytic model the slowest one's path
    assert rep.cycles <= ana.cycles + 1e-9
    assert rep.cycles >= 0.9 * ana.cycles
    assert rep.macs_performed + rep.macs_skipped_weight + rep.macs_skipped_activation \
        == rep.macs_dense


def test_meshgemv_sparse_tiles_and_zero_activations_cost_less():
    rng = np.random.default_rng(3)
    W = sps.random(400, 400, density=0.002, random_state=4, format="csr")
    x = rng.standard_normal(400)
    dense = mesh.meshgemv(WSE3, (0, 0, 8, 8), 2, W=rng.standard_normal((400, 400)), x=x)
    sparse = mesh.meshgemv(WSE3, (0, 0, 8, 8), 2, W=W, x=x)
    assert sparse.details["compressed_blocks"] > 0
    assert sparse.cycles < dense.cycles
    assert sparse.macs_performed == W.nnz
    quiet = mesh.meshgemv(WSE3, (0, 0, 8, 8), 2, W=W, x=np.zeros(400))
    assert quiet.cycles < sparse.cycles and quiet.macs_useful == 0
    y, _ = mesh_event.meshgemv(WSE3, (0, 0, 8, 8), 2, W=W, x=x)
    np.testing.assert_allclose(y, W @ x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,P", [((16, 16, 16), 4), ((37, 23, 29), 5), ((8, 40, 3), 6),
                                     ((5, 5, 5), 1)])
def test_meshgemm_event_computes_the_product(shape, P):
    M, K, N = shape
    rng = np.random.default_rng(M)
    A, B = rng.standard_normal((M, K)), rng.standard_normal((K, N))
    C, rep = mesh_event.meshgemm(WSE3, (0, 0, P, P), A=A, B=B)
    np.testing.assert_allclose(C, A @ B, rtol=1e-12, atol=1e-12)
    assert abs(rep.cycles - rep.details["analytic"]) <= 0.02 * rep.details["analytic"]


def test_event_work_is_estimated_and_refused_before_it_is_spent(monkeypatch):
    A = np.ones((20, 20))
    monkeypatch.setattr(mesh_event, "PRODUCT_LIMIT", 1000)
    with pytest.raises(ValueError, match=r"8e\+03 MACs .*pass M, K, N"):
        mesh_event.meshgemm(WSE3, (0, 0, 4, 4), A=A, B=A)
    monkeypatch.setattr(mesh_event, "EVENT_LIMIT", 100)
    with pytest.raises(ValueError, match="smaller region"):
        mesh_event.meshgemm(WSE3, (0, 0, 16, 16), M=16, K=16, N=16)


def test_meshgemm_tiles_are_double_buffered_in_the_ledger():
    with pytest.raises(SramOverflowError, match="X tiles \\(double-buffered\\)"):
        mesh.meshgemm(WSE3, (0, 0, 4, 4), M=1024, K=1024, N=1024)
    rep = mesh.meshgemm(WSE3, (0, 0, 4, 4), M=64, K=64, N=64)
    elem = WSE3.elem_bytes
    assert rep.sram_bytes[0, 0] == WSE3.reserve_bytes + (2 * 256 + 2 * 256 + 256) * elem


def test_placer_uses_meshgemv_for_a_gemv():
    """The issue's GEMV 1152 x 1152 on 144 x 144: the chain was 4.4x too slow; the grouped
    reduction is the placer's choice, and the event run computes the same y."""
    rng = np.random.default_rng(0)
    W, x = rng.standard_normal((1152, 1152)), rng.standard_normal(1152)
    wafer = Wafer(WaferConfig.wse3(dtype="fp16"))
    _, chain = wafer.spmm(W, x, region=(144, 144), mapping="weight-stationary", compute=False)
    _, grouped = wafer.spmm(W, x, region=(144, 144), compute=False)
    assert grouped.mapping == "meshgemv" and grouped.cycles < chain.cycles / 2
    y, rep = wafer.spmm(W[:200, :300], x[:300], region=(12, 10), mode="event")
    np.testing.assert_allclose(y, W[:200, :300] @ x[:300], rtol=1e-9)
    with pytest.raises(ValueError, match="one column"):
        wafer.spmm(W[:20, :20], np.ones((20, 2)), region=(4, 4), mapping="meshgemv")


def test_placer_picks_meshgemm_at_wafer_scale():
    """SUMMA's broadcast crosses the region every step; Cannon's shifts are two hops."""
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((720, 720)), rng.standard_normal((720, 720))
    wafer = Wafer(WaferConfig.wse3(dtype="fp16"))
    _, summa = wafer.matmul(A, B, region=(720, 720), mapping="summa", compute=False)
    _, picked = wafer.matmul(A, B, region=(720, 720), compute=False)
    assert picked.mapping == "meshgemm" and picked.cycles < summa.cycles
    assert abs(picked.cycles - 114748.4) / 114748.4 < 0.10
    with pytest.raises(ValueError, match="matmul mapping"):
        wafer.matmul(A, B, mapping="cannon")
    _, rect = wafer.matmul(A[:64], B[:, :32], region=(8, 4), compute=False)
    assert rect.mapping == "summa"


def test_cli_validate_hardware(capsys):
    assert main(["validate", "--hardware", "--no-event"]) == 0
    out = capsys.readouterr().out
    assert "MeshGEMV" in out and "MeshGEMM" in out and "720x720" in out
    assert "analytic: median" in out and "met" in out
