"""wsekern: zero-skipping sparse NN kernels, and their cost on a simulated wafer-scale engine."""
__version__ = "0.1.0"

import importlib.util as _ilu
# Imported from a source tree whose Cython extensions were never built (a plain `pip install .`
# leaves the clone itself unbuilt, and Python run in the clone root imports the clone): say so.
_unbuilt = [m for m in ("_spmm", "_densify", "_conv", "_event", "_pipeline", "_screen",
                        "_nhwc", "_activations", "_sparse_dense", "_transformer", "_optim",
                        "_step_cost", "_step_glue")
            if _ilu.find_spec(f"{__name__}.{m}") is None]
if _unbuilt:
    raise ImportError(
        f"wsekern is being imported from {__path__[0]}, whose compiled extensions "
        f"({', '.join(_unbuilt)}) are not built. Either build them in place with "
        f"`pip install -e .` (an editable install, as the README does), or run Python from "
        f"another directory so that the installed package is imported.")
del _ilu, _unbuilt

import os as _os

# OpenMP threads that wait by spinning keep a core busy between loops; on a core another
# process also wants, every loop then waits a time slice for them at its barrier. libgomp
# reads its waiting policy once, when the compiled extensions load it (just below), so the
# default is set here, unless the user chose one, and taken back out of the environment
# afterwards (other OpenMP runtimes and child processes keep theirs).
_passive_set = not ("OMP_WAIT_POLICY" in _os.environ or "GOMP_SPINCOUNT" in _os.environ)
if _passive_set:
    _os.environ["OMP_WAIT_POLICY"] = "passive"
try:
    from . import _spmm  # noqa: F401  (loads libgomp with the policy above)
finally:
    if _passive_set:
        _os.environ.pop("OMP_WAIT_POLICY", None)
    del _os, _passive_set

# The SIMD path is chosen here, first, so that a bad WSEKERN_SIMD stops the import with its
# message alone: an ImportError caused by the ValueError (unknown name) or RuntimeError (a
# path this CPU cannot run), not a traceback through the modules that happened to load it
# first. The `wsekern` command dies in this import before its main() can catch anything, so
# when it is the program running, it prints the message and exits 2 as for a bad option.
try:
    from . import simd_path  # noqa: F401
except (ValueError, RuntimeError) as _exc:
    import sys as _sys
    _argv = getattr(_sys, "orig_argv", [])
    if (_sys.argv and _sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
            in ("wsekern", "wsekern-script")) or (
            "-m" in _argv[:-1] and _argv[_argv.index("-m") + 1] == "wsekern.cli"):
        print(f"wsekern: error: {_exc}", file=_sys.stderr)
        raise SystemExit(2) from None
    raise ImportError(f"wsekern cannot be imported: {_exc}") from _exc.with_traceback(None)

from .errors import SramOverflowError, WsekernError
from .sparse import PackedSparse, check_sparse_operand, pack
from .kernels import sddmm, spmm, spmm_path
from .conv import conv2d, conv2d_backward, conv2d_path
from .pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from .sysinfo import get_config, show_config
from .wafer import SimReport, Wafer, WaferConfig, load_report
from .nn.strategy import WaferStrategy
from .sweeps import sweep
from . import data, nn

__all__ = ["__version__", "WsekernError", "SramOverflowError", "PackedSparse", "pack",
           "check_sparse_operand",
           "spmm", "spmm_path", "sddmm", "conv2d", "conv2d_backward", "conv2d_path",
           "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "get_config", "show_config",
           "Wafer", "WaferConfig", "SimReport", "load_report", "WaferStrategy", "sweep",
           "data", "nn"]
