"""A sharded index: shards that answer primitive questions about their own rows, and the
router's ``ShardedIndex`` that puts their answers together.

Exactness is by construction: the router runs the one ``SearchEngine`` over a
``ShardedIndex``, which is a ``PaperIndex`` whose heavy parts (vectors, BM25 postings,
records) are asked of the shards (``indexing.shards`` cuts them), and whose small parts
(filter columns, title data, map points) the router maps from the shards' folders itself.
Every ranking step is the unsharded code over the same rows; what is merged is merged the way
segments are: the nearest papers by ``SegmentedDense.merged``, BM25 with the whole index's
statistics (two rounds: the shards' document frequencies, summed, then their postings scored
with the sums), records and vectors put back in the order asked.

A call to a shard returns something whose ``result()`` waits for its answer, so the router
asks every shard before it waits on any. ``LocalShard`` answers in this process (tests,
measurements); ``ServeShard`` is a Ray Serve deployment handle of a ``ShardServer``
deployed as it is (``shard_applications``).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

import numpy as np

from indexing import paper_db
from indexing.index_types import MIN_SAMPLE, Neighbours, Ranked, SegmentedDense
from indexing.lexical import CorpusStats, LexicalIndex
from indexing.manifest import IndexUnusable, Manifest, Segment, builds_dir
from indexing.reader import PaperIndex, check_dimension, open_tables, table_file
from indexing.records import Paper
from indexing.row_space import RowSpace
from indexing.shards import checked_shards, shard_hint
from models import load_embedder
from service.errors import ShardUnavailable
from service.query_encoder import QueryEncoder
from service.search import SearchEngine, limit_blas_threads
from service.settings import Settings

if TYPE_CHECKING:  # Ray is an optional extra: imported where the shards are deployed
    from ray.serve import Application

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
P = ParamSpec("P")

# Terms whose corpus-wide document frequency the router keeps (``ShardedLexical``): a few
# megabytes, the vocabulary of many thousands of queries.
DF_CACHE_TERMS = 50_000


class Pending(Protocol[T_co]):
    """A shard's answer on its way."""

    def result(self, timeout_s: float | None = None) -> T_co: ...


@dataclass(frozen=True)
class Answered(Generic[T]):
    """An answer already at hand (a shard in this process)."""

    value: T

    def result(self, timeout_s: float | None = None) -> T:
        return self.value


@dataclass(frozen=True)
class ShardInfo:
    """What the router needs to know of a shard before it asks it anything."""

    folder: Path  # the shard's index folder, on a path the router reads too
    build: Path  # the build folder it opened (and verified, every file)
    manifest: Manifest
    length_sum: int  # its texts' total BM25 length (CorpusStats)


