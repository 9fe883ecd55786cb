"""The report and CT routes (SRRG, GREEN, Merlin), one method each, shared by both clients."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from medserve_client.reports import (
    CTAnalysis,
    CTReport,
    GreenScores,
    LabelledReports,
    ReportScore,
    StructuredReport,
    TextEmbeddings,
)
from medserve_client.routes import Request, body, read_file, route

FileLike = bytes | str | os.PathLike[str]
LabelSet = Literal["leaves", "leaves_with_statuses", "upper", "upper_with_statuses"]
FILE = {"image_base64": "image"}
CT = {"image_base64": "ct"}


def _upload(image: FileLike, fields: dict[str, Any]) -> Request:
    """The file as a multipart part `file`, the other fields as form fields."""
    return Request(form=fields, file=read_file(image))


def _list(value: Sequence[Any] | None) -> list[Any] | None:
    return None if value is None else [dict(v) if isinstance(v, Mapping) else v for v in value]


class ReportsApi:
    """Structured reports of chest X-rays (SRRG), report labels and scores, CT analysis."""

    @route("POST", "/v1/srrg/generate", parse=StructuredReport.from_json, names=FILE)
    def srrg_generate(
        self,
        image: FileLike,
        *,
        sections: Sequence[Literal["findings", "impression"]] | None = None,
        findings_model: str | None = None,
        impression_model: str | None = None,
        num_beams: int | None = None,
        max_length: int | None = None,
    ) -> Request:
        """A structured findings and/or impression report of one chest X-ray (PNG, JPEG or
        DICOM bytes or path)."""
        return _upload(image, dict(sections=_list(sections), findings_model=findings_model,
                                   impression_model=impression_model, num_beams=num_beams,
                                   max_length=max_length))  # fmt: skip

    @route("POST", "/v1/srrg/labels", parse=LabelledReports.from_json)
    def srrg_labels(
        self,
        reports: Sequence[str],
        *,
        label_set: LabelSet | None = None,
        model: str | None = None,
        probabilities: bool | None = None,
    ) -> Request:
        """SRR-BERT labels of each report and of each of its sentences."""
        return Request(json=body(reports=list(reports), label_set=label_set, model=model,
                                 probabilities=probabilities))  # fmt: skip

    @route("POST", "/v1/srrg/score", parse=ReportScore.from_json)
    def srrg_score(
        self,
        references: Sequence[str],
        hypotheses: Sequence[str],
        *,
        label_set: LabelSet | None = None,
        model: str | None = None,
        per_label: bool | None = None,
    ) -> Request:
        """F1-SRR-BERT of generated reports against their references (one pair per index)."""
        pairs = dict(references=list(references), hypotheses=list(hypotheses))
        return Request(json=body(**pairs, label_set=label_set, model=model, per_label=per_label))

    @route("POST", "/v1/green/score", parse=GreenScores.from_json)
    def green_score(
        self,
        reference: str,
        candidate: str,
        *,
        model: str | None = None,
        max_words: int | None = None,
    ) -> Request:
        """GREEN: a judge model's count of matched findings and clinically significant errors."""
        return Request(json=body(reference=reference, candidate=candidate, model=model,
                                 max_words=max_words))  # fmt: skip

    @route("POST", "/v1/green/score", parse=GreenScores.from_json)
    def green_score_batch(
        self,
        pairs: Sequence[Mapping[str, str]],
        *,
        model: str | None = None,
        max_words: int | None = None,
    ) -> Request:
        """GREEN for up to 64 `{"reference", "candidate"}` pairs and their mean."""
        return Request(json=body(pairs=_list(pairs), model=model, max_words=max_words))

    @route("POST", "/v1/merlin/analyze", parse=CTAnalysis.from_json, names=CT)
    def merlin_analyze(
        self,
        ct: FileLike,
        *,
        tasks: Sequence[Literal["embedding", "phenotypes", "findings", "five_year"]] | None = None,
        top_k: int | Literal["all"] | None = None,
        findings: Sequence[str] | None = None,
        findings_prompts: Sequence[Mapping[str, Any]] | None = None,
        embedding_format: Literal["json", "npy"] | None = None,
        model: str | None = None,
        five_year_model: str | None = None,
    ) -> Request:
        """Merlin on an abdominal CT (NIfTI, or a .zip of one DICOM series): phenotypes,
        zero-shot findings, five-year disease risks, embeddings."""
        return _upload(ct, dict(tasks=_list(tasks), top_k=top_k, findings=_list(findings),
                                findings_prompts=_list(findings_prompts),
                                embedding_format=embedding_format, model=model,
                                five_year_model=five_year_model))  # fmt: skip

    @route("POST", "/v1/merlin/report", parse=CTReport.from_json, names=CT)
    def merlin_report(
        self,
        ct: FileLike,
        *,
        organ_systems: Sequence[str] | None = None,
        max_new_tokens: int | None = None,
        repetition_penalty: float | None = None,
        model: str | None = None,
    ) -> Request:
        """Generated CT findings per organ system (machine-generated, to be reviewed)."""
        return _upload(ct, dict(organ_systems=_list(organ_systems),
                                max_new_tokens=max_new_tokens,
                                repetition_penalty=repetition_penalty, model=model))  # fmt: skip

    @route("POST", "/v1/merlin/embed-text", parse=TextEmbeddings.from_json,
           names={"text": "texts"})  # fmt: skip
    def merlin_embed_text(
        self,
        texts: str | Sequence[str],
        *,
        format: Literal["json", "npy"] | None = None,
        model: str | None = None,
    ) -> Request:
        """Merlin's text embeddings (512-d, normalised) of one text or several."""
        many = None if isinstance(texts, str) else list(texts)
        return Request(json=body(text=texts if many is None else None, texts=many,
                                 format=format, model=model))  # fmt: skip
