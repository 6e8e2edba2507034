"""``papersearch index``, ``add`` and ``remove`` as people read them: counts in the singular
where there is one, and a removal of ids the index does not hold ends in an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexing.build import BuildReport
from indexing.manifest import read_manifest
from indexing.update import UpdateReport
from tests.test_cli import run_cli
from tests.utils.index_files import linked_copy, live_build

KNOWN = "arxiv:2502.09375"  # a seed paper


def test_summaries_count_one_thing_in_the_singular(tmp_path):
    built = BuildReport(tmp_path, files=1, papers=1, embedded=1, reused=0, merged_duplicates=1,
                        seconds=0.25)  # fmt: skip
    assert built.summary() == (
        f"indexed 1 paper from 1 file into {tmp_path}: 1 embedded, 0 reused from cache, "
        "0 skipped, 1 duplicate merged, 0.2 s"
    )
    kept = BuildReport(tmp_path, 1, 1, 0, 1, 0, 0.1, unchanged=True)
    assert kept.summary().startswith(f"index {tmp_path} is current (1 paper, same corpus")
    updated = UpdateReport(tmp_path, removed=1, unknown_ids=["x"], papers=1)
    assert ", 1 removed, 1 id not in the index; " in updated.summary()
    assert "; 1 paper now, " in updated.summary()
    several = UpdateReport(tmp_path, unknown_ids=["x", "y"], papers=2)
    assert "2 ids not in the index" in several.summary() and "2 papers now" in several.summary()


def test_index_of_one_paper_from_one_file(capsys, cache_dir, tmp_path):
    corpus = tmp_path / "one.jsonl"
    corpus.write_text(json.dumps({"id": "one", "abstract": "A single paper."}) + "\n")
    out_dir = tmp_path / "index"
    code, out, err = run_cli(
        capsys, "index", str(corpus), "--out", str(out_dir), "--cache-dir", str(cache_dir),
        "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"indexed 1 paper from 1 file into {out_dir}: ")
    assert ", 0 duplicates merged, " in out


@pytest.fixture
def own_index(seed_build, tmp_path) -> Path:
    """A copy of the seed index the test may change."""
    return linked_copy(seed_build.index_dir, tmp_path / "index")


def test_removing_a_known_id_succeeds(capsys, own_index):
    code, out, err = run_cli(capsys, "remove", KNOWN, "--index", str(own_index))
    assert (code, err) == (0, "")
    assert ": 0 added, 0 replaced, 1 removed; " in out and "; 97 papers now, " in out
    assert read_manifest(own_index).paper_count == 97


def test_removing_only_unknown_ids_fails_and_changes_nothing(capsys, own_index):
    build = live_build(own_index)
    code, out, err = run_cli(capsys, "remove", "nope-1", "nope-2", "--index", str(own_index))
    assert code == 1 and out == ""
    assert err == (
        f"papersearch: error: not in the index {own_index}: nope-1, nope-2; nothing removed\n"
    )
    assert live_build(own_index) == build and read_manifest(own_index).paper_count == 98


def test_removing_known_and_unknown_ids_removes_the_known_and_fails(capsys, own_index):
    code, out, err = run_cli(capsys, "remove", KNOWN, "nope", "--index", str(own_index))
    assert code == 1
    assert ", 1 removed, 1 id not in the index; " in out and "; 97 papers now, " in out
    assert err == (
        f"papersearch: error: not in the index {own_index}: nope; the others were removed\n"
    )
    assert read_manifest(own_index).paper_count == 97


def test_the_remove_help_says_what_happens_to_unknown_ids(capsys):
    code, out, _ = run_cli(capsys, "remove", "--help")
    assert code == 0
    assert "the ids the index holds are removed even when others are not in it" in " ".join(
        out.split()
    )


def test_merging_a_missing_index_is_one_line_and_makes_nothing(capsys, tmp_path):
    code, out, err = run_cli(capsys, "merge", "--index", str(tmp_path / "nope"))
    assert (code, out) == (1, "")
    assert err == (
        f"papersearch: error: no index at {tmp_path / 'nope'}: "
        f"run `papersearch index --out {tmp_path / 'nope'}` to build it\n"
    )
    assert list(tmp_path.iterdir()) == []  # no builds folder beside it
