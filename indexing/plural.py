"""Counts in the lines people read: ``1 file``, ``2 files``."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, in the plural (``plural``, else ``noun`` + "s") unless one."""
    return f"{count} {noun if count == 1 else plural or f'{noun}s'}"
