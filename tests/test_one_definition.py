"""Rules written once: the search filters and a paper's labels, as every surface shows them.

Each test reads a surface the way its users do (HTTP, the CLI's parser, the MCP tool's
schema) and checks it against the one definition, so a copy that drifts fails here.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date
from pathlib import Path

import pytest

from indexing.records import Paper
from service.assistant_tools import build_mcp_server
from service.citations import author_credit, one_line_citation
from service.cli import build_parser, search_values
from service.filters import SearchFilters
from service.schemas import CitedPaper, SearchRequest

FILTERS = list(SearchFilters.model_fields)
# A value for each filter that the seeds can answer, as each surface spells it.
EXAMPLES = {
    "year_from": ("2020", 2020),
    "year_to": ("2025", 2025),
    "category": ("IR", "IR"),
    "author": ("zhang", "zhang"),
    "source": ("seed.jsonl", "seed.jsonl"),
    "has_code": (None, True),
}


def test_every_filter_has_an_example_here():
    assert set(EXAMPLES) == set(FILTERS)  # a new filter: add its example, the rest follows


def test_the_request_and_the_config_carry_every_filter_with_its_bounds(client):
    described = client.get("/config").json()["filters"]
    assert [fact["name"] for fact in described] == FILTERS
    by_name = {fact["name"]: fact for fact in described}
    assert by_name["year_from"]["minimum"] == 1000 and by_name["year_to"]["maximum"] == 9999
    assert by_name["author"]["min_length"] == 2 and by_name["category"]["facet"] == "categories"
    # What the config says is out of bounds, the API refuses.
    too_late = by_name["year_from"]["maximum"] + 1
    refused = client.get("/search", params={"q": "x", "year_from": too_late})
    assert refused.status_code == 422 and "year_from" in refused.json()["message"]


def test_the_cli_has_an_option_per_filter_that_reaches_the_request():

    argv = ["search", "recommendation"]
    for name, (cli_value, _) in EXAMPLES.items():
        flag = "--" + name.replace("_", "-")
        argv += [flag] if cli_value is None else [flag, cli_value]
    values = search_values(build_parser().parse_args(argv))
    assert values == {name: value for name, (_, value) in EXAMPLES.items()}
    assert build_parser().parse_args(["search", "x", "--no-code"]).has_code is False


def test_the_search_tool_takes_every_filter_with_the_apis_bounds():
    server = build_mcp_server(lambda: pytest.fail("listing tools must not need the engine"))
    tools = {tool.name: tool for tool in asyncio.run(server.list_tools())}
    properties = tools["search_papers"].input_schema["properties"]
    assert set(FILTERS) <= set(properties)
    year = next(option for option in properties["year_from"]["anyOf"] if "type" in option)
    assert (year["minimum"], year["maximum"]) == (1000, 9999)


def test_a_filter_reaches_the_engine_from_each_surface(client):
    """The same filter through GET, POST and the tool gives the same papers."""
    params = {"q": "recommendation", "k": 20, "year_to": 2022, "has_code": True}
    by_get = client.get("/search", params=params).json()["results"]
    by_post = client.post("/search", json=params).json()["results"]
    tool = client.post(
        "/tools/call",
        json={
            "name": "search_papers",
            "arguments": {"query": "recommendation", "k": 20, "year_to": 2022, "has_code": True},
        },
    ).json()["result"]["results"]
    ids = [hit["id"] for hit in by_get]
    assert ids and ids == [hit["id"] for hit in by_post] == [hit["id"] for hit in tool]
    assert all(hit["has_code"] and hit["published"] < "2023" for hit in by_get)


def _paper(**fields: object) -> CitedPaper:
    return CitedPaper.of(Paper(id="p1", abstract="An abstract.", source="s", **fields))


@pytest.mark.parametrize(
    ("fields", "label", "credit", "when"),
    [
        ({"title": "A Title"}, "A Title", None, None),
        ({"arxiv_id": "2502.09375"}, "arXiv:2502.09375", None, None),
        ({}, "p1", None, None),
        ({"authors": ["A", "B", "C"]}, "p1", "A, B, C", None),
        ({"authors": ["A", "B", "C", "D"]}, "p1", "A, B, C et al.", None),
        ({"authors": ["A"], "authors_truncated": True}, "p1", "A et al.", None),
        ({"published": date(2025, 1, 3)}, "p1", None, "3 Jan 2025"),
        (
            {"published": date(2025, 1, 3), "published_inferred": True},
            "p1",
            None,
            "3 Jan 2025 (date inferred)",
        ),
    ],
)
def test_a_paper_is_named_credited_and_dated_by_one_rule(fields, label, credit, when):
    paper = _paper(**fields)
    assert (paper.label, paper.credit, paper.date_label) == (label, credit, when)
    citation = one_line_citation(paper)
    assert label in citation and (credit is None or citation.startswith(credit))


def test_the_api_sends_the_labels_the_page_and_the_map_show(client):
    hits = client.get("/search", params={"q": "arXiv listing", "k": 100}).json()["results"]
    untitled = next(hit for hit in hits if hit["title"] is None)
    assert untitled["label"] == f"arXiv:{untitled['arxiv_id']}"
    dated = next(hit for hit in hits if hit["published"])
    assert dated["date_label"].split()[-1] == dated["published"][:4]
    mapped = client.get("/map").json()
    assert mapped["labels"][mapped["ids"].index(untitled["id"])] == untitled["label"]


def test_a_full_author_list_keeps_the_same_et_al_rule():
    truncated = _paper(authors=["A", "B", "C", "D"], authors_truncated=True)
    assert author_credit(truncated, first=None) == "A, B, C, D et al."
    assert author_credit(_paper(authors=["A", "B", "C", "D"]), first=None) == "A, B, C, D"
    assert truncated.credit == "A, B, C et al."


def test_the_readme_documents_every_search_parameter_and_tool_argument():
    """The README's tables are prose, but a filter missing from them is a drift a reader
    meets first."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    parameters = readme.split("`/search` parameters", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)?", parameters, re.M))
    names = {name for pair in documented for name in pair if name}
    assert set(SearchRequest.model_fields) <= names
    tool_row = next(line for line in readme.splitlines() if line.startswith("| `search_papers`"))
    assert all(f"`{name}`" in tool_row for name in FILTERS)
