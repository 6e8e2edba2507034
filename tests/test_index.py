"""Index build, embedding cache reuse, atomic swap and start-up checks, on the real seeds."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from indexing.build import BuildError, BuildReport, build_index
from indexing.lexical import analyse
from indexing.manifest import (
    FORMAT_VERSION,
    LEXICAL_DIR,
    VECTORS_FILE,
    IndexUnusable,
    Segment,
    read_manifest,
)
from indexing.reader import PaperIndex
from indexing.writer import (
    builds_dir,
    leftovers,
    next_segment_name,
    pending_link,
    segment_writer,
    write_index,
)
from models import DEFAULT_MODEL, Embedder, load_embedder
from service.settings import SEED_CAPTURE_DATE
from tests.conftest import SEEDS
from tests.utils.index_files import (
    build_folders,
    edit_manifest,
    in_first_segment,
    index_file,
    live_build,
    manifest_path,
    plain_copy,
)


class CountingLoader:
    """The real model loader, counting calls: a cached rebuild must not need the model."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, name: str, backend: str) -> Embedder:
        self.calls += 1
        return load_embedder(name, backend)


def rebuild(
    index_dir: Path,
    cache_dir: Path,
    paths: list[Path] | None = None,
    loader: CountingLoader | None = None,
) -> BuildReport:
    return build_index(
        paths or [SEEDS],
        index_dir,
        cache_dir=cache_dir,
        model_name=DEFAULT_MODEL,
        load_model=loader or CountingLoader(),
        capture_date=SEED_CAPTURE_DATE,
        progress=False,
    )


def test_seed_build_writes_a_complete_index(seed_build: BuildReport):
    manifest = read_manifest(seed_build.index_dir)
    assert manifest.format_version == FORMAT_VERSION
    assert (manifest.model, manifest.dimension, manifest.paper_count) == (DEFAULT_MODEL, 384, 98)
    assert len(manifest.corpus_checksum) == 64 and manifest.sources[0] == "000_c81c81f2dcbdc6e0.txt"
    index = PaperIndex.open(seed_build.index_dir, model=DEFAULT_MODEL, dimension=384)
    assert len(index) == 98
    norms = np.linalg.norm(np.stack([index.vector(row) for row in range(98)]), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)  # normalised: inner product is cosine
    assert index.papers_at([0])[0].title.startswith("Not All Candidates are Created Equal")


def test_summary_line(seed_build: BuildReport):
    assert seed_build.summary().startswith(
        f"indexed 98 papers from 5 files into {seed_build.index_dir}"
    )
    assert "0 skipped" in seed_build.summary()


def test_unchanged_corpus_embeds_nothing_and_never_loads_the_model(seed_build, cache_dir, tmp_path):
    loader = CountingLoader()
    report = rebuild(tmp_path / "index", cache_dir, loader=loader)
    assert (report.embedded, report.reused, loader.calls) == (0, 98, 0)
    assert "0 embedded, 98 reused from cache" in report.summary()
    # Same corpus and same vectors: the same index.
    first = PaperIndex.open(seed_build.index_dir, model=DEFAULT_MODEL)
    second = PaperIndex.open(report.index_dir, model=DEFAULT_MODEL)
    assert first.manifest.corpus_checksum == second.manifest.corpus_checksum
    assert np.array_equal(first.vector(42), second.vector(42))


