"""Deployment files: the Helm chart renders valid manifests; compose and Dockerfiles agree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.unit.deploy.conftest import ROOT


def _render(helm: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    args = [str(helm), "template", "t", "helm/medserve"]
    for item in sets:
        args += ["--set", item]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True)


def test_chart_renders_gpu_workers_and_aof_redis(helm: Path) -> None:
    result = _render(helm, "apiKeys=k1:tenant-a")
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "t-medserve-worker-imaging") in kinds
    assert ("HorizontalPodAutoscaler", "t-medserve-gateway") in kinds
    worker = next(
        d
        for d in docs
        if d["metadata"]["name"] == "t-medserve-worker-imaging" and d["kind"] == "Deployment"
    )
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--models" in container["args"]
    redis = next(d for d in docs if d["kind"] == "StatefulSet")
    assert "--appendonly" in redis["spec"]["template"]["spec"]["containers"][0]["args"]
    gateway = next(
        d
        for d in docs
        if d["metadata"]["name"] == "t-medserve-gateway" and d["kind"] == "Deployment"
    )
    env = {
        e["name"]: e["value"] for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MEDSERVE_WORKER_URLS"] == "dns+http://t-medserve-worker-imaging:8100"


def test_chart_renders_a_gpu_training_runner_on_its_own_queue(helm: Path) -> None:
    result = _render(helm, "apiKeys=k1:tenant-a", "training.dataClaim=cxr")
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    pod = by_name[("Deployment", "t-medserve-training")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["jobs-worker", "--queue", "training"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["shm"]["mountPath"] == "/dev/shm" and mounts["data"]["readOnly"] is True
    jobs = by_name[("Deployment", "t-medserve-jobs")]["spec"]["template"]["spec"]
    assert jobs["containers"][0]["args"] == ["jobs-worker"]  # campaigns stay on the default queue
    gateway = by_name[("Deployment", "t-medserve-gateway")]["spec"]["template"]["spec"]
    assert "data" in {m["name"] for m in gateway["containers"][0]["volumeMounts"]}
    off = _render(helm, "apiKeys=k1:tenant-a", "training.enabled=false")
    assert "t-medserve-training" not in off.stdout


def test_chart_refuses_open_gateway_without_keys(helm: Path) -> None:
    result = _render(helm)
    assert result.returncode != 0
    assert "apiKeys is required" in result.stderr


def test_compose_and_dockerfiles_reference_real_paths() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "worker", "jobs", "gateway"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    for name in ("worker", "jobs", "gateway"):
        dockerfile = ROOT / "docker" / Path(services[name]["build"]["dockerfile"]).name
        assert dockerfile.exists()
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} is missing"


def test_the_gateway_installs_without_torch_and_workers_with_it() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    heavy = ("torch", "torchvision", "diffusers", "transformers", "monai", "pillow")
    base = [
        dep.split("[")[0].split("=")[0].split(">")[0].lower() for dep in project["dependencies"]
    ]
    assert not set(base) & set(heavy), "the base (gateway) install must not pull model libraries"
    worker = " ".join(project["optional-dependencies"]["worker"])
    assert "torch==" in worker and "torchvision==" in worker  # pinned together
    gateway = (ROOT / "docker" / "Dockerfile.gateway").read_text()
    assert "pip install ." in gateway and "torch==" not in gateway and "[worker]" not in gateway
    assert "[worker]" in (ROOT / "docker" / "Dockerfile.worker").read_text()
