"""GREEN in process (transformers): (reference, candidate) pairs in, the judge's answer and the
GREEN score parsed from it out, with provenance and `machine_generated`.

Contract in `workers.green.contract`. A pair whose prompt reaches the 2048-token window is
refused (RadEval's own `generate(max_length=2048)` cannot run on it either): shorten the
reports, or lower `max_words`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.benchmarks import green
from workers.green.contract import INPUTS, MAX_LENGTH, OUTPUTS, Params
from workers.runtime.adapter import Item, ModelAdapter
from workers.runtime.contract import Sample
from workers.runtime.oip import InferRequest, InferResponse


def _texts(request: InferRequest, name: str) -> list[str]:
    rows = np.asarray(request.inputs[name], dtype=object).reshape(-1)
    return [r.decode("utf-8", "replace") if isinstance(r, bytes) else str(r) for r in rows]


class GreenAdapter(ModelAdapter):
    inputs = INPUTS
    outputs = OUTPUTS
    Params = Params

    def load(self, resolved: ResolvedModel, device: str) -> None:
        from workers.green.compute import Judge
        from workers.green.model import load_judge

        tokenizer, model, self.device = load_judge(resolved.path, device)
        self.judge = Judge(tokenizer, model, self.device)
        self.eos_token = str(tokenizer.eos_token)
        self.resolved = resolved

    def decode(self, request: InferRequest, params: Params) -> list[Sample]:
        references, candidates = _texts(request, "reference"), _texts(request, "candidate")
        if len(references) != len(candidates):
            raise InvalidInput(
                f"{len(references)} references but {len(candidates)} candidates; send one "
                "candidate report per reference report"
            )
        samples = []
        for reference, candidate in zip(references, candidates, strict=True):
            prompt = green.make_prompt(reference, candidate, params.max_words)
            samples.append(Sample("text", prompt, modality="text"))
        return samples

    def prepare(self, samples: list[Sample], params: Params, request: InferRequest) -> list[Item]:
        items = []
        for row, sample in enumerate(samples):
            chat = green.render_chat(sample.data, self.eos_token)
            length = self.judge.prompt_tokens(chat)
            if length >= MAX_LENGTH:
                raise InvalidInput(
                    f"pair {row}: the GREEN prompt is {length} tokens, the judge's window is "
                    f"{MAX_LENGTH} with the answer included; shorten the reports (or lower "
                    "max_words)"
                )
            items.append(Item(chat, key="green"))
        return items

    def predict(self, batch: list[Item]) -> list[Any]:
        return self.judge.generate([item.data for item in batch])

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        counts = [green.error_counts(text) for text, _, _ in results]
        params = self.params(request)
        return self.response(
            {
                "green": np.array([green.green_score(t) for t, _, _ in results], dtype=np.float64),
                "matched_findings": np.array(
                    [c["matched_findings"] for c in counts], dtype=np.int32
                ),
                "significant_errors": np.array(
                    [list(c["significant"].values()) for c in counts], dtype=np.int32
                ),
                "insignificant_errors": np.array(
                    [list(c["insignificant"].values()) for c in counts], dtype=np.int32
                ),
                "text": np.array([t.encode() for t, _, _ in results], dtype=object),
                "finish_reason": np.array([r.encode() for _, r, _ in results], dtype=object),
            },
            machine_generated=True,
            max_words=params.max_words,
            max_length=MAX_LENGTH,
            judge=green.MODEL_ID,
        )
