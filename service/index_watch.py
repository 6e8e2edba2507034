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

from fastapi import FastAPI

from indexing.manifest import IndexUnusable

log = logging.getLogger("papersearch")


async def reload_if_changed(app: FastAPI) -> bool:
    """Swap in the index folder's current build if it is not the one served; True if swapped.

    A build that cannot be served (damaged, other model) is logged and the old one kept.
    """
    async with app.state.reload_lock:  # the watcher and an admin update never race
        engine = app.state.engine
        if engine.is_current():
            return False
        target = engine.settings.index_dir.resolve()
        try:
            app.state.engine = await asyncio.to_thread(lambda: engine.reopened().warm_up())
        except IndexUnusable as exc:
            if getattr(app.state, "refused_build", None) != target:  # say it once per build
                log.warning("new index build not served, keeping the old one: %s", exc)
                app.state.refused_build = target
            return False
        log.info("serving index build %s", app.state.engine.index.build_dir.name)
        return True


async def watch_index(app: FastAPI, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await reload_if_changed(app)


@contextmanager
def reload_on_sighup(app: FastAPI) -> Iterator[None]:
    """``kill -HUP <pid>`` swaps in a new build at once, the Unix way to say "reload".

    With several workers, SIGHUP to uvicorn's supervisor restarts them one at a time, each
    replacement serving before the worker it replaces stops; a worker's own pid reloads in
    place, as here. Under a test client the app is not in the main thread, which alone can
    take signals, and nothing is installed.
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = loop.create_task(reload_if_changed(app))
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
