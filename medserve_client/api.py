"""The gateway's health, model and task routes, one method each (shared by both clients).

Adding a route: a method here (or in a family's own module mixed into `Api`) decorated with
`@route`, and a result type in `results.py`; the drift test then checks it against the spec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from medserve_client.resources import ModelInfo, Readiness, model_list
from medserve_client.results import Generation, Grade, Grades, Latent, Reconstruction
from medserve_client.routes import Request, body, read_file, route

FileLike = bytes | str | os.PathLike[str]
Modality = Literal["xray", "ct", "mri"]
NO_RAW_RESPONSE = "the client always asks for JSON and decodes the file itself (data_base64)"
DATATYPES = {"float32": "FP32", "float64": "FP64", "float16": "FP16", "uint8": "UINT8",
             "uint16": "UINT16", "int16": "INT16", "int32": "INT32"}  # fmt: skip


def is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "tolist")


def tensor(array: Any) -> dict[str, Any]:
    """A numpy array as the gateway's `tensor` field (shape, datatype, row-major data)."""
    name = str(array.dtype)
    if name not in DATATYPES:
        raise TypeError(f"arrays of {name} cannot be sent; use one of {', '.join(DATATYPES)}")
    return {"shape": list(array.shape), "datatype": DATATYPES[name],
            "data": array.reshape(-1).tolist()}  # fmt: skip


def _file_or_tensor(value: Any, fields: dict[str, Any]) -> Request:
    """A multipart upload of a file, or JSON with `tensor` for an array or tensor mapping."""
    if is_array(value) or isinstance(value, Mapping):
        return Request(json={**body(**fields), "tensor": tensor(value) if is_array(value)
                             else dict(value)})  # fmt: skip
    return Request(form=fields, file=read_file(value))


