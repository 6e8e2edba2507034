"""The corpus as a whole: what its filters can choose from, and the map of its papers."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.deps import EngineDep
from service.schemas import CorpusMap, Facets

router = APIRouter(tags=["corpus"])


@router.get("/facets", response_model=Facets, summary="Values the search filters can take")
def facets(engine: EngineDep) -> Facets:
    """Categories with their paper counts, the range of years, and how many papers have
    code: what a search form offers in its filters."""
    return engine.overview.facets


@router.get(
    "/map",
    response_model=CorpusMap,
    summary="Every paper as a point on a 2-D map",
    responses={200: {"content": {"application/json": {}}}},
)
def corpus_map(request: Request, engine: EngineDep) -> Response:
    """A projection of the embeddings to 2-D computed at index time (t-SNE): papers on
    similar subjects lie close together. Columns, one entry per paper; gzip-compressed for
    clients that accept it, the answer being megabytes at tens of thousands of papers."""
    overview = engine.overview
    headers = {"Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(overview.map_gzip, media_type="application/json", headers=headers)
    return Response(overview.map_json, media_type="application/json", headers=headers)
