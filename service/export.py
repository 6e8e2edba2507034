"""Papers as files a reference manager imports: BibTeX, RIS and CSL-JSON, written in one place.

The HTTP route, the CLI and the ``export_citations`` tool all write through ``export``, so a
paper reads the same in every file whichever way it was asked for. Each format is written by
its own library where there is one (bibtexparser, rispy) and as the CSL schema's item dicts
for CSL-JSON; the tests read every file back with a real parser or processor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from indexing.records import Paper
from service.citations import (
    bibtex_entry,
    bibtex_key,
    latex_escape,
    paper_label,
    paper_url,
    write_bibtex,
)
from service.filters import Choice
from service.schemas import MAX_K, PaperId, RequestModel, SearchRequest


class ExportFormat(StrEnum):
    BIBTEX = "bibtex"
    RIS = "ris"
    CSL_JSON = "csl-json"


# The media type and file extension of each format.
MEDIA_TYPES = {
    ExportFormat.BIBTEX: "application/x-bibtex",
    ExportFormat.RIS: "application/x-research-info-systems",
    ExportFormat.CSL_JSON: "application/vnd.citationstyles.csl+json",
}
EXTENSIONS = {ExportFormat.BIBTEX: "bib", ExportFormat.RIS: "ris", ExportFormat.CSL_JSON: "json"}
NAMES = {ExportFormat.BIBTEX: "BibTeX", ExportFormat.RIS: "RIS", ExportFormat.CSL_JSON: "CSL-JSON"}


def format_choices() -> list[Choice]:
    """The formats as a form offers them (``GET /config``): "BibTeX (.bib)", …"""
    return [Choice(value=f, label=f"{NAMES[f]} (.{EXTENSIONS[f]})") for f in ExportFormat]


# Ids one export by id takes: a page of the corpus listing at its largest.
MAX_EXPORT_IDS = MAX_K

FORMAT_FIELD = Field(
    ExportFormat.BIBTEX,
    description="`bibtex` (.bib), `ris` (.ris) or `csl-json` (.json, as Zotero and pandoc "
    "read it).",
)


class ExportSearch(SearchRequest):
    """A search whose page of results is exported: the search's own fields, its ``k`` and
    ``offset`` capped as a search's are, and the file format."""

    format: ExportFormat = FORMAT_FIELD

    def search_request(self) -> SearchRequest:
        """The search itself; without highlights, which no file holds."""
        fields = self.model_dump(exclude={"format", "highlight"}, exclude_unset=True)
        return SearchRequest(**fields, highlight=False)


class ExportIds(RequestModel):
    """Papers exported by id, in the order given."""

    ids: list[PaperId] = Field(
        min_length=1,
        max_length=MAX_EXPORT_IDS,
        description="Paper ids, e.g. arxiv:2502.09375; every unknown one is named in one 404.",
    )
    format: ExportFormat = FORMAT_FIELD


class ExportPapers(RequestModel):
    """What the ``export_citations`` tool takes: ids as the other paper tools name them."""

    paper_ids: list[PaperId] = Field(
        min_length=1,
        max_length=MAX_EXPORT_IDS,
        description="Paper ids from earlier results, e.g. arxiv:2502.09375; exported in the "
        "order given.",
    )
    format: ExportFormat = FORMAT_FIELD


class ExportedFile(BaseModel):
    """An export as the tool answers it: the file's text and how to save it."""

    format: ExportFormat
    media_type: str
    content: str


def filename(export_format: ExportFormat) -> str:
    return f"papersearch.{EXTENSIONS[export_format]}"


def export(papers: Sequence[Paper], export_format: ExportFormat) -> ExportedFile:
    writers = {
        ExportFormat.BIBTEX: to_bibtex,
        ExportFormat.RIS: to_ris,
        ExportFormat.CSL_JSON: to_csl_json,
    }
    return ExportedFile(
        format=export_format,
        media_type=MEDIA_TYPES[export_format],
        content=writers[export_format](papers),
    )


def to_bibtex(papers: Sequence[Paper]) -> str:
    """Every paper, untitled and undated ones too (a paper's own ``bibtex`` leaves those
    out): a file asked for by id should hold every id. Keys are made unique within the file."""
    seen: dict[str, int] = {}
    entries = []
    for paper in papers:
        key = bibtex_key(paper)
        seen[key] = seen.get(key, 0) + 1
        entry = bibtex_entry(paper, key if seen[key] == 1 else f"{key}{seen[key]}")
        # The abstract too (a paper's own one-entry BibTeX leaves it out): an exported
        # library is read back, by Papersearch or a reference manager, with what to search by.
        entry["abstract"] = latex_escape(" ".join(paper.abstract.split()))
        entries.append(entry)
    return write_bibtex(entries)


def to_ris(papers: Sequence[Paper]) -> str:
    """RIS records, ``UNPB`` (unpublished work): what the corpus holds are preprints and
    abstracts, not their published versions."""
    import rispy  # only where RIS is written: the CLI imports this module for its options

    records: list[dict[str, Any]] = []
    for paper in papers:
        record: dict[str, Any] = {
            "type_of_reference": "UNPB",
            "id": paper.id,
            "title": paper_label(paper.title, paper.arxiv_id, paper.id),
            # One line: RIS reads a line that looks like a tag ("AU  - …") as that tag.
            "abstract": " ".join(paper.abstract.split()),
        }
        if paper.authors:
            record["authors"] = list(paper.authors)
        if paper.published:
            record["year"] = str(paper.published.year)
            record["date"] = paper.published.strftime("%Y/%m/%d")
        if url := paper_url(paper):
            record["urls"] = [url]
        if doi := paper.doi:
            record["doi"] = doi
        records.append(record)
    return str(rispy.dumps(records))


def to_csl_json(papers: Sequence[Paper]) -> str:
    return json.dumps([csl_item(paper) for paper in papers], ensure_ascii=False, indent=2) + "\n"


def csl_item(paper: Paper) -> dict[str, Any]:
    """A CSL 1.0.2 item. Its type is ``article``, which CSL defines as "a preprint, working
    paper, or other work not formally published": what an arXiv paper or a bare abstract
    is; ``article-journal`` would claim a journal the metadata does not name."""
    item: dict[str, Any] = {
        "id": paper.id,
        "type": "article",
        "title": paper_label(paper.title, paper.arxiv_id, paper.id),
        "abstract": paper.abstract,
    }
    if paper.authors:
        item["author"] = [_csl_name(name) for name in paper.authors]
    if paper.published:
        day = paper.published
        item["issued"] = {"date-parts": [[day.year, day.month, day.day]]}
    if paper.arxiv_id:
        item["number"] = f"arXiv:{paper.arxiv_id}"
        item["publisher"] = "arXiv"
    if url := paper_url(paper):
        item["URL"] = url
    if doi := paper.doi:
        item["DOI"] = doi
    return item


def _csl_name(name: str) -> dict[str, str]:
    """``Ann B. Lee`` as ``{"family": "Lee", "given": "Ann B."}``; a one-word name is a
    family name alone."""
    *given, family = name.split() or [name]
    return {"family": family, "given": " ".join(given)} if given else {"family": family}
