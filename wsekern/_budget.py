"""How much memory one call may plan to take: estimates are checked here before allocating."""
import os
import resource

_physical = []     # the machine's memory, read once: two sysconf calls cost every spmm ~1 us


def _physical_bytes():
    if not _physical:
        try:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            total = 16 << 30
        _physical.append(total)
    return _physical[0]


def memory_budget():
    """Half the memory this process may have: physical memory, or its address-space limit
    (read on every call: a process may lower it at any time)."""
    total = _physical_bytes()
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY:
        total = min(total, limit)
    return total // 2


def check_memory(nbytes, what, knob):
    """Raise MemoryError naming the estimate and ``knob`` (what lowers it) when ``nbytes``
    is beyond :func:`memory_budget`."""
    budget = memory_budget()
    if nbytes > budget:
        raise MemoryError(f"{what} would take about {nbytes / 2**30:.1f} GiB, beyond the "
                          f"budget of {budget / 2**30:.1f} GiB (half the memory this process "
                          f"may use); {knob}")


# What _spmm's lean path (small spmm calls) repeats natively, without the Python calls: with
# any of these replaced (a test pins a budget so), it calls check_memory instead.
_NATIVE = (check_memory, memory_budget, _physical_bytes)


def check_expanded(a, name):
    """A broadcast view (a stride-0 axis) holds far less memory than its shape: a kernel's
    contiguous copy of it takes a.size elements. Refused like any other estimate when that
    is beyond the budget. Any other array's copy is at most its own size again."""
    if a.ndim and a.size > 1 and 0 in a.strides:
        check_memory(a.size * max(a.itemsize, 4),
                     f"a contiguous copy of {name} (a broadcast view of shape {a.shape})",
                     f"pass {name} with the shape the kernel should see, not broadcast")
