"""Changing the served index over HTTP: add or replace papers, remove them, reload.

Every route needs the API key (``PAPERSEARCH_API_KEY``) as a bearer token; without a key
configured they are off. Changes go through the same incremental update as the CLI and are
served as soon as the response returns.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from indexing.build import BuildError
from indexing.parsers.jsonl import paper_from_object
from indexing.records import Paper
from indexing.update import UpdateReport, add_papers, remove_papers
from models import Embedder, load_embedder
from service.access import key_matches
from service.deps import EngineDep, ReloaderDep, SettingsDep, get_engine
from service.errors import (
    AdminDisabled,
    InvalidRequest,
    NotAuthenticated,
    PaperNotFound,
    ShardedIndexReadOnly,
    error_responses,
)
from service.schemas import RequestModel
from service.search import SearchEngine

_bearer = HTTPBearer(auto_error=False)


def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected = settings.api_key
    if expected is None:
        raise AdminDisabled()
    if not key_matches(credentials.credentials if credentials else "", expected):
        raise NotAuthenticated()


router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401, 403),
)


class PapersToAdd(RequestModel):
    papers: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=1000,
        description="Paper objects as in a JSONL corpus: {id, title, abstract, authors, ...}, "
        "arXiv metadata or BEIR ({_id, title, text}). An id already indexed is replaced. "
        "Larger batches: `papersearch add`, or several requests.",
    )


class UpdateResult(BaseModel):
    added: int
    replaced: int
    removed: int
    embedded: int
    papers: int


def _result(report: UpdateReport) -> UpdateResult:
    return UpdateResult(
        added=report.added,
        replaced=report.replaced,
        removed=report.removed,
        embedded=report.embedded,
        papers=report.papers,
    )


@router.post(
    "/papers",
    response_model=UpdateResult,
    summary="Add or replace papers",
    responses=error_responses(409, 422),
)
async def add(
    body: PapersToAdd, engine: EngineDep, settings: SettingsDep, reloader: ReloaderDep
) -> UpdateResult:
    _refuse_if_sharded(engine)
    papers: list[Paper] = []
    problems: list[str] = []
    for number, obj in enumerate(body.papers):
        try:
            papers.append(paper_from_object(obj, source="admin"))
        except (ValueError, TypeError) as exc:
            problems.append(f"papers[{number}]: {str(exc).splitlines()[0]}")
    if problems:
        raise InvalidRequest("; ".join(problems[:10]), errors=problems)

    def load_model(model: str, backend: str) -> Embedder:  # the served model when it fits
        if (model, backend) == (engine.embedder.name, engine.embedder.backend):
            return engine.embedder
        return load_embedder(model, backend)

    try:
        report = await run_in_threadpool(
            add_papers,
            papers,
            settings.index_dir,
            cache_dir=settings.cache_dir,
            load_model=load_model,
            batch_size=settings.batch_size,
            merge=False,
        )
    except BuildError as exc:
        raise InvalidRequest(str(exc)) from None
    await reloader.reload_if_changed()
    reloader.merge_later(settings.index_dir)
    return _result(report)


@router.delete(
    "/papers/{paper_id:path}",
    response_model=UpdateResult,
    summary="Remove a paper",
    responses=error_responses(404, 409, 422, _404="No paper with that id"),
)
async def remove(
    paper_id: str, engine: EngineDep, settings: SettingsDep, reloader: ReloaderDep
) -> UpdateResult:
    _refuse_if_sharded(engine)
    try:
        report = await run_in_threadpool(remove_papers, [paper_id], settings.index_dir, merge=False)
    except BuildError as exc:
        raise InvalidRequest(str(exc)) from None
    if not report.removed:
        raise PaperNotFound(paper_id)
    await reloader.reload_if_changed()
    reloader.merge_later(settings.index_dir)
    return _result(report)


def _refuse_if_sharded(engine: SearchEngine) -> None:
    """An update changes the index's folder; a sharded service serves shards cut from one
    of its builds, which the update would not reach, so its success would be a lie."""
    if engine.index.remote:
        raise ShardedIndexReadOnly()


class ReloadResult(BaseModel):
    reloaded: bool
    build: str


@router.post("/reload", response_model=ReloadResult, summary="Serve the index's newest build")
async def reload(reloader: ReloaderDep, request: Request) -> ReloadResult:
    reloaded = await reloader.reload_if_changed()
    # The engine now serving: the one this request started with may have been replaced.
    engine = await get_engine(request)
    return ReloadResult(reloaded=reloaded, build=engine.index.build_dir.name)
