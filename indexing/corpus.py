"""Read a corpus from files and folders in any supported format, one record per paper.

Format is recognised from content, not from file names, so a user can point the indexer at a
folder of mixed files. A paper met twice (the same arXiv id, title or abstract) is stored once:
the first record wins and the later one only fills fields the first lacked. A data-file record
under an id that an earlier record already carried is a fault of the data: it is reported and
skipped. A faulty file (empty, binary, not UTF-8, a cut gzip stream, an endless line) costs
its own records only, each reported with file and line.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from indexing.errors import PapersearchError
from indexing.manifest import MANIFEST_FILE
from indexing.parsers.arxiv_listing import looks_like_arxiv_listing, parse_arxiv_listing
from indexing.parsers.jsonl import (
    LINE_TOO_LONG,
    MAX_LINE_BYTES,
    UNREADABLE,
    describe_bad_utf8,
    describe_unreadable,
    open_bytes,
    parse_jsonl,
)
from indexing.parsers.library import (
    looks_like_bibtex,
    looks_like_csl_json,
    parse_bibtex,
    parse_csl_json,
)
from indexing.parsers.site_pages import looks_like_site_page, parse_site_page
from indexing.records import Paper, PaperAtLine, ParseIssue, derived_paper_id, normalise_title

# What a folder is searched for. Formats are told apart by content, and gzip is read whatever
# the name, so any ``.gz`` file counts (a dump named ``arxiv.json.gz`` or ``pages.txt.gz``).
# ``.bib`` and ``.json`` are the exports of reference managers (BibTeX, CSL-JSON).
CORPUS_SUFFIXES = (".txt", ".jsonl", ".ndjson", ".gz", ".bib", ".json")
BEIR_CORPUS_FILE = "corpus.jsonl"
# Pages are parsed whole in memory. The seed pages are under 100 KB, so 64 MiB leaves room for
# any saved page, while a bigger text file (a log, an unpacked dump) is refused before it is read.
MAX_PAGE_BYTES = 64 << 20


class CorpusError(PapersearchError, ValueError):
    """A path cannot be read as a corpus (missing, empty, unknown format)."""

    status = 422
    code = "corpus_unreadable"


@dataclass
class Corpus:
    papers: list[Paper] = field(default_factory=list)
    issues: list[ParseIssue] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    merged_duplicates: int = 0

    def checksum(self) -> str:
        return papers_checksum(self.papers)


# Record fields added after indexes were first built, empty by default.
LATER_FIELDS = ("doi", "categories")


def _in_an_index(file: Path, root: Path) -> bool:
    """Is ``file`` part of a Papersearch index kept inside a corpus folder (its manifest and
    BM25 files are JSON too, not papers)?"""
    return any(
        (folder / MANIFEST_FILE).is_file()
        for folder in [file.parent, *file.parent.parents]
        if folder == root or root in folder.parents
    )


def papers_checksum(papers: Sequence[Paper]) -> str:
    """Changes whenever any stored paper changes: ties an index to the corpus it came from.

    The sum of the papers' own digests (modulo 2^256), so it does not depend on their order
    and an update adjusts it from the papers it adds and removes alone (``changed_checksum``),
    without reading the others. Fields added to the record later (``doi``, ``categories``)
    count only where a paper fills them, so an index built before they existed stays current
    for the same corpus.
    """
    return changed_checksum(f"{0:064x}", added=papers, removed=())


def changed_checksum(checksum: str, *, added: Sequence[Paper], removed: Sequence[Paper]) -> str:
    """``papers_checksum`` of a corpus of checksum ``checksum`` once ``added`` are added to
    it and ``removed`` (papers it held, as it held them) are taken out."""
    total = int(checksum, 16) + sum(map(_paper_digest, added)) - sum(map(_paper_digest, removed))
    return f"{total % (1 << 256):064x}"


def _paper_digest(paper: Paper) -> int:
    left_out = {name for name in LATER_FIELDS if not getattr(paper, name)}
    data = paper.model_dump_json(exclude=left_out or None).encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest())


def corpus_files(paths: Sequence[Path]) -> list[Path]:
    """Expand folders into the corpus files they hold; a BEIR folder yields its corpus.jsonl.
    Hidden files and folders are not read (an editor's swap files, an index's builds and
    their bookkeeping beside it)."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise CorpusError(f"{path}: no such file or folder")
        if path.is_file():
            files.append(path)
        elif (path / BEIR_CORPUS_FILE).is_file():
            files.append(path / BEIR_CORPUS_FILE)
        else:
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.name.endswith(CORPUS_SUFFIXES)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and not _in_an_index(p, path)
            )
            if not found:
                raise CorpusError(f"{path}: no corpus files ({', '.join(CORPUS_SUFFIXES)}) inside")
            files.extend(found)
    return files


