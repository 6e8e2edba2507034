"""The columns filters and date sorting read: a few bytes per paper, in memory.

A serving process holds these for every paper, so none of them holds a Python object per
paper: numbers are numpy arrays, texts that repeat (sources, categories) are small integer
codes into a table of names, and the authors are one UTF-8 blob that a substring filter
scans in C. At a million papers they stay tens of megabytes, not gigabytes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from indexing import paper_db

# Rows read from SQLite at a time: the Python tuples of one batch are all that exist at once.
_BATCH = 5_000
# The authors blob is scanned in windows of this many bytes, so the candidate positions of a
# common first letter never take more memory than a window's worth.
_SCAN_WINDOW = 1 << 20
# Separates papers and authors in the blob; filters never contain it (control characters are
# refused in typed text), so no match spans two names.
_SEPARATOR = b"\n"


@dataclass(frozen=True)
class PaperColumns:
    """What filters and date sorting read, one entry per row (global rows once concatenated)."""

    year: np.ndarray  # int16, 0 where the date is unknown
    published: np.ndarray  # int32 day ordinal, -1 where unknown
    has_code: np.ndarray  # bool
    source: np.ndarray  # uint16/int32 index into source_names
    source_names: tuple[str, ...]  # file names the papers were read from
    category_ids: np.ndarray  # int32 indexes into category_names, row after row (CSR)
    category_starts: np.ndarray  # uint32 (int64 past 4 G), rows + 1: row i's ids are
    # category_ids[starts[i]:starts[i + 1]]
    category_names: tuple[str, ...]  # lower-cased
    authors: bytes  # lower-cased names, each followed by a newline, row after row
    author_starts: np.ndarray  # as category_starts, into authors

    def __len__(self) -> int:
        return len(self.year)

    @classmethod
    def read(cls, db: sqlite3.Connection, live: np.ndarray | None = None) -> PaperColumns:
        """One table's columns, of the ``live`` rows only (ascending; all rows where None).

        The rows are streamed in batches rather than read whole as ``paper_db.filter_columns``
        does: a million rows of Python tuples and strings would be a gigabyte for a moment,
        and memory a process once took is seldom given back.
        """
        cursor = db.execute(
            f"SELECT row, {', '.join(paper_db.FILTER_COLUMNS)} FROM papers ORDER BY row"
        )
        builder = _Builder()
        while batch := cursor.fetchmany(_BATCH):
            if live is not None:
                batch_rows = np.fromiter(
                    (row[0] for row in batch), dtype=np.int64, count=len(batch)
                )
                keep = np.isin(batch_rows, live)
                batch = [row for row, kept in zip(batch, keep.tolist(), strict=True) if kept]
            builder.add(batch)
        return builder.columns()

    @classmethod
    def concat(cls, parts: Sequence[PaperColumns]) -> PaperColumns:
        """Segments' columns back to back, in the order given; their code tables merged.
        One segment's are returned as they are (no copy of a corpus's worth of arrays)."""
        if len(parts) == 1:
            return parts[0]
        sources, source_codes = _merged_tables([part.source_names for part in parts])
        categories, category_codes = _merged_tables([part.category_names for part in parts])
        category_ends = np.cumsum([len(part.category_ids) for part in parts])
        author_ends = np.cumsum([len(part.authors) for part in parts])
        return cls(
            year=_joined([part.year for part in parts], np.int16),
            published=_joined([part.published for part in parts], np.int32),
            has_code=_joined([part.has_code for part in parts], np.bool_),
            source=_codes_array(
                _joined(
                    [recode[part.source] for part, recode in zip(parts, source_codes, strict=True)],
                    np.int64,
                ),
                len(sources),
            ),
            source_names=sources,
            category_ids=_joined(
                [
                    recode[part.category_ids]
                    for part, recode in zip(parts, category_codes, strict=True)
                ],
                np.int32,
            ),
            category_starts=_joined_starts([part.category_starts for part in parts], category_ends),
            category_names=categories,
            authors=b"".join(part.authors for part in parts),
            author_starts=_joined_starts([part.author_starts for part in parts], author_ends),
        )

    def with_category(self, wanted: Iterable[int]) -> np.ndarray:
        """One boolean per row: does the paper list any of the ``wanted`` category ids."""
        listed = np.isin(self.category_ids, np.fromiter(wanted, dtype=np.int32))
        return self._rows_at(self.category_starts, np.flatnonzero(listed))

    def with_author_text(self, needle: str) -> np.ndarray:
        """One boolean per row: does ``needle`` (lower-cased, no newline) occur in one of
        the paper's author names. Scanned with numpy over windows of the blob: a candidate
        position per occurrence of the needle's first byte, narrowed byte by byte."""
        pattern = np.frombuffer(needle.encode("utf-8"), dtype=np.uint8)
        blob = np.frombuffer(self.authors, dtype=np.uint8)
        size = len(pattern)
        hits: list[np.ndarray] = []
        for start in range(0, max(len(blob) - size + 1, 0), _SCAN_WINDOW):
            window = blob[start : start + _SCAN_WINDOW + size - 1]
            found = np.flatnonzero(window[: len(window) - size + 1] == pattern[0])
            for k in range(1, size):
                found = found[window[found + k] == pattern[k]]
            hits.append(found + start)
        positions = np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64)
        return self._rows_at(self.author_starts, positions)

    def _rows_at(self, starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
        keep = np.zeros(len(self), dtype=bool)
        at = np.searchsorted(starts, positions.astype(starts.dtype), side="right")
        keep[at.astype(np.int64) - 1] = True
        return keep


class _Builder:
    """Columns growing batch by batch, each batch turned into arrays as it arrives."""

    def __init__(self) -> None:
        self.numbers: list[np.ndarray] = []  # (batch, 3): year, published, has_code
        self.sources: list[np.ndarray] = []
        self.source_codes: dict[str, int] = {}
        self.category_ids: list[np.ndarray] = []
        self.category_counts: list[np.ndarray] = []
        self.category_codes: dict[str, int] = {}
        self.authors: list[bytes] = []  # a batch's names each, joined once at the end
        self.author_lengths: list[np.ndarray] = []

    def add(self, batch: list[tuple[int, int, int, str, str, int, str]]) -> None:
        if not batch:
            return
        self.numbers.append(
            np.array([(year, published, code) for _, year, published, _, _, code, _ in batch])
        )
        self.sources.append(
            np.fromiter(
                (self.source_codes.setdefault(s, len(self.source_codes)) for *_, s, _, _ in batch),
                dtype=np.int64,
                count=len(batch),
            )
        )
        ids: list[int] = []
        counts: list[int] = []
        names = [authors.encode("utf-8") + _SEPARATOR for *_, authors in batch]
        for _, _, _, category, _, _, _ in batch:
            listed = [c for c in category.split("\n") if c]
            ids.extend(self.category_codes.setdefault(c, len(self.category_codes)) for c in listed)
            counts.append(len(listed))
        self.authors.append(b"".join(names))
        lengths = [len(text) for text in names]
        self.category_ids.append(np.array(ids, dtype=np.int32))
        self.category_counts.append(np.array(counts, dtype=np.int64))
        self.author_lengths.append(np.array(lengths, dtype=np.int64))

    def columns(self) -> PaperColumns:
        numbers = np.concatenate(self.numbers) if self.numbers else np.zeros((0, 3), np.int64)
        return PaperColumns(
            year=numbers[:, 0].astype(np.int16),
            published=numbers[:, 1].astype(np.int32),
            has_code=numbers[:, 2].astype(bool),
            source=_codes_array(_joined(self.sources, np.int64), len(self.source_codes)),
            source_names=tuple(self.source_codes),
            category_ids=_joined(self.category_ids, np.int32),
            category_starts=_starts(_joined(self.category_counts, np.int64)),
            category_names=tuple(self.category_codes),
            authors=b"".join(self.authors),
            author_starts=_starts(_joined(self.author_lengths, np.int64)),
        )


def _joined(arrays: Sequence[np.ndarray], dtype: type[np.generic]) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)


