from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from service.deps import EngineDep
from service.errors import error_responses
from service.schemas import SearchRequest, SearchResponse

router = APIRouter(tags=["search"], responses=error_responses(422))


def _json(response: SearchResponse) -> Response:
    """Serialised once by pydantic-core: FastAPI would validate the model again first, a
    measurable part of a millisecond on the busiest route."""
    return Response(response.model_dump_json(), media_type="application/json")


@router.get("/search", response_model=SearchResponse, summary="Search papers")
async def search_get(params: Annotated[SearchRequest, Query()], engine: EngineDep) -> Response:
    """Papers ranked by how well their title and abstract answer ``q``: by meaning and by
    keywords (``mode``), within the filters, with the abstract sentences that match."""
    return _json(await engine.search_async(params))


@router.post("/search", response_model=SearchResponse, summary="Search papers (JSON body)")
async def search_post(params: SearchRequest, engine: EngineDep) -> Response:
    """The same search with the parameters in a JSON body, for long queries and tool callers."""
    return _json(await engine.search_async(params))
