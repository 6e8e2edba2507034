"""arXiv papers keep every category they are listed in: the category filter and the facets
see cross-listed papers under each of them."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from service.app import create_app
from tests.conftest import settings_with
from tests.test_cli import run_cli


def test_a_cross_listed_paper_is_found_and_counted_under_each_category(
    capsys, cache_dir, seed_settings, tmp_path
):
    dump = tmp_path / "arxiv.jsonl"
    rows = [
        {
            "id": "2501.00001",
            "categories": "cs.CV cs.RO",
            "title": "Robot Vision",
            "abstract": "Grasping objects seen by a camera mounted on a robot arm.",
        },
        {
            "id": "2501.00002",
            "categories": "cs.IR",
            "title": "Ranking Things",
            "abstract": "Learning to rank search results for a web engine.",
        },
    ]
    dump.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    index = tmp_path / "index"
    code, _, err = run_cli(
        capsys, "index", str(dump), "--out", str(index), "--cache-dir", str(cache_dir), "--quiet"
    )
    assert code == 0, err
    with TestClient(create_app(settings_with(seed_settings, index_dir=index))) as client:
        paper = client.get("/papers/arxiv:2501.00001").json()
        assert paper["category"] == "cs.CV" and paper["categories"] == ["cs.CV", "cs.RO"]
        for category in ("RO", "cs.RO", "CV"):
            found = client.get("/search", params={"q": "robot", "category": category}).json()
            assert [hit["id"] for hit in found["results"]] == ["arxiv:2501.00001"], category
        facets = {c["name"]: c["papers"] for c in client.get("/facets").json()["categories"]}
        assert facets == {"cs.CV": 1, "cs.RO": 1, "cs.IR": 1}
