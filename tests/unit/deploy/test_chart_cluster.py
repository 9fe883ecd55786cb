"""The chart a cluster admin accepts, checked on what `helm template` renders (default values
and values-gpu.yaml; both already passed `helm lint --strict`, values.schema.json and
`kubernetes-validate --strict` in scripts/helm_check.sh): network policies, disruption
budgets, non-root read-only containers, worker pods found one by one through headless
Services, the job-runner heartbeat probe, and KEDA autoscalers.

KEDA's ScaledObject has no schema in kubernetes-validate, and KEDA's CRD is not vendored here:
`SCALED_OBJECT` is a JSON Schema written from the CRD's documented structure
(scaleTargetRef.name and triggers[].type / metadata required, metadata a string map, the
replica counts integers), and the triggers' metadata keys from KEDA's scaler docs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from core.constants import JOBS_QUEUE, TRAINING_QUEUE
from core.endpoints import expand
from tests.unit.deploy.conftest import ROOT, load
from workers.runtime.metrics import WorkerCollector

RELEASE = "ci-medserve"
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        k: {"type": "string"}
                        for k in ("name", "kind", "apiVersion", "envSourceContainerName")
                    },
                },
                **{
                    k: {"type": "integer", "minimum": 0}
                    for k in (
                        "minReplicaCount",
                        "maxReplicaCount",
                        "pollingInterval",
                        "cooldownPeriod",
                        "idleReplicaCount",
                        "initialCooldownPeriod",
                    )
                },
                "advanced": {"type": "object"},
                "fallback": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {"type": "object", "required": ["name"]},
                        },
                    },
                },
            },
        },
    },
}
TRIGGER_METADATA = {  # required keys, then every key the chart may set
    "redis": ({"address", "listName", "listLength"}, {"address", "listName", "listLength",
                                                       "databaseIndex"}),
    "prometheus": ({"serverAddress", "query", "threshold"}, {"serverAddress", "query",
                                                             "threshold"}),
}  # fmt: skip


@pytest.fixture(scope="module", params=["default", "gpu"])
def docs(request: pytest.FixtureRequest, rendered: Path) -> list[dict]:
    return load(rendered, request.param)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def component(doc: dict) -> str:
    return doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]


def test_every_role_has_a_disruption_budget_except_the_single_redis(docs) -> None:
    budgets = {component(p): p for p in by_kind(docs, "PodDisruptionBudget").values()}
    roles = {component(w) for w in workloads(docs)} - {"redis"}
    assert set(budgets) == roles
    assert all(p["spec"]["maxUnavailable"] == 1 for p in budgets.values())


def test_only_the_gateway_is_reachable_and_each_backend_only_from_its_callers(docs) -> None:
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies[f"{RELEASE}-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    assert deny["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "medserve", "app.kubernetes.io/instance": "ci"}  # fmt: skip
    [gateway] = policies[f"{RELEASE}-gateway"]["spec"]["ingress"]
    assert "from" not in gateway and gateway["ports"] == [{"port": 8000, "protocol": "TCP"}]

    def callers(name: str) -> set[str]:
        [rule] = policies[name]["spec"]["ingress"]
        return {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                for p in rule["from"] if "podSelector" in p}  # fmt: skip

    guarded = {component(w) for w in workloads(docs)} - {"gateway", "jobs", "training"}
    for role in guarded:  # every backend has its own policy
        name = f"{RELEASE}-{role}"
        assert name in policies, f"no NetworkPolicy admits callers of {role}"
        expected = {"gateway", "jobs"} if role == "vllm" else {"gateway", "jobs", "training"}
        assert callers(name) == expected, role
    assert not {f"{RELEASE}-jobs", f"{RELEASE}-training"} & set(policies)  # no ingress at all


def test_containers_run_non_root_on_a_read_only_root_with_no_capabilities(docs) -> None:
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False
        scratch = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            if component(workload) != "redis":  # redis writes only its data volume
                assert mounts["/tmp"] in scratch and mounts["/var/lib/medserve"] in scratch


def test_worker_pods_are_found_one_by_one_through_headless_services(docs) -> None:
    services = by_kind(docs, "Service")
    deployments = by_kind(docs, "Deployment")
    gateway = deployments[f"{RELEASE}-gateway"]["spec"]["template"]["spec"]["containers"][0]
    urls = {e["name"]: e.get("value") for e in gateway["env"]}["MEDSERVE_WORKER_URLS"].split(",")
    groups = [n for n in deployments if n.startswith(f"{RELEASE}-worker-")]
    assert len(urls) == len(groups) >= 1
    for url in urls:
        host = url.split("//")[1].split(":")[0]
        assert url.startswith("dns+http://") and host in groups
        service = services[host]["spec"]
        assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is False
        port = service["ports"][0]["port"]
        addresses = {host: ["10.1.0.7", "10.1.0.8"]}
        assert expand(url, addresses.__getitem__) == [
            f"http://10.1.0.7:{port}", f"http://10.1.0.8:{port}"]  # fmt: skip
    for role in ("jobs", "training"):
        if f"{RELEASE}-{role}" in deployments:
            env = deployments[f"{RELEASE}-{role}"]["spec"]["template"]["spec"]["containers"][0]
            assert {e["name"]: e.get("value") for e in env["env"]}["MEDSERVE_WORKER_URLS"] == (
                ",".join(urls)
            )


def test_job_runners_are_live_while_their_heartbeat_is_fresh(docs) -> None:
    from cli.jobs import app

    assert "check" in {c.name for c in app.registered_commands}
    runners = [w for w in workloads(docs) if component(w) in ("jobs", "training")]
    assert runners
    for runner in runners:
        probe = runner["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
        assert probe["exec"]["command"] == ["medserve", "jobs", "check"]
        assert probe["periodSeconds"] * probe["failureThreshold"] >= 60


def test_gpu_values_scale_workers_on_queue_depth_and_runners_on_the_celery_queues(
    rendered: Path,
) -> None:
    docs = load(rendered, "gpu")
    scaled = by_kind(docs, "ScaledObject")
    deployments = by_kind(docs, "Deployment")
    assert set(scaled) == {f"{RELEASE}-worker-imaging", f"{RELEASE}-worker-volumes",
                           f"{RELEASE}-jobs", f"{RELEASE}-training"}  # fmt: skip
    depth = {f.name for f in WorkerCollector(lambda: []).collect()}
    for name, obj in scaled.items():
        jsonschema.validate(obj, SCALED_OBJECT)
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] == name and name in deployments
        assert "replicas" not in deployments[name]["spec"]  # KEDA owns the count
        assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
        [trigger] = spec["triggers"]
        required, allowed = TRIGGER_METADATA[trigger["type"]]
        assert required <= set(trigger["metadata"]) <= allowed
        if trigger["type"] == "redis":
            queue = JOBS_QUEUE if name.endswith("-jobs") else TRAINING_QUEUE
            assert trigger["metadata"]["listName"] == queue
            assert trigger["metadata"]["address"] == f"{RELEASE}-redis:6379"
        else:
            assert "medserve_worker_queue_depth" in depth  # the metric the workers export
            assert trigger["metadata"]["query"].startswith("sum(medserve_worker_queue_depth{")
            assert spec["minReplicaCount"] >= 1  # no pod, no queue depth to read
    assert f"{RELEASE}-vllm" in deployments and f"{RELEASE}-vllm" in by_kind(docs, "Service")
    gateway = deployments[f"{RELEASE}-gateway"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert env["MEDSERVE_VLLM_BASE_URL"] == f"http://{RELEASE}-vllm:8000/v1"
    assert "ScaledObject" not in {d["kind"] for d in load(rendered, "default")}  # opt-in


def test_the_values_schema_refuses_a_typo_and_a_root_container(helm: Path) -> None:
    for setting, message in [
        ("gateway.prot=1", "additional properties 'prot' not allowed"),
        ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
        ("networkPolicy.enabled=yes", "networkPolicy/enabled"),
    ]:
        done = subprocess.run(
            [str(helm), "template", "t", "helm/medserve", "--set", "apiKeys=k",
             "--set", setting], cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode != 0 and message in done.stderr, (setting, done.stderr)
    schema = yaml.safe_load((ROOT / "helm/medserve/values.schema.json").read_text())
    jsonschema.validate(yaml.safe_load((ROOT / "helm/medserve/values.yaml").read_text()), schema)
