"""The simulated wafer: configuration, placement, analytic and event costs, reports.

Nothing here imports ``wsekern.nn``: the model-facing ``WaferStrategy`` lives in
``wsekern.nn.strategy`` (also ``wsekern.nn.WaferStrategy`` and ``wsekern.WaferStrategy``).
"""
from .config import WaferConfig
from .machine import Wafer
from .report import SimReport, load_report

__all__ = ["WaferConfig", "Wafer", "SimReport", "load_report"]
