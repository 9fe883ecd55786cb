"""Merlin routes through the real stack (gateway + worker processes, tiny models): analyze as
JSON and multipart (NIfTI and a zipped DICOM series), embed-text, report, volumes batched on
the worker, every bad input refused with a 4xx that says what to fix, and report generation
refused with a 503 where it is not hosted or its resources are not met."""

from __future__ import annotations

import base64
import gzip
import io
import json
import shutil
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from model_store.lock import LockFile
from tests.harness import WorkerProcess, wait_until
from tests.merlin_support import ct_phantom, dicom_series, nifti_bytes, zip_bytes
from workers.merlin.contract import example_ct_base64
from workers.merlin.prompts import FIVE_YEAR_DISEASES, ORGAN_SYSTEMS

MODELS = ["merlin", "merlin-five-year", "merlin-report"]
CT = base64.b64decode(example_ct_base64())


@pytest.fixture(scope="module")
def stack(embedded_stack):
    stack = embedded_stack(MODELS)
    stack.client.timeout = httpx.Timeout(300.0)
    return stack


@pytest.fixture(scope="module")
def client(stack) -> httpx.Client:
    return stack.client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_analyze_json_runs_every_task_on_both_models(client) -> None:
    mine = {"name": "my cyst", "positive": ["renal cyst"], "negative": ["no renal cyst"]}
    r = client.post(
        "/v1/merlin/analyze", json={"image_base64": b64(CT), "top_k": 5, "findings_prompts": [mine]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tasks"] == ["embedding", "phenotypes", "findings", "five_year"]
    assert body["machine_generated"] and body["model"] == "merlin" and not body["skipped"]
    assert body["weights"] == "random-tiny" and body["weights_digest"].startswith("sha256:")
    pre = body["preprocessing"]
    assert (pre["source"], pre["input_shape"], pre["spacing"], pre["orientation"]) == (
        "nifti", [40, 40, 24], [1.2, 1.2, 2.5], "LPS")  # fmt: skip
    assert pre["output_shape"] == [224, 224, 160] and pre["target_orientation"] == "RAS"
    contrastive = np.array(body["embedding"]["contrastive"]["values"])
    assert contrastive.shape == (512,) and abs(np.linalg.norm(contrastive) - 1) < 1e-5
    assert body["embedding"]["features"]["dim"] == 2048
    items = body["phenotypes"]["items"]
    assert len(items) == 5 and body["phenotypes"]["total"] == 1692
    probabilities = [p["probability"] for p in items]
    assert probabilities == sorted(probabilities, reverse=True) and all(p["code"] for p in items)
    findings = body["findings"]["items"]
    assert len(findings) == 31 and findings[-1]["name"] == "my cyst"
    assert findings[-1]["source"] == "user" and "issue #7" in body["findings"]["procedure"]
    assert "31-finding" in body["findings"]["caveat"]
    five = body["five_year"]
    assert five["model"] == "merlin-five-year" and five["weights_digest"] != body["weights_digest"]
    assert [(d["code"], d["name"]) for d in five["items"]] == list(FIVE_YEAR_DISEASES)


def test_analyze_multipart_dicom_series_as_npy(client) -> None:
    volume = ct_phantom((40, 40, 24))
    upload = zip_bytes(dicom_series(volume))
    r = client.post(
        "/v1/merlin/analyze",
        files={"file": ("series.zip", upload, "application/zip")},
        data={"tasks": "embedding,phenotypes", "top_k": "all", "embedding_format": "npy"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tasks"] == ["embedding", "phenotypes"] and "five_year" not in body
    pre = body["preprocessing"]
    assert pre["source"] == "dicom" and pre["slices"] == 24 and pre["orientation"] == "LPS"
    vector = body["embedding"]["contrastive"]
    assert vector["media_type"] == "application/x-npy" and "values" not in vector
    embedding = np.load(io.BytesIO(base64.b64decode(vector["data_base64"])))
    assert embedding.shape == (512,) and abs(np.linalg.norm(embedding) - 1) < 1e-5
    features = np.load(io.BytesIO(base64.b64decode(body["embedding"]["features"]["data_base64"])))
    assert features.shape == (2048,)
    assert len(body["phenotypes"]["items"]) == 1692


def test_concurrent_volumes_batch_on_the_worker_with_the_same_answers(stack) -> None:
    def batched() -> int:
        stats = httpx.get(stack.routes["merlin"][0] + "/v2/models/merlin/stats").json()
        sizes = stats["model_stats"][0]["batch_stats"]
        return sum(s["compute_infer"]["count"] for s in sizes if s["batch_size"] >= 2)

    before = batched()
    answers: list[dict] = []

    def post() -> None:
        body = {"image_base64": b64(CT), "tasks": ["embedding"]}
        answers.append(stack.client.post("/v1/merlin/analyze", json=body).json())

    threads = [threading.Thread(target=post) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    vectors = [np.array(a["embedding"]["contrastive"]["values"]) for a in answers]
    assert len(vectors) == 3
    assert max(np.abs(v - vectors[0]).max() for v in vectors) < 1e-5  # batching changes nothing
    assert batched() > before, "no batch of two or more volumes ran"


def test_embed_text_json_and_npy(client) -> None:
    texts = ["Liver: normal. Gallbladder: cholelithiasis.", "No acute findings."]
    r = client.post("/v1/merlin/embed-text", json={"texts": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    rows = np.array(body["embeddings"])
    assert rows.shape == (2, 512) and body["dim"] == 512 and body["normalised"]
    assert np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
    assert [t["truncated"] for t in body["texts"]] == [False, False]
    assert body["preprocessing"]["tokenize"] == "wordpunct"
    r = client.post("/v1/merlin/embed-text", json={"text": texts[1], "format": "npy"})
    assert r.status_code == 200, r.text
    row = np.load(io.BytesIO(base64.b64decode(r.json()["data_base64"])))
    assert row.shape == (1, 512) and np.abs(row[0] - rows[1]).max() < 1e-5
    r = client.post("/v1/merlin/embed-text", json={"texts": [texts[0]] * 65})
    assert r.status_code == 422 and "texts" in r.json()["error"]["message"]


def test_report_json_and_multipart(client) -> None:
    r = client.post("/v1/merlin/report", json={"image_base64": b64(CT),
                    "organ_systems": ["liver", "kidneys"], "max_new_tokens": 4})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["machine_generated"] and "not for clinical use" in body["disclaimer"]
    assert body["model"] == "merlin-report" and body["weights_digest"].startswith("sha256:")
    sections = body["organ_systems"]
    assert [s["organ_system"] for s in sections] == ["liver", "kidneys"]
    assert body["report"] == " ".join(s["text"] for s in sections)
    assert body["generation"]["repetition_penalty"] == 1.2
    assert body["generation"]["max_new_tokens"] == 4 and not body["generation"]["do_sample"]
    r = client.post("/v1/merlin/report", files={"file": ("ct.nii.gz", CT)},
                    data={"organ_systems": "pelvic", "max_new_tokens": "3"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert [s["organ_system"] for s in r.json()["organ_systems"]] == ["pelvic"]
    assert "pelvic" in ORGAN_SYSTEMS


def _too_many_voxels() -> bytes:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((1024, 1024, 300))
    header.set_data_dtype(np.int16)
    header.set_zooms((0.7, 0.7, 1.0))
    header["vox_offset"] = 352
    return gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 64)


def _singular() -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(ct_phantom((40, 40, 24)), np.eye(4))
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    affine[:, 2] = affine[:, 0]
    image.set_sform(affine, code=1)
    image.set_qform(None, code=0)
    return image.to_bytes()


def _no_spacing() -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(ct_phantom((40, 40, 24)), np.eye(4))
    image.header["pixdim"][1:4] = [0.8, 0.0, 2.5]
    image.set_sform(None, code=0)
    image.set_qform(None, code=0)
    return image.to_bytes()


def _bad_inputs() -> list[tuple[str, bytes, int, str]]:
    volume = ct_phantom((40, 40, 24))
    n = volume.shape[2]
    two = dicom_series(volume[:, :, :12]) + dicom_series(
        volume[:, :, 12:], series_uid="1.2.826.0.1.3680043.8.498.2")  # fmt: skip
    return [
        ("2d", nifti_bytes(volume[:, :, 0], np.eye(4)), 422, "2D"),
        ("4d", nifti_bytes(np.stack([volume, volume], -1), np.eye(4)), 422, "4D"),
        ("singular", _singular(), 422, "singular"),
        ("no_spacing", _no_spacing(), 422, "write the real spacing"),
        ("two_series", zip_bytes(two), 422, "2 DICOM series; send one series"),
        ("missing", zip_bytes(dicom_series(volume, slices=[k for k in range(n) if k != 9])),
         422, "slices are missing"),
        ("duplicated", zip_bytes(dicom_series(volume, slices=[*range(n), 5])), 422,
         "duplicated slice"),
        ("mr", zip_bytes(dicom_series(volume, modality="MR")), 422, "CT only"),
        ("too_large", _too_many_voxels(), 413, "send a smaller volume"),
        ("png", b"\x89PNG\r\n\x1a\n" + b"\0" * 400, 422, "NIfTI (.nii / .nii.gz) or a .zip"),
    ]  # fmt: skip


BAD = _bad_inputs()


@pytest.mark.parametrize(("case", "data", "status", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_ct_is_refused_with_what_to_fix(client, case, data, status, says) -> None:
    for route in ("/v1/merlin/analyze", "/v1/merlin/report"):
        r = client.post(route, json={"image_base64": b64(data), "tasks": ["embedding"]}
                        if route.endswith("analyze") else {"image_base64": b64(data)})  # fmt: skip
        assert r.status_code == status, (route, r.text)
        assert says in r.json()["error"]["message"], r.text
    r = client.post("/v1/merlin/analyze", files={"file": ("ct", data)})
    assert r.status_code == status and says in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"image_base64": "not base64!"}, "not valid base64"),
        ({"image_base64": b64(CT), "top_k": 5000}, "top_k"),
        ({"image_base64": b64(CT), "tasks": ["segmentation"]}, "tasks"),
        ({"image_base64": b64(CT), "findings": ["unicorn"]}, "unknown built-in finding"),
        ({"image_base64": b64(CT), "topk": 3}, "top_k"),  # the closest valid field
        ({"image_base64": b64(CT), "model": "merlin-report"}, "needs the clip model: merlin"),
        ({"image_base64": b64(CT), "model": "medvae-4-1-2d"}, "not merlin"),
        ({}, "image_base64"),
    ],
)
def test_bad_requests_are_422_with_what_to_fix(client, body, says) -> None:
    r = client.post("/v1/merlin/analyze", json=body)
    assert r.status_code == 422, r.text
    assert says in r.json()["error"]["message"]


def test_report_not_hosted_is_503_saying_how_to_enable_it() -> None:
    from fastapi.testclient import TestClient

    from core.settings import Settings
    from service.app import create_app

    app = create_app(Settings(routes={}))
    with TestClient(app) as gateway:
        r = gateway.post("/v1/merlin/report", json={"image_base64": b64(CT)})
        assert r.status_code == 503, r.text
        message = r.json()["error"]["message"]
        assert "not hosted" in message and "MEDSERVE_MODELS" in message and "40 GB" in message
        r = gateway.post("/v1/merlin/analyze", json={"image_base64": b64(CT),
                                                      "tasks": ["five_year"]})  # fmt: skip
        assert r.status_code == 503 and "merlin-five-year" in r.json()["error"]["message"]


def test_report_on_a_worker_without_the_resources_is_503(tmp_path: Path, tiny_model) -> None:
    """Released weights (the marker says pulled) on a CPU-only worker: refused at load."""
    from fastapi.testclient import TestClient

    from core.settings import Settings
    from service.app import create_app

    source = tiny_model("merlin-report").path
    store = tmp_path / "models"
    shutil.copytree(source, store / "merlin-report")
    marker = store / "merlin-report" / "medserve.json"
    info = {**json.loads(marker.read_text()), "weights": "pulled"}
    marker.write_text(json.dumps(info))
    LockFile(store).record_or_check("merlin-report", "stanfordmimi/Merlin", "main", info["files"])
    worker = WorkerProcess(["merlin-report"], store, env={"MEDSERVE_DEVICE": "cpu"})
    try:

        def refused() -> bool:
            try:
                index = httpx.post(worker.url + "/v2/repository/index", timeout=2).json()
            except httpx.HTTPError:
                return False
            return index[0]["state"] == "UNAVAILABLE"

        wait_until(refused, 60, "the worker to refuse merlin-report")
        settings = Settings(routes={"merlin-report": worker.url}, health_interval_s=0.2)
        with TestClient(create_app(settings)) as gateway:
            r = gateway.post("/v1/merlin/report", json={"image_base64": b64(CT)})
            assert r.status_code == 503, r.text
            message = r.json()["error"]["message"]
            assert "cpu_ok: false" in message and "MEDSERVE_DEVICE=cuda" in message
    finally:
        worker.stop()


def test_swagger_documents_each_route_with_a_resolvable_example(client) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v1/merlin/analyze", "/v1/merlin/embed-text", "/v1/merlin/report"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        text = json.dumps(body)
        assert "#/$defs/" not in text, f"{path}: a reference Swagger cannot resolve"
        schema = body["schema"]
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        assert schema["examples"], path
        assert all(p.get("description") for p in schema["properties"].values()), path
