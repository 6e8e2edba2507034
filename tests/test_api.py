"""The HTTP API through FastAPI's test client, on the real seed index and the real model."""

from __future__ import annotations

import pytest

from service.schemas import SearchRequest

LIVE_STREAMING = {
    "arxiv:2502.09375",  # FARM: cross-domain live-streaming recommendation
    "arxiv:2408.05709",  # Kuaishou live-streaming recommendation
    "arxiv:2504.05217",  # real-time live-streaming semantics
    "arxiv:2505.13894",  # Pantheon, deployed on Kuaishou live-streaming
    "arxiv:2409.04540",  # UniCDR+, Short-Video -> Living-Room (Kuaishou's live-streaming)
    "bridging-short-videos-and-live-streams-2771e9c463",
}
CLOCK_ID = "long-term-interest-clock-fine-grained-3265cadf58"
CLOCK_TITLE = (
    "Long-Term Interest Clock: Fine-Grained Time Perception in Streaming Recommendation System"
)


def test_cross_domain_live_streaming_top_5(client):
    response = client.get(
        "/search", params={"q": "cross-domain live-streaming recommendation", "k": 5}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "cross-domain live-streaming recommendation"
    assert {hit["id"] for hit in body["results"]} <= LIVE_STREAMING
    assert len(body["results"]) == 5


def test_hit_fields_and_descending_scores(client):
    results = client.get("/search", params={"q": "click-through rate prediction"}).json()["results"]
    assert len(results) == 10
    for field in (
        "id",
        "score",
        "title",
        "authors",
        "published",
        "category",
        "arxiv_id",
        "abstract",
        "source",
        "url",
        "citation",
        "bibtex",
        "highlights",
    ):
        assert field in results[0]
    for hit in results:
        expected_url = f"https://arxiv.org/abs/{hit['arxiv_id']}" if hit["arxiv_id"] else None
        assert hit["url"] == expected_url
        assert (hit["title"] or hit["arxiv_id"]) in hit["citation"]
    scores = [hit["score"] for hit in results]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1


def test_a_title_as_query_finds_its_paper_first(client):
    results = client.get("/search", params={"q": "Long-Term Interest Clock", "k": 3}).json()[
        "results"
    ]
    assert results[0]["id"] == CLOCK_ID


def test_offset_pages_do_not_overlap(client):
    q = {"q": "large language models for recommendation"}
    ten = client.get("/search", params={**q, "k": 10}).json()["results"]
    first = client.get("/search", params={**q, "k": 5}).json()["results"]
    second = client.get("/search", params={**q, "k": 5, "offset": 5}).json()["results"]
    assert [h["id"] for h in first + second] == [h["id"] for h in ten]


def test_offset_past_the_corpus_is_empty(client):
    body = client.get("/search", params={"q": "anything", "k": 10, "offset": 95}).json()
    assert len(body["results"]) == 3
    assert client.get("/search", params={"q": "anything", "offset": 500}).json()["results"] == []


def test_post_search_equals_get(client):
    params = {"q": "diffusion models for recommendation", "k": 7, "offset": 1}
    assert client.post("/search", json=params).json() == client.get("/search", params=params).json()


@pytest.mark.parametrize(
    ("method", "path", "params", "mentions"),
    [
        ("GET", "/search", {}, "q"),
        ("GET", "/search", {"q": "   "}, "q"),
        ("GET", "/search", {"q": "x", "k": 0}, "k"),
        ("GET", "/search", {"q": "x", "k": 101}, "k"),
        ("GET", "/search", {"q": "x", "k": "ten"}, "k"),
        ("GET", "/search", {"q": "x", "offset": -1}, "offset"),
        ("GET", "/search", {"q": "x", "limit": 5}, "limit"),
        ("POST", "/search", {"q": "x", "k": 1000}, "k"),
        ("POST", "/search", {"k": 3}, "q"),
        ("GET", "/papers", {"limit": 0}, "limit"),
        ("GET", "/papers", {"offset": -3}, "offset"),
        ("GET", f"/papers/{CLOCK_ID}/similar", {"k": 101}, "k"),
        ("GET", "/similar", {}, "title"),
        ("GET", "/similar", {"title": "ab"}, "title"),
        ("GET", "/similar", {"title": "Long-Term Interest Clock", "k": -1}, "k"),
    ],
)
def test_bad_parameters_get_a_422_that_names_them(client, method, path, params, mentions):
    if method == "GET":
        response = client.get(path, params=params)
    else:
        response = client.post(path, json=params)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["message"].startswith(f"{mentions}:")
    assert isinstance(body["detail"], list)


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"q": null}'])
def test_malformed_post_bodies_are_422(client, body):
    response = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


