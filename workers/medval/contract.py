"""MedVAL's contract (torch-free): the worker's tensors and parameters, and the task keys.

Input `messages` BYTES [n]: one JSON chat per row (the released MedVAL prompt, built by
`workers.medval.prompt`), or `prompt` BYTES [n]: raw text completed as is (the OpenAI
completions route). Outputs the raw answer `text`, `finish_reason`, `completion_tokens` and
`prompt_tokens`; parsing (`workers.medval.answer`) is shared by both engines.
`OPENAI = True`: the gateway's OpenAI-compatible routes may serve models of this family.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from workers.medval.tasks import TASK_PROMPTS
from workers.runtime.params import OIPParams
from workers.runtime.spec import TensorSpec

MAX_TOKENS_LIMIT = 8192
TASKS = tuple(TASK_PROMPTS)

OPENAI = True

INPUTS = [
    TensorSpec("messages", "BYTES", (-1,), optional=True),
    TensorSpec("prompt", "BYTES", (-1,), optional=True),
]
OUTPUTS = [
    TensorSpec("text", "BYTES", (-1,)),
    TensorSpec("finish_reason", "BYTES", (-1,)),
    TensorSpec("completion_tokens", "INT32", (-1,)),
    TensorSpec("prompt_tokens", "INT32", (-1,)),
]


class Params(OIPParams):
    max_tokens: int = Field(1024, ge=1, le=MAX_TOKENS_LIMIT, description="Answer token budget.")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    enable_thinking: bool = Field(False, description="Qwen3 thinking mode (off unless asked).")
    constrained: bool = Field(False, description="Decode under the answer grammar.")
    stop: list[str] | None = Field(
        None, max_length=4, description="Cut the answer before the first of these strings."
    )


class Tiny(BaseModel):
    """The manifest's `tiny` block: a small Qwen3 (head_dim >= 32 so vLLM on the CPU takes it)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    head_dim: int = Field(32, ge=32)
    vocab_size: int = 4096
