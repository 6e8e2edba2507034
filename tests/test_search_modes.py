"""Modes, filters, sorting, paging and highlights of /search on the seed index (real model).

Expected sets are computed here from the parsed seed papers with plain Python, independently
of the index's filter columns.
"""

from __future__ import annotations

import re

import pytest

from indexing.corpus import read_corpus
from indexing.lexical import TermLocator, analyse
from indexing.records import Paper
from indexing.sentences import sentence_spans
from service import search as search_module
from service.highlights import highlight
from service.settings import SEED_CAPTURE_DATE
from tests.conftest import SEEDS

CLOCK_ID = "long-term-interest-clock-fine-grained-3265cadf58"
TRINITY_ID = "trinity-syncretizing-multi-long-tail-long-df8902f62c"


@pytest.fixture(scope="module")
def seed_papers() -> dict[str, Paper]:
    return {paper.id: paper for paper in read_corpus([SEEDS], SEED_CAPTURE_DATE).papers}


def search(client, **params) -> dict:
    response = client.get("/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def ids(body: dict) -> list[str]:
    return [hit["id"] for hit in body["results"]]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_each_mode_finds_live_streaming_papers(client, mode):
    body = search(client, q="live-streaming recommendation", k=3, mode=mode)
    assert body["mode"] == mode
    assert all("live" in hit["abstract"].lower() for hit in body["results"])


def test_hybrid_is_the_default_mode(client):
    assert search(client, q="recommendation", k=1)["mode"] == "hybrid"


def test_lexical_mode_returns_only_papers_with_a_query_term(client, seed_papers):
    body = search(client, q="kuaishou", mode="lexical", k=100)
    with_term = {pid for pid, p in seed_papers.items() if "kuaishou" in analyse(p.title or "")}
    with_term |= {pid for pid, p in seed_papers.items() if "kuaishou" in analyse(p.abstract)}
    assert set(ids(body)) == with_term and body["total"] == len(with_term) > 3
    assert search(client, q="zzyzx quetzalcoatl", mode="lexical")["results"] == []


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Long-Term Interest Clock", CLOCK_ID),
        ("long term interest clock", CLOCK_ID),
        ("Trinity", TRINITY_ID),
        (
            "Long-Term Interest Clock: Fine-Grained Time Perception in Streaming "
            "Recommendation System",
            CLOCK_ID,
        ),
    ],
)
def test_a_query_naming_a_paper_finds_it_first(client, mode, query, expected):
    assert ids(search(client, q=query, k=1, mode=mode)) == [expected]


def test_a_generic_title_prefix_promotes_nothing(client):
    # Several seed titles start "Large Language Models ..."; none is named by the query, so
    # the order is the plain relevance order of the blend.
    body = search(client, q="large language models", k=5)
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)


FILTERS = [
    ({"year_from": 2025}, lambda p: p.published is not None and p.published.year >= 2025),
    ({"year_to": 2023}, lambda p: p.published is not None and p.published.year <= 2023),
    (
        {"year_from": 2024, "year_to": 2024},
        lambda p: p.published is not None and p.published.year == 2024,
    ),
    ({"category": "ir"}, lambda p: p.category == "IR"),
    ({"category": "cs.CL"}, lambda p: False),  # the seeds' site pages say "CL", not "cs.CL"
    ({"author": "ZHANG"}, lambda p: any("zhang" in a.lower() for a in p.authors)),
    ({"has_code": True}, lambda p: p.has_code),
    ({"has_code": False}, lambda p: not p.has_code),
    ({"source": "002_2d51c04c1d257480.txt"}, lambda p: p.source == "002_2d51c04c1d257480.txt"),
    (
        {"category": "IR", "has_code": True, "year_from": 2024},
        lambda p: p.category == "IR" and p.has_code and p.published.year >= 2024,
    ),
]


@pytest.mark.parametrize(("params", "keep"), FILTERS)
def test_filters_return_exactly_the_matching_papers(client, seed_papers, params, keep):
    expected = {pid for pid, paper in seed_papers.items() if keep(paper)}
    body = search(client, q="recommendation", k=100, **params)
    assert set(ids(body)) == expected
    assert body["total"] == len(expected)


