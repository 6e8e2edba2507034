from __future__ import annotations

from fastapi import APIRouter

from service.deps import EngineDep
from service.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health()


@router.get("/readyz", response_model=Readiness, summary="The index and model are loaded")
def readyz(engine: EngineDep) -> Readiness:
    manifest = engine.index.manifest
    return Readiness(
        papers=len(engine.index),
        model=manifest.model,
        backend=manifest.backend,
        dimension=manifest.dimension,
        format_version=manifest.format_version,
        segments=len(manifest.segments),
        built_at=manifest.built_at,
        corpus_checksum=manifest.corpus_checksum,
    )
