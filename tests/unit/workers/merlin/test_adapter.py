"""The Merlin adapters on tiny models, in process: preprocess -> predict -> postprocess gives
the model's own numbers, labelled (phecodes, diseases, findings, organ systems)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from core.errors import InvalidInput
from model_store.manifest import Manifest
from workers.merlin import compute
from workers.merlin.adapter import (
    MerlinAdapter,
    MerlinFiveYearAdapter,
    MerlinReportAdapter,
    build_adapter,
)
from workers.merlin.contract import example_ct_base64
from workers.merlin.preprocess import prepare
from workers.merlin.prompts import FIVE_YEAR_DISEASES, builtin_findings, phenotypes
from workers.runtime.families import load_manifests
from workers.runtime.oip import InferRequest

CT = base64.b64decode(example_ct_base64())


def loaded(tiny_model, name: str):
    adapter = build_adapter(load_manifests()[name])
    adapter.load(tiny_model(name), "cpu")
    return adapter


def request(parameters: dict | None = None, **inputs: list[bytes]) -> InferRequest:
    tensors = {k: np.array(v, dtype=np.object_) for k, v in (inputs or {"IMAGE": [CT]}).items()}
    return InferRequest(inputs=tensors, parameters=parameters or {})


def result(response) -> dict:
    return json.loads(bytes(response.outputs["RESULT"][0]))


@pytest.fixture(scope="module")
def clip(tiny_model) -> MerlinAdapter:
    return loaded(tiny_model, "merlin")


def test_build_adapter_picks_the_kind() -> None:
    manifests = load_manifests()
    assert type(build_adapter(manifests["merlin-five-year"])) is MerlinFiveYearAdapter
    assert type(build_adapter(manifests["merlin-report"])) is MerlinReportAdapter
    bad = Manifest(name="x", family="merlin", version="1", adapter={"kind": "segment"})
    with pytest.raises(InvalidInput, match="kind"):
        build_adapter(bad)


@pytest.mark.slow  # two forward passes over 224x224x160 (10 to 20 s on 2 shared cores)
def test_analyze_is_the_model_labelled(clip: MerlinAdapter) -> None:
    first = builtin_findings()[0]
    mine = {"name": "copy", "positive": list(first.positive), "negative": list(first.negative)}
    req = request({"top_k": 5, "findings_prompts": json.dumps([mine])})
    items = clip.preprocess(req)
    assert len(items) == 1 and tuple(items[0].data.shape) == (1, 224, 224, 160)
    outputs = clip.predict(items)
    answer = clip.postprocess(req, outputs)

    direct = compute.encode_images(clip.model, [prepare(CT, 10**9).tensor])
    assert np.abs(answer.outputs["EMBEDDING"][0] - direct.embedding[0]).max() < 1e-5
    assert np.abs(answer.outputs["FEATURES"][0] - direct.features[0]).max() < 1e-5
    probs = compute.sigmoid(direct.phenotype_logits[0])
    assert np.abs(answer.outputs["PHENOTYPES"][0] - probs).max() < 1e-5

    doc = result(answer)
    assert doc["machine_generated"] and doc["weights"] == "random-tiny"
    assert doc["preprocessing"]["input_shape"] == [40, 40, 24]
    assert doc["preprocessing"]["orientation"] == "LPS"
    assert doc["preprocessing"]["spacing"] == [1.2, 1.2, 2.5]
    top = doc["phenotypes"]
    order = np.argsort(-probs, kind="stable")[:5]
    assert [p["code"] for p in top] == [phenotypes()[i].code for i in order]
    assert [p["name"] for p in top] == [phenotypes()[i].name for i in order]
    findings = {f["name"]: f for f in doc["findings"]}
    assert len(findings) == 31 and findings["copy"]["source"] == "user"
    same = findings[first.name]
    assert same["source"] == "builtin"
    assert abs(same["margin"] - findings["copy"]["margin"]) < 1e-6  # both prompt paths agree
    assert all(f["present"] == (f["margin"] > 0) for f in doc["findings"])
    assert answer.parameters["machine_generated"] and answer.parameters["task"] == "analyze"

    # The same predictions written as .npy files (format changes only the packaging).
    npy = request({"tasks": '["embedding"]', "embedding_format": "npy"})
    clip.preprocess(npy)
    files = clip.postprocess(npy, outputs)
    assert set(files.outputs) == {"FILE", "RESULT"} and "phenotypes" not in result(files)
    emb, feats = (np.load(io.BytesIO(f)) for f in files.outputs["FILE"])
    assert emb.shape == (512,) and feats.shape == (2048,)
    assert np.array_equal(emb, answer.outputs["EMBEDDING"][0])


def test_text_embeddings(clip: MerlinAdapter) -> None:
    texts = [b"Liver: normal.", b"Small hiatal hernia!", ("word " * 1500).encode()]
    req = request(TEXT=texts)
    answer = clip.postprocess(req, clip.predict(clip.preprocess(req)))
    rows = answer.outputs["TEXT_EMBEDDING"]
    direct = compute.embed_texts(clip.model, [t.decode() for t in texts])
    assert rows.shape == (3, 512) and np.abs(rows - direct).max() < 1e-5
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    info = result(answer)["texts"]
    assert [t["truncated"] for t in info] == [False, False, True] and info[2]["tokens"] == 1024


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ({"IMAGE": [CT], "TEXT": [b"x"]}, "send IMAGE"),
        ({"IMAGE": [b""]}, "one BYTES element"),
        ({"TEXT": [b"\xff\xfe"]}, "UTF-8"),
        ({"TEXT": [b"a"] * 65}, "at most 64"),
        ({"TEXT": [b"  "]}, "empty"),
        ({"IMAGE": [b"\x89PNG\r\n\x1a\n" + b"\0" * 400]}, "NIfTI"),
    ],
)
def test_refusals(clip: MerlinAdapter, inputs: dict, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        clip.preprocess(request(**inputs))


@pytest.mark.slow  # two forward passes
def test_five_year_labels_the_six_diseases(tiny_model) -> None:
    adapter = loaded(tiny_model, "merlin-five-year")
    req = request()
    answer = adapter.postprocess(req, adapter.predict(adapter.preprocess(req)))
    row = answer.outputs["FIVE_YEAR"][0]
    direct = compute.five_year(adapter.model, [prepare(CT, 10**9).tensor])[0]
    assert np.abs(row - direct).max() < 1e-6
    items = result(answer)["five_year"]
    assert [(i["code"], i["name"]) for i in items] == list(FIVE_YEAR_DISEASES)
    assert [i["probability"] for i in items] == pytest.approx(row.tolist())


def test_report_is_machine_generated_per_organ_system(tiny_model) -> None:
    adapter = loaded(tiny_model, "merlin-report")
    req = request({"organ_systems": '["kidneys", "liver"]', "max_new_tokens": 4})
    items = adapter.preprocess(req)
    assert items[0].key == ("report", ("kidneys", "liver"), 4, 1.2)
    answer = adapter.postprocess(req, adapter.predict(items))
    doc = result(answer)
    assert doc["machine_generated"] and answer.parameters["machine_generated"]
    assert [s["organ_system"] for s in doc["organ_systems"]] == ["kidneys", "liver"]
    assert doc["organ_systems"][0]["prompt"] == "Generate a radiology report for kidneys###\n"
    assert doc["report"] == " ".join(s["text"] for s in doc["organ_systems"])
    assert all(s["text"] and "###" not in s["text"] for s in doc["organ_systems"])
    assert doc["generation"]["max_new_tokens"] == 4 and doc["generation"]["stop_sequence"]
    assert doc["weights_digest"].startswith("sha256:")
