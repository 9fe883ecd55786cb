"""Merlin report generation on a tiny Llama: the organ-system prompts, greedy decoding, the
'###' split, EOS and stop sequences, LoRA folding and refusals of wrong files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from core.errors import WeightsUnavailable
from tests.merlin_support import build_store
from workers.merlin import compute
from workers.merlin.prompts import ORGAN_SYSTEMS, report_prompt
from workers.merlin.report_model import LLM_DIR, REPORT_CHECKPOINTS, fold_lora, load_report


@pytest.fixture(scope="module")
def volumes() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return [torch.rand((1, 64, 64, 32), generator=generator) for _ in range(2)]


def test_one_greedy_report_per_organ_system(merlin_stores: dict[str, Path], volumes) -> None:
    model = load_report(merlin_stores["report"])
    tokens = model.image_tokens(torch.stack(volumes))
    assert tokens.shape == (2, 2 * 2 * 2, model.decoder.config.hidden_size)  # 32/16 x 64/32 x 64/32
    reports = compute.generate_reports(
        model, [volumes[0], volumes[1], volumes[0]], max_new_tokens=6
    )
    assert len(reports) == 3 and list(reports[0]) == list(ORGAN_SYSTEMS)
    assert all(isinstance(text, str) and "###" not in text for text in reports[0].values())
    assert reports[0] == reports[2]  # greedy: same volume, same report, whatever the batch
    assert report_prompt("liver") == "Generate a radiology report for liver###\n"


def chain(model, successors: dict[str, str]) -> None:
    """Weights under which the next token depends only on the current one: `a` -> `b`."""
    decoder, tok = model.decoder, model.tokenizer
    hidden = decoder.config.hidden_size
    with torch.no_grad():
        for layer in decoder.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        decoder.model.embed_tokens.weight.copy_(torch.eye(len(tok), hidden))
        decoder.model.norm.weight.fill_(1.0)
        decoder.lm_head.weight.zero_()
        for a, b in successors.items():
            decoder.lm_head.weight[tok.convert_tokens_to_ids(b), tok.convert_tokens_to_ids(a)] = 1.0


@pytest.fixture()
def fresh_model(tmp_path: Path):
    return load_report(build_store(tmp_path, "report", llm_hidden_size=64))


def test_text_before_the_separator_is_the_report(fresh_model, volumes) -> None:
    chain(fresh_model, {"###": "normal", "normal": ".", ".": "###"})  # loops until max tokens
    reports = compute.generate_reports(
        fresh_model, volumes[:1], ["liver", "spleen"], max_new_tokens=9
    )
    assert reports == [{"liver": "normal .", "spleen": "normal ."}]


def test_eos_and_stop_sequence_end_a_report(fresh_model, volumes) -> None:
    chain(
        fresh_model, {"###": "mild", "mild": "atelectasis", "atelectasis": "</s>", "</s>": "patent"}
    )
    assert compute.generate_reports(fresh_model, volumes[:1], ["bowel"], max_new_tokens=8) == [
        {"bowel": "mild atelectasis"}
    ]
    chain(fresh_model, {"###": "small", "small": "cyst", "cyst": "small"})
    tok = fresh_model.tokenizer
    stop = tok.convert_tokens_to_ids(["small", "cyst"])
    reports = compute.generate_reports(
        fresh_model, volumes, ["kidneys"], max_new_tokens=8, stop=stop
    )
    assert reports == [{"kidneys": "small cyst"}] * 2
    longer = compute.generate_reports(fresh_model, volumes[:1], ["kidneys"], max_new_tokens=5)
    assert longer == [{"kidneys": "small cyst small cyst small"}]


def test_lora_is_folded_in_both_peft_layouts() -> None:
    torch.manual_seed(0)
    w, a, b = torch.randn(8, 6), torch.randn(4, 6), torch.randn(8, 4)
    expected = w + (16 / 4) * (b @ a)
    new = fold_lora({"q.base_layer.weight": w, "q.lora_A.default.weight": a,
                     "q.lora_B.default.weight": b, "k.weight": w})  # fmt: skip
    old = fold_lora({"q.weight": w, "q.lora_A.default.weight": a, "q.lora_B.default.weight": b})
    assert torch.allclose(new["q.weight"], expected) and torch.equal(new["k.weight"], w)
    assert torch.allclose(old["q.weight"], expected) and set(new) == {"q.weight", "k.weight"}
    with pytest.raises(WeightsUnavailable, match="incomplete"):
        fold_lora({"q.weight": w, "q.lora_A.default.weight": a})


def test_wrong_or_missing_files(merlin_stores: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable, match="missing"):
        load_report(merlin_stores["report"], variant="stage1_stage2")
    copy = tmp_path / "copy"
    shutil.copytree(merlin_stores["report"], copy)
    shutil.rmtree(copy / LLM_DIR)
    with pytest.raises(WeightsUnavailable, match="RadLLaMA-7b"):
        load_report(copy)
    clip_file = next(merlin_stores["clip"].glob("*.pt"))
    shutil.copytree(merlin_stores["report"] / LLM_DIR, copy / LLM_DIR)
    shutil.copy(clip_file, copy / REPORT_CHECKPOINTS["mtl"])
    with pytest.raises(WeightsUnavailable, match="another model"):
        load_report(copy)