def test_a_filtered_query_fills_k_whenever_k_papers_match(client, seed_papers):
    # Few of the most relevant papers are from 2021-2022; a filter applied after a fixed
    # top-k would come back short.
    old = [p for p in seed_papers.values() if p.published and p.published.year <= 2022]
    body = search(client, q="live-streaming recommendation", k=10, year_to=2022)
    assert len(old) == 11 and len(body["results"]) == 10 and body["total"] == 11


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_a_filter_removes_papers_but_changes_no_score(client, mode):
    """Hybrid scaling uses the whole corpus's range, so a paper scores the same whether or
    not a filter removed its neighbours."""
    everything = search(client, q="live-streaming recommendation", k=100, mode=mode)
    score_of = {hit["id"]: hit["score"] for hit in everything["results"]}
    filtered = search(client, q="live-streaming recommendation", k=20, mode=mode, year_to=2023)
    assert filtered["results"]
    for hit in filtered["results"]:
        assert hit["score"] == score_of[hit["id"]]


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "hybrid"},
        {"mode": "dense"},
        {"mode": "lexical"},
        {"mode": "hybrid", "category": "IR"},
        {"mode": "dense", "sort": "date"},
        {"mode": "hybrid", "has_code": False, "sort": "date"},
    ],
)
def test_pages_join_up_to_the_single_long_answer(client, params):
    q = "user interest modelling"
    whole = search(client, q=q, k=56, **params)
    pages = [search(client, q=q, k=7, offset=offset, **params) for offset in range(0, 56, 7)]
    joined = [hit for page in pages for hit in ids(page)]
    assert joined == ids(whole)
    assert len(set(joined)) == len(joined)
    assert all(page["total"] == whole["total"] for page in pages)


def test_sort_by_date_orders_the_most_relevant_newest_first(client):
    relevant = search(client, q="live-streaming recommendation", k=100)
    by_date = search(client, q="live-streaming recommendation", k=100, sort="date")
    assert sorted(ids(by_date)) == sorted(ids(relevant))  # the same pool: all 98 seeds
    dates = [hit["published"] for hit in by_date["results"]]
    assert dates == sorted(dates, reverse=True)


def test_highlights_point_at_sentences_of_the_abstract_that_hold_query_terms(client):
    query = "cross-domain live-streaming recommendation"
    terms = set(analyse(query))
    for hit in search(client, q=query, k=5)["results"]:
        assert 1 <= len(hit["highlights"]) <= 2
        for shown in hit["highlights"]:
            start, end = shown["start"], shown["end"]
            assert hit["abstract"][start:end] == shown["text"]
            assert terms & set(analyse(shown["text"]))
            assert re.match(r"[A-Z0-9(]", shown["text"])  # a sentence start, not a cut
            # The marked words are exactly the sentence's words that analyse to a query term.
            marked = [shown["text"][span["start"] : span["end"]] for span in shown["terms"]]
            expected = [
                word
                for word in re.findall(r"\w\w+", shown["text"])
                if analyse(word) and analyse(word)[0] in terms
            ]
            assert marked == expected and marked
        starts = [h["start"] for h in hit["highlights"]]
        assert starts == sorted(starts)


def test_highlights_weigh_rare_terms_above_common_ones():
    abstract = "Models rank items. We study live streams at Kuaishou. Streams and models rank."
    sentences = sentence_spans(abstract)
    idf = {"kuaishou": 5.0, "stream": 1.0, "model": 0.5, "rank": 0.5}.get
    terms = TermLocator(frozenset(analyse("kuaishou models rank streams")))
    best = highlight(abstract, sentences, terms, lambda term: idf(term, 0.0))
    # "Streams and models rank." (2.0) and "... Kuaishou." (6.0) beat "Models rank items." (1.0);
    # they come back in abstract order.
    assert [h.text for h in best] == [
        "We study live streams at Kuaishou.",
        "Streams and models rank.",
    ]
    assert highlight(abstract, sentences, TermLocator(frozenset(analyse("protein"))), idf) == []


def test_highlights_can_be_turned_off(client):
    body = search(client, q="live-streaming recommendation", k=3, highlight="false")
    assert all(hit["highlights"] == [] for hit in body["results"])


def test_post_takes_the_same_filters(client):
    params = {"q": "recommendation", "k": 5, "category": "IR", "year_from": 2025, "sort": "date"}
    post = client.post("/search", json=params)
    assert post.status_code == 200
    assert post.json() == search(client, **params)


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"mode": "semantic"}, "mode"),
        ({"sort": "citations"}, "sort"),
        ({"year_from": 2025, "year_to": 2024}, "year_from 2025 is after year_to 2024"),
        ({"year_from": "recent"}, "year_from"),
        ({"author": " "}, "author"),
        ({"has_code": "maybe"}, "has_code"),
    ],
)
def test_bad_filters_are_422_naming_the_field(client, params, mentions):
    response = client.get("/search", params={"q": "recommendation", **params})
    assert response.status_code == 422
    assert mentions in response.json()["message"]


