"""Named dependencies: routes receive the loaded engine instead of reaching for globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.search import SearchEngine


def get_engine(request: Request) -> SearchEngine:
    return request.app.state.engine


EngineDep = Annotated[SearchEngine, Depends(get_engine)]
