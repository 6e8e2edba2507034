"""The service on Ray Serve (`papersearch serve --ray`): two replicas on the 2-node test
cluster answer exactly as the app in one process does, over real HTTP through Serve's proxy."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.settings import Settings
from tests.conftest import PAPERSEARCH, free_port, settings_with

FARM_ID = "arxiv:2502.09375"
CLOCK_TITLE = "Long-Term Interest Clock"
TEST_APP = "papersearch-test"  # not the CLI's application name: both may be asked about
REPLICAS = 2
# Small enough for two replicas beside other tests' actors on 2 nodes of 2 CPUs each.
REPLICA_CPUS = 0.5

# Every kind of answer the API gives, each compared whole with the in-process app's.
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/search", {"q": "cross-domain live-streaming recommendation", "k": 5}),
    ("GET", "/search", {"q": "graph neural networks", "mode": "dense", "k": 5, "offset": 5}),
    ("GET", "/search", {"q": "click-through rate", "mode": "lexical", "year_from": 2023}),
    ("GET", "/search", {"q": "LLM CTR", "mode": "hybrid", "category": "IR", "offset": 10}),
    ("GET", "/search", {"q": "recommendation", "sort": "date", "has_code": "true"}),
    ("GET", f"/papers/{FARM_ID}", {}),
    ("GET", f"/papers/{FARM_ID}/similar", {"k": 5}),
    ("GET", "/similar", {"title": CLOCK_TITLE, "k": 3}),
    ("GET", "/papers", {"limit": 5, "offset": 3}),
    ("GET", "/facets", {}),
    ("GET", "/config", {}),
    ("GET", "/readyz", {}),
    ("GET", "/tools/openai", {}),
    ("GET", "/no-such-route", {}),
    ("GET", "/papers/no-such-paper", {}),
    ("GET", "/search", {"q": "x", "k": 0}),
]


def serve_apps() -> set[str]:
    """The applications Serve runs on the cluster (none where Serve is not running)."""
    from ray import serve
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import RayServeException

    try:
        return set(serve.status().applications)
    except (RayServeException, RayActorError):  # none, or the one this process knew stopped
        return set()


@dataclass
class Served:
    url: str
    settings: Settings


@pytest.fixture(scope="class")
def served(
    ray_cluster: object, seed_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """Two replicas of the service over a copy of the seed index (a test writes a new
    build of it), behind Serve's proxy on a free loopback port; deleted after."""
    from ray import serve

    from service.ray_serving import serve_options, service_application

    data = tmp_path_factory.mktemp("ray-serve") / "data"
    shutil.copytree(seed_settings.index_dir.parent, data, symlinks=True)
    port = free_port()
    settings = settings_with(
        seed_settings,
        index_dir=data / "index",
        port=port,
        replicas=REPLICAS,
        replica_cpus=REPLICA_CPUS,
        reload_interval=0.5,
    )
    serve.shutdown()  # a Serve another test left listens on another port
    serve.start(**serve_options(settings))
    serve.run(service_application(settings), name=TEST_APP, route_prefix="/")
    try:
        yield Served(f"http://127.0.0.1:{port}", settings)
    finally:
        serve.delete(TEST_APP)
        serve.shutdown()


def _get(url: str, path: str, params: dict[str, Any]) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, timeout=30)


