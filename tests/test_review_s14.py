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
