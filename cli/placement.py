"""Which worker process serves which models on which device: `medserve serve`'s placement plan.

A pure function of the models' needs (each manifest's `resources`: GPU memory, CPU fallback,
replicas wanted) and the machine (its GPUs' memory, or CPU worker slots), unit-tested on
simulated machines; no torch here. On GPUs: every model first gets one replica, largest
first, on the GPU with the most free memory it fits in (a model that fits nowhere is a
start-up error that says what to change); then, smallest model first, each gets a replica on
every other GPU it still fits on, up to the replicas wanted (unset: every GPU). So small hot
models end up on every GPU and large ones where they fit. Without GPUs the models are spread
over `cpu_workers` processes sharing the cores. A placement file (YAML or JSON) replaces the
computed plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInput
from core.validation import describe as describe_validation

HEADROOM = 0.9  # of a GPU's memory a plan fills: the rest is the CUDA context and fragmentation


@dataclass(frozen=True)
class Gpu:
    index: int
    memory_gb: float

    @property
    def usable_gb(self) -> float:
        return round(self.memory_gb * HEADROOM, 3)


@dataclass(frozen=True)
class Need:
    """What one model asks of the machine (from its manifest's `resources`)."""

    name: str
    gpu_gb: float = 0.0
    cpu_ok: bool = True
    replicas: int | None = None  # None: every GPU it fits on (one without GPUs)


@dataclass
class WorkerPlan:
    """One worker process: its device and the models it hosts."""

    device: str  # cuda:N or cpu
    models: list[str] = field(default_factory=list)
    gpu: Gpu | None = None
    used_gb: float = 0.0

    @property
    def free_gb(self) -> float:
        return (self.gpu.usable_gb if self.gpu else float("inf")) - self.used_gb


def plan(needs: list[Need], gpus: list[Gpu], cpu_workers: int = 1) -> list[WorkerPlan]:
    """The workers to start: one per GPU that hosts a model, else up to `cpu_workers` on CPU."""
    if not needs:
        return []
    if gpus:
        return _plan_gpus(needs, gpus)
    return _plan_cpu(needs, max(1, cpu_workers))


def _plan_cpu(needs: list[Need], count: int) -> list[WorkerPlan]:
    gpu_only = [n for n in needs if not n.cpu_ok]
    if gpu_only:
        names = ", ".join(f"{n.name} ({n.gpu_gb:g} GB)" for n in gpu_only)
        raise InvalidInput(
            f"{names} need a GPU and this machine has none: run on a GPU machine, "
            "set MEDSERVE_GPUS, or drop them from MEDSERVE_MODELS"
        )
    workers = [WorkerPlan("cpu") for _ in range(min(count, len(needs)))]
    for i, need in enumerate(needs):  # first replicas round-robin, as before replicas existed
        workers[i % len(workers)].models.append(need.name)
    for need in needs:  # replicas asked for: on the least loaded workers without the model
        wanted = min(need.replicas or 1, len(workers))
        have = sum(need.name in w.models for w in workers)
        for worker in sorted(workers, key=lambda w: len(w.models)):
            if have >= wanted:
                break
            if need.name not in worker.models:
                worker.models.append(need.name)
                have += 1
    return workers


def _plan_gpus(needs: list[Need], gpus: list[Gpu]) -> list[WorkerPlan]:
    workers = [WorkerPlan(f"cuda:{g.index}", gpu=g) for g in gpus]
    largest = max(g.usable_gb for g in gpus)
    for need in sorted(needs, key=lambda n: (-n.gpu_gb, n.name)):  # largest first
        if need.gpu_gb > largest:
            raise InvalidInput(
                f"model {need.name} needs {need.gpu_gb:g} GB of GPU memory and the largest GPU "
                f"here offers {largest:g} GB ({HEADROOM:.0%} of {_sizes(gpus)}): use a larger "
                "GPU, drop it from MEDSERVE_MODELS, or set MEDSERVE_GPUS=none to run on CPU"
            )
        target = _roomiest(workers, need)
        if target is None:
            free = ", ".join(f"{w.device} {w.free_gb:g} GB" for w in workers)
            raise InvalidInput(
                f"model {need.name} ({need.gpu_gb:g} GB) does not fit next to the larger "
                f"models (free: {free}): add GPUs, drop a model from MEDSERVE_MODELS, or give "
                "a placement file (MEDSERVE_PLACEMENT_FILE)"
            )
        _put(target, need)
    for need in sorted(needs, key=lambda n: (n.gpu_gb, n.name)):  # then smallest first
        wanted = min(need.replicas or len(gpus), len(gpus))
        for _ in range(wanted - 1):
            target = _roomiest(workers, need)
            if target is None:
                break
            _put(target, need)
    for worker in workers:
        worker.models.sort()
    return [w for w in workers if w.models]


def _roomiest(workers: list[WorkerPlan], need: Need) -> WorkerPlan | None:
    fits = [w for w in workers if need.name not in w.models and w.free_gb + 1e-9 >= need.gpu_gb]
    return max(fits, key=lambda w: (w.free_gb, -workers.index(w))) if fits else None


def _put(worker: WorkerPlan, need: Need) -> None:
    worker.models.append(need.name)
    worker.used_gb = round(worker.used_gb + need.gpu_gb, 3)


def _sizes(gpus: list[Gpu]) -> str:
    counts: dict[float, int] = {}
    for gpu in gpus:
        counts[gpu.memory_gb] = counts.get(gpu.memory_gb, 0) + 1
    return ", ".join(f"{n} x {gb:g} GB" for gb, n in counts.items())


class _FileWorker(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field(pattern=r"^(cpu|cuda:\d+)$", description="cpu or cuda:N")
    models: list[str] = Field(min_length=1)


class PlacementFile(BaseModel):
    """A placement plan written by hand: `workers: [{device: cuda:0, models: [...]}, ...]`."""

    model_config = ConfigDict(extra="forbid")

    workers: list[_FileWorker] = Field(min_length=1)


def load_plan(path: Path, needs: list[Need], gpus: list[Gpu]) -> list[WorkerPlan]:
    """The plan in a placement file, checked against the models to serve and the GPUs."""
    try:
        text = path.read_text()
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        spec = PlacementFile.model_validate(doc)
    except ValidationError as exc:
        raise InvalidInput(
            f"placement file {path}: {describe_validation(exc, PlacementFile)}"
        ) from None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInput(
            f"placement file {path}: {detail}; write workers: [{{device: cuda:0, models: [...]}}]"
        ) from None
    by_name = {n.name: n for n in needs}
    placed = {m for w in spec.workers for m in w.models}
    unknown, missing = sorted(placed - set(by_name)), sorted(set(by_name) - placed)
    if unknown or missing:
        raise InvalidInput(
            f"placement file {path}: "
            + "; ".join(
                ([f"{', '.join(unknown)} not among the models served"] if unknown else [])
                + ([f"no worker for {', '.join(missing)}"] if missing else [])
            )
            + ": make it list exactly the models of MEDSERVE_MODELS"
        )
    gpu_of = {f"cuda:{g.index}": g for g in gpus}
    workers = []
    for entry in spec.workers:
        if entry.device != "cpu" and gpus and entry.device not in gpu_of:
            raise InvalidInput(f"placement file {path}: {entry.device} is not one of this "
                               f"machine's GPUs ({', '.join(gpu_of)})")  # fmt: skip
        used = sum(by_name[m].gpu_gb for m in entry.models) if entry.device != "cpu" else 0.0
        workers.append(WorkerPlan(entry.device, list(entry.models), gpu_of.get(entry.device), used))
    return workers


def describe(workers: list[WorkerPlan]) -> str:
    """The plan as `serve` prints it at start: one line per worker."""
    lines = []
    for i, w in enumerate(workers):
        memory = f"{w.used_gb:g}/{w.gpu.usable_gb:g} GB" if w.gpu else "-"
        lines.append(f"  worker-{i}  {w.device:<7} {memory:>13}  {', '.join(w.models)}")
    return "placement:\n" + "\n".join(lines)


def replicas_of(workers: list[WorkerPlan]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for worker in workers:
        for name in worker.models:
            counts[name] = counts.get(name, 0) + 1
    return counts
