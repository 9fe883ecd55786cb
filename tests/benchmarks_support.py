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

from workers.benchmarks import green

SPECIALS = ["<unk>", "<s>", "</s>"]


def build_judge(target: Path, reply: str, seed: int = 0, vocab_size: int = 384) -> Path:
    """Write the judge to `target`; its greedy answer to any GREEN prompt is `reply`."""
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
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
    bpe.add_tokens([AddedToken(reply, normalized=False, special=False)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    size = len(tokenizer)
    hidden = size + (-size % 8)
    config = LlamaConfig(
        vocab_size=size,
        hidden_size=hidden,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=green.MAX_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    reply_id, eos = tokenizer.convert_tokens_to_ids(reply), tokenizer.eos_token_id
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.copy_(torch.eye(size, hidden))
        head = torch.zeros(size, hidden)
        head[reply_id, :size] = 1.0  # every token is followed by the reply...
        head[reply_id, reply_id] = 0.0
        head[eos, reply_id] = 1.0  # ...and the reply by </s>
        model.lm_head.weight.copy_(head)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


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
