"""The indexing job's embedding on a Ray cluster (`papersearch index --ray ADDRESS`).

Only the embedding runs on Ray: it is nearly all of a build's time, and it is the part that
spreads, one model per actor. ``build_index`` stays the one build path: it reads the corpus,
looks every text up in the embedding cache, hands the missing ones to ``ray_encoder`` in the
same chunks the local job embeds, caches each chunk as it comes back, and writes the index
with the same atomic swap, in this process. So cached papers are never sent to the cluster,
a killed driver leaves the previous index in place (and the chunks it got, in the cache),
and the index and the summary line are those of a local build.

Parsing stays on the driver, for two reasons: the duplicate merge (``indexing.corpus``)
needs every file's records in order, and reading here means the corpus files need to be on
this machine only, not on every node. Parsing is a small share of a build.

The pipeline is a Ray Dataset of chunks, one row and one block each, mapped by an actor
pool (``EmbeddingActor``, which loads the model once). Every text is embedded by the same
``Embedder.encode`` call, with the same ``batch_size``, as locally: the default backend
(onnx-int8) embeds each text alone, so a vector does not depend on which chunk or actor it
went through. Each actor's model uses every core of its node, as the local job's does, so
one actor per node (the default) is the shape for CPU nodes; more share the node's cores.
Actors are restarted and their chunks retried when a worker process or node dies (Ray Data
starts a pool's actors with ``max_restarts`` and ``max_task_retries`` of -1); the job fails
only if the cluster cannot finish it at all.

A GPU reservation (``gpus_per_worker``) places each actor on a node with that many free
GPUs, and the actor moves its model there (``models.on_device``). Only the torch backend
can run on a GPU (the int8 export runs on onnxruntime's CPU build), so a GPU job with
another backend is refused before anything is read.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from indexing.build import ENCODE_CHUNK, ChunkEncoder
from indexing.errors import PapersearchError
from models import Embedder, ModelLoader, on_device
from models.embedder import TORCH_BACKEND

GPU_DEVICE = "cuda"  # where an actor with a GPU reserved runs its model
LOCAL = "local"  # the address that starts a Ray instance on this machine for the run
AUTO = "auto"  # the cluster this machine is a node of
RAY_CLIENT_SCHEME = "ray://"
RAY_CLIENT_PORT = 10001  # Ray Client's port where a ray:// address names none
# How long the address's port gets to answer before the job gives up on it: Ray itself
# keeps retrying an unreachable cluster for minutes.
CONNECT_TIMEOUT_S = 5.0
# Ray Data's loggers, quietened for the job: what a user must see still shows.
RAY_DATA_LOGGERS = {"ray.data": logging.WARNING, "ray.data._internal.progress": logging.ERROR}
INSTALL_HINT = "pip install 'papersearch[ray]' or make install-ray"


class RayUnavailable(PapersearchError):
    """Ray is not installed, or the cluster cannot be reached; nothing was changed."""

    status = 503
    code = "ray_unavailable"


class RayJobFailed(PapersearchError):
    """The cluster could not embed the corpus (e.g. no node could load the model)."""

    status = 500
    code = "ray_job_failed"


@dataclass(frozen=True)
class RayJob:
    """Where and how the embedding runs on Ray.

    ``address``: ``local``, ``auto``, ``host:port`` or ``ray://host:port``.
    ``embed_workers``: actors, one model each; None: one per alive node.
    ``gpus_per_worker``: GPUs each actor reserves (0: none; see the module doc).
    ``chunk_size``: texts per row of the dataset; the local job's chunk unless a test wants
    many small ones.
    """

    address: str
    embed_workers: int | None = None
    gpus_per_worker: float = 0
    chunk_size: int = ENCODE_CHUNK


class EmbeddingActor:
    """One model per actor process, loaded once; called with one chunk per batch."""

    def __init__(
        self,
        model_name: str,
        backend: str,
        load_model: ModelLoader,
        batch_size: int,
        device: str | None,
    ):
        # Ray sets OMP_NUM_THREADS to the actor's CPU reservation (1), which torch obeys and
        # onnxruntime ignores: torch gets the node's cores too, as in the local job. (Set
        # before the model is loaded: torch reads it when it is first imported.)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        os.environ["OMP_NUM_THREADS"] = str(cores or os.cpu_count() or 1)
        self._model: Embedder = load_model(model_name, backend)
        if device is not None:  # a GPU reserved: the model runs there
            self._model = on_device(self._model, device)
        self._batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (texts,) = batch["texts"]  # batch_size=1: one chunk
        vectors = self._model.encode([str(text) for text in texts], batch_size=self._batch_size)
        # Raw float32 bytes: a chunk's rows are known to the driver, and a bytes column
        # is one Arrow type whatever the chunk's length (a ragged tensor column is not).
        raw = np.ascontiguousarray(vectors, dtype=np.float32).tobytes()
        return {"chunk": batch["chunk"], "vectors": np.array([raw], dtype=object)}


def ray_encoder(
    job: RayJob, model_name: str, backend: str, load_model: ModelLoader, batch_size: int
) -> ChunkEncoder:
    """A ``ChunkEncoder`` that connects when the first missing chunk is asked for, so a
    corpus found whole in the cache never reaches the cluster, and disconnects when done.

    Ray's presence and the address's port are checked now, when the job starts: a
    mistyped address fails in a second, not after the corpus is read and looked up."""
    ray = import_ray()
    if job.gpus_per_worker and backend != TORCH_BACKEND:
        raise RayJobFailed(
            f"--ray-gpus-per-worker runs the model on GPUs, which only the {TORCH_BACKEND} "
            f"backend can ({backend} runs on CPUs): add --backend {TORCH_BACKEND}; index "
            "unchanged"
        )
    if not ray.is_initialized() and job.address not in (LOCAL, AUTO):
        check_reachable(job.address)

    def encode(chunks: list[list[str]]) -> Iterator[tuple[int, np.ndarray]]:
        with connected(ray, job.address):
            yield from _embedded_chunks(
                ray, job, chunks, model_name, backend, load_model, batch_size
            )

    return encode


def import_ray() -> ModuleType:
    """Ray, or the one line that says how to install it: Ray is an optional extra."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"Ray is not installed: {INSTALL_HINT}") from None
    return ray


