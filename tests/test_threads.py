"""The default thread count: by work, by what the machine gives now, by OpenMP's limits.

The decisions are checked with their inputs injected (no timing); the pieces that read the
machine (/proc, libgomp's waiting policy, OMP_NUM_THREADS) are checked on the real one.
"""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import run_in_child

import wsekern
from wsekern import _threads
from wsekern._threads import LoadMonitor, busy_by_others, decide_threads

openmp = pytest.mark.skipif(not _threads._spmm.openmp_enabled(), reason="built without OpenMP")
linux = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs /proc")

BIG, MIN = 10**9, 100_000


def decide(n, work=BIG, openmp_threads=2, machine=2, idle=2, min_work=MIN):
    return decide_threads(n, work, openmp_threads=openmp_threads, machine=machine, idle=idle,
                          min_work=min_work)


def test_default_uses_only_the_cores_others_leave_idle():
    """Issue 17: with a core held by another process the default took 2 threads and an
    spmm of 0.2 ms took 8 ms."""
    assert decide(None, idle=2) == 2
    assert decide(None, idle=1) == 1
    assert decide(None, machine=8, openmp_threads=8, idle=5) == 5


def test_default_needs_the_work_for_each_thread():
    assert decide(None, work=2 * MIN - 1) == 1
    assert decide(None, work=2 * MIN) == 2
    assert decide(None, work=0) == 1
    assert decide(None, machine=8, openmp_threads=8, idle=8, work=3 * MIN) == 3


def test_openmp_limits_are_honoured_by_the_default():
    assert decide(None, openmp_threads=1) == 1        # OMP_NUM_THREADS=1, threadpoolctl
    assert decide(None, openmp_threads=0) == 1        # built without OpenMP
    assert decide(5, openmp_threads=0) == 1


def test_an_explicit_count_is_kept_whatever_the_load():
    assert decide(2, idle=1) == 2
    assert decide(2, openmp_threads=1) == 2           # scikit-learn: n_threads overrides
    assert decide(1000, machine=3) == 3
    assert decide(-1, machine=3, idle=1) == 3
    assert decide(-2, machine=3) == 2
    assert decide(-10, machine=3) == 1
    assert decide(4, machine=8, work=2 * MIN) == 2    # but not more threads than work


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (True, TypeError), (1.5, TypeError),
                                      ("2", TypeError)])
def test_bad_counts_are_refused_before_anything_else(bad, exc):
    with pytest.raises(exc, match="n_threads"):
        decide(bad, openmp_threads=0)


def test_busy_by_others_does_not_count_this_process():
    # 2 CPUs, 100 ticks each: 150 busy ticks of which 100 are this process's own.
    assert busy_by_others((0, 0, 0), (150, 200, 100), cpus=2) == pytest.approx(0.5)
    assert busy_by_others((0, 0, 0), (100, 200, 100), cpus=2) == 0.0
    assert busy_by_others((0, 0, 0), (200, 200, 0), cpus=2) == pytest.approx(2.0)
    assert busy_by_others((5, 5, 5), (5, 5, 5), cpus=2) == 0.0     # no tick in between


class FakeMachine:
    def __init__(self):
        self.now, self.ticks, self.queue, self.reads = 0.0, (0, 0, 0), 3, 0

    def read(self):
        self.reads += 1
        return self.ticks


def monitor(machine):
    return LoadMonitor(clock=lambda: machine.now, read=machine.read,
                       runnable=lambda: machine.queue)


def test_load_monitor_samples_ticks_and_caches_the_estimate():
    m = FakeMachine()
    mon = monitor(m)
    m.now, m.ticks = 0.5, (100, 100, 0)           # 2 CPUs (cpu_count) ... all busy by others
    cpus = os.cpu_count() or 1
    assert mon.others() == pytest.approx(cpus)
    reads = m.reads
    m.now, m.ticks = 0.6, (100, 200, 0)           # within LOAD_REFRESH_SECONDS: cached
    assert mon.others() == pytest.approx(cpus) and m.reads == reads
    m.now = 0.5 + _threads.LOAD_REFRESH_SECONDS + 0.01   # the new sample: idle since
    assert mon.others() == 0.0


def test_load_monitor_uses_the_run_queue_when_the_sample_is_too_short_or_stale():
    m = FakeMachine()
    mon = monitor(m)
    m.now = _threads.MIN_SAMPLE_SECONDS / 2        # first call soon after import
    assert mon.others() == 3
    m = FakeMachine()
    mon = monitor(m)
    m.now, m.queue = _threads.MAX_SAMPLE_SECONDS + 1, 1
    assert mon.others() == 1
    m = FakeMachine()
    mon = LoadMonitor(clock=lambda: m.now, read=lambda: None, runnable=lambda: 7)
    m.now = 1.0
    assert mon.others() == 0.0                     # no /proc: the machine is taken as free


