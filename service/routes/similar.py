from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import EngineDep
from service.errors import error_responses
from service.schemas import SimilarToTitleResponse, TitleLookup

router = APIRouter(tags=["similar"])


@router.get(
    "/similar",
    response_model=SimilarToTitleResponse,
    summary="Papers similar to a paper named by its title",
    responses=error_responses(404, 422, _404="No title matched; see `suggestions`"),
)
def similar_to_title(
    params: Annotated[TitleLookup, Query()], engine: EngineDep
) -> SimilarToTitleResponse:
    """Find the paper a typed title means (case, punctuation, typos and prefixes forgiven),
    then its nearest papers. When nothing matches well, a 404 lists the closest titles."""
    return engine.similar_to_title(params.title, params.k)
