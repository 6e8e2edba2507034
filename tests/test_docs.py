"""The README is the user's manual: every setting, endpoint and command must appear in it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.app import create_app
from service.cli import COMMANDS
from service.settings import Settings
from tests.conftest import PAPERSEARCH, REPO, running_server

README = (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field):
    assert f"`PAPERSEARCH_{field.upper()}`" in README


OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in create_app(Settings()).openapi()["paths"].items()
    for method in item
)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_endpoint_is_documented(method, path):
    documented = re.sub(r"\{[^}]+\}", "{id}", path)
    assert f"`{method} {documented}" in README


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_is_documented(command):
    assert f"papersearch {command}" in README


def test_quick_start_is_the_two_make_commands():
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert re.findall(r"^make \w+", quick_start, flags=re.MULTILINE) == ["make run", "make test"]


def test_ci_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_dockerfile_uses_the_makefile_targets():
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "RUN make install && make index" in dockerfile
    assert "USER papersearch" in dockerfile and '"--host", "0.0.0.0"' in dockerfile


# The API's documentation page needs no network either: its script, styles and icon come from
# this app (service/routes/docs.py), never from a CDN. ReDoc, whose page would, is off.
def _docs_assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


def test_the_docs_page_references_no_other_host_and_its_assets_load():
    client = TestClient(create_app(Settings()))  # no index needed: the app is not started
    page = client.get("/docs")
    assert page.status_code == 200
    assert "SwaggerUIBundle" in page.text
    assert not re.search(r"(https?:)?//", page.text), "the page names another host"
    assets = _docs_assets(page.text)
    assert {asset.rsplit(".", 1)[1] for asset in assets} == {"js", "css", "png"}, assets
    for asset in assets:
        assert asset.startswith("/static/docs/"), asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 1000, asset
        kind = {"js": "javascript", "css": "text/css", "png": "image/png"}[asset.rsplit(".", 1)[1]]
        assert kind in response.headers["content-type"], (asset, response.headers)
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/redoc").status_code == 404


def test_the_docs_page_and_its_assets_stay_open_where_an_api_key_is_set():
    keyed = TestClient(create_app(Settings(api_key="docs-key")))
    assert keyed.get("/search", params={"q": "x"}).status_code == 401
    for path in ("/docs", "/docs/oauth2-redirect", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path
    for asset in _docs_assets(keyed.get("/docs").text):
        assert keyed.get(asset).status_code == 200, asset


def test_swagger_ui_renders_the_api_without_the_network(seed_build):
    """In Debian's Chromium (where installed): /docs lists the API's operations, requesting
    nothing from another host and raising no JavaScript error."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = Path(os.environ.get("PAPERSEARCH_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        pytest.skip(f"{chromium} not found: the browser check needs Debian's Chromium")
    problems: list[str] = []
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with running_server(seed_build.index_dir) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=flags)
        page = browser.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "request",
            lambda request: (
                not request.url.startswith((server.url, "data:", "blob:"))
                and problems.append(f"off-site request: {request.url}")
            ),
        )
        page.goto(f"{server.url}/docs")
        sync_api.expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=20_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert "/search" in paths and "/similar" in paths, paths
        browser.close()
    assert not problems, problems


def _pins(lock: Path) -> dict[str, str]:
    """A lock file's ``name==version`` lines, by normalised name."""
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock.read_text(), re.MULTILINE)
    return {canonicalize_name(name): version for name, version in found}


LOCKS = {"": "runtime.txt", "test": "test.txt", "bench": "bench.txt", "ray": "ray.txt"}


@pytest.mark.parametrize("extra", sorted(LOCKS))
def test_the_lock_files_pin_every_dependency_of_pyproject(extra):
    """A dependency added to pyproject.toml without `make lock` fails here, not on a fresh
    machine; torch is pinned by the Makefile instead (see LOCK there)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["optional-dependencies"][extra] if extra else project["dependencies"]
    pins = _pins(REPO / "requirements" / LOCKS[extra])
    runtime = _pins(REPO / "requirements" / LOCKS[""])
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name == "torch":
            assert name not in pins
            continue
        assert name in pins, f"{name} is not in requirements/{LOCKS[extra]}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (line, pins[name])
    # Each lock extends the runtime one with the same versions, so installing it changes none.
    assert {name: pins[name] for name in runtime} == runtime


def _make_dry_run(*args: str, **env: str) -> str:
    clean = {
        name: value
        for name, value in os.environ.items()
        if name not in {"HOST", "PORT", "INDEX", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
        and not name.startswith("PAPERSEARCH_")
    }
    done = subprocess.run(
        ["make", "--dry-run", "run", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return next(line for line in done.stdout.splitlines() if " serve " in line)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_serves_what_the_environment_sets_unless_told_otherwise(tmp_path):
    assert _make_dry_run().endswith("serve --index data/index --host 127.0.0.1 --port 8000")
    index = str(tmp_path / "index")
    env = {
        "PAPERSEARCH_PORT": "9123",
        "PAPERSEARCH_HOST": "0.0.0.0",
        "PAPERSEARCH_INDEX_DIR": index,
    }
    assert _make_dry_run(**env).endswith(f"serve --index {index} --host 0.0.0.0 --port 9123")
    assert _make_dry_run("PORT=9000", **env).endswith("--port 9000")


def test_serve_help_says_the_environment_sets_its_defaults():
    shown = " ".join(
        subprocess.run(
            [PAPERSEARCH, "serve", "--help"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    for variable, default in (("INDEX_DIR", "data/index"), ("HOST", "127.0.0.1"), ("PORT", 8000)):
        assert f"default: PAPERSEARCH_{variable}, else {default}" in shown
    assert "default: PAPERSEARCH_WORKERS, else one per core" in shown
