"""The corpus as a whole: what its filters can choose from, and the map of its papers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from service.deps import EngineDep
from service.errors import error_responses, validated
from service.schemas import MAX_K, CorpusMap, Facets, PaperId

router = APIRouter(tags=["corpus"])


class MapIds(BaseModel):
    """Papers to place on the map by id: a sampled map may lack the results being shown."""

    ids: list[PaperId] = Field(min_length=1, max_length=MAX_K)


@router.get("/facets", response_model=Facets, summary="Values the search filters can take")
def facets(engine: EngineDep) -> Facets:
    """Categories with their paper counts, the range of years, and how many papers have
    code: what a search form offers in its filters."""
    return engine.overview.facets


@router.get(
    "/map",
    response_model=CorpusMap,
    summary="Papers as points on a 2-D map",
    responses={200: {"content": {"application/json": {}}}, **error_responses(422)},
)
def corpus_map(
    request: Request,
    engine: EngineDep,
    ids: Annotated[
        str | None,
        Query(
            min_length=1,
            description="Only these papers (ids separated by commas, at most 100; unknown "
            "ones left out): where results lie on a map that shows a sample.",
        ),
    ] = None,
) -> Response:
    """A projection of the embeddings to 2-D computed at index time (t-SNE): papers on
    similar subjects lie close together. Columns, one entry per shown paper: every paper,
    or a fixed sample spread over the map where the corpus has more than the map shows;
    gzip-compressed for clients that accept it, the answer being megabytes."""
    overview = engine.overview
    if ids is not None:
        wanted = validated(MapIds, {"ids": [i.strip() for i in ids.split(",")]})
        answer = overview.map_of(engine.index, wanted.ids)
        return Response(answer.model_dump_json(), media_type="application/json")
    headers = {"Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(overview.map_gzip, media_type="application/json", headers=headers)
    return Response(overview.map_json, media_type="application/json", headers=headers)
