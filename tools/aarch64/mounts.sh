#!/usr/bin/env bash
# Mount what the tests need inside the arm64 root (idempotent): /proc (os.cpu_count,
# /proc/cpuinfo, which under qemu-user is the x86 host's), /dev and /dev/shm
# (multiprocessing's semaphores), /sys (the cache sizes).
set -euo pipefail
ROOT=${1:?usage: mounts.sh ARM64_ROOT}
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/sys" || mount --rbind /sys "$ROOT/sys"
mountpoint -q "$ROOT/dev" || mount --rbind /dev "$ROOT/dev"
