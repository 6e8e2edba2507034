"""The ``papersearch`` command: in-process for output checks, as a real process for ``serve``."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest

from service.cli import main
from tests.conftest import PAPERSEARCH, SEEDS, running_server
from tests.utils.index_files import edit_manifest, manifest_path, plain_copy


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def query_cli(capsys, seed_settings):
    """``papersearch`` against the session's seed index."""

    def run(*args: str) -> tuple[int, str, str]:
        return run_cli(capsys, *args, "--index", str(seed_settings.index_dir))

    return run


def test_index_prints_one_summary_line_and_reuses_the_cache(
    capsys, seed_build, cache_dir, tmp_path
):
    out_dir = tmp_path / "index"
    code, out, err = run_cli(
        capsys, "index", str(SEEDS), "--out", str(out_dir), "--cache-dir", str(cache_dir)
    )
    assert code == 0, err
    assert len(out.splitlines()) == 1
    assert out.startswith(f"indexed 98 papers from 5 files into {out_dir}: 0 embedded, 98 reused")
    assert manifest_path(out_dir).is_file()


def test_index_reports_skipped_entries_on_stderr(capsys, cache_dir, tmp_path):
    broken = tmp_path / "broken.txt"
    lines = (SEEDS / "003_d5e978e446392a5c.txt").read_text(encoding="utf-8").splitlines()
    del lines[2]
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run_cli(
        capsys,
        "index",
        str(broken),
        "--out",
        str(tmp_path / "index"),
        "--cache-dir",
        str(cache_dir),
        "--quiet",
    )
    assert code == 0
    assert "indexed 18 papers" in out and "1 skipped" in out
    assert err.startswith("skipped broken.txt:1: expected title, authors and abstract")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["index", "no/such/dir"], 1, "no/such/dir: no such file or folder"),
        (["index", "tests/__init__.py"], 1, "__init__.py:1: empty file"),
        (["index", "--out", "tests"], 1, "tests exists and is not a papersearch index"),
        (["index", "--capture-date", "yesterday"], 2, "expected a date like 2026-06-30"),
        (["search", "x", "--index", "no/index"], 1, "no index at no/index: run `papersearch index"),
        (["search", "x", "-k", "0"], 2, "k: Input should be greater than or equal to 1"),
        (["search", "   "], 2, "q: must contain some non-space text"),
        (["similar", "--title", "x"], 2, "title: String should have at least 3 characters"),
        (["similar"], 2, "one of the arguments --title --id --text-file is required"),
        (["serve", "--index", "no/index"], 1, "no index at no/index"),
        (["serve", "--port", "99999"], 2, "port: Input should be less than or equal to 65535"),
    ],
)
def test_bad_input_is_one_clear_error_line(capsys, args, code, message):
    found_code, out, err = run_cli(capsys, *args)
    assert found_code == code
    assert message in err and "Traceback" not in err
    assert out == ""


RAY_SETTING = "Ray setting"
TO_SERVE_ON_RAY = "add --ray ADDRESS (or set PAPERSEARCH_RAY_ADDRESS) to serve on a Ray cluster"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["serve", "--shards", "2"], {}, f"--shards 2 is a Ray setting: {TO_SERVE_ON_RAY}"),
        (
            ["serve", "--replicas", "2", "--max-replicas", "4"],
            {},
            f"--replicas 2 and --max-replicas 4 are Ray settings: {TO_SERVE_ON_RAY}",
        ),
        (["serve"], {"PAPERSEARCH_SHARDS": "2"}, "PAPERSEARCH_SHARDS=2 is a Ray setting: "),
        (["serve", "--replica-cpus", "0.5"], {}, "--replica-cpus 0.5 is a Ray setting: "),
        (
            ["index", "no/such/dir", "--ray-embed-workers", "2"],
            {},
            "--ray-embed-workers 2 is a Ray setting: add --ray ADDRESS (or set "
            "PAPERSEARCH_RAY_ADDRESS) to index on a Ray cluster",
        ),
    ],
)
def test_serve_and_index_refuse_ray_settings_without_an_address(
    capsys, monkeypatch, args, env, message
):
    """Ignored, `serve --shards 2` would start one unsharded process without a word. (The
    index is missing: a run that got past the refusal ends there, it does not serve.)"""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PAPERSEARCH_RAY_ADDRESS", raising=False)
    code, out, err = run_cli(
        capsys, *args, *(["--index", "no/index"] if args[0] == "serve" else [])
    )
    assert (code, out) == (2, "")
    assert err.startswith(f"papersearch: error: {message}") and err.count("\n") == 1, err


