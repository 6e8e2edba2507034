"""The JSON of every error class, pinned: status, code, the keys it sends and its headers.

Every subclass of ``PapersearchError`` must have a row in ``CASES`` (the completeness test
imports every module and walks the subclasses), so a new error cannot reach a client in a
shape nobody checked; each body must also validate against ``ErrorResponse``, the shape the
OpenAPI schema declares. The last tests send real requests, so the exception handlers, the
middlewares and the HTTP server's own 400 are held to the same shape.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

import indexing
import service
from indexing.build import BuildError
from indexing.corpus import CorpusError
from indexing.errors import PapersearchError
from indexing.manifest import IndexUnusable
from indexing.ray_job import RayJobFailed, RayUnavailable
from indexing.shards import ShardingRefused
from indexing.vector_files import VectorFileError
from service.access import RateLimited, RequestTooLarge
from service.app import create_app
from service.cli import UsageError
from service.errors import (
    AdminDisabled,
    BadRequest,
    HTTPRefusal,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotAuthenticated,
    PaperNotFound,
    QueryTooLong,
    RouteNotFound,
    ServiceError,
    ShardedIndexReadOnly,
    ShardUnavailable,
    TextTooLong,
    TitleNotFound,
    error_response,
)
from service.evaluation import EvalInputError
from service.learned_ranking import RankerUnusable
from service.routes.tools import ToolFailed, UnknownTool
from service.schemas import ErrorResponse, TitleSuggestion, ValidationIssue
from tests.conftest import running_server, settings_with

BASE = ["code", "message"]


@dataclass
class Case:
    error: PapersearchError
    status: int
    code: str
    keys: list[str] = field(default_factory=lambda: list(BASE))
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        extra = [key for key in self.keys if key not in BASE]
        return type(self.error).__name__ + "".join(f"+{key}" for key in extra)


CASES = [
    Case(PapersearchError("unexpected"), 500, "internal_error"),
    Case(IndexUnusable("no index at data/index: run `papersearch index`"), 503, "index_unusable"),
    Case(BuildError("no papers to add; index unchanged"), 422, "build_failed"),
    Case(VectorFileError("x.parquet holds no vectors"), 422, "invalid_vectors"),
    Case(CorpusError("seeds/x: no such file or folder"), 422, "corpus_unreadable"),
    Case(ShardingRefused("cannot cut the 98 papers of x into 200 shards"), 422, "sharding_refused"),
    Case(RayUnavailable("Ray is not installed: make install-ray"), 503, "ray_unavailable"),
    Case(RayJobFailed("the Ray job failed: no node has 1 GPU"), 500, "ray_job_failed"),
    Case(EvalInputError("queries.jsonl: no queries"), 422, "eval_input_invalid"),
    Case(RankerUnusable("model.txt: cannot load the ranking model"), 503, "ranker_unusable"),
    Case(UsageError("k: must be between 1 and 100"), 422, "invalid_request"),
    Case(ServiceError("unexpected"), 500, "internal_error"),
    Case(InternalError("0123abcd"), 500, "internal_error"),
    Case(PaperNotFound("arxiv:0000.00000"), 404, "paper_not_found"),
    Case(
        TitleNotFound("atention", [TitleSuggestion(id="a", title="Attention", match_score=80.0)]),
        404,
        "title_not_found",
        [*BASE, "suggestions"],
    ),
    Case(AdminDisabled(), 403, "admin_disabled"),
    Case(ShardUnavailable(1, 2, "no answer within 30 s"), 503, "shard_unavailable"),
    Case(ShardedIndexReadOnly(), 409, "sharded_index_read_only"),
    Case(NotAuthenticated(), 401, "not_authenticated", headers={"www-authenticate": "Bearer"}),
    Case(InvalidRequest("papers[0]: no abstract"), 422, "invalid_request"),
    Case(
        InvalidRequest(
            "k: Input should be less than or equal to 100",
            detail=[ValidationIssue(loc=["query", "k"], msg="Input should be…", type="le")],
        ),
        422,
        "invalid_request",
        [*BASE, "detail"],
    ),
    Case(
        InvalidRequest("papers[0]: no abstract", errors=["papers[0]: no abstract"]),
        422,
        "invalid_request",
        [*BASE, "errors"],
    ),
    Case(QueryTooLong(2000, 1000), 422, "query_too_long"),
    Case(TextTooLong(30_000, 20_000), 422, "text_too_long"),
    Case(BadRequest("There was an error parsing the body"), 400, "bad_request"),
    Case(RouteNotFound("Not Found"), 404, "not_found"),
    Case(
        MethodNotAllowed("Method Not Allowed", ["POST", "GET"]),
        405,
        "method_not_allowed",
        headers={"allow": "GET, POST"},
    ),
    Case(HTTPRefusal(416, "Range Not Satisfiable"), 416, "http_error"),
    Case(
        RateLimited("2 per 1 minute", "127.0.0.1", 7),
        429,
        "rate_limited",
        [*BASE, "retry_after"],
        {"retry-after": "7"},
    ),
    Case(RequestTooLarge(1024), 413, "request_too_large"),
    Case(UnknownTool("no tool named 'x'"), 404, "tool_not_found"),
    Case(ToolFailed("query: too short"), 422, "tool_error"),
]


def _subclasses(cls: type) -> Iterator[type]:
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


try:  # Ray is an optional extra: the Serve module's error is pinned where it is installed
    from service.ray_serving import ServeRefused

    CASES.append(Case(ServeRefused("the service failed to start on Ray"), 503, "serve_refused"))
except ModuleNotFoundError as missing:
    if missing.name != "ray":
        raise


def test_every_error_class_is_pinned():
    # Import every module, so a class defined anywhere in indexing/ or service/ is found
    # (those that need Ray, an optional extra, where it is installed).
    for package in (indexing, service):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            try:
                importlib.import_module(module.name)
            except ModuleNotFoundError as missing:
                if missing.name != "ray":
                    raise
    classes = {PapersearchError, *_subclasses(PapersearchError)}
    pinned = {type(case.error) for case in CASES}
    missing = sorted(cls.__qualname__ for cls in classes - pinned)
    assert not missing, f"add a row to CASES for: {', '.join(missing)}"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_error_json_shape(case: Case):
    response = error_response(case.error)
    body = json.loads(response.body)
    assert response.status_code == case.status
    assert response.media_type == "application/json"
    assert list(body) == case.keys  # exactly these, in this order, never a null field
    assert body["code"] == case.code and body["message"] == case.error.message
    ErrorResponse.model_validate(body)  # what OpenAPI declares (it refuses unknown keys)
    assert {name: response.headers[name] for name in case.headers} == case.headers


def test_the_base_class_fixes_status_and_code_per_class():
    for case in CASES:
        if not isinstance(case.error, HTTPRefusal):  # its status is the framework's
            assert type(case.error).status == case.status, case.id
        assert type(case.error).code == case.code, case.id


KEY = "error-shape-key"


def test_a_project_error_escaping_a_route_keeps_its_status_and_code(seed_settings):
    """An index error raised under a request (say the build became unreadable) is answered
    by its own status and code through the one renderer, not as an anonymous 500."""
    app = create_app(seed_settings)

    @app.get("/unusable")
    def unusable() -> None:
        raise IndexUnusable("damaged index at data/index: rebuild it")

    response = TestClient(app).get("/unusable")
    assert response.status_code == 503
    assert response.json() == {
        "code": "index_unusable",
        "message": "damaged index at data/index: rebuild it",
    }


def test_the_framework_s_own_refusals_have_the_same_shape(seed_settings):
    # Not entered: no lifespan, no index loaded; these are all refused before any route runs.
    client = TestClient(create_app(settings_with(seed_settings, api_key=KEY)))
    auth = {"Authorization": f"Bearer {KEY}"}
    answers = {
        "unknown path": client.get("/nowhere", headers=auth),
        "wrong method": client.delete("/search", headers=auth),
        "unreadable body": client.post(
            "/tools/call", content=b"U\xffn", headers={**auth, "Content-Type": "application/json"}
        ),
        "invalid JSON": client.post(
            "/search", content=b"{", headers={**auth, "Content-Type": "application/json"}
        ),
        "unknown admin field": client.post(
            "/admin/papers", json={"papers": [{"id": "x"}], "papres": []}, headers=auth
        ),
        "no key": client.get("/papers"),
    }
    for what, response in answers.items():
        assert response.headers["content-type"] == "application/json", what
        ErrorResponse.model_validate(response.json())
    assert answers["unknown path"].json()["code"] == "not_found"
    # Both /search routes, not only the first one the router tried.
    assert answers["wrong method"].status_code == 405
    assert answers["wrong method"].headers["allow"] == "GET, POST"
    assert answers["unreadable body"].status_code == 400
    assert answers["unreadable body"].json()["code"] == "bad_request"
    assert answers["invalid JSON"].status_code == 422
    unknown = answers["unknown admin field"]
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "papres"]
    assert answers["no key"].status_code == 401
    assert answers["no key"].headers["www-authenticate"] == "Bearer"


def test_the_http_server_s_own_400_has_the_same_shape(seed_build):
    """A URL over httptools' 64 KiB never reaches the app; the server answers it itself.
    (Sent over a bare socket: httpx refuses to send a URL that long.)"""
    with running_server(seed_build.index_dir) as server:
        host, port = server.url.removeprefix("http://").split(":")
        request = f"GET /search?q={'a' * 70_000} HTTP/1.1\r\nHost: {host}\r\n\r\n"
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(request.encode())
            answer = b""
            while chunk := connection.recv(65536):  # the server closes the connection
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert ErrorResponse.model_validate_json(body).code == "bad_request"
