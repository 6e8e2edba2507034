"""The assistant tools through the MCP SDK's real client (stdio and HTTP) and as OpenAI functions."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import date

import jsonschema
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from indexing.records import Paper
from service.citations import bibtex, one_line_citation
from tests.conftest import PAPERSEARCH, running_server

CLOCK_ID = "long-term-interest-clock-fine-grained-3265cadf58"
FARM_ID = "arxiv:2502.09375"
TOOLS = {"search_papers", "find_similar_papers", "get_paper"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def check_session(session: ClientSession) -> None:
    """Every tool, the resource template and the error cases, through one MCP session."""
    listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(listed) == TOOLS
    for tool in listed.values():
        assert (
            tool.annotations.read_only_hint is True and tool.annotations.destructive_hint is False
        )
        assert tool.output_schema and tool.description
    assert {"query", "k", "year_from", "category", "source", "mode"} <= set(
        listed["search_papers"].input_schema["properties"]
    )

    found = await session.call_tool(
        "search_papers", {"query": "cross-domain live-streaming recommendation", "k": 3}
    )
    assert not found.is_error
    hits = found.structured_content["results"]
    assert len(hits) == 3 and hits[0]["id"] == FARM_ID
    assert hits[0]["url"] == "https://arxiv.org/abs/2502.09375" and hits[0]["highlights"]
    text = found.content[0].text
    assert text.startswith("[1] arXiv:2502.09375 (2025).") and "[3] " in text

    filtered = await session.call_tool(
        "search_papers", {"query": "recommendation", "k": 5, "year_to": 2022, "has_code": True}
    )
    assert all(
        hit["has_code"] and hit["published"] < "2023"
        for hit in filtered.structured_content["results"]
    )

    by_title = await session.call_tool(
        "find_similar_papers", {"title": "long term intrest clock", "k": 2}
    )
    assert by_title.structured_content["paper"]["id"] == CLOCK_ID
    assert by_title.structured_content["match_score"] >= 88
    assert len(by_title.structured_content["results"]) == 2
    by_id = await session.call_tool("find_similar_papers", {"paper_id": FARM_ID, "k": 2})
    assert FARM_ID not in {hit["id"] for hit in by_id.structured_content["results"]}

    paper = await session.call_tool("get_paper", {"paper_id": CLOCK_ID})
    assert paper.structured_content["citation"].startswith("Yongchun Zhu, Guanyu Jiang")
    assert paper.structured_content["bibtex"].startswith("@misc{zhu2025long,")

    for name, arguments, message in [
        ("get_paper", {"paper_id": "nope"}, "no paper with id 'nope'"),
        ("search_papers", {"query": "   "}, "query: must contain some non-space text"),
        ("search_papers", {"query": "x", "k": 500}, "k: Input should be less than or equal to 100"),
        ("search_papers", {"query": "x", "year_from": 20}, "year_from: Input should be greater"),
        ("find_similar_papers", {"title": "ab"}, "title: String should have at least 3"),
        ("find_similar_papers", {"k": 2}, "give exactly one of title or paper_id"),
        ("find_similar_papers", {"title": "quantum chromodynamics"}, "closest titles:"),
    ]:
        failed = await session.call_tool(name, arguments)
        assert failed.is_error and message in failed.content[0].text
        assert "Traceback" not in failed.content[0].text
        assert "pydantic" not in failed.content[0].text  # the tool's words, not the library's

    templates = (await session.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["paper://{paper_id}"]
    markdown = (await session.read_resource(f"paper://{CLOCK_ID}")).contents[0].text
    assert markdown.startswith("# Long-Term Interest Clock") and "**Cite as:**" in markdown
    with pytest.raises(MCPError, match="no paper with id 'nope'"):
        await session.read_resource("paper://nope")


@pytest.mark.anyio
async def test_mcp_over_stdio(seed_settings):
    server = StdioServerParameters(
        command=PAPERSEARCH, args=["mcp", "--index", str(seed_settings.index_dir)]
    )
    async with AsyncExitStack() as stack:
        read, write = await stack.enter_async_context(stdio_client(server))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        await check_session(session)


@pytest.mark.anyio
async def test_mcp_over_http_shares_the_served_index(seed_settings):
    with running_server(seed_settings.index_dir) as server:
        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(
                streamable_http_client(f"{server.url}/mcp")
            )
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            await check_session(session)


def _strict_rules_hold(node: object) -> None:
    if isinstance(node, list):
        for item in node:
            _strict_rules_hold(item)
    elif isinstance(node, dict):
        assert "default" not in node
        assert not {"minLength", "maxLength"} & set(node)  # refused by OpenAI's strict mode
        if "properties" in node:
            assert node["additionalProperties"] is False
            assert set(node["required"]) == set(node["properties"])
        for value in node.values():
            _strict_rules_hold(value)


def test_openai_tools_are_strict_json_schema_functions(client):
    functions = client.get("/tools/openai").json()
    assert {f["function"]["name"] for f in functions} == TOOLS
    for definition in functions:
        assert definition["type"] == "function" and definition["function"]["strict"] is True
        parameters = definition["function"]["parameters"]
        jsonschema.Draft202012Validator.check_schema(parameters)
        _strict_rules_hold(parameters)
    search = next(f for f in functions if f["function"]["name"] == "search_papers")
    parameters = search["function"]["parameters"]
    # optional parameters accept null ("use the default"); the query does not
    jsonschema.validate(
        {name: None for name in parameters["required"]} | {"query": "x"}, parameters
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({name: None for name in parameters["required"]}, parameters)


def test_tool_call_round_trip_equals_the_search_api(client):
    arguments = {name: None for name in ("mode", "year_from", "year_to", "author", "has_code")}
    call = {"name": "search_papers", "arguments": {**arguments, "query": "LLM CTR", "k": 3}}
    response = client.post("/tools/call", json=call)
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "search_papers" and body["text"].startswith("[1] ")
    api = client.get("/search", params={"q": "LLM CTR", "k": 3}).json()
    assert body["result"] == api


@pytest.mark.parametrize(
    ("call", "status", "code", "message"),
    [
        ({"name": "delete_papers"}, 404, "tool_not_found", "no tool named 'delete_papers'"),
        ({"name": "get_paper", "arguments": {"paper_id": "nope"}}, 404, "paper_not_found", "nope"),
        ({"name": "search_papers", "arguments": {"query": "x", "k": 0}}, 422, "tool_error", "k"),
        ({"name": "search_papers", "arguments": {}}, 422, "tool_error", "query"),
    ],
)
def test_tool_call_errors_are_4xx(client, call, status, code, message):
    response = client.post("/tools/call", json=call)
    assert response.status_code == status
    assert response.json()["code"] == code and message in response.json()["message"]


def test_citations_use_only_the_metadata_there_is():
    untitled = Paper(id="arxiv:1", arxiv_id="2502.09375", abstract="x", source="s")
    assert one_line_citation(untitled) == "arXiv:2502.09375."
    assert bibtex(untitled) is None  # no title, no year: not enough for BibTeX
    paper = Paper(
        id="p",
        title="Deep & Wide: 50% of {x}",
        authors=["Ann Lee", "Bo Xu"],
        authors_truncated=True,
        published=date(2024, 1, 2),
        abstract="x",
        source="s",
    )
    assert one_line_citation(paper) == "Ann Lee, Bo Xu et al. (2024). Deep & Wide: 50% of {x}."
    assert bibtex(paper) == (
        "@misc{lee2024deep,\n  title = {{Deep \\& Wide: 50\\% of \\{x\\}}},\n"
        "  author = {Ann Lee and Bo Xu and others},\n  year = {2024}\n}"
    )
