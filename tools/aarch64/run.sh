#!/usr/bin/env bash
# Build this checkout for aarch64 inside the arm64 root (tools/aarch64/setup.sh) and run a
# command there under qemu-user. Not part of CI. Needs root (chroot).
#
#   tools/aarch64/run.sh                      # build, then the kernel test files
#   tools/aarch64/run.sh python3 -m pytest tests/test_nn_dense.py -q
#   tools/aarch64/run.sh python3 -c "import wsekern; wsekern.show_config()"
#   tools/aarch64/run.sh wsekern bench spmm --threads 1
#
# The checkout's files (tracked and untracked, not ignored: what is being worked on) are
# copied to $ARM64_ROOT/wsekern with their times, so a second run rebuilds only what
# changed; Cython and GCC run inside the root (Debian's aarch64 toolchain, emulated).
# Speed under qemu is the emulator's, not an aarch64 CPU's: figures from here are not
# benchmarks. RLIMIT_AS is not enforced on the guest (qemu reserves its own address
# space), and emulation is 10-50x slower, so a test that relies on either can fail here.
set -euo pipefail

ROOT=${ARM64_ROOT:-/var/tmp/wsekern-arm64}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DEST="$ROOT/wsekern"
if [ ! -x "$ROOT/usr/bin/python3" ]; then
    echo "no arm64 root at $ROOT: run tools/aarch64/setup.sh first (ARM64_ROOT=...)" >&2
    exit 2
fi
"$HERE/mounts.sh" "$ROOT"

# copy the checkout; drop sources the checkout no longer has (generated .c/.so stay)
mkdir -p "$DEST"
(cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$DEST"
(cd "$REPO" && git ls-files -co --exclude-standard | sort) > "$DEST/.copied"
(cd "$DEST" && find . -type f \( -name '*.py' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.h' \) \
     -not -path './build/*' -not -path '*/__pycache__/*' | sed 's|^\./||' | sort \
     | comm -23 - .copied | xargs -r rm -f)

in_root() {
    # a clean environment: the host's venv, PYTHONPATH and CPU-tuning variables stay outside
    local pass=()
    while IFS='=' read -r name _; do
        case "$name" in
            WSEKERN_*|OMP_*|OPENBLAS_*|PYTEST_ADDOPTS|KERAS_BACKEND) pass+=("$name=${!name}") ;;
        esac
    done < <(env)
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        "${pass[@]}" sh -c 'cd /wsekern && exec "$@"' sh "$@"
}

# Cython's C is the same on every CPU: generate it on the host (setup.py's own cythonize
# call, setup() itself left out), with the root's Cython version (setup.sh's venv beside
# the root), ~20x faster than emulated; the root's Cython then finds it up to date.
if [ -x "$ROOT.host/bin/python" ]; then
    (cd "$DEST" && "$ROOT.host/bin/python" -c 'import runpy, setuptools
setuptools.setup = lambda **kwargs: None
runpy.run_path("setup.py", run_name="__main__")')
fi
in_root python3 setup.py build_ext --inplace -j 2

if [ $# -eq 0 ]; then
    cd "$REPO"   # the globs below name the same files in the checkout and in the copy
    # the kernels' test files: every kernel's portable fallback, its dispatch and its costs
    set -- python3 -m pytest -q -p no:cacheprovider \
        tests/test_spmm*.py tests/test_sddmm*.py tests/test_sparse_dense*.py tests/test_conv*.py \
        tests/test_pool*.py tests/test_step_chain*.py tests/test_strategy_deferred.py \
        tests/test_costs.py tests/test_simd_portable.py
fi
if [ "$1" = wsekern ]; then
    shift
    set -- python3 -m wsekern.cli "$@"
fi
in_root "$@"
