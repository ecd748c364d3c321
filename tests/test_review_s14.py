"""Review of s14's merges: small tests of what the review found."""
import numpy as np

from wsekern.wafer import WaferConfig, mesh_event


def test_an_event_report_of_the_mesh_models_prints():
    """MeshGEMV's and MeshGEMM's event models mark their reports mode="event" without the
    event engine's figures (events, stalls, CPU seconds): printing one raised KeyError
    ('stalls'), and with it ``wsekern simulate spmm --mode event --mapping meshgemv``."""
    cfg = WaferConfig.wse2()
    _, gemv = mesh_event.meshgemv(cfg, (0, 0, 4, 4), 2, W=np.ones((16, 16)), x=np.ones(16))
    _, gemm = mesh_event.meshgemm(cfg, (0, 0, 2, 2), A=np.ones((8, 8)), B=np.ones((8, 8)))
    for rep in (gemv, gemm):
        assert rep.details["mode"] == "event"
        text = str(rep)
        assert "cycles" in text and "event simulation" not in text


def test_csr_spmm_refuses_x_and_out_of_other_widths():
    """_spmm.csr_spmm reads N = out's columns from each row of X (and, with x_rows, copies
    them straight from X): an X narrower than out was read past its end, silently."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
import numpy as np, scipy.sparse as sps
from wsekern import _spmm
W = sps.random(20, 30, density=0.3, format="csr", dtype=np.float32, random_state=0)
X = np.ones((30, 4), np.float32)
out = np.empty((20, 4096), np.float32)
remap, rows = _spmm.live_map(np.ones(30, np.uint8), 30, np.int32)
cases = [
    lambda: _spmm.csr_spmm(W.data, W.indices, W.indptr, X, out),
    lambda: _spmm.csr_spmm(W.data, W.indices, W.indptr, X, out, None, 1, 0, True),
    lambda: _spmm.csr_spmm(W.data, W.indices, W.indptr, X, out, remap, 1, 8, x_rows=rows),
    lambda: _spmm.csr_spmm(W.data, W.indices, W.indptr[:-1], X, np.empty((20, 4), np.float32)),
]
""", 4, needles=("columns", "indptr"))
