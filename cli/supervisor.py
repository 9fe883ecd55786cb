"""Child processes of `medserve serve`: start them, restart any that dies (with backoff), stop all.

Children run in their own session (a terminal's Ctrl-C reaches only `serve`, which stops them
in order) and get SIGTERM if `serve` itself dies, so none outlives it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("medserve.supervisor")

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0  # a child that ran this long restarts with the shortest backoff again


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


PDEATHSIG = _parent_death_signal()


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str]


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = BACKOFF_START_S
    restart_at: float | None = None
    history: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class Supervisor:
    """Keeps a set of child processes running until `stop()`."""

    def __init__(self, poll_s: float = 0.25) -> None:
        self.children: list[Child] = []
        self.poll_s = poll_s
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, spec: ChildSpec) -> Child:
        child = Child(spec)
        self.children.append(child)
        return child

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)
        self._thread = threading.Thread(target=self._watch, name="medserve-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.spec.argv,
            env=child.spec.env,
            start_new_session=True,
            preexec_fn=PDEATHSIG,  # a single prctl call: safe beside threads
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started %s", child.spec.name, extra={"child": child.spec.name, "pid": child.pid})

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_s):
            with self._lock:
                if self._stopping.is_set():
                    return
                now = time.monotonic()
                for child in self.children:
                    self._check(child, now)

    def _check(self, child: Child, now: float) -> None:
        process = child.process
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)
            return
        if process is None or process.poll() is None:
            return
        code = process.returncode
        child.history.append(code)
        if now - child.started_at >= HEALTHY_AFTER_S:
            child.backoff_s = BACKOFF_START_S
        delay = child.backoff_s
        child.backoff_s = min(BACKOFF_MAX_S, child.backoff_s * 2)
        child.restart_at = now + delay
        log.warning(
            "%s exited (code %s); restarting in %.0f s",
            child.spec.name,
            code,
            delay,
            extra={"child": child.spec.name, "exit_code": code},
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every child, wait up to `timeout_s` for all, then SIGKILL the rest."""
        self._stopping.set()
        with self._lock:
            running = [c.process for c in self.children if c.process and c.process.poll() is None]
            for process in running:
                try:
                    os.kill(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout_s
            for process in running:
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("child did not stop in time; killing", extra={"pid": process.pid})
                    process.kill()
                    process.wait()
        if self._thread is not None:
            self._thread.join(timeout=2)
