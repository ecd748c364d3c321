"""What instruction set the peers of ``wsekern bench`` run, and holding them to a forced path's.

``--peers-isa same`` runs a benchmark in a child process with each peer library's own
documented switch set before it loads, so that a wsekern path forced narrower than the CPU's
best (``WSEKERN_SIMD=avx2|baseline``) meets the peers a CPU with only that ISA would run.
Each switch is read back in the process that times the peers and compared with what was
asked; one that did not take is reported. This emulates the peers' code paths, not another
CPU's caches, clocks or memory.
"""
import contextlib
import ctypes
import os
import platform
import subprocess
import sys
import tempfile

# The variable that marks a child already held: its value is the path the peers are held to.
HELD_MARK = "WSEKERN_PEERS_ISA"

# Each library's documented switch, read once as it loads, so only a new process can set them.
# avx2: OpenBLAS's Haswell kernels (AVX2 + FMA) are what it runs on Haswell to Skylake
#   clients and on Zen 1-3 (NumPy's OpenBLAS reads its Zen core back as Haswell).
# baseline: a CPU without AVX. OpenBLAS's own choice on such a CPU is Nehalem (SSE4.2; its
#   dispatcher falls back to it when AVX is missing), oneDNN's lowest is SSE4.1, MKL's SSE4.2
#   and ATen's "default" build is plain x86-64: the peers keep SSE4 where wsekern's baseline
#   path has SSE2 only, so this row still favours them slightly.
PEER_ISA_ENV = {
    "avx2": {"OPENBLAS_CORETYPE": "Haswell", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "baseline": {"OPENBLAS_CORETYPE": "Nehalem", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                 "ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"},
}
# What each peer reads back as when its switch took.
EXPECTED = {
    "avx2": {"openblas": "Haswell", "aten": "AVX2", "onednn": "Intel AVX2"},
    "baseline": {"openblas": "Nehalem", "aten": "DEFAULT", "onednn": "Intel SSE4.1"},
}
# The switch behind each read-back, to name it in a report.
SWITCH_OF = {"openblas": "OPENBLAS_CORETYPE", "aten": "ATEN_CPU_CAPABILITY",
             "onednn": "ONEDNN_MAX_CPU_ISA", "mkl": "MKL_ENABLE_INSTRUCTIONS"}
# Cleared in a held child before its path's switches are set: OPENBLAS_L2_SIZE too, which
# some machines set beside OPENBLAS_CORETYPE (and which the README's commands unset).
PEER_SWITCHES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS",
                 "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def held_path():
    """The path this process's peers were held to (``--peers-isa same``'s child), or None."""
    return os.environ.get(HELD_MARK) or None


def held_env(path, base=None):
    """The environment of a child whose peers are held to ``path``'s ISA: ``base``
    (os.environ) without any peer switch, then ``path``'s switches (none for the CPU's best
    path: the peers' native kernels), the mark, and this wsekern first on the path."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in PEER_SWITCHES}
    env.update(PEER_ISA_ENV.get(path, {}))
    env[HELD_MARK] = path
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def can_hold():
    """Whether the switches mean anything here (x86-64: OpenBLAS, oneDNN, ATen dispatch)."""
    return platform.machine().lower() in ("x86_64", "amd64")


def rerun_held(path, argv, out=print):
    """Run ``wsekern <argv>`` in a child held to ``path``'s ISA, passing its output line by
    line to ``out`` (its errors and warnings go to this process's stderr, as they would
    here); return the child's exit code."""
    cmd = [sys.executable, "-m", "wsekern.cli", *argv]
    with subprocess.Popen(cmd, env=held_env(path), stdout=subprocess.PIPE, text=True) as child:
        try:
            for line in child.stdout:
                out(line.rstrip("\n"))
        except BaseException:
            # a Ctrl-C or a failure here: Popen's exit would leave the child running on
            child.kill()
            child.wait()
            raise
    return child.returncode


def _openblas():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    import numpy  # noqa: F401  (its OpenBLAS must be loaded to be listed)
    found = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    # NumPy's own copy first (SciPy may load another, for its dense linear algebra)
    found.sort(key=lambda i: "numpy" not in i.get("filepath", ""))
    return found[0].get("architecture") if found else None


@contextlib.contextmanager
def _stdout_captured(sink):
    """Collect what C code prints on file descriptor 1 (oneDNN's and MKL's verbose lines)."""
    libc = ctypes.CDLL(None)           # C's stdio buffers: flushed before fd 1 moves back
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 1)
        try:
            yield
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            f.seek(0)
            sink.append(f.read().decode(errors="replace"))