class Api:
    """Routes every client has; `Client` and `AsyncClient` add the transport."""

    @route("GET", "/livez", parse=lambda raw: raw.get("status") == "ok")
    def live(self) -> Request:
        """True while the gateway process answers."""
        return Request()

    @route("GET", "/readyz", parse=Readiness.from_json, accept=(503,))
    def readiness(self) -> Request:
        """Which models and engines are ready (a 503 is an answer here, not an error)."""
        return Request()

    @route("GET", "/v1/models", parse=model_list)
    def list_models(self) -> Request:
        """Every model this gateway serves, with its state and weights."""
        return Request()

    @route("GET", "/v1/models/{name}", parse=ModelInfo.from_json)
    def get_model(self, name: str) -> Request:
        """One served model."""
        return Request(path_params={"name": name})

    @route("POST", "/v1/roentgen/generate", parse=Generation.from_json)
    def roentgen_generate(
        self,
        prompt: str | None = None,
        *,
        age: int | None = None,
        sex: str | None = None,
        race: str | None = None,
        impression: str | None = None,
        findings: str | None = None,
        n: int | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        scheduler: str | None = None,
        height: int | None = None,
        width: int | None = None,
        negative_prompt: str | None = None,
        truncate: bool | None = None,
        output: Literal["png", "dicom", "npy"] | None = None,
        channels: Literal[1, 3] | None = None,
        model: str | None = None,
    ) -> Request:
        """Synthetic chest X-rays from a free `prompt`, or from `age`, `sex` (and `race`) plus
        `impression`/`findings` (the released template). Unset fields take the server's
        defaults (75 PNDM steps, guidance 3, 512x512, PNG)."""
        return Request(json=body(
            prompt=prompt, age=age, sex=sex, race=race, impression=impression, findings=findings,
            n=n, seed=seed, steps=steps, guidance_scale=guidance_scale, scheduler=scheduler,
            height=height, width=width, negative_prompt=negative_prompt, truncate=truncate,
            output=output, channels=channels, model=model,
        ))  # fmt: skip

    @route(
        "POST", "/v1/medvae/encode", parse=Latent.from_json,
        names={"image_base64": "image", "tensor": "image"}, omit={"response": NO_RAW_RESPONSE},
    )  # fmt: skip
    def medvae_encode(
        self,
        image: FileLike | Any,
        *,
        model: str = "medvae-4-1-2d",
        modality: Modality | None = None,
        latent: Literal["s1", "s2"] | None = None,
        sample: bool | None = None,
        seed: int | None = None,
        format: Literal["npy", "safetensors", "nifti"] | None = None,
        crop: Literal["foreground", "none"] | None = None,
        roi_size: int | None = None,
        spacing: Sequence[float] | None = None,
    ) -> Request:
        """Encode an image or volume to a MedVAE latent. `image`: file bytes or a path (PNG,
        JPEG, DICOM, NIfTI), or a numpy array of pixels ([H,W], [C,H,W], or [X,Y,Z] in RAS)."""
        fields = dict(model=model, modality=modality, latent=latent, sample=sample, seed=seed,
                      format=format, crop=crop, roi_size=roi_size,
                      spacing=list(spacing) if spacing is not None else None)  # fmt: skip
        return _file_or_tensor(image, fields)

    @route(
        "POST", "/v1/medvae/decode", parse=Reconstruction.from_json,
        names={"latent_base64": "latent", "tensor": "latent"}, omit={"response": NO_RAW_RESPONSE},
    )  # fmt: skip
    def medvae_decode(
        self,
        latent: Latent | FileLike | Any,
        *,
        model: str | None = None,
        modality: Modality | None = None,
        format: Literal["png", "nifti", "npy"] | None = None,
        value_range: Sequence[float] | None = None,
        affine: Sequence[Sequence[float]] | None = None,
        bits: Literal[8, 16] | None = None,
    ) -> Request:
        """Decode a latent to an image (PNG for 2D, NIfTI for 3D). `latent`: what
        `medvae_encode` returned (its model, affine and MRI range are reused), file bytes or a
        path, or a numpy array [C,h,w] / [C,x,y,z]."""
        if isinstance(latent, Latent):
            model = model or latent.model
            if affine is None and latent.format != "nifti":
                affine = latent.affine
            if value_range is None and latent.modality == "mri":
                value_range = latent.value_range
            latent = latent.data
        fields = dict(model=model or "medvae-4-1-2d", modality=modality, format=format,
                      value_range=list(value_range) if value_range is not None else None,
                      affine=[list(r) for r in affine] if affine is not None else None,
                      bits=bits)  # fmt: skip
        return _file_or_tensor(latent, fields)

    @route("POST", "/v1/medval/evaluate", parse=Grade.from_json)
    def medval_evaluate(
        self,
        reference: str,
        candidate: str,
        *,
        task: str | None = None,
        instruction: str | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        enable_thinking: bool | None = None,
        constrained: bool | None = None,
    ) -> Request:
        """Grade `candidate` (generated from `reference`) with MedVAL: risk 1-4, errors found,
        reasoning. Name the released `task` (e.g. report2impression) or a free `instruction`."""
        return Request(json=body(
            reference=reference, candidate=candidate, task=task, instruction=instruction,
            model=model, max_tokens=max_tokens, temperature=temperature,
            enable_thinking=enable_thinking, constrained=constrained,
        ))  # fmt: skip

    @route("POST", "/v1/medval/evaluate", parse=Grades.from_json)
    def medval_evaluate_batch(
        self,
        items: Sequence[Mapping[str, str]],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        enable_thinking: bool | None = None,
        constrained: bool | None = None,
    ) -> Request:
        """Grade up to 64 items (`{"task" or "instruction", "reference", "candidate"}`) in one
        call; an item the model cannot grade has its own `error`."""
        return Request(json=body(
            items=[dict(i) for i in items], model=model, max_tokens=max_tokens,
            temperature=temperature, enable_thinking=enable_thinking, constrained=constrained,
        ))  # fmt: skip
