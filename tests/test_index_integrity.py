"""Checksums in the manifest: a missing, truncated or altered file is refused with what to run,
by the library, by ``papersearch serve`` at start, and by a running server offered such a build."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from indexing.build import build_index
from indexing.manifest import (
    COLUMNS_DIR,
    LEXICAL_DIR,
    MANIFEST_FILE,
    MAP_FILE,
    PAPERS_FILE,
    TITLES_DIR,
    VECTORS_FILE,
    IndexUnusable,
    read_manifest,
)
from indexing.reader import PaperIndex
from indexing.update import remove_papers
from models import DEFAULT_MODEL, load_embedder
from service.settings import SEED_CAPTURE_DATE
from tests.conftest import PAPERSEARCH, SEEDS, free_port, running_server
from tests.utils.index_files import (
    add_build,
    build_folders,
    damage,
    damage_file,
    edit_manifest,
    in_first_segment,
    index_file,
    linked_copy,
    live_build,
    switch_link,
)

VECTORS, PAPERS, MAP = map(in_first_segment, [VECTORS_FILE, PAPERS_FILE, MAP_FILE])
TERMS = in_first_segment(f"{LEXICAL_DIR}/terms.bin")
FILES = [VECTORS, PAPERS, MAP, TERMS]
DAMAGES = ["missing", "truncated", "tampered"]
MESSAGES = {
    "missing": "{name} is missing from the index at {index}",
    "truncated": "{name} of the index at {index} has {size} bytes where the manifest recorded",
    "tampered": "{name} of the index at {index} does not match the sha256 its manifest recorded",
}


@pytest.fixture
def index_copy(seed_build, tmp_path) -> Path:
    """A linked copy of the seed index this test may damage (the session's stays intact)."""
    return linked_copy(seed_build.index_dir, tmp_path / "index")


def test_the_manifest_records_every_data_file_with_its_size_and_sha256(seed_build):
    build = live_build(seed_build.index_dir)
    manifest = read_manifest(seed_build.index_dir)
    on_disk = sorted(
        path.relative_to(build).as_posix()
        for path in build.rglob("*")
        if path.is_file() and path.name != MANIFEST_FILE
    )
    assert sorted(manifest.files) == on_disk
    assert set(FILES) <= set(on_disk)
    for name, recorded in manifest.files.items():
        data = (build / name).read_bytes()
        assert (recorded.size, recorded.sha256) == (len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_file_is_refused_naming_it_and_what_to_run(index_copy, name, how):
    size = damage_file(index_copy, name, how)
    with pytest.raises(IndexUnusable) as error:
        PaperIndex.open(index_copy, model=DEFAULT_MODEL)
    message = str(error.value)
    assert MESSAGES[how].format(name=name, index=index_copy, size=size) in message
    assert message.endswith(f"run `papersearch index --out {index_copy}` to build it")


def test_an_update_refuses_a_damaged_index_instead_of_copying_it(index_copy):
    served = live_build(index_copy)
    damage_file(index_copy, PAPERS, "tampered")
    with pytest.raises(IndexUnusable, match=rf"{PAPERS} of the index at .* does not match"):
        remove_papers(["arxiv:2502.09375"], index_copy)
    assert live_build(index_copy) == served
    assert build_folders(index_copy) == [served]  # nothing written


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m: m.pop("files"),
            f"records no checksum for {VECTORS}, {PAPERS}, {MAP}, {in_first_segment(LEXICAL_DIR)}/, "
            f"{in_first_segment(COLUMNS_DIR)}/, {in_first_segment(TITLES_DIR)}/",
        ),
        (lambda m: m["files"].pop(VECTORS), f"records no checksum for {VECTORS}:"),
        (lambda m: m["files"].pop(MAP), f"records no checksum for {MAP}:"),
        (
            lambda m: m.pop("dimension"),
            "unreadable manifest in {index} (dimension: Field required)",
        ),
        (
            lambda m: m["files"][PAPERS].pop("sha256"),
            f"(files.{PAPERS}.sha256: Field required)",
        ),
        (
            lambda m: m["files"].update({"../escape": m["files"][VECTORS]}),
            "names a file outside it (../escape)",
        ),
        # An index of format 3 has no checksums: refused for its version first.
        (
            lambda m: (m.pop("files"), m.update(format_version=3)),
            "has format version 3, this version of papersearch reads version 6",
        ),
        # One of format 4 has every checksum but no map: refused for its version too.
        (
            lambda m: (m["files"].pop(MAP), m.update(format_version=4)),
            "has format version 4, this version of papersearch reads version 6",
        ),
    ],
)
def test_a_manifest_missing_what_it_must_record_is_refused(index_copy, edit, message):
    edit_manifest(index_copy, edit)
    with pytest.raises(IndexUnusable) as error:
        PaperIndex.open(index_copy, model=DEFAULT_MODEL)
    assert message.format(index=index_copy) in str(error.value)
    assert f"run `papersearch index --out {index_copy}`" in str(error.value)


