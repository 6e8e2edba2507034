"""The FastAPI application: built by a factory, state loaded once in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.errors import install_error_handlers
from service.routes import health, papers, search, similar
from service.search import SearchEngine
from service.settings import Settings

DESCRIPTION = """Semantic search over research-paper abstracts.

Ask in natural language (`/search`), look up papers similar to one you know by id
(`/papers/{id}/similar`) or by its title as you remember it (`/similar?title=`).
Scores are cosine similarities between all-MiniLM-L6-v2 embeddings: higher is more similar."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = SearchEngine.load(settings)
        try:
            yield
        finally:
            app.state.engine.close()

    app = FastAPI(title="Papersearch", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    for router in (search.router, similar.router, papers.router, health.router):
        app.include_router(router)
    return app
