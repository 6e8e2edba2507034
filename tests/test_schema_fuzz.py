"""Property-based requests from the OpenAPI schema (schemathesis): whatever a client sends,
the service answers with no 5xx, and every answer matches what the schema promises.

Twice: in process (the app called directly, failures with their traceback), and from
outside, ``st run`` against a real ``papersearch serve`` over HTTP, which also meets what
only a real server does (the HTTP parser's own refusals, the middlewares in their order,
the admin routes behind a key, sequences of requests that follow the schema's links).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from service.app import create_app
from tests.conftest import running_server
from tests.utils.index_files import linked_copy

SCHEMATHESIS = str(Path(sys.executable).with_name("st"))

FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same requests on every run: CI never flakes on a new example
    suppress_health_check=list(HealthCheck),
    database=None,
)


def test_no_request_gets_a_server_error_or_an_off_schema_answer(seed_settings):
    # schemathesis's pytest plugin (`from_fixture`) reads a pytest attribute that pytest 9
    # removed, so the operations are driven here, each by its own hypothesis run. MCP is
    # not an OpenAPI route (its SDK validates its own messages). Some rules cannot be said in
    # OpenAPI (year_from <= year_to, text that is not blank and holds no control character,
    # the query length set at run time), so a schema-valid request may get a documented 422:
    # the "valid data is accepted" check is left out; every other default check runs.
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(seed_settings))
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Exception as exc:  # collected, so one run reports every operation that fails
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_a_running_server_answers_as_its_schema_says(seed_build, cache_dir, tmp_path):
    # Every check but two, each left out for a reason OpenAPI cannot express:
    # - positive_data_acceptance: as above, a schema-valid request may get a documented 422.
    # - negative_data_rejection: pydantic reads values leniently (JSON 0 and 1 as booleans,
    #   "10" as 10, 2710.0 as 2710), so some requests off the schema's exact types are
    #   answered; refusing them would break clients that send them.
    # With an API key, so the admin routes run (on a copy of the index) and a request
    # without the key must get its 401; every request schemathesis makes carries the key.
    key = "schema-fuzz-key"
    index = linked_copy(seed_build.index_dir, tmp_path / "index")
    with running_server(
        index, PAPERSEARCH_API_KEY=key, PAPERSEARCH_CACHE_DIR=str(cache_dir)
    ) as server:
        run = subprocess.run(
            [
                SCHEMATHESIS,
                "run",
                f"{server.url}/openapi.json",
                "--checks=all",
                "--exclude-checks=positive_data_acceptance,negative_data_rejection",
                "--max-examples=20",
                "--generation-deterministic",  # the same requests on every run, no database
                "--workers=1",
                "--request-timeout=60",
                "--header",
                f"Authorization: Bearer {key}",
                "--no-color",
                "--output-truncate=true",
            ],
            cwd=tmp_path,  # anything it writes stays out of the checkout
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