@pytest.mark.parametrize("shape", [(97, 2), (98, 3), (98,)])
def test_a_map_of_the_wrong_shape_is_refused_even_with_its_checksum_recorded(index_copy, shape):
    """A writer's bug, not damage: the checksum matches, the row-for-row check catches it."""
    path = index_file(index_copy, MAP)
    np.save(path, np.zeros(shape, dtype=np.float32), allow_pickle=False)
    data = path.read_bytes()
    digest = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    edit_manifest(index_copy, lambda m: m["files"].update({MAP: digest}))
    with pytest.raises(IndexUnusable, match=r"inconsistent index .* map\.npy points") as error:
        PaperIndex.open(index_copy, model=DEFAULT_MODEL)
    assert f"run `papersearch index --out {index_copy}`" in str(error.value)


def test_rerunning_the_advised_command_rebuilds_a_damaged_index(seed_build, cache_dir, tmp_path):
    """`papersearch index` keeps a current index as it is; a damaged one is not current."""

    def build():
        return build_index(
            [SEEDS / "000_c81c81f2dcbdc6e0.txt"],
            tmp_path / "index",
            cache_dir=cache_dir,
            model_name=DEFAULT_MODEL,
            load_model=load_embedder,
            capture_date=SEED_CAPTURE_DATE,
            progress=False,
            skip_if_current=True,
        )

    assert not build().unchanged
    assert build().unchanged
    damage_file(tmp_path / "index", VECTORS, "tampered")
    assert not build().unchanged
    assert len(PaperIndex.open(tmp_path / "index", model=DEFAULT_MODEL)) == 7


@pytest.mark.parametrize(
    ("name", "how"),
    [(VECTORS, "missing"), (TERMS, "truncated"), (PAPERS, "tampered")],
)  # fmt: skip
def test_serve_refuses_a_damaged_index_in_one_line(index_copy, name, how):
    size = damage_file(index_copy, name, how)
    result = subprocess.run(
        [PAPERSEARCH, "serve", "--index", str(index_copy), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    expected = MESSAGES[how].format(name=name, index=index_copy, size=size)
    assert result.stderr.startswith(f"papersearch: error: {expected}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr + result.stdout
    assert f"run `papersearch index --out {index_copy}` to build it" in result.stderr


def test_a_running_server_keeps_serving_the_old_build_when_the_new_one_is_damaged(
    seed_build, cache_dir, tmp_path
):
    index = linked_copy(seed_build.index_dir, tmp_path / "index")
    # A genuinely different build (7 papers, not 98), so /readyz tells the two apart.
    other = build_index(
        [SEEDS / "000_c81c81f2dcbdc6e0.txt"],
        tmp_path / "other" / "index",
        cache_dir=cache_dir,
        model_name=DEFAULT_MODEL,
        load_model=load_embedder,
        capture_date=SEED_CAPTURE_DATE,
        progress=False,
    )
    damaged = add_build(other.index_dir, index, "damaged")
    damage(damaged / VECTORS, "tampered")
    with running_server(
        index, PAPERSEARCH_RELOAD_INTERVAL="0.1", PAPERSEARCH_CACHE_DIR=str(cache_dir)
    ) as server:
        old = httpx.get(f"{server.url}/readyz").json()
        assert old["papers"] == 98
        switch_link(index, damaged)
        time.sleep(1.5)  # fifteen chances to swap it in
        assert httpx.get(f"{server.url}/readyz").json() == old
        found = httpx.get(f"{server.url}/search", params={"q": "live-streaming", "k": 3})
        assert found.status_code == 200 and len(found.json()["results"]) == 3
        assert f"new index build not served, keeping the old one: {VECTORS}" in server.output()

        # The same build intact is swapped in: the refusal above was the checksum's doing.
        switch_link(index, add_build(other.index_dir, index, "intact"))
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/readyz").json()["papers"] != 7:
            assert time.monotonic() < deadline, "the intact build was not served within 30 s"
            time.sleep(0.1)
