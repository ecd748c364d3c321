"""Cycles measured on a WSE-3 (wsekern/wafer/data/wse3_*.csv) against both models.

The rows are WaferLLM's MeshGEMV and MeshGEMM runs (see the files' headers for the source);
``compare()`` costs each with ``Wafer(WaferConfig.wse3(dtype="fp16"))``'s parameters on the
measured P x P region and placement (group_num as measured), analytic and event.
"""
import csv
from importlib import resources

import numpy as np

from . import mesh, mesh_event
from .config import WaferConfig

FILES = {"MeshGEMV": "wse3_meshgemv.csv", "MeshGEMM": "wse3_meshgemm.csv"}
TARGET = (0.03, 0.10)      # median and worst |error| the calibration must meet


def rows(kinds=tuple(FILES)):
    """[{kernel, P, M, K, N, group_num, measured}] from the packaged data."""
    out = []
    for kind in kinds:
        text = resources.files("wsekern.wafer").joinpath("data", FILES[kind]).read_text()
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        for rec in csv.DictReader(lines):
            row = {"kernel": kind, "P": int(rec["P"]), "measured": float(rec["mean_cycles"])}
            if kind == "MeshGEMV":      # y[1,N] = x[1,M] @ W[M,N]: wsekern's W is N x M
                row.update(M=int(rec["M"]), K=None, N=int(rec["N"]),
                           group_num=int(rec["group_num"]))
            else:
                row.update(M=int(rec["M"]), K=int(rec["K"]), N=int(rec["N"]), group_num=None)
            out.append(row)
    return out


def wse3(**overrides):
    """The calibrated WSE-3 parameters on a grid large enough for every measured P."""
    return WaferConfig.wse3(dtype="fp16", rows=762, cols=1172).with_(**overrides)


def predict(row, config, mode="analytic"):
    """Cycles of one measured row under ``config`` (analytic or event model)."""
    P = row["P"]
    region = (0, 0, P, P)
    if row["kernel"] == "MeshGEMV":
        # the measured program compiles its local product out (zeroing + allreduce timed)
        args = dict(M=row["N"], K=row["M"], local_product=False)
        if mode == "event":
            return mesh_event.meshgemv(config, region, row["group_num"], **args)[1].cycles
        return mesh.meshgemv(config, region, row["group_num"], full=False, **args).cycles
    args = dict(M=row["M"], K=row["K"], N=row["N"])
    if mode == "event":
        return mesh_event.meshgemm(config, region, **args)[1].cycles
    return mesh.meshgemm(config, region, full=False, **args).cycles


def shape(row):
    if row["kernel"] == "MeshGEMV":
        return f"{row['M']}x{row['N']} g{row['group_num']}"
    return f"{row['M']}x{row['K']}x{row['N']}"


def compare(config=None, event=True, selected=None):
    """Rows with analytic and event cycles and their relative errors."""
    config = config or wse3()
    out = []
    for row in selected if selected is not None else rows():
        r = dict(row)
        r["analytic"] = predict(row, config)
        r["analytic_error"] = (r["analytic"] - row["measured"]) / row["measured"]
        if event:
            r["event"] = predict(row, config, "event")
            r["event_error"] = (r["event"] - row["measured"]) / row["measured"]
        out.append(r)
    return out


def summary(table):
    """{model: (median |error|, worst |error|, met)} over the table."""
    out = {}
    for model in ("analytic", "event"):
        key = model + "_error"
        if table and key in table[0]:
            err = np.abs([r[key] for r in table])
            med, worst = float(np.median(err)), float(err.max())
            out[model] = (med, worst, bool(med <= TARGET[0] and worst <= TARGET[1]))
    return out


def format_table(table):
    has_event = bool(table) and "event" in table[0]
    head = f"{'kernel':<9}{'grid':>9}  {'shape':<16}{'measured':>10}{'analytic':>10}"
    head += f"{'event':>10}{'error a':>9}{'error e':>9}" if has_event else f"{'error':>9}"
    lines = [head]
    for r in table:
        line = (f"{r['kernel']:<9}{r['P']:>4}x{r['P']:<4}  {shape(r):<16}{r['measured']:>10,.0f}"
                f"{r['analytic']:>10,.0f}")
        if has_event:
            line += f"{r['event']:>10,.0f}{r['analytic_error']:>+9.1%}{r['event_error']:>+9.1%}"
        else:
            line += f"{r['analytic_error']:>+9.1%}"
        lines.append(line)
    for model, (med, worst, met) in summary(table).items():
        lines.append(f"{model}: median |error| {med:.1%}, worst {worst:.1%} (target "
                     f"{TARGET[0]:.0%} / {TARGET[1]:.0%}: {'met' if met else 'MISSED'})")
    return "\n".join(lines)