class TestTwoReplicas:
    def test_two_replicas_are_running(self, served: Served) -> None:
        from ray import serve

        app = serve.status().applications[TEST_APP]
        assert app.status == "RUNNING"
        assert app.deployments["papersearch"].replica_states == {"RUNNING": REPLICAS}

    def test_answers_equal_the_single_process_ones(
        self, served: Served, client: TestClient
    ) -> None:
        """Each request three times, eight at a time: both replicas answer some."""
        work = REQUESTS * 3
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda r: _get(served.url, r[1], r[2]), work))
        for (_, path, params), answer in zip(work, answers, strict=True):
            expected = client.get(path, params=params)
            assert answer.status_code == expected.status_code, (path, params, answer.text)
            assert answer.headers["content-type"] == expected.headers["content-type"]
            assert answer.json() == expected.json(), (path, params)
        # One request id each, as served in one process (Serve's proxy adds its own copy).
        assert all(len(a.headers.get_list("x-request-id")) == 1 for a in answers)
        assert len({a.headers["x-request-id"] for a in answers}) == len(answers)
        given = httpx.get(f"{served.url}/healthz", headers={"X-Request-ID": "trace-7"})
        assert given.headers.get_list("x-request-id") == ["trace-7"]

    def test_requests_spread_over_the_replicas(self, served: Served) -> None:
        """A replica's /metrics counts its own requests only: one that counts some but not
        all of a burst of searches shows that another replica answered the rest."""
        burst = 32
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda n: _get(served.url, "/export", {"ids": FARM_ID, "format": "ris"}),
                    range(burst),
                )
            )
        counts = set()
        for _ in range(6):
            metrics = httpx.get(f"{served.url}/metrics", timeout=30).text
            counted = re.findall(
                r'papersearch_http_requests_total\{method="GET",route="/export",status="200"\} '
                r"(\d+)",
                metrics,
            )
            counts.add(int(counted[0]) if counted else 0)
        assert any(0 < count < burst for count in counts), counts

    def test_page_and_docs_are_served(self, served: Served, client: TestClient) -> None:
        for path in ("/", f"/paper/{FARM_ID}", "/docs", "/openapi.json"):
            answer, expected = _get(served.url, path, {}), client.get(path)
            assert answer.status_code == expected.status_code == 200, path
            assert answer.text == expected.text, path

    @pytest.mark.anyio
    async def test_mcp_over_the_serve_proxy(self, served: Served, client: TestClient) -> None:
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        arguments = {"query": "LLM CTR", "k": 3, "offset": 2}
        expected = client.post(
            "/tools/call", json={"name": "search_papers", "arguments": arguments}
        ).json()
        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(
                streamable_http_client(f"{served.url}/mcp")
            )
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            listed = {tool.name for tool in (await session.list_tools()).tools}
            found = await session.call_tool("search_papers", arguments)
        tools = {tool["function"]["name"] for tool in client.get("/tools/openai").json()}
        assert listed == tools
        assert not found.is_error and found.structured_content == expected["result"]

    def test_every_replica_serves_a_new_build(self, served: Served) -> None:
        """A paper removed from the index folder: each replica's watcher swaps the new
        build in, so in time every answer, whichever replica gives it, lacks the paper."""
        before = _get(served.url, "/readyz", {}).json()["papers"]
        removed = subprocess.run(
            [PAPERSEARCH, "remove", FARM_ID, "--index", str(served.settings.index_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert removed.returncode == 0, removed.stderr
        deadline = time.monotonic() + 30
        while True:
            with ThreadPoolExecutor(8) as pool:
                answers = list(
                    pool.map(lambda n: _get(served.url, f"/papers/{FARM_ID}", {}), range(16))
                )
            statuses = {answer.status_code for answer in answers}
            if statuses == {404}:
                break
            assert time.monotonic() < deadline, f"still served after 30 s: {statuses}"
            time.sleep(0.5)
        assert _get(served.url, "/readyz", {}).json()["papers"] == before - 1

    def test_cli_refuses_a_serve_listening_elsewhere(
        self, served: Served, ray_cluster: Any, seed_settings: Settings
    ) -> None:
        """Serve's address is fixed while it runs: asked for another port, the CLI says
        where it listens rather than print an address nothing answers on."""
        port = free_port()
        result = subprocess.run(
            _serve_command(ray_cluster.address, seed_settings.index_dir, port),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1
        assert f"Ray Serve already runs on this cluster at 127.0.0.1:{served.settings.port}" in (
            result.stderr
        )
        assert TEST_APP in serve_apps() and "papersearch" not in serve_apps()

    def test_cli_refuses_a_route_another_application_holds(
        self, served: Served, ray_cluster: Any, seed_settings: Settings
    ) -> None:
        """At Serve's own address, but with another application at the root: Serve's
        refusal is one line, and the cluster's applications are as they were."""
        result = subprocess.run(
            _serve_command(ray_cluster.address, seed_settings.index_dir, served.settings.port),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1
        assert result.stderr.startswith(
            "papersearch: error: the service failed to start on Ray: "
        ) and f'Prefix / is being used by application "{TEST_APP}"' in (result.stderr)
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert serve_apps() == {TEST_APP}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _serve_command(address: str, index_dir: Path, port: int, *flags: str) -> list[str]:
    return [
        PAPERSEARCH,
        "serve",
        "--ray",
        address,
        "--index",
        str(index_dir),
        "--port",
        str(port),
        "--replica-cpus",
        str(REPLICA_CPUS),
        *flags,
    ]


def test_cli_serves_on_the_cluster_until_interrupted(
    ray_cluster: Any, seed_settings: Settings, client: TestClient, tmp_path: Path
) -> None:
    """`papersearch serve --ray` joins the cluster as a second driver, deploys an
    autoscaled service, answers, and on SIGINT deletes it and exits 0."""
    from ray.serve.context import _get_global_client

    from service.ray_serving import ServeRefused, deployed, service_application

    port = free_port()
    log = tmp_path / "serve.log"
    command = _serve_command(
        ray_cluster.address, seed_settings.index_dir, port, "--replicas", "1", "--max-replicas", "2"
    )
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True)
    serving = (
        f"serving {seed_settings.index_dir} at http://127.0.0.1:{port}/ on Ray "
        f"({ray_cluster.address}): 1-2 replicas of {REPLICA_CPUS} CPU, autoscaled at 2 "
        "requests in flight each"
    )
    try:
        deadline = time.monotonic() + 90
        while serving not in log.read_text():  # printed once Serve says it runs
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "not serving within 90 s:\n" + log.read_text()
            time.sleep(0.5)
        params = {"q": "cross-domain live-streaming recommendation", "k": 3}
        answer = httpx.get(f"http://127.0.0.1:{port}/search", params=params, timeout=30)
        assert answer.json() == client.get("/search", params=params).json()
        serve_client = _get_global_client()
        assert serve_client is not None
        details = serve_client.get_serve_details()
        deployment = details["applications"]["papersearch"]["deployments"]["papersearch"]
        autoscaling = deployment["deployment_config"]["autoscaling_config"]
        assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (1, 2)
        assert autoscaling["target_ongoing_requests"] == 2.0
        # Another `serve --ray` on the same cluster is refused, and leaves this one serving.
        second = service_application(seed_settings)
        with (
            pytest.raises(ServeRefused, match="already runs an application 'papersearch'"),
            deployed(second),
        ):
            pytest.fail("a second application deployed under the CLI's name")
        assert "papersearch" in serve_apps()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert server.returncode == 0, log.read_text()
    assert "papersearch" not in serve_apps()
    assert "Traceback" not in log.read_text()


def test_a_replica_that_fails_to_start_leaves_no_application(
    ray_cluster: Any, seed_settings: Settings, tmp_path: Path
) -> None:
    """With Serve already running (as when the cluster serves other applications), a
    deployment whose replica fails to start is one error, and its application is deleted,
    not left failing on the cluster. (The replica's index is missing: the real replica
    fails in its lifespan, as where a build has gone from a shared folder.)"""
    from ray import serve
    from ray.serve.context import _get_global_client

    from service.ray_serving import (
        APP_NAME,
        ServeRefused,
        deployed,
        serve_options,
        service_application,
    )

    settings = settings_with(
        seed_settings,
        index_dir=tmp_path / "gone",
        port=free_port(),
        replica_cpus=REPLICA_CPUS,
    )
    serve.shutdown()  # a Serve another test left listens on another port
    serve.start(**serve_options(settings))
    try:
        with pytest.raises(ServeRefused) as refused, deployed(service_application(settings)):
            pytest.fail("a replica over a missing index started")
        message = str(refused.value)
        assert message.startswith("the service failed to start on Ray: ") and "\n" not in message
        assert message.endswith(
            "(the replicas' logs are under the cluster's session folder, logs/serve/)"
        )
        assert _get_global_client(raise_if_no_controller_running=False) is not None
        assert APP_NAME not in serve_apps()
    finally:
        serve.shutdown()


def test_cli_refuses_an_unreachable_address_in_one_line(seed_settings: Settings) -> None:
    started = time.monotonic()
    address = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        _serve_command(address, seed_settings.index_dir, free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"papersearch: error: cannot connect to the Ray cluster at {address}"
    )
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert time.monotonic() - started < 30


def test_cli_refuses_fewer_max_replicas_than_replicas(seed_settings: Settings) -> None:
    result = subprocess.run(
        _serve_command(
            "local", seed_settings.index_dir, free_port(), "--replicas", "3", "--max-replicas", "2"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "papersearch: error: max_replicas (2) is below replicas (3): autoscaling keeps "
        "between replicas and max_replicas\n"
    )
