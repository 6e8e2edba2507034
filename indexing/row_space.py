"""Rows across segments: the index's rows number the live papers of its segments in order.

Segment 0's live papers come first, in the order they were written, then segment 1's, and
so on; a removed or replaced paper (a tombstone) has no row. Search, records and filters all
speak of these rows, so none of them needs to know an index is segmented. Tombstones are
few (merging drops them: see ``update``), so a segment without any maps its rows by an
offset, and only one with tombstones keeps its live rows as an array.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def live_rows(size: int, deleted: np.ndarray) -> np.ndarray | None:
    """A segment's live local rows, ascending; None when all ``size`` are live."""
    if not len(deleted):
        return None
    live = np.ones(size, dtype=bool)
    live[deleted] = False
    return np.flatnonzero(live).astype(np.int32)


def live_positions(live: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For some of a segment's ``local`` rows: their positions among its ``live`` rows
    (ascending), and which of them are live (a position means something only there)."""
    at = np.searchsorted(live, local).clip(max=max(len(live) - 1, 0))
    alive = live[at] == local if len(live) else np.zeros(len(local), dtype=bool)
    return at, alive


class RowSpace:
    """Maps the index's rows to (segment, local row) and back."""

    def __init__(self, sizes: Sequence[int], live: Sequence[np.ndarray | None]) -> None:
        self.live = list(live)  # per segment: its live local rows, or None for all
        counts = [
            size if rows is None else len(rows) for size, rows in zip(sizes, live, strict=True)
        ]
        self.starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self.size = int(self.starts[-1])

    def split(
        self, rows: np.ndarray | Sequence[int]
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(segment, positions, local rows)`` for each segment some of ``rows`` lie in:
        ``rows[positions]`` are that segment's rows, ``local rows`` the same in its files."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.size):
            raise IndexError(f"rows outside 0..{self.size - 1}")
        segment_of = np.searchsorted(self.starts, rows, side="right") - 1
        for segment in np.unique(segment_of).tolist():
            positions = np.flatnonzero(segment_of == segment)
            local = rows[positions] - self.starts[segment]
            live = self.live[segment]
            yield segment, positions, (local if live is None else live[local].astype(np.int64))

    def to_global(self, segment: int, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of a segment's local rows: ``(rows of the live ones, which were live)``."""
        local = np.asarray(local, dtype=np.int64)
        live = self.live[segment]
        if live is None:
            return local + self.starts[segment], np.ones(len(local), dtype=bool)
        at, kept = live_positions(live, local)
        return at[kept] + self.starts[segment], kept
