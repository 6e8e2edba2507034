"""Request and response models: one family, shared by the HTTP API, the CLI's --json and OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    field_validator,
    model_validator,
)

from indexing.records import Paper
from service.citations import (
    author_credit,
    bibtex,
    date_label,
    one_line_citation,
    paper_label,
    paper_url,
)
from service.filters import Choice, FilterField, SearchFilters, bounds_of, filter_fields
from service.query_syntax import parse_query
from service.ranking import MODE_LABELS, RECENCY_LABELS, SORT_LABELS, SearchMode, SortOrder
from service.typed_text import clean_text

MAX_K = 100
# The longest paper id a request may name (ids are slugs, arXiv ids and DOIs: far shorter).
MAX_PAPER_ID_CHARS = 300
# A paper id as requests give it.
PaperId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PAPER_ID_CHARS)]
# The longest half-life a recency boost takes (a century: anything longer boosts nothing).
MAX_RECENCY_DAYS = 36_500
# Examples one recommendation takes, of each kind.
MAX_EXAMPLES = 50
# Schema ceiling of a pasted text; the service's own limit is a setting (max_text_chars).
MAX_TEXT_CHARS = 200_000
MAX_OFFSET = 10_000
# Paging through the corpus itself: past any corpus, and within SQLite's 64-bit integers.
MAX_LIST_OFFSET = 1_000_000_000


# Query-length ceiling of the schema; the service's own, lower limit is a setting
# (PAPERSEARCH_MAX_QUERY_CHARS), checked by the engine so the HTTP API, MCP and the CLI share it.
MAX_QUERY_CHARS = 100_000


class RequestModel(BaseModel):
    """The base of every model a request is read into (a JSON body or query parameters):
    an unknown field is refused with a 422 naming it, not silently ignored, so a misspelt
    parameter (`yaer_from`) cannot look like a filter that matched everything."""

    model_config = ConfigDict(extra="forbid")


class SearchRequest(SearchFilters, RequestModel):
    """A search: the query, its page and ranking, and the filters it inherits."""

    q: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="A question, keywords or a paper's title, in plain words; at most 1,000 "
        "characters unless the service is configured otherwise (`PAPERSEARCH_MAX_QUERY_CHARS`). "
        'In `lexical` and `hybrid` modes, "a quoted phrase" must appear in the title or '
        'abstract and -word (or -"a phrase") must not.',
    )
    k: int = Field(10, ge=1, le=MAX_K, description="Number of results.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Results to skip, for paging.")
    mode: SearchMode | None = Field(
        None,
        description="`hybrid` (meaning and keywords), `dense` (meaning only) or `lexical` "
        "(BM25 keywords only). Default: the service's configured mode, `hybrid` unless changed.",
    )
    sort: SortOrder = Field(
        SortOrder.RELEVANCE,
        description="`relevance`, or `date`: the most relevant matches, newest first.",
    )
    recency: int | None = Field(
        None,
        ge=1,
        le=MAX_RECENCY_DAYS,
        description="Favour recent papers: a half-life in days. The relevance is blended with "
        "an exponential decay of each paper's age (a paper that old counts half as recent); "
        "undated papers get no boost. Unlike `sort=date`, relevance still counts most.",
    )
    highlight: bool = Field(True, description="Add the best-matching abstract sentences.")

    _q_clean = field_validator("q")(clean_text)

    @field_validator("q")
    @classmethod
    def _operators_well_formed(cls, q: str) -> str:
        parse_query(q)  # raises with what to fix; the engine reads the operators itself
        return q


class SimilarOptions(SearchFilters, RequestModel):
    """How much of a similar-papers answer to send (``k`` from ``offset``), and the filters
    its papers must pass."""

    k: int = Field(10, ge=1, le=MAX_K, description="Number of similar papers.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Results to skip, for paging.")


class TitleLookup(SimilarOptions):
    title: str = Field(
        min_length=3,
        max_length=500,
        description="A paper title as a person types it, or its arXiv id or URL.",
    )

    _title_clean = field_validator("title")(clean_text)


class SimilarTextRequest(SimilarOptions):
    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description="An abstract or a draft's introduction, embedded whole; at most 20,000 "
        "characters unless the service is configured otherwise (`PAPERSEARCH_MAX_TEXT_CHARS`).",
    )

    _text_clean = field_validator("text")(clean_text)


class RecommendRequest(SimilarOptions):
    positive: list[str] = Field(
        min_length=1, max_length=MAX_EXAMPLES, description="Ids of papers to find more like."
    )
    negative: list[str] = Field(
        default_factory=list,
        max_length=MAX_EXAMPLES,
        description="Ids of papers the results should be unlike.",
    )

    @model_validator(mode="after")
    def _examples_apart(self) -> RecommendRequest:
        # An example given twice counts once (it would otherwise weigh double).
        self.positive = list(dict.fromkeys(self.positive))
        self.negative = list(dict.fromkeys(self.negative))
        both = sorted(set(self.positive) & set(self.negative))
        if both:
            raise ValueError(f"ids both positive and negative: {', '.join(both)}")
        return self


class CitedPaper(Paper):
    """A paper as the API returns it: the record plus what is needed to cite it."""

    # The citation fields are computed; reading a returned paper back must accept them.
    model_config = ConfigDict(extra="ignore")

    @computed_field(description="The arXiv abstract page, where an arXiv id is known.")
    @property
    def url(self) -> str | None:
        return paper_url(self)

    @computed_field(
        description="What names the paper in a list: its title; where none, `arXiv:<id>` "
        "or the paper id."
    )
    @property
    def label(self) -> str:
        return paper_label(self.title, self.arxiv_id, self.id)

    @computed_field(
        description='The first three authors, with "et al." where there are more or the '
        "source cut the list; null where none is known."
    )
    @property
    def credit(self) -> str | None:
        return author_credit(self)

    @computed_field(
        description='The date as a person reads it ("3 Jan 2025"), marked "(date inferred)" '
        "where part of it is not the source's; null when undated."
    )
    @property
    def date_label(self) -> str | None:
        return date_label(self)

    @computed_field(description="A one-line reference: authors (year). Title. arXiv id.")
    @property
    def citation(self) -> str:
        return one_line_citation(self)

    @computed_field(description="A BibTeX entry, where title, year and authors or arXiv id exist.")
    @property
    def bibtex(self) -> str | None:
        return bibtex(self)

    @classmethod
    def of(cls, paper: Paper) -> CitedPaper:
        return cls.model_validate(paper.model_dump())


class TermSpan(BaseModel):
    """Where a matched word is. Offsets here and in ``Highlight`` count Unicode code points,
    as Python indexes a string (JavaScript counts UTF-16 units: slice ``Array.from(text)``)."""

    start: int = Field(
        description="Offset of the word's first character in the highlight's `text`, in "
        "code points."
    )
    end: int = Field(description="Offset just past its last character: text[start:end].")


class Highlight(BaseModel):
    text: str = Field(description="A sentence of the abstract.")
    start: int = Field(description="Offset of its first character in `abstract`.")
    end: int = Field(description="Offset just past its last character: abstract[start:end].")
    terms: list[TermSpan] = Field(
        default_factory=list,
        description="The words of `text` that match a query term (stemmed as the ranking "
        "stems them), in order: what a client marks.",
    )


class SearchHit(CitedPaper):
    score: float = Field(
        description="Relevance, higher is better: cosine similarity in `dense` mode, BM25 in "
        "`lexical`, a 0-1 blend of both in `hybrid`."
    )
    highlights: list[Highlight] = Field(
        default_factory=list,
        description="Up to two abstract sentences sharing the most query terms; empty when "
        "none does or when `highlight` is false.",
    )


class SearchResponse(BaseModel):
    query: str
    mode: SearchMode
    sort: SortOrder
    k: int
    offset: int
    total: int = Field(
        description="Papers this query can page through: those passing the filters (with a "
        "query term, in `lexical` mode); with `sort=date`, at most the date-sorted pool."
    )
    results: list[SearchHit]


class SimilarPage(BaseModel):
    mode: SearchMode = Field(
        description="How these were ranked (`PAPERSEARCH_SIMILAR_MODE`): `hybrid`, scores a 0-1 "
        "blend of the vector's cosine and the key terms' BM25; `dense`, scores the cosine."
    )
    offset: int
    total: int = Field(
        description="Papers these results can page through (those passing the filters)."
    )
    results: list[SearchHit] = Field(description="Most similar first, never an example itself.")


class SimilarToPaperResponse(SimilarPage):
    paper: CitedPaper


class TitleMatch(CitedPaper):
    match_score: float = Field(description="How closely the typed title matched (0-100).")


class TitleSuggestion(BaseModel):
    id: str
    title: str
    match_score: float


class SimilarToTitleResponse(SimilarPage):
    matched: TitleMatch


class SimilarToTextResponse(SimilarPage):
    key_terms: list[str] = Field(description="The text's terms that BM25 matched papers on.")


class RecommendResponse(SimilarPage):
    positive: list[str]
    negative: list[str]


class PaperPage(BaseModel):
    total: int
    limit: int
    offset: int
    papers: list[CitedPaper]


class CategoryCount(BaseModel):
    name: str = Field(description="As the corpus writes it; the `category` filter takes it.")
    papers: int


class Facets(BaseModel):
    """What the filters can choose from, so a client offers only values that match."""

    papers: int
    categories: list[CategoryCount] = Field(description="Most papers first.")
    year_min: int | None = Field(description="Earliest year of a dated paper; null if none.")
    year_max: int | None
    with_code: int = Field(description="Papers with code.")


class CorpusMap(BaseModel):
    """Papers as points of the 2-D map computed at index time, in columns (one entry per
    shown paper in each list): a fraction of the size of one object per paper. A corpus of
    more than the map's limit is shown as a sample spread over the whole map (``shown`` of
    its ``papers``), the same sample on every request."""

    papers: int = Field(description="Papers in the corpus.")
    shown: int = Field(description="Papers in this map: all of them, or a sample.")
    categories: list[str] = Field(description="Category names, most papers first.")
    ids: list[str]
    labels: list[str] = Field(description="Title; where none, `arXiv:<id>` or the paper id.")
    category: list[int] = Field(description="Index into `categories`; -1 for none.")
    x: list[float] = Field(description="Map coordinates, within [-1, 1] for fitted papers.")
    y: list[float]


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    status: str = "ready"
    papers: int
    model: str
    backend: str = Field(description="How the model runs: `onnx-int8` or `torch`.")
    dimension: int
    format_version: int
    segments: int = Field(
        description="Segments of the served index: one after a build or a merge, more after "
        "updates (README: adding and removing papers)."
    )
    built_at: datetime
    corpus_checksum: str


class ValidationIssue(BaseModel):
    """One thing a request got wrong, as the validation reports it."""

    loc: list[str | int] = Field(description='Where: `["query", "k"]`, `["body", "papers"]`.')
    msg: str
    type: str = Field(description="The kind of problem, e.g. `less_than_equal`.")


class ErrorResponse(BaseModel):
    """Every error answer, whichever layer refused the request (``service/errors.py``
    renders them all from the error's own fields); a field beyond ``code`` and ``message``
    is sent only where it applies. Extra keys are refused so this stays the whole shape."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Stable, e.g. `invalid_request`, `paper_not_found`.")
    message: str = Field(description="What went wrong and what to do, for a person.")
    detail: list[ValidationIssue] | None = Field(
        None, description="Each invalid parameter (422 `invalid_request`)."
    )
    errors: list[str] | None = Field(
        None, description="Each paper that could not be read (`POST /admin/papers`)."
    )
    suggestions: list[TitleSuggestion] | None = Field(
        None, description="The closest titles (404 `title_not_found`)."
    )
    retry_after: int | None = Field(
        None, description="Seconds until a request is counted again (429 `rate_limited`)."
    )


