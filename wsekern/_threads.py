"""Thread-count policy shared by the kernels (scikit-learn's meaning of n_threads).

A second thread pays off only when it has enough work and a core to run on. On a shared
machine a thread placed on a core that another process keeps busy gets a time slice now
and then, and every parallel loop waits for it at its closing barrier: the loop takes
milliseconds whatever its size. So the default (``n_threads=None``) takes the smallest of

- what OpenMP allows (``OMP_NUM_THREADS``, threadpoolctl's OpenMP limit, the build),
- the CPUs this process may run on (its affinity),
- the CPUs other processes leave idle now (from ``/proc/stat``, sampled at most every
  ``LOAD_REFRESH_SECONDS``; our own CPU time is not counted as load),
- the work: one thread per ``min_work_per_thread()`` multiply-adds.

An explicit count is the caller's choice: capped at the machine and by the work, not by
the load. ``WSEKERN_IGNORE_LOAD=1`` makes the default ignore the load too (repeatable
thread counts for benchmarks).
"""
import contextlib
import numbers
import os
import time

from . import _spmm

# A parallel loop costs about this much more than the serial one: waking the sleeping
# OpenMP worker (passive waiting, set in wsekern/__init__.py) and the closing barrier.
# Measured on Zen 3 (2 cores, passive waiting, a shared machine): csr_spmm of 20k
# multiply-adds takes 8 us on 1 thread, 30 us on 2; a thread needs about 3x that
# overhead of its own work to be a clear gain (at 0.075 ns a multiply-add: 800k).
PARALLEL_OVERHEAD_SECONDS = 60e-6
# A core counts as free when other processes leave at least this share of it idle.
FREE_CORE_SHARE = 0.75
# The load is sampled again when the last sample is older than this; a sample spanning
# less than MIN_SAMPLE_SECONDS is too short to trust (the tick is 10 ms), one older than
# MAX_SAMPLE_SECONDS too stale: the run queue's length now is used instead.
LOAD_REFRESH_SECONDS = 0.25
MIN_SAMPLE_SECONDS = 0.05
MAX_SAMPLE_SECONDS = 5.0


def min_work_per_thread(cost=None):
    """Multiply-adds a thread needs to repay :data:`PARALLEL_OVERHEAD_SECONDS`, at the CSR
    kernel's rate in the cost table of this CPU (``wsekern/costs.py``)."""
    if cost is None:
        from .costs import cost_table
        cost = cost_table()
    return int(PARALLEL_OVERHEAD_SECONDS / (cost.spmm_mac * 1e-9))


def max_threads():
    """Threads OpenMP would use (1 when the build has no OpenMP)."""
    if not _spmm.openmp_enabled():
        return 1
    return max(1, _spmm.omp_max_threads())


