"""The training loop: one stage = AdamW + warm-up/cosine + early stopping on val mean AUROC.

A `Session` holds what checkpoints carry: finished stages and strategies, and the stage in
progress (model, optimiser, scheduler, AMP scaler, RNG states, epoch and step within the
epoch, early-stopping state with the best weights, timing). Every checkpoint is the whole
session, so resuming from any one of them continues exactly where it was taken.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from core.errors import InvalidInput
from workers.training import checkpoint as ckpt
from workers.training.callbacks import Callbacks, TrainingStopped
from workers.training.data import epoch_batches, loader, ordered_batches, stage_seed
from workers.training.metrics import point_metrics
from workers.training.params import TrainOptions


@dataclass
class Stage:
    key: str
    train: Dataset
    epochs: int
    lr: float


class WarmupCosine:
    """LR factor per step: linear warm-up, then cosine decay to 0 at `total` steps."""

    def __init__(self, total: int, warmup: int) -> None:
        self.total, self.warmup = max(total, 1), min(warmup, max(total - 1, 0))

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        done = (step - self.warmup) / max(self.total - self.warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInput("device cuda was asked for but no GPU is visible; use auto or cpu")
    return torch.device(name)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA only: bf16 where supported (auto), else fp16 with a scaler."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


@contextmanager
def determinism(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the run (warn where an op has none); restored afterwards."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    if enabled:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE; NaN labels (uncertain, policy `ignore`) are left out."""
    mask = ~torch.isnan(labels)
    loss = F.binary_cross_entropy_with_logits(
        logits.float(), torch.nan_to_num(labels), reduction="none"
    )
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


