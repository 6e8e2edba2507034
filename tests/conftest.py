"""Shared fixtures: one real index built from the seeds per session, one app over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexing.build import BuildReport, build_index
from models import DEFAULT_MODEL, load_embedder
from service.app import create_app
from service.settings import SEED_CAPTURE_DATE, Settings

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(relative: str) -> Path:
    """A file of ../shared/data, or a skip where that folder is absent (a user's fresh clone)."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not present: the shared data sets live beside the checkout only")
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the session: each seed paper is embedded once, then reused."""
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session")
def seed_build(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> BuildReport:
    return build_index(
        [SEEDS],
        tmp_path_factory.mktemp("data") / "index",
        cache_dir=cache_dir,
        model_name=DEFAULT_MODEL,
        load_model=load_embedder,
        capture_date=SEED_CAPTURE_DATE,
        progress=False,
    )


@pytest.fixture(scope="session")
def seed_settings(seed_build: BuildReport, cache_dir: Path) -> Settings:
    return Settings(index_dir=seed_build.index_dir, cache_dir=cache_dir)


@pytest.fixture(scope="session")
def client(seed_settings: Settings) -> Iterator[TestClient]:
    """The real app over the seed index; entering the client runs the lifespan (loads once)."""
    with TestClient(create_app(seed_settings)) as test_client:
        yield test_client
