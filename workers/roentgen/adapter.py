"""RoentGen-v2: text (and demographics, rendered into the released template) to chest X-rays.

OIP contract (`workers.roentgen.contract`): input `prompt` BYTES [n], one prompt per image;
parameters `seed`, `steps`, `guidance_scale`, `scheduler`, `height`, `width`,
`negative_prompt`, `truncate`, `channels`, `format`. Outputs `FILE` BYTES [n] (each image
encoded as `format`, labelled synthetic with its provenance), `image` UINT8 [n, H, W(, 3)]
and `seed` INT64 [n]; response parameters carry provenance and `synthetic: true`. Each image is
one batcher item keyed by (steps, size, guidance, scheduler), so only compatible images share
a denoising loop.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.imaging import synthetic
from workers.roentgen.contract import (
    EXAMPLE_PROMPT,
    INPUTS,
    OUTPUTS,
    SEED_DERIVATION,
    Options,
    Params,
    image_seed,
)
from workers.runtime.adapter import Item, ModelAdapter
from workers.runtime.contract import Sample
from workers.runtime.oip import InferRequest, InferResponse


def _texts(request: InferRequest) -> list[str]:
    out = []
    for value in np.asarray(request.inputs["prompt"], dtype=object).reshape(-1):
        try:
            out.append((value.decode("utf-8") if isinstance(value, bytes) else str(value)).strip())
        except UnicodeDecodeError:
            raise InvalidInput("prompt must be UTF-8 text") from None
    return out


class RoentgenAdapter(ModelAdapter):
    inputs = INPUTS
    outputs = OUTPUTS
    Params = Params
    Options = Options

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.roentgen.compute import Sampler
        from workers.roentgen.model import DTYPES, load_pipeline

        gpu = device.startswith("cuda")
        self.dtype_name = self.options.dtype_gpu if gpu else self.options.dtype_cpu
        dtype = DTYPES[self.dtype_name]
        self.micro_batch = self.options.micro_batch_gpu if gpu else self.options.micro_batch_cpu
        self.pipe = load_pipeline(resolved.path, device, dtype)
        self.sampler = Sampler(self.pipe, device, dtype, micro_batch=self.micro_batch)
        self.tokenizer = self.pipe.tokenizer
        self.max_tokens = int(self.tokenizer.model_max_length)
        self._tokenizer_lock = threading.Lock()  # fast tokenizers are not re-entrant
        self.budget = self._accelerate(device) if gpu else None
        self.resolved = resolved
        self.device = device

    def _accelerate(self, device: str) -> Any:
        """The GPU options, then one warm-up image that measures memory (and compiles)."""
        from workers.roentgen.compute import Job
        from workers.roentgen.gpu import MemoryBudget, accelerate

        self.acceleration = accelerate(
            self.pipe, self.options.channels_last_gpu, self.options.compile_gpu
        )
        budget = MemoryBudget(device, self.options.memory_fraction)
        ids = self._token_ids(EXAMPLE_PROMPT, True, "prompt")[0]
        uncond = self._token_ids("", True, "negative_prompt")[0]
        job = Job(ids=ids, uncond_ids=uncond, seed=0)
        budget.measure(
            lambda: self.sampler.generate(
                [job], steps=1, guidance_scale=4.0, scheduler="pndm", height=512, width=512
            )
        )
        self.acceleration["warmup_s"] = round(budget.warmup_s, 2)
        return budget

    def batch_limit(self, key: Any) -> int | None:
        """On a GPU: as many images of this key's size as fit in the free memory."""
        budget = getattr(self, "budget", None)
        if budget is None:
            return None
        _, _, height, width, *_ = key
        limit: int = budget.limit(height, width)
        return limit

    def unload(self) -> None:
        self.pipe = None
        self.sampler = None
        self.budget = None
        super().unload()

    # -- request -> items ---------------------------------------------------------------------

    def params(self, request: InferRequest) -> Params:
        if request.parsed is None:
            params = super().params(request).with_seed()
            if params.steps > self.options.max_steps:
                raise InvalidInput(f"steps must be at most {self.options.max_steps} here")
            request.parsed = params
        parsed: Params = request.parsed
        return parsed

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

    def decode(self, request: InferRequest, params: Params) -> list[Sample]:
        texts = _texts(request)
        if any(not text for text in texts):
            raise InvalidInput(f"prompt is empty; send a description such as {EXAMPLE_PROMPT!r}")
        return [Sample("text", text, modality="text") for text in texts]

    def prepare(self, samples: list[Sample], params: Params, request: InferRequest) -> list[Item]:
        from workers.roentgen.compute import Job

        assert params.seed is not None
        uncond, neg_truncated = self._token_ids(
            params.negative_prompt, params.truncate, "negative_prompt"
        )
        items = []
        for i, sample in enumerate(samples):
            what = "prompt" if len(samples) == 1 else f"prompt {i}"
            ids, truncated = self._token_ids(sample.data, params.truncate, what)
            job = Job(ids=ids, uncond_ids=uncond, seed=image_seed(params.seed, i))
            meta = {"prompt": sample.data, "truncated": truncated or neg_truncated}
            items.append(Item(data=(job, params), key=params.batch_key, meta=meta))
        return items

    # -- batch -> images ----------------------------------------------------------------------

    def predict(self, batch: list[Item]) -> list[Any]:
        from workers.roentgen.compute import to_uint8

        groups: dict[Any, list[int]] = {}
        for index, item in enumerate(batch):
            groups.setdefault(item.key, []).append(index)
        results: list[Any] = [None] * len(batch)
        for indices in groups.values():
            params: Params = batch[indices[0]].data[1]
            images = self.sampler.generate(
                [batch[i].data[0] for i in indices],
                steps=params.steps,
                guidance_scale=params.guidance_scale,
                scheduler=params.scheduler,
                height=params.height,
                width=params.width,
            )
            for image, i in zip(images, indices, strict=True):
                results[i] = to_uint8(image, batch[i].data[1].channels == 3)
        return results

    # -- images -> labelled files -----------------------------------------------------------

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        params = self.params(request)
        assert params.seed is not None
        prompts = _texts(request)
        seeds = [image_seed(params.seed, i) for i in range(len(results))]
        record = {
            **self.provenance(),
            "synthetic": True,
            "device": self.device.split(":")[0],
            "dtype": self.dtype_name,
            **({"acceleration": self.acceleration} if self.budget is not None else {}),
            "seed": params.seed,
            "seed_derivation": SEED_DERIVATION,
            **params.settings(),
        }
        outputs: dict[str, Any] = {
            "image": np.stack(results).astype(np.uint8),
            "seed": np.asarray(seeds, dtype=np.int64),
        }
        if not request.outputs or "FILE" in request.outputs:
            files = [
                synthetic.encode(
                    image, params.format,
                    {**record, "index": i, "seed": seeds[i], "prompt": prompts[i]},
                    instance=i + 1,
                )
                for i, image in enumerate(results)
            ]  # fmt: skip
            outputs["FILE"] = np.array(files, dtype=np.object_)
        return self.response(
            outputs,
            synthetic=True,
            seed=params.seed,
            format=params.format,
            media_type=synthetic.MEDIA_TYPES[params.format],
            **params.settings(),
            provenance=json.dumps({**record, "seeds": seeds, "prompts": prompts}),
        )