def test_serve_takes_ray_settings_at_their_default_or_with_an_address(capsys, monkeypatch):
    """Not refused: a setting at its default (an environment may set one so), nor one
    given with an address; each run then stops at the missing index or corpus."""
    monkeypatch.delenv("PAPERSEARCH_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("PAPERSEARCH_REPLICAS", "1")
    code, _, err = run_cli(capsys, "serve", "--index", "no/index", "--shards", "1")
    assert (code, err) == (
        1,
        "papersearch: error: no index at no/index: run `papersearch "
        "index --out no/index` to build it\n",
    )
    monkeypatch.setenv("PAPERSEARCH_RAY_ADDRESS", "local")
    code, _, err = run_cli(capsys, "index", "no/such/dir", "--ray-embed-workers", "2")
    assert code == 1 and RAY_SETTING not in err and err.count("\n") == 1, err


def test_search_human_output(query_cli):
    code, out, _ = query_cli("search", "cross-domain live-streaming recommendation", "-k", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("  1. 0.9") and "arXiv:2502.09375" in lines[0]
    assert lines[1].strip() == "authors unknown · 13 Feb 2025 · arxiv:2502.09375"
    assert lines[2].strip().startswith("» ") and "live-streaming" in lines[2].lower()
    assert lines[-1] == "hybrid search: 1-3 of 98 matching papers"


def test_search_json_matches_the_api(query_cli, client):
    query = ("search", "knowledge editing for LLMs", "-k", "4", "--offset", "1", "--json")
    code, out, _ = query_cli(*query)
    assert code == 0
    api = client.get("/search", params={"q": "knowledge editing for LLMs", "k": 4, "offset": 1})
    assert json.loads(out) == api.json()


def test_similar_by_title_and_by_id(query_cli):
    code, out, _ = query_cli("similar", "--title", "trinity syncretizing", "-k", "2")
    assert code == 0
    assert out.startswith(
        "papers similar to: Trinity: Syncretizing Multi-/Long-tail/Long-term "
        "Interests All in One (matched 100/100)"
    )
    assert "  1. " in out and "  2. " in out and "  3. " not in out

    code, out, _ = query_cli("similar", "--id", "arxiv:2502.09375", "--json")
    body = json.loads(out)
    assert code == 0 and body["paper"]["id"] == "arxiv:2502.09375" and len(body["results"]) == 10


def test_similar_without_a_match_lists_suggestions(query_cli):
    code, out, err = query_cli("similar", "--title", "quantum chromodynamics")
    assert code == 1 and out == ""
    assert err.startswith("papersearch: error: no paper title matches 'quantum chromodynamics'")
    assert err.count("did you mean: ") == 5


def test_similar_unknown_id(query_cli):
    code, _, err = query_cli("similar", "--id", "nope")
    assert code == 1 and err == "papersearch: error: no paper with id 'nope'\n"


def test_serve_answers_over_real_http(seed_settings):
    with running_server(seed_settings.index_dir) as server:
        found = httpx.get(f"{server.url}/search", params={"q": "live-streaming", "k": 2}).json()
        assert len(found["results"]) == 2
        assert httpx.get(f"{server.url}/search", params={"k": 2}).status_code == 422
        assert httpx.get(f"{server.url}/docs").status_code == 200


def test_serve_refuses_an_index_of_another_model(seed_settings, tmp_path):
    copy = plain_copy(seed_settings.index_dir, tmp_path / "index")
    edit_manifest(copy, lambda manifest: manifest.update(model="all-mpnet-base-v2"))
    started = time.monotonic()
    result = subprocess.run(
        [PAPERSEARCH, "serve", "--index", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PAPERSEARCH_PORT": "1"},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"papersearch: error: index at {copy} was built with model 'all-mpnet-base-v2' but the "
        f"service is configured for 'all-MiniLM-L6-v2': run `papersearch index --out {copy}` to "
        f"build it with PAPERSEARCH_MODEL=all-MiniLM-L6-v2, or set "
        f"PAPERSEARCH_MODEL=all-mpnet-base-v2"
    )
    assert time.monotonic() - started < 30  # refused before the model is even loaded
