from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import EngineDep
from service.schemas import ErrorResponse, SearchRequest, SearchResponse

router = APIRouter(tags=["search"], responses={422: {"model": ErrorResponse}})


@router.get("/search", response_model=SearchResponse, summary="Semantic search")
def search_get(params: Annotated[SearchRequest, Query()], engine: EngineDep) -> SearchResponse:
    """Papers whose title and abstract are nearest in meaning to the query ``q``."""
    return engine.search(params.q, params.k, params.offset)


@router.post("/search", response_model=SearchResponse, summary="Semantic search (JSON body)")
def search_post(params: SearchRequest, engine: EngineDep) -> SearchResponse:
    """The same search with the parameters in a JSON body, for long queries and tool callers."""
    return engine.search(params.q, params.k, params.offset)
