"""The byte-level title data title look-ups scan, one folder per segment, memory-mapped.

A look-up (``service.titles``) compares the typed text with every title's letter-pair
signatures and then scores a few candidates exactly. What it reads per title is computed here
once, when a segment is written (or merged, by copying, not recomputing): the titles as one
UTF-8 blob with offsets, and two bit signatures of each squashed title (whole, and its head)
with their bit counts. Served from files, so a process holds none of it in anonymous memory
and a reload maps a million titles instead of reading and hashing them again.

A paper without a title has no entry. Each entry records its local row; a reader that is
given the segment's live rows turns that into the row among them, and knows which entries
are dead (never a candidate).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexing.columns import (
    copy_taken,
    load_array,
    merge_ragged,
    narrowed,
    read_json,
    save_array,
)
from indexing.records import Paper, normalise_title
from indexing.row_space import live_positions

# Bits of a title's signatures: its letter pairs hashed into 256 bits, those of its head
# (fewer pairs) into 128: 48 bytes a title.
WHOLE_BITS = 256
HEAD_BITS = 128
# A title's head, the squashed characters a typed prefix is compared with: long enough for
# the short name and first words people type, short enough that few bits are set.
HEAD_CHARS = 24
# Titles whose signatures are computed (or copied by a merge) at a time: bounds temporaries.
_CHUNK = 8192
# Squashed titles hold only these; "^" marks a title's start, so the pair of "^" and the
# first letter says how a title begins.
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz^"
_START = len(_ALPHABET) - 1
_CODE = np.full(256, _START, dtype=np.int64)
_CODE[np.frombuffer(_ALPHABET.encode(), dtype=np.uint8)] = np.arange(len(_ALPHABET))
# Each letter pair's bit: a fixed scramble, so similar pairs ("ab", "ac") fall apart.
_PAIR_BIT = np.random.default_rng(20240613).integers(0, WHOLE_BITS, len(_ALPHABET) ** 2)

# The files of a title folder.
_META = "meta.json"  # {"papers": rows of the segment, titled or not}
_ROWS = "rows.npy"  # local row of each entry, ascending
_STARTS = "starts.npy"  # entries + 1 offsets into the text
_TEXT = "text.npy"  # the titles, UTF-8, back to back
_WHOLE = "whole.npy"  # (WHOLE_BITS // 64, entries) uint64: signatures, word by word
_HEAD = "head.npy"  # (HEAD_BITS // 64, entries) uint64
_WHOLE_BITS = "whole_bits.npy"  # uint16 bits set per whole signature
_HEAD_BITS = "head_bits.npy"  # uint16 bits set per head signature


@dataclass(frozen=True)
class TitleIndex:
    """One segment's titles as a look-up reads them (arrays memory-mapped once opened)."""

    papers: int  # rows of the segment, titled or not
    rows: np.ndarray  # local row of each entry, ascending
    starts: np.ndarray  # entries + 1 offsets into ``text``
    text: np.ndarray  # uint8
    whole: np.ndarray  # (WHOLE_BITS // 64, entries) uint64, word by word (contiguous columns)
    head: np.ndarray  # (HEAD_BITS // 64, entries) uint64
    whole_bits: np.ndarray  # uint16
    head_bits: np.ndarray  # uint16
    # Per entry, its row among the segment's live rows, ascending (a dead entry has the next
    # live row's); None where every row is live: the local row is that row.
    live_position: np.ndarray | None
    dead: np.ndarray  # entries whose row was removed since, ascending (few)

    def __len__(self) -> int:
        return len(self.rows)

    def title(self, entry: int) -> str:
        return self.text[int(self.starts[entry]) : int(self.starts[entry + 1])].tobytes().decode()

    def positions(self, entries: np.ndarray) -> np.ndarray:
        """The rows among the segment's live rows of these (live) entries."""
        table = self.rows if self.live_position is None else self.live_position
        return np.asarray(table[entries], dtype=np.int64)

    def entries_of(self, live_rows: np.ndarray) -> np.ndarray:
        """``entry_of`` of many rows at once (ascending or not): -1 where a row has none."""
        table = self.rows if self.live_position is None else self.live_position
        # Needles of the table's own type: another one would make numpy convert the whole
        # table (a million entries) on every call.
        at = np.searchsorted(table, live_rows.astype(table.dtype), side="right") - 1
        found = at >= 0
        found[found] = table[at[found]] == live_rows[found]
        if len(self.dead):
            found &= ~np.isin(at, self.dead)
        return np.where(found, at, -1)

    def entry_of(self, live_row: int) -> int | None:
        """The entry of the segment's ``live_row``-th live row, if that paper has a title."""
        entry = int(self.entries_of(np.array([live_row]))[0])
        return None if entry < 0 else entry

    @staticmethod
    def write(folder: Path, papers: Sequence[Paper]) -> None:
        """Write the title data of a new segment's ``papers`` (row for row) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=False)
        titled = [(row, paper.title) for row, paper in enumerate(papers) if paper.title is not None]
        count = len(titled)
        lengths = np.fromiter(
            (len(title.encode("utf-8")) for _, title in titled), dtype=np.int64, count=count
        )
        starts = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        text = np.empty(int(starts[-1]), dtype=np.uint8)
        whole = np.empty((WHOLE_BITS // 64, count), dtype=np.uint64)
        head = np.empty((HEAD_BITS // 64, count), dtype=np.uint64)
        for start in range(0, count, _CHUNK):
            stop = min(start + _CHUNK, count)
            chunk = [title for _, title in titled[start:stop]]
            text[starts[start] : starts[stop]] = np.frombuffer(
                "".join(chunk).encode("utf-8"), dtype=np.uint8
            )
            squashed = [squash(normalise_title(title)) for title in chunk]
            whole[:, start:stop] = signatures(squashed, None, WHOLE_BITS).T
            head[:, start:stop] = signatures(squashed, HEAD_CHARS, HEAD_BITS).T
        rows = np.fromiter((row for row, _ in titled), dtype=np.int64, count=count)
        save_array(folder / _ROWS, narrowed(rows, len(papers)))
        save_array(folder / _STARTS, narrowed(starts, int(starts[-1])))
        save_array(folder / _TEXT, text)
        save_array(folder / _WHOLE, whole)
        save_array(folder / _HEAD, head)
        save_array(folder / _WHOLE_BITS, shared_bits(whole, None))
        save_array(folder / _HEAD_BITS, shared_bits(head, None))
        (folder / _META).write_text(json.dumps({"papers": len(papers)}), encoding="utf-8")

    @staticmethod
    def merge(parts: Sequence[tuple[Path, np.ndarray | None]], folder: Path) -> None:
        """Write the titles of the live rows (ascending local rows; None: all) of several
        segments' title folders as one, renumbered as a merge numbers their rows: copied,
        never recomputed, a chunk at a time."""
        folder.mkdir(parents=True, exist_ok=False)
        opened = [TitleIndex.open(path, None) for path, _ in parts]
        kept: list[np.ndarray] = []  # per part, its entries kept
        new_rows: list[np.ndarray] = []
        shift = 0
        for index, (_, live) in zip(opened, parts, strict=True):
            rows = np.asarray(index.rows, dtype=np.int64)
            if live is None:
                kept.append(np.arange(len(rows)))
                new_rows.append(rows + shift)
                shift += index.papers
            else:
                live = np.asarray(live, dtype=np.int64)
                at, alive = live_positions(live, rows)
                kept.append(np.flatnonzero(alive))
                new_rows.append(at[alive] + shift)
                shift += len(live)
        rows = np.concatenate([np.zeros(0, np.int64), *new_rows])
        save_array(folder / _ROWS, narrowed(rows, shift))
        merge_ragged(
            [
                (index.text, index.starts, entries, None)
                for index, entries in zip(opened, kept, strict=True)
            ],
            folder / _TEXT,
            folder / _STARTS,
            np.uint8,
        )
        for name, field in (
            (_WHOLE, "whole"),
            (_HEAD, "head"),
            (_WHOLE_BITS, "whole_bits"),
            (_HEAD_BITS, "head_bits"),
        ):
            copy_taken(
                [
                    (getattr(index, field), entries)
                    for index, entries in zip(opened, kept, strict=True)
                ],
                folder / name,
                _CHUNK,
            )
        (folder / _META).write_text(json.dumps({"papers": shift}), encoding="utf-8")

    @classmethod
    def open(cls, folder: Path, live: np.ndarray | None) -> TitleIndex:
        """Memory-map a segment's title folder; ``live``: its live rows, ascending (None: all).
        Raises ValueError when its files disagree."""
        papers = read_json(folder / _META).get("papers")
        if not isinstance(papers, int) or papers < 0:
            raise ValueError(f"{folder / _META}: no paper count")
        rows = load_array(folder / _ROWS)
        starts = load_array(folder / _STARTS)
        text = load_array(folder / _TEXT)
        whole = load_array(folder / _WHOLE)
        head = load_array(folder / _HEAD)
        whole_bits = load_array(folder / _WHOLE_BITS)
        head_bits = load_array(folder / _HEAD_BITS)
        count = len(rows)
        if (
            len(starts) != count + 1
            or (count and int(starts[-1]) != len(text))
            or whole.shape != (WHOLE_BITS // 64, count)
            or head.shape != (HEAD_BITS // 64, count)
            or len(whole_bits) != count
            or len(head_bits) != count
            or (count and int(rows[-1]) >= papers)
        ):
            raise ValueError(f"the title files in {folder} disagree on their titles")
        live_position = None
        dead = np.zeros(0, dtype=np.int64)
        if live is not None:
            local = np.asarray(rows, dtype=np.int64)
            # A dead entry gets the position of the next live row: the table stays ascending
            # (non-decreasing), and the live entry of a position is the last holding it.
            live_position = narrowed(np.searchsorted(live, local), len(live))
            clipped = live_position.clip(max=max(len(live) - 1, 0))
            alive = live[clipped] == local if len(live) else np.zeros(count, dtype=bool)
            dead = np.flatnonzero(~alive)
        return cls(
            papers,
            rows,
            starts,
            text,
            whole,
            head,
            whole_bits,
            head_bits,
            live_position,
            dead,
        )


def signatures(squashed: Sequence[str], head: int | None, bits: int) -> np.ndarray:
    """Per title, the set of its letter pairs (the first ``head`` characters' only, where
    given), "^" and the first letter included, hashed into ``bits`` bits: rows of
    ``bits // 64`` uint64."""
    marked = [b"^" + (text[:head] if head else text).encode("ascii") for text in squashed]
    lengths = np.fromiter(map(len, marked), dtype=np.int64, count=len(marked))
    codes = _CODE[np.frombuffer(b"".join(marked), dtype=np.uint8)]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    # A pair at every position but each title's last (whose next letter is the next title's).
    pair_at = np.ones(len(codes), dtype=bool)
    pair_at[starts[1:] - 1] = False
    first = np.flatnonzero(pair_at)
    pair_bits = _PAIR_BIT[codes[first] * len(_ALPHABET) + codes[first + 1]] % bits
    title_of = np.searchsorted(starts, first, side="right") - 1
    flags = np.zeros((len(marked), bits), dtype=bool)
    flags[title_of, pair_bits] = True
    return np.ascontiguousarray(np.packbits(flags, axis=1)).view(np.uint64)


def shared_bits(words: np.ndarray, typed: np.ndarray | None) -> np.ndarray:
    """Per title (a column of ``words``), the bits it shares with ``typed`` (all its bits
    where None)."""
    count = np.zeros(words.shape[1], dtype=np.uint16)
    for i, word in enumerate(words):
        count += np.bitwise_count(word if typed is None else word & typed[i])
    return count


def squash(normalised: str) -> str:
    """A normalised title without its spaces: "one reason" finds "OneReason"."""
    return normalised.replace(" ", "")