@pytest.mark.parametrize("q", ["ünïcödé ✓ 推荐系统", "'; DROP TABLE papers; --", "%00", "a"])
def test_odd_queries_still_answer(client, q):
    response = client.get("/search", params={"q": q, "k": 3})
    assert response.status_code == 200 and len(response.json()["results"]) == 3


def test_list_papers_pages_through_the_corpus(client):
    first = client.get("/papers", params={"limit": 60}).json()
    rest = client.get("/papers", params={"limit": 60, "offset": 60}).json()
    assert first["total"] == rest["total"] == 98
    ids = [p["id"] for p in first["papers"] + rest["papers"]]
    assert len(ids) == len(set(ids)) == 98


def test_get_one_paper(client):
    paper = client.get(f"/papers/{CLOCK_ID}").json()
    assert paper["title"] == CLOCK_TITLE
    assert paper["authors"][:2] == ["Yongchun Zhu", "Guanyu Jiang"] and paper["authors_truncated"]
    assert paper["published"] == "2025-01-27" and paper["profile"]["name"] == "Zuotao Liu"
    arxiv = client.get("/papers/arxiv:2404.06078").json()
    assert arxiv["title"] is None and arxiv["comment"] == "9 pages, 8 figures"


@pytest.mark.parametrize("paper_id", ["nope", "arxiv:0000.00000", "hep-th/9901001"])
def test_unknown_paper_is_404(client, paper_id):
    for path in (f"/papers/{paper_id}", f"/papers/{paper_id}/similar"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {
            "code": "paper_not_found",
            "message": f"no paper with id {paper_id!r}",
        }


def test_similar_to_a_paper_never_contains_it(client):
    body = client.get("/papers/arxiv:2502.09375/similar", params={"k": 97}).json()
    assert body["paper"]["id"] == "arxiv:2502.09375"
    ids = [hit["id"] for hit in body["results"]]
    assert len(ids) == 97 and "arxiv:2502.09375" not in ids
    assert ids[0] in LIVE_STREAMING


@pytest.mark.parametrize(
    "typed",
    [
        CLOCK_TITLE,
        CLOCK_TITLE.lower(),
        "long term interest clock fine grained time perception in streaming recommendation system",
        "Long-Term Intrest Clock: Fine-Grained Time Perception in Streaming Recommendation Sytem",
        "Long-Term Interest Clock: Fine-Grained Time Perception",
        "long term intrest clock",
    ],
)
def test_similar_by_title_as_people_type_it(client, typed):
    response = client.get("/similar", params={"title": typed, "k": 5})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["matched"]["id"] == CLOCK_ID and body["matched"]["match_score"] >= 88
    assert CLOCK_ID not in [hit["id"] for hit in body["results"]] and len(body["results"]) == 5


def test_similar_by_title_without_a_good_match_suggests_titles(client):
    response = client.get("/similar", params={"title": "quantum chromodynamics on the lattice"})
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "title_not_found" and "suggestions" in body
    assert 1 <= len(body["suggestions"]) <= 5
    assert set(body["suggestions"][0]) == {"id", "title", "match_score"}
    assert all(s["match_score"] < 88 for s in body["suggestions"])


def test_health_and_readiness(client, seed_build):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["papers"] == 98
    assert ready["model"] == "all-MiniLM-L6-v2" and ready["dimension"] == 384
    assert ready["built_at"].startswith("20")


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/search",
        "/papers",
        "/papers/{paper_id}",
        "/papers/{paper_id}/similar",
        "/similar",
        "/config",
        "/recommend",
        "/export",
        "/facets",
        "/map",
        "/healthz",
        "/readyz",
        "/metrics",
        "/tools/openai",
        "/tools/call",
        "/admin/papers",
        "/admin/papers/{paper_id}",
        "/admin/reload",
    }
    search_params = {p["name"] for p in spec["paths"]["/search"]["get"]["parameters"]}
    assert search_params == set(SearchRequest.model_fields)
    assert client.get("/docs").status_code == 200
