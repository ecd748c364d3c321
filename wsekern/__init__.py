"""wsekern: zero-skipping sparse NN kernels, and their cost on a simulated wafer-scale engine."""
__version__ = "0.1.0"

import importlib.util as _ilu

# Imported from a source tree whose Cython extensions were never built (a plain `pip install .`
# leaves the clone itself unbuilt, and Python run in the clone root imports the clone): say so.
_unbuilt = [m for m in ("_spmm", "_conv", "_event", "_pipeline")
            if _ilu.find_spec(f"{__name__}.{m}") is None]
if _unbuilt:
    raise ImportError(
        f"wsekern is being imported from {__path__[0]}, whose compiled extensions "
        f"({', '.join(_unbuilt)}) are not built. Either build them in place with "
        f"`pip install -e .` (an editable install, as the README does), or run Python from "
        f"another directory so that the installed package is imported.")
del _ilu, _unbuilt

from .errors import SramOverflowError, WsekernError
from .sparse import PackedSparse, check_sparse_operand, pack
from .kernels import sddmm, spmm, spmm_path
from .conv import conv2d, conv2d_backward, conv2d_path
from .pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from .sysinfo import get_config, show_config
from .wafer import SimReport, Wafer, WaferConfig
from .nn.strategy import WaferStrategy
from .sweeps import sweep
from . import data, nn

__all__ = ["__version__", "WsekernError", "SramOverflowError", "PackedSparse", "pack",
           "check_sparse_operand",
           "spmm", "spmm_path", "sddmm", "conv2d", "conv2d_backward", "conv2d_path",
           "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "get_config", "show_config",
           "Wafer", "WaferConfig", "SimReport", "WaferStrategy", "sweep",
           "data", "nn"]
