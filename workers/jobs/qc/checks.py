"""One image through the QC models, and the accept/reject decision.

Findings: the SRRG report model writes the image's report; the SRR-BERT labels model labels the
prompt's finding text and that report in one request (each split into sentences, a text's
labels the OR of its sentences'); per image, with A the prompt's labels and B the report's:
precision |A&B|/|B|, recall |A&B|/|A|, F1 2|A&B|/(|A|+|B|) (1.0 when a side and its
counterpart are both empty, 0.0 when only one is). Demographics: the released thresholds (sex
and race must match, |age delta| <= 16). Race is checked only when the requested race is one
of the classifier's classes (Asian, Black, White), as the release does; otherwise `None`.
Every call goes through the job's model clients at batch priority.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import (
    MedserveError,
    ModelNotFound,
    Overloaded,
    Unavailable,
    UpstreamError,
    WeightsUnavailable,
)
from workers.cxr_demographics.contract import CLASSES
from workers.srrg.label_maps import label_names

CHECK_MODELS = {
    "findings": ("report_model", "label_model"),
    "sex": ("sex_model",),
    "race": ("race_model",),
    "age": ("age_model",),
}


@dataclass(frozen=True)
class Asked:
    """What the image was generated to show (None: not stated, so not checked)."""

    finding: str | None
    sex: str | None
    age: float | None
    race: str | None


def label_prf(asked: np.ndarray, seen: np.ndarray) -> tuple[float, float, float]:
    """Per-image label precision, recall and F1 of the report's labels against the prompt's."""
    a, b = asked.astype(bool), seen.astype(bool)
    both, n_a, n_b = int((a & b).sum()), int(a.sum()), int(b.sum())
    precision = both / n_b if n_b else (1.0 if not n_a else 0.0)
    recall = both / n_a if n_a else (1.0 if not n_b else 0.0)
    f1 = 2 * both / (n_a + n_b) if n_a + n_b else 1.0
    return precision, recall, f1


def _first(response: Any, name: str, model: str) -> Any:
    try:
        return np.asarray(response.outputs[name])
    except KeyError:
        raise UpstreamError(f"model {model!r} answered without a {name!r} output") from None


def _text(value: Any) -> str:
    return bytes(value).decode() if isinstance(value, bytes | bytearray) else str(value)


class Checker:
    """The QC checks of one job, against the models its runner's workers serve."""

    def __init__(self, models: Any, qc: dict[str, Any]) -> None:
        self.models = models
        self.qc = qc
        self.active: list[str] = []
        self.skipped: dict[str, str] = {}
        self.provenance: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        for check in qc["checks"]:
            problems = [self._problem(qc[key]) for key in CHECK_MODELS[check]]
            problem = next((p for p in problems if p), None)
            if problem is None:
                self.active.append(check)
            elif qc["skip_unavailable"]:
                self.skipped[check] = problem
            else:
                raise WeightsUnavailable(
                    f"qc check {check!r}: {problem}; serve the released weights, drop the "
                    "check from qc.checks, or set qc.skip_unavailable"
                )

    def replicas(self) -> int:
        """The most workers serving any active check's model (concurrency is per worker)."""
        names = [self.qc[key] for check in self.active for key in CHECK_MODELS[check]]
        return max((self.models.replicas(name) for name in names), default=1)

    def _problem(self, model: str) -> str | None:
        """Why `model` cannot check images here (None: it can)."""
        try:
            self.models.url_for(model)
        except ModelNotFound:
            return f"no worker serves {model!r}"
        if not self.qc["allow_random_weights"]:
            weights = str(self.models.metadata(model).get("parameters", {}).get("weights"))
            if weights.startswith("random"):
                return f"{model!r} serves random weights ({weights}), not a real check"
        return None

    def _infer(self, check: str, model: str, inputs: dict[str, np.ndarray],
               parameters: dict[str, Any], outputs: list[str]) -> Any:  # fmt: skip
        response = self.models.infer(model, inputs, parameters, outputs=outputs)
        info = response.parameters
        with self._lock:
            self.provenance.setdefault(f"{check}:{model}", {
                "check": check, "model": info.get("model", model),
                "version": info.get("version", response.model_version),
                "weights": info.get("weights"), "weights_digest": info.get("weights_digest"),
            })  # fmt: skip
        return response

    def findings(self, png: bytes, finding: str | None) -> dict[str, Any]:
        qc = self.qc
        decoding = {k: qc[k] for k in ("num_beams", "max_length") if qc.get(k) is not None}
        image = {"IMAGE": np.array([png], dtype=np.object_)}
        answer = self._infer("findings", qc["report_model"], image, decoding, ["report"])
        report = _text(_first(answer, "report", qc["report_model"]).reshape(-1)[0])
        if finding is None:
            return {"qc_report": report, "qc_findings_ok": None}
        texts = np.array([(finding.strip() or ".").encode(), (report.strip() or ".").encode()],
                         dtype=np.object_)  # fmt: skip
        labelled = self._infer("findings", qc["label_model"], {"text": texts}, {"split": True},
                               ["report_labels"])  # fmt: skip
        labels = _first(labelled, "report_labels", qc["label_model"])
        names = label_names(str(labelled.parameters.get("label_set", "leaves_with_statuses")))
        precision, recall, f1 = label_prf(labels[0], labels[1])
        threshold = qc.get("min_label_f1")
        return {
            "qc_report": report,
            "qc_prompt_labels": [names[i] for i in np.flatnonzero(labels[0])],
            "qc_report_labels": [names[i] for i in np.flatnonzero(labels[1])],
            "qc_label_precision": precision,
            "qc_label_recall": recall,
            "qc_label_f1": f1,
            "qc_findings_ok": None if threshold is None else f1 >= threshold,
        }

    def demographic(self, kind: str, png: bytes, asked: Asked) -> dict[str, Any]:
        model = self.qc[f"{kind}_model"]
        outputs = ["prediction", "age" if kind == "age" else "probabilities"]
        image = {"IMAGE": np.array([png], dtype=np.object_)}
        answer = self._infer(kind, model, image, {}, outputs)
        predicted = _text(_first(answer, "prediction", model).reshape(-1)[0])
        if kind == "age":
            raw = float(_first(answer, "age", model).reshape(-1)[0])
            years = float(np.rint(raw))
            delta = None if asked.age is None else years - float(asked.age)
            ok = None if delta is None else abs(delta) <= float(self.qc["max_age_delta"])
            return {"qc_age_pred": years, "qc_age_raw": raw, "qc_age_delta": delta, "qc_age_ok": ok}
        probabilities = _first(answer, "probabilities", model).reshape(-1)
        want = asked.sex if kind == "sex" else asked.race
        classes = CLASSES[kind]
        ok = None if want is None or want not in classes else predicted == want
        prob = float(probabilities[classes.index(want)]) if want in classes else None
        return {f"qc_{kind}_pred": predicted, f"qc_{kind}_prob": prob, f"qc_{kind}_ok": ok}

    def check(self, png: bytes, asked: Asked) -> dict[str, Any]:
        """Every active check on one image, and whether it passes them all."""
        row: dict[str, Any] = {}
        try:
            if "findings" in self.active:
                row.update(self.findings(png, asked.finding))
            for kind in ("sex", "race", "age"):
                if kind in self.active:
                    row.update(self.demographic(kind, png, asked))
        except (Overloaded, Unavailable):
            raise  # the workers are away: the shard is redone later
        except MedserveError as exc:  # a QC model refused this image: it fails QC
            return {**row, "qc_error": exc.message, "qc_failed": ["error"], "qc_passed": False}
        failed = [c for c in self.active if row.get(f"qc_{c}_ok") is False]
        return {**row, "qc_failed": failed, "qc_passed": not failed}
