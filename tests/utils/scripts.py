"""Importing a benchmark script the way the benchmarks import each other: by file, not as a
package (benchmarks/ has no ``__init__``)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.conftest import REPO


def load_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module, registered so its dataclasses find it."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
