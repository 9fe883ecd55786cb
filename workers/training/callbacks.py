"""What the training library asks of its host (the job wrapper, a CLI, a test): five calls.

The library never touches the job system: it reports progress, asks whether to stop at every
step boundary, and hands over checkpoint and result bytes. `Callbacks` has harmless defaults
so a host overrides only what it needs; `FolderCallbacks` writes everything into a folder.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


class TrainingStopped(Exception):
    """Raised when `should_stop()` said yes; the last checkpoint has been handed over."""

    def __init__(self, checkpoint: str | None) -> None:
        super().__init__(f"training stopped; last checkpoint: {checkpoint}")
        self.checkpoint = checkpoint


class Callbacks:
    """Base host interface; every method may be overridden, none is required."""

    def stage(self, name: str, epochs: int, steps_per_epoch: int) -> None:
        """A training stage starts (`real`, `mixed`, `pretrain-finetune/pretrain`, ...)."""

    def progress(self, epoch: int, step: int, loss: float, metric: float | None) -> None:
        """After every optimiser step (`metric` None) and after each epoch's validation
        (`metric` = validation mean AUROC, `step` = steps done in the epoch)."""

    def should_stop(self) -> bool:
        """Checked before every step; True stops after handing over a checkpoint."""
        return False

    def save_checkpoint(self, data: bytes, name: str) -> None:
        """A self-contained resume point; each one supersedes the previous (keep the latest)."""

    def save_artifact(self, data: bytes, name: str) -> None:
        """A result file: `metrics.json`, `report.md`, `predictions/*.csv`, `plots/*.png`, ..."""


class FolderCallbacks(Callbacks):
    """Writes checkpoints and artifacts under a local folder (atomic renames); stop after N steps.

    Checkpoints go to `checkpoints/<name>` and `checkpoints/latest` (the most recent one).
    """

    def __init__(self, folder: str | Path, stop_after_steps: int | None = None) -> None:
        self.folder = Path(folder)
        self.stop_after_steps = stop_after_steps
        self.steps = 0
        self.checkpoints: list[str] = []
        self.events: list[tuple[int, int, float, float | None]] = []

    def _write(self, rel: str, data: bytes) -> None:
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def progress(self, epoch: int, step: int, loss: float, metric: float | None) -> None:
        if metric is None:
            self.steps += 1
        self.events.append((epoch, step, loss, metric))

    def should_stop(self) -> bool:
        return self.stop_after_steps is not None and self.steps >= self.stop_after_steps

    def save_checkpoint(self, data: bytes, name: str) -> None:
        self._write(f"checkpoints/{name}", data)
        self._write("checkpoints/latest", data)
        self.checkpoints.append(name)

    def save_artifact(self, data: bytes, name: str) -> None:
        self._write(name, data)

    def latest(self) -> bytes | None:
        path = self.folder / "checkpoints" / "latest"
        return path.read_bytes() if path.exists() else None
