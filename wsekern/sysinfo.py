"""Build and run-time configuration: the SIMD path and ``wsekern.show_config()``."""
import os
import platform
import sys

import numpy as np
import scipy

from . import _conv, _spmm
from ._cpu import cpu_info, describe
from ._threads import max_threads

# WSEKERN_SIMD chooses the SIMD path: unset or "best" for the widest this CPU runs, or one
# of these by name (to test or compare the portable paths).
SIMD_BITS = {"baseline": 1, "avx2": 2, "avx512": 4}


def simd_available():
    """The SIMD paths this CPU runs with this build, narrowest first."""
    bits = _spmm.simd_available()
    return [name for name, bit in SIMD_BITS.items() if bits & bit]


def _select_simd():
    choice = os.environ.get("WSEKERN_SIMD", "").strip().lower()
    if choice in ("", "best"):
        path = 0
    elif choice not in SIMD_BITS:
        raise ValueError(f"WSEKERN_SIMD must be one of {', '.join(SIMD_BITS)} or best; "
                         f"received {choice!r}")
    elif choice not in simd_available():
        raise RuntimeError(f"WSEKERN_SIMD={choice} asks for a path this CPU ({describe()}) "
                           f"cannot run with this build; it runs {', '.join(simd_available())}. "
                           f"Unset WSEKERN_SIMD to take the best of them")
    else:
        path = SIMD_BITS[choice]
    # Each extension module holds its own dispatch table: set them all alike.
    _conv.simd_init(path)
    return _spmm.simd_init(path)


SIMD_PATH = _select_simd()


def get_config():
    """The build and run-time configuration as a dict (what :func:`show_config` prints).

    Returns
    -------
    dict
        Keys include ``wsekern`` (version), ``simd`` (the SIMD path chosen),
        ``simd_available``, ``cost_table``, ``openmp`` and ``threads``.
    """
    from . import __version__
    from .costs import cost_table
    cpu = cpu_info()
    return {
        "wsekern": __version__,
        "cpu": cpu["model"],
        "uarch": cpu["uarch"],
        "caches": cpu["caches"],
        "openmp": _spmm.openmp_enabled(),
        "threads": max_threads(),
        "simd": SIMD_PATH,
        "simd_available": simd_available(),
        "cost_table": cost_table().name,
        "compiler": _spmm.compiler(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def show_config():
    """Print the CPU and its caches, the SIMD path chosen at run time (and those the CPU
    runs), the cost table the dispatcher uses, OpenMP, threads, compiler and versions.

    ``wsekern config`` prints the same; :func:`get_config` returns it as a dict.
    """
    for key, value in get_config().items():
        if key == "caches":
            value = describe().partition("; ")[2]
        elif isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:>14}: {value}")
