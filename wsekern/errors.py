"""Exceptions raised by wsekern."""


class WsekernError(Exception):
    """Base class of wsekern's own errors (bad input raises ValueError/TypeError).

    Subclasses: :class:`SramOverflowError` (a mapping does not fit a PE's SRAM) and the
    ``WorkLimitError`` of an event run estimated beyond its limits (also a ValueError).
    The ``wsekern`` command prints them and exits with a non-zero status.
    """


class SramOverflowError(WsekernError, MemoryError):
    """A mapping asked a processing element for more SRAM than it has.

    Attributes
    ----------
    pe : tuple of int
        (row, col) of the PE on the wafer.
    needed : int
        Bytes the mapping asked for.
    capacity : int
        The PE's SRAM in bytes.
    free : int
        Bytes left for data after the code/runtime reserve.
    breakdown : dict
        Buffer name -> bytes.
    """

    def __init__(self, message, *, pe=None, needed=None, capacity=None, free=None,
                 breakdown=None):
        super().__init__(message)
        self.pe = pe
        self.needed = needed
        self.capacity = capacity
        self.free = free
        self.breakdown = breakdown or {}


class WorkLimitError(WsekernError, ValueError):
    """A request would spend more work or memory than the caller allowed; the message
    names the estimate and the knob that raises the limit or lowers the cost."""
