"""What Ray Serve's HTTP proxies add around the service (``serve --ray``): imported by each
proxy as it starts, so it imports neither the app nor the index and model code."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observability import REQUEST_ID_HEADER


class OneRequestId:
    """Serve's proxy adds an ``X-Request-ID`` of its own to every answer, beside the app's
    (the same id, as the app adopts the one the proxy passes in): the app's alone is kept,
    so a client reads one id, not "id, id"."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_one_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                ids = headers.getlist(REQUEST_ID_HEADER)
                if len(ids) > 1:
                    del headers[REQUEST_ID_HEADER]
                    headers.append(REQUEST_ID_HEADER, ids[0])
            await send(message)

        await self.app(scope, receive, send_one_id)


def proxy_middlewares() -> list[Middleware]:
    """Called by each Serve proxy as it starts (``PROXY_CALLBACK``): wraps Serve's own."""
    return [Middleware(OneRequestId)]
