"""The SIMD path the kernels run, chosen once at import: the widest this CPU and build run,
or the one ``WSEKERN_SIMD`` names."""
import os

from . import (
    _activations,
    _conv,
    _nhwc,
    _screen,
    _sparse_dense,
    _spmm,
    _step_cost,
    _step_glue,
    _transformer,
)
from ._cpu import cpu_info, describe

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
    # Each extension module holds its own dispatch table: set them all alike. The
    # elementwise passes (GELU, softmax) take the path by name; "best" is the widest they
    # run on this CPU.
    _nhwc.simd_init(SIMD_BITS[_conv.simd_init(path)])
    _sparse_dense.simd_init(path)
    vmath = {1: "baseline", 2: "avx2"}.get(path, "avx512")
    _activations.use_simd_path(vmath)
    _transformer.use_simd_path(vmath)
    _step_cost.use_simd_path(vmath)
    _screen.use_simd_path(vmath)
    _step_glue.use_simd_path(vmath)
    return _spmm.simd_init(path, cpu_info()["uarch"])


SIMD_PATH = _select_simd()
