"""What a person sees when starting and stopping the platform: `medserve serve` says it is
ready, and where, only once `/readyz` is 200; the console holds one log format (no Celery
banner, no superuser warning); Ctrl-C and SIGTERM stop it with status 0, also under
`make serve` (no "Error 143" or "Error 130")."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.net import free_port
from tests.harness import CLI, ROOT, clean_env

READY = re.compile(r"ready on (http://127\.0\.0\.1:\d+) in [\d.]+ s \(models echo\)")


def _readyz(url: str) -> int:
    try:
        return httpx.get(url + "/readyz", timeout=1).status_code
    except httpx.HTTPError:
        return 0


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _wait_ready_and_announced(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll: while /readyz is not 200 the log must not say ready; after it, it must."""
    deadline = time.monotonic() + 90
    while _readyz(url) != 200:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert not READY.search(log.read_text()), "said ready before /readyz was 200"
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while not READY.search(log.read_text()):
        assert time.monotonic() < deadline, "never said where it is ready:\n" + log.read_text()
        time.sleep(0.1)
    assert READY.search(log.read_text()).group(1) == url  # type: ignore[union-attr]


@pytest.mark.slow
def test_serve_announces_readiness_logs_one_format_and_stops_with_0(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = clean_env(MEDSERVE_HOME=str(tmp_path / "home"))  # not a terminal: JSON lines
    proc = _start([*CLI, "serve", "--port", str(port), "--models", "echo"], env, log)
    try:
        _wait_ready_and_announced(proc, url, log)
        time.sleep(1.0)  # the job runners finish starting
        lines = log.read_text().splitlines()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(45)
    assert code == 0
    bad = [line for line in lines if not line.startswith("{")]
    assert not bad, bad  # one format: every line a JSON log line
    records = [json.loads(line) for line in lines]
    assert {"medserve.serve", "medserve.worker", "celery.apps.worker"} <= {
        r["logger"] for r in records
    }
    text = log.read_text()
    assert "SecurityWarning" not in text and "superuser" not in text
    assert "-------------- celery@" not in text and "color_message" not in text


@pytest.mark.slow
def test_make_serve_stops_cleanly_on_ctrl_c_and_sigterm(tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    for how in ("ctrl-c", "sigterm"):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = clean_env(MEDSERVE_HOME=str(tmp_path / how), MEDSERVE_PORT=str(port),
                        MEDSERVE_MODELS="echo", PYTHONPATH=str(ROOT))  # fmt: skip
        log = tmp_path / f"make-{how}.log"
        argv = ["make", "-s", "-o", f"{venv}/.installed", f"VENV={venv}", "serve"]
        make = _start(argv, env, log)
        try:
            _wait_ready_and_announced(make, url, log)
        finally:
            if how == "ctrl-c":
                os.killpg(make.pid, signal.SIGINT)  # what the terminal sends the foreground group
            else:
                serve = subprocess.run(["pgrep", "-P", str(make.pid)], capture_output=True,
                                       text=True).stdout.split()  # fmt: skip
                os.kill(int(serve[0]), signal.SIGTERM)
            code = make.wait(45)
        output = log.read_text()
        # make reports a recipe that failed ("make: *** [serve] Error 130") or died of a signal
        # ("... Interrupt"); on Ctrl-C make itself then stops by the same signal, as it always does
        assert "make: ***" not in output, output[-2000:]
        assert code == (-signal.SIGINT if how == "ctrl-c" else 0), code
