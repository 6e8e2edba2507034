"""Who may call, from where, how often: the API key, CORS and the rate limit."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from service.access import OPEN_PATHS
from service.app import create_app
from tests.conftest import settings_with
from tests.utils.index_files import linked_copy

KEY = "s3cret-key-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def keyed(seed_settings, tmp_path_factory):
    """An app with a key, over its own copy of the seed index: the test calls the admin
    routes with the key too, and they change the index."""
    index = linked_copy(seed_settings.index_dir, tmp_path_factory.mktemp("keyed") / "index")
    settings = settings_with(seed_settings, api_key=KEY, index_dir=index)
    with TestClient(create_app(settings)) as http:
        yield http


def _every_operation(http: TestClient) -> list[tuple[str, str]]:
    """(method, concrete path) of every documented route, plus the MCP endpoint."""
    operations = [("POST", "/mcp")]
    for path, methods in http.get("/openapi.json").json()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "arxiv:2502.09375", path)
        operations += [(method.upper(), concrete) for method in methods]
    return operations


def test_with_a_key_every_route_but_health_and_docs_needs_it(keyed):
    operations = _every_operation(keyed)
    assert len(operations) > 10
    for method, path in operations:
        response = keyed.request(method, path)
        if path in OPEN_PATHS:
            assert response.status_code == 200, (method, path)
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["code"] == "not_authenticated"
        assert response.headers["www-authenticate"] == "Bearer"
        wrong = keyed.request(method, path, headers={"Authorization": f"Bearer {KEY}x"})
        assert wrong.status_code == 401, (method, path)
        right = keyed.request(method, path, headers=AUTH)
        assert right.status_code != 401, (method, path)


@pytest.mark.parametrize(
    "header", [KEY, f"Basic {KEY}", f"Bearer{KEY}", "Bearer ", f"Bearer {KEY[:-1]}"]
)
def test_malformed_credentials_are_refused(keyed, header):
    response = keyed.get("/search", params={"q": "streaming"}, headers={"Authorization": header})
    assert response.status_code == 401


def test_the_key_opens_search_and_the_docs_stay_open(keyed):
    assert keyed.get("/search", params={"q": "streaming"}, headers=AUTH).status_code == 200
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/readyz").status_code == 200
    assert keyed.get("/docs").status_code == 200
    assert keyed.get("/config").status_code == 200  # the page builds its form before the key


def test_without_a_key_the_api_is_open_and_admin_is_off(client):
    assert client.get("/search", params={"q": "streaming"}).status_code == 200
    assert client.post("/admin/reload").status_code == 403


def test_cors_is_off_by_default(client):
    preflight = client.options(
        "/search",
        headers={"Origin": "https://example.org", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/search", params={"q": "x"}, headers={"Origin": "https://example.org"})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allows_exactly_the_configured_origins(seed_settings):
    settings = settings_with(seed_settings, cors_origins=["https://papers.example.org"])
    with TestClient(create_app(settings)) as http:
        allowed = http.options(
            "/search",
            headers={
                "Origin": "https://papers.example.org",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://papers.example.org"
        other = http.options(
            "/search",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        answer = http.get(
            "/search", params={"q": "x"}, headers={"Origin": "https://papers.example.org"}
        )
        assert answer.headers["access-control-allow-origin"] == "https://papers.example.org"
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()


def test_over_the_rate_limit_is_429_with_retry_after(seed_settings):
    settings = settings_with(seed_settings, rate_limit="3/minute")
    with TestClient(create_app(settings)) as http:
        for _ in range(3):
            assert http.get("/search", params={"q": "streaming"}).status_code == 200
        refused = http.get("/search", params={"q": "streaming"})
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["retry_after"] == int(refused.headers["retry-after"])
        # Every route counts, and health probes are never limited.
        assert http.get("/papers").status_code == 429
        for _ in range(5):
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 200
        # The limit is per client address: another one still gets through.
        other = TestClient(http.app, client=("192.0.2.7", 50000))
        assert other.get("/search", params={"q": "streaming"}).status_code == 200


def test_the_search_page_is_open_but_the_data_it_shows_is_not(keyed):
    """The page asks for the key itself; its files hold no papers."""
    for path in ("/", "/static/js/app.js", "/static/style.css"):
        assert keyed.get(path).status_code == 200, path
    # Without the key, a paper page does not tell which ids exist: 200 for any.
    for paper_id in ("arxiv:2504.05217", "no-such-paper"):
        paper_page = keyed.get(f"/paper/{paper_id}")
        assert paper_page.status_code == 200 and "<main" in paper_page.text
    for path in ("/map", "/facets", "/papers/arxiv:2502.09375", "/paperz"):
        assert keyed.get(path).status_code == 401, path
    assert keyed.get("/map", headers=AUTH).status_code == 200
