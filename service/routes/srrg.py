"""Routes: SRRG. `POST /v1/srrg/generate` (chest X-ray -> structured report),
`POST /v1/srrg/labels` (reports -> SRR-BERT labels) and `POST /v1/srrg/score` (F1-SRR-BERT).

The workers do the model work: report workers decode the X-ray, generate and parse the report;
labels workers split reports into sentences (as F1-SRR-BERT does) and batch the sentences
across requests. The gateway stays torch-free: it checks limits, sends one request per model,
and for `score` computes the metric from the workers' OR-merged report labels with
`workers.srrg.f1.score_merged`, the same function the library's `f1_srr_bert` ends in.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from core.errors import InvalidInput, PayloadTooLarge
from service.deps import ModelsDep, RequestIdDep
from service.forms import parse_body
from service.schemas.srrg import (
    GenerateRequest,
    GenerateResponse,
    LabelScore,
    LabelsRequest,
    LabelsResponse,
    ReportLabels,
    SampleScore,
    ScoreRequest,
    ScoreResponse,
    SentenceLabels,
    StructuredSection,
)
from workers.runtime.oip import InferResponse
from workers.srrg.contract import (
    JOB_HINT_IMAGES,
    JOB_HINT_SCORE,
    LABEL_MODELS,
    MAX_LABEL_REPORTS,
    MAX_SCORE_PAIRS,
    Options,
)
from workers.srrg.f1 import score_merged
from workers.srrg.label_maps import label_names

router = APIRouter(tags=["srrg"])
PROVENANCE = ("model", "version", "weights", "weights_digest")


def _provenance(parameters: dict[str, Any]) -> dict[str, Any]:
    return {key: parameters.get(key) for key in PROVENANCE}


def _texts(answer: InferResponse, name: str) -> list[str]:
    return [bytes(v).decode("utf-8") for v in np.asarray(answer.outputs[name]).reshape(-1)]


# ---- generate ----------------------------------------------------------------------------------


async def _generate_input(request: Request) -> tuple[GenerateRequest, bytes]:
    """The body (JSON or multipart/form-data) and the X-ray file's bytes."""
    body, raw = await parse_body(request, GenerateRequest, "image_base64")
    if not raw:
        raise InvalidInput(
            "send one chest X-ray: image_base64 in JSON, or a multipart part named 'file' "
            f"({JOB_HINT_IMAGES})"
        )
    return body, raw


def _report_model(models: ModelsDep, section: str, name: str) -> Options:
    options = Options.model_validate(models.manifest(name, family="srrg").adapter)
    if options.kind == "labels":
        raise InvalidInput(f"model '{name}' is an SRR-BERT labeller; send a report model")
    if options.section != section:
        raise InvalidInput(
            f"model '{name}' writes the {options.section} section; send it as "
            f"{options.section}_model, or a {section} model as {section}_model"
        )
    return options


def _generation(options: Options, body: GenerateRequest) -> dict[str, Any]:
    if options.kind == "remote_report":
        return {} if body.max_length is None else {"max_new_tokens": body.max_length}
    values = {"num_beams": body.num_beams, "max_length": body.max_length}
    return {key: value for key, value in values.items() if value is not None}


def _section(section: str, answer: InferResponse) -> StructuredSection:
    structure = json.loads(_texts(answer, "structure")[0])
    p = answer.parameters
    settings = ("num_beams", "max_length", "max_new_tokens")
    return StructuredSection(
        **_provenance(p),
        section=section,
        text=_texts(answer, "report")[0],
        raw_text=_texts(answer, "text")[0],
        sections=structure.get("sections"),
        items=structure.get("items"),
        structure_valid=bool(structure["structure_valid"]),
        problems=list(structure["problems"]),
        line_breaks_restored=bool(structure["line_breaks_restored"]),
        parameters={key: p[key] for key in settings if key in p},
    )


def _combined(parts: list[StructuredSection]) -> dict[str, Any]:
    """Top-level provenance of a report whose sections may come from different models."""
    one = parts[0] if len(parts) == 1 else None
    weights = {part.weights for part in parts}
    versions = {part.version for part in parts}
    return {
        "model": ",".join(part.model for part in parts),
        "version": versions.pop() if len(versions) == 1 else None,
        "weights": weights.pop() if len(weights) == 1 else "mixed",
        "weights_digest": one.weights_digest if one else None,
    }


@router.post(
    "/v1/srrg/generate",
    response_model=GenerateResponse,
    summary="Write a structured radiology report (findings and/or impression) for a chest X-ray",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": GenerateRequest.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "The X-ray: PNG, JPEG or single-frame DICOM.",
                            },
                            "sections": {
                                "type": "string",
                                "example": "findings",
                                "description": "findings, impression, or a JSON list of both.",
                            },
                            "num_beams": {"type": "integer", "description": "Default 2."},
                            "max_length": {"type": "integer", "description": "Default 128."},
                            "findings_model": {"type": "string", "description": "srrg-findings"},
                            "impression_model": {
                                "type": "string",
                                "description": "srrg-impression",
                            },
                        },
                        "required": ["file"],
                    }
                },
            }
        }
    },
)
async def generate(request: Request, models: ModelsDep, request_id: RequestIdDep) -> Any:
    body, raw = await _generate_input(request)
    sections = list(dict.fromkeys(body.sections))
    names = {"findings": body.findings_model, "impression": body.impression_model}
    options = {section: _report_model(models, section, names[section]) for section in sections}
    inputs = {"IMAGE": np.array([raw], dtype=np.object_)}
    answers = await asyncio.gather(
        *(
            models.infer(names[s], inputs, _generation(options[s], body),
                         request_id=request_id or None)
            for s in sections
        )
    )  # fmt: skip
    parts = [_section(s, a) for s, a in zip(sections, answers, strict=True)]
    text = "\n\n".join(f"{part.section.title()}:\n{part.text}" for part in parts)
    return GenerateResponse(
        **_combined(parts),
        machine_generated=True,
        text=text,
        structure_valid=all(part.structure_valid for part in parts),
        **{part.section: part for part in parts},
    )


