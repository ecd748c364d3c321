"""Compile wsekern's extensions for the arm64 root with the host's cross GCC
(gcc-aarch64-linux-gnu), against the root's Python and NumPy headers: minutes where the
emulated GCC of run.sh takes more than 20 per large module. Run with setup.sh's host venv
from the copy in the root, after run.sh's copy and cythonize step:

    cd $ARM64_ROOT/wsekern && $ARM64_ROOT.host/bin/python tools/aarch64/cross.py $ARM64_ROOT

The modules, their own flags and the OpenMP set are read from setup.py; the flags every
module gets repeat BuildExt's (-O3 -fno-math-errno -Wno-psabi). The host GCC (12 on
Debian 12) is not the root's (14): a check of the portable C, not of Debian's compiler.
"""
import os
import runpy
import subprocess
import sys

import setuptools

root = os.path.abspath(sys.argv[1])
found = {}
setuptools.setup = lambda **kwargs: found.update(kwargs)
setup_py = runpy.run_path("setup.py", run_name="__main__")
CC = ["aarch64-linux-gnu-gcc", f"--sysroot={root}"]
PY_INCLUDE = f"{root}/usr/include/python3.13"
NP_INCLUDE = f"{root}/usr/lib/aarch64-linux-gnu/python3-numpy/numpy/_core/include"
SUFFIX = ".cpython-313-aarch64-linux-gnu.so"
for ext in found["ext_modules"]:
    name = ext.name.split(".")[1]
    so = f"wsekern/{name}{SUFFIX}"
    if os.path.exists(so) and all(os.path.getmtime(s) < os.path.getmtime(so)
                                  for s in ext.sources + list(ext.depends) if os.path.exists(s)):
        continue
    omp = ["-fopenmp"] if ext.name in setup_py["OPENMP_MODULES"] else []
    obj = f"build/cross/{name}.o"
    os.makedirs("build/cross", exist_ok=True)
    subprocess.run(CC + ["-fPIC", "-g", "-fwrapv", "-O2", "-Wall", "-DNDEBUG", "-Isrc",
                         f"-I{NP_INCLUDE}", f"-I{PY_INCLUDE}",
                         "-DNPY_NO_DEPRECATED_API=NPY_1_9_API_VERSION", "-c", ext.sources[0],
                         "-o", obj, *ext.extra_compile_args, "-O3", "-fno-math-errno",
                         "-Wno-psabi", *omp], check=True)
    subprocess.run(CC + ["-shared", "-Wl,-O1", obj, f"-L{root}/usr/lib/aarch64-linux-gnu",
                         "-o", so, *omp], check=True)
    print("built", so)
