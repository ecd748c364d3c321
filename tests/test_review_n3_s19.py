"""Review of s19's narrow-X spmm route (narrow19) and the kept huge-page buffer for X's live
rows (halfdead9): the cases the review found wrong, each checked in a child process."""

import mmap
import sys

import pytest
from conftest import run_in_child, run_on_simd

# (os.fork, a lazily zeroed 16 GiB X: Linux's)
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")

# A process forked while another of its threads is inside ``with _live_lock`` (a GIL
# switch can fall between its bytecodes): holding the lock stands in for that thread.
_FORK = """
import os, time
import numpy as np, scipy.sparse as sps
from wsekern import _spmm, kernels
rng = np.random.default_rng(0)
X = rng.standard_normal((4096, 64)).astype(np.float32)
X[rng.random(4096) < 0.5] = 0
W = sps.random(400, 4096, density=0.1, format="csr", dtype=np.float32, random_state=rng)
assert kernels.spmm_path(W, X) == "csr-skip-rows"
ref = W.astype(np.float64) @ X.astype(np.float64)

def fork_and_wait(child):
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if child() else 3)
        except BaseException:
            os._exit(4)
    return pid

def reap(pid, what):
    for _ in range(600):                  # 30 s: the product takes milliseconds
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return print(what, os.waitstatus_to_exitcode(status))
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print(what, "hung")

def product_right():
    got = kernels.spmm(W, X, n_threads=1)
    return np.allclose(got, ref, rtol=1e-4, atol=1e-4)

# 1. the lock held at fork: the child's first gather must not wait for it
_spmm._live_lock.acquire()
pid = fork_and_wait(product_right)
_spmm._live_lock.release()
reap(pid, "lock")

# 2. the buffer taken at fork (by a call that never returns in the child): the child makes
# its own, and its products are right
kernels.spmm(W, X, n_threads=1)           # the buffer made
a, raw = _spmm._live_buffer(_spmm._LIVE_HUGE_MIN)
assert raw is not None
def own_buffer():
    b, raw_b = _spmm._live_buffer(_spmm._LIVE_HUGE_MIN)
    _spmm._live_release(raw_b)
    return raw_b is not None and product_right() and product_right()
pid = fork_and_wait(own_buffer)
reap(pid, "taken")
_spmm._live_release(raw)
"""


@pytest.mark.skipif(getattr(mmap, "MADV_HUGEPAGE", None) is None,
                    reason="the kept huge-page buffer needs MADV_HUGEPAGE")
def test_fork_while_live_buffer_lock_held():
    proc = run_in_child(_FORK, timeout=180)
    assert proc.returncode == 0 and proc.stdout.split() == ["lock", "0", "taken", "0"], (
        proc.stdout[-2000:] + proc.stderr[-2000:])


# int32 column indices against an X of more than 2^32 rows (16 GiB of untouched zero pages,
# one read each): the narrow kernel's last valid index was (uint32)(K - 1) = 1, so valid
# indices were refused (and kernels then raised that check_csr had missed one), while a
# negative index must still be refused.
_WIDE_K = """
import numpy as np
from wsekern import _spmm
K = 2**32 + 2
X = np.zeros((K, 1), np.float32)
X[5] = 3.0
X[2**31 - 1] = 5.0
X[K - 1] = 7.0
indptr = np.array([0, 2, 3, 4], np.int32)
indices = np.array([5, 2**31 - 1, -1, 5], np.int32)
data = np.array([1.0, 2.0, 4.0, 0.5], np.float32)
out = np.full((3, 1), np.nan, np.float32)
n_bad = _spmm.csr_spmm(data, indices, indptr, X, out, None, 1, 0, True)
print(n_bad, out[0, 0], out[2, 0])
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "baseline"])
def test_narrow_int32_indices_x_over_2_32_rows(simd):
    proc = run_on_simd(simd, _WIDE_K)
    assert proc.returncode == 0 and proc.stdout.split() == ["1", "13.0", "1.5"], (
        proc.stdout[-2000:] + proc.stderr[-2000:])
