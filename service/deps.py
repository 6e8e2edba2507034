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
    return request.app.state.engine


EngineDep = Annotated[SearchEngine, Depends(get_engine)]


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_reloader(request: Request) -> IndexReloader:
    return request.app.state.reloader


ReloaderDep = Annotated[IndexReloader, Depends(get_reloader)]


async def get_assistant(request: Request) -> MCPServer:
    return request.app.state.assistant


AssistantDep = Annotated[MCPServer, Depends(get_assistant)]


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
