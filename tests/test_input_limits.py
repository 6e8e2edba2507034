"""Bad input from outside: too long, too large, or text no paper could contain.

Each gets a 4xx that says what was wrong; text of every script still answers."""

from __future__ import annotations

import subprocess

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.conftest import PAPERSEARCH, settings_with


@pytest.mark.parametrize(
    "q",
    [
        "recommendation 🚀🔥 for live streaming 🎥",  # emoji (astral plane)
        "توصية البث المباشر",  # Arabic, right to left
        "\u200fהמלצות\u200f live streaming",  # noqa: RUF001 (Hebrew between right-to-left marks)
        "Z\u0351\u0362a\u0360l\u0361g\u035bo recommendation",  # stacked combining marks
        "推荐系统 的 跨域 直播",
        "\ufeffzero\u200bwidth\u200dspaces",
        "line\nbreaks\tand tabs",
    ],
)
def test_text_of_every_script_answers(client, q):
    for response in (
        client.get("/search", params={"q": q, "k": 3}),
        client.post("/search", json={"q": q, "k": 3}),
    ):
        assert response.status_code == 200, response.text
        assert len(response.json()["results"]) == 3


def test_decomposed_accents_search_as_the_composed_letters(client):
    composed = client.get("/search", params={"q": "résumé recommendation", "k": 5}).json()
    decomposed = client.get("/search", params={"q": "re\u0301sume\u0301 recommendation", "k": 5})
    assert decomposed.json() == composed


@pytest.mark.parametrize(
    ("q", "what"),
    [
        ("live\x00streaming", "control character (U+0000)"),
        ("bell\x07", "control character (U+0007)"),
        ("delete\x7f", "control character (U+007F)"),
    ],
)
def test_control_characters_are_refused_by_name(client, q, what):
    for response in (
        client.get("/search", params={"q": q}),
        client.post("/search", json={"q": q}),
    ):
        assert response.status_code == 422
        assert response.json()["message"].startswith("q: ")
        assert what in response.json()["message"]


@pytest.mark.parametrize("escape", [r"\ud800", r"\udfff", r"x\ud83d"])
def test_lone_surrogates_in_json_are_refused(client, escape):
    body = f'{{"q": "{escape} streaming"}}'.encode()
    response = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert response.json()["message"].startswith("q: ")


def test_invalid_utf8_in_the_url_is_not_a_server_error(client):
    response = client.get("/search?q=%ff%fe%c0streaming&k=2")
    assert response.status_code == 200  # undecodable bytes read as U+FFFD
    assert len(response.json()["results"]) == 2


def test_filters_get_the_same_text_rules(client):
    response = client.get("/search", params={"q": "streaming", "author": "Li\x00u"})
    assert response.status_code == 422 and response.json()["message"].startswith("author: ")
    response = client.get("/similar", params={"title": "Long-Term\x00 Interest Clock"})
    assert response.status_code == 422 and response.json()["message"].startswith("title: ")


def test_the_query_limit_is_a_setting_shared_by_http_tools_and_cli(seed_settings):
    with TestClient(create_app(settings_with(seed_settings, max_query_chars=30))) as http:
        assert http.get("/search", params={"q": "x" * 30}).status_code == 200
        too_long = http.get("/search", params={"q": "x" * 31})
        assert too_long.status_code == 422
        assert too_long.json() == {
            "code": "query_too_long",
            "message": "q: the query is 31 characters long, this service accepts at most 30 "
            "(PAPERSEARCH_MAX_QUERY_CHARS)",
        }
        tool = http.post(
            "/tools/call", json={"name": "search_papers", "arguments": {"query": "y" * 31}}
        )
        assert tool.status_code == 422 and "at most 30" in tool.json()["message"]


def test_the_default_query_limit_is_1000_characters(client):
    assert client.get("/search", params={"q": "x" * 1000, "k": 1}).status_code == 200
    assert client.post("/search", json={"q": "x" * 1001}).json()["code"] == "query_too_long"


def test_the_cli_refuses_an_overlong_query_in_one_line(seed_settings):
    result = subprocess.run(
        [PAPERSEARCH, "search", "x" * 1001, "--index", str(seed_settings.index_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "at most 1000" in result.stderr


def test_unknown_fields_in_a_post_body_are_refused(client):
    response = client.post("/search", json={"q": "streaming", "top_k": 5})
    assert response.status_code == 422 and response.json()["message"].startswith("top_k: ")


def test_a_body_over_the_limit_is_413_before_it_is_parsed(client):
    body = b'{"q": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    response = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert "PAPERSEARCH_MAX_REQUEST_BYTES" in response.json()["message"]


def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(client):
    def chunks():
        yield b'{"q": "'
        for _ in range(80):
            yield b"x" * 65536  # 5 MiB in all, never declared
        yield b'"}'

    response = client.post(
        "/search", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["code"] == "request_too_large"
