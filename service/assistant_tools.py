"""The search as tools for chat assistants: one MCP server, also offered as OpenAI functions.

The tools are defined once, here, on the official MCP SDK's ``MCPServer``: their input
schemas come from the type hints below, their output schemas from the answer models of
``service.tool_answers`` (brief hits by default, the API's full ones on request, and always
where the next page starts).
``papersearch mcp`` serves them over stdio; the HTTP app mounts the streamable-HTTP transport
at ``/mcp`` and derives ``GET /tools/openai`` from the same server's tool list, so the three
ways of calling them cannot drift apart. Each result is structured (JSON) and also rendered
as short text with numbered citations an assistant can quote.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Annotated, Any, Optional, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, TypeAdapter, WithJsonSchema
from pydantic.fields import FieldInfo

from service.citations import author_credit
from service.errors import InvalidRequest, ServiceError, TitleNotFound, validated
from service.export import ExportedFile, ExportFormat, ExportPapers, export
from service.filters import SearchFilters
from service.formatting import paper_heading
from service.schemas import (
    CitedPaper,
    RecommendRequest,
    SearchHit,
    SearchRequest,
    SimilarOptions,
    TitleLookup,
)
from service.search import SearchEngine
from service.tool_answers import (
    Detail,
    PageRequest,
    PaperIds,
    PapersAnswer,
    RecommendAnswer,
    SearchAnswer,
    SimilarAnswer,
    next_page_line,
    short_reference,
)

INSTRUCTIONS = """\
Papersearch searches a corpus of research-paper abstracts (titles, authors, dates, arXiv ids).
- search_papers: a question or keywords ("cross-domain live-streaming recommendation"), with
  optional filters (years, category such as IR or cs.IR, author, has_code). Start here. Put
  words that must appear in "quotes" and prefix words that must not with a minus (-survey).
- find_similar_papers: papers like one the user names, by its title as they remember it
  (typos and prefixes are fine), its arXiv id or URL, or a paper id from an earlier result.
- recommend_papers: more papers like several the user picked (positive ids), and unlike
  others (negative ids).
