"""The report path end to end on tiny models: image bytes -> pixels -> generate -> structure."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import InvalidInput, WeightsUnavailable
from workers.srrg.model import Generation, load_report_model
from workers.srrg.structure import parse
from workers.srrg.xray import decode_xray


def xray_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (160, 128), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("section", ["findings", "impression"])
def test_tiny_model_generates_and_is_parsed(srrg_tiny: Callable[..., Path], section: str) -> None:
    report_model = load_report_model(srrg_tiny(section), section)
    images = [decode_xray(xray_png(seed)) for seed in (1, 2)]
    pixels = report_model.pixel_values(images)
    assert tuple(pixels.shape) == (2, 3, 64, 64)  # the tiny processor's size
    texts = report_model.generate(images, Generation(num_beams=2, max_length=24))
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    assert not any(token in t for t in texts for token in ("[CLS]", "[SEP]", "[PAD]"))
    for text in texts:
        structured = parse(text, section).to_dict()
        assert structured["kind"] == section
        assert structured["structure_valid"] is (not structured["problems"])
        assert not structured["structure_valid"]  # random weights do not write the format


def test_generation_settings_reach_generate(srrg_tiny: Callable[..., Path]) -> None:
    report_model = load_report_model(srrg_tiny("findings"), "findings")
    config = report_model.generation_config(Generation())
    assert (config.num_beams, config.max_length) == (2, 128)
    assert config.decoder_start_token_id == report_model.tokenizer.cls_token_id == 0
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (0, 2, 1)
    pixels = report_model.pixel_values([decode_xray(xray_png(3))])
    ids = report_model.generate_ids(pixels, Generation(num_beams=1, max_length=9))
    assert ids.shape[1] <= 9 and int(ids[0, 0]) == 0  # starts with [CLS]
    single = report_model.generate([decode_xray(xray_png(3))], Generation(max_length=20))
    batch = report_model.generate(
        [decode_xray(xray_png(3)), decode_xray(xray_png(4))], Generation(max_length=20)
    )
    assert batch[0] == single[0]


def test_vit_encoder_variant(srrg_tiny: Callable[..., Path]) -> None:
    report_model = load_report_model(srrg_tiny("findings", encoder="vit"), "findings")
    assert report_model.model.config.encoder.model_type == "vit"
    assert report_model.generate([decode_xray(xray_png(5))], Generation(max_length=12))


@pytest.mark.parametrize(("beams", "length"), [(0, 128), (9, 128), (2, 1), (2, 10_000)])
def test_generation_limits(beams: int, length: int) -> None:
    with pytest.raises(InvalidInput):
        Generation(num_beams=beams, max_length=length)


def test_missing_or_foreign_files_are_refused(
    srrg_tiny: Callable[..., Path], tmp_path: Path
) -> None:
    with pytest.raises(WeightsUnavailable, match="missing"):
        load_report_model(tmp_path, "findings")
    labels = srrg_tiny("leaves")
    for name in ("preprocessor_config.json", "vocab.txt"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "config.json").write_text((labels / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(WeightsUnavailable, match="not the vision-encoder-decoder"):
        load_report_model(tmp_path, "findings")
    assert json.loads((labels / "config.json").read_text())["model_type"] == "bert"


@pytest.mark.parametrize(("section", "published"), [("findings", 55.1e6), ("impression", 56.6e6)])
def test_full_size_architecture_has_the_published_size(section: str, published: float) -> None:
    import torch

    from workers.srrg.tiny import report_model

    with torch.device("meta"):
        model, tokens = report_model(section, {}, full_size=True)
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - published) < 0.05e6
    assert (
        model.config.encoder.model_type == "swinv2" and model.config.decoder.num_hidden_layers == 2
    )
    assert len(tokens) == model.config.decoder.vocab_size
