from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from service.deps import EngineDep
from service.errors import error_responses
from service.schemas import (
    MAX_LIST_OFFSET,
    MAX_PAPER_ID_CHARS,
    CitedPaper,
    PaperPage,
    SimilarOptions,
    SimilarToPaperResponse,
)

router = APIRouter(
    prefix="/papers",
    tags=["papers"],
    responses=error_responses(404, 422, _404="No paper with that id"),
)

PaperIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_PAPER_ID_CHARS,
        description="Paper id, e.g. arxiv:2504.05217",
    ),
]


@router.get("", response_model=PaperPage, summary="List the corpus")
def list_papers(
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_LIST_OFFSET)] = 0,
) -> PaperPage:
    return engine.list_papers(limit, offset)


# Declared before the plain id route: ids may contain "/" (old arXiv ids such as hep-th/9901001).
@router.get(
    "/{paper_id:path}/similar",
    response_model=SimilarToPaperResponse,
    summary="Papers similar to a paper",
)
def similar_to_paper(
    paper_id: PaperIdPath, params: Annotated[SimilarOptions, Query()], engine: EngineDep
) -> SimilarToPaperResponse:
    """The papers most like this one, by meaning and by its key terms (README: search
    quality), within the filters; never the paper itself."""
    return engine.similar_to_paper(paper_id, params.k, offset=params.offset, filters=params)


@router.get("/{paper_id:path}", response_model=CitedPaper, summary="One paper")
def get_paper(paper_id: PaperIdPath, engine: EngineDep) -> CitedPaper:
    return engine.paper(paper_id)
