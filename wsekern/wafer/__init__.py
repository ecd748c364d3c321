"""The simulated wafer: configuration, SRAM ledger, analytic cost, reports."""
from .config import WaferConfig
from .machine import Wafer
from .report import SimReport

__all__ = ["WaferConfig", "Wafer", "SimReport"]
