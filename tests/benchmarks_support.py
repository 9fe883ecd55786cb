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


VLM_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<end_of_utterance>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _vlm_corpus() -> list[str]:
    """SMMILE words and the MedVAL prompts, so both benchmarks' prompts stay short in tokens."""
    from workers.benchmarks import medval_data
    from workers.medval.prompt import build_messages
    from workers.medval.tasks import TASK_PROMPTS

    texts = ["Which side is the effusion? What is the lesion? Is this malignant? answer"]
    for instruction in TASK_PROMPTS.values():
        texts += [m["content"] for m in build_messages(instruction, "", "")]
    texts += [r["input"] + " " + r["output"] for r in medval_data.synthetic_rows(n_per_task=2)]
    return texts * 4


def build_vlm(target: Path, reply: str = "Left", seed: int = 0) -> Path:
    """A tiny Idefics3 (SmolVLM's architecture: SigLIP-like vision tower, pixel-shuffle connector,
    Llama text model) that vLLM on the CPU serves with interleaved images. Its text model answers
    every prompt with `reply` then <end_of_utterance> (the trick of `workers.green.tiny`: zero
    attention/MLP outputs, identity embedding, a head chaining token -> reply -> EOS). The image
    processor is the PIL one (vLLM's venv has no torchvision); 32x32 images, one token each."""
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
        Idefics3VisionConfig,
        LlamaConfig,
        PreTrainedTokenizerFast,
    )
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    torch.manual_seed(seed)
    specials = [
        "<|endoftext|>",
        "<|im_start|>",
        "<end_of_utterance>",
        "<image>",
        "<fake_token_around_image>",
        "<global-img>",
    ]
    specials += [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_vlm_corpus(), trainer)
    bpe.add_tokens([AddedToken(reply, normalized=False, special=False)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        model_max_length=4096,
    )
    tokenizer.chat_template = VLM_TEMPLATE
    size = len(tokenizer)
    hidden = size + (-size % 32)
    text = LlamaConfig(
        vocab_size=size,
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=hidden // 32,
        num_key_value_heads=hidden // 32,
        head_dim=32,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    vision = Idefics3VisionConfig(
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=16,
    )
    config = Idefics3Config(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        tie_word_embeddings=False,
    )
    model = Idefics3ForConditionalGeneration(config).eval()
    reply_id, eos = tokenizer.convert_tokens_to_ids(reply), tokenizer.eos_token_id
    lm = model.model.text_model
    with torch.no_grad():
        for layer in lm.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        lm.embed_tokens.weight.copy_(torch.eye(size, hidden))
        head = torch.zeros(size, hidden)
        head[reply_id, :size] = 1.0
        head[reply_id, reply_id] = 0.0
        head[eos, reply_id] = 1.0
        model.lm_head.weight.copy_(head)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    images = Idefics3ImageProcessorPil(
        size={"longest_edge": 32}, do_image_splitting=False, max_image_size={"longest_edge": 32}
    )
    Idefics3Processor(
        image_processor=images, tokenizer=tokenizer, image_seq_len=1, chat_template=VLM_TEMPLATE
    ).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
