"""The placement planner on simulated machines (1, 2, 4, 8 GPUs of 24 or 80 GB, or CPU
workers): where every model goes, how many replicas it gets, and the start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.devices import machine_gpus, parse_gpus
from cli.placement import HEADROOM, Gpu, Need, describe, load_plan, plan, replicas_of
from core.errors import InvalidInput

# The platform's default models on a GPU machine (GB from their manifests' resources).
DEFAULT = [Need("echo"), Need("roentgen-v2", 6), Need("medvae-4-1-2d", 4),
           Need("medvae-8-1-3d", 12), Need("medval-4b", 10)]  # fmt: skip
# Plus Merlin (16 GB) and Merlin report generation (40 GB, no CPU fallback worth having).
WITH_MERLIN = [*DEFAULT, Need("merlin", 16), Need("merlin-report", 40, cpu_ok=False)]
ALL = {"echo", "roentgen-v2", "medvae-4-1-2d", "medvae-8-1-3d", "medval-4b"}


def gpus(count: int, gb: float) -> list[Gpu]:
    return [Gpu(i, gb) for i in range(count)]


CASES = [  # (GPUs, GB each, models, replicas per model, or the start-up error)
    (1, 24, DEFAULT, "medval-4b (10 GB) does not fit next to the larger models"),
    (1, 80, DEFAULT, dict.fromkeys(ALL, 1)),
    (2, 24, DEFAULT, {"echo": 2, "medvae-4-1-2d": 2, "roentgen-v2": 1, "medval-4b": 1,
                      "medvae-8-1-3d": 1}),
    (2, 80, DEFAULT, dict.fromkeys(ALL, 2)),
    (4, 24, DEFAULT, {"echo": 4, "medvae-4-1-2d": 4, "roentgen-v2": 3, "medval-4b": 3,
                      "medvae-8-1-3d": 1}),
    (4, 80, DEFAULT, dict.fromkeys(ALL, 4)),
    (8, 24, DEFAULT, {"echo": 8, "medvae-4-1-2d": 8, "roentgen-v2": 7, "medval-4b": 7,
                      "medvae-8-1-3d": 1}),
    (8, 80, DEFAULT, dict.fromkeys(ALL, 8)),
    (1, 80, WITH_MERLIN, "does not fit next to the larger models"),  # 88 GB on one 72
    (2, 80, WITH_MERLIN, {**dict.fromkeys(ALL, 2), "merlin": 1, "merlin-report": 1}),
    (8, 80, WITH_MERLIN, {**dict.fromkeys(ALL, 8), "merlin": 7, "merlin-report": 1}),
    (8, 24, WITH_MERLIN, "merlin-report needs 40 GB of GPU memory and the largest GPU here "
                         "offers 21.6 GB (90% of 8 x 24 GB)"),
]  # fmt: skip


@pytest.mark.parametrize(("count", "gb", "needs", "expected"), CASES,
                         ids=[f"{c}x{g}GB-{len(n)}models" for c, g, n, _ in CASES])  # fmt: skip
def test_plan_on_simulated_machines(count, gb, needs, expected) -> None:
    if isinstance(expected, str):
        with pytest.raises(InvalidInput, match=expected.replace("(", r"\(").replace(")", r"\)")):
            plan(needs, gpus(count, gb))
        return
    workers = plan(needs, gpus(count, gb))
    assert replicas_of(workers) == expected
    size = {n.name: n.gpu_gb for n in needs}
    for worker in workers:  # no GPU filled past its usable memory, no model twice on one
        assert worker.used_gb == pytest.approx(sum(size[m] for m in worker.models))
        assert worker.used_gb <= gb * HEADROOM + 1e-9
        assert len(set(worker.models)) == len(worker.models)
        assert worker.device == f"cuda:{worker.gpu.index}"  # type: ignore[union-attr]


def test_small_models_go_everywhere_and_the_largest_where_it_fits() -> None:
    workers = plan(WITH_MERLIN, gpus(4, 80))
    assert all("echo" in w.models and "medvae-4-1-2d" in w.models for w in workers)
    assert sum("merlin-report" in w.models for w in workers) >= 1


def test_replicas_wanted_caps_the_copies() -> None:
    needs = [Need("echo", replicas=2), Need("medval-4b", 10, replicas=1)]
    assert replicas_of(plan(needs, gpus(8, 80))) == {"echo": 2, "medval-4b": 1}


def test_a_model_larger_than_any_gpu_is_a_clear_start_up_error() -> None:
    with pytest.raises(InvalidInput, match=r"needs 100 GB .* use a larger GPU") as caught:
        plan([Need("echo"), Need("huge", 100)], gpus(8, 80))
    assert "MEDSERVE_GPUS=none" in caught.value.message


def test_without_gpus_models_spread_over_cpu_workers_as_before() -> None:
    workers = plan(DEFAULT, [], cpu_workers=2)
    assert [w.models for w in workers] == [
        ["echo", "medvae-4-1-2d", "medval-4b"],
        ["roentgen-v2", "medvae-8-1-3d"],
    ]
    assert [w.device for w in workers] == ["cpu", "cpu"]
    assert len(plan(DEFAULT, [], cpu_workers=1)) == 1
    assert len(plan([Need("echo")], [], cpu_workers=4)) == 1  # no idle worker processes
    two = plan([Need("echo", replicas=2), Need("roentgen-v2", 6)], [], cpu_workers=2)
    assert replicas_of(two) == {"echo": 2, "roentgen-v2": 1}


def test_a_gpu_only_model_on_a_cpu_machine_is_refused() -> None:
    with pytest.raises(InvalidInput, match="merlin-report \\(40 GB\\) need a GPU"):
        plan(WITH_MERLIN, [], cpu_workers=2)


def test_the_plan_prints_one_line_per_worker() -> None:
    text = describe(plan(DEFAULT, gpus(2, 24)))
    assert text.splitlines() == [
        "placement:",
        "  worker-0  cuda:0     16/21.6 GB  echo, medvae-4-1-2d, medvae-8-1-3d",
        "  worker-1  cuda:1     20/21.6 GB  echo, medvae-4-1-2d, medval-4b, roentgen-v2",
    ]


def test_a_placement_file_replaces_the_plan_and_is_checked(tmp_path: Path) -> None:
    needs = [Need("echo"), Need("medval-4b", 10)]
    good = tmp_path / "placement.yaml"
    good.write_text("workers:\n  - {device: cuda:1, models: [echo, medval-4b]}\n"
                    "  - {device: cpu, models: [echo]}\n")  # fmt: skip
    workers = load_plan(good, needs, gpus(2, 24))
    assert [(w.device, w.models, w.used_gb) for w in workers] == [
        ("cuda:1", ["echo", "medval-4b"], 10),
        ("cpu", ["echo"], 0.0),
    ]
    as_json = tmp_path / "placement.json"
    as_json.write_text('{"workers": [{"device": "cpu", "models": ["echo", "medval-4b"]}]}')
    assert load_plan(as_json, needs, [])[0].models == ["echo", "medval-4b"]
    for text, message in [
        ("workers:\n  - {device: cuda:0, models: [echo]}\n", "no worker for medval-4b"),
        ("workers:\n  - {device: cuda:0, models: [echo, medval-4b, x]}\n", "x not among"),
        ("workers:\n  - {device: cuda:7, models: [echo, medval-4b]}\n", "cuda:7 is not one"),
        ("workers:\n  - {device: gpu0, models: [echo, medval-4b]}\n", "device"),
        ("workers:\n  - {device: cpu, modles: [echo]}\n", "modles"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(InvalidInput, match=message):
            load_plan(bad, needs, gpus(2, 24))


def test_gpus_setting_forms() -> None:
    assert parse_gpus("none") == [] and parse_gpus("") == []
    assert parse_gpus("0,1") == [(0, None), (1, None)]
    assert parse_gpus("0:80, 1:24") == [(0, 80.0), (1, 24.0)]
    assert machine_gpus("0:80,3:24") == [Gpu(0, 80.0), Gpu(3, 24.0)]
    assert machine_gpus("none") == []
    with pytest.raises(InvalidInput, match="index:GB"):
        parse_gpus("two")
    with pytest.raises(InvalidInput, match="torch sees no GPU"):
        machine_gpus("0")  # this machine has none (the test machine has no GPU)


def test_serve_plans_tiny_random_weights_as_needing_nothing(tmp_path: Path) -> None:
    """Real weights need their manifest's memory; tiny random ones (tests, the offline demo) run
    anywhere, as the worker's resources check allows."""
    import json

    from cli.serve import placement
    from core.constants import STORE_MARKER
    from core.settings import Settings
    from model_store.manifest import load_manifests
    from model_store.store import ModelStore

    settings = Settings(home=tmp_path, gpus="0:8")
    folder = ModelStore(settings.model_root, load_manifests()).path("medvae-8-1-3d")
    folder.mkdir(parents=True)
    for kind, fits in (("random-tiny", True), ("pulled", False)):
        (folder / STORE_MARKER).write_text(json.dumps({"weights": kind, "digest": "sha256:0"}))
        if fits:
            assert placement(settings, ["echo", "medvae-8-1-3d"])[0].used_gb == 0
        else:
            with pytest.raises(InvalidInput, match="needs 12 GB"):
                placement(settings, ["echo", "medvae-8-1-3d"])
    assert placement(settings, ["merlin-report"], tiny=["merlin-report"])[0].device == "cuda:0"
