"""Typed results of the report and CT routes (SRRG, GREEN, Merlin): reports as structured
objects, scores as numbers, embeddings as numpy on demand. Every result keeps `raw`."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

from medserve_client import media
from medserve_client.results import Provenance


def _provenance(raw: dict[str, Any]) -> dict[str, Any]:
    return Provenance.of(raw)


def _vector(raw: dict[str, Any] | None) -> Any:
    """A `{values}` or `{data_base64}` (npy) vector or matrix as a numpy array."""
    np = media.need("numpy")
    if raw is None:
        return None
    if raw.get("data_base64"):
        return np.load(io.BytesIO(base64.b64decode(raw["data_base64"])), allow_pickle=False)
    return np.asarray(raw.get("values") or raw.get("embeddings"), dtype=np.float32)


@dataclass(frozen=True)
class ReportSection(Provenance):
    """One generated section: its text, the structure parsed from it, the model that wrote it."""

    section: str
    text: str
    raw_text: str
    headers: dict[str, list[str]] | None  # findings: organ-system header -> its bullets
    items: list[str] | None  # impression: the numbered items
    structure_valid: bool
    problems: list[str]

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> ReportSection | None:
        if raw is None:
            return None
        return cls(**_provenance(raw), section=raw["section"], text=raw["text"],
                   raw_text=raw.get("raw_text", ""), headers=raw.get("sections"),
                   items=raw.get("items"), structure_valid=bool(raw.get("structure_valid")),
                   problems=list(raw.get("problems") or []))  # fmt: skip


@dataclass(frozen=True)
class StructuredReport(Provenance):
    """`srrg_generate`: a structured chest X-ray report (machine-generated, to be reviewed)."""

    text: str
    structure_valid: bool
    findings: ReportSection | None
    impression: ReportSection | None
    machine_generated: bool
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StructuredReport:
        return cls(**_provenance(raw), text=raw["text"],
                   structure_valid=bool(raw.get("structure_valid")),
                   findings=ReportSection.from_json(raw.get("findings")),
                   impression=ReportSection.from_json(raw.get("impression")),
                   machine_generated=bool(raw.get("machine_generated", True)), raw=raw)  # fmt: skip


@dataclass(frozen=True)
class SentenceLabels:
    text: str
    labels: list[str]
    probabilities: list[float] | None


@dataclass(frozen=True)
class ReportLabels:
    labels: list[str]
    sentences: list[SentenceLabels]


@dataclass(frozen=True)
class LabelledReports(Provenance):
    """`srrg_labels`: per report, its labels and each sentence's labels."""

    label_set: str
    label_names: list[str] | None
    results: list[ReportLabels]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LabelledReports:
        results = [
            ReportLabels(r["labels"], [SentenceLabels(x["text"], x["labels"],
                                                      x.get("probabilities"))
                                       for x in r["sentences"]])
            for r in raw["results"]
        ]  # fmt: skip
        return cls(**_provenance(raw), label_set=raw["label_set"],
                   label_names=raw.get("label_names"), results=results, raw=raw)  # fmt: skip


@dataclass(frozen=True)
class ReportScore(Provenance):
    """`srrg_score`: F1-SRR-BERT (weighted precision, recall, F1) with per-sample scores."""

    metric: str
    label_set: str
    precision: float
    recall: float
    f1: float
    per_sample: list[dict[str, float]]
    per_label: dict[str, dict[str, float]] | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ReportScore:
        return cls(**_provenance(raw), metric=raw.get("metric", "f1_srr_bert"),
                   label_set=raw["label_set"], precision=raw["precision"], recall=raw["recall"],
                   f1=raw["f1"], per_sample=raw.get("per_sample") or [],
                   per_label=raw.get("per_label"), raw=raw)  # fmt: skip


@dataclass(frozen=True)
class Judgement:
    """GREEN's judgement of one candidate report against its reference."""

    green: float
    matched_findings: int
    significant_errors: dict[str, int]
    insignificant_errors: dict[str, int]
    answer: str


@dataclass(frozen=True)
class GreenScores(Provenance):
    """`green_score`: one judgement per pair and their mean (machine-generated)."""

    green: float
    results: list[Judgement]
    machine_generated: bool
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> GreenScores:
        results = [Judgement(r["green"], r["matched_findings"], r["significant_errors"],
                             r["insignificant_errors"], r.get("answer", ""))
                   for r in raw["results"]]  # fmt: skip
        return cls(**_provenance(raw), green=raw["green"], results=results,
                   machine_generated=bool(raw.get("machine_generated", True)), raw=raw)  # fmt: skip


@dataclass(frozen=True)
class OrganReport:
    organ_system: str
    text: str


@dataclass(frozen=True)
class CTReport(Provenance):
    """`merlin_report`: generated findings per organ system (machine-generated)."""

    sections: list[OrganReport]
    disclaimer: str
    machine_generated: bool
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CTReport:
        sections = [OrganReport(s["organ_system"], s["text"]) for s in raw["organ_systems"]]
        return cls(**_provenance(raw), sections=sections, disclaimer=raw.get("disclaimer", ""),
                   machine_generated=bool(raw.get("machine_generated", True)), raw=raw)  # fmt: skip

    @property
    def text(self) -> str:
        return "\n".join(f"{s.organ_system}: {s.text}" for s in self.sections)


@dataclass(frozen=True)
class Scored:
    """A phenotype, finding or disease with its score (`probability`, or `margin`)."""

    name: str
    code: str | None
    score: float
    present: bool | None = None


@dataclass(frozen=True)
class CTAnalysis(Provenance):
    """`merlin_analyze`: phenotypes, zero-shot findings, five-year risks, embeddings."""

    tasks: list[str]
    preprocessing: dict[str, Any]
    phenotypes: list[Scored]
    findings: list[Scored]
    five_year: list[Scored]
    skipped: dict[str, str]
    machine_generated: bool
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CTAnalysis:
        pheno = (raw.get("phenotypes") or {}).get("items", [])
        finds = (raw.get("findings") or {}).get("items", [])
        years = (raw.get("five_year") or {}).get("items", [])
        return cls(
            **_provenance(raw), tasks=raw.get("tasks", []),
            preprocessing=raw.get("preprocessing") or {},
            phenotypes=[Scored(p["name"], p["code"], p["probability"]) for p in pheno],
            findings=[Scored(f["name"], None, f["margin"], f["present"]) for f in finds],
            five_year=[Scored(d["name"], d["code"], d["probability"]) for d in years],
            skipped=raw.get("skipped") or {},
            machine_generated=bool(raw.get("machine_generated", True)), raw=raw,
        )  # fmt: skip

    def embedding(self) -> Any:
        """The 512-d contrastive image embedding (numpy), when the task ran."""
        return _vector((self.raw.get("embedding") or {}).get("contrastive"))

    def features(self) -> Any:
        """The 2048-d pooled image features (numpy), when the embedding task ran."""
        return _vector((self.raw.get("embedding") or {}).get("features"))


@dataclass(frozen=True)
class TextEmbeddings(Provenance):
    """`merlin_embed_text`: one L2-normalised 512-d row per text."""

    dim: int
    tokens: list[int]
    truncated: list[bool]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TextEmbeddings:
        texts = raw.get("texts") or []
        return cls(**_provenance(raw), dim=raw["dim"], tokens=[t["tokens"] for t in texts],
                   truncated=[t["truncated"] for t in texts], raw=raw)  # fmt: skip

    def to_numpy(self) -> Any:
        """The embeddings as a [N, dim] float32 array."""
        return _vector(self.raw)
