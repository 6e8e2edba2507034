"""onnx-int8 is the default backend and the serving process never loads torch; torch stays
the reference, and an index is only ever searched with the backend that built it."""

from __future__ import annotations

import json
import os
import re
import subprocess

import httpx
import numpy as np

from indexing.manifest import read_manifest
from models import DEFAULT_MODEL, load_embedder
from tests.conftest import PAPERSEARCH, running_server
from tests.test_cli import run_cli

# What the onnx-int8 backend must never load: gigabytes of memory and seconds of start-up.
TORCH_STACK = {"torch", "transformers", "sentence_transformers"}
QUERY = "cross-domain live-streaming recommendation"


def imported_packages(output: str) -> set[str]:
    """Top-level packages a process imported, from what ``PYTHONPROFILEIMPORTTIME`` wrote:
    one line per module the interpreter imported, whenever it happened."""
    lines = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", output, flags=re.MULTILINE)
    return {module.split(".")[0] for module in lines}


def test_a_new_index_is_built_with_onnx_int8(seed_build):
    assert read_manifest(seed_build.index_dir).backend == "onnx-int8"


def test_the_onnx_int8_server_never_imports_torch(seed_build, torch_seed_build):
    """A real `papersearch serve` answering searches, a title look-up and the assistant
    tools imported no torch; the same server over a torch index does (the check can fail)."""
    env = {"PYTHONPROFILEIMPORTTIME": "1"}
    for build, loads_torch in ((seed_build, False), (torch_seed_build, True)):
        with running_server(build.index_dir, **env) as server:
            assert httpx.get(f"{server.url}/search", params={"q": QUERY}).status_code == 200
            title = {"title": "long term interest clock"}
            assert httpx.get(f"{server.url}/similar", params=title).status_code == 200
            call = {"name": "search_papers", "arguments": {"query": QUERY}}
            assert httpx.post(f"{server.url}/tools/call", json=call).status_code == 200
            ready = httpx.get(f"{server.url}/readyz").json()
            imported = imported_packages(server.output())
        assert ready["backend"] == ("torch" if loads_torch else "onnx-int8")
        assert "fastapi" in imported  # the lines were read
        assert ("onnxruntime" in imported) is not loads_torch
        assert bool(imported & TORCH_STACK) is loads_torch, sorted(imported & TORCH_STACK)


def test_papersearch_search_never_imports_torch(seed_settings):
    done = subprocess.run(
        [PAPERSEARCH, "search", QUERY, "-k", "3", "--index", str(seed_settings.index_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        check=True,
    )
    assert "hybrid search: 1-3 of 98" in done.stdout
    imported = imported_packages(done.stderr)
    assert "onnxruntime" in imported and not imported & TORCH_STACK


def test_the_torch_backend_builds_serves_and_agrees_with_onnx_int8(
    capsys, seed_settings, torch_seed_build
):
    """The reference still works end to end, and both backends find the same papers."""
    assert read_manifest(torch_seed_build.index_dir).backend == "torch"
    top = {}
    for index in (seed_settings.index_dir, torch_seed_build.index_dir):
        code, out, err = run_cli(capsys, "search", QUERY, "--json", "--index", str(index))
        assert code == 0, err
        top[index] = [hit["id"] for hit in json.loads(out)["results"]][:3]
    first, second = top.values()
    assert first[0] == second[0] and len(set(first) & set(second)) >= 2


def test_an_index_is_refused_with_another_backend_saying_what_to_run(capsys, torch_seed_build):
    index = str(torch_seed_build.index_dir)
    for command in (["search", QUERY], ["similar", "--title", "long term interest clock"]):
        code, _, err = run_cli(capsys, *command, "--index", index, "--backend", "onnx-int8")
        assert code == 1
        assert "was built with the torch backend, not onnx-int8" in err
        assert f"papersearch index --out {index}` to build it with --backend onnx-int8" in err
    # The server refuses before it loads anything: one line, exit status 1.
    done = subprocess.run(
        [PAPERSEARCH, "serve", "--index", index, "--backend", "onnx-int8", "--port", "1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("papersearch: error: index at") and done.stderr.count("\n") == 1
    # Asking for the backend it was built with is fine.
    code, _, err = run_cli(
        capsys, "search", QUERY, "-k", "1", "--index", index, "--backend", "torch"
    )
    assert code == 0, err


def test_onnx_int8_vectors_do_not_depend_on_their_batch():
    """Each text runs alone through the int8 model: batched with others, its activations
    would share one quantisation scale with them and its vector would change with them."""
    embedder = load_embedder(DEFAULT_MODEL)
    texts = [QUERY, "protein folding", "a much longer query " * 20, "graph neural networks"]
    together = embedder.encode(texts, batch_size=4)
    alone = np.stack([embedder.encode([text])[0] for text in texts])
    assert np.array_equal(together, alone)


def test_prepare_makes_the_default_backend_ready(capsys):
    code, out, err = run_cli(capsys, "prepare")
    assert code == 0, err
    assert re.fullmatch(r"all-MiniLM-L6-v2 \(onnx-int8\) is ready in \S+-onnx-int8-r\d+\n", out)