- get_paper / get_papers: the full record and citation of one paper id, or of up to 50.
- export_citations: paper ids as a BibTeX, RIS or CSL-JSON file for a reference manager.
The list tools (search, similar, recommend) answer brief hits (id, title, first authors, year,
score, one evidence sentence; the text cites each) unless given detail="full"; each ends with
the offset of its next page (next_offset; pass it back as offset with the same
arguments). Prefer brief pages, then get_papers for the few papers worth reading in full.
Paper ids look like "arxiv:2502.09375" (arXiv papers) or a title slug such as
"long-term-interest-clock-fine-grained-3265cadf58". Cite results by their [n] number, url and
citation; every result also carries BibTeX where the metadata allows."""

ModelT = TypeVar("ModelT", bound=BaseModel)
ToolFunction = TypeVar("ToolFunction", bound=Callable[..., Any])
READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
DEFAULT_K = 5
# The request fields search_papers takes (the highlight choice stays the API's), and the
# names a tool gives them: an assistant reads "query" more easily than "q".
SEARCH_PARAMETERS = ("q", "k", "offset", "mode", *SearchFilters.model_fields, "sort", "recency")
TOOL_NAMES = {"q": "query"}
SIMILAR_PARAMETERS = ("k", "offset", *SearchFilters.model_fields)
RECOMMEND_PARAMETERS = ("positive", "negative", "k", "offset", *SearchFilters.model_fields)


class FailedToolCall(ToolError):
    """A tool call refused for a reason the caller can fix (``/tools/call`` answers 422, or
    the status of the service error it wraps)."""


def build_mcp_server(engine: Callable[[], SearchEngine]) -> MCPServer:
    """The MCP server over the engine that ``engine()`` returns (loaded once, by the caller)."""
    server = MCPServer(name="papersearch", instructions=INSTRUCTIONS)

    async def search_papers(**arguments: Any) -> Annotated[CallToolResult, SearchAnswer]:
        """Find papers that answer a question or match keywords, best first, each with the
        abstract sentence that matches best and a citation. Use this first for any question
        about the literature; a query that is a paper's title finds that paper first."""
        api = _api_names(arguments)
        page = _validated(PageRequest, detail=api.pop("detail", Detail.BRIEF))
        request = _validated(SearchRequest, **api)
        response = await _run(engine().search, request)
        answer = SearchAnswer.of(response, page.detail)
        text = render_hits(response.results, response.offset + 1, page.detail)
        return _result(answer, text + "\n" + next_page_line("search_papers", answer))

    # Its parameters are the request's own fields (the query, its size, page and mode, every
    # filter, the order), so a filter added to the API is a parameter here too; then the
    # answer's detail.
    search_papers.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            *_parameters(SearchRequest, SEARCH_PARAMETERS, defaults={"k": DEFAULT_K}),
            *_parameters(PageRequest, ("detail",), defaults={}),
        ],
        return_annotation=Annotated[CallToolResult, SearchAnswer],
    )
    _tool(server, "Search papers")(search_papers)

    async def find_similar_papers(
        title: str | None = None,
        paper_id: Annotated[
            str | None, Field(description="A paper id from a result, e.g. arxiv:2502.09375.")
        ] = None,
        detail: Detail = Detail.BRIEF,
        **options: Any,
    ) -> Annotated[CallToolResult, SimilarAnswer]:
        """Papers closest in content to one paper, never the paper itself. Use when the user
        names a paper ("papers like the Long-Term Interest Clock one"): pass its title as they
        remember it (or its arXiv id or URL), or a paper id (e.g. arxiv:2502.09375) from an
        earlier result."""
        if (title is None) == (paper_id is None):
            raise FailedToolCall("give exactly one of title or paper_id")
        detail = _validated(PageRequest, detail=detail).detail
        page = _validated(SimilarOptions, **options)
        if title is not None:
            lookup = _validated(TitleLookup, title=title, **page.model_dump(exclude_unset=True))
            by_title = await _run(engine().similar_to_title, lookup)
            paper: CitedPaper = by_title.matched
            answer = SimilarAnswer.of(paper, by_title.matched.match_score, by_title, detail)
            hits = by_title.results
        else:
            similar = partial(engine().similar_to_paper, offset=page.offset, filters=page)
            by_id = await _run(similar, paper_id, page.k)
            paper, hits = by_id.paper, by_id.results
            answer = SimilarAnswer.of(paper, None, by_id, detail)
        heading = f"Papers similar to: {paper_heading(paper)} ({paper.id})"
        text = [heading, render_hits(hits, page.offset + 1, detail)]
        return _result(answer, "\n".join([*text, next_page_line("find_similar_papers", answer)]))

    # The title as a title look-up takes it (the same bounds, checked by TitleLookup); the
    # page and the filters as every similar-papers answer takes them (SimilarOptions).
    similar = inspect.signature(find_similar_papers, eval_str=True)
    title = similar.parameters["title"].replace(
        annotation=_advertised(TitleLookup.model_fields["title"], optional=True)
    )
    detail = similar.parameters["detail"].replace(
        kind=inspect.Parameter.KEYWORD_ONLY,
        annotation=_advertised(PageRequest.model_fields["detail"]),
    )
    find_similar_papers.__signature__ = similar.replace(  # type: ignore[attr-defined]
        parameters=[
            title.replace(kind=inspect.Parameter.KEYWORD_ONLY),
            similar.parameters["paper_id"].replace(kind=inspect.Parameter.KEYWORD_ONLY),
            *_parameters(SimilarOptions, SIMILAR_PARAMETERS, defaults={"k": DEFAULT_K}),
            detail,
        ]
    )
    _tool(server, "Find similar papers")(find_similar_papers)

    async def recommend_papers(**arguments: Any) -> Annotated[CallToolResult, RecommendAnswer]:
        """More papers like a set of papers the user picked (positive ids from earlier
        results, 1-50), and unlike others (negative ids), never one of the examples. Use when
        the user says "more like these" or "like these but not that one"."""
        page = _validated(PageRequest, detail=arguments.pop("detail", Detail.BRIEF))
        request = _validated(RecommendRequest, **arguments)
        response = await _run(engine().recommend, request)
        answer = RecommendAnswer.of(response, page.detail)
        text = render_hits(response.results, response.offset + 1, page.detail)
        return _result(answer, text + "\n" + next_page_line("recommend_papers", answer))

    # Its parameters are the request's own fields (the examples, the page, every filter).
    recommend_papers.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            *_parameters(RecommendRequest, RECOMMEND_PARAMETERS, defaults={"k": DEFAULT_K}),
            *_parameters(PageRequest, ("detail",), defaults={}),
        ],
        return_annotation=Annotated[CallToolResult, RecommendAnswer],
    )
    _tool(server, "Recommend papers")(recommend_papers)

    async def get_papers(paper_ids: list[str]) -> Annotated[CallToolResult, PapersAnswer]:
        """The full records of several paper ids from earlier results, in one call (up to
        50): abstract, authors, date, link, one-line citation and BibTeX of each, in the order
        given. Use it after a brief search for the papers worth reading in full."""
        ids = _validated(PaperIds, paper_ids=paper_ids).paper_ids
        papers = await _run(engine().papers, ids)
        return _result(PapersAnswer(papers=papers), "\n".join(map(paper_markdown, papers)))

    _retyped(get_papers, {"paper_ids": _advertised(PaperIds.model_fields["paper_ids"])})
    _tool(server, "Get papers")(get_papers)

    @_tool(server, "Get a paper")
    async def get_paper(
        paper_id: Annotated[str, Field(description="A paper id, e.g. arxiv:2502.09375.")],
    ) -> Annotated[CallToolResult, CitedPaper]:
        """The full record of one paper id from an earlier result: abstract, authors, date,
        link, one-line citation and BibTeX."""
        paper = await _run(engine().paper, paper_id)
        return _result(paper, paper_markdown(paper))

    async def export_citations(
        paper_ids: list[str], format: ExportFormat = ExportFormat.BIBTEX
    ) -> Annotated[CallToolResult, ExportedFile]:
        """Paper ids from earlier results as one file a reference manager imports: BibTeX,
        RIS or CSL-JSON (Zotero, pandoc). The text is the file itself, ready to save; the
        structured result says its format and media type too."""
        request = _validated(ExportPapers, paper_ids=paper_ids, format=format)
        papers = await _run(engine().papers, request.paper_ids)
        exported = export(papers, request.format)
        return _result(exported, exported.content)

    _retyped(
        export_citations,
        {name: _advertised(ExportPapers.model_fields[name]) for name in ("paper_ids", "format")},
    )
    _tool(server, "Export citations")(export_citations)

    @server.resource(
        "paper://{paper_id}", name="paper", mime_type="text/markdown", title="A paper as Markdown"
    )
    async def paper_resource(paper_id: str) -> str:
        """One paper as Markdown: title, authors, date, link, citation, abstract."""
        try:
            return paper_markdown(await _run(engine().paper, paper_id))
        except FailedToolCall as exc:
            raise ResourceError(str(exc)) from exc

    return server


