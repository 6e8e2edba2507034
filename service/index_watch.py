"""Serving a new build of the index without a restart, and without dropping a request.

Builds are written beside the index folder and the folder's link is swapped atomically
(indexing/writer.py). The service notices the swap, opens the new build off the event loop,
and replaces its engine in one assignment: requests already running finish on the engine
they started with, later ones get the new one. The model is shared, not loaded again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.datastructures import State

from indexing.errors import PapersearchError
from indexing.manifest import IndexUnusable
from indexing.reader import PaperIndex
from service.search import SearchEngine

log = logging.getLogger("papersearch")


class IndexReloader:
    """Owns swapping builds in: which engine serves, the lock that keeps the watcher, SIGHUP
    and an admin update from racing, and the refused build already reported."""

    def __init__(self, state: State) -> None:
        self._state = state  # the app's state, whose ``engine`` requests read
        self._lock = asyncio.Lock()
        self._refused: Path | None = None
        self._merging: asyncio.Task[None] | None = None

    async def reload_if_changed(self) -> bool:
        """Swap in the index folder's current build if it is not the one served; True if
        swapped. A build that cannot be served (damaged, other model) is logged once and the
        old one kept."""
        async with self._lock:
            engine: SearchEngine = self._state.engine
            target = engine.settings.index_dir.resolve()
            if target == engine.index.build_dir or engine.index.remote:
                # A sharded index is served as deployed: a new build is cut into shards
                # (`papersearch shard`) and deployed again, never swapped in unsharded here.
                return False
            try:
                self._state.engine = await asyncio.to_thread(lambda: _reopened(engine))
            except IndexUnusable as exc:
                if self._refused != target:
                    log.warning("new index build not served, keeping the old one: %s", exc)
                    self._refused = target
                return False
            log.info("serving index build %s", self._state.engine.index.build_dir.name)
            return True

    def merge_later(self, index_dir: Path) -> None:
        """Merge the index's segments where ``merge_plan`` says an update left too many, in
        a worker thread once the caller has answered, then serve the merged build: an update
        over HTTP answers in what the update costs, not what a merge costs (minutes for a
        full merge at a million papers). One merge at a time; a failure is logged."""
        if self._merging is not None and not self._merging.done():
            return

        async def merge() -> None:
            from indexing.update import merge_segments  # the indexing job's imports: here

            try:
                if await asyncio.to_thread(merge_segments, index_dir, full=False):
                    await self.reload_if_changed()
            except (PapersearchError, OSError) as exc:
                log.warning("merging the index's segments failed, left as they are: %s", exc)

        self._merging = asyncio.get_running_loop().create_task(merge())

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.reload_if_changed()


def _reopened(engine: SearchEngine) -> SearchEngine:
    """An engine over the index folder's current build, sharing ``engine``'s model, warmed
    up before it serves. Requests that hold the old engine finish on it; the old build's
    files stay readable to them (open files outlive their removal)."""
    settings, embedder = engine.settings, engine.embedder
    index = PaperIndex.open(
        settings.index_dir,
        model=settings.model,
        backend=embedder.backend,
        dimension=embedder.dimension,
    )
    return SearchEngine(index, engine.queries, settings).warm_up()


@contextmanager
def reload_on_sighup(reloader: IndexReloader) -> Iterator[None]:
    """``kill -HUP <pid>`` swaps in a new build at once, the Unix way to say "reload".

    With several workers, SIGHUP to uvicorn's supervisor restarts them one at a time, each
    replacement serving before the worker it replaces stops; a worker's own pid reloads in
    place, as here. Under a test client the app is not in the main thread, which alone can
    take signals, and nothing is installed.
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = loop.create_task(reloader.reload_if_changed())
        tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, reload)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