def machine_threads():
    """Hardware threads this process may run on (its CPU affinity, else os.cpu_count())."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _read_cpu_ticks():
    """(all CPUs' busy ticks, all CPUs' total ticks, this process's ticks), or None."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat", "rb") as f:
            own = f.read().rsplit(b")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)      # idle + iowait
    total = sum(fields[:8])                                        # guest is inside user
    return total - idle, total, int(own[11]) + int(own[12])       # utime + stime


def _runnable_others():
    """Threads of other processes running or ready now (the run queue, less this one)."""
    try:
        with open("/proc/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, running - 1.0)


def busy_by_others(before, after, cpus):
    """CPUs kept busy by other processes between two :func:`_read_cpu_ticks` samples."""
    busy = (after[0] - before[0]) - (after[2] - before[2])
    total = after[1] - before[1]
    if total <= 0:
        return 0.0
    return max(0.0, busy / total * cpus)


class LoadMonitor:
    """What other processes take of the machine now, sampled cheaply and cached."""

    def __init__(self, clock=time.monotonic, read=_read_cpu_ticks, runnable=_runnable_others):
        self.clock, self.read, self.runnable = clock, read, runnable
        self.sample = (clock(), read())
        self.estimate, self.estimated_at = None, None

    def others(self):
        """CPUs busy with other processes (a float; 0 where /proc is not there)."""
        now = self.clock()
        if self.estimated_at is not None and now - self.estimated_at < LOAD_REFRESH_SECONDS:
            return self.estimate
        then, before = self.sample
        after = self.read()
        if before is None or after is None:
            estimate = self.runnable() if after is not None else 0.0
        elif MIN_SAMPLE_SECONDS <= now - then <= MAX_SAMPLE_SECONDS:
            estimate = busy_by_others(before, after, os.cpu_count() or 1)
        else:
            estimate = self.runnable()
        if now - then >= MIN_SAMPLE_SECONDS:
            self.sample = (now, after)
        self.estimate, self.estimated_at = estimate, now
        return estimate


_monitor = None


def idle_cpus():
    """CPUs other processes leave free now (whole CPUs; at least 1)."""
    global _monitor
    if _monitor is None:
        _monitor = LoadMonitor()
    total = os.cpu_count() or 1
    return max(1, int(total - _monitor.others() + (1 - FREE_CORE_SHARE)))


def check_threads(n_threads):
    """``n_threads`` as an int (or None), refused when it is not a valid count: also on
    the paths that end in BLAS and never ask :func:`resolve_threads`."""
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be an int or None; received {n_threads!r}")
    if n_threads == 0:
        raise ValueError("n_threads=0 is not valid; use None (all threads), a positive "
                         "count, or a negative one (-1 = all CPUs)")
    return int(n_threads)


def decide_threads(n_threads, work, *, openmp_threads, machine, idle, min_work):
    """The policy, from its inputs (what :func:`resolve_threads` reads off the machine).

    ``openmp_threads``: OpenMP's limit (0 when the build has no OpenMP); ``machine``: the
    CPUs this process may run on; ``idle``: the CPUs other processes leave free; ``work``
    in multiply-adds, ``min_work`` of them per thread.
    """
    n_threads = check_threads(n_threads)
    if openmp_threads < 1:
        return 1
    if n_threads is None:
        wanted = min(openmp_threads, idle)
    elif n_threads > 0:
        wanted = n_threads
    else:
        wanted = max(1, machine + 1 + n_threads)
    by_work = max(1, int(work // max(min_work, 1)))
    return max(1, min(wanted, by_work, machine))


def resolve_threads(n_threads, work):
    """Threads to use for ``work`` multiply-adds.

    None means as many as are worth it now (the module docstring); a negative value counts
    back from the number of CPUs (-1 all, -2 all but one), as in scikit-learn; 0 is an
    error. A count above the machine's threads (:func:`machine_threads`) is capped there:
    more OpenMP threads than cores only slow the loops, and thousands of them can fail to
    start (libgomp then exits the interpreter).
    """
    if type(n_threads) is int and n_threads == 1:
        return 1                 # what the policy gives: asked on every call, so no reads
    openmp = max_threads() if _spmm.openmp_enabled() else 0
    if n_threads is None and openmp <= 1:
        return 1                 # the policy's answer whatever the work, CPUs and load
    min_work = min_work_per_thread()
    machine = machine_threads()
    # The load is read only when it could change the answer.
    worth = n_threads is None and openmp > 1 and machine > 1 and work >= 2 * min_work
    idle = idle_cpus() if worth and not os.environ.get("WSEKERN_IGNORE_LOAD") else machine
    return decide_threads(n_threads, work, openmp_threads=openmp, machine=machine, idle=idle,
                          min_work=min_work)


def default_threads():
    """The threads the default would take now for a large call (OpenMP's limit, the CPUs,
    the idle ones): what a comparison should give its peers (NumPy's BLAS, torch)."""
    return resolve_threads(None, 1 << 62)


# Environment variables with which a user sets NumPy's BLAS threads (kept as given).
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS",
                         "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_blas_controller = None


def blas_threads_now():
    """The threads NumPy's BLAS may use now: the CPUs this process may run on that other
    processes leave idle (all of them with ``WSEKERN_IGNORE_LOAD``)."""
    machine = machine_threads()
    if machine <= 1 or os.environ.get("WSEKERN_IGNORE_LOAD"):
        return machine
    return max(1, min(machine, idle_cpus()))


@contextlib.contextmanager
def blas_limited_to_idle_cpus():
    """For the block, NumPy's BLAS uses at most :func:`blas_threads_now` threads.

    The same cliff as OpenMP's: a BLAS thread on a core another process keeps busy makes
    every GEMM wait for it (a 64x128x512 fp32 GEMM on Zen 3 with one core busy: 0.36 ms on
    1 thread, 3-5 ms on OpenBLAS's default 2). A no-op without threadpoolctl, when the
    user set a BLAS thread count in the environment, or when the current limit is already
    lower (a ``threadpool_limits`` of the caller is never raised)."""
    global _blas_controller
    if any(os.environ.get(v) for v in BLAS_THREAD_VARIABLES):
        yield
        return
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        yield
        return
    if _blas_controller is None:
        _blas_controller = ThreadpoolController()
    blas = _blas_controller.select(user_api="blas")
    current = [lib["num_threads"] for lib in blas.info()]
    n = blas_threads_now()
    if not current or min(current) <= n:
        yield
        return
    with blas.limit(limits=n):
        yield
