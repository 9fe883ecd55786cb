"""One submit method per job type, with that type's parameters (see docs/jobs.md).

Unset parameters are left out, so the server's defaults apply; nested option blocks are
mappings, as in the job's JSON. Adding a job type: one `submit_<type>` method here with
`job_type=` set; the drift test compares its parameters with the type's `Params`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from medserve_client.jobs import submission
from medserve_client.resources import Job
from medserve_client.routes import Request, body, route

PathLike = str | os.PathLike[str]
Options = Mapping[str, Any]


class JobTypesApi:
    """`submit_<type>` for every job type the server has."""

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="sleep")
    def submit_sleep(
        self, items: int | None = None, item_ms: float | None = None,
        fail_at: int | None = None, *, idempotency_key: str | None = None,
    ) -> Request:  # fmt: skip
        """A model-free job of `items` steps of `item_ms` each (for trying the job API)."""
        return submission("sleep", body(items=items, item_ms=item_ms, fail_at=fail_at),
                          idempotency_key)  # fmt: skip

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="synthetic-dataset")
    def submit_synthetic_dataset(
        self,
        findings: Sequence[str] | None = None,
        *,
        sexes: Sequence[str] | None = None,
        age_bins: Sequence[Sequence[int]] | None = None,
        races: Sequence[str] | None = None,
        images_per_cell: int | None = None,
        total_images: int | None = None,
        marginals: Mapping[str, Mapping[str, float]] | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        height: int | None = None,
        width: int | None = None,
        concurrency: int | None = None,
        model: str | None = None,
        qc: Options | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """A demographically balanced RoentGen-v2 campaign (an imagefolder of labelled PNGs);
        `qc` checks every image with the platform's models and regenerates rejected ones."""
        params = body(
            findings=_list(findings), sexes=_list(sexes), races=_list(races),
            age_bins=[list(b) for b in age_bins] if age_bins is not None else None,
            images_per_cell=images_per_cell, total_images=total_images,
            marginals=marginals, seed=seed, steps=steps, guidance_scale=guidance_scale,
            height=height, width=width, concurrency=concurrency, model=model, qc=_dict(qc),
        )  # fmt: skip
        return submission("synthetic-dataset", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="synthetic-qc")
    def submit_synthetic_qc(
        self,
        source: PathLike,
        qc: Options,
        *,
        age_bins: Sequence[Sequence[int]] | None = None,
        limit: int | None = None,
        concurrency: int | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """The synthetic-dataset QC checks over an existing imagefolder dataset."""
        params = body(source=os.fspath(source), qc=_dict(qc), limit=limit,
                      age_bins=[list(b) for b in age_bins] if age_bins is not None else None,
                      concurrency=concurrency)  # fmt: skip
        return submission("synthetic-qc", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="latent-dataset")
    def submit_latent_dataset(
        self,
        source: PathLike,
        *,
        model: str | None = None,
        modality: Literal["xray", "ct", "mri"] | None = None,
        format: Literal["npy", "safetensors"] | None = None,
        latent: Literal["s1", "s2"] | None = None,
        roi_size: int | None = None,
        concurrency: int | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """MedVAE latents for every image under `source` (a folder, a CSV with a `path`
        column, or an fsspec URL); a local path is made absolute here."""
        params = body(source=os.fspath(source), model=model, modality=modality, format=format,
                      latent=latent, roi_size=roi_size, concurrency=concurrency)  # fmt: skip
        return submission("latent-dataset", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="train-classifier")
    def submit_train_classifier(
        self,
        real: Mapping[str, Any],
        *,
        synthetic: Mapping[str, Any] | None = None,
        strategies: Sequence[str] | None = None,
        split: Mapping[str, Any] | None = None,
        model: Mapping[str, Any] | None = None,
        train: Mapping[str, Any] | None = None,
        eval: Mapping[str, Any] | None = None,
        resume_from: str | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """A chest X-ray classifier on `real` (`{"csv": ..., "images": ...}`) and optionally a
        `synthetic` set (`{"job": id}` or `{"folder": ...}`); see docs/training.md."""
        params = body(
            real=_dict(real), synthetic=_dict(synthetic),
            strategies=_list(strategies), split=_dict(split), model=_dict(model),
            train=_dict(train), eval=_dict(eval), resume_from=resume_from,
        )  # fmt: skip
        return submission("train-classifier", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="train-latent-classifier")
    def submit_train_latent_classifier(
        self,
        real: Mapping[str, Any],
        latents: PathLike | Mapping[str, str],
        *,
        factor: int | None = None,
        compare_images: bool | None = None,
        split: Mapping[str, Any] | None = None,
        model: Mapping[str, Any] | None = None,
        train: Mapping[str, Any] | None = None,
        eval: Mapping[str, Any] | None = None,
        resume_from: str | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """The same classifier on MedVAE latents (`{"job": <latent-dataset id>}` or a folder)
        and on the images they encode; see docs/training.md."""
        params = body(
            real=_dict(real), latents=_latents(latents), factor=factor,
            compare_images=compare_images, split=_dict(split), model=_dict(model),
            train=_dict(train), eval=_dict(eval), resume_from=resume_from,
        )  # fmt: skip
        return submission("train-latent-classifier", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="srrg-reports")
    def submit_srrg_reports(
        self,
        source: PathLike,
        *,
        sections: Sequence[Literal["findings", "impression"]] | None = None,
        findings_model: str | None = None,
        impression_model: str | None = None,
        num_beams: int | None = None,
        max_length: int | None = None,
        concurrency: int | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """Structured SRRG reports for every chest X-ray under `source`."""
        params = body(source=os.fspath(source), sections=_list(sections),
                      findings_model=findings_model, impression_model=impression_model,
                      num_beams=num_beams, max_length=max_length,
                      concurrency=concurrency)  # fmt: skip
        return submission("srrg-reports", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="merlin-embeddings")
    def submit_merlin_embeddings(
        self,
        source: PathLike,
        *,
        model: str | None = None,
        include_features: bool | None = None,
        concurrency: int | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """Merlin embeddings of every CT under `source` (a folder, a CSV or a JSONL)."""
        params = body(source=os.fspath(source), model=model, include_features=include_features,
                      concurrency=concurrency)  # fmt: skip
        return submission("merlin-embeddings", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="benchmark-medval")
    def submit_benchmark_medval(
        self,
        source: PathLike,
        evaluator: Options,
        *,
        split: str | None = None,
        tasks: Sequence[str] | None = None,
        limit: int | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        enable_thinking: bool | None = None,
        constrained: bool | None = None,
        unsafe_from: int | None = None,
        concurrency: int | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """MedVAL-Bench graded by `evaluator` (`{"model": ...}` on a worker, or with
        `base_url` an OpenAI-compatible server); see docs/benchmarks.md."""
        params = body(source=os.fspath(source), evaluator=_dict(evaluator), split=split,
                      tasks=_list(tasks), limit=limit, max_tokens=max_tokens,
                      temperature=temperature, enable_thinking=enable_thinking,
                      constrained=constrained, unsafe_from=unsafe_from,
                      concurrency=concurrency)  # fmt: skip
        return submission("benchmark-medval", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="benchmark-reports")
    def submit_benchmark_reports(
        self,
        source: PathLike,
        *,
        reference_column: str | None = None,
        hypothesis_column: str | None = None,
        image_column: str | None = None,
        group_column: str | None = None,
        srrg: Options | None = None,
        srrbert: Options | None = None,
        green: Literal["auto", "required", "off"] | None = None,
        green_model: str | None = None,
        lexical: bool | None = None,
        bertscore: Options | None = None,
        limit: int | None = None,
        concurrency: int | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """Report-generation metrics (GREEN, F1-SRR-BERT, BLEU/ROUGE, BERTScore) over a CSV of
        reference and generated reports, or over X-rays reported by SRRG."""
        params = body(source=os.fspath(source), reference_column=reference_column,
                      hypothesis_column=hypothesis_column, image_column=image_column,
                      group_column=group_column, srrg=_dict(srrg), srrbert=_dict(srrbert),
                      green=green, green_model=green_model, lexical=lexical,
                      bertscore=_dict(bertscore), limit=limit, concurrency=concurrency)  # fmt: skip
        return submission("benchmark-reports", params, idempotency_key)

    @route("POST", "/v1/jobs", parse=Job.from_json, job_type="benchmark-smmile")
    def submit_benchmark_smmile(
        self,
        source: PathLike,
        endpoint: Options,
        *,
        modes: Sequence[Literal["0-shot", "ICL"]] | None = None,
        task_format: Literal["open", "mcqa"] | None = None,
        answer_role: Literal["system", "assistant"] | None = None,
        irrelevant_example: bool | None = None,
        irrelevant_position: Literal["random", "first", "last"] | None = None,
        most_relevant: Sequence[Literal["first", "last"]] | None = None,
        judge: Options | None = None,
        judge_temperature: float | None = None,
        strict_match: bool | None = None,
        seed: int | None = None,
        limit: int | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        concurrency: int | None = None,
        idempotency_key: str | None = None,
    ) -> Request:
        """SMMILE (multimodal in-context learning) against the OpenAI-compatible `endpoint`
        (`{"base_url", "model"}`), zero-shot and in-context, with the ablations."""
        params = body(source=os.fspath(source), endpoint=_dict(endpoint), modes=_list(modes),
                      task_format=task_format, answer_role=answer_role,
                      irrelevant_example=irrelevant_example,
                      irrelevant_position=irrelevant_position, most_relevant=_list(most_relevant),
                      judge=_dict(judge), judge_temperature=judge_temperature,
                      strict_match=strict_match, seed=seed, limit=limit, max_tokens=max_tokens,
                      temperature=temperature, concurrency=concurrency)  # fmt: skip
        return submission("benchmark-smmile", params, idempotency_key)


def _list(value: Sequence[Any] | None) -> list[Any] | None:
    return None if value is None else list(value)


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def _latents(value: PathLike | Mapping[str, str]) -> Any:
    return dict(value) if isinstance(value, Mapping) else os.fspath(value)
