"""wsekern: zero-skipping sparse NN kernels, and their cost on a simulated wafer-scale engine."""
__version__ = "0.1.0"

from .errors import SramOverflowError, WsekernError
from .sparse import PackedSparse, check_sparse_operand, pack
from .kernels import sddmm, spmm, spmm_path
from .conv import conv2d, conv2d_backward, conv2d_path
from .pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from .config import get_config, show_config
from .wafer import SimReport, Wafer, WaferConfig, WaferStrategy
from .sweeps import sweep
from . import data, nn

__all__ = ["__version__", "WsekernError", "SramOverflowError", "PackedSparse", "pack",
           "check_sparse_operand",
           "spmm", "spmm_path", "sddmm", "conv2d", "conv2d_backward", "conv2d_path",
           "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "get_config", "show_config",
           "Wafer", "WaferConfig", "SimReport", "WaferStrategy", "sweep",
           "data", "nn"]
