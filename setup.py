"""Build the Cython extensions of wsekern.

Environment switches:
  WSEKERN_NO_OPENMP=1   build without OpenMP even where the compiler has it
  WSEKERN_DEBUG=1       turn Cython bounds and wraparound checks back on
"""
import os
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("WSEKERN_DEBUG", "0") == "1"
NO_OPENMP = os.environ.get("WSEKERN_NO_OPENMP", "0") == "1"

# Extensions whose loops use OpenMP (chosen by name: cythonize returns new objects).
OPENMP_MODULES = {"wsekern._spmm", "wsekern._conv", "wsekern._nhwc",
                  "wsekern._activations", "wsekern._sparse_dense", "wsekern._densify"}

EXTENSIONS = [
    Extension("wsekern._spmm", ["src/_spmm.pyx"]),
    Extension("wsekern._densify", ["src/_densify.pyx"]),
    Extension("wsekern._conv", ["src/_conv.pyx"]),
    Extension("wsekern._nhwc", ["src/_nhwc.pyx"]),
    Extension("wsekern._activations", ["src/_activations.pyx"]),
    Extension("wsekern._transformer", ["src/_transformer.pyx"]),
    # no fused multiply-add: the simulated products are the same bits on every CPU (GCC
    # contracts a * b + c by default where the target has FMA, as on aarch64)
    Extension("wsekern._event", ["src/_event.pyx"], extra_compile_args=["-ffp-contract=off"]),
    Extension("wsekern._pipeline", ["src/_pipeline.pyx"]),
    Extension("wsekern._screen", ["src/_screen.pyx"], extra_compile_args=["-ffp-contract=off"]),
    Extension("wsekern._sparse_dense", ["src/_sparse_dense.pyx"]),
    Extension("wsekern._optim", ["src/_optim.pyx"], extra_compile_args=["-ffp-contract=off"]),
    Extension("wsekern._step_cost", ["src/_step_cost.pyx"],
              extra_compile_args=["-ffp-contract=off"]),
    Extension("wsekern._step_glue", ["src/_step_glue.pyx"]),
]


def _openmp_flags(compiler):
    """Return (compile, link) flags for OpenMP, or None when it does not build."""
    if NO_OPENMP:
        return None
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    flags = ["-fopenmp"]
    code = textwrap.dedent("""
        #include <omp.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            return n > 0 ? 0 : 1;
        }
    """)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags)
        except Exception:
            return None
    return flags, flags


class BuildExt(build_ext):
    def build_extensions(self):
        omp = _openmp_flags(self.compiler)
        if omp is None:
            print("wsekern: building WITHOUT OpenMP", file=sys.stderr)
        for ext in self.extensions:
            if self.compiler.compiler_type != "msvc":
                ext.extra_compile_args += ["-O3", "-fno-math-errno", "-Wno-psabi"]
            if omp is not None and ext.name in OPENMP_MODULES:
                ext.extra_compile_args += omp[0]
                ext.extra_link_args += omp[1]
        super().build_extensions()


for ext in EXTENSIONS:
    ext.include_dirs += ["src", np.get_include()]
    ext.define_macros += [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        include_path=["src"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "initializedcheck": DEBUG,
            "cdivision": True,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
