"""The search page: static files served by the API's own app, no build step.

``/`` and ``/paper/{id}`` answer the same page, which reads the address and calls the JSON
API itself; they hold no data, so they stay open where an API key is set (the page asks for
the key when the API refuses it). A paper page for an id the index lacks answers 404, except
where a key is set: there the status must not tell a caller without it which ids exist.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.deps import EngineDep, SettingsDep

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Paths the API key does not guard: the page and its assets, never any data.
UI_PATHS = frozenset({"/"})
UI_PREFIXES = ("/paper/", "/static/")

router = APIRouter(include_in_schema=False)


def _page() -> HTMLResponse:
    # Read per request: a small file in the page cache, and an edited page shows on reload.
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/", response_class=HTMLResponse)
def search_page() -> HTMLResponse:
    return _page()


@router.get("/paper/{paper_id:path}", response_class=HTMLResponse)
def paper_page(paper_id: str, engine: EngineDep, settings: SettingsDep) -> HTMLResponse:
    page = _page()
    guarded = settings.api_key is not None
    if not guarded and engine.index.row_of(paper_id) is None:
        page.status_code = 404  # the page itself says so, and suggests a search
    return page


def mount_ui(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
