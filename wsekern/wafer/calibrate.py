"""How the instruction-level constants of WaferConfig were obtained from the WSE-3 data.

``python -m wsekern.wafer.calibrate`` refits them and prints both fits:

1. *generalisation*: fit on the 1-wide rows only (MeshGEMV at group_num 8, MeshGEMM with
   1x1x1 tiles) with the two length-dependent constants held at the measurement study's
   values (fabric element 1.125 cycles per wavelet, a vector op issued in a loop ~8 cycles
   [M]); then predict the rows it did not see (8-wide tiles, the group_num sweep);
2. *defaults*: fit on every row; WaferConfig's defaults are these values, rounded.

The model is mesh.py's analytic critical path, the fit a least-squares on relative errors
(scipy.optimize.least_squares). Fixed, not fitted: hop 2 cycles, ramp 2, DSD setup 16
(WSE-3 measurements [M]) and 8 fp16 lanes [S, M].
"""
import numpy as np
from scipy.optimize import least_squares

from . import hardware

FITTED = ("dsd_issue_cycles", "task_switch_cycles", "stream_stage_cycles",
          "fabric_elem_cycles", "launch_cycles")
PRIOR = {"fabric_elem_cycles": 1.125, "dsd_issue_cycles": 8.0}


def one_wide(row):
    P = row["P"]
    if row["kernel"] == "MeshGEMV":
        return row["M"] == P and row["N"] == P and row["group_num"] == 8
    return row["M"] == row["K"] == row["N"] == P


def fit(rows, names=FITTED, fixed=None):
    """Least-squares values of ``names`` (dict) on ``rows``, the others as in
    ``hardware.wse3()`` or ``fixed``."""
    base = hardware.wse3(**(fixed or {}))
    x0 = np.array([getattr(base, n) for n in names], dtype=float)

    def residuals(x):
        config = base.with_(**dict(zip(names, x)))
        return [(hardware.predict(r, config) - r["measured"]) / r["measured"] for r in rows]

    res = least_squares(residuals, x0, bounds=(0, np.inf))
    return dict(zip(names, (float(v) for v in res.x)))


def _errors(rows, config):
    return np.array([(hardware.predict(r, config) - r["measured"]) / r["measured"]
                     for r in rows])


def main(argv=None):
    import argparse
    argparse.ArgumentParser(
        prog="python -m wsekern.wafer.calibrate",
        description="Refit WaferConfig's instruction-level constants to the WSE-3 rows "
                    "(wsekern/wafer/data/) and print both fits: on the 1-wide rows alone "
                    "(and its error on the rows it did not see), and on every row.").parse_args(
        argv)     # --help printed nothing and ran the fit; an unknown option was ignored
    data = hardware.rows()
    seen = [r for r in data if one_wide(r)]
    unseen = [r for r in data if not one_wide(r)]
    free = [n for n in FITTED if n not in PRIOR]
    print("1. fit on the 1-wide rows:", ", ".join(free), "(held:",
          ", ".join(f"{k}={v}" for k, v in PRIOR.items()) + ")")
    values = fit(seen, free, PRIOR)
    config = hardware.wse3(**PRIOR, **values)
    for k, v in values.items():
        print(f"   {k} = {v:.2f}")
    for name, sel in (("fitted rows", seen), ("unseen rows", unseen)):
        err = np.abs(_errors(sel, config))
        print(f"   {name}: {len(sel)}, median |error| {np.median(err):.1%}, worst {err.max():.1%}")
    for r, e in zip(unseen, _errors(unseen, config)):
        print(f"     {r['kernel']} P={r['P']} {hardware.shape(r)}: {e:+.1%}")
    print("2. fit on every row (WaferConfig's defaults):")
    values = fit(data)
    for k, v in values.items():
        print(f"   {k} = {v:.2f}")
    err = np.abs(_errors(data, hardware.wse3(**values)))
    print(f"   all rows: {len(data)}, median |error| {np.median(err):.1%}, worst {err.max():.1%}")


if __name__ == "__main__":
    main()
