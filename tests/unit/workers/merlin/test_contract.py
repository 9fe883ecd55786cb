"""Merlin's contract: parameters, manifest blocks, the three manifests, file sniffing, and the
request schemas' examples and descriptions (what the gateway shows in Swagger)."""

from __future__ import annotations

import base64
import gzip
import subprocess
import sys

import pytest
from pydantic import BaseModel

from core.errors import InvalidInput
from model_store.manifest import Manifest
from tests.harness import ROOT
from workers.merlin import contract
from workers.merlin.contract import ClipParams, Options, ReportParams, UserFinding, ct_file_kind
from workers.merlin.prompts import ORGAN_SYSTEMS, builtin_findings
from workers.runtime.families import load_manifests, validate

MODELS = ("merlin", "merlin-five-year", "merlin-report")


def test_clip_defaults_and_oip_text_lists() -> None:
    params = ClipParams.from_oip({})
    assert params.tasks == ["embedding", "phenotypes", "findings"]
    assert params.top_k == 20 and params.findings is None and params.embedding_format == "json"
    parsed = ClipParams.from_oip(
        {"tasks": '["phenotypes", "phenotypes"]', "top_k": "all", "findings": '["ascites"]'}
    )
    assert parsed.tasks == ["phenotypes"] and parsed.top_count() == 1692
    assert parsed.findings == ["ascites"]
    assert ClipParams.from_oip({"top_k": "7"}).top_count() == 7
    assert ClipParams.from_oip(ClipParams(top_k=3).to_oip()) == ClipParams(top_k=3)


