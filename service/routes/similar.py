from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import EngineDep
from service.schemas import ErrorResponse, SimilarToTitleResponse, TitleLookup

router = APIRouter(tags=["similar"])


@router.get(
    "/similar",
    response_model=SimilarToTitleResponse,
    summary="Papers similar to a paper named by its title",
    responses={
        404: {"model": ErrorResponse, "description": "No title matched; see suggestions"},
        422: {"model": ErrorResponse},
    },
)
def similar_to_title(
    params: Annotated[TitleLookup, Query()], engine: EngineDep
) -> SimilarToTitleResponse:
    """Find the paper a typed title means (case, punctuation, typos and prefixes forgiven),
    then its nearest papers. When nothing matches well, a 404 lists the closest titles."""
    return engine.similar_to_title(params.title, params.k)