def _starts(lengths: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return _narrowed(starts)


def _narrowed(starts: np.ndarray) -> np.ndarray:
    """Offsets in four bytes where they fit (a blob under 4 GB), else eight."""
    fits = not len(starts) or int(starts[-1]) <= np.iinfo(np.uint32).max
    return starts.astype(np.uint32 if fits else np.int64)


def _joined_starts(parts: Sequence[np.ndarray], ends: np.ndarray) -> np.ndarray:
    """Row offsets of parts laid back to back: each part's own offsets (but its first 0)
    shifted by the length of the parts before it."""
    shifts = np.concatenate([[0], ends[:-1]]) if len(ends) else np.zeros(0, np.int64)
    tails = [
        starts[1:].astype(np.int64) + shift for starts, shift in zip(parts, shifts, strict=True)
    ]
    return _narrowed(np.concatenate([np.zeros(1, np.int64), *tails]).astype(np.int64))


def _codes_array(codes: np.ndarray, names: int) -> np.ndarray:
    return codes.astype(np.uint16 if names <= np.iinfo(np.uint16).max else np.int32)


def _merged_tables(
    tables: Sequence[tuple[str, ...]],
) -> tuple[tuple[str, ...], list[np.ndarray]]:
    """One table holding every name of ``tables``, and per table the new code of each of its
    codes (an array to index with the old codes)."""
    merged: dict[str, int] = {}
    recodes = [
        np.array([merged.setdefault(name, len(merged)) for name in table], dtype=np.int64)
        for table in tables
    ]
    return tuple(merged), recodes
