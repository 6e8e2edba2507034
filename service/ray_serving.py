"""``papersearch serve --ray ADDRESS``: the service as a Ray Serve deployment of N copies.

Each copy (a replica) runs the very app ``papersearch serve`` runs, built by ``create_app``
inside the replica: its lifespan loads the engine, warms it up and watches the index folder,
so the HTTP API, MCP and the page are the same, and every replica picks a new build up on
its own. Nothing of the index travels through Ray: each replica opens the folder by its
path, which is why it must be a path every node can read (a shared file system), and why
the settings sent to the replicas hold absolute paths (a replica's working directory is
Ray's, not the driver's).

Serve's proxy takes the HTTP port and spreads requests over the replicas; with
``max_replicas`` Serve also adds and removes replicas with the load. With ``shards`` above
1 the replicas' engines answer from shard deployments (``service.shards``) instead of a
whole index of their own.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve
from ray.serve import Application, Deployment
from ray.serve.exceptions import RayServeException
from ray.serve.handle import DeploymentHandle

from indexing.errors import PapersearchError
from indexing.manifest import checked_build
from indexing.plural import counted
from indexing.ray_job import LOCAL, check_reachable, connected
from service.app import create_app
from service.search import SearchEngine
from service.settings import Settings

# The Serve application `serve --ray` runs, and its one HTTP deployment.
APP_NAME = "papersearch"
DEPLOYMENT_NAME = "papersearch"
# Where Serve routes the application: at the root, so every path is the app's own.
ROUTE_PREFIX = "/"


# What Serve's proxies import for their own middleware (Ray's environment variable, read
# by each proxy as it starts: the proxies inherit the controller's environment). A module
# of its own, light: the proxies never load the search stack this module imports.
PROXY_CALLBACK_VARIABLE = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_CALLBACK = "service.serve_proxy:proxy_middlewares"


class ServeRefused(PapersearchError):
    """Ray Serve cannot serve the application as asked; nothing was deployed."""

    status = 503
    code = "serve_refused"


class _Replica:
    """One copy of the service. The app is built in the replica, not on the driver: the
    app holds the engine (an open index, a loaded model), which is neither sent nor shared."""

    def __init__(
        self, settings: Settings, shards: list[DeploymentHandle[Any]] | None = None
    ) -> None:
        self._settings = settings
        self._shards = shards

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Called by Serve in the replica once it is made; Serve then runs the app's
        lifespan there, which loads the engine."""
        if not self._shards:
            return create_app(self._settings, load_engine=SearchEngine.load)
        from service.shards import ServeShard, load_sharded_engine

        shards = [ServeShard(handle) for handle in self._shards]
        return create_app(
            self._settings, load_engine=functools.partial(load_sharded_engine, shards=shards)
        )


# The deployment: the class above behind Serve's HTTP ingress, whose app the replica builds
# (`__serve_build_asgi_app__`). Bound as `ServiceReplica.bind(settings, shards)`.
ServiceReplica: Deployment = serve.deployment(name=DEPLOYMENT_NAME)(serve.ingress()(_Replica))


def replica_settings(settings: Settings) -> Settings:
    """The settings as a replica needs them: absolute paths (not resolved: the index folder
    is a link a new build is swapped into, which the replica must keep following), and the
    model's threads bounded by the CPUs Ray reserves for a replica, as ``serve`` bounds
    each worker's by its share of the cores."""
    threads = settings.model_threads or max(1, math.floor(settings.replica_cpus))
    return settings.model_copy(
        update={
            "index_dir": settings.index_dir.absolute(),
            "cache_dir": settings.cache_dir.absolute(),
            "model_threads": threads,
            "workers": None,  # one process per replica: Serve makes the copies
        }
    )


def service_application(settings: Settings, shards: Sequence[Application] = ()) -> Application:
    """The Serve application of ``settings.replicas`` copies of the service (or between
    ``replicas`` and ``max_replicas`` of them, by load), over the shard deployments
    ``shards`` when given."""
    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": settings.replica_cpus}}
    if settings.max_replicas is None:
        options["num_replicas"] = settings.replicas
    else:
        if settings.max_replicas < settings.replicas:
            raise ServeRefused(
                f"max_replicas ({settings.max_replicas}) is below replicas "
                f"({settings.replicas}): autoscaling keeps between replicas and max_replicas"
            )
        options["autoscaling_config"] = {
            "min_replicas": settings.replicas,
            "max_replicas": settings.max_replicas,
            "target_ongoing_requests": settings.target_ongoing_requests,
        }
    return ServiceReplica.options(**options).bind(replica_settings(settings), list(shards) or None)


def serve_options(settings: Settings) -> dict[str, Any]:
    """``serve.start``'s arguments for the settings' address: where the proxies run and
    listen, and the middleware they add. (Fixed while Serve runs on the cluster.)"""
    return {
        "http_options": {"host": settings.host, "port": settings.port},
        "proxy_location": proxy_location(settings.host),
        "controller_options": {
            "runtime_env": {"env_vars": {PROXY_CALLBACK_VARIABLE: PROXY_CALLBACK}}
        },
    }


