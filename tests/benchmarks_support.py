"""Tiny models for the benchmark tests, written as Hugging Face folders (config, safetensors,
tokenizer files) so the upstream packages load them offline like the released ones.

- `build_judge`: a GREEN judge, `LlamaForCausalLM`, whose weights make it answer every prompt
  with one fixed reply. Attention and MLP outputs are zeroed, so the next token depends only on
  the current one; the embedding is the identity and the output head maps each token to a chosen
  successor. The reply is one added (non-special) token, so greedy decoding gives
  prompt ... -> REPLY -> </s>. Everything else (q/k/v weights, norms) stays random.
- `build_bert`: a random 3-layer `BertModel` with a WordPiece vocabulary, for BERTScore.
"""

from __future__ import annotations

from pathlib import Path


def build_judge(target: Path, reply: str, seed: int = 0, vocab_size: int = 384) -> Path:
    """Write the judge to `target`; its greedy answer to any GREEN prompt is `reply` (the GREEN
    family's tiny builder, `workers.green.tiny.build_judge`)."""
    from workers.green.tiny import build_judge as build

    return build(target, reply, seed=seed, vocab_size=vocab_size)


BERT_WORDS = [
    *("the", "heart", "size", "is", "normal", "no", "pleural", "effusion", "small", "left"),
    *("right", "lung", "opacity", "stable", "mild", "enlarged", "unchanged", "lines", "tubes"),
]


def build_bert(target: Path, seed: int = 0) -> Path:
    """Write a random tiny BERT (hidden 32, 3 layers) and its WordPiece tokenizer to `target`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    target.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BERT_WORDS, ".", ",", "##s", "##ed"]
    (target / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(
        vocab_file=str(target / "vocab.txt"), do_lower_case=True, model_max_length=64
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def build_srrg(target: Path, section: str = "findings", seed: int = 0) -> Path:
    """A tiny SRRG report model (SwinV2 + BERT decoder) from the SRRG family's builder."""
    import torch

    from workers.srrg.tiny import build_report

    torch.manual_seed(seed)
    target.mkdir(parents=True, exist_ok=True)
    build_report(target, section, {}, False)
    return target


def build_srrbert(target: Path, key: str = "leaves_with_statuses", seed: int = 0) -> Path:
    """A tiny SRR-BERT classifier for `key` from the SRRG family's builder."""
    import torch

    from workers.srrg.tiny import build_labels

    torch.manual_seed(seed)
    target.mkdir(parents=True, exist_ok=True)
    build_labels(target, key, {}, False)
    return target


def xray_png(seed: int, side: int = 64) -> bytes:
    """A random 8-bit grey PNG the SRRG reader accepts."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, size=(side, side), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()