class SearchForm(BaseModel):
    """What a search form needs to know of this service, so that a page copies none of it:
    its limits (some are settings an operator changes), its choices and their labels, and
    every filter."""

    max_query_chars: int = Field(description="Longest query accepted (a setting).")
    max_text_chars: int = Field(description="Longest text `POST /similar` takes (a setting).")
    max_k: int = Field(description="Most results one request returns.")
    max_offset: int = Field(description="Deepest `offset` a search pages to.")
    title_min_chars: int = Field(description="Shortest title `/similar` looks up.")
    title_max_chars: int
    default_mode: SearchMode = Field(description="The mode of a search that names none.")
    default_sort: SortOrder = Field(description="The order of a search that names none.")
    modes: list[Choice]
    sorts: list[Choice]
    recency: list[Choice] = Field(description="Recency boosts to offer: half-lives in days.")
    export_formats: list[Choice] = Field(description="The file formats `/export` writes.")
    filters: list[FilterField] = Field(description="The filters, in the order a form shows them.")

    @classmethod
    def of(
        cls,
        max_query_chars: int,
        max_text_chars: int,
        default_mode: SearchMode,
        export_formats: list[Choice],
    ) -> SearchForm:
        title = bounds_of(TitleLookup.model_fields["title"])
        return cls(
            max_query_chars=max_query_chars,
            max_text_chars=max_text_chars,
            max_k=MAX_K,
            max_offset=MAX_OFFSET,
            title_min_chars=title["min_length"],
            title_max_chars=title["max_length"],
            default_mode=default_mode,
            default_sort=SearchRequest.model_fields["sort"].default,
            modes=[Choice(value=mode, label=label) for mode, label in MODE_LABELS.items()],
            sorts=[Choice(value=order, label=label) for order, label in SORT_LABELS.items()],
            recency=[Choice(value="", label="No recency boost")]
            + [Choice(value=str(days), label=label) for days, label in RECENCY_LABELS.items()],
            filters=filter_fields(),
            export_formats=export_formats,
        )
