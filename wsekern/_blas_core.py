"""The OpenBLAS core NumPy's BLAS runs in this process, and the width class of its kernels.

OpenBLAS picks its kernels at load time, from ``OPENBLAS_CORETYPE`` or its own detection, so
NumPy's BLAS can run SSE kernels on an AVX-512 CPU. The core is read back from the loaded
library (``openblas_get_corename``, with the affixes of NumPy's bundled copy, as
threadpoolctl finds it), else taken from ``OPENBLAS_CORETYPE`` when NumPy was built with
OpenBLAS; otherwise it is unknown. Read once per process: the library cannot switch.
"""
import ctypes
import glob
import os

import numpy as np

# OpenBLAS core names by the widest vectors of their sgemm/dgemm kernels. Names not listed
# (or unknown) are priced as the cost table's row was measured.
_CORE_CLASSES = {
    "avx512": ("skylakex", "cooperlake", "sapphirerapids"),
    "avx2": ("haswell", "zen"),
    "avx": ("sandybridge", "bulldozer", "piledriver", "steamroller", "excavator"),
    "sse": ("nehalem", "core2", "penryn", "dunnington", "atom", "prescott", "katmai",
            "coppermine", "northwood", "banias", "opteron", "opteron_sse3", "barcelona",
            "bobcat", "nano", "athlon"),
}
CORE_CLASS = {name: width for width, names in _CORE_CLASSES.items() for name in names}

_SYMBOL_AFFIXES = [(p, s) for p in ("", "scipy_") for s in ("", "64_", "_64")]
_read = []


def _numpy_blas_name():
    """NumPy's BLAS as its build configuration names it ("" when it does not say)."""
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]
        return str(deps["blas"]["name"]).lower()
    except Exception:   # older NumPy, or a build that records no BLAS
        return ""


def _loaded_openblas_paths():
    """Paths of OpenBLAS libraries loaded in this process, NumPy's own first."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(None, 5)   # address perms offset dev inode [path]
                path = fields[5].strip() if len(fields) == 6 else ""
                name = os.path.basename(path)
                if path.startswith("/") and "openblas" in name and path not in paths:
                    paths.append(path)
    except OSError:   # not Linux: the libraries bundled beside NumPy
        root = os.path.dirname(os.path.dirname(np.__file__))
        for pattern in ("numpy.libs/*openblas*", "numpy/.dylibs/*openblas*"):
            paths += sorted(glob.glob(os.path.join(root, pattern)))
    numpy_root = os.path.dirname(np.__file__)
    return sorted(paths, key=lambda p: not p.startswith(numpy_root))


def _corename_from(path):
    try:
        lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", ctypes.DEFAULT_MODE))
    except OSError:
        return None
    for prefix, suffix in _SYMBOL_AFFIXES:
        func = getattr(lib, f"{prefix}openblas_get_corename{suffix}", None)
        if func is not None:
            func.restype = ctypes.c_char_p
            name = func()
            return name.decode("ascii", "replace").strip() if name else None
    return None


def read_blas_core():
    """(core, source): the OpenBLAS core NumPy's BLAS runs and where that was read from
    (``"library"``, ``"OPENBLAS_CORETYPE"``), or ``("unknown", reason)``."""
    blas = _numpy_blas_name()
    if blas and "openblas" not in blas:
        return "unknown", f"NumPy's BLAS is {blas}"
    for path in _loaded_openblas_paths():
        core = _corename_from(path)
        if core:
            return core, "library"
    coretype = os.environ.get("OPENBLAS_CORETYPE", "").strip()
    if blas and coretype:
        return coretype, "OPENBLAS_CORETYPE"
    return "unknown", "no OpenBLAS core read back"


def blas_core():
    """:func:`read_blas_core`, read once per process."""
    if not _read:
        _read.append(read_blas_core())
    return _read[0]


def core_class(core):
    """The width class of an OpenBLAS core's kernels ("avx512", "avx2", "avx", "sse"), or
    None when the core is not one this module knows."""
    return CORE_CLASS.get(core.strip().lower())