def test_resolve_threads_reads_the_load_for_the_default_only(monkeypatch):
    class Busy:
        def others(self):
            return (os.cpu_count() or 1) - 1.0     # all CPUs but one busy elsewhere
    monkeypatch.setattr(_threads, "_monitor", Busy())
    monkeypatch.setattr(_threads, "max_threads", lambda: 2)
    monkeypatch.setattr(_threads, "machine_threads", lambda: 2)
    monkeypatch.setattr(_threads._spmm, "openmp_enabled", lambda: True)
    assert _threads.resolve_threads(None, BIG) == 1
    assert _threads.resolve_threads(2, BIG) == 2
    monkeypatch.setenv("WSEKERN_IGNORE_LOAD", "1")
    assert _threads.resolve_threads(None, BIG) == 2


def test_the_default_under_an_openmp_limit_of_one_reads_nothing_else(monkeypatch):
    """OMP_NUM_THREADS=1 or threadpoolctl's limit: the default is 1 thread for any work, so
    the per-call reads (the cost table, the affinity, the load) are skipped; an explicit
    count still goes through the whole policy."""
    def unread():
        raise AssertionError("read although the answer could not change")
    monkeypatch.setattr(_threads._spmm, "openmp_enabled", lambda: True)
    monkeypatch.setattr(_threads, "max_threads", lambda: 1)
    for name in ("machine_threads", "idle_cpus", "min_work_per_thread"):
        monkeypatch.setattr(_threads, name, unread)
    assert _threads.resolve_threads(None, BIG) == 1
    assert _threads.resolve_threads(None, 0) == 1
    with pytest.raises(AssertionError, match="could not change"):
        _threads.resolve_threads(2, BIG)
    monkeypatch.setattr(_threads, "machine_threads", lambda: 2)
    monkeypatch.setattr(_threads, "min_work_per_thread", lambda: MIN)
    assert _threads.resolve_threads(2, BIG) == 2                # scikit-learn's rule kept
    assert _threads.resolve_threads(-1, BIG) == 2


def test_min_work_follows_the_cost_table():
    from wsekern.costs import TABLES
    fast, slow = TABLES[(None, "avx512")], TABLES[(None, "baseline")]
    assert _threads.min_work_per_thread(fast) > _threads.min_work_per_thread(slow)
    rate = _threads.min_work_per_thread(fast) * fast.spmm_mac * 1e-9
    assert rate == pytest.approx(_threads.PARALLEL_OVERHEAD_SECONDS, rel=1e-3)


def _child(code, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    full.update(env)
    return run_in_child(code, env=full)


@openmp
def test_openmp_waits_passively_unless_the_user_chose():
    """libgomp reads its waiting policy once, when it loads: wsekern must set it before (a
    spin count of 0), and leave the environment as it found it."""
    code = "import os, wsekern; print(os.environ.get('OMP_WAIT_POLICY'))"
    run = _child(code, OMP_DISPLAY_ENV="verbose")
    assert run.returncode == 0, run.stderr
    if "GOMP_SPINCOUNT" not in run.stderr:
        pytest.skip("this OpenMP runtime is not libgomp")
    assert "GOMP_SPINCOUNT = '0'" in run.stderr
    assert run.stdout.strip() == "None"
    run = _child(code, OMP_DISPLAY_ENV="verbose", OMP_WAIT_POLICY="active")
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in run.stderr and run.stdout.strip() == "active"
    run = _child(code, OMP_DISPLAY_ENV="verbose", GOMP_SPINCOUNT="1000")
    assert "GOMP_SPINCOUNT = '1000'" in run.stderr


@openmp
def test_omp_num_threads_limits_the_default():
    code = ("from wsekern import _threads; print(_threads.resolve_threads(None, 10**12), "
            "_threads.resolve_threads(2, 10**12))")
    run = _child(code, OMP_NUM_THREADS="1", WSEKERN_IGNORE_LOAD="1")
    assert run.returncode == 0, run.stderr
    explicit = min(2, _threads.machine_threads())
    assert run.stdout.split() == ["1", str(explicit)]


@openmp
def test_threadpoolctl_openmp_limit_is_honoured(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setenv("WSEKERN_IGNORE_LOAD", "1")
    libs = threadpoolctl.threadpool_info()
    if not any(lib["user_api"] == "openmp" for lib in libs):
        pytest.skip("threadpoolctl sees no OpenMP runtime")
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert _threads.resolve_threads(None, 10**12) == 1
        W = np.eye(64, dtype=np.float32)
        np.testing.assert_array_equal(wsekern.spmm(W, np.ones((64, 2), np.float32)),
                                      np.ones((64, 2), np.float32))


SPIN = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass\n"


@linux
def test_a_busy_process_is_seen_as_load():
    """A child spinning on a core is load the monitor sees (read from the real /proc)."""
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.5)                            # let it start spinning
        mon = LoadMonitor()
        time.sleep(0.3)
        assert mon.others() >= 0.5
    finally:
        spinner.kill()
        spinner.wait()
