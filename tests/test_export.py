"""Exports read back by real parsers: bibtexparser, rispy and citeproc-py (a CSL processor)."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import bibtexparser
import pytest
import rispy
from citeproc import Citation, CitationItem, CitationStylesBibliography, CitationStylesStyle
from citeproc import formatter as citeproc_formatter
from citeproc.frontend import STYLES_PATH
from citeproc.source.json import CiteProcJSON
from fastapi.testclient import TestClient

from indexing.records import Paper
from service.app import create_app
from service.citations import bibtex
from service.cli import main
from service.export import ExportFormat, export
from service.settings import Settings
from tests.conftest import index_corpus

SPECIAL_TITLE = "Deep & Wide: 50% of $x$ for #1 {fast_path} and C#"
STYLES = Path(STYLES_PATH)
CSL_STYLE = next(
    name for name in ("harvard1", "harvard-cite-them-right") if (STYLES / f"{name}.csl").exists()
)
SPECIAL_ABSTRACT = "We cut costs by 30% & more: {a_b} costs $5, #tags too."


def _unescape(text: str) -> str:
    """What a BibTeX reader that knows these commands reads (the escape's inverse)."""
    words = {
        "\\textbraceleft{}": "{",
        "\\textbraceright{}": "}",
        "\\textasciicircum{}": "^",
        "\\textasciitilde{}": "~",
        "\\textbackslash{}": "\\",
    }
    escaped = re.sub(r"\\([&%$#_{}])", r"\1", text)
    return re.sub("|".join(map(re.escape, words)), lambda m: words[m.group()], escaped)


def _bibtex_entries(text: str) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = bibtexparser.loads(text).entries
    return entries


def _rendered(items: list[dict[str, object]]) -> list[str]:
    """Each CSL item rendered by the Harvard style citeproc-py bundles (0.11 ships
    ``harvard-cite-them-right``; older releases ``harvard1``), as plain text."""
    source = CiteProcJSON(items)
    style = CitationStylesStyle(CSL_STYLE, validate=False)
    bibliography = CitationStylesBibliography(style, source, citeproc_formatter.plain)
    for item in items:
        bibliography.register(Citation([CitationItem(str(item["id"]))]))
    return [str(entry) for entry in bibliography.bibliography()]


@pytest.fixture(scope="module")
def seed_papers(client: TestClient) -> list[dict[str, object]]:
    papers: list[dict[str, object]] = client.get("/papers", params={"limit": 100}).json()["papers"]
    return papers


def _download(client: TestClient, ids: list[str], export_format: str) -> str:
    response = client.get("/export", params={"ids": ",".join(ids), "format": export_format})
    assert response.status_code == 200, response.text
    return response.text


def test_every_seed_paper_exports_as_bibtex_that_parses(client, seed_papers):
    ids = [str(paper["id"]) for paper in seed_papers]
    response = client.get("/export", params={"ids": ",".join(ids), "format": "bibtex"})
    assert response.headers["content-type"].startswith("application/x-bibtex")
    assert response.headers["content-disposition"] == 'attachment; filename="papersearch.bib"'
    entries = _bibtex_entries(response.text)
    assert len(entries) == len(seed_papers) == 98
    assert len({entry["ID"] for entry in entries}) == len(entries)  # keys unique in a file
    untitled = truncated = 0
    for entry, paper in zip(entries, seed_papers, strict=True):
        assert _unescape(entry["title"].strip("{}")) == paper["label"]
        untitled += not paper["title"]
        if paper["authors"]:
            names = _unescape(entry["author"]).split(" and ")
            if paper["authors_truncated"]:
                truncated += 1
                assert names[-1] == "others"
                names = names[:-1]
            assert names == paper["authors"]
    assert untitled and truncated  # the seeds hold both kinds
    print(f"bibtex: {len(entries)} entries parsed, {untitled} untitled, {truncated} truncated")


def test_every_seed_paper_exports_as_ris_that_rispy_reads(client, seed_papers):
    ids = [str(paper["id"]) for paper in seed_papers]
    records = rispy.loads(_download(client, ids, "ris"))
    assert len(records) == len(seed_papers)
    for record, paper in zip(records, seed_papers, strict=True):
        assert record["type_of_reference"] == "UNPB" and record["id"] == paper["id"]
        assert record["title"] == paper["label"]
        assert record.get("authors", []) == paper["authors"]
        assert record["abstract"] == paper["abstract"]
    print(f"ris: {len(records)} records read back")


def test_every_seed_paper_exports_as_csl_json_that_citeproc_renders(client, seed_papers):
    ids = [str(paper["id"]) for paper in seed_papers]
    response = client.get("/export", params={"ids": ",".join(ids), "format": "csl-json"})
    assert response.headers["content-type"].startswith("application/vnd.citationstyles.csl+json")
    assert response.headers["content-disposition"].endswith('filename="papersearch.json"')
    items = json.loads(response.text)
    assert [item["id"] for item in items] == ids
    rendered = _rendered(items)
    assert len(rendered) == len(items)
    for item, paper in zip(items, seed_papers, strict=True):
        assert item["type"] == "article" and item["title"] == paper["label"]
        assert len(item.get("author", [])) == len(paper["authors"])
    # Each paper's title is in its rendered reference (the order is the style's).
    text = "\n".join(rendered)
    assert all(str(item["title"]).split()[0] in text for item in items)
    print(f"csl-json: {len(rendered)} items rendered by citeproc-py")


def test_latex_specials_round_trip_in_every_format():
    paper = Paper(
        id="p",
        title=SPECIAL_TITLE,
        authors=["Ann Lee", "Bo_Xu"],
        authors_truncated=True,
        published=date(2024, 1, 2),
        abstract=SPECIAL_ABSTRACT,
        source="s",
    )
    [entry] = _bibtex_entries(export([paper], ExportFormat.BIBTEX).content)
    assert _unescape(entry["title"][1:-1]) == SPECIAL_TITLE
    assert _unescape(entry["author"]) == "Ann Lee and Bo_Xu and others"
    # One BibTeX rule: a paper's own entry is the export's.
    # The export is the paper's own BibTeX, plus its abstract (what a library reads back).
    exported = export([paper], ExportFormat.BIBTEX).content.strip()
    assert bibtex(paper) == re.sub(r",\n  abstract = \{.*\}(?=\n\})", "", exported)
    [record] = rispy.loads(export([paper], ExportFormat.RIS).content)
    assert record["title"] == SPECIAL_TITLE and record["abstract"] == SPECIAL_ABSTRACT
    items = json.loads(export([paper], ExportFormat.CSL_JSON).content)
    assert items[0]["title"] == SPECIAL_TITLE and items[0]["abstract"] == SPECIAL_ABSTRACT
    assert items[0]["author"] == [{"family": "Lee", "given": "Ann"}, {"family": "Bo_Xu"}]
    assert "Deep & Wide" in _rendered(items)[0]


@pytest.mark.parametrize(
    "title", ["A lone { brace", "Closed } before { opened", "{Paired} {braces}"]
)
def test_braces_that_do_not_pair_still_parse(title):
    paper = Paper(id="p", title=title, published=date(2024, 1, 2), abstract="x", source="s")
    [entry] = _bibtex_entries(export([paper], ExportFormat.BIBTEX).content)
    assert _unescape(entry["title"][1:-1]) == title


def test_an_index_with_special_characters_exports_them(tmp_path: Path, cache_dir: Path):
    corpus = tmp_path / "special.jsonl"
    rows = [
        {"id": "special-1", "title": SPECIAL_TITLE, "abstract": SPECIAL_ABSTRACT, "year": 2024},
        {"id": "plain-2", "title": "A plain title", "abstract": "Nothing special.", "year": 2023},
    ]
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    report = index_corpus([corpus], tmp_path / "index", cache_dir)
    settings = Settings(index_dir=report.index_dir, cache_dir=cache_dir)
    with TestClient(create_app(settings)) as client:
        bib = _download(client, ["special-1", "plain-2"], "bibtex")
        titles = [_unescape(e["title"][1:-1]) for e in _bibtex_entries(bib)]
        assert titles == [SPECIAL_TITLE, "A plain title"]
        [record, _] = rispy.loads(_download(client, ["special-1", "plain-2"], "ris"))
        assert record["title"] == SPECIAL_TITLE
        items = json.loads(_download(client, ["special-1"], "csl-json"))
        assert items[0]["title"] == SPECIAL_TITLE and len(_rendered(items)) == 1


def test_unknown_ids_are_named_in_one_404(client, seed_papers):
    known = str(seed_papers[0]["id"])
    response = client.get("/export", params={"ids": f"nope-1,{known},nope-2", "format": "ris"})
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "paper_not_found"
    assert "nope-1" in body["message"] and "nope-2" in body["message"]


def test_a_bad_format_or_too_many_ids_is_a_422(client):
    assert client.get("/export", params={"ids": "a", "format": "docx"}).status_code == 422
    too_many = ",".join(f"id-{n}" for n in range(101))
    response = client.get("/export", params={"ids": too_many})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_a_search_exports_the_page_it_answers(client):
    search = {"q": "cross-domain live-streaming recommendation", "k": 3, "offset": 1}
    hits = client.post("/search", json=search).json()["results"]
    response = client.post("/export", json={**search, "format": "ris"})
    assert response.status_code == 200
    assert response.headers["content-disposition"].endswith('filename="papersearch.ris"')
    assert [record["id"] for record in rispy.loads(response.text)] == [h["id"] for h in hits]
    # Capped as a search is, and fields are checked as a search's are.
    assert client.post("/export", json={**search, "k": 101}).status_code == 422
    assert client.post("/export", json={**search, "fromat": "ris"}).status_code == 422


def test_the_cli_exports_ids_and_searches(seed_settings, seed_papers, tmp_path, capsys):
    index = str(seed_settings.index_dir)
    ids = [str(paper["id"]) for paper in seed_papers[:3]]
    out = tmp_path / "refs.bib"
    assert main(["export", *ids, "--format", "bibtex", "--out", str(out), "--index", index]) == 0
    assert [e["ID"] for e in _bibtex_entries(out.read_text(encoding="utf-8"))]
    assert len(_bibtex_entries(out.read_text(encoding="utf-8"))) == 3
    capsys.readouterr()
    query = ["--query", "live streaming", "-k", "4", "--format", "csl-json", "--index", index]
    assert main(["export", *query]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    assert main(["export", "nope-1", "--index", index]) == 1
    assert "nope-1" in capsys.readouterr().err


def test_the_assistant_tool_answers_the_file(client, seed_papers):
    ids = [str(paper["id"]) for paper in seed_papers[:2]]
    call = {"name": "export_citations", "arguments": {"paper_ids": ids, "format": "ris"}}
    answer = client.post("/tools/call", json=call).json()
    assert answer["result"]["format"] == "ris"
    assert answer["result"]["media_type"] == "application/x-research-info-systems"
    assert answer["text"] == answer["result"]["content"]
    assert [record["id"] for record in rispy.loads(answer["text"])] == ids
    functions = {f["function"]["name"]: f["function"] for f in client.get("/tools/openai").json()}
    parameters = functions["export_citations"]["parameters"]["properties"]
    assert parameters["paper_ids"]["maxItems"] == 100
    assert "csl-json" in json.dumps(parameters["format"])
    refused = client.post("/tools/call", json={**call, "arguments": {"paper_ids": ["nope-9"]}})
    assert refused.status_code == 404 and "nope-9" in refused.json()["message"]


def test_an_exported_bibtex_library_reads_back_as_the_same_papers(client, tmp_path):
    """Export, then import: every seed paper comes back with its title and abstract (the
    text to search by), under the same arXiv id where it has one."""
    from indexing.corpus import read_corpus

    papers = client.get("/papers", params={"limit": 100}).json()["papers"]
    ids = ",".join(paper["id"] for paper in papers)
    exported = client.get("/export", params={"ids": ids, "format": "bibtex"})
    library = tmp_path / "exported.bib"
    library.write_bytes(exported.content)
    corpus = read_corpus([library], date(2026, 1, 1))
    assert len(corpus.papers) == len(papers) == 98, corpus.issues[:3]
    back = {paper.title: paper for paper in corpus.papers}
    for paper in papers:
        again = back[paper["label"]]
        assert " ".join(again.abstract.split()) == " ".join(paper["abstract"].split())
        if paper["arxiv_id"]:
            assert again.id == paper["id"]
