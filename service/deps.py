"""Named dependencies: routes receive the loaded engine instead of reaching for globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

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
