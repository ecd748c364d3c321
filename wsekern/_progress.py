"""Progress for the loops a person waits on: a tqdm bar on stderr when stderr is a terminal,
and an estimate of the whole before long work starts."""
import sys


def shown(quiet=False):
    """Whether a bar is drawn: stderr is a terminal and the caller did not ask for quiet."""
    isatty = getattr(sys.stderr, "isatty", None)
    return not quiet and bool(isatty and isatty())


def bar(total=None, desc=None, unit="it", quiet=False, **kwargs):
    """A tqdm bar on stderr, disabled (a no-op with the same methods) when not :func:`shown`."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not shown(quiet),
                leave=False, dynamic_ncols=True, **kwargs)


def duration(seconds):
    """``seconds`` as a person reads it: 0.3 s, 40 s, 3.5 min, 1.2 h."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
