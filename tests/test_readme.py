"""The README's examples, run: each fenced block of README.md is a test.

- ``curl`` commands run as written against a real ``papersearch serve`` over the seed index
  (its address put in place of 127.0.0.1:8000); the JSON they print must have every key the
  README shows, the same error ``code`` and first ``id``, and results wherever a search or a
  similar-papers example is shown.
- ``papersearch`` commands run as processes (over the seed index; ``papersearch index`` in a
  folder of its own with the seeds in it); every line they print must match the line the
  README shows, numbers and ``…`` standing for any, in the same order and number.
- JSON blocks must parse; the access-log line must have the keys of a real one.

A block that cannot run here says so just above it, ``<!-- readme-test: skip: reason -->``,
and is reported as skipped with that reason. Any other block this file does not know how to
check fails, so that no new example goes unchecked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PAPERSEARCH, REPO, SEEDS, Server, running_server

README = REPO / "README.md"
SKIP_MARK = re.compile(r"\s*<!-- readme-test: skip: (.+?) -->\s*")  # a line of its own
PROGRESS_BAR = re.compile(r"(\w+): +\d+%\|")
README_ADDRESS = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    skip: str | None  # the reason given by a skip mark just above the block


def readme_blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks, at = [], 0
    while at < len(lines):
        fence = re.fullmatch(r"(\s*)```([\w-]*)\s*", lines[at])
        if fence:
            indent, lang = fence.groups()
            end = next(i for i in range(at + 1, len(lines)) if lines[i].strip() == "```")
            body = [line.removeprefix(indent) for line in lines[at + 1 : end]]
            mark = SKIP_MARK.fullmatch(lines[at - 1]) if at else None
            blocks.append(Block(at + 1, lang, "\n".join(body), mark and mark.group(1)))
            at = end
        at += 1
    return blocks


BLOCKS = readme_blocks()


@dataclass
class Example:
    command: str  # as the README writes it, continuation lines joined
    shown: list[str]  # the lines the README shows it printing


def examples(block: Block) -> list[Example]:
    """The commands of a block, each with the output shown under it: a ``console`` block's
    commands start with ``$ ``; every line of an ``sh`` block is a command."""
    found: list[Example] = []
    continued = False
    for line in block.text.splitlines():
        if continued:
            found[-1].command += " " + line.strip()
        elif block.lang == "sh" or line.startswith("$ "):
            found.append(Example(line.removeprefix("$ ").strip(), []))
        elif found:
            found[-1].shown.append(line)
        continued = line.endswith("\\")
        if continued:
            found[-1].command = found[-1].command.removesuffix("\\").rstrip()
    for example in found:
        while example.shown and not example.shown[-1].strip():
            example.shown.pop()
    return found


@pytest.fixture(scope="module")
def server(seed_build) -> Iterator[Server]:
    with running_server(seed_build.index_dir) as running:
        yield running


def _environment(**extra: str) -> dict[str, str]:
    """This process's environment without its PAPERSEARCH_* settings, plus ``extra``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAPERSEARCH_")}
    return {**clean, **extra}


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_keys(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(item) for item in value))
    return set()


def _first_id(value: object) -> str | None:
    if isinstance(value, dict):
        if isinstance(value.get("id"), str):
            return value["id"]
        items = list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        return None
    return next((found for item in items if (found := _first_id(item))), None)


def check_curl(example: Example, server: Server) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    command = example.command.replace(README_ADDRESS, server.url)
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=True
    )
    answer = json.loads(done.stdout)
    shown = "\n".join(example.shown)
    missing = set(re.findall(r'"(\w+)":', shown)) - _keys(answer)
    assert not missing, f"{example.command}: keys the README shows but the API lacks: {missing}"
    for code in re.findall(r'"code":\s*"(\w+)"', shown):
        assert answer.get("code") == code, (example.command, answer)
    if first := re.search(r'"id":\s*"([^"…]+)"', shown):
        assert _first_id(answer) == first.group(1), (example.command, answer)
    shows_results = not shown or re.search(r'"results":\s*\[\s*\{', shown)
    if shows_results and re.search(r"/(search|similar)\b", command):
        assert answer.get("results"), f"{example.command} found nothing: {answer}"