def _parameters(
    model: type[BaseModel], names: Sequence[str], defaults: dict[str, Any]
) -> list[inspect.Parameter]:
    """Tool parameters from a model's fields, renamed as ``TOOL_NAMES`` says, with the
    fields' types, bounds and descriptions (see ``_advertised``)."""
    parameters = []
    for name in names:
        field = model.model_fields[name]
        default = defaults.get(
            name,
            inspect.Parameter.empty
            if field.is_required()
            else field.get_default(call_default_factory=True),
        )
        parameters.append(
            inspect.Parameter(
                TOOL_NAMES.get(name, name),
                inspect.Parameter.KEYWORD_ONLY,
                annotation=_advertised(field),
                default=default,
            )
        )
    return parameters


def _advertised(field: FieldInfo, *, optional: bool = False) -> Any:
    """A tool parameter's type from a model's field. The tool's schema shows the field's
    bounds, but the SDK checks only the bare type: the bounds are checked by the model the
    tool validates its arguments into, whose refusal names the parameter as the tool spells
    it (the SDK's own would be pydantic's raw text)."""
    # Types made at run time from the field's: mypy reads these forms only statically.
    annotation: Any = Optional[field.annotation] if optional else field.annotation  # noqa: UP045
    extra: list[Any] = [Field(description=field.description)]
    if field.metadata:
        bounded: Any = Annotated[(annotation, *field.metadata)]
        extra.append(WithJsonSchema(TypeAdapter(bounded).json_schema()))
    return Annotated[(annotation, *extra)]


