"""The columns filters and date sorting read: one compact array entry per paper, in memory."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np

from indexing import paper_db


@dataclass(frozen=True)
class PaperColumns:
    """What filters and date sorting read, one array entry per row, held in memory."""

    year: np.ndarray  # int32, 0 where the date is unknown
    published: np.ndarray  # int64 day ordinal, -1 where unknown
    category: np.ndarray  # lower-cased categories joined by newlines, "" where unknown
    source: np.ndarray  # file name the paper was read from
    has_code: np.ndarray  # bool
    authors: np.ndarray  # lower-cased author names joined by newlines

    @classmethod
    def read(cls, db: sqlite3.Connection) -> PaperColumns:
        rows = paper_db.filter_columns(db)
        column = list(zip(*rows, strict=True)) if rows else [()] * len(paper_db.FILTER_COLUMNS)
        return cls(
            year=np.array(column[0], dtype=np.int32),
            published=np.array(column[1], dtype=np.int64),
            category=np.array(column[2], dtype=object),
            source=np.array(column[3], dtype=object),
            has_code=np.array(column[4], dtype=bool),
            authors=np.array(column[5], dtype=object),
        )
