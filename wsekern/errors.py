"""Exceptions raised by wsekern."""


class WsekernError(Exception):
    """Base class of wsekern's own errors (bad input raises ValueError/TypeError)."""


class SramOverflowError(WsekernError, MemoryError):
    """A mapping asked a processing element for more SRAM than it has."""