def _retyped(function: Callable[..., Any], annotations: Mapping[str, Any]) -> None:
    """Give some of a tool function's parameters the types a model's fields advertise (see
    ``_advertised``), keeping their names and defaults."""
    signature = inspect.signature(function, eval_str=True)
    function.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(annotation=annotations[p.name]) if p.name in annotations else p
            for p in signature.parameters.values()
        ]
    )


def _api_names(arguments: dict[str, Any]) -> dict[str, Any]:
    api_names = {tool: api for api, tool in TOOL_NAMES.items()}
    return {api_names.get(name, name): value for name, value in arguments.items()}


def _tool(server: MCPServer, title: str) -> Callable[[ToolFunction], ToolFunction]:
    """Register a read-only tool whose description is its docstring as one paragraph (an
    agent reads it as text, where source indentation is noise)."""

    def register(function: ToolFunction) -> ToolFunction:
        description = " ".join((function.__doc__ or "").split())
        server.add_tool(function, title=title, description=description, annotations=READ_ONLY)
        return function

    return register


async def _run(function: Callable[..., Any], *args: Any) -> Any:
    """Run engine work in a worker thread (it embeds queries), mapping its errors to tool
    errors the assistant can read."""
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except ServiceError as exc:
        raise FailedToolCall(str(exc) + _suggestions(exc)) from exc


def _suggestions(exc: ServiceError) -> str:
    suggestions = exc.suggestions if isinstance(exc, TitleNotFound) else []
    titles = [f"{s.title} ({s.id})" for s in suggestions]
    return ("; closest titles: " + "; ".join(titles)) if titles else ""


def _validated(model: type[ModelT], **values: Any) -> ModelT:
    try:
        return validated(model, values, spelled=TOOL_NAMES)
    except InvalidRequest as exc:
        raise FailedToolCall(exc.message) from None


def _result(data: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=data.model_dump(mode="json"),
    )


def render_hits(hits: list[SearchHit], start: int = 1, detail: Detail = Detail.FULL) -> str:
    """Numbered results an assistant can quote. In full detail ``[1] Zhu, Jiang, Chen et
    al. (2025). Title.``, then the id, url and evidence; in brief one line, ``[1] Zhu et al.
    (2025). Title. · id`` (the structured hits carry the rest: saying it twice would double
    the answer). A later page goes on numbering where the last stopped, so no two results
    share a number."""
    if not hits:
        return "No papers found."
    if detail is Detail.BRIEF:
        return "\n".join(
            f"[{number}] {short_reference(hit)} · {hit.id}"
            for number, hit in enumerate(hits, start)
        )
    lines = []
    for number, hit in enumerate(hits, start=start):
        lines.append(f"[{number}] {hit.citation}")
        lines.append("    " + " · ".join(filter(None, [f"id {hit.id}", hit.url])))
        if not hit.title:  # an untitled paper is recognised by its first words
            lines.append(f"    {paper_heading(hit)}")
        lines.extend(f'    evidence: "{highlight.text}"' for highlight in hit.highlights[:1])
    return "\n".join(lines)


def paper_markdown(paper: CitedPaper) -> str:
    lines = [f"# {paper_heading(paper)}", ""]
    if credit := author_credit(paper, first=None):
        lines.append(f"**Authors:** {credit}")
    if paper.date_label:
        lines.append(f"**Published:** {paper.date_label}")
    if paper.category:
        lines.append(f"**Category:** {paper.category}")
    lines.append(f"**Id:** {paper.id}")
    if paper.url:
        lines.append(f"**Link:** {paper.url}")
    lines += ["", f"**Cite as:** {paper.citation}", "", paper.abstract]
    if paper.bibtex:
        lines += ["", "```bibtex", paper.bibtex, "```"]
    return "\n".join(lines) + "\n"
