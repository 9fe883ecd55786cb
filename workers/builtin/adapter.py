"""Echo: returns its input (times `scale`), row by row. Measures platform overhead and
exercises batching, queues and timeouts without a neural network."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.builtin import compute
from workers.builtin.contract import INPUTS, OUTPUTS, Options, Params
from workers.builtin.model import load_scale
from workers.runtime.adapter import Item, ModelAdapter
from workers.runtime.contract import Sample
from workers.runtime.oip import InferRequest, InferResponse


class EchoAdapter(ModelAdapter):
    inputs = INPUTS
    outputs = OUTPUTS
    Params = Params
    Options = Options

    def load(self, resolved: ResolvedModel, device: str) -> None:
        self.scale = load_scale(resolved.path)
        self.batch_sizes: list[int] = []
        self.resolved = resolved
        self.device = device

    def decode(self, request: InferRequest, params: Params) -> list[Sample]:
        array = np.asarray(request.inputs["INPUT0"])
        if array.ndim < 1:
            raise InvalidInput("INPUT0 needs a leading batch dimension, e.g. shape [1, n]")
        return [Sample("tensor", row) for row in array]

    def prepare(self, samples: list[Sample], params: Params, request: InferRequest) -> list[Item]:
        meta = {"delay_ms": params.delay_ms}
        return [Item(s.data, key=np.shape(s.data), meta=meta) for s in samples]

    def predict(self, batch: list[Item]) -> list[Any]:
        self.batch_sizes.append(len(batch))
        delay_ms = max(item.meta["delay_ms"] for item in batch)
        rows = compute.echo([item.data for item in batch], self.scale, delay_ms)
        return [(row, len(batch)) for row in rows]

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        rows = [row for row, _ in results]
        sizes = [size for _, size in results]
        return self.response(
            {"OUTPUT0": np.stack(rows) if rows else np.zeros((0,), np.float32)},
            batch_sizes=json.dumps(sizes),
        )
