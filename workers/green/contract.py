"""GREEN's contract (torch-free): one (reference, candidate) report pair per row in, the judge's
cleaned answer and its parsed GREEN score and error counts out.

The prompt, chat text, decoding settings and answer parsing are RadEval 2.2.1's, reproduced in
`workers.benchmarks.green`; the worker applies them, so every caller (REST, OIP, jobs) gets the
same numbers RadEval's `GREEN` gives for the same weights.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from workers.benchmarks.green import MAX_LENGTH, MAX_WORDS, SUB_CATEGORIES
from workers.runtime.params import OIPParams
from workers.runtime.spec import TensorSpec

N_SUB = len(SUB_CATEGORIES)

INPUTS = [TensorSpec("reference", "BYTES", (-1,)), TensorSpec("candidate", "BYTES", (-1,))]
OUTPUTS = [
    TensorSpec("green", "FP64", (-1,)),
    TensorSpec("matched_findings", "INT32", (-1,)),
    TensorSpec("significant_errors", "INT32", (-1, N_SUB)),
    TensorSpec("insignificant_errors", "INT32", (-1, N_SUB)),
    TensorSpec("text", "BYTES", (-1,)),
    TensorSpec("finish_reason", "BYTES", (-1,)),
]


class Params(OIPParams):
    """RadEval fixes these; they are parameters only so a caller can see and state them."""

    max_words: int = Field(
        MAX_WORDS, ge=1, le=2000, description="Each report is cut to its first N words."
    )


class Tiny(BaseModel):
    """The manifest's `tiny` block. With `reply`, the tiny judge answers every prompt with that
    text (attention and MLP outputs zeroed, the output head chaining prompt -> reply -> </s>), so
    the served path parses a real answer; without it the weights are plainly random."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(384, ge=300, le=32000)
    num_hidden_layers: int = Field(1, ge=1, le=4)
    num_attention_heads: int = Field(4, ge=1, le=16)
    intermediate_size: int = Field(32, ge=8)
    reply: str | None = None


__all__ = ["INPUTS", "MAX_LENGTH", "OUTPUTS", "Params", "Tiny"]
