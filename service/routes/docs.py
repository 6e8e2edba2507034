"""The API's documentation page, ``/docs`` (Swagger UI), with its script, styles and icon
served by this app: the service fetches nothing from another host at run time, its
documentation included.

FastAPI's own recipe for self-hosted docs assets: the app is built with ``docs_url=None``, and
this route calls ``get_swagger_ui_html`` with local URLs. The files are those the
``fastapi-offline`` package ships (Swagger UI 5), served under ``/static/docs/``: like the
search page's own files, they hold no data and stay open where an API key is set. ReDoc
(``/redoc``) is off: its page loads its logo from its vendor's CDN whatever it is given.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
ASSETS_PATH = "/static/docs"
SWAGGER_JS = f"{ASSETS_PATH}/swagger-ui-bundle.js"
SWAGGER_CSS = f"{ASSETS_PATH}/swagger-ui.css"
FAVICON = f"{ASSETS_PATH}/favicon.png"

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    app, root = request.app, _root(request)
    redirect = app.swagger_ui_oauth2_redirect_url
    return get_swagger_ui_html(
        openapi_url=root + app.openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=root + SWAGGER_JS,
        swagger_css_url=root + SWAGGER_CSS,
        swagger_favicon_url=root + FAVICON,
        oauth2_redirect_url=root + redirect if redirect else None,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


@router.get("/docs/oauth2-redirect", response_class=HTMLResponse)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


def mount_docs(app: FastAPI) -> None:
    """The page and its files; before the search page's ``/static`` mount, which would
    otherwise answer ``/static/docs/…`` itself (with 404)."""
    app.include_router(router)
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