# ---- labels and score -------------------------------------------------------------------------


def _labels_model(
    models: ModelsDep, model: str | None, label_set: str, explicit: bool
) -> tuple[str, str]:
    """(model, label set) for a labels request; a model of another label set is refused."""
    name = model or LABEL_MODELS[label_set]
    options = Options.model_validate(models.manifest(name, family="srrg").adapter)
    if options.kind != "labels":
        raise InvalidInput(
            f"model '{name}' writes reports; send an SRR-BERT model: "
            + ", ".join(LABEL_MODELS.values())
        )
    if explicit and options.label_set != label_set:
        raise InvalidInput(
            f"model '{name}' labels with {options.label_set}, not {label_set}; send one of them"
        )
    return name, str(options.label_set)


def _check_texts(field: str, texts: list[str]) -> None:
    for index, text in enumerate(texts):
        if not text.strip():
            raise InvalidInput(f"{field}[{index}] is empty; send the report text")


async def _label(
    models: ModelsDep, name: str, texts: list[str], request_id: str, outputs: list[str]
) -> InferResponse:
    inputs = {"text": np.array([t.encode("utf-8") for t in texts], dtype=np.object_)}
    return await models.infer(
        name, inputs, {"split": True}, request_id=request_id or None, outputs=outputs
    )


@router.post(
    "/v1/srrg/labels",
    response_model=LabelsResponse,
    response_model_exclude_none=True,
    summary="Label report sentences with SRR-BERT (per sentence and OR-merged per report)",
)
async def labels(
    body: LabelsRequest, models: ModelsDep, request_id: RequestIdDep
) -> LabelsResponse:
    if len(body.reports) > MAX_LABEL_REPORTS:
        raise PayloadTooLarge(
            f"{len(body.reports)} reports in one request; /v1/srrg/labels takes at most "
            f"{MAX_LABEL_REPORTS}: {JOB_HINT_SCORE}"
        )
    _check_texts("reports", body.reports)
    explicit = "label_set" in body.model_fields_set
    name, label_set = _labels_model(models, body.model, body.label_set, explicit)
    wanted = ["sentence", "report_index", "labels", "report_labels"]
    answer = await _label(
        models, name, body.reports, request_id, wanted + ["probabilities"] * body.probabilities
    )
    names = label_names(label_set)
    out = answer.outputs
    flags, index = np.asarray(out["labels"]), np.asarray(out["report_index"]).reshape(-1)
    merged = np.asarray(out["report_labels"])
    probs = np.asarray(out["probabilities"]) if body.probabilities else None
    results = [ReportLabels(labels=[names[k] for k in np.flatnonzero(row)], sentences=[])
               for row in merged]  # fmt: skip
    for row, (sentence, report) in enumerate(zip(_texts(answer, "sentence"), index, strict=True)):
        results[int(report)].sentences.append(
            SentenceLabels(
                text=sentence,
                labels=[names[k] for k in np.flatnonzero(flags[row])],
                probabilities=None if probs is None else [float(v) for v in probs[row]],
            )
        )
    return LabelsResponse(
        **_provenance(answer.parameters),
        machine_generated=True,
        label_set=label_set,
        label_names=list(names) if body.probabilities else None,
        results=results,
    )


@router.post(
    "/v1/srrg/score",
    response_model=ScoreResponse,
    response_model_exclude_none=True,
    summary="F1-SRR-BERT of generated reports against references (RadEval's srrbert metric)",
)
async def score(body: ScoreRequest, models: ModelsDep, request_id: RequestIdDep) -> ScoreResponse:
    refs, hyps = body.references, body.hypotheses
    if len(refs) != len(hyps):
        raise InvalidInput(
            f"got {len(refs)} references and {len(hyps)} hypotheses; send one of each per report"
        )
    if len(refs) > MAX_SCORE_PAIRS:
        raise PayloadTooLarge(
            f"{len(refs)} report pairs in one request; /v1/srrg/score takes at most "
            f"{MAX_SCORE_PAIRS}: {JOB_HINT_SCORE}"
        )
    _check_texts("references", refs)
    explicit = "label_set" in body.model_fields_set
    name, label_set = _labels_model(models, body.model, body.label_set, explicit)
    # ref0, hyp0, ref1, hyp1, ... (RadEval's order); RadEval labels '' as the sentence '.'
    texts = [text for pair in zip(refs, hyps, strict=True) for text in pair]
    texts = [text if text.strip() else "." for text in texts]
    answer = await _label(models, name, texts, request_id, ["report_labels"])
    merged = np.asarray(answer.outputs["report_labels"])
    result = score_merged(merged[0::2], merged[1::2], label_names(label_set))
    per_sample = [
        SampleScore(precision=p, recall=r, f1=f)
        for p, r, f in zip(
            result.sample_precision, result.sample_recall, result.sample_f1, strict=True
        )
    ]
    return ScoreResponse(
        **_provenance(answer.parameters),
        label_set=label_set,
        precision=result.precision,
        recall=result.recall,
        f1=result.f1,
        per_sample=per_sample,
        per_label={k: LabelScore(**v) for k, v in result.per_label.items()}
        if body.per_label
        else None,
    )