@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        ({"topk": 3}, "top_k"),  # the closest valid name
        ({"top_k": 0}, "1 to 1692"),
        ({"top_k": "most"}, "top_k"),
        ({"tasks": '["five_year"]'}, "tasks"),  # another model's task
        ({"tasks": "[]"}, "tasks"),
        ({"findings": '["no_such_finding"]'}, "known: submucosal_edema"),
        ({"embedding_format": "csv"}, "embedding_format"),
    ],
)
def test_clip_refusals_say_what_to_fix(parameters: dict, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        ClipParams.from_oip(parameters)


def test_user_findings_are_checked() -> None:
    ok = {"name": "my cyst", "positive": ["renal cyst"], "negative": ["no renal cyst"]}
    assert ClipParams.from_oip({"findings_prompts": [ok]}).findings_prompts[0].name == "my cyst"
    for bad in ({**ok, "positive": []}, {**ok, "negative": [" "]}, {**ok, "extra": 1},
                {**ok, "positive": ["x" * 501]}):  # fmt: skip
        with pytest.raises(InvalidInput):
            ClipParams.from_oip({"findings_prompts": [bad]})
    with pytest.raises(InvalidInput, match="used twice or by a built-in"):
        ClipParams.from_oip({"findings_prompts": [ok, ok]})
    with pytest.raises(InvalidInput, match="used twice or by a built-in"):
        ClipParams.from_oip({"findings_prompts": [{**ok, "name": "ascites"}]})


def test_report_params() -> None:
    assert ReportParams.from_oip({}).organs() == ORGAN_SYSTEMS
    params = ReportParams.from_oip({"organ_systems": '["kidneys", "liver", "kidneys"]'})
    assert params.organs() == ("kidneys", "liver")
    assert (params.max_new_tokens, params.repetition_penalty) == (128, 1.2)
    for bad in ({"organ_systems": '["brain"]'}, {"organ_systems": "[]"},
                {"max_new_tokens": 0}, {"repetition_penalty": 0.5}, {"top_k": 3}):  # fmt: skip
        with pytest.raises(InvalidInput):
            ReportParams.from_oip(bad)


def test_the_three_manifests_validate_and_share_the_input_contract() -> None:
    manifests = load_manifests()
    kinds = {name: Options.model_validate(manifests[name].adapter).kind for name in MODELS}
    assert kinds == {"merlin": "clip", "merlin-five-year": "five_year", "merlin-report": "report"}
    for name in MODELS:
        m = manifests[name]
        assert m.input.modalities == ["ct"] and m.input.dims == 3
        assert m.input.intensity["ct"].unit == "HU"
        assert tuple(m.input.intensity["ct"].window or ()) == contract.HU_WINDOW
        assert m.input.max_pixels is not None and m.input.max_pixels >= 512 * 512 * 600
        assert m.input.max_file_mb and m.input.max_file_mb >= 315  # a raw 512x512x600 int16
        assert m.batching.max_batch_size >= 2  # volumes batch on the worker
    report = manifests["merlin-report"]
    assert report.resources.cpu_ok is False and report.resources.min_gpu_memory_gb >= 24
    assert manifests["merlin"].resources.cpu_ok


def test_extra_sources_land_where_the_loaders_read() -> None:
    from workers.merlin.model import CLIP_CHECKPOINT, FIVE_YEAR_CHECKPOINT, TEXT_DIR
    from workers.merlin.report_model import LLM_DIR, REPORT_CHECKPOINTS

    manifests = load_manifests()
    clip, five, report = (manifests[n].source for n in MODELS)
    assert clip and five and report
    assert [f.path for f in clip.files] == [CLIP_CHECKPOINT]
    assert [(e.repo_id, e.target_dir) for e in clip.extra_sources] == [
        ("yikuan8/Clinical-Longformer", TEXT_DIR)
    ]
    assert [f.path for f in five.files] == [FIVE_YEAR_CHECKPOINT] and not five.extra_sources
    assert [f.path for f in report.files] == [REPORT_CHECKPOINTS["mtl"]]
    assert [(e.repo_id, e.target_dir) for e in report.extra_sources] == [
        ("StanfordAIMI/RadLLaMA-7b", LLM_DIR)
    ]
    assert "config.json" in report.extra_sources[0].allow_patterns


def test_a_typo_in_a_merlin_manifest_block_is_refused_with_the_closest_key() -> None:
    base = load_manifests()["merlin"].model_dump()
    for block, key, closest in (("adapter", "precompute_finding", "precompute_findings"),
                                ("tiny", "widht_per_group", "width_per_group"),
                                ("defaults", "topk", "top_k")):  # fmt: skip
        data = {**base, block: {**base[block], key: 1}}
        with pytest.raises(InvalidInput, match=closest):
            validate(Manifest.model_validate(data))


def test_file_sniffing() -> None:
    ct = base64.b64decode(contract.example_ct_base64())
    assert ct_file_kind(ct) == "nifti" and ct_file_kind(gzip.decompress(ct)) == "nifti"
    assert ct_file_kind(b"PK\x03\x04rest") == "zip"
    assert ct_file_kind(b"\x89PNG\r\n\x1a\n" + b"\0" * 400) is None
    assert ct_file_kind(b"DICM") is None


def test_builtin_findings_are_the_sourced_thirty() -> None:
    names = contract.builtin_finding_names()
    assert len(names) == 30 and len(set(names)) == 30
    assert all(f.positive and f.negative for f in builtin_findings())
    UserFinding(name="x", positive=["a"], negative=["b"])


def test_the_contract_imports_no_torch() -> None:
    code = "import sys, workers.merlin.contract; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def _undescribed(model: type[BaseModel], seen: set[type]) -> list[str]:
    """Fields of `model` and of the models it nests that have no description."""
    if model in seen:
        return []
    seen.add(model)
    missing = []
    for name, field in model.model_fields.items():
        if not field.description:
            missing.append(f"{model.__name__}.{name}")
        for arg in _models_in(field.annotation):
            missing += _undescribed(arg, seen)
    return missing


def _models_in(annotation: object) -> list[type[BaseModel]]:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def test_request_examples_validate_and_every_field_is_described() -> None:
    from service.schemas import merlin as schemas

    for request in (schemas.AnalyzeRequest, schemas.EmbedTextRequest, schemas.ReportRequest):
        examples = request.model_json_schema()["examples"]
        assert examples
        for example in examples:
            request.model_validate(example)
    bodies = [getattr(schemas, n) for n in ("AnalyzeRequest", "EmbedTextRequest", "ReportRequest",
                                            "AnalyzeResponse", "EmbedTextResponse",
                                            "ReportResponse")]  # fmt: skip
    seen: set[type] = set()
    missing = [m for body in bodies for m in _undescribed(body, seen)]
    assert not missing, f"fields without a Swagger description: {missing}"
