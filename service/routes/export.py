"""``/export``: papers by id, or a page of search results, as a BibTeX, RIS or CSL-JSON file."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from service.deps import EngineDep
from service.errors import error_responses, validated
from service.export import (
    MEDIA_TYPES,
    ExportedFile,
    ExportFormat,
    ExportIds,
    ExportSearch,
    export,
    filename,
)

router = APIRouter(prefix="/export", tags=["export"])

# What each file is, as a schema: text, but CSL-JSON is JSON (an array of CSL items).
_FILE_SCHEMAS: dict[ExportFormat, dict[str, Any]] = {
    ExportFormat.CSL_JSON: {"type": "array", "items": {"type": "object"}},
}
FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, as an attachment named `papersearch.bib`, `.ris` or `.json`.",
        "content": {
            media_type: {"schema": _FILE_SCHEMAS.get(export_format, {"type": "string"})}
            for export_format, media_type in MEDIA_TYPES.items()
        },
    }
}


def _download(exported: ExportedFile) -> Response:
    return Response(
        exported.content,
        media_type=exported.media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename(exported.format)}"'},
    )


@router.get(
    "",
    summary="Export papers by id",
    response_class=Response,
    responses={**FILE_RESPONSE, **error_responses(404, 422, _404="An id names no paper")},
)
def export_ids(
    engine: EngineDep,
    ids: Annotated[
        str,
        Query(
            min_length=1,
            description="Paper ids separated by commas, at most 100; exported in this order.",
        ),
    ],
    format: Annotated[ExportFormat, Query(description="`bibtex`, `ris` or `csl-json`.")] = (
        ExportFormat.BIBTEX
    ),
) -> Response:
    """The papers as one file a reference manager imports; every unknown id is named in
    one 404."""
    request = validated(ExportIds, {"ids": [i.strip() for i in ids.split(",")], "format": format})
    return _download(export(engine.papers(request.ids), request.format))


@router.post(
    "",
    summary="Export a page of search results",
    response_class=Response,
    responses={**FILE_RESPONSE, **error_responses(422)},
)
async def export_search(params: ExportSearch, engine: EngineDep) -> Response:
    """The page a search with these fields answers (its ``k`` from its ``offset``), as one
    file."""
    response = await engine.search_async(params.search_request())
    return _download(export(response.results, params.format))
