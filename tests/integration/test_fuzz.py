"""No input gets a 5xx: schemathesis fuzzes every operation of the served OpenAPI document on a
real stack (examples, boundary values, then random bodies), checking `not_a_server_error`.

Left out, with the reason: readiness probes (503 is their documented "not ready"), the SSE
stream (it never ends), the repository's load/unload (they change the stack under the other
cases), and RoentGen generation (every valid body is minutes of denoising on a CPU; its bad
input is covered by tests/integration/test_roentgen_route.py and the contract's unit tests).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_openapi import MODELS

EXCLUDE = r"/events$|/repository/models/|/readyz$|/health/ready$|/ready$|/roentgen/"


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(embedded_stack, redis_url: str, tmp_path: Path) -> None:
    stack = embedded_stack(MODELS, redis_url=redis_url)
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is a dev dependency"
    result = subprocess.run(
        [binary, "run", stack.url + "/openapi.json", "--checks", "not_a_server_error",
         "--phases", "examples,coverage,fuzzing", "--max-examples", "10", "--seed", "1",
         "--workers", "1", "--request-timeout", "300", "--max-time", "150",
         "--exclude-path-regex", EXCLUDE, "--suppress-health-check", "all",
         "--generation-deterministic", "--no-color"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    report = result.stdout[-6000:]
    assert result.returncode == 0, report
    assert "Tested:" in report
    assert stack.gateway.alive() and all(w.alive() for w in stack.workers)
    assert "Traceback" not in stack.logs()
