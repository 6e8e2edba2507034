"""What the service tells its operators: one JSON log line per event, request ids, metrics.

Every request gets an id (the caller's ``X-Request-ID`` when it is a sane token, else a new
one), returned in the response header and stamped on every log line written while the
request runs, so a user's error report leads to its log lines. The access log records the
path but not the query string unless ``PAPERSEARCH_LOG_QUERIES`` is on: what people search
for is theirs. A request that fails inside the app is answered with a JSON 500 naming the id;
the traceback goes to the log only.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import InternalError, error_response

if TYPE_CHECKING:
    from service.search import SearchEngine

REQUEST_ID_HEADER = "X-Request-ID"
# prometheus_client's multiprocess mode: set (to an empty folder) before the workers start.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_CALLER_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

access_log = logging.getLogger("papersearch.access")
error_log = logging.getLogger("papersearch.error")

# LogRecord's own attributes; anything else on a record came from ``extra=`` and is logged.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers (Loki, CloudWatch, jq) read unaided."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which worker, when several serve one port
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update(
            (key, value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES
        )
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(level: str = "info") -> dict[str, Any]:
    """The service's logging, for uvicorn's ``log_config``: everything as JSON on stderr.

    uvicorn's own access log is off (``access_log=False`` where it is started): it writes
    the full URL, query text included; ``RequestContext`` writes the access log instead.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


class ServiceMetrics:
    """Prometheus metrics of one app: its own registry, so two apps in one process (tests)
    never share counts."""

    LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self, engine: Callable[[], SearchEngine | None]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "papersearch_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "papersearch_http_request_duration_seconds",
            "Time from a request's arrival to its last response byte.",
            ["method", "route"],
            buckets=self.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "papersearch_http_errors",
            "Requests answered with a server error (5xx), unhandled failures included.",
            ["method", "route"],
            registry=self.registry,
        )
        self.index = _IndexCollector(engine)
        self.registry.register(self.index)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if status >= 500:
            self.errors.labels(method, route).inc()

    def exposition(self) -> bytes:
        if MULTIPROCESS_DIR_VARIABLE not in os.environ:
            return generate_latest(self.registry)
        # Several workers (`papersearch serve --workers`): each writes its counts to files in
        # that folder, and whichever worker is scraped sums them all; the index is its own.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(self.index)
        return generate_latest(registry)


class _IndexCollector(Collector):
    """Read at scrape time from the engine being served, so a reload shows at once."""

    def __init__(self, engine: Callable[[], SearchEngine | None]) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine()
        if engine is None:  # still loading
            return
        manifest = engine.index.manifest
        papers = GaugeMetricFamily("papersearch_index_papers", "Papers in the served index.")
        papers.add_metric([], len(engine.index))
        yield papers
        info = GaugeMetricFamily(
            "papersearch_index_info",
            "The served index and model (value 1).",
            labels=["model", "backend", "index_type", "dimension", "format_version", "build"],
        )
        info.add_metric(
            [
                manifest.model,
                manifest.backend,
                manifest.index_type.value,
                str(manifest.dimension),
                str(manifest.format_version),
                engine.index.build_dir.name,
            ],
            1,
        )
        yield info
        built = GaugeMetricFamily(
            "papersearch_index_built_timestamp_seconds", "When the served index was built."
        )
        built.add_metric([], manifest.built_at.timestamp())
        yield built


def route_template(scope: Scope, app: ASGIApp) -> str:
    """The route a request matched, as declared (``/papers/{paper_id:path}``): a metric
    label must not grow with every paper id. Requests turned away before routing (401, 429,
    413) are matched here the same way."""
    route = scope.get("route")
    if route is None:
        for candidate in getattr(app, "routes", ()):
            if candidate.matches(scope)[0] is Match.FULL:
                route = candidate
                break
    return getattr(route, "path", None) or "<unmatched>"


class RequestContext:
    """Outermost layer: the request id, the access-log line, the metrics, and the JSON 500.

    ``routes_app`` is the app whose routes name the metric label (the FastAPI app itself).
    """

    def __init__(
        self, app: ASGIApp, *, routes_app: ASGIApp, metrics: ServiceMetrics, log_queries: bool
    ) -> None:
        self.app = app
        self.routes_app = routes_app
        self.metrics = metrics
        self.log_queries = log_queries

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = given if _CALLER_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            status = 500
            if not response_started:  # else the client sees a cut-off response
                response = error_response(
                    InternalError(request_id), {REQUEST_ID_HEADER: request_id}
                )
                await response(scope, receive, send)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope, self.routes_app)
            self.metrics.observe(scope["method"], route, status, seconds)
            self._log_access(scope, route, status, seconds)
            request_id_var.reset(token)

    def _log_access(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        fields: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": (scope.get("client") or ("", 0))[0],
        }
        if self.log_queries and scope.get("query_string"):
            fields["query_string"] = scope["query_string"].decode("latin-1")
        access_log.info("%s %s %d", scope["method"], scope["path"], status, extra=fields)
