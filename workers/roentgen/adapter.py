"""RoentGen-v2: text (and demographics, rendered into the released template) to chest X-rays.

OIP contract. Input `prompt` BYTES [n]: one prompt per image. Request parameters: `seed` (image
i uses seed + i; chosen and reported when absent), `steps`, `guidance_scale`, `scheduler`
(pndm | ddim | dpmsolver++), `height`, `width`, `negative_prompt`, `truncate`, `channels`
(1 grayscale, 3 RGB). Outputs `image` UINT8 [n, H, W] (or [n, H, W, 3]) and `seed` INT64 [n];
response parameters carry provenance and `synthetic: true`. Each image is one batcher item
keyed by (steps, size, guidance, scheduler), so only compatible images share a loop.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.roentgen.contract import (
    DEFAULT_MAX_IMAGES,
    GenerationParams,
    check_seed_range,
    parse_params,
)
from workers.runtime.adapter import Item, ModelAdapter, TensorSpec
from workers.runtime.oip import InferRequest, InferResponse

EXAMPLE_PROMPT = "50 year old female. Normal chest radiograph."


class RoentgenAdapter(ModelAdapter):
    inputs = [TensorSpec("prompt", "BYTES", [-1])]
    outputs = [TensorSpec("image", "UINT8", [-1, -1, -1]), TensorSpec("seed", "INT64", [-1])]

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.roentgen.compute import DTYPES, Sampler, load_pipeline

        options = self.manifest.adapter
        gpu = device.startswith("cuda")
        dtype_name = str(options.get("dtype_gpu" if gpu else "dtype_cpu", "float32"))
        dtype = DTYPES[dtype_name]
        micro_batch = int(options.get("micro_batch_gpu" if gpu else "micro_batch_cpu", 1))
        self.pipe = load_pipeline(resolved.path, device, dtype)
        self.sampler = Sampler(self.pipe, device, dtype, micro_batch=micro_batch)
        self.tokenizer = self.pipe.tokenizer
        self.max_tokens = int(self.tokenizer.model_max_length)
        self._tokenizer_lock = threading.Lock()  # fast tokenizers are not re-entrant
        self.dtype_name = dtype_name
        self.micro_batch = micro_batch
        self.resolved = resolved
        self.device = device

    def unload(self) -> None:
        self.pipe = None
        self.sampler = None
        super().unload()

    # -- request -> items ---------------------------------------------------------------------

    def _token_ids(self, text: str, truncate: bool, what: str) -> tuple[list[int], bool]:
        with self._tokenizer_lock:
            count = len(self.tokenizer(text, truncation=False).input_ids)
            ids = self.tokenizer(
                text, padding="max_length", max_length=self.max_tokens, truncation=True
            ).input_ids
        too_long = count > self.max_tokens
        if too_long and not truncate:
            raise InvalidInput(
                f"{what} is {count} tokens long but the text encoder reads at most "
                f"{self.max_tokens} (including start and end markers); shorten it, or send "
                "truncate=true to cut it at the limit"
            )
        return list(ids), too_long

    def _prompts(self, request: InferRequest) -> list[str]:
        if "prompt" not in request.inputs:
            raise InvalidInput(
                "send one input named 'prompt' (BYTES, shape [n]): one text prompt per image, "
                f"e.g. {EXAMPLE_PROMPT!r}"
            )
        raw = np.asarray(request.inputs["prompt"], dtype=object).reshape(-1)
        limit = int(self.manifest.defaults.get("max_images", DEFAULT_MAX_IMAGES))
        if not 1 <= len(raw) <= limit:
            raise InvalidInput(
                f"send between 1 and {limit} prompts (one per image); got {len(raw)}"
            )
        prompts = []
        for value in raw:
            try:
                text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
            except UnicodeDecodeError:
                raise InvalidInput("prompt must be UTF-8 text") from None
            if not text.strip():
                raise InvalidInput(
                    f"prompt is empty; send a description such as {EXAMPLE_PROMPT!r}"
                )
            prompts.append(text.strip())
        return prompts

    def preprocess(self, request: InferRequest) -> list[Item]:
        from workers.roentgen.compute import Job

        prompts = self._prompts(request)
        params = parse_params(request.parameters, self.manifest.defaults)
        check_seed_range(params.seed, len(prompts))
        request.parameters["seed"] = params.seed  # a chosen seed is reported back
        uncond, neg_truncated = self._token_ids(
            params.negative_prompt, params.truncate, "negative_prompt"
        )
        items = []
        for i, text in enumerate(prompts):
            what = "prompt" if len(prompts) == 1 else f"prompt {i}"
            ids, truncated = self._token_ids(text, params.truncate, what)
            job = Job(ids=ids, uncond_ids=uncond, seed=params.seed + i)
            items.append(
                Item(
                    data=(job, params),
                    key=params.batch_key,
                    meta={"prompt": text, "truncated": truncated or neg_truncated},
                )
            )
        return items

    # -- batch -> images ----------------------------------------------------------------------

    def predict(self, batch: list[Item]) -> list[Any]:
        groups: dict[Any, list[int]] = {}
        for index, item in enumerate(batch):
            groups.setdefault(item.key, []).append(index)
        results: list[Any] = [None] * len(batch)
        from workers.roentgen.compute import to_uint8

        for indices in groups.values():
            params: GenerationParams = batch[indices[0]].data[1]
            images = self.sampler.generate(
                [batch[i].data[0] for i in indices],
                steps=params.steps,
                guidance_scale=params.guidance_scale,
                scheduler=params.scheduler,
                height=params.height,
                width=params.width,
            )
            for image, i in zip(images, indices, strict=True):
                results[i] = to_uint8(image, batch[i].data[1].rgb)
        return results

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        params = parse_params(request.parameters, self.manifest.defaults)
        prompts = [
            (v.decode("utf-8") if isinstance(v, bytes) else str(v)).strip()
            for v in np.asarray(request.inputs["prompt"], dtype=object).reshape(-1)
        ]
        seeds = [params.seed + i for i in range(len(results))]
        settings = {
            "steps": params.steps,
            "guidance_scale": params.guidance_scale,
            "scheduler": params.scheduler,
            "height": params.height,
            "width": params.width,
            "negative_prompt": params.negative_prompt,
            "truncate": params.truncate,
        }
        record = {
            **self.provenance(),
            "synthetic": True,
            "device": self.device.split(":")[0],
            "dtype": self.dtype_name,
            "seeds": seeds,
            "prompts": prompts,
            **settings,
        }
        return InferResponse(
            model_name=self.name,
            model_version=self.manifest.version,
            outputs={
                "image": np.stack(results).astype(np.uint8),
                "seed": np.asarray(seeds, dtype=np.int64),
            },
            parameters={
                **self.provenance(),
                "synthetic": True,
                "seed": params.seed,
                **settings,
                "provenance": json.dumps(record),
            },
        )
