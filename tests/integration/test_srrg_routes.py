"""SRRG routes through a real gateway and worker (processes, tiny random models): generate (JSON
and multipart, every valid X-ray kind, every refusal), labels for all four label sets, and score
equal to the library's F1-SRR-BERT on the same weights."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.srrg_support import MODELS, dicom, gradient, jpeg, nifti_volume, png, xray
from workers.srrg.label_maps import label_names
from workers.srrg.sentences import split_sentences
from workers.srrg.structure import parse

FAST = {"num_beams": 1, "max_length": 12}  # cheap decoding where the settings do not matter


@pytest.fixture(scope="module")
def stack(embedded_stack):  # type: ignore[no-untyped-def]
    return embedded_stack(MODELS)


@pytest.fixture(scope="module")
def client(stack) -> httpx.Client:  # type: ignore[no-untyped-def]
    return stack.client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def generate(client: httpx.Client, data: bytes, **fields: Any) -> httpx.Response:
    return client.post("/v1/srrg/generate", json={"image_base64": b64(data), **fields})


def test_generate_json_writes_both_sections_with_released_defaults(client: httpx.Client) -> None:
    r = generate(client, png(xray(1)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["machine_generated"] is True
    assert body["model"] == "srrg-findings,srrg-impression" and body["weights"] == "random-tiny"
    for section in ("findings", "impression"):
        part = body[section]
        assert part["section"] == section and part["model"] == f"srrg-{section}"
        assert part["weights_digest"].startswith("sha256:")
        assert part["parameters"] == {"num_beams": 2, "max_length": 128}
        parsed = parse(part["raw_text"], section)  # the worker's parse, reproduced here
        assert part["text"] == parsed.text()
        assert part["structure_valid"] == parsed.valid and part["problems"] == parsed.problems
        assert part["line_breaks_restored"] == parsed.inline
        assert (part["sections"] if section == "findings" else part["items"]) == (
            parsed.sections if section == "findings" else parsed.items
        )
    assert body["text"] == (
        f"Findings:\n{body['findings']['text']}\n\nImpression:\n{body['impression']['text']}"
    )
    assert body["structure_valid"] == (
        body["findings"]["structure_valid"] and body["impression"]["structure_valid"]
    )


def test_generate_multipart_equals_json(client: httpx.Client) -> None:
    data = png(xray(2))
    form = {"sections": "findings", "num_beams": "1", "max_length": "12"}
    r = client.post("/v1/srrg/generate", files={"file": ("cxr.png", data, "image/png")}, data=form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["impression"] is None and body["model"] == "srrg-findings"
    assert body["weights_digest"] == body["findings"]["weights_digest"]
    same = generate(client, data, sections=["findings"], **FAST).json()
    assert body["findings"]["raw_text"] == same["findings"]["raw_text"]


def test_valid_xray_kinds_are_converted_as_the_released_processor_expects(
    client: httpx.Client,
) -> None:
    grey = (gradient().astype(np.uint16) * 255 // 174).astype(np.uint8)  # spans 0..255
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full_like(grey, 200)[..., None]], axis=2)

    def report(data: bytes) -> str:
        r = generate(client, data, sections=["impression"], **FAST)
        assert r.status_code == 200, r.text
        return str(r.json()["impression"]["raw_text"])

    reference = report(png(grey))
    assert report(png(255 - grey)) != reference  # the model sees the image
    assert report(png(rgb)) == reference  # grey is replicated to RGB
    assert report(png(rgba)) == reference  # alpha is dropped
    assert report(png(grey.astype(np.uint16) * 257)) == reference  # 16-bit: min..max to 8 bits
    stored = grey.astype(np.uint16) * 4 + 100  # 16-bit DICOM, modality LUT 2x - 5
    assert report(dicom(stored, slope=2.0, intercept=-5.0)) == reference
    assert report(dicom(255 - grey, photometric="MONOCHROME1", bits=8)) == reference
    assert report(jpeg(grey))  # lossy, so only: it is read


@pytest.mark.parametrize(
    ("data", "status", "fragment"),
    [
        (b"these bytes are not an image, just text" * 4, 422, "not an image"),
        (nifti_volume(), 422, "not a volume"),
        (png(np.zeros((1, 1), np.uint8)), 422, "at least 64 pixels"),
        (dicom(np.zeros((3, 80, 80), np.uint16), frames=3), 422, "3 frames"),
        (dicom(gradient().astype(np.uint16), modality="CT"), 422, "is CT but"),
        (png(np.full((80, 80), 9, np.uint16)), 422, "constant"),
    ],
    ids=["no-image", "3d-volume", "1x1", "multi-frame-dicom", "ct-dicom", "constant"],
)
def test_bad_images_are_refused_with_how_to_fix(
    client: httpx.Client, data: bytes, status: int, fragment: str
) -> None:
    r = generate(client, data, sections=["findings"], **FAST)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"image_base64": "@@not base64@@"}, "not valid base64"),
        ({"image_base64": None}, "send one chest X-ray"),
        ({"findings_model": "srrg-impression", "sections": ["findings"]}, "impression_model"),
        ({"impression_model": "srr-bert-leaves", "sections": ["impression"]}, "labeller"),
        ({"findings_model": "echo", "sections": ["findings"]}, "not srrg"),
        ({"num_beam": 2}, "did you mean 'num_beams'"),
        ({"sections": ["summary"]}, "sections"),
        ({"max_length": 100_000}, "max_length"),
    ],
)
def test_bad_generate_fields_are_refused(
    client: httpx.Client, fields: dict[str, Any], fragment: str
) -> None:
    body = {"image_base64": b64(png(xray(3))), **FAST, **fields}
    r = client.post("/v1/srrg/generate", json=body)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["error"]["message"]


def test_max_length_beyond_the_models_positions_is_a_422(client: httpx.Client) -> None:
    """The tiny decoder has 160 positions: a longer report is refused before it reaches a batch."""
    body = {"image_base64": b64(png(xray(3))), "sections": ["impression"], "num_beams": 1,
            "max_length": 400}  # fmt: skip
    r = client.post("/v1/srrg/generate", json=body)
    assert r.status_code == 422, r.text
    assert "decoder positions; ask for at most 160" in r.json()["error"]["message"]


REPORTS = [
    "1. Small left pleural effusion.\n2. No pneumothorax.\n3. Stable cardiomegaly.",
    "Lungs and Airways:\n- No focal consolidation, e.g. no pneumonia.\n\nPleura:\n- Normal.",
    "Nodule measures 3.5 cm vs. 2.1 cm previously. Discussed with Dr. Smith.",
]


@pytest.mark.parametrize(
    "label_set", ["leaves", "leaves_with_statuses", "upper", "upper_with_statuses"]
)
def test_labels_for_every_label_set(client: httpx.Client, label_set: str) -> None:
    r = client.post("/v1/srrg/labels", json={"reports": REPORTS, "label_set": label_set})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label_set"] == label_set and body["machine_generated"] is True
    assert body["model"] == "srr-bert-" + label_set.replace("_", "-")
    names = set(label_names(label_set))
    assert len(body["results"]) == len(REPORTS)
    for report, result in zip(REPORTS, body["results"], strict=True):
        assert [s["text"] for s in result["sentences"]] == split_sentences(report)
        union = {label for s in result["sentences"] for label in s["labels"]}
        assert set(result["labels"]) == union and union <= names
    assert any(result["labels"] for result in body["results"])  # a label set that labels


def test_labels_equal_the_labeller_run_in_process(client: httpx.Client, model_dir: Path) -> None:
    from workers.srrg.labels import load_labeller

    key = "leaves_with_statuses"
    r = client.post("/v1/srrg/labels", json={"reports": REPORTS, "probabilities": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label_names"] == list(label_names(key))
    labeller = load_labeller(model_dir / "srr-bert-leaves-with-statuses", key)
    mine = labeller.label_reports(REPORTS)
    for ours, result in zip(mine, body["results"], strict=True):
        assert result["labels"] == ours.labels
        assert [s["labels"] for s in result["sentences"]] == ours.sentence_labels
    sentences = [s for report in REPORTS for s in split_sentences(report)]
    served = np.array([s["probabilities"] for res in body["results"] for s in res["sentences"]])
    np.testing.assert_allclose(served, labeller.probabilities(sentences), atol=1e-5)


def test_labels_batch_sentences_on_the_worker(stack) -> None:  # type: ignore[no-untyped-def]
    model = "srr-bert-upper"
    url = f"{stack.routes[model][0]}/v2/models/{model}/stats"
    before = httpx.get(url).json()["model_stats"][0]
    reports = [" ".join(f"Finding {i} is stable." for i in range(10))] * 8  # 80 sentences
    r = stack.client.post("/v1/srrg/labels", json={"reports": reports, "label_set": "upper"})
    assert r.status_code == 200, r.text
    after = httpx.get(url).json()["model_stats"][0]
    sentences = after["inference_count"] - before["inference_count"]
    batches = after["execution_count"] - before["execution_count"]
    assert sentences == 80 and batches <= 4  # 32 per batch, not one forward per sentence
    assert max(b["batch_size"] for b in after["batch_stats"]) == 32


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"reports": ["Stable.", "  "]}, 422, "reports[1] is empty"),
        ({"reports": ["No effusion."] * 100_000}, 413, "benchmark-reports"),
        ({"reports": ["x" * 20_001]}, 422, "at most 20000 characters"),
        ({"reports": []}, 422, "reports"),
        ({"reports": ["Stable."], "model": "srrg-findings"}, 422, "writes reports"),
        ({"reports": ["Stable."], "model": "srr-bert-upper", "label_set": "leaves"}, 422,
         "labels with upper"),
        ({"reports": ["Stable."], "label_set": "leafs"}, 422, "label_set"),
    ],
)  # fmt: skip
def test_bad_label_requests_are_refused(
    client: httpx.Client, body: dict[str, Any], status: int, fragment: str
) -> None:
    r = client.post("/v1/srrg/labels", json=body)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]["message"]


REFS = [
    "1. Small left pleural effusion.\n2. No pneumothorax.\n3. Stable cardiomegaly.",
    "Lungs and Airways:\n- No focal consolidation.\n\nPleura:\n- No pleural effusion.",
    "1. Moderate pulmonary edema. 2. Right lower lobe consolidation, e.g. pneumonia.",
    "No acute cardiopulmonary process.",
    "1. Lungs are clear.",
]
HYPS = [
    "1. Small left pleural effusion.\n2. Stable cardiomegaly.",
    "Lungs and Airways:\n- Mild atelectasis.\n\nPleura:\n- Small pleural effusion.",
    "1. Mild pulmonary edema.",
    "No acute cardiopulmonary process.",
    "",
]


def test_score_equals_the_library_function_on_the_same_weights(
    client: httpx.Client, model_dir: Path
) -> None:
    from workers.srrg.f1 import f1_srr_bert
    from workers.srrg.labels import load_labeller

    r = client.post(
        "/v1/srrg/score", json={"references": REFS, "hypotheses": HYPS, "per_label": True}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    key = "leaves_with_statuses"
    labeller = load_labeller(model_dir / "srr-bert-leaves-with-statuses", key)
    ours = f1_srr_bert(REFS, HYPS, labeller, label_names(key))
    assert body["metric"] == "f1_srr_bert" and body["label_set"] == key
    assert body["model"] == "srr-bert-leaves-with-statuses" and body["weights"] == "random-tiny"
    assert body["f1"] == pytest.approx(ours.f1, abs=1e-12)
    assert body["precision"] == pytest.approx(ours.precision, abs=1e-12)
    assert body["recall"] == pytest.approx(ours.recall, abs=1e-12)
    assert 0.0 < body["f1"] < 1.0  # a corpus that tests something
    assert [s["f1"] for s in body["per_sample"]] == pytest.approx(ours.sample_f1, abs=1e-12)
    assert [s["recall"] for s in body["per_sample"]] == pytest.approx(ours.sample_recall)
    assert body["per_label"] == {
        name: pytest.approx(row, abs=1e-12) for name, row in ours.per_label.items()
    }


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"references": ["Stable."] * 100_000, "hypotheses": ["Stable."] * 100_000}, 413,
         "benchmark-reports"),
        ({"references": ["Stable.", "Clear."], "hypotheses": ["Stable."]}, 422,
         "2 references and 1 hypotheses"),
        ({"references": [""], "hypotheses": ["Stable."]}, 422, "references[0] is empty"),
        ({"references": ["Stable."], "hypotheses": ["Stable."], "model": "srrg-impression"},
         422, "writes reports"),
    ],
)  # fmt: skip
def test_bad_score_requests_are_refused(
    client: httpx.Client, body: dict[str, Any], status: int, fragment: str
) -> None:
    r = client.post("/v1/srrg/score", json=body)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]["message"]


def test_oip_metadata_states_the_tensor_contracts(client: httpx.Client) -> None:
    report = client.get("/v2/models/srrg-findings").json()
    assert [i["name"] for i in report["inputs"]] == ["IMAGE"]
    assert [o["name"] for o in report["outputs"]] == [
        "text", "report", "structure", "structure_valid"
    ]  # fmt: skip
    labels = client.get("/v2/models/srr-bert-leaves").json()
    assert [i["name"] for i in labels["inputs"]] == ["text"]
    assert {o["name"] for o in labels["outputs"]} == {
        "sentence", "report_index", "labels", "probabilities", "report_labels"
    }  # fmt: skip