def read_corpus(paths: Sequence[Path], capture_date: date) -> Corpus:
    """Parse every file; ``capture_date`` resolves site dates that were shown without a year.

    Faulty files and records become ``corpus.issues``; everything readable is still read.
    """
    corpus = Corpus(files=corpus_files(paths))
    merger = _DuplicateMerger()
    record_ids = _RecordIds()
    for path in corpus.files:
        for item in _parse_file(path, capture_date):
            if isinstance(item, ParseIssue):
                corpus.issues.append(item)
            elif isinstance(item, Paper):
                merger.add(item)
            elif (duplicate := record_ids.check(item)) is not None:
                corpus.issues.append(duplicate)
            else:
                merger.add(item.paper)
    corpus.papers, corpus.merged_duplicates = merger.papers(), merger.merged
    return corpus


def _parse_file(path: Path, capture_date: date) -> Iterator[PaperAtLine | Paper | ParseIssue]:
    """Papers of a data file (JSONL) come with their line; papers of a page come bare."""
    source = path.name
    try:
        with open_bytes(path) as stream:
            head = stream.read(4096)
    except UNREADABLE as exc:
        yield ParseIssue(source, 1, f"cannot read the file: {describe_unreadable(exc)}")
        return
    if head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"{"):
        yield from parse_jsonl(path, source)  # reads line by line: large dumps never sit in memory
        return
    try:
        with open_bytes(path) as stream:
            content = stream.read(MAX_PAGE_BYTES + 1)
    except UNREADABLE as exc:
        yield ParseIssue(source, 1, f"cannot read the file: {describe_unreadable(exc)}")
        return
    text_or_issue = _file_text(content, source)
    if isinstance(text_or_issue, ParseIssue):
        yield text_or_issue
        return
    text = text_or_issue
    if looks_like_csl_json(head.removeprefix(codecs.BOM_UTF8)):
        yield from parse_csl_json(text, source)
        return
    if looks_like_bibtex(text):
        yield from parse_bibtex(text, source)
        return
    if (long_line := _first_long_line(content)) is not None:
        yield ParseIssue(
            source,
            long_line,
            f"{LINE_TOO_LONG}: not a site page or arXiv listing; the file is skipped",
        )
        return
    if looks_like_arxiv_listing(text):
        papers, issues = parse_arxiv_listing(text, source)
    elif looks_like_site_page(text):
        papers, issues = parse_site_page(text, source, capture_date)
    else:
        papers, issues = (
            [],
            [
                ParseIssue(
                    source,
                    1,
                    "unrecognised format (not JSONL, BibTeX, CSL-JSON, site page or arXiv listing)",
                )
            ],
        )
    yield from papers
    yield from issues


def _file_text(content: bytes, source: str) -> str | ParseIssue:
    """The text of a file that is not JSONL, or why it cannot be read (it is skipped whole)."""
    if len(content) > MAX_PAGE_BYTES:
        return ParseIssue(
            source,
            1,
            f"not JSONL and over {MAX_PAGE_BYTES >> 20} MiB, too large for a site page, "
            "arXiv listing or library export; the file is skipped",
        )
    if not content.strip():
        return ParseIssue(source, 1, "empty file" if not content else "empty file (blank lines)")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        column = exc.start - content.rfind(b"\n", 0, exc.start)
        return ParseIssue(source, line, f"{describe_bad_utf8(exc, column)}; the file is skipped")
    return text