@pytest.mark.parametrize(
    "query", ["cross-domain live-streaming recommendation", "using studies of users", "LLMs"]
)
def test_term_locator_finds_exactly_the_words_analysis_would(seed_papers, query):
    terms = frozenset(analyse(query))
    locator = TermLocator(terms)
    for paper in seed_papers.values():
        expected = [
            (match.start(), match.end(), analyse(match.group())[0])
            for match in re.finditer(r"\b\w\w+\b", paper.abstract)
            if analyse(match.group()) and analyse(match.group())[0] in terms
        ]
        assert locator.occurrences(paper.abstract) == expected


def test_recency_blends_age_into_relevance_without_sorting(client):
    base = {"q": "recommendation", "k": 10}
    plain = client.get("/search", params=base).json()["results"]
    recent = client.get("/search", params={**base, "recency": 180}).json()["results"]
    years = [int(hit["published"][:4]) for hit in plain if hit["published"]]
    recent_years = [int(hit["published"][:4]) for hit in recent if hit["published"]]
    assert sum(recent_years) / len(recent_years) > sum(years) / len(years)
    assert all(0 <= hit["score"] <= 1 for hit in recent)
    # Relevance still counts most: the boosted page is not simply the newest papers.
    dated = client.get("/search", params={**base, "sort": "date"}).json()["results"]
    assert [hit["id"] for hit in recent] != [hit["id"] for hit in dated]
    refused = client.get("/search", params={**base, "recency": 0})
    assert refused.status_code == 422 and "recency" in refused.json()["message"]


def test_quoted_phrases_are_required_and_minus_words_excluded(client):
    from service.query_syntax import holds

    def text_terms(hit: dict) -> list[str]:
        return analyse(f"{hit['title'] or ''}\n{hit['abstract']}")

    found = client.get("/search", params={"q": 'recommendation "live streaming"', "k": 20}).json()
    assert 0 < found["total"] < 98 and len(found["results"]) == found["total"]
    assert all(holds(text_terms(hit), ("live", "stream")) for hit in found["results"])
    without = client.get("/search", params={"q": "recommendation -streaming", "k": 100}).json()
    assert without["total"] == 98 - len(
        [h for h in search(client, q="streaming", mode="lexical", k=100)["results"]]
    )
    assert all("stream" not in text_terms(hit) for hit in without["results"])
    # Full pages with a filter too, and the operators leave dense mode alone.
    filtered = client.get(
        "/search", params={"q": '"recommendation"', "year_from": 2025, "k": 5}
    ).json()
    assert len(filtered["results"]) == min(5, filtered["total"]) and filtered["total"] > 5
    # Dense mode embeds the query without its operators and applies none of them.
    dense = client.get("/search", params={"q": "recommendation -streaming", "mode": "dense"})
    plain = client.get("/search", params={"q": "recommendation", "mode": "dense"})
    assert [h["id"] for h in dense.json()["results"]] == [h["id"] for h in plain.json()["results"]]


@pytest.mark.parametrize(
    ("q", "says"),
    [
        ('recommendation "live', "a quote is not closed"),
        ('"of the" recommendation', "holds no searchable word"),
        ("-recommendation", "only excludes words"),
    ],
)
def test_malformed_operators_are_a_clear_422(client, q, says):
    response = client.get("/search", params={"q": q})
    assert response.status_code == 422 and says in response.json()["message"]


@pytest.mark.parametrize(
    ("q", "text", "excluded"),
    [
        ("temperature -40 degrees", "temperature -40 degrees", ()),  # a number, not a word
        ("top -k sampling", "top -k sampling", ()),  # nothing searchable to exclude
        ('"graph"-based learning', "graph -based learning", ()),  # no minus after a phrase
        ("graph -based learning", "graph learning", (("base",),)),
        ('ranking -"click through" models', "ranking models", (("click", "through"),)),
    ],
)
def test_the_minus_operator_takes_words_only(q, text, excluded):
    from service.query_syntax import parse_query

    parsed = parse_query(q)
    assert (parsed.text, parsed.excluded) == (text, excluded)


@pytest.mark.parametrize(
    "params",
    [{"q": "live streaming"}, {"q": "recommendation", "year_from": 2025, "mode": "lexical"}],
)
def test_a_search_run_off_the_event_loop_answers_the_same(client, monkeypatch, params):
    """A large index runs a search's own work in a worker thread (``OFF_LOOP_PAPERS``):
    forced here on the seeds, the answer is the loop's, byte for byte."""
    on_loop = client.get("/search", params=params)
    monkeypatch.setattr(search_module, "OFF_LOOP_PAPERS", 0)
    off_loop = client.get("/search", params=params)
    assert on_loop.status_code == off_loop.status_code == 200
    assert off_loop.json() == on_loop.json() and on_loop.json()["results"]
