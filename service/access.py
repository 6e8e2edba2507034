"""Who may call the service, how often, and with how much: the layers in front of the routes.

Each is a plain ASGI middleware (no per-request task or body copy, and streamed MCP
responses pass through untouched). They answer in the API's one error shape, so a client
reading ``code`` learns why it was turned away: ``not_authenticated`` (401),
``rate_limited`` (429, with ``Retry-After``) or ``request_too_large`` (413).
"""

from __future__ import annotations

import hmac
import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import NotAuthenticated, ServiceError, error_response
from service.routes.ui import UI_PATHS, UI_PREFIXES

# Probes must work without a key and without counting against a client's limit; the API's
# documentation and the search page (which calls the API with the key) hold no data, and
# browsers fetch them without headers.
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
# The API's description, and what the search page needs before it has a key: no corpus data.
OPEN_PATHS = (
    HEALTH_PATHS | {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/config"} | UI_PATHS
)


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"

    def __init__(self, limit: str, client: str, retry_after: int) -> None:
        super().__init__(f"more than {limit} from {client}; retry in {retry_after} s")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RequestTooLarge(ServiceError):
    status = 413
    code = "request_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the request body is larger than {limit} bytes (PAPERSEARCH_MAX_REQUEST_BYTES); "
            "send fewer papers per request"
        )


def key_matches(given: str, expected: SecretStr) -> bool:
    """Constant time: how much of a guess matched must not show in the response time."""
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(UI_PREFIXES)


def bearer_token(headers: Headers) -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class ApiKeyGate:
    """With an API key configured, every route but health, docs and the search page's files
    needs it (the admin routes check it again themselves, and stay off while no key is set)."""

    def __init__(self, app: ASGIApp, *, api_key: SecretStr) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not key_matches(bearer_token(Headers(scope=scope)), self.api_key):
            await error_response(NotAuthenticated())(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RateLimit:
    """Per client address, over a moving window: exact, and ``Retry-After`` is the moment
    the oldest counted request leaves the window. Counts live in this process (each worker
    counts its own requests)."""

    def __init__(self, app: ASGIApp, *, limits: str) -> None:
        self.app = app
        self.items: list[RateLimitItem] = parse_many(limits)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = client[0] if client else "unknown"
        # Test every limit before counting, so a refused request uses up none of them.
        exceeded = next((item for item in self.items if not self.limiter.test(item, key)), None)
        if exceeded is None:
            for item in self.items:
                self.limiter.hit(item, key)
            await self.app(scope, receive, send)
            return
        reset = self.limiter.get_window_stats(exceeded, key).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        error = RateLimited(str(exceeded), key, retry_after)
        await error_response(error)(scope, receive, send)


class BodySizeLimit:
    """Refuse bodies over the limit before they are read whole: at once when the declared
    ``Content-Length`` is too large, else as soon as the streamed bytes pass it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = error_response(RequestTooLarge(max_bytes))  # stateless, reusable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self.too_large(scope, receive, send)
            return

        received = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                exceeded = True
                # The app sees a client that went away and stops reading.
                return {"type": "http.disconnect"}
            return message

        response_started = False

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded:
                return  # whatever the app answers to a cut-off body is replaced by the 413
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:  # the app's own failure: not this layer's to answer
                raise
        if exceeded and not response_started:
            await self.too_large(scope, receive, send)
