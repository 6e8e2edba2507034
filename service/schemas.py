"""Request and response models: one family, shared by the HTTP API, the CLI's --json and OpenAPI."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from indexing.records import Paper

MAX_K = 100
MAX_OFFSET = 10_000


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain some non-space text")
    return text.strip()


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, max_length=1000, description="Natural-language query.")
    k: int = Field(10, ge=1, le=MAX_K, description="Number of results.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Results to skip, for paging.")

    _q_not_blank = field_validator("q")(_not_blank)


class TitleLookup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(
        min_length=3, max_length=500, description="A paper title as a person types it."
    )
    k: int = Field(10, ge=1, le=MAX_K, description="Number of similar papers.")

    _title_not_blank = field_validator("title")(_not_blank)


class SearchHit(Paper):
    score: float = Field(description="Cosine similarity to the query; higher is more similar.")


class SearchResponse(BaseModel):
    query: str
    k: int
    offset: int
    results: list[SearchHit]


class SimilarToPaperResponse(BaseModel):
    paper: Paper
    results: list[SearchHit] = Field(description="Nearest papers, never the paper itself.")


class TitleMatch(Paper):
    match_score: float = Field(description="How closely the typed title matched (0-100).")


class TitleSuggestion(BaseModel):
    id: str
    title: str
    match_score: float


class SimilarToTitleResponse(BaseModel):
    matched: TitleMatch
    results: list[SearchHit] = Field(description="Nearest papers, never the matched paper itself.")


class PaperPage(BaseModel):
    total: int
    limit: int
    offset: int
    papers: list[Paper]


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    status: str = "ready"
    papers: int
    model: str
    dimension: int
    format_version: int
    built_at: datetime
    corpus_checksum: str


class ErrorResponse(BaseModel):
    code: str
    message: str
    detail: list[dict] | None = None
    suggestions: list[TitleSuggestion] | None = None