def _torch_verbose(torch):
    """oneDNN's ISA, the conv kernel it ran and MKL's dispatch line, from their verbose output
    around one small conv (large enough for torch to pick oneDNN) and one matmul (MKL)."""
    got = {"onednn": None, "onednn_conv": None, "mkl": None}
    x, w = torch.randn(2, 16, 12, 12), torch.randn(16, 16, 3, 3)
    text = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(_stdout_captured(text))
        if torch.backends.mkldnn.is_available():
            stack.enter_context(torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON))
        if torch.backends.mkl.is_available():
            stack.enter_context(torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON))
        stack.enter_context(torch.no_grad())
        torch.nn.functional.conv2d(x, w, padding=1)
        torch.randn(64, 64) @ torch.randn(64, 64)
    for line in "".join(text).splitlines():
        parts = line.split(",")
        if line.startswith("onednn_verbose") and "info" in parts and any(
                p.startswith("isa:") for p in parts):
            got["onednn"] = next(p[4:] for p in parts if p.startswith("isa:"))
        elif line.startswith("onednn_verbose") and "convolution" in parts:
            got["onednn_conv"] = parts[parts.index("convolution") + 1]
        elif line.startswith("MKL_VERBOSE") and " for " in line and got["mkl"] is None:
            got["mkl"] = line.split(" for ", 1)[1].split(",")[0].strip()
    return got


_READ = []      # read_back's first answer: the libraries chose at load, once a process


def read_back():
    """What each peer runs at in this process, as the libraries report it (None: not
    installed or not reported): NumPy's OpenBLAS core (threadpoolctl), torch's ATen
    capability, oneDNN's ISA and conv kernel, MKL's dispatch line. Read once a process
    (a copy each call): oneDNN and MKL print their lines only the first time."""
    if not _READ:
        _READ.append(_read_back())
    return dict(_READ[0])


def _read_back():
    got = {"openblas": _openblas(), "aten": None, "onednn": None, "onednn_conv": None,
           "mkl": None}
    try:
        import torch
    except ImportError:
        return got
    got["aten"] = torch.backends.cpu.get_cpu_capability()
    try:
        got.update(_torch_verbose(torch))
    except (OSError, RuntimeError, TypeError):
        pass                           # a build without verbose modes, no C library: unread
    return got


def not_taken(path, got, environ=None):
    """(peer, switch, value set, read back) for each peer that reported running other than
    ``path``'s ISA (a peer not installed has nothing to hold); the value is the one in
    ``environ`` (os.environ), which a held child received."""
    env = os.environ if environ is None else environ
    missed = []
    for peer, want in EXPECTED.get(path, {}).items():
        have = got.get(peer)
        if have is not None and have.lower() != want.lower():
            switch = SWITCH_OF[peer]
            missed.append((peer, switch, env.get(switch, "(unset)"), have))
    return missed


def peers_lines(got, path=None, environ=None):
    """The header lines naming what each peer ran at; with ``path``, what each was held to
    and a warning for each switch that did not take."""
    env = os.environ if environ is None else environ
    names = (("openblas", "NumPy's OpenBLAS"), ("aten", "torch ATen"), ("onednn", "oneDNN"),
             ("onednn_conv", "oneDNN probe conv"), ("mkl", "MKL"))
    ran = "; ".join(f"{name} {got[key]}" for key, name in names if got.get(key))
    if path is None:
        set_now = [f"{k}={env[k]}" for k in PEER_SWITCHES if k in env]
        return [f"peers ran at (native, read back): {ran or 'nothing reported'}"
                + (f"; set in the environment: {' '.join(set_now)}" if set_now else "")]
    asked = " ".join(f"{k}={v}" for k, v in PEER_ISA_ENV.get(path, {}).items())
    lines = [f"peers held to the {path} path's ISA ({asked or 'their native kernels'}), "
             f"read back: {ran or 'nothing reported'}"]
    if "MKL_ENABLE_INSTRUCTIONS" in asked:
        from ._cpu import cpu_info
        vendor = cpu_info()["vendor"]
        lines.append("  MKL_ENABLE_INSTRUCTIONS: not checked (MKL's verbose line names no ISA)"
                     + ("" if vendor == "GenuineIntel" else
                        f"; MKL documents it as having no effect on non-Intel CPUs ({vendor})"))
    for peer, switch, want, have in not_taken(path, got, env):
        lines.append(f"warning: {switch}={want} did not take: {peer} runs {have}; its "
                     f"numbers are not those of a CPU with only the {path} path's ISA")
    return lines
