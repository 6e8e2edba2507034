"""The FastAPI application: built by a factory, state loaded once in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.assistant_tools import build_mcp_server
from service.errors import install_error_handlers
from service.index_watch import watch_index
from service.routes import admin, health, papers, search, similar, tools
from service.search import SearchEngine
from service.settings import Settings

DESCRIPTION = """Search over research-paper abstracts, by meaning and keywords.

Ask in natural language (`/search`, with filters), look up papers similar to one you know by
id (`/papers/{id}/similar`) or by its title as you remember it (`/similar?title=`). Chat
assistants use the same search as tools: MCP (streamable HTTP) at `/mcp`, OpenAI-style
functions at `/tools/openai` and `/tools/call`."""


def create_app(settings: Settings | None = None) -> FastAPI:
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
        app.state.engine = SearchEngine.load(settings)
        app.state.reload_lock = asyncio.Lock()
        watcher = (
            asyncio.create_task(watch_index(app, settings.reload_interval))
            if settings.reload_interval
            else None
        )
        try:
            async with assistant.session_manager.run():
                yield
        finally:
            if watcher:
                watcher.cancel()
            app.state.engine.close()

    app = FastAPI(title="Papersearch", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.assistant = assistant
    install_error_handlers(app)
    for module in (search, similar, papers, tools, health, admin):
        app.include_router(module.router)
    # The transport's own route, at /mcp exactly (a Mount would answer at /mcp/ only).
    app.router.routes.extend(mcp_transport.routes)
    return app
