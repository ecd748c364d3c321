"""Exceptions raised by wsekern."""


class WsekernError(Exception):
    """Base class of wsekern's own errors (bad input raises ValueError/TypeError)."""


class SramOverflowError(WsekernError, MemoryError):
    """A mapping asked a processing element for more SRAM than it has.

    Attributes: ``pe`` (row, col) on the wafer, ``needed`` bytes, ``capacity`` bytes,
    ``free`` bytes for data after the reserve, ``breakdown`` {buffer: bytes}.
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
