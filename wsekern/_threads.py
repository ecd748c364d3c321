"""Thread-count policy shared by the kernels (scikit-learn's meaning of n_threads)."""
import numbers
import os

from . import _spmm

# Below this many multiply-adds a second thread costs more than it saves
# (measured on a 2-core machine: small kernels ran several times slower).
MIN_WORK_PER_THREAD = 200_000


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


def resolve_threads(n_threads, work):
    """Threads to use for ``work`` multiply-adds.

    None means all available; a negative value counts back from the number of
    CPUs (-1 all, -2 all but one), as in scikit-learn; 0 is an error. A count above
    the machine's threads (:func:`machine_threads`) is capped there: more OpenMP
    threads than cores only slow the loops, and thousands of them can fail to start
    (libgomp then exits the interpreter).
    """
    available = max_threads()
    if n_threads is None:
        wanted = available
    else:
        if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
            raise TypeError(f"n_threads must be an int or None; received {n_threads!r}")
        n_threads = int(n_threads)
        if n_threads == 0:
            raise ValueError("n_threads=0 is not valid; use None (all threads), a positive "
                             "count, or a negative one (-1 = all CPUs)")
        wanted = n_threads if n_threads > 0 else max(1, machine_threads() + 1 + n_threads)
    if not _spmm.openmp_enabled():
        return 1
    by_work = max(1, int(work // MIN_WORK_PER_THREAD))
    return max(1, min(wanted, by_work, machine_threads()))