@contextmanager
def connected(ray: ModuleType, address: str) -> Iterator[None]:
    """Ray initialised for the block: a process already connected (a test's driver, a
    caller's session) keeps its connection; one made here is closed after."""
    if ray.is_initialized():
        yield
        return
    try:
        ray.init(
            address=address,
            logging_level=logging.WARNING,
            log_to_driver=False,  # the workers' log lines would interleave with the bar
            include_dashboard=False if address == LOCAL else None,
        )
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise RayUnavailable(
            f"cannot connect to the Ray cluster at {address}: {_first_line(exc)}"
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


def check_reachable(address: str) -> None:
    """Refuse in seconds an address whose port does not answer."""
    host_port = address.removeprefix(RAY_CLIENT_SCHEME)
    host, _, port_text = host_port.rpartition(":")
    if not host:
        if address.startswith(RAY_CLIENT_SCHEME):
            host, port_text = host_port, str(RAY_CLIENT_PORT)
        else:
            raise RayUnavailable(
                f"{address!r} is not a Ray address: give local, auto, host:port or ray://host:port"
            )
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RayUnavailable(f"{address!r} is not a Ray address: {port_text!r} is not a port")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayUnavailable(
            f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}"
        ) from None


def _embedded_chunks(
    ray: ModuleType,
    job: RayJob,
    chunks: list[list[str]],
    model_name: str,
    backend: str,
    load_model: ModelLoader,
    batch_size: int,
) -> Iterator[tuple[int, np.ndarray]]:
    """Each chunk's vectors as its row comes back, in the order the actors finish them."""
    from ray.data import ActorPoolStrategy, DataContext

    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    _check_feasible(job, nodes)
    workers = job.embed_workers or len(nodes)
    context = DataContext.get_current()
    bars = context.enable_progress_bars
    context.enable_progress_bars = False  # the job draws its own bar (rows, rows/s)
    # Ray Data's own lines (plans, timings, and that its bars are off) would break the bar.
    loggers = {name: logging.getLogger(name) for name in RAY_DATA_LOGGERS}
    levels = {name: logger.level for name, logger in loggers.items()}
    for name, logger in loggers.items():
        logger.setLevel(RAY_DATA_LOGGERS[name])
    rows = [{"chunk": number, "texts": texts} for number, texts in enumerate(chunks)]
    try:
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            EmbeddingActor,
            batch_size=1,
            batch_format="numpy",
            # A fixed pool, whose actors Ray Data starts with max_restarts and
            # max_task_retries of -1: a lost actor is started again and its chunks retried.
            compute=ActorPoolStrategy(size=max(1, min(workers, len(rows)))),
            num_cpus=1,
            num_gpus=job.gpus_per_worker or None,
            fn_constructor_kwargs={
                "model_name": model_name,
                "backend": backend,
                "load_model": load_model,
                "batch_size": batch_size,
                "device": GPU_DEVICE if job.gpus_per_worker else None,
            },
        )
        for row in dataset.iter_rows():
            number = int(row["chunk"])
            vectors = np.frombuffer(row["vectors"], dtype=np.float32)
            yield number, vectors.reshape(len(chunks[number]), -1)
    except PapersearchError:
        raise
    except Exception as exc:  # whatever the cluster raised: one line, the index untouched
        cause = _root_cause(exc)
        raise RayJobFailed(
            f"the Ray job failed: {type(cause).__name__}: {_first_line(cause)}; index unchanged"
        ) from exc
    finally:
        context.enable_progress_bars = bars
        for name, logger in loggers.items():
            logger.setLevel(levels[name])


def _check_feasible(job: RayJob, nodes: list[dict[str, float]]) -> None:
    """Refuse a pool no node can host: Ray would keep its actors pending, and the job
    would wait forever without a word."""
    fits = [
        node
        for node in nodes
        if node.get("CPU", 0) >= 1 and node.get("GPU", 0) >= job.gpus_per_worker
    ]
    if not fits:
        most = max((node.get("GPU", 0) for node in nodes), default=0)
        raise RayJobFailed(
            f"an embedding actor reserves 1 CPU and {job.gpus_per_worker:g} GPU, and no "
            f"node of the Ray cluster has that (at most {most:g} GPU each); index unchanged"
        )


def _root_cause(error: BaseException) -> BaseException:
    """The error a worker raised, out of the layers Ray and Ray Data wrap it in."""
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = getattr(error, "cause", None)
        if isinstance(inner, BaseException):
            error = inner
        elif error.__cause__ is not None:
            error = error.__cause__
        else:
            break
    return error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