def _first_long_line(content: bytes) -> int | None:
    """The number of the first line over ``MAX_LINE_BYTES``: page lines are a paragraph at most."""
    if len(content) <= MAX_LINE_BYTES:
        return None
    start, number = 0, 1
    while (end := content.find(b"\n", start)) != -1:
        if end - start > MAX_LINE_BYTES:
            return number
        start, number = end + 1, number + 1
    return number if len(content) - start > MAX_LINE_BYTES else None


class _RecordIds:
    """Where each id a data file (JSONL, BEIR, arXiv dump) gave a record was first read.

    In a data set an id names one record, so a second record under it is a fault of the data;
    merging would mix two records' fields silently. The second is reported with both places
    and skipped; the first is kept. Pages are not checked: site pages and arXiv listings list
    one paper on several pages, and those copies are merged (so is a page's copy of a paper
    that a data file also holds).
    """

    def __init__(self) -> None:
        self._first: dict[str, PaperAtLine] = {}

    def check(self, record: PaperAtLine) -> ParseIssue | None:
        """``None`` for a record to keep, else the issue that reports it as a duplicate."""
        paper = record.paper
        if not _has_identity(paper):  # an id made from the text: equal text is merged instead
            return None
        first = self._first.setdefault(paper.id, record)
        if first is record:
            return None
        where = f"{first.paper.source} line {first.line}"
        if _without_source(first.paper) == _without_source(paper):
            return ParseIssue(
                paper.source, record.line, f"duplicate id {paper.id!r}: repeats {where}"
            )
        return ParseIssue(
            paper.source,
            record.line,
            f"duplicate id {paper.id!r}, first read from {where}, which is kept",
        )


def _without_source(paper: Paper) -> dict[str, object]:
    return paper.model_dump(exclude={"source"})


class _DuplicateMerger:
    """Folds records of the same paper together, keyed by arXiv id, title and abstract."""

    def __init__(self) -> None:
        self._papers: list[Paper] = []
        self._by_key: dict[str, int] = {}
        self.merged = 0

    @staticmethod
    def _keys(paper: Paper) -> list[str]:
        keys = ["id:" + paper.id, "abstract:" + " ".join(paper.abstract.lower().split())]
        if paper.arxiv_id:
            keys.append("arxiv:" + paper.arxiv_id)
        if paper.title:
            keys.append("title:" + normalise_title(paper.title))
        return keys

    def _same_paper(self, kept: Paper, new: Paper) -> bool:
        """Equal text is the same paper unless both records carry identities that differ.

        Data sets such as BEIR or an arXiv dump hold distinct documents with equal titles or
        text; seed pages identify papers by content only, so there content decides.
        """
        if kept.id == new.id or (kept.arxiv_id and kept.arxiv_id == new.arxiv_id):
            return True
        return not (_has_identity(kept) and _has_identity(new))

    def add(self, paper: Paper) -> None:
        matches = (self._by_key[k] for k in self._keys(paper) if k in self._by_key)
        position = next((p for p in matches if self._same_paper(self._papers[p], paper)), None)
        if position is None:
            position = len(self._papers)
            self._papers.append(paper)
        else:
            self._papers[position] = _fill_missing(self._papers[position], paper)
            self.merged += 1
        for key in self._keys(self._papers[position]):
            self._by_key.setdefault(key, position)

    def papers(self) -> list[Paper]:
        return self._papers


def _has_identity(paper: Paper) -> bool:
    """Whether the id came from the source (arXiv id, data-set id) rather than from the text."""
    return paper.id != derived_paper_id(paper.title, paper.abstract)


def _fill_missing(kept: Paper, other: Paper) -> Paper:
    updates = {
        name: getattr(other, name)
        for name in type(kept).model_fields
        if getattr(kept, name) in (None, [], False)
        and getattr(other, name) not in (None, [], False)
    }
    merged = kept.model_copy(update=updates)
    # An arXiv id learnt from a duplicate becomes the id, unless the first id was the source's.
    if merged.arxiv_id and not _has_identity(kept):
        merged = merged.model_copy(update={"id": f"arxiv:{merged.arxiv_id}"})
    return merged
