"""Build and run-time configuration: ``wsekern.show_config()`` and what it reports."""
import platform
import sys

import numpy as np
import scipy

from . import _spmm
from ._cpu import cpu_info, describe
from ._threads import max_threads
from .simd_path import SIMD_PATH, simd_available


def get_config():
    """The build and run-time configuration as a dict (what :func:`show_config` prints).

    Returns
    -------
    dict
        Keys include ``wsekern`` (version), ``simd`` (the SIMD path chosen),
        ``simd_available``, ``cost_table``, ``blas_core`` (the OpenBLAS core NumPy's BLAS
        runs, and where that was read), ``blas_factor`` (the cost table's BLAS time over
        its row's as measured), ``openmp`` and ``threads``.
    """
    from . import __version__
    from ._blas_core import blas_core, core_class
    from .costs import _costs_env, blas_scale, cost_table
    cpu = cpu_info()
    table = cost_table()
    core, source = blas_core()
    f32, f64 = blas_scale(table)
    return {
        "wsekern": __version__,
        "cpu": cpu["model"],
        "uarch": cpu["uarch"],
        "caches": cpu["caches"],
        "openmp": _spmm.openmp_enabled(),
        "threads": max_threads(),
        "simd": SIMD_PATH,
        "simd_available": simd_available(),
        "cost_table": table.name,
        "blas_core": f"{core} ({source}; {core_class(core) or 'kernels of unknown width'})",
        "blas_factor": f"x{f32:.2f} fp32, x{f64:.2f} fp64 (the row's BLAS priced at "
                       f"{table.blas_core} kernels"
                       f"{'; row named by WSEKERN_COSTS' if _costs_env().strip() else ''})",
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
