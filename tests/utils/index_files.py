"""An index's files as tests reach them: copies, the live build, damage, manifest edits.

Where the files lie (the link, the builds beside it, the names inside a build) is decided by
``indexing.manifest`` and ``indexing.writer``; these helpers ask them, so no test spells the
layout out itself.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from indexing.manifest import MANIFEST_FILE, Segment
from indexing.writer import builds_dir, next_segment_name

Damage = Literal["missing", "truncated", "tampered"]


FIRST_SEGMENT = Segment(name=next_segment_name(None), rows=0)


def in_first_segment(name: str) -> str:
    """A file of the (only) segment a full build writes, as its manifest names it: what
    ``index_file`` and manifest edits take."""
    return FIRST_SEGMENT.path(name)


def live_build(index_dir: Path) -> Path:
    """The build folder ``index_dir`` serves now (what its link points to)."""
    return index_dir.resolve()


def index_file(index_dir: Path, name: str) -> Path:
    """A file of the build ``index_dir`` serves, by its name in the manifest."""
    return live_build(index_dir) / name


def build_folders(index_dir: Path) -> list[Path]:
    """Every build folder kept beside ``index_dir``: the live one, and any left over."""
    return [path for path in builds_dir(index_dir).iterdir() if path.is_dir()]


def linked_copy(source: Path, index_dir: Path, name: str = "copy") -> Path:
    """A copy of the build ``source`` serves, laid out as the writer lays out a build:
    ``index_dir`` is a link to it, in the builds folder beside it. Returns ``index_dir``."""
    target = builds_dir(index_dir) / name
    shutil.copytree(live_build(source), target)
    switch_link(index_dir, target)
    return index_dir


def plain_copy(source: Path, index_dir: Path) -> Path:
    """The build ``source`` serves, copied as a plain folder (as a user copies an index by
    hand, or ``cp -r`` does). Returns ``index_dir``."""
    shutil.copytree(live_build(source), index_dir)
    return index_dir


def add_build(source: Path, index_dir: Path, name: str) -> Path:
    """A copy of the build ``source`` serves, beside ``index_dir`` but not yet linked."""
    target = builds_dir(index_dir) / name
    shutil.copytree(live_build(source), target)
    return target


def switch_link(index_dir: Path, build: Path) -> None:
    """Point ``index_dir`` at ``build`` in one rename, as a new build is swapped in."""
    link = index_dir.with_name(f".{index_dir.name}.test-link")
    link.symlink_to(os.path.relpath(build, index_dir.parent))
    os.replace(link, index_dir)


def damage(path: Path, how: Damage) -> int:
    """Remove, truncate or alter (one byte, same size) a file; returns its size afterwards."""
    if how == "missing":
        path.unlink()
        return 0
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return len(data)


def damage_file(index_dir: Path, name: str, how: Damage) -> int:
    """``damage`` one file of the build ``index_dir`` serves."""
    return damage(index_file(index_dir, name), how)


def manifest_path(index_dir: Path) -> Path:
    return index_file(index_dir, MANIFEST_FILE)


def edit_manifest(index_dir: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    """Change the manifest's JSON in place (``edit`` mutates the parsed object)."""
    path = manifest_path(index_dir)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")
