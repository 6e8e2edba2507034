"""Query embedding for a busy service: concurrent queries share a forward pass, repeats are free.

On two cores a forward pass over one short query costs nearly as much as over sixteen: the
model's fixed cost dominates. So requests do not call the model themselves. They hand their
text to one encoder thread, which takes everything that has arrived while it was busy and
embeds it in a single batch. A lone query waits for nobody (the thread starts on it at once);
under load the batches grow by themselves, up to ``max_batch``.

Repeated queries (a UI's instant search, pagination, assistants retrying) skip the model
through a bounded LRU cache of query vectors.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future

import numpy as np

from models import Embedder

_STOP = object()


class QueryEncoder:
    def __init__(self, embedder: Embedder, *, max_batch: int = 64, cache_size: int = 1024) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._waiting: queue.SimpleQueue[tuple[str, Future[np.ndarray]] | object] = (
            queue.SimpleQueue()
        )
        self.batches = 0  # forward passes run, for the benchmarks and tests
        self._thread = threading.Thread(target=self._run, name="query-encoder", daemon=True)
        self._thread.start()

    def encode(self, text: str) -> np.ndarray:
        """The normalised vector of one query; blocks until its batch has run."""
        with self._cache_lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                return vector
        if not self._thread.is_alive():
            raise RuntimeError("the query encoder is closed")
        future: Future[np.ndarray] = Future()
        self._waiting.put((text, future))
        vector = future.result()
        if self.cache_size:
            with self._cache_lock:
                self._cache[text] = vector
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return vector

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
            requests = [item for item in batch if item is not _STOP]
            if requests:
                self._encode(requests)  # type: ignore[arg-type]
            if stop:
                return

    def _encode(self, requests: list[tuple[str, Future[np.ndarray]]]) -> None:
        texts = [text for text, _ in requests]
        try:
            vectors = self.embedder.encode(texts, batch_size=len(texts))
        except Exception as exc:  # the callers raise it, each in its own request
            for _, future in requests:
                future.set_exception(exc)
            return
        self.batches += 1
        for (_, future), vector in zip(requests, vectors, strict=True):
            future.set_result(vector)
