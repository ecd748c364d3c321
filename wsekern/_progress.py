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


class Bars:
    """A ``progress(stage, done, total)`` callback (the wafer's hooks: ``Wafer.spmm``'s and
    ``conv2d``'s ``progress=``) drawing one tqdm bar per stage, e.g. the placer's candidate
    regions, then an event run's wavelet-link events. ``always``: draw even when stderr is
    not a terminal (a user who passes ``progress=True`` asked for it)."""

    UNITS = {"placement": "regions", "events": "events"}

    def __init__(self, quiet=False, always=False):
        self.quiet, self.always = quiet, always
        self.bars = {}

    def __call__(self, stage, done, total):
        bar = self.bars.get(stage)
        if bar is None:
            from tqdm import tqdm
            bar = self.bars[stage] = tqdm(
                total=total, desc=stage, unit=self.UNITS.get(stage, "it"), file=sys.stderr,
                disable=self.quiet or not (self.always or shown()), leave=False,
                dynamic_ncols=True, unit_scale=stage == "events")
        bar.total = max(total, done)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
