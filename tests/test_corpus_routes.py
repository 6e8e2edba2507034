"""What the search page stands on, over HTTP: its routes and files, /facets and /map."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest

from indexing.reader import PaperIndex
from service.routes.ui import STATIC_DIR
from service.schemas import CorpusMap

STATIC_FILES = sorted(path for path in STATIC_DIR.rglob("*") if path.is_file())


def test_the_search_page_and_paper_pages_are_served(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/app.js">' in page.text
    assert client.get("/paper/arxiv:2502.09375").status_code == 200
    unknown = client.get("/paper/no-such-paper")
    assert unknown.status_code == 404 and unknown.text == page.text  # the page says so itself


@pytest.mark.parametrize("path", STATIC_FILES, ids=lambda path: path.name)
def test_every_page_file_is_served_and_needs_nothing_from_the_internet(client, path):
    served = client.get(f"/static/{path.relative_to(STATIC_DIR).as_posix()}")
    assert served.status_code == 200 and served.content == path.read_bytes()
    text = path.read_text(encoding="utf-8")
    # No CDN script, stylesheet, font or import: links to arXiv come from the API's data.
    assert not re.search(
        r"""(src|href)=["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//|from\s+["']https?:""",
        text,
    )


def test_every_module_the_page_imports_exists():
    for script in STATIC_DIR.glob("js/*.js"):
        for imported in re.findall(r'from "\./([\w-]+\.js)"', script.read_text(encoding="utf-8")):
            assert (script.parent / imported).is_file(), (script.name, imported)


def test_facets_count_the_seed_corpus(client):
    facets = client.get("/facets").json()
    assert facets["papers"] == 98
    counts = {c["name"]: c["papers"] for c in facets["categories"]}
    assert list(counts)[:3] == ["IR", "LG", "CL"]  # most papers first
    assert counts == {"IR": 61, "LG": 11, "CL": 9, "AI": 2, "CV": 2, "SE": 2, "IV": 1}
    assert (facets["year_min"], facets["year_max"]) == (2021, 2026)
    assert facets["with_code"] == 21
    # Every category offered is one the filter accepts, with the count it promises.
    for name, count in counts.items():
        total = client.get("/search", params={"q": "model", "category": name}).json()["total"]
        assert total == count, name


def test_the_map_has_a_point_for_every_paper_in_index_order(client, seed_settings):
    answer = client.get("/map", headers={"Accept-Encoding": "identity"})
    assert answer.status_code == 200 and "content-encoding" not in answer.headers
    corpus_map = CorpusMap.model_validate_json(answer.content)
    index = PaperIndex.open(seed_settings.index_dir, model=seed_settings.model)
    try:
        papers = index.list_papers(100, 0)
        points = np.array(index.map_points)
    finally:
        index.close()
    assert corpus_map.papers == corpus_map.shown == len(papers) == 98  # under the map's limit
    assert corpus_map.ids == [paper.id for paper in papers]
    for column in (corpus_map.labels, corpus_map.category, corpus_map.x, corpus_map.y):
        assert len(column) == 98
    assert np.allclose(np.column_stack([corpus_map.x, corpus_map.y]), points, atol=1e-4)
    for paper, label, category in zip(papers, corpus_map.labels, corpus_map.category, strict=True):
        assert label == (paper.title or f"arXiv:{paper.arxiv_id}")
        assert (corpus_map.categories[category] if category >= 0 else None) == paper.category
    assert corpus_map.categories[0] == "IR"


def test_the_map_is_compressed_for_clients_that_accept_it(client):
    plain = client.get("/map", headers={"Accept-Encoding": "identity"}).content
    # httpx would decompress it silently; read the bytes as sent.
    with client.stream("GET", "/map", headers={"Accept-Encoding": "gzip"}) as answer:
        assert answer.headers["content-encoding"] == "gzip"
        assert answer.headers["vary"] == "Accept-Encoding"
        sent = b"".join(answer.iter_raw())
    assert len(sent) < len(plain) / 2
    assert json.loads(gzip.decompress(sent)) == json.loads(plain)
