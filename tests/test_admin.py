"""Changing a served index: admin endpoints behind the API key, and builds written by the
CLI picked up by a running server without a restart or a failed request."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import httpx
import pytest

from indexing.manifest import read_manifest
from tests.conftest import PAPERSEARCH, running_server
from tests.utils.index_files import linked_copy

KEY = "test-key-0123456789"
CORAL = {
    "id": "coral-1",
    "title": "Coral reef bleaching under marine heatwaves",
    "abstract": "We measure coral bleaching across reefs during marine heatwaves and relate it "
    "to sea surface temperature anomalies.",
}


@pytest.fixture
def own_index(seed_build, tmp_path):
    """A copy of the seed index the test may change (the session's index stays as it is)."""
    return linked_copy(seed_build.index_dir, tmp_path / "index")


def _top_id(base: str, query: str, headers: dict[str, str] | None = None) -> str:
    response = httpx.get(f"{base}/search", params={"q": query, "k": 1}, headers=headers, timeout=30)
    assert response.status_code == 200
    return response.json()["results"][0]["id"]


def test_admin_endpoints_need_the_key_and_change_what_is_served(own_index, cache_dir):
    with running_server(
        own_index, PAPERSEARCH_API_KEY=KEY, PAPERSEARCH_CACHE_DIR=str(cache_dir)
    ) as server:
        base = server.url
        body = {"papers": [CORAL]}
        assert httpx.post(f"{base}/admin/papers", json=body).status_code == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        assert httpx.post(f"{base}/admin/papers", json=body, headers=wrong).status_code == 401
        auth = {"Authorization": f"Bearer {KEY}"}

        bad = httpx.post(f"{base}/admin/papers", json={"papers": [{"id": "x"}]}, headers=auth)
        assert bad.status_code == 422 and "papers[0]" in bad.json()["message"]

        added = httpx.post(f"{base}/admin/papers", json=body, headers=auth, timeout=60)
        assert added.status_code == 200, added.text
        assert added.json() | {"embedded": 0} == {
            "added": 1, "replaced": 0, "removed": 0, "embedded": 0, "papers": 99
        }  # fmt: skip
        assert _top_id(base, "coral bleaching in marine heatwaves", auth) == "coral-1"
        assert httpx.get(f"{base}/readyz").json()["papers"] == 99

        removed = httpx.delete(f"{base}/admin/papers/coral-1", headers=auth, timeout=60)
        assert removed.status_code == 200 and removed.json()["papers"] == 98
        assert httpx.get(f"{base}/papers/coral-1", headers=auth).status_code == 404
        again = httpx.delete(f"{base}/admin/papers/coral-1", headers=auth, timeout=60)
        assert again.status_code == 404


def test_admin_endpoints_are_off_without_a_key(client):
    response = client.post("/admin/reload")
    assert response.status_code == 403
    assert "PAPERSEARCH_API_KEY" in response.json()["message"]


@pytest.mark.parametrize("trigger", ["watcher", "sighup", "admin_reload"])
def test_a_new_build_is_swapped_in_without_dropping_requests(
    own_index, cache_dir, tmp_path, trigger
):
    """Four clients search while `papersearch add` writes a new build and the server swaps
    it in: found by the watcher, or at once on SIGHUP or POST /admin/reload (with the
    watcher off, so the swap is theirs). Every answer is a 200."""
    corpus = tmp_path / "extra.jsonl"
    corpus.write_text(json.dumps(CORAL) + "\n", encoding="utf-8")
    auth = {"Authorization": f"Bearer {KEY}"}
    with running_server(
        own_index,
        PAPERSEARCH_RELOAD_INTERVAL="0.2" if trigger == "watcher" else "0",
        PAPERSEARCH_CACHE_DIR=str(cache_dir),
        PAPERSEARCH_API_KEY=KEY,
    ) as server:
        statuses: list[int] = []
        stop = threading.Event()

        def keep_searching() -> None:
            with httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
                while not stop.is_set():
                    statuses.append(http.get("/search", params={"q": "coral reefs"}).status_code)

        searchers = [threading.Thread(target=keep_searching) for _ in range(4)]
        for searcher in searchers:
            searcher.start()
        try:
            subprocess.run(
                [PAPERSEARCH, "add", str(corpus), "--index", str(own_index), "--quiet",
                 "--cache-dir", str(cache_dir)],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            query = "coral bleaching in marine heatwaves"
            if trigger == "sighup":
                assert _top_id(server.url, query, auth) != "coral-1"  # not swapped in yet
                server.process.send_signal(signal.SIGHUP)
            elif trigger == "admin_reload":
                assert _top_id(server.url, query, auth) != "coral-1"
                reloaded = httpx.post(f"{server.url}/admin/reload", headers=auth, timeout=60)
                assert reloaded.status_code == 200 and reloaded.json()["reloaded"] is True
            deadline = time.monotonic() + 30
            while _top_id(server.url, query, auth) != "coral-1":
                assert time.monotonic() < deadline, "the new build was not served within 30 s"
                time.sleep(0.2)
        finally:
            stop.set()
            for searcher in searchers:
                searcher.join()
        assert len(statuses) > 20 and set(statuses) == {200}


def test_an_update_over_http_merges_after_answering(own_index, cache_dir):
    """Ten papers added to the 98 pass the share of papers outside the base segment: the
    request answers once they are served, and the merge follows in the background."""
    papers = [
        {**CORAL, "id": f"coral-{n}", "title": f"{CORAL['title']}, site {n}"} for n in range(10)
    ]
    with running_server(
        own_index, PAPERSEARCH_API_KEY=KEY, PAPERSEARCH_CACHE_DIR=str(cache_dir)
    ) as server:
        auth = {"Authorization": f"Bearer {KEY}"}
        added = httpx.post(
            f"{server.url}/admin/papers", json={"papers": papers}, headers=auth, timeout=120
        )
        assert added.status_code == 200 and added.json()["papers"] == 108, added.text
        deadline = time.monotonic() + 60
        while (ready := httpx.get(f"{server.url}/readyz").json())["segments"] != 1:
            assert time.monotonic() < deadline, "no merged build served within 60 s"
            time.sleep(0.2)
        assert ready["papers"] == 108 and len(read_manifest(own_index).segments) == 1
        assert _top_id(server.url, "coral bleaching site 7", auth) == "coral-7"
