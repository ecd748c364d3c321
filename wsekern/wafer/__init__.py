"""The simulated wafer: configuration, SRAM ledger, analytic cost, reports."""
from .config import WaferConfig
from .machine import Wafer
from .report import SimReport
from .strategy import WaferStrategy

__all__ = ["WaferConfig", "Wafer", "SimReport", "WaferStrategy"]
