"""More like this: papers like a paper, like a pasted text and like a set of examples, on the
seed index with the real model, over HTTP and from the CLI."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import run_cli

CLOCK_ID = "long-term-interest-clock-fine-grained-3265cadf58"
FARM_ID = "arxiv:2502.09375"


def _ids(answer: dict) -> list[str]:
    return [hit["id"] for hit in answer["results"]]


def test_like_a_paper_pages_and_filters_and_never_returns_the_paper(client):
    first = client.get(f"/papers/{CLOCK_ID}/similar", params={"k": 5}).json()
    second = client.get(f"/papers/{CLOCK_ID}/similar", params={"k": 5, "offset": 5}).json()
    both = client.get(f"/papers/{CLOCK_ID}/similar", params={"k": 10}).json()
    assert _ids(first) + _ids(second) == _ids(both)
    assert CLOCK_ID not in _ids(both) and both["total"] == 97 and second["offset"] == 5
    filtered = client.get(
        f"/papers/{CLOCK_ID}/similar", params={"k": 20, "year_to": 2023, "has_code": True}
    ).json()
    assert filtered["results"] and filtered["total"] < 97
    assert all(h["has_code"] and h["published"] < "2024" for h in filtered["results"])


@pytest.mark.parametrize(
    "typed", ["2502.09375", "arXiv:2502.09375v2", "https://arxiv.org/abs/2502.09375v2"]
)
def test_an_arxiv_id_or_url_typed_as_a_title_names_that_paper(client, typed):
    answer = client.get("/similar", params={"title": typed, "k": 3}).json()
    assert answer["matched"]["id"] == FARM_ID and answer["matched"]["match_score"] == 100
    assert FARM_ID not in _ids(answer)


def test_a_corpus_papers_own_abstract_finds_it_first(client):
    paper = client.get(f"/papers/{CLOCK_ID}").json()
    answer = client.post("/similar", json={"text": paper["abstract"], "k": 5}).json()
    assert _ids(answer)[0] == CLOCK_ID
    assert answer["key_terms"] and answer["total"] == 98


def test_a_long_text_is_read_whole_and_an_over_long_one_refused(client, seed_settings):
    papers = client.get("/papers", params={"limit": 40}).json()["papers"]
    text = "\n\n".join(paper["abstract"] for paper in papers)[:19_000]
    assert len(text) > 15_000  # far past the model's 256 tokens
    assert client.post("/similar", json={"text": text, "k": 3}).status_code == 200
    too_long = "word " * (seed_settings.max_text_chars // 5 + 1)
    refused = client.post("/similar", json={"text": too_long})
    assert refused.status_code == 422 and refused.json()["code"] == "text_too_long"


def test_recommendations_exclude_the_examples_and_follow_the_filters(client):
    like = [CLOCK_ID, FARM_ID]
    answer = client.post("/recommend", json={"positive": like, "k": 10}).json()
    assert answer["results"] and not set(like) & set(_ids(answer))
    assert answer["total"] == 96
    unlike = _ids(answer)[0]
    pushed = client.post(
        "/recommend", json={"positive": like, "negative": [unlike], "k": 10}
    ).json()
    assert unlike not in _ids(pushed) and pushed["negative"] == [unlike]
    # The negative moves the ranking itself, not only out of it.
    kept = [hit for hit in answer["results"] if hit["id"] != unlike]
    moved = {hit["id"]: hit["score"] for hit in pushed["results"]}
    assert any(moved.get(hit["id"]) != hit["score"] for hit in kept)
    twice = client.post("/recommend", json={"positive": [*like, like[0]], "k": 10}).json()
    assert twice["positive"] == like and _ids(twice) == _ids(answer)  # an example counts once
    paged = client.post("/recommend", json={"positive": like, "k": 5, "offset": 5}).json()
    assert _ids(paged) == _ids(answer)[5:]
    coded = client.post("/recommend", json={"positive": like, "has_code": True}).json()
    assert all(hit["has_code"] for hit in coded["results"])


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"positive": ["nope", "arxiv:0000.00000"]}, 404, "'nope', 'arxiv:0000.00000'"),
        ({"positive": []}, 422, "positive"),
        ({"positive": [f"id-{n}" for n in range(51)]}, 422, "positive"),
        ({"positive": [FARM_ID], "negative": [FARM_ID]}, 422, "both positive and negative"),
        ({"positive": [FARM_ID], "k": 0}, 422, "k"),
    ],
)
def test_bad_recommendation_requests_are_refused_clearly(client, body, status, says):
    response = client.post("/recommend", json=body)
    assert response.status_code == status and says in response.json()["message"]


def test_the_cli_recommends_and_finds_papers_like_a_text_file(capsys, seed_settings, tmp_path):
    index = ("--index", str(seed_settings.index_dir))
    code, out, err = run_cli(capsys, "recommend", CLOCK_ID, FARM_ID, "-k", "3", *index)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "papers similar (like 2 examples)"
    assert lines[-1] == "1-3 of 96 papers"
    code, out, err = run_cli(capsys, "similar", "--title", "2502.09375", "-k", "2", *index)
    assert code == 0 and out.startswith("papers similar to: [untitled, arXiv:2502.09375]")
    assert "(matched 100/100)" in out.splitlines()[0]
    abstract = tmp_path / "abstract.txt"
    abstract.write_text("Long-term interest clock for recommendation.\n" * 3, encoding="utf-8")
    code, out, err = run_cli(capsys, "similar", "--text-file", str(abstract), "-k", "2", *index)
    assert code == 0, err
    assert out.startswith("papers similar (key terms: ") and CLOCK_ID in out


def test_an_arxiv_id_finds_a_paper_the_corpus_named_otherwise(capsys, cache_dir, tmp_path):
    """A JSONL corpus may give a paper its own id beside its arXiv id: the arXiv id typed
    as a title still names it."""
    corpus = tmp_path / "mine.jsonl"
    rows = [
        {
            "id": "mine-1",
            "arxiv_id": "2101.00001",
            "title": "Streams of Thought",
            "abstract": "Live-streaming recommendation with real-time content understanding.",
        },
        {
            "id": "mine-2",
            "title": "Another Paper",
            "abstract": "Click-through rate prediction with language models.",
        },
    ]
    corpus.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    index = tmp_path / "index"
    code, _, err = run_cli(
        capsys, "index", str(corpus), "--out", str(index), "--cache-dir", str(cache_dir), "--quiet"
    )
    assert code == 0, err
    code, out, err = run_cli(
        capsys, "similar", "--title", "arXiv:2101.00001", "-k", "1", "--index", str(index)
    )
    assert code == 0, err
    assert out.startswith("papers similar to: Streams of Thought (matched 100/100)")
