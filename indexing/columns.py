"""The columns filters and date sorting read: written once per segment, memory-mapped when served.

A serving process reads these for every paper, so they are files, not objects: numbers are
``.npy`` arrays, texts that repeat (sources, categories) small integer codes into a table of
names (JSON), and the authors one UTF-8 blob that a substring filter scans in C. They are
written when a segment is written (``write``) or merged (``merge``, from the segments'
columns: no record is read again), and opening them maps the files, so a start-up or a reload
costs milliseconds at any corpus size and the pages are the operating system's file cache,
shared by every worker.

The numbers (year, date, code, source: a few bytes a paper) of several segments are joined
in memory over the index's rows; the text-derived parts (categories, authors) stay in their
segments' files, each filter evaluated on them segment by segment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from indexing.records import Paper, all_categories
from indexing.row_space import live_positions

# The authors blob is scanned in windows of this many bytes, so the candidate positions of a
# common first letter never take more memory than a window's worth.
_SCAN_WINDOW = 1 << 20
# Rows copied at a time by a merge: bounded memory at any corpus size.
_COPY_ROWS = 16_384
# Separates papers and authors in the blob; filters never contain it (control characters are
# refused in typed text), so no match spans two names.
_SEPARATOR = b"\n"

# The files of a columns folder.
_NAMES = "names.json"  # {"sources": [...], "categories": [...]}: the code tables
_YEAR = "year.npy"
_PUBLISHED = "published.npy"
_HAS_CODE = "has_code.npy"
_SAMPLE_KEY = "sample_key.npy"
_SOURCE = "source.npy"
_CATEGORY_IDS = "category_ids.npy"
_CATEGORY_STARTS = "category_starts.npy"
_AUTHORS = "authors.npy"
_AUTHOR_STARTS = "author_starts.npy"


@dataclass(frozen=True)
class TextColumns:
    """One segment's categories and authors, as written (memory-mapped), over its local rows."""

    category_ids: np.ndarray  # int32 codes into the segment's table, row after row (CSR)
    category_starts: np.ndarray  # uint32 (int64 past 4 G), rows + 1: row i's ids are
    # category_ids[starts[i]:starts[i + 1]]
    authors: np.ndarray  # uint8: lower-cased names, each followed by a newline, row after row
    author_starts: np.ndarray  # as category_starts, into authors
    live: np.ndarray | None  # the live local rows, ascending; None: all
    category_codes: np.ndarray  # the segment's category code -> the columns' code

    @property
    def rows(self) -> int:
        return len(self.category_starts) - 1

    def live_rows(self, keep: np.ndarray) -> np.ndarray:
        """A per-local-row array narrowed to the live rows (itself when all are live)."""
        return keep if self.live is None else keep[self.live]

    def rows_at(self, starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """One boolean per live row: does one of ``positions`` (into the CSR values) fall in it."""
        keep = np.zeros(self.rows, dtype=bool)
        at = np.searchsorted(starts, positions.astype(starts.dtype), side="right")
        keep[at.astype(np.int64) - 1] = True
        return self.live_rows(keep)


@dataclass(frozen=True)
class PaperColumns:
    """What filters and date sorting read, one entry per row (the index's rows once
    concatenated)."""

    year: np.ndarray  # int16, 0 where the date is unknown
    published: np.ndarray  # int32 day ordinal, -1 where unknown
    has_code: np.ndarray  # bool
    source: np.ndarray  # uint16/int32 index into source_names

    source_names: tuple[str, ...]  # file names the papers were read from
    category_names: tuple[str, ...]  # lower-cased
    texts: tuple[TextColumns, ...]  # per segment, in row order
    sample_key: np.ndarray  # uint32 hash of each paper's id (see ``in_sample``)

    def __len__(self) -> int:
        return len(self.year)

    @staticmethod
    def write(folder: Path, papers: Sequence[Paper]) -> None:
        """Write the columns of a new segment's ``papers`` (row for row) into ``folder``,
        which it creates: the values ``paper_db.write_papers`` stores."""
        folder.mkdir(parents=True, exist_ok=False)
        sources: dict[str, int] = {}
        categories: dict[str, int] = {}
        ids: list[int] = []
        category_counts: list[int] = []
        names: list[bytes] = []
        for paper in papers:
            listed = [c for c in "\n".join(all_categories(paper)).lower().split("\n") if c]
            ids.extend(categories.setdefault(c, len(categories)) for c in listed)
            category_counts.append(len(listed))
            names.append("\n".join(paper.authors).lower().encode("utf-8") + _SEPARATOR)
        count = len(papers)
        save_array(
            folder / _YEAR,
            np.fromiter((p.published.year if p.published else 0 for p in papers), np.int16, count),
        )
        save_array(
            folder / _PUBLISHED,
            np.fromiter(
                (p.published.toordinal() if p.published else -1 for p in papers), np.int32, count
            ),
        )
        save_array(folder / _HAS_CODE, np.fromiter((p.has_code for p in papers), np.bool_, count))
        save_array(
            folder / _SAMPLE_KEY, np.fromiter((_id_key(p.id) for p in papers), np.uint32, count)
        )
        codes = np.fromiter(
            (sources.setdefault(p.source, len(sources)) for p in papers), np.int64, count
        )
        save_array(folder / _SOURCE, _codes_array(codes, len(sources)))
        save_array(folder / _CATEGORY_IDS, np.array(ids, dtype=np.int32))
        save_array(folder / _CATEGORY_STARTS, _starts(np.array(category_counts, dtype=np.int64)))
        save_array(folder / _AUTHORS, np.frombuffer(b"".join(names), dtype=np.uint8))
        lengths = np.fromiter(map(len, names), np.int64, count)
        save_array(folder / _AUTHOR_STARTS, _starts(lengths))
        _write_names(folder, list(sources), list(categories))

    @staticmethod
    def merge(parts: Sequence[tuple[Path, np.ndarray | None]], folder: Path) -> None:
        """Write the columns of the live rows (ascending local rows; None: all) of several
        segments' column folders back to back into ``folder``, which it creates: arrays
        taken and joined, the blobs' live slices copied a chunk of rows at a time."""
        folder.mkdir(parents=True, exist_ok=False)
        opened = [PaperColumns.open(path, None) for path, _ in parts]
        lives = [live for _, live in parts]
        sources, source_codes = _merged_tables([part.source_names for part in opened])
        categories, category_codes = _merged_tables([part.category_names for part in opened])
        numbers = ((_YEAR, "year"), (_PUBLISHED, "published"), (_HAS_CODE, "has_code"))
        for name, field in (*numbers, (_SAMPLE_KEY, "sample_key")):
            save_array(
                folder / name,
                _joined(
                    [
                        _taken(getattr(part, field), live)
                        for part, live in zip(opened, lives, strict=True)
                    ]
                ),
            )
        codes = [
            recode[_taken(part.source, live)]
            for part, live, recode in zip(opened, lives, source_codes, strict=True)
        ]
        save_array(folder / _SOURCE, _codes_array(_joined(codes), len(sources)))
        texts = [part.texts[0] for part in opened]
        merge_ragged(
            [
                (text.category_ids, text.category_starts, live, recode)
                for text, live, recode in zip(texts, lives, category_codes, strict=True)
            ],
            folder / _CATEGORY_IDS,
            folder / _CATEGORY_STARTS,
            np.int32,
        )
        merge_ragged(
            [
                (text.authors, text.author_starts, live, None)
                for text, live in zip(texts, lives, strict=True)
            ],
            folder / _AUTHORS,
            folder / _AUTHOR_STARTS,
            np.uint8,
        )
        _write_names(folder, list(sources), list(categories))

    @classmethod
    def open(cls, folder: Path, live: np.ndarray | None) -> PaperColumns:
        """Memory-map a segment's columns; ``live``: its live rows, ascending (None: all;
        the numbers of the live rows are then taken into memory, a few bytes a paper).
        Raises ValueError when its files disagree."""
        names = read_json(folder / _NAMES)
        sources, categories = names.get("sources"), names.get("categories")
        if not isinstance(sources, list) or not isinstance(categories, list):
            raise ValueError(f"{folder / _NAMES} lacks its lists of names")
        if not all(isinstance(name, str) for name in [*sources, *categories]):
            raise ValueError(f"{folder / _NAMES} holds a name that is not text")
        numbers = [
            load_array(folder / name)
            for name in (_YEAR, _PUBLISHED, _HAS_CODE, _SOURCE, _SAMPLE_KEY)
        ]
        text = TextColumns(
            category_ids=load_array(folder / _CATEGORY_IDS),
            category_starts=load_array(folder / _CATEGORY_STARTS),
            authors=load_array(folder / _AUTHORS),
            author_starts=load_array(folder / _AUTHOR_STARTS),
            live=live,
            category_codes=np.arange(len(categories), dtype=np.int64),
        )
        rows = text.rows
        if (
            any(len(array) != rows for array in numbers)
            or len(text.author_starts) != rows + 1
            or int(text.category_starts[-1]) != len(text.category_ids)
            or int(text.author_starts[-1]) != len(text.authors)
            or (live is not None and len(live) and int(live[-1]) >= rows)
        ):
            raise ValueError(f"the column files in {folder} disagree on their papers")
        year, published, has_code, source, key = (_taken(array, live) for array in numbers)
        return cls(
            year, published, has_code, source, tuple(sources), tuple(categories), (text,), key
        )

    @classmethod
    def concat(cls, parts: Sequence[PaperColumns]) -> PaperColumns:
        """Segments' columns back to back, in the order given; their code tables merged.
        The numbers are joined in memory; the categories and authors stay where they are.
        One segment's are returned as they are (no copy at all)."""
        if len(parts) == 1:
            return parts[0]
        sources, source_codes = _merged_tables([part.source_names for part in parts])
        categories, category_codes = _merged_tables([part.category_names for part in parts])
        return cls(
            year=_joined([part.year for part in parts]),
            published=_joined([part.published for part in parts]),
            has_code=_joined([part.has_code for part in parts]),
            source=_codes_array(
                _joined(
                    [recode[part.source] for part, recode in zip(parts, source_codes, strict=True)]
                ),
                len(sources),
            ),
            source_names=sources,
            category_names=categories,
            texts=tuple(
                replace(text, category_codes=recode[text.category_codes])
                for part, recode in zip(parts, category_codes, strict=True)
                for text in part.texts
            ),
            sample_key=_joined([part.sample_key for part in parts]),
        )

    def in_sample(self, size: int) -> np.ndarray:
        """The rows of a fixed sample of about ``size`` papers, chosen by a hash of their ids:
        the same papers in whatever order or segments an index holds them, so what is
        estimated from the sample (the hybrid range's low end) is the same for any index of
        the same papers."""
        share = min(1.0, size / max(1, len(self.sample_key)))
        return np.flatnonzero(self.sample_key <= np.uint32(share * np.iinfo(np.uint32).max))

    def with_category(self, wanted: Iterable[int]) -> np.ndarray:
        """One boolean per row: does the paper list any of the ``wanted`` category codes."""
        codes = np.fromiter(wanted, dtype=np.int64)
        return self._joined_rows(
            text.rows_at(
                text.category_starts,
                np.flatnonzero(
                    np.isin(text.category_ids, np.flatnonzero(np.isin(text.category_codes, codes)))
                ),
            )
            for text in self.texts
        )

    def with_author_text(self, needle: str) -> np.ndarray:
        """One boolean per row: does ``needle`` (lower-cased, no newline) occur in one of
        the paper's author names. Scanned with numpy over windows of each segment's blob: a
        candidate position per occurrence of the needle's first byte, narrowed byte by byte."""
        pattern = np.frombuffer(needle.encode("utf-8"), dtype=np.uint8)
        return self._joined_rows(
            text.rows_at(text.author_starts, _occurrences(text.authors, pattern))
            for text in self.texts
        )

    def category_counts(self) -> np.ndarray:
        """Papers listing each category, by code (a paper counts once per category it lists)."""
        counts = np.zeros(len(self.category_names), dtype=np.int64)
        for text in self.texts:
            ids = np.asarray(text.category_ids)
            if text.live is not None:  # the removed papers' entries left out
                alive = np.zeros(text.rows, dtype=bool)
                alive[text.live] = True
                starts = np.asarray(text.category_starts, dtype=np.int64)
                ids = ids[np.repeat(alive, starts[1:] - starts[:-1])]
            found = np.bincount(ids, minlength=len(text.category_codes))
            np.add.at(counts, text.category_codes, found)
        return counts

    def first_rows_listing(self, codes: Sequence[int]) -> list[int]:
        """For each category code, the first row whose paper lists it (-1: none does)."""
        first = dict.fromkeys(codes, -1)
        offset = 0
        for text in self.texts:
            live = np.arange(text.rows) if text.live is None else text.live
            missing = [code for code, row in first.items() if row < 0]
            mask = np.isin(text.category_codes[text.category_ids], missing)
            positions = np.flatnonzero(mask)
            starts = text.category_starts
            local = np.searchsorted(starts, positions.astype(starts.dtype), side="right") - 1
            at, alive = live_positions(live, local)
            for code, row in zip(
                text.category_codes[text.category_ids[positions[alive]]].tolist(),
                (at[alive] + offset).tolist(),
                strict=True,
            ):
                if first[code] < 0:
                    first[code] = row
            offset += len(live)
        return [first[code] for code in codes]

    def _joined_rows(self, pieces: Iterable[np.ndarray]) -> np.ndarray:
        """Per-segment booleans over their live rows as one array over the index's rows."""
        found = list(pieces)
        return found[0] if len(found) == 1 else _joined(found, np.bool_)


def _occurrences(blob: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Where ``pattern`` starts in ``blob``, ascending, a window of the blob at a time."""
    size = len(pattern)
    hits: list[np.ndarray] = []
    for start in range(0, max(len(blob) - size + 1, 0), _SCAN_WINDOW):
        window = np.asarray(blob[start : start + _SCAN_WINDOW + size - 1])
        found = np.flatnonzero(window[: len(window) - size + 1] == pattern[0])
        for k in range(1, size):
            found = found[window[found + k] == pattern[k]]
        hits.append(found + start)
    return np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64)


def read_json(path: Path) -> dict[str, object]:
    """A small JSON object of a segment's folder; ValueError when it is not one."""
    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return value


def load_array(path: Path) -> np.ndarray:
    """A ``.npy`` file memory-mapped read-only (never unpickled), as a plain array over the
    mapping: ``np.memmap`` indexes in Python, which a look-up reading a thousand titles one
    by one would pay a thousand times."""
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    array: np.ndarray = mapped.view(np.ndarray)
    return array


def save_array(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


def narrowed(values: np.ndarray, largest: int) -> np.ndarray:
    """Offsets or rows in four bytes where ``largest`` fits (under 4 G), else eight."""
    return values.astype(np.uint32 if largest <= np.iinfo(np.uint32).max else np.int64)


def merge_ragged(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]],
    values_path: Path,
    starts_path: Path,
    dtype: type[np.generic],
) -> None:
    """Write the picked rows of several CSR arrays back to back: per part ``(values, starts,
    rows picked ascending or None for all, recode of the values or None)``. The values are
    copied a chunk of rows at a time into the new file, so memory stays bounded."""
    picked = [np.arange(len(starts) - 1) if rows is None else rows for _, starts, rows, _ in parts]
    lengths = [
        np.diff(np.asarray(starts, dtype=np.int64))[rows]
        for (_, starts, _, _), rows in zip(parts, picked, strict=True)
    ]
    new_starts = _starts(np.concatenate([np.zeros(0, np.int64), *lengths]))
    total = int(new_starts[-1])
    out = np.lib.format.open_memmap(values_path, mode="w+", dtype=dtype, shape=(total,))
    at = 0
    for (values, starts, _, recode), rows in zip(parts, picked, strict=True):
        for first in range(0, len(rows), _COPY_ROWS):
            chunk = np.asarray(rows[first : first + _COPY_ROWS], dtype=np.int64)
            begin = np.asarray(starts[chunk], dtype=np.int64)
            sizes = np.asarray(starts[chunk + 1], dtype=np.int64) - begin
            size = int(sizes.sum())
            # Each value's place in the old array: its row's start plus its place in the row.
            shift = np.repeat(begin - (np.cumsum(sizes) - sizes), sizes.astype(np.int64))
            piece = np.asarray(values)[shift + np.arange(size)]
            out[at : at + size] = piece if recode is None else recode[piece]
            at += size
    out.flush()
    del out
    save_array(starts_path, new_starts)


def copy_taken(parts: Sequence[tuple[np.ndarray, np.ndarray]], path: Path, chunk: int) -> None:
    """Write the columns (the last axis) ``taken`` of several arrays back to back, a chunk at
    a time: per part ``(array, ascending indexes into its last axis)``."""
    first = parts[0][0]
    count = sum(len(taken) for _, taken in parts)
    out = np.lib.format.open_memmap(
        path, mode="w+", dtype=first.dtype, shape=(*first.shape[:-1], count)
    )
    at = 0
    for array, taken in parts:
        for start in range(0, len(taken), chunk):
            columns = taken[start : start + chunk]
            out[..., at : at + len(columns)] = array[..., columns]
            at += len(columns)
    out.flush()
    del out


def _write_names(folder: Path, sources: list[str], categories: list[str]) -> None:
    names = {"sources": sources, "categories": categories}
    (folder / _NAMES).write_text(json.dumps(names), encoding="utf-8")


def _id_key(paper_id: str) -> int:
    """A paper id's sample key: four bytes of its BLAKE2b digest, spread evenly."""
    return int.from_bytes(hashlib.blake2b(paper_id.encode("utf-8"), digest_size=4).digest())


def _taken(array: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    return array if rows is None else np.asarray(array)[rows]


def _joined(arrays: Sequence[np.ndarray], dtype: type[np.generic] | None = None) -> np.ndarray:
    if not arrays:
        return np.zeros(0, dtype=dtype or np.int64)
    joined = np.concatenate(arrays)
    return joined if dtype is None else joined.astype(dtype, copy=False)


def _starts(lengths: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return narrowed(starts, int(starts[-1]))


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
