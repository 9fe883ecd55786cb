"""Builder for SRRG models: random weights written in the released Hugging Face layout, so the
loaders in model.py / labels.py read them unchanged. Tokenizers and image processors are built
offline from in-code vocabularies.

- Report models (chexpert-plus-srrg_findings / _impression): `VisionEncoderDecoderModel` = SwinV2
  (or ViT) encoder + BERT decoder with cross-attention; `config.json`, `generation_config.json`,
  `model.safetensors`, `preprocessor_config.json`, `vocab.txt` + tokenizer files. The vocabulary
  is word-level in ViLMedic's order ([CLS] 0, [PAD] 1, [SEP] 2, [UNK] 3, [MASK] 4, then words).
  Full size (inferred, the released config.json was not readable): SwinV2-T at 224 px, window 7
  (27.6M) and a 2-layer, 768-wide decoder whose vocabulary brings the total to ~55M.
- SRR-BERT: `BertForSequenceClassification`, num_labels from the label map, WordPiece vocab.
  Full size: BERT-base (12 layers, 768, vocab 30522, ~110M, 438 MB in fp32 as released).

Manifest: `adapter.kind` ("report" | "labels", else taken from `source.repo_id`),
`adapter.section` / `adapter.label_set`; `tiny` options: encoder (swinv2 | vit), hidden_size,
layers, image_size, cross_attention_gain, classifier_std, full_vocab_size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import WeightsUnavailable
from model_store.manifest import Manifest

SPECIALS_REPORT = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]
SPECIALS_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
REPORT_WORDS = (  # noqa: SIM905
    "lungs and airways : pleura cardiovascular hila mediastinum tubes , catheters support devices "
    "musculoskeletal chest wall abdominal other - . 1 2 3 no evidence of focal consolidation "
    "pleural effusion pneumothorax normal cardiac size silhouette mild moderate small large left "
    "right bilateral stable unchanged atelectasis edema opacity lower lobe upper basilar heart "
    "aorta tortuous endotracheal tube tip cm above carina degenerative changes spine is are the "
    "within limits clear acute cardiopulmonary process "
).split()
SRR_WORDS = (  # noqa: SIM905
    "no acute pleural effusion pneumothorax stable cardiomegaly lungs are clear small large left "
    "right mild moderate severe pulmonary edema consolidation atelectasis opacity fracture tube "
    "line catheter tip in place unchanged improved worsening bilateral lower upper lobe heart "
    "size normal there is of the and with without evidence e.g. dr vs cm mm "
).split()
IMAGE_MEAN = [0.485, 0.456, 0.406]  # ImageNet, as the sibling IAMJB baselines' processor
IMAGE_STD = [0.229, 0.224, 0.225]
# Inferred: with SwinV2-T + a tied 2-layer decoder these give the published 55.1M / 56.6M.
FULL_REPORT_VOCAB = {"findings": 9920, "impression": 11870}


def _vocab(specials: list[str], words: list[str], size: int | None, wordpiece: bool) -> list[str]:
    tokens = list(dict.fromkeys(specials + words))
    if wordpiece:
        chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789"))
        tokens += [c for c in chars if c not in tokens] + [f"##{c}" for c in chars]
    if size is not None:
        tokens += [f"[unused{i}]" for i in range(size - len(tokens))]
    return tokens


def _save_tokenizer(target: Path, tokens: list[str], **kwargs: Any) -> Any:
    """A BertTokenizer over `tokens` (ids in list order), saved as the released repos ship it:
    vocab.txt and tokenizer_config.json, no tokenizer.json; checked by reading it back."""
    from transformers import BertTokenizer

    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(tokens)}, **kwargs)
    target.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(target)
    (target / "tokenizer.json").unlink(missing_ok=True)
    (target / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    reloaded = BertTokenizer.from_pretrained(target, local_files_only=True)
    if reloaded.get_vocab() != tokenizer.get_vocab():
        raise RuntimeError("the saved tokenizer does not read back with the same ids")
    return tokenizer


def _encoder_config(options: dict[str, Any], full_size: bool) -> Any:
    from transformers import Swinv2Config, ViTConfig

    kind = options.get("encoder", "swinv2")
    if kind == "vit":
        if full_size:
            return ViTConfig(image_size=224)
        hidden = int(options.get("hidden_size", 32))
        return ViTConfig(
            image_size=int(options.get("image_size", 64)),
            patch_size=16,
            hidden_size=hidden,
            num_hidden_layers=int(options.get("layers", 1)),
            num_attention_heads=2,
            intermediate_size=2 * hidden,
        )
    if kind != "swinv2":
        raise WeightsUnavailable(f"tiny encoder must be swinv2 or vit, not '{kind}'")
    if full_size:
        return Swinv2Config(
            image_size=224,
            window_size=7,
            embed_dim=96,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
        )
    embed = int(options.get("hidden_size", 32)) // 2
    return Swinv2Config(
        image_size=int(options.get("image_size", 64)),
        patch_size=4,
        embed_dim=embed,
        depths=[1, 1],
        num_heads=[1, 2],
        window_size=4,
    )


def report_model(section: str, options: dict[str, Any], full_size: bool) -> tuple[Any, list[str]]:
    """The randomly initialised report model and its vocabulary ([CLS] 0, [PAD] 1, [SEP] 2)."""
    from transformers import AutoModel, BertConfig, BertLMHeadModel, VisionEncoderDecoderModel

    vocab = options.get("full_vocab_size", FULL_REPORT_VOCAB.get(section, 9920))
    tokens = _vocab(SPECIALS_REPORT, REPORT_WORDS, int(vocab) if full_size else None, False)
    hidden = 768 if full_size else int(options.get("hidden_size", 32))
    ids = {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2}
    decoder_config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=hidden,
        num_hidden_layers=2 if full_size else int(options.get("layers", 1)),
        num_attention_heads=12 if full_size else 2,
        intermediate_size=4 * hidden if full_size else 2 * hidden + 5,
        max_position_embeddings=514 if full_size else 160,
        is_decoder=True,
        add_cross_attention=True,
        **ids,
    )
    model = VisionEncoderDecoderModel(
        encoder=AutoModel.from_config(_encoder_config(options, full_size)),
        decoder=BertLMHeadModel(decoder_config),
    )
    for name, value in {**ids, "decoder_start_token_id": 0}.items():
        setattr(model.config, name, value)
    if not full_size:
        _amplify_cross_attention(model, float(options.get("cross_attention_gain", 6.0)))
    return model, tokens


def _amplify_cross_attention(model: Any, gain: float) -> None:
    """Scale the decoder's cross-attention values and outputs by `gain` each: at the default
    init (std 0.02) a tiny decoder ignores the image, so every X-ray would get the same report
    and no test could tell two inputs apart."""
    import torch

    with torch.no_grad():
        for layer in model.decoder.bert.encoder.layer:
            layer.crossattention.self.value.weight.mul_(gain)
            layer.crossattention.output.dense.weight.mul_(gain)


def build_report(target: Path, section: str, options: dict[str, Any], full_size: bool) -> None:
    from transformers import GenerationConfig, ViTImageProcessor

    model, tokens = report_model(section, options, full_size)
    tokenizer = _save_tokenizer(target, tokens, do_basic_tokenize=False)
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.sep_token_id) == (0, 1, 2)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=0, bos_token_id=0, eos_token_id=2, pad_token_id=1
    )
    model.save_pretrained(target)
    side = int(model.config.encoder.image_size)
    ViTImageProcessor(
        size={"height": side, "width": side}, image_mean=IMAGE_MEAN, image_std=IMAGE_STD, resample=2
    ).save_pretrained(target)


def build_labels(target: Path, key: str, options: dict[str, Any], full_size: bool) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    from workers.srrg.label_maps import label_names

    names = label_names(key)
    size = int(options.get("full_vocab_size", 30522)) if full_size else None
    tokens = _vocab(SPECIALS_BERT, SRR_WORDS, size, wordpiece=True)
    tokenizer = _save_tokenizer(target, tokens, do_lower_case=True)
    hidden = int(options.get("hidden_size", 32))
    base = (
        {}
        if full_size
        else {
            "hidden_size": hidden,
            "num_hidden_layers": int(options.get("layers", 1)),
            "num_attention_heads": 2,
            "intermediate_size": 2 * hidden + 5,
        }
    )
    config = BertConfig(
        vocab_size=len(tokens),
        num_labels=len(names),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        **base,
    )
    model = BertForSequenceClassification(config)
    if not full_size:
        _spread_logits(model, tokenizer, float(options.get("classifier_std", 3.0)))
    model.save_pretrained(target)


PROBES = [
    "no acute cardiopulmonary process.",
    "small left pleural effusion.",
    "stable cardiomegaly.",
    "moderate pulmonary edema.",
    "right lower lobe consolidation.",
    "tube tip in place.",
    "no pneumothorax.",
    "lungs are clear.",
    "mild bilateral atelectasis.",
    "severe fracture.",
]


def _spread_logits(model: Any, tokenizer: Any, std: float) -> None:
    """Centre and scale the random classifier on probe sentences: the labels of a random tiny
    BERT then differ from sentence to sentence, with logits of about +-std, never borderline."""
    import torch

    model.eval()
    with torch.no_grad():
        pooled = model.bert(**tokenizer(PROBES, padding=True, return_tensors="pt")).pooler_output
        weight = model.classifier.weight
        spread = (pooled - pooled.mean(0)) @ weight.T
        scale = std / spread.std(0).clamp_min(1e-6)
        weight.mul_(scale[:, None])
        model.classifier.bias.copy_(-(pooled.mean(0) @ weight.T))


def spec_for(manifest: Manifest) -> tuple[str, str]:
    """(kind, section or label set) of a manifest: adapter options, else its source repo id."""
    from workers.srrg.label_maps import LABEL_SETS, label_set_for_repo
    from workers.srrg.model import REPORT_MODELS
    from workers.srrg.remote import REMOTE_MODELS

    options, repo = manifest.adapter, manifest.source.repo_id if manifest.source else ""
    kind = options.get("kind") or (
        "report"
        if repo in REPORT_MODELS
        else "remote_report"
        if repo in REMOTE_MODELS
        else "labels"
    )
    if kind == "labels":
        key = options.get("label_set") or label_set_for_repo(repo).key
        return kind, LABEL_SETS[key].key
    section = options.get("section") or REPORT_MODELS.get(repo) or REMOTE_MODELS.get(repo, "")
    return kind, section


def build(manifest: Manifest, target: Path, full_size: bool = False, seed: int = 0) -> None:
    import torch

    kind, detail = spec_for(manifest)
    torch.manual_seed(seed)
    if kind == "report":
        build_report(target, detail, manifest.tiny, full_size)
    elif kind == "labels":
        build_labels(target, detail, manifest.tiny, full_size)
    else:
        raise WeightsUnavailable(
            f"{manifest.name}: no tiny build of CheXagent-2-3b-srrg exists: its model classes are "
            "remote code that is not published outside the Hub repository (configuration_"
            "chexagent.py could not be found anywhere) and it pins transformers==4.40.0"
        )
