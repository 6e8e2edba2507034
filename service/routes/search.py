from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import EngineDep
from service.schemas import ErrorResponse, SearchRequest, SearchResponse

router = APIRouter(tags=["search"], responses={422: {"model": ErrorResponse}})


@router.get("/search", response_model=SearchResponse, summary="Search papers")
def search_get(params: Annotated[SearchRequest, Query()], engine: EngineDep) -> SearchResponse:
    """Papers ranked by how well their title and abstract answer ``q``: by meaning and by
    keywords (``mode``), within the filters, with the abstract sentences that match."""
    return engine.search(params)


@router.post("/search", response_model=SearchResponse, summary="Search papers (JSON body)")
def search_post(params: SearchRequest, engine: EngineDep) -> SearchResponse:
    """The same search with the parameters in a JSON body, for long queries and tool callers."""
    return engine.search(params)
