"""Every setting of the service and the CLI, read once from ``PAPERSEARCH_*`` variables."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexing.index_types import IndexType
from models import DEFAULT_BACKEND, DEFAULT_MODEL, KNOWN_MODELS, PRESETS, resolve_model_name
from models.embedder import Backend
from service.ranking import DENSE_WEIGHT, RERANK_DEPTH, Fusion, SearchMode

# The most workers `papersearch serve` starts unasked (see Settings.serving_workers).
MAX_DEFAULT_WORKERS = 4


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# The seed pages were captured in mid-2026; dates they show without a year are resolved
# against this day. Any day from 2026-06-04 to 2027-01-06 gives the same dates for the seeds.
SEED_CAPTURE_DATE = date(2026, 6, 30)


class Settings(BaseSettings):
    """Built once at start-up (CLI or ``create_app``) and passed down.

    Nothing else reads the environment, so tests pass a ``Settings(...)`` instead of patching.
    """

    model_config = SettingsConfigDict(env_prefix="PAPERSEARCH_", extra="ignore")

    index_dir: Path = Field(Path("data/index"), description="Index folder the service serves.")
    cache_dir: Path = Field(Path("data/cache"), description="Embedding cache kept across builds.")
    model: str = Field(
        DEFAULT_MODEL,
        description="Embedding model or preset (`fast`, `quality`); must match the index.",
    )
    backend: Backend | None = Field(
        None,
        description="How the model runs: `onnx-int8` (the model exported to ONNX and "
        "quantised, run by onnxruntime) or `torch` (the reference). Unset: `index` and `eval` "
        "build with onnx-int8, and an index is served with the backend that built it.",
    )
    index_type: IndexType = Field(
        IndexType.AUTO,
        description="Dense index `papersearch index` builds: `auto` (exact below 100,000 "
        "papers, `ivf-sq8` above), `flat`, `ivf-sq8`, `ivf-pq` or `hnsw`.",
    )
    search_depth: int = Field(
        128,
        ge=1,
        le=65_536,
        description="Effort of an approximate index per query: IVF lists probed, or HNSW's "
        "candidate list. Higher is slower and closer to exact (README: the ANN table).",
    )
    query_batch_size: int = Field(
        64, ge=1, le=1024, description="Most concurrent queries embedded in one forward pass."
    )
    query_cache_size: int = Field(
        1024, ge=0, le=1_000_000, description="Query vectors kept for repeated queries (0: off)."
    )
    api_key: SecretStr | None = Field(
        None,
        description="Bearer key (`Authorization: Bearer <key>`) every endpoint but the health "
        "checks and the API docs then requires; the admin endpoints need it always (unset, "
        "they answer 403).",
    )
    cors_origins: list[str] = Field(
        [],
        description="Origins browsers may call the API from, as a JSON list "
        '(`["https://example.org"]`, or `["*"]` for any); empty, no CORS headers are sent.',
    )
    rate_limit: str | None = Field(
        None,
        description="Requests one client address may make, in the `limits` notation: "
        '"120/minute", or several as "10/second;600/hour". Over it: 429 with `Retry-After`. '
        "Unset: no limit. Counted per worker.",
    )
    max_query_chars: int = Field(
        1000, ge=1, le=100_000, description="Longest query accepted, in characters."
    )
    max_text_chars: int = Field(
        20_000,
        ge=1,
        le=200_000,
        description="Longest text `/similar` takes (a pasted abstract or introduction).",
    )
    max_request_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest request body accepted, in bytes (413 above it).",
    )
    log_queries: bool = Field(
        False,
        description="Write the query string of each request into the access log (off: only "
        "the path, so no query text is kept).",
    )
    reload_interval: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="Seconds between checks for a new build of the index (0: never); a build "
        "written by `papersearch index`, `add` or `remove` is then served without a restart.",
    )
    capture_date: date = Field(
        SEED_CAPTURE_DATE, description="Day the site pages were captured; resolves yearless dates."
    )
    batch_size: int = Field(32, ge=1, le=1024, description="Texts per forward pass when indexing.")
    host: str = Field("127.0.0.1", description="Address `papersearch serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `papersearch serve` listens on.")
    workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Processes `papersearch serve` runs on the one port, each with its own "
        "model; they share the memory-mapped vectors. Unset: one per core, at most "
        f"{MAX_DEFAULT_WORKERS}.",
    )
    model_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Threads one forward pass of the model may use. Unset: every core, and "
        "in each of several workers, its share of the cores.",
    )
    verified_build: Path | None = Field(
        None,
        description="Set by `papersearch serve` for the processes it starts, not by users: "
        "the build folder it has just verified file by file, which they then open without "
        "hashing every file again.",
    )
    ray_address: str | None = Field(
        None,
        description="The Ray cluster `papersearch index --ray` and `serve --ray` run on: "
        "`auto` (the cluster this machine belongs to), `ray://host:10001` (a remote one, "
        "through Ray Client), `host:6379`, or `local` (one started on this machine for the "
        "run). Unset: no Ray, everything runs in this process.",
    )
    ray_embed_workers: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Embedding actors of the Ray indexing job, one model each. Unset: one per "
        "node of the cluster.",
    )
    ray_gpus_per_worker: float = Field(
        0,
        ge=0,
        le=64,
        description="GPUs each embedding actor of the Ray job reserves (0: CPU actors); the "
        "actor runs its model on the GPU, which needs the torch backend (`--backend torch`).",
    )
    replicas: int = Field(
        1,
        ge=1,
        le=1024,
        description="Copies of the service `serve --ray` deploys, each with its own model, "
        "all reading the one index folder (a path every node can read).",
    )
    max_replicas: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="With `serve --ray`: above `replicas`, Ray Serve adds copies up to this "
        "many while each has more than `target_ongoing_requests` requests in flight, and "
        "removes them again when idle. Unset: a fixed `replicas`.",
    )
    target_ongoing_requests: float = Field(
        2.0,
        gt=0,
        le=1000,
        description="Requests in flight per copy that Ray Serve's autoscaling aims at.",
    )
    replica_cpus: float = Field(
        1.0,
        gt=0,
        le=256,
        description="CPUs Ray reserves for each copy of the service and each shard.",
    )
    shards: int = Field(
        1,
        ge=1,
        le=256,
        description="With `serve --ray`: deployments the index is split into, each holding "
        "1/S of its vectors, BM25 postings and records, behind a router that merges their "
        "answers exactly. 1: no split.",
    )
    shard_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="With `serve --ray --shards`: seconds the router waits for a shard's "
        "answer before the request fails with 503 (shard_unavailable), naming the shard.",
    )
    title_match_threshold: float = Field(
        88.0, ge=0, le=100, description="Lowest fuzzy score (0-100) at which a typed title matches."
    )
    similar_mode: SearchMode = Field(
        SearchMode.HYBRID,
        description="How papers like a paper, a text or a set of examples are ranked: hybrid "
        "(the vector and the examples' key terms through BM25, fused as a search is) or dense.",
    )
    search_mode: SearchMode = Field(
        SearchMode.HYBRID, description="Mode of a search that names none: hybrid, dense, lexical."
    )
    fusion: Fusion = Field(
        Fusion.BLEND,
        description="How hybrid mode fuses: `blend` (min-max scores, weighted), `rrf`, or "
        f"`learned` (the blend's top {RERANK_DEPTH} reordered by a ranking model: `ranker`).",
    )
    ranker: Path | None = Field(
        None,
        description="The model of `fusion=learned` (LightGBM's text format, gzipped or not, "
        "as `benchmarks/train_ranker.py` writes it); unset: the one shipped, trained on SciFact.",
    )
    dense_weight: float = Field(
        DENSE_WEIGHT,
        ge=0,
        le=1,
        description="Weight of the dense score in the blend (BM25 gets the rest).",
    )
    rrf_k: int = Field(60, ge=1, le=1000, description="Rank offset of reciprocal-rank fusion.")
    date_sort_pool: int = Field(
        100, ge=1, le=10_000, description="How many top matches `sort=date` orders by date."
    )

    @property
    def serving_workers(self) -> int:
        """How many processes ``papersearch serve`` runs: the setting, else one per core.

        Python work (HTTP, ranking, JSON) holds the interpreter lock, so one process uses
        one core for it whatever the model does; a worker per core uses them all (README,
        Performance, has the searches a second of each). More workers than cores add
        memory, not speed; the cap bounds the memory (each holds its own model and BM25
        index) on a machine with many cores.
        """
        return self.workers or min(usable_cores(), MAX_DEFAULT_WORKERS)

    @property
    def worker_model_threads(self) -> int:
        """Threads for the model in each of ``serving_workers`` processes: the cores shared
        out, so that the workers' forward passes do not fight over the same cores (two
        workers of two threads on two cores answered far fewer searches than two of one)."""
        return self.model_threads or max(1, usable_cores() // self.serving_workers)

    @property
    def build_backend(self) -> Backend:
        """The backend a new index is built with: the one asked for, else the default."""
        return self.backend or DEFAULT_BACKEND

    @model_validator(mode="after")
    def _ranker_with_learned_fusion(self) -> Settings:
        """A ranking model only ranks over the blend it was trained on: refused, not ignored,
        where it could not be used as asked."""
        if self.ranker is not None and self.fusion is not Fusion.LEARNED:
            raise ValueError("ranker: a ranking model is used only with fusion=learned")
        if self.fusion is Fusion.LEARNED and self.dense_weight != DENSE_WEIGHT:
            raise ValueError(
                f"dense_weight: learned fusion reorders the blend its model was trained on "
                f"({DENSE_WEIGHT}); leave the weight at {DENSE_WEIGHT} or use fusion=blend"
            )
        return self

    @field_validator("rate_limit")
    @classmethod
    def _readable_rate_limit(cls, rate_limit: str | None) -> str | None:
        if rate_limit is None or not rate_limit.strip():
            return None
        from limits import parse_many  # 30 ms to import; most servers set no limit

        try:
            parse_many(rate_limit)
        except ValueError:
            raise ValueError(
                f"{rate_limit!r} is not a rate limit; write e.g. 120/minute or 10/second;600/hour"
            ) from None
        return rate_limit

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        canonical = resolve_model_name(model)
        if canonical not in KNOWN_MODELS:
            raise ValueError(
                f"{model!r} is not a packaged model; choose a preset {sorted(PRESETS)} "
                f"or a model {sorted(KNOWN_MODELS)}"
            )
        return canonical
