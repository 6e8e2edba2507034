"""What operators see: JSON logs with request ids and no query text, Prometheus metrics, and
errors that never show a traceback or a file path to the client."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from indexing.manifest import FORMAT_VERSION
from service.app import create_app
from tests.conftest import running_server

SECRET_QUERY = "penguin walrus narwhal"


def _log_entries(output: str) -> list[dict]:
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # every line is JSON, or this fails


@pytest.mark.parametrize("log_queries", [False, True])
def test_logs_are_json_lines_with_request_ids_and_no_query_text(seed_settings, log_queries):
    env = {"PAPERSEARCH_LOG_QUERIES": "1"} if log_queries else {}
    with running_server(seed_settings.index_dir, **env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            found = http.get(
                "/search", params={"q": SECRET_QUERY}, headers={"X-Request-ID": "trace-42"}
            )
            posted = http.post("/search", json={"q": SECRET_QUERY + " posted"})
            missing = http.get("/papers/no-such-paper")
            odd_id = http.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
        written = server.output()
    entries = _log_entries(written)

    assert found.headers["x-request-id"] == "trace-42"
    generated = posted.headers["x-request-id"]
    assert len(generated) == 32 and generated != "trace-42"
    assert odd_id.headers["x-request-id"] != "bad id\twith spaces"  # replaced by a fresh id
    access = {e["request_id"]: e for e in entries if e["logger"] == "papersearch.access"}
    assert access["trace-42"] | {"duration_ms": 0, "time": ""} == {
        "time": "",
        "level": "info",
        "logger": "papersearch.access",
        "message": "GET /search 200",
        "pid": server.process.pid,
        "request_id": "trace-42",
        "method": "GET",
        "path": "/search",
        "route": "/search",
        "status": 200,
        "duration_ms": 0,
        "client": "127.0.0.1",
        **({"query_string": "q=penguin+walrus+narwhal"} if log_queries else {}),
    }
    assert access[generated]["status"] == 200
    assert access[missing.headers["x-request-id"]]["route"] == "/papers/{paper_id:path}"
    assert access[missing.headers["x-request-id"]]["status"] == 404
    assert ("walrus" in written) is log_queries
    assert "posted" not in written  # request bodies are never logged


@pytest.fixture(scope="module")
def failing_app(seed_settings):
    """The real app with one more route that fails the way a bug would."""
    app = create_app(seed_settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("cannot open /srv/papersearch/secret/config.toml")

    with TestClient(app, raise_server_exceptions=False) as http:
        yield http


def test_an_unexpected_failure_is_a_json_500_without_traceback_or_path(failing_app, caplog):
    response = failing_app.get("/boom")
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "code": "internal_error",
        "message": f"internal error; quote request id {request_id} when reporting it",
    }
    assert "secret" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if r.name == "papersearch.error"]
    assert logged and logged[0].exc_info  # the traceback goes to the log instead


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/route", 404, "not_found"),
        ("DELETE", "/search", 405, "method_not_allowed"),
        ("GET", "/papers/no-such-paper", 404, "paper_not_found"),
    ],
)
def test_every_refusal_has_the_one_error_shape(client, method, path, status, code):
    response = client.request(method, path)
    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["message"]


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_latency_errors_and_describe_the_index(failing_app):
    before = _samples(failing_app.get("/metrics").text)
    failing_app.get("/search", params={"q": "streaming"})
    failing_app.get("/papers/arxiv:2502.09375")
    failing_app.get("/papers/no-such-paper")
    failing_app.get("/boom")
    response = failing_app.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = _samples(response.text)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0) - before.get(key, 0)

    requests = "papersearch_http_requests_total"
    assert grew(requests, method="GET", route="/search", status="200") == 1
    paper_route = "/papers/{paper_id:path}"
    assert grew(requests, method="GET", route=paper_route, status="200") == 1
    assert grew(requests, method="GET", route=paper_route, status="404") == 1
    assert grew(requests, method="GET", route="/boom", status="500") == 1
    assert grew("papersearch_http_errors_total", method="GET", route="/boom") == 1
    assert grew("papersearch_http_errors_total", method="GET", route=paper_route) == 0
    latency = "papersearch_http_request_duration_seconds_count"
    assert grew(latency, method="GET", route="/search") == 1
    assert not any("no-such-paper" in str(labels) for _, labels in after)  # ids are no labels
    assert after[("papersearch_index_papers", frozenset())] == 98
    (info,) = [labels for name, labels in after if name == "papersearch_index_info"]
    assert dict(info) | {"build": ""} == {
        "model": "all-MiniLM-L6-v2",
        "backend": "onnx-int8",
        "index_type": "flat",
        "dimension": "384",
        "format_version": str(FORMAT_VERSION),
        "build": "",
    }