class Session:
    """One run's device, precision, host callbacks and checkpointed state."""

    def __init__(
        self,
        options: TrainOptions,
        callbacks: Callbacks,
        fingerprint: str,
        resume: bytes | None = None,
    ) -> None:
        self.options, self.callbacks = options, callbacks
        self.device = pick_device(options.device)
        self.amp = amp_dtype(options.amp, self.device)
        self.state: dict[str, Any] = {
            "fingerprint": fingerprint,
            "stages": {},
            "results": {},
            "active": None,
        }
        if resume is not None:
            state = ckpt.load(resume)
            if state.get("fingerprint") != fingerprint:
                raise InvalidInput(
                    "the checkpoint belongs to another run (parameters or data differ)"
                )
            self.state = state

    # ---- checkpoints -------------------------------------------------------------------

    def save(self, name: str, active: dict[str, Any] | None) -> str:
        self.callbacks.save_checkpoint(ckpt.dump({**self.state, "active": active}), name)
        return name

    def _active(
        self,
        stage: Stage,
        model: nn.Module,
        optimizer: Any,
        scheduler: Any,
        scaler: Any,
        progress: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "stage": stage.key,
            "model": _cpu_copy(model.state_dict()),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": ckpt.rng_state(),
            "progress": dict(progress),
        }

    # ---- one stage ---------------------------------------------------------------------

    def run_stage(
        self, stage: Stage, model: nn.Module, val: Dataset, val_labels: np.ndarray
    ) -> dict[str, Any]:
        """Train until early stopping or the last epoch; return best weights and history."""
        if stage.key in self.state["stages"]:
            done: dict[str, Any] = self.state["stages"][stage.key]
            return done
        o = self.options
        model.to(self.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=stage.lr, weight_decay=o.weight_decay)
        per_epoch = len(epoch_batches(len(stage.train), o.batch_size, 0, 0))  # type: ignore[arg-type]
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, WarmupCosine(per_epoch * stage.epochs, o.warmup_steps)
        )
        scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        active = self.state.get("active")
        if active is not None and active["stage"] == stage.key:
            model.load_state_dict(active["model"])
            optimizer.load_state_dict(active["optimizer"])
            scheduler.load_state_dict(active["scheduler"])
            if scaler is not None and active["scaler"] is not None:
                scaler.load_state_dict(active["scaler"])
            ckpt.set_rng_state(active["rng"])
            progress = dict(active["progress"])
        else:
            ckpt.seed_all(stage_seed(o.seed, stage.key))
            progress = {
                "epoch": 0,
                "step": 0,
                "best": -math.inf,
                "best_epoch": -1,
                "bad": 0,
                "best_model": None,
                "history": [],
                "loop_s": 0.0,
                "step_s": 0.0,
                "samples": 0,
                "loss_sum": 0.0,
                "loss_n": 0,
                "finished": False,
            }
        self.callbacks.stage(stage.key, stage.epochs, per_epoch)
        parts = (stage, model, optimizer, scheduler, scaler, progress)
        while not progress["finished"]:
            self._train_epoch(*parts)
            self._end_epoch(*parts, val, val_labels)
        result = {
            k: progress[k]
            for k in ("best", "best_epoch", "best_model", "history", "loop_s", "step_s", "samples")
        }
        result["steps_per_epoch"] = per_epoch
        self.state["stages"][stage.key] = result
        self.state["active"] = None
        return result

    def _train_epoch(
        self,
        stage: Stage,
        model: nn.Module,
        optimizer: Any,
        scheduler: Any,
        scaler: Any,
        progress: dict[str, Any],
    ) -> None:
        o, epoch = self.options, progress["epoch"]
        seed = stage_seed(o.seed, stage.key)
        batches = epoch_batches(len(stage.train), o.batch_size, seed, epoch)  # type: ignore[arg-type]
        stage.train.set_epoch(epoch)  # type: ignore[attr-defined]
        model.train()
        start = progress["step"]
        batch_iter = iter(loader(stage.train, batches[start:], o.num_workers, seed + epoch))
        for step in range(start, len(batches)):
            if self.callbacks.should_stop():
                name = f"{_safe(stage.key)}-e{epoch + 1:03d}-s{step:05d}.ckpt"
                self.save(name, self._active(stage, model, optimizer, scheduler, scaler, progress))
                raise TrainingStopped(name)
            t0 = time.perf_counter()
            x, y = next(batch_iter)
            t1 = time.perf_counter()
            loss = self._step(model, optimizer, scheduler, scaler, x, y)
            t2 = time.perf_counter()
            progress.update(
                step=step + 1,
                loop_s=progress["loop_s"] + t2 - t0,
                step_s=progress["step_s"] + t2 - t1,
                samples=progress["samples"] + len(x),
                loss_sum=progress["loss_sum"] + loss,
                loss_n=progress["loss_n"] + 1,
            )
            self.callbacks.progress(epoch, step + 1, loss, None)
            every = o.checkpoint_every_steps
            if every and (step + 1) % every == 0 and step + 1 < len(batches):
                name = f"{_safe(stage.key)}-e{epoch + 1:03d}-s{step + 1:05d}.ckpt"
                self.save(name, self._active(stage, model, optimizer, scheduler, scaler, progress))

    def _step(
        self,
        model: nn.Module,
        optimizer: Any,
        scheduler: Any,
        scaler: Any,
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> float:
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        with torch.autocast(
            self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None
        ):
            logits = model(x)
        loss = masked_bce(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        return float(loss.detach())

    def _end_epoch(
        self,
        stage: Stage,
        model: nn.Module,
        optimizer: Any,
        scheduler: Any,
        scaler: Any,
        progress: dict[str, Any],
        val: Dataset,
        val_labels: np.ndarray,
    ) -> None:
        """Validate, update early stopping, report, checkpoint."""
        o, epoch = self.options, progress["epoch"]
        probs = self.predict(model, val)
        metric = point_metrics(
            val_labels,
            probs,
            np.full(val_labels.shape[1], 0.5),
            [str(i) for i in range(val_labels.shape[1])],
        )["mean_auroc"]
        train_loss = progress["loss_sum"] / max(progress["loss_n"], 1)
        progress["history"] = [
            *progress["history"],
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_mean_auroc": metric,
                "lr": float(scheduler.get_last_lr()[0]),
            },
        ]
        if not math.isnan(metric) and metric > progress["best"] + o.min_delta:
            progress.update(
                best=metric, best_epoch=epoch + 1, bad=0, best_model=_cpu_copy(model.state_dict())
            )
        else:
            progress["bad"] += 1
        progress.update(epoch=epoch + 1, step=0, loss_sum=0.0, loss_n=0)
        progress["finished"] = progress["bad"] >= o.patience or epoch + 1 >= stage.epochs
        self.callbacks.progress(
            epoch,
            len(epoch_batches(len(stage.train), o.batch_size, 0, 0)),  # type: ignore[arg-type]
            train_loss,
            metric,
        )
        name = f"{_safe(stage.key)}-e{epoch + 1:03d}.ckpt"
        self.save(name, self._active(stage, model, optimizer, scheduler, scaler, progress))

    # ---- inference ---------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, model: nn.Module, dataset: Dataset) -> np.ndarray:
        """Sigmoid probabilities [N, L] in dataset order (eval mode, no augmentation)."""
        model.eval()
        model.to(self.device)
        batches = list(ordered_batches(len(dataset), self.options.batch_size))  # type: ignore[arg-type]
        outs = []
        for x, _ in loader(dataset, batches, self.options.num_workers, 0):
            with torch.autocast(
                self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None
            ):
                logits = model(x.to(self.device))
            outs.append(torch.sigmoid(logits.float()).cpu().numpy())
        model.train()
        return np.concatenate(outs).astype(np.float32)


def _safe(key: str) -> str:
    return key.replace("/", "-")
