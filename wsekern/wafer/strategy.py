"""Placeholder replaced below."""
_STACK = []


def current_strategy():
    return _STACK[-1] if _STACK else None
