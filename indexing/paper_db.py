"""``papers.sqlite``: the table of paper records, its schema and every query made against it.

Row ``i`` describes vector ``i``: its id (indexed, for look-ups by id), title, the record (the
``Paper`` as JSON) and the abstract's sentence offsets (for highlights). What filters read is
in the segment's mapped columns (``columns``), not here. The writer creates the table, the
reader and an update read it: the columns and their encodings are written here once, so the
two sides cannot drift apart.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from indexing.records import Paper

Spans = list[tuple[int, int]]

_SCHEMA = (
    "CREATE TABLE papers (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT, "
    "record TEXT NOT NULL, sentences TEXT NOT NULL)"
)


def write_papers(
    path: Path, papers: Sequence[Paper], sentences: Sequence[Sequence[tuple[int, int]]]
) -> None:
    """Create ``path`` holding ``papers`` row for row, with each one's sentence offsets."""
    db = sqlite3.connect(path)
    try:
        db.execute(_SCHEMA)
        db.executemany(
            "INSERT INTO papers VALUES (?, ?, ?, ?, ?)",
            (
                (
                    row,
                    p.id,
                    p.title,
                    p.model_dump_json(),
                    json.dumps(spans),
                )
                for row, (p, spans) in enumerate(zip(papers, sentences, strict=True))
            ),
        )
        db.commit()
    finally:
        db.close()


def open_read_only(path: Path, *, shared: bool = False) -> sqlite3.Connection:
    """A connection that cannot change a build: builds are immutable once linked.
    ``shared``: one connection for a server's threads (the caller serialises them)."""
    return sqlite3.connect(
        f"file:{quote(str(path))}?mode=ro", uri=True, check_same_thread=not shared
    )


def row_count(db: sqlite3.Connection) -> int:
    count: int = db.execute("SELECT count(*) FROM papers").fetchone()[0]
    return count


def row_of(db: sqlite3.Connection, paper_id: str) -> int | None:
    found = db.execute("SELECT row FROM papers WHERE id = ?", (paper_id,)).fetchall()
    return found[0][0] if found else None


def rows_of(db: sqlite3.Connection, paper_ids: Sequence[str]) -> dict[str, int]:
    """The rows of those of ``paper_ids`` this table holds (through the id's unique index)."""
    found: dict[str, int] = {}
    unique = list(dict.fromkeys(paper_ids))
    for start in range(0, len(unique), 500):  # SQLite's bound-parameter limit
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(db.execute(f"SELECT id, row FROM papers WHERE id IN ({marks})", chunk))
    return found


def copy_rows(path: Path, sources: Sequence[tuple[Path, Sequence[int]]]) -> None:
    """Create ``path`` holding the rows of other tables but their ``deleted`` ones, numbered
    afresh in the order given: what a merge writes, without decoding one record."""
    # A URI connection, so that the tables attached below open read-only (``mode=ro``).
    db = sqlite3.connect(f"file:{quote(str(path))}", uri=True)
    try:
        db.execute(_SCHEMA)
        db.execute("CREATE TEMP TABLE deleted (row INTEGER PRIMARY KEY)")
        next_row = 0
        for source, deleted in sources:
            db.execute("ATTACH DATABASE ? AS source", (f"file:{quote(str(source))}?mode=ro",))
            db.execute("DELETE FROM deleted")
            db.executemany("INSERT INTO deleted VALUES (?)", ((int(row),) for row in deleted))
            copied = db.execute(
                "INSERT INTO papers SELECT ? + row_number() OVER (ORDER BY row) - 1, id, title, "
                "record, sentences "
                "FROM source.papers WHERE row NOT IN (SELECT row FROM deleted) ORDER BY row",
                (next_row,),
            ).rowcount
            next_row += copied
            db.commit()
            db.execute("DETACH DATABASE source")
        db.commit()
    finally:
        db.close()


def row_of_arxiv(db: sqlite3.Connection, arxiv_id: str) -> int | None:
    """The row of the paper with this arXiv id, whatever id the corpus gave it: a scan, for
    the rare paper whose id is not ``arxiv:<id>``."""
    found = db.execute(
        "SELECT row FROM papers WHERE json_extract(record, '$.arxiv_id') = ? ORDER BY row LIMIT 1",
        (arxiv_id,),
    ).fetchall()
    return found[0][0] if found else None


def records_at(db: sqlite3.Connection, rows: Sequence[int]) -> list[str]:
    """The records of the given rows as stored, in the given order (``decode_paper`` each:
    a server decodes them without holding its connection)."""
    return _by_row(db, "record", rows)


def sentences_at(db: sqlite3.Connection, rows: Sequence[int]) -> list[str]:
    """The sentence offsets of the given rows as stored, in the given order (see
    ``decode_spans``)."""
    return _by_row(db, "sentences", rows)


Label = tuple[str, str | None, str | None, str | None]


def map_labels(db: sqlite3.Connection, rows: Sequence[int] | None = None) -> list[Label]:
    """(id, title, category, arxiv_id) of the given rows in the given order (every paper in
    row order where None); the category as its source wrote it (the filter column is
    lower-cased), since people read it."""
    columns = "id, title, json_extract(record, '$.category'), json_extract(record, '$.arxiv_id')"
    if rows is None:
        return db.execute(f"SELECT {columns} FROM papers ORDER BY row").fetchall()
    found: dict[int, Label] = {}
    for start in range(0, len(rows), 500):
        chunk = list(rows[start : start + 500])
        marks = ",".join("?" * len(chunk))
        found.update(
            (row, label)
            for row, *label in db.execute(
                f"SELECT row, {columns} FROM papers WHERE row IN ({marks})", chunk
            )
        )
    return [found[row] for row in rows]


def ids(db: sqlite3.Connection) -> list[str]:
    """Every paper's id, in row order."""
    return [paper_id for (paper_id,) in db.execute("SELECT id FROM papers ORDER BY row")]


def decode_paper(record: str) -> Paper:
    return Paper.model_validate_json(record)


def decode_spans(text: str) -> Spans:
    """Sentence ``(start, end)`` offsets into the abstract."""
    return [(start, end) for start, end in json.loads(text)]


def _by_row(db: sqlite3.Connection, column: str, rows: Sequence[int]) -> list[str]:
    found: dict[int, str] = {}
    for start in range(0, len(rows), 500):  # SQLite's bound-parameter limit
        chunk = [int(row) for row in rows[start : start + 500]]
        marks = ",".join("?" * len(chunk))
        found.update(db.execute(f"SELECT row, {column} FROM papers WHERE row IN ({marks})", chunk))
    return [found[int(row)] for row in rows]
