"""Errors the service answers with, each carrying its HTTP status and a stable code.

Routes raise these; one handler turns any of them into the same JSON shape
(``{"code", "message", ...}``), so clients and tests rely on a single error format.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_HTTP_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


class PaperNotFound(ServiceError):
    status_code = 404
    code = "paper_not_found"

    def __init__(self, paper_id: str) -> None:
        super().__init__(f"no paper with id {paper_id!r}")


class TitleNotFound(ServiceError):
    status_code = 404
    code = "title_not_found"

    def __init__(self, title: str, suggestions: list[dict[str, Any]]) -> None:
        super().__init__(
            f"no paper title matches {title!r} well enough; see 'suggestions' for the closest",
            suggestions=suggestions,
        )


class AdminDisabled(ServiceError):
    status_code = 403
    code = "admin_disabled"

    def __init__(self) -> None:
        super().__init__("admin endpoints are off: set PAPERSEARCH_API_KEY to turn them on")


class NotAuthenticated(ServiceError):
    status_code = 401
    code = "not_authenticated"

    def __init__(self) -> None:
        super().__init__("send the API key as `Authorization: Bearer <key>`")


class InvalidRequest(ServiceError):
    status_code = 422
    code = "invalid_request"


class QueryTooLong(InvalidRequest):
    code = "query_too_long"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"q: the query is {length} characters long, this service accepts at most {limit} "
            "(PAPERSEARCH_MAX_QUERY_CHARS)"
        )


def describe_validation_errors(
    errors: list[dict[str, Any]] | Any, drop: tuple[str, ...] = ("query", "body", "path")
) -> str:
    """``[{'loc': ('query', 'k'), 'msg': '…'}]`` -> ``"k: …"``: one line a person can act on.

    ``drop`` lists the location parts that name where in an HTTP request a field was, not
    the field (a tool's arguments have a parameter really called ``query``).
    """
    parts = []
    for error in errors:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in drop)
        # A validator's own message reads "Value error, <message>": the prefix says nothing.
        message = str(error.get("msg")).removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Starlette's own refusals (unknown path, wrong method, unreadable body) in the
        same shape as every other error."""
        code = _HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            {"code": code, "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors
        ]
        body = {
            "code": InvalidRequest.code,
            "message": describe_validation_errors(errors),
            "detail": detail,
        }
        return JSONResponse(body, status_code=422)