class ShardServer:
    """One shard, opened as an ordinary index: answers in its own rows (0 .. its papers),
    without a model (the router embeds queries). Opening it verifies every file of its
    build, so the router hashes only what it maps itself (``ShardedIndex``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.index = PaperIndex.open(folder, shard=True)

    def describe(self) -> ShardInfo:
        return ShardInfo(
            self.folder, self.index.build_dir, self.index.manifest, self.index.lexical.length_sum
        )

    def nearest_many(self, vectors: np.ndarray, n: int, search_depth: int) -> list[Ranked]:
        return self.index.dense.ranked_many(vectors, n, search_depth)

    def scores_at(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.index.dense.scores_at(vector, rows)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        return self.index.vectors_at(rows)

    def dfs(self, terms: list[str]) -> dict[str, int]:
        return self.index.lexical.dfs(terms)

    def matches(self, terms: list[str], corpus: CorpusStats) -> tuple[np.ndarray, np.ndarray]:
        return self.index.lexical.matches(terms, corpus)

    def lengths_at(self, rows: np.ndarray) -> np.ndarray:
        return self.index.lexical.lengths_at(rows)

    def holding(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        return self.index.lexical.holding(terms, rows)

    def papers_at(self, rows: np.ndarray) -> list[Paper]:
        return self.index.papers_at(rows)

    def sentences_at(self, rows: np.ndarray) -> list[list[tuple[int, int]]]:
        return self.index.sentences_at(rows)

    def papers_with_sentences(self, rows: np.ndarray) -> list[tuple[Paper, list[tuple[int, int]]]]:
        return self.index.papers_with_sentences(rows)

    def row_of(self, paper_id: str) -> int | None:
        return self.index.row_of(paper_id)

    def row_recording_arxiv(self, arxiv_id: str) -> int | None:
        return self.index.row_recording_arxiv(arxiv_id)

    def map_labels(self, rows: np.ndarray | None) -> list[paper_db.Label]:
        return self.index.map_labels(rows)

    def paper_ids(self) -> list[str]:
        return self.index.paper_ids()

    def close(self) -> None:
        self.index.close()


class ShardClient(Protocol):
    """How the router asks a shard: ``call(ShardServer.method, *args)`` starts the call and
    returns its answer on its way. ``failures``: what its answer raises when the shard is
    gone or failed (reported as ``ShardUnavailable``), besides a ``TimeoutError``."""

    failures: tuple[type[BaseException], ...]

    def call(
        self,
        method: Callable[Concatenate[ShardServer, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Pending[T]: ...


class LocalShard:
    """A shard in this process: each call answered before it returns, and counted by its
    method's name (``calls``: what a search costs in round trips, for tests)."""

    failures: tuple[type[BaseException], ...] = ()  # an exception here is a bug: raised as is

    def __init__(self, server: ShardServer) -> None:
        self.server = server
        self.calls: Counter[str] = Counter()

    def call(
        self,
        method: Callable[Concatenate[ShardServer, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Pending[T]:
        self.calls[method.__name__] += 1
        return Answered(method(self.server, *args, **kwargs))


class ServeShard:
    """A shard deployed by Ray Serve: a call is a request to its deployment, whose response
    is waited on later (``DeploymentResponse.result``)."""

    def __init__(self, handle: Any) -> None:
        from ray.exceptions import RayError
        from ray.serve.exceptions import RayServeException

        self.handle = handle  # a ray.serve.handle.DeploymentHandle of a ShardDeployment
        # A replica that died or raised (RayActorError, RayTaskError), or Serve refusing.
        self.failures: tuple[type[BaseException], ...] = (RayError, RayServeException)

    def call(
        self,
        method: Callable[Concatenate[ShardServer, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Pending[T]:
        response: Pending[T] = getattr(self.handle, method.__name__).remote(*args, **kwargs)
        return response


class ShardSet:
    """The router's shards, asked as one: every shard asked before any answer is waited
    on, each answer waited on ``timeout`` seconds at most, and a shard that fails or does
    not answer reported as such (``ShardUnavailable``, 503) rather than as a 500."""

    def __init__(self, clients: Sequence[ShardClient], timeout: float | None) -> None:
        if not clients:
            raise ValueError("a sharded index needs at least one shard")
        self.clients = list(clients)
        self.timeout = timeout

    def __len__(self) -> int:
        return len(self.clients)

    def everywhere(
        self,
        method: Callable[Concatenate[ShardServer, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> list[T]:
        """The same question of every shard; their answers in shard order."""
        pending = [client.call(method, *args, **kwargs) for client in self.clients]
        return [self._answer(number, answer) for number, answer in enumerate(pending)]

    def by_rows(
        self,
        space: RowSpace,
        method: Callable[..., T],
        rows: Sequence[int] | np.ndarray,
        *args: Any,
    ) -> list[tuple[np.ndarray, T]]:
        """``method(*args, local rows)`` of each shard holding some of ``rows`` (in
        ``space``, the index's rows by shard), with the positions in ``rows`` it answers."""
        pending = [
            (shard, positions, self.clients[shard].call(method, *args, local))
            for shard, positions, local in space.split(rows)
        ]
        return [(positions, self._answer(shard, answer)) for shard, positions, answer in pending]

    def _answer(self, number: int, pending: Pending[T]) -> T:
        client = self.clients[number]
        try:
            return pending.result(timeout_s=self.timeout)
        except TimeoutError:
            raise ShardUnavailable(
                number, len(self), f"no answer within {self.timeout:g} s"
            ) from None
        except client.failures as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ShardUnavailable(number, len(self), reason[:200]) from exc


class ShardedDense(SegmentedDense):
    """Nearest papers and exact scores over the shards' vectors: each shard searches its own
    (``nearest_many`` in parallel), and ``SegmentedDense.merged`` keeps the best by the
    ANN's own ranking, which every shard shares (the source's trained structure refilled),
    so the rows kept are the whole index's."""

    def __init__(
        self, shards: ShardSet, rows: RowSpace, sample: np.ndarray, dimension: int
    ) -> None:
        self.shards = shards
        self.dimension = dimension
        super().__init__([], rows, sample)  # no parts here: every method below asks the shards

    def nearest_many(self, vectors: np.ndarray, n: int, search_depth: int) -> list[Neighbours]:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        found = self.shards.everywhere(ShardServer.nearest_many, vectors, n, search_depth)
        return self.merged(found, len(vectors), n)

    def scores_at(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        vector = np.asarray(vector, dtype=np.float32)
        return self._gathered((), ShardServer.scores_at, rows, vector)

    def vectors_at(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        return self._gathered((self.dimension,), ShardServer.vectors_at, rows)

    def _gathered(
        self,
        width: tuple[int, ...],
        method: Callable[..., np.ndarray],
        rows: Sequence[int] | np.ndarray,
        *args: Any,
    ) -> np.ndarray:
        """The float32 arrays ``method(*args, rows)`` answers (each row's of shape
        ``width``), row for row in the order asked."""
        gathered = np.empty((len(rows), *width), dtype=np.float32)
        for positions, found in self.shards.by_rows(self.rows, method, rows, *args):
            gathered[positions] = found
        return gathered


class ShardedLexical(LexicalIndex):
    """BM25 over the shards' postings with the whole index's statistics: a query's document
    frequencies are asked of every shard and summed (round one), then every shard scores its
    postings with the sums (round two), so the scores are the unsharded index's.

    The sums never change while the router serves (it serves one cut of one build), so
    the last ``DF_CACHE_TERMS`` terms' are kept: a term asked again (a highlight's weights,
    a common word) costs no round.
    """

    def __init__(self, shards: ShardSet, sizes: Sequence[CorpusStats]) -> None:
        # The base's parts are the postings of this process's segments: here there are none
        # (``_locate`` refuses), and every method that would read them is answered below.
        self.shards = shards
        self.size = sum(size.size for size in sizes)
        self.length_sum = sum(size.length_sum for size in sizes)
        self._starts = np.cumsum([0, *(size.size for size in sizes)])
        self._rows = RowSpace([size.size for size in sizes], [None] * len(sizes))
        self._dfs: OrderedDict[str, int] = OrderedDict()
        self._dfs_lock = threading.Lock()  # searches run in several threads

    def dfs(self, terms: Iterable[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(terms))
        with self._dfs_lock:
            known = {term: self._dfs[term] for term in wanted if term in self._dfs}
            for term in known:
                self._dfs.move_to_end(term)
        missing = [term for term in wanted if term not in known]
        if missing:
            totals = CorpusStats.total(
                CorpusStats(0, 0, dfs) for dfs in self.shards.everywhere(ShardServer.dfs, missing)
            )
            asked = {term: totals.dfs.get(term, 0) for term in missing}
            with self._dfs_lock:
                self._dfs.update(asked)
                while len(self._dfs) > DF_CACHE_TERMS:
                    self._dfs.popitem(last=False)
            known.update(asked)
        return {term: known[term] for term in wanted}

    def matches(
        self, terms: Sequence[str], corpus: CorpusStats | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if not terms:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        corpus = corpus if corpus is not None else self.stats(terms)
        found = self.shards.everywhere(ShardServer.matches, list(terms), corpus)
        rows = [
            local.astype(np.int64) + start
            for (local, _), start in zip(found, self._starts[:-1], strict=True)
        ]
        scores = [np.asarray(weights, dtype=np.float32) for _, weights in found]
        return np.concatenate(rows), np.concatenate(scores)

    def lengths_at(self, rows: np.ndarray) -> np.ndarray:
        lengths = np.zeros(len(rows), dtype=np.int32)
        for positions, found in self.shards.by_rows(self._rows, ShardServer.lengths_at, rows):
            lengths[positions] = found
        return lengths

    def holding(self, terms: Sequence[str], rows: np.ndarray) -> np.ndarray:
        held = np.zeros((len(terms), len(rows)), dtype=bool)
        for positions, found in self.shards.by_rows(
            self._rows, ShardServer.holding, rows, list(terms)
        ):
            held[:, positions] = found
        return held

    def _locate(self, term: str) -> list[Any]:
        raise NotImplementedError("a sharded index's postings are its shards': ask them")


class ShardedIndex(PaperIndex):
    """The index a sharded service's router serves: the shards' papers in order, their rows
    the rows of the index they were cut from. What ``SearchEngine`` reads of a ``PaperIndex``
    it reads here; what needs the vectors, postings or records is asked of the shards.

    It does not follow new builds of the index: a new build needs its shards cut again
    (``papersearch shard``) and the service deployed again.
    """

    remote = True

    def __init__(self, shards: Sequence[ShardClient], index_dir: Path, settings: Settings) -> None:
        self.shards = ShardSet(shards, settings.shard_timeout)
        infos = self.shards.everywhere(ShardServer.describe)
        # Each shard server verified its whole build as it opened it: the router hashes
        # only the files it maps itself (filter columns, titles, map points).
        checked = checked_shards(
            [info.folder for info in infos],
            index_dir=index_dir,
            model=settings.model,
            backend=settings.backend,
            hashed=table_file,
        )
        for info, shard in zip(infos, checked, strict=True):
            if shard.build != info.build:
                raise IndexUnusable(
                    f"the shard at {info.folder} was cut again while the service started: "
                    f"deploy it again ({shard_hint(index_dir, len(infos))} first if needed)"
                )
        first = checked[0].manifest
        placement = first.shard
        assert placement is not None  # checked_shards refuses an index that is no shard
        self.index_dir = index_dir
        self.build_dir = builds_dir(index_dir) / placement.parent_build
        papers = [shard.manifest.paper_count for shard in checked]
        # /readyz reports the shards as the index's segments, and the build they were cut
        # from (shards cut before the placement recorded it: when shard 0 was cut).
        self.manifest = first.model_copy(
            update={
                "paper_count": sum(papers),
                "corpus_checksum": placement.parent_checksum,
                "built_at": placement.parent_built_at or first.built_at,
                "build_seconds": (
                    placement.parent_build_seconds
                    if placement.parent_build_seconds is not None
                    else first.build_seconds
                ),
                "segments": [
                    Segment(name=f"{number + 1:06d}", rows=count)
                    for number, count in enumerate(papers)
                ],
                "files": {},
                "shard": None,
            }
        )
        self.segments = []
        self._use_tables(open_tables(checked))
        self.lexical = ShardedLexical(
            self.shards,
            [CorpusStats(info.manifest.paper_count, info.length_sum, {}) for info in infos],
        )
        self.dense = ShardedDense(
            self.shards, self.rows, self.columns.in_sample(MIN_SAMPLE), first.dimension
        )

    def paper_ids(self) -> list[str]:
        return [i for ids in self.shards.everywhere(ShardServer.paper_ids) for i in ids]

    def row_of(self, paper_id: str) -> int | None:
        return self._live_row(self.shards.everywhere(ShardServer.row_of, paper_id))

    def row_recording_arxiv(self, arxiv_id: str) -> int | None:
        return self._live_row(self.shards.everywhere(ShardServer.row_recording_arxiv, arxiv_id))

    def papers_at(self, rows: Sequence[int] | np.ndarray) -> list[Paper]:
        return self._gathered(ShardServer.papers_at, rows)

    def sentences_at(self, rows: Sequence[int] | np.ndarray) -> list[list[tuple[int, int]]]:
        return self._gathered(ShardServer.sentences_at, rows)

    def papers_with_sentences(
        self, rows: Sequence[int] | np.ndarray
    ) -> list[tuple[Paper, list[tuple[int, int]]]]:
        return self._gathered(ShardServer.papers_with_sentences, rows)

    def map_labels(self, rows: Sequence[int] | np.ndarray | None = None) -> list[paper_db.Label]:
        if rows is None:
            answers = self.shards.everywhere(ShardServer.map_labels, None)
            return [label for labels in answers for label in labels]
        return self._gathered(ShardServer.map_labels, rows)

    def _gathered(
        self,
        method: Callable[[ShardServer, np.ndarray], list[T]],
        rows: Sequence[int] | np.ndarray,
    ) -> list[T]:
        """``method``'s answers for ``rows``, each asked of its shard, in the order asked."""
        positions: list[int] = []
        values: list[T] = []
        for where, answers in self.shards.by_rows(self.rows, method, rows):
            positions.extend(where.tolist())
            values.extend(answers)
        order = np.argsort(np.asarray(positions, dtype=np.int64), kind="stable")
        # Every row asked lies in one shard, which answers it once (zip is strict above).
        assert np.array_equal(np.asarray(positions, np.int64)[order], np.arange(len(rows)))
        return [values[position] for position in order.tolist()]

    def close(self) -> None:
        """Nothing of its own to close: the shards are served, and closed, on their own."""


def load_sharded_engine(settings: Settings, *, shards: Sequence[ShardClient]) -> SearchEngine:
    """The router's engine: a ``ShardedIndex`` over ``shards`` (their placement checked) and
    the query model, with the shards' backend. It serves the shards it was started with:
    a new build of the index is served once it is cut again (``papersearch shard``) and the
    service deployed again, so ``reload_interval`` should be 0 for it.

    Called on an event loop (an app's lifespan), the loading runs in a thread of its own, as
    a deployment handle's answer may not be waited on from an event loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _load_sharded_engine(settings, shards)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-shards") as pool:
        return pool.submit(_load_sharded_engine, settings, shards).result()


def _load_sharded_engine(settings: Settings, shards: Sequence[ShardClient]) -> SearchEngine:
    limit_blas_threads()
    index = ShardedIndex(shards, settings.index_dir, settings)
    try:
        embedder = load_embedder(
            settings.model, index.manifest.backend, threads=settings.model_threads
        )
        check_dimension(settings.index_dir, index.manifest.dimension, embedder.dimension)
        queries = QueryEncoder(
            embedder, max_batch=settings.query_batch_size, cache_size=settings.query_cache_size
        )
    except BaseException:
        index.close()
        raise
    return SearchEngine(index, queries, settings)


def shard_applications(settings: Settings) -> list[Application]:
    """One Ray Serve deployment per shard of ``settings.index_dir`` cut in
    ``settings.shards`` (cut first where missing or cut from another build), each a
    ``ShardServer`` reserving ``replica_cpus``, for the router (``service.ray_serving``) to
    be bound to. The shards' folders must be on a path every node reads, as the index's is.
    """
    from ray import serve

    from indexing.shards import shard_folders

    # The ShardServer as it is: ServeShard calls its methods by name, each answered in one
    # of the deployment's threads, numpy arrays passed by Ray's serialisation.
    deployment = serve.deployment(name="shard")(ShardServer)
    return [
        deployment.options(
            name=f"shard-{number}", ray_actor_options={"num_cpus": settings.replica_cpus}
        ).bind(folder.absolute())
        for number, folder in enumerate(shard_folders(settings.index_dir, settings.shards))
    ]
