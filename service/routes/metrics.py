from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import MetricsDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(service_metrics: MetricsDep) -> Response:
    """Requests by route and status, a latency histogram, server errors, and the served
    index (papers, model, backend, build), in the Prometheus text format."""
    return Response(service_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