def test_only_new_papers_are_embedded(seed_build, cache_dir, tmp_path):
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        json.dumps(
            {
                "title": "A Note on Caching Sentence Embeddings",
                "abstract": "We cache embeddings by model and text hash so that re-indexing is cheap.",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    loader = CountingLoader()
    report = rebuild(tmp_path / "index", cache_dir, [SEEDS, extra], loader)
    assert (report.papers, report.embedded, report.reused, loader.calls) == (99, 1, 98, 1)


def test_interrupted_build_leaves_the_previous_index_servable(seed_build, cache_dir, tmp_path):
    index_dir = tmp_path / "index"
    before = rebuild(index_dir, cache_dir)
    manifest = read_manifest(index_dir)
    current = PaperIndex.open(index_dir)
    rows = range(len(current))
    write = segment_writer(
        current.papers_at(rows),
        current.vectors_at(rows),
        current.sentences_at(rows),
        current.map_points,
    )
    current.close()

    def interrupted(folder: Path) -> None:
        """A segment whose writing is cut short by Ctrl-C: the new build is half written
        (its segment's files are on disk, its manifest is not)."""
        write(folder)
        raise KeyboardInterrupt

    segment = Segment(name=next_segment_name(manifest), rows=len(rows))
    with pytest.raises(KeyboardInterrupt):
        write_index(
            index_dir,
            manifest.model_copy(update={"corpus_checksum": "another", "segments": [segment]}),
            interrupted,
        )

    index = PaperIndex.open(index_dir, model=DEFAULT_MODEL)
    assert len(index) == before.papers == 98
    assert index.manifest.corpus_checksum == manifest.corpus_checksum
    assert build_folders(index_dir) == [live_build(index_dir)]  # the half-written one is gone

    # A build killed outright (no chance to clean up) leaves a folder without a manifest, or
    # a new link it had not swapped in yet; the next build removes both and swaps cleanly.
    killed_build = builds_dir(index_dir) / "20260101T000000000000Z-1"
    killed_build.mkdir()
    pending_link(index_dir, 1).symlink_to(killed_build.relative_to(index_dir.parent))
    assert sorted(leftovers(index_dir)) == sorted([killed_build, pending_link(index_dir, 1)])
    other_corpus = SEEDS / "004_07af923cf1f16ba9.txt"
    after = rebuild(index_dir, cache_dir, [other_corpus])
    assert len(PaperIndex.open(index_dir, model=DEFAULT_MODEL)) == after.papers == 50
    assert build_folders(index_dir) == [live_build(index_dir)]
    assert not pending_link(index_dir, 1).is_symlink()
    assert leftovers(index_dir) == []


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_output_path_that_is_not_an_index_is_left_untouched(cache_dir, tmp_path, kind):
    target = tmp_path / "papers"
    if kind == "folder":
        target.mkdir()
        (target / "notes.txt").write_text("mine", encoding="utf-8")
    else:
        target.write_text("mine", encoding="utf-8")
    loader = CountingLoader()
    with pytest.raises(IndexUnusable, match="is not a papersearch index; it is left untouched"):
        rebuild(target, cache_dir, [SEEDS / "000_c81c81f2dcbdc6e0.txt"], loader)
    assert loader.calls == 0  # refused before any work
    note = target / "notes.txt" if kind == "folder" else target
    assert note.read_text(encoding="utf-8") == "mine"


def test_index_copied_as_a_plain_folder_is_replaced_atomically_from_then_on(
    seed_build, cache_dir, tmp_path
):
    copy = plain_copy(seed_build.index_dir, tmp_path / "index")
    report = rebuild(copy, cache_dir, [SEEDS / "000_c81c81f2dcbdc6e0.txt"])
    assert copy.is_symlink() and read_manifest(copy).paper_count == report.papers == 7


def test_duplicate_texts_are_embedded_once_and_not_counted_as_reused(tmp_path):
    paper = {"title": "Twice", "abstract": "The same paper under two ids, embedded once."}
    corpus = tmp_path / "twice.jsonl"
    corpus.write_text(
        json.dumps({**paper, "id": "a"}) + "\n" + json.dumps({**paper, "id": "b"}) + "\n",
        encoding="utf-8",
    )
    report = rebuild(tmp_path / "index", tmp_path / "fresh-cache", [corpus])
    assert (report.papers, report.embedded, report.reused) == (2, 1, 0)


def test_empty_corpus_writes_nothing(seed_build, cache_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(BuildError, match="no papers"):
        rebuild(seed_build.index_dir, cache_dir, [empty])
    assert read_manifest(seed_build.index_dir).paper_count == 98


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "all-mpnet-base-v2"}, "built with model 'all-mpnet-base-v2'"),
        ({"format_version": 99}, "format version 99"),
        ({"paper_count": 97}, "inconsistent index"),
    ],
)
def test_incompatible_index_is_refused_with_what_to_run(seed_build, tmp_path, change, message):
    copy = plain_copy(seed_build.index_dir, tmp_path / "index")
    edit_manifest(copy, lambda manifest: manifest.update(change))
    with pytest.raises(IndexUnusable, match=message) as error:
        PaperIndex.open(copy, model=DEFAULT_MODEL)
    assert f"papersearch index --out {copy}" in str(error.value)


@pytest.mark.parametrize(
    "damage", ["missing", "dangling-link", "garbage-manifest", "garbage-vectors"]
)
def test_missing_or_damaged_index_is_refused(seed_build, tmp_path, damage):
    target = tmp_path / "index"
    if damage == "dangling-link":
        target.symlink_to(builds_dir(target) / "removed")
    elif damage != "missing":
        plain_copy(seed_build.index_dir, target)
        garbled = (
            manifest_path(target)
            if damage == "garbage-manifest"
            else index_file(target, in_first_segment(VECTORS_FILE))
        )
        garbled.write_bytes(b"\x00garbage")
    with pytest.raises(IndexUnusable, match=f"papersearch index --out {target}`"):
        PaperIndex.open(target, model=DEFAULT_MODEL)


def test_the_bm25_index_is_stored_row_for_row_with_the_vectors(seed_build):
    index = PaperIndex.open(seed_build.index_dir, model=DEFAULT_MODEL)
    try:
        scores = index.lexical.scores(analyse("Kuaishou live streaming"))
        best = int(np.argmax(scores))
        text = index.papers_at([best])[0].abstract.lower()
        assert "kuaishou" in text and "live" in text
        assert len(scores) == len(index) == 98
        # every abstract is split into sentences whose offsets cover its text in order
        for paper, spans in zip(
            index.papers_at(list(range(98))), index.sentences_at(list(range(98))), strict=True
        ):
            assert spans and spans[0][0] == 0 and spans[-1][1] == len(paper.abstract.rstrip())
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    finally:
        index.close()


def test_a_damaged_bm25_index_is_refused(seed_build, tmp_path):
    copy = plain_copy(seed_build.index_dir, tmp_path / "index")
    for part in index_file(copy, in_first_segment(LEXICAL_DIR)).iterdir():
        part.write_bytes(b"\x00garbage")
    with pytest.raises(IndexUnusable, match=f"papersearch index --out {copy}`"):
        PaperIndex.open(copy, model=DEFAULT_MODEL)
