"""BERTScore from a local encoder folder, with bert-score 0.3.13's numerics (the scorer RadEval
2.2.1 vendors in `radeval/metrics/bertscore/_vendor`; RadEval's `bertscore` key is
distilbert-base-uncased, layer 5, rescaled with that model's baseline, idf off).

Neither maintained package reproduces it here: bert-score 0.3.13 fails on transformers 5
(`encode_plus` and the slow tokenizers are gone), and torchmetrics 1.9 drops [CLS]/[SEP] from
matching and gives other values on batches. The algorithm, as bert-score runs it: encode each
sentence with special tokens (truncated to `model_max_length`), keep the first `num_layers`
encoder layers, L2-normalise token embeddings, greedy-match by cosine similarity (padding counts
as similarity 0), weight tokens uniformly with [CLS]/[SEP] at weight 0, F = 2PR/(P+R), optional
rescaling (x - b) / (1 - b) with row `num_layers` of a baseline TSV. Pairs are scored in chunks
of `batch_size`, as RadEval does. Needs torch and transformers (imported on first use).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import InvalidInput, WeightsUnavailable
from workers.benchmarks.lexical import MetricResult

RADEVAL_MODEL = "distilbert-base-uncased"
RADEVAL_LAYERS = 5


def _truncate(model: Any, num_layers: int) -> Any:
    import torch

    for owner, name in ((getattr(model, "encoder", None), "layer"),
                        (getattr(model, "transformer", None), "layer")):  # fmt: skip
        layers = getattr(owner, name, None) if owner is not None else None
        if isinstance(layers, torch.nn.ModuleList):
            if not 0 <= num_layers <= len(layers):
                raise InvalidInput(f"num_layers must be 0-{len(layers)} for this model")
            setattr(owner, name, torch.nn.ModuleList(list(layers[:num_layers])))
            return model
    raise InvalidInput(f"cannot keep the first layers of a {type(model).__name__}; use a BERT-like")


def load_encoder(model_dir: str | Path, num_layers: int) -> tuple[Any, Any]:
    """(tokenizer, encoder cut to `num_layers` layers) from a local folder, offline."""
    from transformers import AutoModel, AutoTokenizer

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise WeightsUnavailable(f"{folder} has no config.json; give a BERT-like model folder")
    lowered = folder.name.lower()
    kwargs = {"add_prefix_space": True} if any(m in lowered for m in ("roberta", "gpt2")) else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    if hasattr(model, "decoder") and hasattr(model, "encoder"):
        model = model.encoder
    return tokenizer, _truncate(model, num_layers)


def _encode(tokenizer: Any, sentence: str) -> list[int]:
    sentence = sentence.strip()
    if not sentence:
        return tokenizer.encode("", add_special_tokens=True)
    return tokenizer.encode(
        sentence, add_special_tokens=True, max_length=tokenizer.model_max_length, truncation=True
    )


def _embed(sentences: list[str], tokenizer: Any, model: Any, batch_size: int) -> dict:
    import torch

    weight = {tokenizer.sep_token_id: 0.0, tokenizer.cls_token_id: 0.0}
    out = {}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(sentences), batch_size):
        batch = sentences[start : start + batch_size]
        ids = [_encode(tokenizer, s) for s in batch]
        longest = max(len(i) for i in ids)
        x = torch.full((len(ids), longest), pad, dtype=torch.long)
        mask = torch.zeros(len(ids), longest, dtype=torch.long)
        for row, tokens in enumerate(ids):
            x[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[row, : len(tokens)] = 1
        with torch.no_grad():
            emb = model(x, attention_mask=mask)[0]
        for row, (sentence, tokens) in enumerate(zip(batch, ids, strict=True)):
            idf = torch.tensor([weight.get(t, 1.0) for t in tokens], dtype=torch.float)
            out[sentence] = (emb[row, : len(tokens)], idf)
    return out


def _pad(sentences: Sequence[str], stats: dict) -> tuple[Any, Any, Any]:
    import torch
    from torch.nn.utils.rnn import pad_sequence

    emb, idf = zip(*(stats[s] for s in sentences), strict=True)
    lens = torch.tensor([e.size(0) for e in emb])
    mask = torch.arange(int(lens.max())).expand(len(lens), -1) < lens.unsqueeze(1)
    return pad_sequence(emb, batch_first=True, padding_value=2.0), mask, pad_sequence(idf, True)


def _greedy(ref: tuple, hyp: tuple) -> tuple[Any, Any, Any]:
    import torch

    (r_emb, r_mask, r_idf), (h_emb, h_mask, h_idf) = ref, hyp
    r_emb = r_emb / torch.norm(r_emb, dim=-1).unsqueeze(-1)
    h_emb = h_emb / torch.norm(h_emb, dim=-1).unsqueeze(-1)
    sim = torch.bmm(h_emb, r_emb.transpose(1, 2))
    sim = sim * torch.bmm(h_mask.unsqueeze(2).float(), r_mask.unsqueeze(1).float())
    precision = (sim.max(dim=2)[0] * (h_idf / h_idf.sum(dim=1, keepdim=True))).sum(dim=1)
    recall = (sim.max(dim=1)[0] * (r_idf / r_idf.sum(dim=1, keepdim=True))).sum(dim=1)
    f1 = 2 * precision * recall / (precision + recall)
    for empty in (h_mask.sum(dim=1).eq(2), r_mask.sum(dim=1).eq(2)):
        precision = precision.masked_fill(empty, 0.0)
        recall = recall.masked_fill(empty, 0.0)
    return precision, recall, f1.masked_fill(torch.isnan(f1), 0.0)


def read_baseline(path: str | Path, num_layers: int) -> tuple[float, float, float]:
    """(P, R, F) baseline of one layer from a bert-score TSV (`LAYER,P,R,F` rows)."""
    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not 0 <= num_layers < len(rows):
        raise InvalidInput(f"{path} has no baseline row for layer {num_layers}")
    row = rows[num_layers]
    return float(row["P"]), float(row["R"]), float(row["F"])


def bertscore(
    refs: Sequence[str],
    hyps: Sequence[str],
    model_dir: str | Path,
    num_layers: int,
    baseline_path: str | Path | None = None,
    batch_size: int = 64,
    encoder: tuple[Any, Any] | None = None,
) -> MetricResult:
    """BERTScore F1 per pair and its mean; P and R per pair in `details`."""
    import torch

    if len(refs) != len(hyps):
        raise InvalidInput(f"{len(refs)} references but {len(hyps)} hypotheses; give one each")
    tokenizer, model = encoder or load_encoder(model_dir, num_layers)
    scores = []
    for start in range(0, len(refs), batch_size):
        r, h = list(refs[start : start + batch_size]), list(hyps[start : start + batch_size])
        unique = sorted(set(r + h), key=lambda s: len(s.split(" ")), reverse=True)
        stats = _embed(unique, tokenizer, model, batch_size)
        with torch.no_grad():
            scores.append(torch.stack(_greedy(_pad(r, stats), _pad(h, stats)), dim=-1))
    table = torch.cat(scores) if scores else torch.zeros(0, 3)
    if baseline_path is not None:
        base = torch.tensor(read_baseline(baseline_path, num_layers))
        table = (table - base) / (1 - base)
    p, r_, f = (table[:, i].tolist() for i in range(3))
    details = {"precision": p, "recall": r_, "model": str(model_dir), "num_layers": num_layers,
               "rescaled": baseline_path is not None}  # fmt: skip
    return MetricResult(float(torch.tensor(f).mean()) if f else 0.0, f, details)


def bertscore_metric(model_dir: str | Path, num_layers: int = RADEVAL_LAYERS, **options: Any):
    """A `report_metrics` metric; the encoder is loaded once, on first use."""
    cache: dict[str, tuple[Any, Any]] = {}

    def metric(refs: Sequence[str], hyps: Sequence[str]) -> MetricResult:
        if "encoder" not in cache:
            cache["encoder"] = load_encoder(model_dir, num_layers)
        return bertscore(refs, hyps, model_dir, num_layers, encoder=cache["encoder"], **options)

    return metric
