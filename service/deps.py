"""Named dependencies: routes receive the loaded engine instead of reaching for globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from mcp.server.mcpserver import MCPServer

from service.index_watch import IndexReloader
from service.observability import ServiceMetrics
from service.search import SearchEngine
from service.settings import Settings


async def get_engine(request: Request) -> SearchEngine:
    # async, though it awaits nothing: FastAPI runs a plain function in its thread pool, a
    # hand-over between threads on every request.
    # app.state's attributes are Any to mypy: each is named with its type on the way out.
    engine: SearchEngine = request.app.state.engine
    return engine


EngineDep = Annotated[SearchEngine, Depends(get_engine)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_reloader(request: Request) -> IndexReloader:
    reloader: IndexReloader = request.app.state.reloader
    return reloader


ReloaderDep = Annotated[IndexReloader, Depends(get_reloader)]


async def get_assistant(request: Request) -> MCPServer:
    assistant: MCPServer = request.app.state.assistant
    return assistant


AssistantDep = Annotated[MCPServer, Depends(get_assistant)]


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
