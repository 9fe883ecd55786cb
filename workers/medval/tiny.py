"""Builder for MedVAL-4B: a Qwen3 causal LM in the Hugging Face layout, randomly initialised.

The tiny variant uses head_dim 32 (the smallest head size vLLM's CPU attention accepts) and a
byte-level BPE tokenizer trained in code on the released prompt, so prompts stay short. The chat
template is ChatML with Qwen3's `enable_thinking` switch. `full_size=True` writes the Qwen3-4B
architecture (random weights, for benchmarks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_store.manifest import Manifest

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

# Qwen3's chat template reduced to what MedVAL uses: ChatML turns, and an empty think block
# after the generation prompt when thinking is switched off.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif %}"
)

QWEN3_4B = {
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
}


def _corpus() -> list[str]:
    from workers.medval.prompt import SYSTEM_MESSAGE, build_messages
    from workers.medval.tasks import TASK_PROMPTS

    texts = [SYSTEM_MESSAGE]
    for instruction in TASK_PROMPTS.values():
        texts.append(build_messages(instruction, "", "")[1]["content"])
    texts += [
        "The chest radiograph shows no acute cardiopulmonary abnormality.",
        "Mild cardiomegaly. Small left pleural effusion. No pneumothorax.",
        "CT of the abdomen and pelvis with contrast: liver, spleen, kidneys unremarkable.",
        "Take one tablet by mouth twice daily with food. El paciente fue admitido al hospital.",
        "[[ ## reasoning ## ]]\nThe candidate omits the effusion.\n\n[[ ## errors ## ]]\n"
        "Error 1: Missing claim: effusion\n\n[[ ## risk_level ## ]]\n3\n\n[[ ## completed ## ]]",
    ]
    return texts * 4


def _tokenizer(vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build(manifest: Manifest, target: Path, full_size: bool = False, seed: int = 0) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    options = dict(manifest.tiny)
    tokenizer = _tokenizer(int(options.pop("vocab_size", 1024)))
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    shape = dict(QWEN3_4B) if full_size else {"vocab_size": len(tokenizer), **options}
    shape.setdefault("max_position_embeddings", 4096)
    config = Qwen3Config(
        **shape,
        tie_word_embeddings=True,
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    torch.manual_seed(seed)
    model: Any = Qwen3ForCausalLM(config)
    model = model.to(torch.bfloat16)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
