"""Errors the service answers with, and the one function that renders any of them.

Every refusal reaches a client as the same JSON, declared as ``ErrorResponse``: an error
raised in a route, one a middleware answers before the routes (401, 413, 429), one the web
framework raises itself (unknown path, wrong method, unreadable body), the HTTP server's own
400 (``service/http_server.py``), and the 500 of a failure nobody expected. They all go
through ``error_response``, which builds the body from the error's typed fields, so no path
can send a field the schema does not declare, or leave one out.

Only ``ServiceError`` is rendered with its own message: the errors of the layers below
(``IndexUnusable``, ``BuildError``) name server paths, so they reach a client as the 500,
or as the ``ServiceError`` a route translates them into.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from indexing.errors import PapersearchError
from service.schemas import ErrorResponse, TitleSuggestion, ValidationIssue

ModelT = TypeVar("ModelT", bound=BaseModel)

# ErrorResponse's fields beyond code and message: an error sends each one it has a value for.
_OPTIONAL_FIELDS = tuple(
    name for name in ErrorResponse.model_fields if name not in {"code", "message"}
)


class ServiceError(PapersearchError):
    """An error meant for the client: its status, code and message are what it is told."""


class InternalError(ServiceError):
    """A failure nobody expected: the client gets only the request id, the log the traceback."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"internal error; quote request id {request_id} when reporting it")


class PaperNotFound(ServiceError):
    status = 404
    code = "paper_not_found"

    def __init__(self, *paper_ids: str) -> None:
        super().__init__(f"no paper with id {', '.join(map(repr, paper_ids))}")


class TitleNotFound(ServiceError):
    status = 404
    code = "title_not_found"

    def __init__(self, title: str, suggestions: Sequence[TitleSuggestion]) -> None:
        super().__init__(
            f"no paper title matches {title!r} well enough; see 'suggestions' for the closest"
        )
        self.suggestions = list(suggestions)


class AdminDisabled(ServiceError):
    status = 403
    code = "admin_disabled"

    def __init__(self) -> None:
        super().__init__("admin endpoints are off: set PAPERSEARCH_API_KEY to turn them on")


class ShardUnavailable(ServiceError):
    """A shard of a sharded service failed or did not answer in time: nothing can be
    answered exactly without it until it is back (Ray Serve restarts a failed one)."""

    status = 503
    code = "shard_unavailable"

    def __init__(self, number: int, count: int, reason: str) -> None:
        super().__init__(f"shard {number} of {count} is unavailable ({reason}); try again later")


class ShardedIndexReadOnly(ServiceError):
    """A sharded service serves shards cut from one build: an update of the index would
    not reach them, so it is refused rather than reported done."""

    status = 409
    code = "sharded_index_read_only"

    def __init__(self) -> None:
        super().__init__(
            "this service serves the index in shards, which an update would not reach: update "
            "the index with `papersearch add` or `papersearch remove`, cut it again with "
            "`papersearch shard`, and deploy the service again"
        )


class NotAuthenticated(ServiceError):
    status = 401
    code = "not_authenticated"

    def __init__(self) -> None:
        super().__init__("send the API key as `Authorization: Bearer <key>`")

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}  # what a 401 must name (RFC 9110)


class InvalidRequest(ServiceError):
    status = 422
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        detail: Sequence[ValidationIssue] | None = None,
        errors: Sequence[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.detail = None if detail is None else list(detail)
        self.errors = None if errors is None else list(errors)


class QueryTooLong(InvalidRequest):
    code = "query_too_long"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"q: the query is {length} characters long, this service accepts at most {limit} "
            "(PAPERSEARCH_MAX_QUERY_CHARS)"
        )


class TextTooLong(InvalidRequest):
    code = "text_too_long"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"text: the text is {length} characters long, this service accepts at most {limit} "
            "(PAPERSEARCH_MAX_TEXT_CHARS)"
        )


# The web framework's and the HTTP server's own refusals, in the same shape.


class BadRequest(ServiceError):
    """A request that could not be read: a body that is not JSON, or (from the HTTP server)
    a URL or header over its 64 KiB limit, or a malformed request line."""

    status = 400
    code = "bad_request"


