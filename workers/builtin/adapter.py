"""Echo: returns its input (times `scale`), row by row. Measures platform overhead and
exercises batching, queues and timeouts without a neural network."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from core.errors import InvalidInput
from model_store.store import ResolvedModel
from workers.runtime.adapter import Item, ModelAdapter, TensorSpec
from workers.runtime.oip import InferRequest, InferResponse


class EchoAdapter(ModelAdapter):
    inputs = [TensorSpec("INPUT0", "FP32", [-1, -1])]
    outputs = [TensorSpec("OUTPUT0", "FP32", [-1, -1])]

    def load(self, resolved: ResolvedModel, device: str) -> None:
        config = json.loads((resolved.path / "config.json").read_text())
        self.scale = float(config.get("scale", 1.0))
        self.batch_sizes: list[int] = []
        self.resolved = resolved
        self.device = device

    def preprocess(self, request: InferRequest) -> list[Item]:
        if "INPUT0" not in request.inputs:
            raise InvalidInput("send one input named INPUT0 (FP32, shape [batch, n])")
        array = np.asarray(request.inputs["INPUT0"])
        if array.ndim < 1 or array.dtype.kind not in "fiu":
            raise InvalidInput("INPUT0 must be a numeric tensor with a leading batch dimension")
        if not np.isfinite(array.astype(np.float64)).all():
            raise InvalidInput("INPUT0 contains NaN or infinity; send finite values")
        delay_ms = float(request.parameters.get("delay_ms", 0) or 0)
        rows = array.astype(np.float32)
        return [
            Item(rows[i], key=rows.shape[1:], meta={"delay_ms": delay_ms}) for i in range(len(rows))
        ]

    def predict(self, batch: list[Item]) -> list[Any]:
        self.batch_sizes.append(len(batch))
        delay_ms = max(item.meta.get("delay_ms", 0.0) for item in batch)
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        stacked = np.stack([item.data for item in batch])
        out = stacked * self.scale
        return [(out[i], len(batch)) for i in range(len(batch))]

    def postprocess(self, request: InferRequest, results: list[Any]) -> InferResponse:
        rows = [row for row, _ in results]
        batch_sizes = [size for _, size in results]
        return InferResponse(
            model_name=self.name,
            model_version=self.manifest.version,
            outputs={"OUTPUT0": np.stack(rows) if rows else np.zeros((0,), np.float32)},
            parameters={**self.provenance(), "batch_sizes": json.dumps(batch_sizes)},
        )
