"""A researcher's library (BibTeX, CSL-JSON from Zotero/Mendeley/Better BibTeX) as a corpus."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from indexing.corpus import read_corpus
from indexing.parsers.jsonl import paper_from_object
from indexing.parsers.library import looks_like_bibtex
from indexing.records import Paper
from service.citations import paper_url
from service.cli import main

CAPTURE = date(2026, 1, 1)

LIBRARY_BIB = r"""% Exported by a reference manager
@string{acl = "Proceedings of ACL"}

@article{muller2021uber,
  title = {{\"U}ber {BERT}: a Study of {\'E}t{\'e}},
  author = {M{\"u}ller, Hans and van der Berg, Jan and others},
  journal = acl,
  year = {2021},
  month = mar,
  doi = {10.18653/V1/2021.ACL-LONG.1},
  abstract = {We study how {BERT} reads na\"{\i}ve text \& code with $\alpha$ smoothing;
    it keeps 95% of the accuracy at 50\% of the cost.},
}

@misc{vaswani2017attention,
  title = {Attention Is All You Need},
  author = {Ashish Vaswani and Noam Shazeer},
  year = {2017},
  eprint = {1706.03762v5},
  archivePrefix = {arXiv},
  primaryClass = {cs.CL},
  doi = {10.48550/arXiv.1706.03762},
  abstract = {The dominant sequence transduction models are based on recurrent networks.
    We propose the Transformer, based solely on attention mechanisms.},
}

@online{keyonly,
  title = {Protein folding with graph networks},
  author = {Doe, Jane},
  date = {2023-05-17},
  abstract = {Graph neural networks predict protein structures from sequences.},
}

@inproceedings{noabstract2020,
  title = {A Paper Without Abstract},
  author = {Roe, Richard},
  year = {2020},
}
"""

ZOTERO_ITEMS = [
    {
        "id": "http://zotero.org/users/1/items/ABCD1234",
        "type": "article-journal",
        "title": "Coral reef <i>bleaching</i> under ocean warming",
        "container-title": "Nature Climate Change",
        "author": [
            {"family": "Hughes", "given": "Terry P."},
            {"family": "Beethoven", "given": "Ludwig", "non-dropping-particle": "van"},
        ],
        "issued": {"date-parts": [[2018, 4, 18]]},
        "abstract": "Mass bleaching of corals follows marine heatwaves caused by warming.",
        "DOI": "10.1038/S41586-018-0041-2",
        "URL": "https://www.nature.com/articles/s41586-018-0041-2",
        "keyword": "corals, climate",
    },
    {
        "id": "hu2021lora",
        "citation-key": "hu2021lora",
        "type": "article",
        "title": "LoRA: Low-Rank Adaptation of Large Language Models",
        "author": [{"family": "Hu", "given": "Edward J."}],
        "issued": {"date-parts": [["2021"]]},
        "abstract": "We freeze the pretrained weights and inject trainable rank "
        "decomposition matrices into each layer of the Transformer.",
        "DOI": "10.48550/arXiv.2106.09685",
        "number": "arXiv:2106.09685",
    },
    {
        "id": "smith-notes",
        "type": "report",
        "title": "Field notes on sparrows",
        "author": [{"literal": "Ornithology Working Group"}],
        "issued": {"date-parts": [[2019, 6]]},
        "abstract": "Sparrow song varies between urban and rural populations.",
    },
    {"id": "empty", "type": "book", "title": "No abstract here", "DOI": "10.1000/xyz"},
]


def write_library(folder: Path) -> tuple[Path, Path]:
    bib = folder / "library.bib"
    bib.write_text(LIBRARY_BIB, encoding="utf-8")
    csl = folder / "library.json"
    csl.write_text(json.dumps(ZOTERO_ITEMS, indent="\t"), encoding="utf-8")
    return bib, csl


def by_id(papers: list[Paper]) -> dict[str, Paper]:
    return {paper.id: paper for paper in papers}


def test_bibtex_entries_become_papers_with_decoded_latex(tmp_path: Path) -> None:
    bib, _ = write_library(tmp_path)
    corpus = read_corpus([bib], CAPTURE)
    papers = by_id(corpus.papers)
    assert list(papers) == ["doi:10.18653/v1/2021.acl-long.1", "arxiv:1706.03762", "keyonly"]

    uber = papers["doi:10.18653/v1/2021.acl-long.1"]
    assert uber.title == "Über BERT: a Study of Été"
    assert uber.abstract == (
        "We study how BERT reads naïve text & code with \u03b1 smoothing; it keeps 95% of the "
        "accuracy at 50% of the cost."
    )
    assert uber.authors == ["Hans Müller", "Jan van der Berg"] and uber.authors_truncated
    assert (uber.published, uber.published_inferred) == (date(2021, 3, 1), True)
    assert uber.doi == "10.18653/V1/2021.ACL-LONG.1" and uber.arxiv_id is None
    assert uber.category is None
    assert paper_url(uber) == "https://doi.org/10.18653/V1/2021.ACL-LONG.1"

    attention = papers["arxiv:1706.03762"]
    assert attention.arxiv_id == "1706.03762" and attention.category == "cs.CL"
    assert attention.authors == ["Ashish Vaswani", "Noam Shazeer"]
    assert (attention.published, attention.published_inferred) == (date(2017, 1, 1), True)
    assert attention.doi == "10.48550/arXiv.1706.03762"
    assert paper_url(attention) == "https://arxiv.org/abs/1706.03762"

    keyonly = papers["keyonly"]
    assert (keyonly.published, keyonly.published_inferred) == (date(2023, 5, 17), False)
    assert keyonly.authors == ["Jane Doe"] and keyonly.doi is None and paper_url(keyonly) is None

    [issue] = corpus.issues
    assert (
        issue.source == "library.bib"
        and issue.line == LIBRARY_BIB.splitlines().index("@inproceedings{noabstract2020,") + 1
    )
    assert "'noabstract2020'" in issue.reason and "no abstract" in issue.reason


def test_csl_json_export_becomes_papers(tmp_path: Path) -> None:
    _, csl = write_library(tmp_path)
    corpus = read_corpus([csl], CAPTURE)
    papers = by_id(corpus.papers)
    assert list(papers) == ["doi:10.1038/s41586-018-0041-2", "arxiv:2106.09685", "smith-notes"]

    coral = papers["doi:10.1038/s41586-018-0041-2"]
    assert coral.title == "Coral reef bleaching under ocean warming"
    assert coral.authors == ["Terry P. Hughes", "Ludwig van Beethoven"]
    assert (coral.published, coral.published_inferred) == (date(2018, 4, 18), False)
    assert coral.doi == "10.1038/S41586-018-0041-2" and coral.category is None
    assert paper_url(coral) == "https://doi.org/10.1038/S41586-018-0041-2"

    lora = papers["arxiv:2106.09685"]
    assert lora.arxiv_id == "2106.09685" and lora.published == date(2021, 1, 1)
    assert lora.published_inferred

    notes = papers["smith-notes"]
    assert notes.authors == ["Ornithology Working Group"]
    assert (notes.published, notes.published_inferred) == (date(2019, 6, 1), True)

    [issue] = corpus.issues
    assert issue.source == "library.json" and "'empty'" in issue.reason
    lines = csl.read_text(encoding="utf-8").splitlines()
    assert lines[issue.line - 1].strip() == "{" and '"empty"' in lines[issue.line]


def test_reimporting_keeps_the_ids(tmp_path: Path) -> None:
    bib, csl = write_library(tmp_path)
    first = read_corpus([bib, csl], CAPTURE)
    again = tmp_path / "again"
    again.mkdir()
    write_library(again)
    second = read_corpus([again], CAPTURE)  # a folder: .bib and .json are found in it
    assert [p.id for p in first.papers] == [p.id for p in second.papers]
    assert len(first.papers) == 6 and first.checksum() == second.checksum()


def test_a_duplicate_citation_key_is_reported(tmp_path: Path) -> None:
    bib = tmp_path / "dup.bib"
    entry = "@misc{same, title = {T%d}, abstract = {Abstract number %d.}}\n"
    bib.write_text(entry % (1, 1) + entry % (2, 2), encoding="utf-8")
    corpus = read_corpus([bib], CAPTURE)
    assert [p.title for p in corpus.papers] == ["T1"]
    [issue] = corpus.issues
    assert issue.line == 2 and "duplicate id 'same'" in issue.reason


def test_jsonl_and_arxiv_metadata_carry_the_doi() -> None:
    plain = paper_from_object({"title": "T", "abstract": "A", "doi": "10.1/x"}, "p.jsonl")
    arxiv = paper_from_object(
        {"id": "2101.00001", "categories": "cs.LG", "abstract": "A", "doi": "10.2/y"}, "a.jsonl"
    )
    assert (plain.doi, arxiv.doi) == ("10.1/x", "10.2/y")
    assert paper_url(plain) == "https://doi.org/10.1/x"
    assert paper_url(arxiv) == "https://arxiv.org/abs/2101.00001"


def test_papersearch_index_takes_a_bib_and_a_zotero_export(
    capsys, cache_dir: Path, tmp_path: Path
) -> None:
    bib, csl = write_library(tmp_path)
    for path, query, expected in (
        (bib, "protein structure prediction", "keyonly"),
        (csl, "coral reefs and heatwaves", "doi:10.1038/s41586-018-0041-2"),
    ):
        out = tmp_path / f"index-{path.suffix[1:]}"
        code = main(
            ["index", str(path), "--out", str(out), "--cache-dir", str(cache_dir), "--quiet"]
        )
        printed, err = capsys.readouterr()
        assert code == 0, err
        assert printed.startswith(f"indexed 3 papers from 1 file into {out}"), printed
        assert "1 skipped" in printed and "no abstract" in err
        code = main(["search", query, "--index", str(out), "--json"])
        printed, err = capsys.readouterr()
        assert code == 0, err
        assert json.loads(printed)["results"][0]["id"] == expected


def test_an_entry_bibtexparser_cannot_read_is_reported_and_its_neighbours_kept(
    tmp_path: Path,
) -> None:
    bib = tmp_path / "broken.bib"
    bib.write_text(
        "@article{good1, title={A}, abstract={Abs one.}}\n"
        "@article{broken, title={B, abstract={Abs two.}\n"
        "@article{good2, title={C}, abstract={Abs three.}}\n",
        encoding="utf-8",
    )
    corpus = read_corpus([bib], CAPTURE)
    assert [p.id for p in corpus.papers] == ["good1", "good2"]
    assert [str(issue) for issue in corpus.issues] == [
        "broken.bib:2: entry 'broken': not readable as BibTeX; skipped"
    ]


def test_an_arxiv_paper_a_dump_also_holds_is_reported_once(tmp_path: Path) -> None:
    bib, _ = write_library(tmp_path)
    dump = tmp_path / "dump.jsonl"
    record = {"id": "1706.03762", "categories": "cs.CL", "title": "T", "abstract": "Transformers."}
    dump.write_text(json.dumps(record) + "\n", encoding="utf-8")
    corpus = read_corpus([dump, bib], CAPTURE)
    assert sum(p.id == "arxiv:1706.03762" for p in corpus.papers) == 1
    assert any(
        "duplicate id 'arxiv:1706.03762', first read from dump.jsonl line 1" in issue.reason
        for issue in corpus.issues
    )


def test_ids_survive_reordered_and_edited_entries(tmp_path: Path) -> None:
    """A library exported again later lists its items in another order, with edits: ids
    depend on each entry's own arXiv id, DOI or key, never on its position or its text."""
    _, csl = write_library(tmp_path)
    first = {p.title: p.id for p in read_corpus([csl], CAPTURE).papers}
    edited = [
        {**item, "abstract": item["abstract"] + " Revised."} if item.get("abstract") else item
        for item in reversed(ZOTERO_ITEMS)
    ]
    again = tmp_path / "again.json"
    again.write_text(json.dumps(edited), encoding="utf-8")
    second = {p.title: p.id for p in read_corpus([again], CAPTURE).papers}
    assert first == second and first


def test_a_page_that_quotes_bibtex_is_still_a_page(tmp_path: Path) -> None:
    from tests.conftest import SEEDS

    page = next(SEEDS.glob("*.txt")).read_text(encoding="utf-8")
    quoted = tmp_path / "page.txt"
    quoted.write_text(page + "\nCite as: @misc{key, title={A}}\n", encoding="utf-8")
    assert not looks_like_bibtex(quoted.read_text(encoding="utf-8"))
    assert len(read_corpus([quoted], CAPTURE).papers) > 0


def test_an_undefined_string_macro_is_a_reported_issue_not_a_crash(tmp_path: Path) -> None:
    bib = tmp_path / "macros.bib"
    bib.write_text(
        "@article{a, title={T}, journal=jacs, abstract={An abstract.}, year=2020}\n",
        encoding="utf-8",
    )
    corpus = read_corpus([bib], CAPTURE)
    assert corpus.papers == [] and "not readable as BibTeX" in corpus.issues[0].reason


def test_a_csl_author_given_as_one_string_is_one_author(tmp_path: Path) -> None:
    csl = tmp_path / "one.json"
    item = {"id": "k", "type": "article", "title": "T", "abstract": "An abstract."}
    csl.write_text(json.dumps([{**item, "author": "Smith, John"}]), encoding="utf-8")
    (paper,) = read_corpus([csl], CAPTURE).papers
    assert paper.authors == ["Smith, John"]


def test_a_doi_written_as_a_url_is_stored_bare_from_jsonl() -> None:
    paper = paper_from_object(
        {"id": "x", "abstract": "A.", "doi": "https://doi.org/10.1/XY"}, source="s"
    )
    assert paper.doi == "10.1/XY" and paper_url(paper) == "https://doi.org/10.1/XY"


def test_an_index_kept_inside_a_corpus_folder_is_not_read_as_papers(
    tmp_path: Path, cache_dir: Path
) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    _, csl = write_library(folder)
    code = main(
        [
            "index",
            str(csl),
            "--out",
            str(folder / "index"),
            "--cache-dir",
            str(cache_dir),
            "--quiet",
        ]
    )
    assert code == 0
    corpus = read_corpus([folder], CAPTURE)
    assert [f.name for f in corpus.files] == ["library.bib", "library.json"]
    assert not any("index" in issue.source for issue in corpus.issues)
