"""Builder for GREEN-RadLlama2-7b: a `LlamaForCausalLM` and a byte-level BPE tokenizer with the
Llama special tokens (<unk>, <s>, </s>), in the Hugging Face layout the loader reads.

With the `tiny` block's `reply`, the judge answers every prompt with that text: the reply is one
added token, attention and MLP outputs are zeroed (the next token depends on the current one
only), the embedding is the identity and the output head maps every token to the reply and the
reply to </s>. Greedy decoding then gives prompt ... -> reply -> </s>, with q/k/v and norms still
random. `full_size=True` writes the Llama-2-7B shape with random weights (for benchmarks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_store.manifest import Manifest
from workers.benchmarks import green

SPECIALS = ["<unk>", "<s>", "</s>"]
LLAMA2_7B = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
}


def _tokenizer(vocab_size: int, reply: str | None) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [green.make_prompt("heart size normal", "small left effusion")] * 4
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    if reply:
        bpe.add_tokens([AddedToken(reply, normalized=False, special=False)])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def _fix_reply(model: Any, tokenizer: Any, reply: str) -> None:
    """Make greedy decoding answer `reply` then </s> to any prompt (see the module docstring)."""
    import torch

    size, hidden = len(tokenizer), model.config.hidden_size
    reply_id, eos = tokenizer.convert_tokens_to_ids(reply), tokenizer.eos_token_id
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.copy_(torch.eye(size, hidden))
        head = torch.zeros(size, hidden)
        head[reply_id, :size] = 1.0
        head[reply_id, reply_id] = 0.0
        head[eos, reply_id] = 1.0
        model.lm_head.weight.copy_(head)


def build_judge(
    target: Path, reply: str | None, seed: int = 0, full_size: bool = False, **shape: Any
) -> Path:
    """Write a GREEN judge folder to `target` (see the module docstring)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = _tokenizer(int(shape.pop("vocab_size", 384)), None if full_size else reply)
    size = len(tokenizer)
    dims = dict(LLAMA2_7B) if full_size else {
        "vocab_size": size,
        "hidden_size": size + (-size % 8),  # the identity embedding needs hidden >= vocab
        "intermediate_size": int(shape.get("intermediate_size", 32)),
        "num_hidden_layers": int(shape.get("num_hidden_layers", 1)),
        "num_attention_heads": int(shape.get("num_attention_heads", 4)),
        "num_key_value_heads": int(shape.get("num_attention_heads", 4)),
        "max_position_embeddings": green.MAX_LENGTH,
    }  # fmt: skip
    config = LlamaConfig(
        **dims,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    if reply and not full_size:
        _fix_reply(model, tokenizer, reply)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def build(manifest: Manifest, target: Path, full_size: bool = False, seed: int = 0) -> None:
    options = dict(manifest.tiny)
    reply = options.pop("reply", None)
    build_judge(target, reply, seed=seed, full_size=full_size, **options)
