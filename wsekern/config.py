"""Build and run-time configuration: ``wsekern.show_config()``."""
import os
import platform
import sys

import numpy as np
import scipy

from . import _conv, _spmm
from ._threads import max_threads

# WSEKERN_SIMD=baseline|avx2 caps the SIMD path (for testing the portable paths).
_FORCE = {"": 0, "best": 0, "baseline": 1, "avx2": 2}


def _select_simd():
    choice = os.environ.get("WSEKERN_SIMD", "").strip().lower()
    if choice not in _FORCE:
        raise ValueError(f"WSEKERN_SIMD must be one of {sorted(k for k in _FORCE if k)}; "
                         f"received {choice!r}")
    # Each extension module holds its own dispatch table: set them all alike.
    _conv.simd_init(_FORCE[choice])
    return _spmm.simd_init(_FORCE[choice])


SIMD_PATH = _select_simd()


def get_config():
    """The configuration as a dict (what show_config prints)."""
    from . import __version__
    return {
        "wsekern": __version__,
        "openmp": _spmm.openmp_enabled(),
        "threads": max_threads(),
        "simd": SIMD_PATH,
        "compiler": _spmm.compiler(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def show_config():
    """Print OpenMP on/off, threads, the SIMD path chosen at run time, compiler and versions."""
    for key, value in get_config().items():
        print(f"{key:>10}: {value}")
