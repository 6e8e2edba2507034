"""JSON-lines corpora: plain paper JSONL, arXiv metadata dumps and BEIR ``corpus.jsonl``.

The flavour is recognised per object from its keys, so one reader serves all three:
BEIR objects have ``_id`` and ``text``; arXiv metadata has an arXiv-style ``id`` with
``categories``; anything else is read as a plain paper (``title``, ``abstract``, ``authors``…).
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

from indexing.records import Paper, PaperAtLine, ParseIssue, clean_doi, derived_paper_id

ARXIV_ID = re.compile(r"^(?:\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$")
_AUTHOR_SEPARATORS = re.compile(r",\s*|\s+and\s+")
# The longest record in the 75k arXiv dump is 56 KB; a line over 1 MiB is not one paper but a
# file that lost its line breaks (or is not JSONL), and holding it whole would only cost memory.
MAX_LINE_BYTES = 1 << 20
LINE_TOO_LONG = f"line is longer than {MAX_LINE_BYTES >> 20} MiB"


def open_bytes(path: Path) -> BinaryIO:
    """Open a file for reading, un-gzipping it when it is gzip whatever its name."""
    with path.open("rb") as raw:
        magic = raw.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


# What a damaged file raises while it is read: bad bytes, a cut or corrupt gzip stream.
UNREADABLE = (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error)


def describe_unreadable(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return f"damaged gzip data ({exc or type(exc).__name__})"


def describe_bad_utf8(exc: UnicodeDecodeError, column: int) -> str:
    """Name the byte and its column: the user can find it, and a byte like 0xe9 (Latin-1 'é')
    tells which encoding the file was saved in."""
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} in column {column})"


def parse_jsonl(path: Path, source: str) -> Iterator[PaperAtLine | ParseIssue]:
    """Read line by line (a 75k-paper dump never sits in memory); a bad line costs one line.

    Each paper comes with its line number, which the duplicate-id check reports.
    """
    number = 0
    with open_bytes(path) as stream:
        try:
            for number, line in enumerate(_bounded_lines(stream), start=1):
                if line is None:
                    yield ParseIssue(source, number, LINE_TOO_LONG)
                    continue
                if number == 1:
                    line = line.removeprefix(codecs.BOM_UTF8)  # editors on Windows save one
                yield from _parse_line(line, number, source)
        except UNREADABLE as exc:  # a cut or corrupt gzip stream: nothing after it is readable
            yield ParseIssue(
                source, number + 1, f"{describe_unreadable(exc)}; the rest of the file is skipped"
            )


def _bounded_lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """The stream's lines, with ``None`` for one of over ``MAX_LINE_BYTES`` before its ``\\n``.

    An over-long line is read past in chunks of at most the limit, so a 50 MB line never
    sits in memory whole; the line after it is read as usual.
    """
    while line := stream.readline(MAX_LINE_BYTES + 1):
        if line.endswith(b"\n") or len(line) <= MAX_LINE_BYTES:  # whole, or the last line
            yield line
            continue
        while not line.endswith(b"\n") and (line := stream.readline(MAX_LINE_BYTES)):
            pass
        yield None


def _parse_line(raw: bytes, number: int, source: str) -> Iterator[PaperAtLine | ParseIssue]:
    if not raw.strip():
        return
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        yield ParseIssue(source, number, describe_bad_utf8(exc, exc.start + 1))
        return
    except json.JSONDecodeError as exc:
        yield ParseIssue(source, number, f"invalid JSON: {exc.msg}")
        return
    if not isinstance(obj, dict):
        yield ParseIssue(source, number, "expected a JSON object")
        return
    try:
        yield PaperAtLine(paper_from_object(obj, source), number)
    except (ValueError, TypeError) as exc:
        yield ParseIssue(source, number, str(exc).splitlines()[0])


def paper_from_object(obj: dict[str, Any], source: str) -> Paper:
    if "_id" in obj and "text" in obj:
        return _beir(obj, source)
    if ARXIV_ID.match(str(obj.get("id", ""))) and "categories" in obj:
        return _arxiv_metadata(obj, source)
    return _plain(obj, source)


def _beir(obj: dict[str, Any], source: str) -> Paper:
    abstract = _required_text(obj, "text")
    return Paper(
        id=str(obj["_id"]),  # kept verbatim: relevance judgments refer to it
        title=_optional_text(obj.get("title")),
        abstract=abstract,
        source=source,
    )


def _arxiv_metadata(obj: dict[str, Any], source: str) -> Paper:
    arxiv_id = re.sub(r"v\d+$", "", str(obj["id"]))
    categories = obj.get("categories") or []
    if isinstance(categories, str):
        categories = categories.split()
    published, inferred = _date(
        obj.get("listing_date") or obj.get("published") or obj.get("update_date")
    )
    return Paper(
        id=f"arxiv:{arxiv_id}",
        arxiv_id=arxiv_id,
        title=_optional_text(_unwrap(obj.get("title"))),
        authors=_authors(obj.get("authors_parsed") or obj.get("authors")),
        published=published,
        published_inferred=inferred,
        category=categories[0] if categories else None,
        categories=list(categories),
        doi=clean_doi(_optional_text(obj.get("doi"))),
        comment=_optional_text(_unwrap(obj.get("comment") or obj.get("comments"))),
        # arXiv hard-wraps abstracts at 80 columns; the line breaks are layout, not content.
        abstract=_unwrap(_required_text(obj, "abstract")),
        source=source,
    )


def _plain(obj: dict[str, Any], source: str) -> Paper:
    abstract = _required_text(obj, "abstract", "text", "summary")
    title = _optional_text(obj.get("title"))
    arxiv_id = _optional_text(obj.get("arxiv_id"))
    if obj.get("id") is not None:
        paper_id = str(obj["id"])
    elif arxiv_id:
        paper_id = f"arxiv:{arxiv_id}"
    else:
        paper_id = derived_paper_id(title, abstract)
    published, inferred = _date(obj.get("published") or obj.get("date") or obj.get("year"))
    return Paper(
        id=paper_id,
        title=title,
        authors=_authors(obj.get("authors")),
        authors_truncated=bool(obj.get("authors_truncated", False)),
        published=published,
        published_inferred=inferred,
        category=_optional_text(obj.get("category")),
        has_code=bool(obj.get("has_code", False)),
        arxiv_id=arxiv_id,
        doi=clean_doi(_optional_text(obj.get("doi"))),
        comment=_optional_text(obj.get("comment")),
        abstract=abstract,
        source=source,
    )


def _required_text(obj: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise ValueError(f"missing or empty {' / '.join(repr(k) for k in keys)}")


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}: {value!r:.40}")
    return value.strip() or None


def _unwrap(value: Any) -> Any:
    return " ".join(value.split()) if isinstance(value, str) else value


def _authors(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [name.strip() for name in _AUTHOR_SEPARATORS.split(value) if name.strip()]
    if isinstance(value, list):
        # arXiv's ``authors_parsed`` is [[last, first, suffix], …].
        return [
            " ".join(p for p in (item[1], item[0], *item[2:]) if p).strip()
            if isinstance(item, list)
            else str(item).strip()
            for item in value
        ]
    raise TypeError(f"authors must be a list or a string, got {type(value).__name__}")


def _date(value: Any) -> tuple[date | None, bool]:
    """The date and whether part of it was inferred: a bare year stands for its 1 January,
    which the record marks (``published_inferred``) so that no one reads it as the day the
    paper appeared."""
    if value in (None, ""):
        return None, False
    if isinstance(value, int):
        return date(value, 1, 1), True
    text = str(value).strip()
    if re.fullmatch(r"\d{4}", text):
        return date(int(text), 1, 1), True
    try:
        return datetime.fromisoformat(text).date(), False
    except ValueError:
        raise ValueError(f"unreadable date {text!r} (expected YYYY-MM-DD)") from None