class RouteNotFound(ServiceError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ServiceError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allow: Sequence[str]) -> None:
        super().__init__(message)
        self.allow = sorted(allow)

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allow)} if self.allow else {}


class HTTPRefusal(ServiceError):
    """Any other status the framework answers with by itself."""

    code = "http_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_body(error: PapersearchError) -> ErrorResponse:
    """The one JSON shape, from the error's fields: code, message, and each of
    ``ErrorResponse``'s other fields the error has a value for."""
    sent = {name: getattr(error, name, None) for name in _OPTIONAL_FIELDS}
    return ErrorResponse(
        code=error.code,
        message=error.message,
        **{name: value for name, value in sent.items() if value is not None},
    )


def error_response(error: PapersearchError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer to ``error``: its status, its body, the headers it names (``Retry-After``,
    ``Allow``) and any the caller adds."""
    body = error_body(error).model_dump(mode="json", exclude_unset=True)
    return JSONResponse(
        body, status_code=error.status, headers={**error.headers(), **(headers or {})}
    )


# Declared on every route: any request can be unreadable (the HTTP server's 400), too large
# (the body limit checks every request) or fail unexpectedly.
_DESCRIPTIONS = {
    400: "The request could not be read: a body that is not JSON, a URL or header over "
    "64 KiB (send a long query as `POST /search`)",
    401: "The API key is missing or wrong",
    403: "Admin endpoints are off: no API key is configured",
    404: "Not found",
    409: "The service serves the index in shards: update the index, cut it and deploy again",
    413: "The body is larger than `PAPERSEARCH_MAX_REQUEST_BYTES`",
    422: "A parameter is invalid; `message` says which, `detail` lists each",
    429: "Over the rate limit; retry after `retry_after` seconds",
    500: "An unexpected failure; the message quotes the request id",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries: each status answered with ``ErrorResponse``.
    ``descriptions`` (``_404="…"``) replaces the general wording for one route."""
    return {
        status: {
            "model": ErrorResponse,
            "description": descriptions.get(f"_{status}", _DESCRIPTIONS[status]),
        }
        for status in statuses
    }


EVERY_ROUTE = error_responses(400, 413, 500)


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


def validated(
    model: type[ModelT], values: Mapping[str, Any], *, spelled: Mapping[str, str] | None = None
) -> ModelT:
    """``model(**values)``, or InvalidRequest naming each bad value as the caller spells its
    field (``spelled``: an assistant tool's ``query`` is the API's ``q``). Shared by the CLI
    and the tools, so a refusal reads the same wherever it is made."""
    try:
        return model(**values)
    except ValidationError as exc:
        names = spelled or {}
        errors = [
            {**error, "loc": tuple(names.get(str(part), part) for part in error["loc"])}
            for error in exc.errors()
        ]
        raise InvalidRequest(describe_validation_errors(errors, drop=())) from None


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> set[str]:
    """Every method the request's path answers to, found by asking the routes as the
    router would. The router's own 405 names only the first route whose path matched, so
    ``/search`` (a GET route and a POST route) would otherwise advertise GET alone. Mounts
    (the static files) match any method and answer their own 405, so they are left out."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    return {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }


def install_error_handlers(app: FastAPI) -> None:
    # Any of the project's errors, the index's included: an index that became unusable under
    # a request is a 503 saying so, not an anonymous 500.
    @app.exception_handler(PapersearchError)
    async def _project_error(_: Request, exc: PapersearchError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        error: ServiceError
        if exc.status_code == 400:
            error = BadRequest(message)
        elif exc.status_code == 404:
            error = RouteNotFound(message)
        elif exc.status_code == 405:
            given = (exc.headers or {}).get("Allow", "")
            allow = allowed_methods(request) or {m.strip() for m in given.split(",") if m.strip()}
            error = MethodNotAllowed(message, sorted(allow))
        else:
            error = HTTPRefusal(exc.status_code, message)
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"}
        return error_response(error, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        detail = [
            ValidationIssue(
                loc=list(e.get("loc", ())), msg=str(e.get("msg")), type=str(e.get("type"))
            )
            for e in errors
        ]
        return error_response(InvalidRequest(describe_validation_errors(errors), detail=detail))