def _line_pattern(shown: str) -> re.Pattern[str]:
    """A README line as a pattern: its numbers stand for any number, ``…`` for any text."""
    pieces = re.split(r"(\d+(?:\.\d+)?|…)", shown.rstrip())
    pattern = "".join(
        r"\d+(?:\.\d+)?" if i % 2 and piece != "…" else ".*" if i % 2 else re.escape(piece)
        for i, piece in enumerate(pieces)
    )
    return re.compile(pattern)


def _printed_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """What a command printed, as a terminal shows it at the end: stderr (each progress bar
    in its last state, and errors), then stdout."""
    stderr: dict[str, str] = {}  # a bar's last state under its name, other lines as they are
    for number, line in enumerate(re.split(r"[\r\n]+", done.stderr)):
        bar = PROGRESS_BAR.match(line)
        if bar:
            stderr.pop(bar.group(1), None)  # kept where its last state is printed
        stderr[bar.group(1) if bar else str(number)] = line
    lines = (*stderr.values(), *done.stdout.splitlines())
    return [line.rstrip() for line in lines if line.strip()]


def check_papersearch(example: Example, index_dir: Path, workdir: Path) -> None:
    argv = shlex.split(example.command, comments=True)
    if argv[1] == "index":
        # As in a fresh clone: seeds/ in the working folder, the index and cache under data/.
        if not (workdir / "seeds").exists():
            (workdir / "seeds").symlink_to(SEEDS)
        env = _environment()
    else:
        env = _environment(PAPERSEARCH_INDEX_DIR=str(index_dir))
    done = subprocess.run(
        [PAPERSEARCH, *argv[1:]], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )
    printed = _printed_lines(done)
    failed = any("error:" in line for line in example.shown)
    assert (done.returncode != 0) == failed, (example.command, done.returncode, printed)
    if "--json" in argv:
        assert not example.shown
        assert json.loads(done.stdout)["results"], example.command
        return
    assert len(printed) == len(example.shown), (example.command, printed)
    for shown, line in zip(example.shown, printed, strict=True):
        assert _line_pattern(shown).fullmatch(line), (
            f"{example.command}\n  README: {shown}\n  real:   {line}"
        )


def check_access_log_line(block: Block, server: Server) -> None:
    """The README's access-log line has the keys of a real one (of the server's last)."""
    documented = json.loads(block.text)
    logged = [
        json.loads(line)
        for line in server.output().splitlines()
        if line.startswith("{") and '"papersearch.access"' in line
    ]
    assert logged, server.output()
    assert set(documented) == set(logged[-1]), (sorted(documented), sorted(logged[-1]))


@pytest.fixture(scope="module")
def index_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the README's `papersearch index` runs: each depends on the last."""
    return tmp_path_factory.mktemp("readme-index")


@pytest.mark.parametrize("block", BLOCKS, ids=[f"line{b.line}-{b.lang or 'text'}" for b in BLOCKS])
def test_readme_example(block: Block, request: pytest.FixtureRequest) -> None:
    if block.skip:
        pytest.skip(f"README line {block.line}: {block.skip}")
    if block.lang == "json":
        json.loads(block.text)  # a configuration to copy: it must at least be valid JSON
        return
    if block.lang == "" and '"papersearch.access"' in block.text:
        check_access_log_line(block, request.getfixturevalue("server"))
        return
    assert block.lang in {"sh", "console"}, (
        f"README line {block.line}: no check for a {block.lang or 'plain'} block; "
        "add one here or mark it <!-- readme-test: skip: reason -->"
    )
    commands = examples(block)
    assert commands, f"README line {block.line}: no command in the block"
    for example in commands:
        program = example.command.split()[0]
        if program == "curl":
            check_curl(example, request.getfixturevalue("server"))
        elif program == "papersearch":
            index_dir = request.getfixturevalue("seed_build").index_dir
            check_papersearch(example, index_dir, request.getfixturevalue("index_workdir"))
        else:
            pytest.fail(f"README line {block.line}: no check for `{program}` commands")


def test_every_skip_mark_is_just_above_a_block() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    marked = [i for i, line in enumerate(lines) if SKIP_MARK.fullmatch(line)]
    assert marked
    for i in marked:
        assert lines[i + 1].lstrip().startswith("```"), f"README line {i + 1}: mark with no block"


def test_few_examples_are_skipped() -> None:
    skipped = [block for block in BLOCKS if block.skip]
    assert len(skipped) <= len(BLOCKS) // 2, [(block.line, block.skip) for block in skipped]
