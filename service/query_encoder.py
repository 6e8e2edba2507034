"""Query embedding for a busy service: concurrent queries share the work, repeats are free.

Requests do not call the model themselves. They hand their text to one encoder thread, which
takes everything that has arrived while it was busy as one batch. A lone query waits for
nobody (the thread starts on it at once); under load the batches grow by themselves, up to
``max_batch``. With torch the batch is one forward pass, which on two cores costs nearly as
much for sixteen short queries as for one; the int8 model runs its texts one after another
(see ``OnnxEmbedder.encode``). Either way the thread then finds the nearest papers of the
whole batch in one pass over the index, far cheaper than one pass per query on a large
corpus.

Repeated queries (a UI's instant search, pagination, assistants retrying) skip the model
through a bounded LRU cache of query vectors.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from indexing.index_types import Neighbours, SegmentedDense
from models import Embedder

_STOP = object()


@dataclass(frozen=True)
class NearestSearch:
    """What a request wants searched with its vector: ``n`` nearest rows of ``index``."""

    index: SegmentedDense
    n: int
    depth: int


# What a query comes back with: its vector and, when a search was asked for, its neighbours.
Encoded = tuple[np.ndarray, Neighbours | None]


@dataclass
class _Request:
    text: str
    vector: np.ndarray | None  # known already when the cache had it
    search: NearestSearch | None
    result: Future[Encoded] = field(default_factory=Future)


class QueryEncoder:
    def __init__(self, embedder: Embedder, *, max_batch: int = 64, cache_size: int = 1024) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._waiting: queue.SimpleQueue[_Request | object] = queue.SimpleQueue()
        self.batches = 0  # forward passes run, for the benchmarks and tests
        self._thread = threading.Thread(target=self._run, name="query-encoder", daemon=True)
        self._thread.start()

    def encode(self, text: str) -> np.ndarray:
        """The normalised vector of one query; blocks until its batch has run."""
        return self.submit(text).result()[0]

    def encode_and_search(self, text: str, search: NearestSearch) -> tuple[np.ndarray, Neighbours]:
        """The query's vector and its ``search.n`` nearest papers, best first."""
        vector, nearest = self.submit(text, search).result()
        assert nearest is not None
        return vector, nearest

    def submit(self, text: str, search: NearestSearch | None = None) -> Future[Encoded]:
        """Hand a query to the encoder thread and return at once, with its future: a thread
        waits on it with ``result()``, an event loop with ``await asyncio.wrap_future(...)``,
        which needs no thread of its own per request."""
        with self._cache_lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
        if vector is not None and search is None:
            done: Future[Encoded] = Future()
            done.set_result((vector, None))
            return done
        if not self._thread.is_alive():
            raise RuntimeError("the query encoder is closed")
        request = _Request(text, vector, search)
        self._waiting.put(request)
        return request.result

    def _remember(self, requests: list[_Request]) -> None:
        if not self.cache_size:
            return
        with self._cache_lock:
            for request in requests:
                if request.vector is not None:
                    self._cache[request.text] = request.vector
                    self._cache.move_to_end(request.text)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def close(self) -> None:
        self._waiting.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = [self._waiting.get()]  # sleeps until a query arrives
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            requests = [item for item in batch if isinstance(item, _Request)]
            if requests:
                self._encode(requests)
            if stop:
                return

    def _encode(self, requests: list[_Request]) -> None:
        try:
            unknown = [r for r in requests if r.vector is None]
            if unknown:
                vectors = self.embedder.encode([r.text for r in unknown], batch_size=len(unknown))
                self.batches += 1
                for request, vector in zip(unknown, vectors, strict=True):
                    request.vector = vector
                self._remember(unknown)
            # Every request has its vector now, from the cache or from the batch just run.
            encoded = [(r, r.vector) for r in requests if r.vector is not None]
            assert len(encoded) == len(requests)
            found: dict[int, Neighbours] = {}
            searches: dict[tuple[int, int], list[tuple[_Request, np.ndarray, NearestSearch]]] = {}
            for request, vector in encoded:
                if request.search is not None:
                    key = (id(request.search.index), request.search.depth)
                    searches.setdefault(key, []).append((request, vector, request.search))
            for group in searches.values():
                spec = group[0][2]
                rows = spec.index.nearest_many(
                    np.stack([vector for _, vector, _ in group]),
                    max(search.n for _, _, search in group),
                    spec.depth,
                )
                for (request, _, search), nearest in zip(group, rows, strict=True):
                    n = search.n
                    found[id(request)] = Neighbours(nearest.rows[:n], nearest.scores[:n])
        except Exception as exc:  # the callers raise it, each in its own request
            for request in requests:
                request.result.set_exception(exc)
            return
        for request, vector in encoded:
            request.result.set_result((vector, found.get(id(request))))
