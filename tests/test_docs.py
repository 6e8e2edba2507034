"""The README is the user's manual: every setting, endpoint and command must appear in it."""

from __future__ import annotations

import re

import pytest

from service.app import create_app
from service.cli import COMMANDS
from service.settings import Settings
from tests.conftest import REPO

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
