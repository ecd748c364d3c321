#!/usr/bin/env bash
# Make a Debian arm64 root that runs under qemu-user, to build and test wsekern's portable
# path (no x86 dispatch) on aarch64. Not part of CI. Needs root on a Debian/Ubuntu x86-64
# machine and reaches only Debian's package archive (apt's and debootstrap's defaults).
# Idempotent: each step is skipped when already done; rerun after a failure.
#
#   sudo tools/aarch64/setup.sh            # root at $ARM64_ROOT (default /var/tmp/wsekern-arm64)
#   ARM64_ROOT=/some/dir tools/aarch64/setup.sh
#
# Debian 13 (trixie) is the suite: its python3-numpy/scipy/cython3 meet pyproject's
# minimums (Cython >= 3, NumPy >= 1.25), so nothing in the root comes from PyPI (the
# host venv below takes the same Cython version from PyPI, to run it natively).
set -euo pipefail

ROOT=${ARM64_ROOT:-/var/tmp/wsekern-arm64}
SUITE=${ARM64_SUITE:-trixie}
# what the build and the tests import; torch, keras, scikit-learn are left out (their tests skip)
PACKAGES="python3 python3-dev python3-numpy python3-scipy cython3 python3-setuptools
python3-pytest python3-hypothesis python3-pytest-benchmark python3-threadpoolctl python3-tqdm
python3-matplotlib python3-h5py gcc g++ libgomp1 make procps"

host_pkgs=()
for p in qemu-user-static binfmt-support debootstrap; do
    dpkg -s "$p" >/dev/null 2>&1 || host_pkgs+=("$p")
done
if ((${#host_pkgs[@]})); then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${host_pkgs[@]}"
fi

# binfmt_misc lets the kernel hand aarch64 executables to qemu: the chroot's own programs,
# and the child processes the tests start with sys.executable, run without naming qemu
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64
fi

# the interpreter is registered without the F flag: it is opened inside the chroot, so the
# static qemu must be there at the same path
install_qemu() {
    mkdir -p "$ROOT/usr/bin" "$ROOT/usr/libexec/qemu-binfmt"
    cp -f /usr/bin/qemu-aarch64-static "$ROOT/usr/bin/"
    ln -sf ../../bin/qemu-aarch64-static "$ROOT/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
}

if [ ! -x "$ROOT/usr/bin/apt-get" ] || [ -e "$ROOT/debootstrap" ]; then
    if [ ! -e "$ROOT/debootstrap" ]; then
        mkdir -p "$ROOT"
        debootstrap --arch=arm64 --foreign --variant=minbase "$SUITE" "$ROOT"
    fi
    install_qemu
    chroot "$ROOT" /debootstrap/debootstrap --second-stage
fi
install_qemu

"$(dirname "$0")/mounts.sh" "$ROOT"
cp -f /etc/resolv.conf "$ROOT/etc/resolv.conf"
missing=()
for p in $PACKAGES; do
    chroot "$ROOT" dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' \
        || missing+=("$p")
done
if ((${#missing[@]})); then
    chroot "$ROOT" apt-get update
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Cython's C is the same on every CPU, and emulated Cython is ~20x slower: run.sh generates
# it on the host, with the root's Cython version (another version's C is regenerated;
# SciPy for the cython_blas declarations setup.py's modules cimport)
CYTHON_VERSION=$(chroot "$ROOT" python3 -c "import Cython; print(Cython.__version__)")
HOST_VENV="$ROOT.host"
if ! "$HOST_VENV/bin/python" -c "import Cython, numpy, scipy, sys
sys.exit(Cython.__version__ != '$CYTHON_VERSION')" 2>/dev/null; then
    python3 -m venv "$HOST_VENV"
    "$HOST_VENV/bin/pip" install -q "Cython==$CYTHON_VERSION" numpy scipy setuptools
fi

chroot "$ROOT" python3 -c "import platform, numpy, scipy, Cython; print(platform.machine(), 'python', platform.python_version(), 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'Cython', Cython.__version__)"
