"""The FastAPI application: built by a factory, state loaded once in the lifespan."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.access import ApiKeyGate, BodySizeLimit, RateLimit
from service.assistant_tools import build_mcp_server
from service.errors import EVERY_ROUTE, install_error_handlers
from service.index_watch import IndexReloader, reload_on_sighup
from service.observability import REQUEST_ID_HEADER, RequestContext, ServiceMetrics
from service.routes import (
    admin,
    config,
    corpus,
    export,
    health,
    metrics,
    papers,
    search,
    similar,
    tools,
)
from service.routes.docs import mount_docs
from service.routes.ui import mount_ui
from service.search import SearchEngine
from service.settings import Settings

log = logging.getLogger("papersearch")

DESCRIPTION = """Search over research-paper abstracts, by meaning and keywords.

Ask in natural language (`/search`, with filters), look up papers similar to one you know by
id (`/papers/{id}/similar`) or by its title as you remember it (`/similar?title=`). Chat
assistants use the same search as tools: MCP (streamable HTTP) at `/mcp`, OpenAI-style
functions at `/tools/openai` and `/tools/call`."""


def create_app(
    settings: Settings | None = None,
    *,
    load_engine: Callable[[Settings], SearchEngine] = SearchEngine.load,
) -> FastAPI:
    """The app over the engine ``load_engine`` makes in the lifespan: the index's own, or,
    behind ``serve --ray --shards``, one whose index is spread over shard deployments."""
    settings = settings or Settings()
    # The MCP tools answer from the engine this app loads: one index and one model in memory.
    assistant = build_mcp_server(lambda: app.state.engine)
    # Stateless: every MCP request stands alone, so any worker can answer it. The host decides
    # the SDK's DNS-rebinding protection (on for a loopback address).
    mcp_transport = assistant.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, host=settings.host
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = load_engine(settings)
        # Ready now; what only some requests need is built meanwhile (they wait for it).
        warm_up = threading.Thread(
            target=_warm_up, args=(app.state.engine,), name="warm-up", daemon=True
        )
        warm_up.start()
        # Made here, on the loop that serves: its lock belongs to that loop.
        reloader = app.state.reloader = IndexReloader(app.state)
        watcher = (
            asyncio.create_task(reloader.watch(settings.reload_interval))
            if settings.reload_interval
            else None
        )
        try:
            with reload_on_sighup(reloader):
                async with assistant.session_manager.run():
                    yield
        finally:
            if watcher:
                watcher.cancel()
            warm_up.join()  # it reads the index being closed
            app.state.engine.close()

    # /docs is served with local assets (routes/docs.py), not FastAPI's CDN ones; no ReDoc.
    app = FastAPI(
        title="Papersearch",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses=EVERY_ROUTE,
    )
    app.state.settings = settings
    # What requests reach through service/deps.py; nothing else is kept on the state.
    app.state.engine = None  # loaded by the lifespan
    app.state.reloader = None  # made by the lifespan
    app.state.assistant = assistant
    app.state.metrics = ServiceMetrics(lambda: app.state.engine)
    install_error_handlers(app)
    for module in (search, similar, papers, export, corpus, config, tools, health, metrics, admin):
        app.include_router(module.router)
    mount_docs(app)
    mount_ui(app)
    # The transport's own route, at /mcp exactly (a Mount would answer at /mcp/ only).
    app.router.routes.extend(mcp_transport.routes)
    _add_middleware(app, settings)
    return app


def _warm_up(engine: SearchEngine) -> None:
    try:
        engine.warm_up()
    except Exception:  # a request that needs what failed tries again and reports it itself
        log.exception("warming the index up failed")


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """From the inside out (each ``add_middleware`` wraps the ones before): the key check,
    the rate limit, the body limit, CORS (outside them, so a browser can read their
    refusals), and the request context around everything (ids, logs, metrics, JSON 500s)."""
    if settings.api_key is not None:
        app.add_middleware(ApiKeyGate, api_key=settings.api_key)
    if settings.rate_limit:
        app.add_middleware(RateLimit, limits=settings.rate_limit)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER, "Mcp-Session-Id"],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After"],
        )
    app.add_middleware(
        RequestContext,
        routes_app=app,
        metrics=app.state.metrics,
        log_queries=settings.log_queries,
    )
