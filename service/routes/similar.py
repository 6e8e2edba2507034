from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import EngineDep
from service.errors import error_responses
from service.schemas import (
    RecommendRequest,
    RecommendResponse,
    SimilarTextRequest,
    SimilarToTextResponse,
    SimilarToTitleResponse,
    TitleLookup,
)

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
    """Find the paper a typed title means (case, punctuation, typos and prefixes forgiven;
    an arXiv id or URL names its paper exactly), then the papers most like it. When nothing
    matches well, a 404 lists the closest titles."""
    return engine.similar_to_title(params)


@router.post(
    "/similar",
    response_model=SimilarToTextResponse,
    summary="Papers similar to a text (an abstract, an introduction)",
    responses=error_responses(422),
)
def similar_to_text(params: SimilarTextRequest, engine: EngineDep) -> SimilarToTextResponse:
    """Papers like a pasted text: the whole text is embedded (not cut at the model's 256
    tokens) and its key terms are matched by BM25, fused as a search is. A corpus paper's
    own abstract finds that paper first."""
    return engine.similar_to_text(params)


@router.post(
    "/recommend",
    response_model=RecommendResponse,
    summary="Papers like a set of examples, and unlike others",
    responses=error_responses(404, 422, _404="An example id is not in the index"),
)
def recommend(params: RecommendRequest, engine: EngineDep) -> RecommendResponse:
    """More papers like the `positive` examples (1-50 ids) and unlike the `negative` ones,
    within the filters; the examples themselves are never returned."""
    return engine.recommend(params)