def proxy_location(host: str) -> str:
    """Serve's proxies on every node, as a cluster behind a load balancer wants; on a
    loopback address, on the head node only: nodes sharing one machine would all bind the
    same port."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        loopback = False
    return "HeadOnly" if loopback else "EveryNode"


def serve_on_ray(settings: Settings) -> int:
    """Deploy the service on the Ray cluster ``settings.ray_address`` names and serve until
    SIGINT or SIGTERM; then the application is deleted (and Serve stopped if this run
    started it), and the cluster left as it was found."""
    address = settings.ray_address
    assert address is not None, "serve_on_ray needs settings.ray_address"
    # As `serve` does: a stale, damaged or missing index fails here, in one line, before
    # anything reaches the cluster; the replicas then skip hashing this build's files.
    verified = checked_build(
        settings.index_dir, model=settings.model, backend=settings.backend
    ).build
    settings = settings.model_copy(update={"verified_build": verified})
    # Built before connecting, so settings Serve would refuse fail at once.
    if settings.shards > 1:
        from service.shards import shard_applications

        app = service_application(settings, shards=shard_applications(settings))
    else:
        app = service_application(settings)
    # Serve's progress lines (INFO) would bury the one line that says where it serves.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    if address != LOCAL:
        check_reachable(address)  # Ray itself retries an unreachable address for minutes
    with connected(ray, address), _serve_started(settings) as url, deployed(app):
        print(
            f"serving {settings.index_dir} at {url} on Ray ({address}): {_shape(settings)}",
            flush=True,  # the line a supervisor waits for, on a pipe too
        )
        _wait_for_stop()
    return 0


@contextmanager
def deployed(app: Application) -> Iterator[None]:
    """``app`` running on Serve as the application ``APP_NAME`` for the block, and deleted
    after, whether it started or not: a Serve this run did not start keeps running after
    it, and with it an application whose replicas failed, unless deleted here. One already
    running under that name is another ``serve --ray``'s, and is left alone."""
    if APP_NAME in serve.status().applications:
        raise ServeRefused(
            f"Ray Serve already runs an application {APP_NAME!r} on this cluster (another "
            "`papersearch serve --ray`): stop that one first"
        )
    try:
        try:
            serve.run(app, name=APP_NAME, route_prefix=ROUTE_PREFIX)
        # RuntimeError: Serve's DEPLOY_FAILED; Serve's own refusals (e.g. another
        # application at the same route) are RayServeException.
        except (RuntimeError, RayServeException) as exc:
            raise ServeRefused(
                f"the service failed to start on Ray: {_last_line(_failure(exc))} (the "
                "replicas' logs are under the cluster's session folder, logs/serve/)"
            ) from None
        yield
    finally:
        serve.delete(APP_NAME)


@contextmanager
def _serve_started(settings: Settings) -> Iterator[str]:
    """Serve running on the cluster with its HTTP proxy at the settings' address, yielding
    its URL; stopped after if started here. Serve's address is fixed while it runs (one
    per cluster): a Serve already listening elsewhere is refused, not silently used."""
    from ray.serve.context import _get_global_client  # Serve's own check: is one running?

    already = _get_global_client(raise_if_no_controller_running=False) is not None
    serve.start(**serve_options(settings))
    try:
        client = _get_global_client()
        assert client is not None  # raises, rather, where Serve is not running
        http = client.http_config
        if (http.host, http.port) != (settings.host, settings.port):
            raise ServeRefused(
                f"Ray Serve already runs on this cluster at {http.host}:{http.port}, and its "
                f"address is fixed while it runs: serve with --host {http.host} --port "
                f"{http.port}, or stop it first (`serve shutdown`)"
            )
        yield f"http://{settings.host}:{settings.port}/"
    finally:
        if not already:
            serve.shutdown()  # type: ignore[no-untyped-call]


def _failure(error: BaseException) -> str:
    """What made the deployment fail: the message of a deployment that failed, which ends
    with the error its replica raised (the application's names only the deployment), else
    the error's own."""
    application = serve.status().applications.get(APP_NAME)
    deployments = application.deployments.values() if application else ()
    failed = [d.message for d in deployments if d.status == "DEPLOY_FAILED" and d.message]
    return failed[0] if failed else str(error)


def _shape(settings: Settings) -> str:
    """How many copies serve, in words: fixed or autoscaled, and over how many shards."""
    cpus = f"of {settings.replica_cpus:g} CPU"
    if settings.max_replicas is None:
        shape = f"{counted(settings.replicas, 'replica')} {cpus}"
    else:
        shape = (
            f"{settings.replicas}-{settings.max_replicas} replicas {cpus}, autoscaled at "
            f"{settings.target_ongoing_requests:g} requests in flight each"
        )
    return shape + (f", over {counted(settings.shards, 'shard')}" if settings.shards > 1 else "")


def _wait_for_stop() -> None:
    """Block until SIGINT or SIGTERM: a stop asked for, not an error (exit status 0)."""
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _last_line(text: str) -> str:
    """A traceback's last line: the error the replica raised."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"
