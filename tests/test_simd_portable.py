"""src/wsk_simd.h's loops as plain C (tests/c/simd_check.c), built apart from the extension:
every SIMD path this CPU runs, the branch a CPU without x86 dispatch compiles, and aarch64
under qemu-user where a cross compiler and qemu are installed (else skipped, saying so)."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "c" / "simd_check.c"
FLAGS = ["-O3", "-fno-math-errno", "-Wno-psabi", f"-I{ROOT / 'src'}"]


def _build_and_run(compiler, flags, tmp_path, runner=()):
    exe = tmp_path / "simd_check"
    built = subprocess.run([compiler, *FLAGS, *flags, str(SOURCE), "-o", str(exe), "-lm"],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([*runner, str(exe)], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


def _host_compiler():
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler on PATH")
    return compiler


def test_every_path_this_cpu_runs(tmp_path):
    from wsekern.simd_path import simd_available
    out = _build_and_run(_host_compiler(), [], tmp_path)
    for path in simd_available():
        assert f"{path} ok" in out, out


def test_the_branch_without_x86_dispatch(tmp_path):
    out = _build_and_run(_host_compiler(), ["-DWSK_NO_DISPATCH"], tmp_path)
    assert "baseline ok" in out and "x86 dispatch 0, paths checked 1" in out, out


def test_aarch64_under_qemu(tmp_path):
    # qemu-user-static (binfmt chroots) names it qemu-aarch64-static; the binary is static
    cross = shutil.which("aarch64-linux-gnu-gcc")
    qemu = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
    if cross is None or qemu is None:
        pytest.skip("aarch64-linux-gnu-gcc and qemu-aarch64 not installed "
                    "(apt: gcc-aarch64-linux-gnu, qemu-user or qemu-user-static)")
    out = _build_and_run(cross, ["-march=armv8-a", "-static"], tmp_path, runner=[qemu])
    assert "baseline ok" in out and "x86 dispatch 0" in out, out
