"""The SRRG adapters on tiny models, in process: the request path a worker runs
(preprocess -> predict on a batch -> postprocess) and what each refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import InvalidInput, PayloadTooLarge, WeightsUnavailable
from model_store.store import ResolvedModel
from tests.srrg_support import dicom, gradient, png, xray
from workers.runtime.families import load_manifests
from workers.runtime.oip import InferRequest, InferResponse
from workers.runtime.registry import adapter_for
from workers.srrg import contract
from workers.srrg.label_maps import label_names
from workers.srrg.sentences import split_sentences
from workers.srrg.structure import parse

FAST = {"num_beams": 1, "max_length": 10}


def images(*files: bytes) -> dict[str, np.ndarray]:
    return {"IMAGE": np.array(list(files), dtype=np.object_)}


def texts(*values: str) -> dict[str, np.ndarray]:
    return {"text": np.array([v.encode() for v in values], dtype=np.object_)}


def run(adapter: Any, inputs: dict[str, np.ndarray], **params: Any) -> InferResponse:
    request = InferRequest(inputs=inputs, parameters=params)
    items = adapter.preprocess(request)
    return adapter.postprocess(request, adapter.predict(items))


def test_report_adapter_returns_the_parsed_report_labelled_machine_generated(
    srrg_adapter: Any,
) -> None:
    adapter = srrg_adapter("srrg-findings")
    answer = run(adapter, images(png(xray(1)), png(xray(2))), max_length=24)
    out = answer.outputs
    assert out["structure_valid"].dtype == np.bool_ and out["text"].shape == (2,)
    for raw, report, structure, valid in zip(
        out["text"], out["report"], out["structure"], out["structure_valid"], strict=True
    ):
        parsed = parse(raw.decode(), "findings")
        assert report.decode() == parsed.text() and bool(valid) == parsed.valid
        assert json.loads(structure) == parsed.to_dict()
    p = answer.parameters
    assert p["machine_generated"] is True and p["section"] == "findings"
    assert (p["num_beams"], p["max_length"]) == (2, 24)  # manifest default beams
    assert p["weights"] == "random-tiny" and p["weights_digest"].startswith("sha256:")


def test_a_batch_gives_each_image_its_own_report(srrg_adapter: Any) -> None:
    adapter = srrg_adapter("srrg-impression")
    files = [png(xray(3)), png(255 - gradient())]
    alone = [run(adapter, images(f), **FAST).outputs["text"][0] for f in files]
    together = run(adapter, images(*files), **FAST).outputs["text"]
    assert list(together) == alone and alone[0] != alone[1]


def test_decoding_settings_key_the_batches(srrg_adapter: Any) -> None:
    adapter = srrg_adapter("srrg-findings")
    keys = {
        adapter.preprocess(InferRequest(inputs=images(png(xray(4))), parameters=p))[0].key
        for p in ({"num_beams": 1}, {"num_beams": 2}, {"max_length": 20})
    }
    assert keys == {("generate", 1, 128), ("generate", 2, 128), ("generate", 2, 20)}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", r"IMAGE\[0\] is empty"),
        (png(np.zeros((1, 1), np.uint8)), "at least 64 pixels"),
        (dicom(gradient().astype(np.uint16), modality="CT"), "the input is CT"),
    ],
)
def test_report_adapter_refuses_bad_images(srrg_adapter: Any, data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        srrg_adapter("srrg-findings").preprocess(InferRequest(inputs=images(data)))


def test_the_row_of_a_bad_image_is_named(srrg_adapter: Any) -> None:
    request = InferRequest(inputs=images(png(xray(1)), b"nonsense" * 20))
    with pytest.raises(InvalidInput, match="image 1: the file is not an image"):
        srrg_adapter("srrg-findings").preprocess(request)


def test_labels_adapter_splits_batches_and_merges(srrg_adapter: Any) -> None:
    adapter = srrg_adapter("srr-bert-leaves")
    reports = ["1. Small left pleural effusion. 2. No pneumothorax.", "Lungs are clear."]
    answer = run(adapter, texts(*reports))
    out = answer.outputs
    sentences = [s for r in reports for s in split_sentences(r)]
    assert [s.decode() for s in out["sentence"]] == sentences
    assert out["report_index"].tolist() == [0, 0, 1]
    assert out["labels"].shape == (3, 55) and out["labels"].dtype == np.uint8
    assert np.array_equal(out["labels"], (out["probabilities"] > 0.5).astype(np.uint8))
    merged = np.stack([out["labels"][:2].max(0), out["labels"][2]])
    assert np.array_equal(out["report_labels"], merged)
    mine = adapter.labeller.label_reports(reports)
    names = label_names("leaves")
    assert [[names[k] for k in np.flatnonzero(r)] for r in out["report_labels"]] == [
        m.labels for m in mine
    ]
    assert answer.parameters["label_set"] == "leaves" and answer.parameters["label_count"] == 55


def test_split_false_labels_each_text_as_one_sentence(srrg_adapter: Any) -> None:
    adapter = srrg_adapter("srr-bert-upper")
    out = run(adapter, texts("1. Effusion. 2. Edema.", "Clear"), split=False).outputs
    assert [s.decode() for s in out["sentence"]] == ["1. Effusion. 2. Edema.", "Clear"]
    assert out["report_index"].tolist() == [0, 1]


def test_labels_adapter_refusals(srrg_adapter: Any) -> None:
    adapter = srrg_adapter("srr-bert-upper")
    with pytest.raises(InvalidInput, match=r"text\[1\] is empty.*send '\.'"):
        adapter.preprocess(InferRequest(inputs=texts("Stable.", "   ")))
    bad = {"text": np.array([b"\xff\xfe"], dtype=np.object_)}
    with pytest.raises(InvalidInput, match="not UTF-8"):
        adapter.preprocess(InferRequest(inputs=bad))
    many = [" ".join(["Stable."] * 1000)] * (contract.MAX_SENTENCES // 1000 + 1)
    with pytest.raises(PayloadTooLarge, match="benchmark-reports"):
        adapter.preprocess(InferRequest(inputs=texts(*many)))
    with pytest.raises(InvalidInput, match="IMAGE"):
        adapter.preprocess(InferRequest(inputs=images(png(xray(1)))))


def test_remote_adapter_refuses_to_load_without_pins(tmp_path: Path) -> None:
    manifest = load_manifests()["chexagent-2-3b-srrg-findings"]
    adapter = adapter_for(manifest)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "modeling_chexagent.py").write_text("x = 1\n")
    resolved = ResolvedModel(manifest, tmp_path, "pulled", "sha256:0", {})
    with pytest.raises(WeightsUnavailable, match="must pin the sha256"):
        adapter.load(resolved, "cpu")
