"""Merlin models from the store folder: layout, refusals, and the numerics of compute."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import WeightsUnavailable
from workers.merlin import compute
from workers.merlin.model import (
    CLIP_CHECKPOINT,
    FIVE_YEAR_CHECKPOINT,
    TEXT_DIR,
    load_clip,
    load_five_year,
    sanitize_report,
)
from workers.merlin.prompts import FIVE_YEAR_DISEASES, Finding, builtin_findings, phenotypes


@pytest.fixture(scope="module")
def clip(merlin_stores: dict[str, Path]):
    return load_clip(merlin_stores["clip"])


@pytest.fixture(scope="module")
def volumes() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return [torch.rand((1, 64, 64, 32), generator=generator) for _ in range(3)]


def test_store_layout_is_the_released_one(merlin_stores: dict[str, Path]) -> None:
    clip_files = {
        p.relative_to(merlin_stores["clip"]).as_posix() for p in merlin_stores["clip"].rglob("*")
    }
    assert CLIP_CHECKPOINT in clip_files and f"{TEXT_DIR}/config.json" in clip_files
    assert {p.name for p in merlin_stores["five_year"].iterdir()} == {FIVE_YEAR_CHECKPOINT}
    state = torch.load(merlin_stores["clip"] / CLIP_CHECKPOINT, weights_only=True)
    assert state["encode_image.i3_resnet.layer4.0.conv3.weight"].shape[0] == 2048
    assert state["encode_image.i3_resnet.classifier.weight"].shape[:2] == (1692, 2048)
    assert state["encode_image.i3_resnet.conv1.weight"].shape[2:] == (3, 7, 7)
    assert "encode_text.linear_layer.weight" in state and "logit_scale" in state


def test_image_outputs_and_batch_invariance(clip, volumes) -> None:
    batch = compute.encode_images(clip, volumes)
    assert batch.features.shape == (3, 2048) and batch.embedding.shape == (3, 512)
    assert batch.phenotype_logits.shape == (3, 1692)
    assert np.allclose(np.linalg.norm(batch.embedding, axis=1), 1.0, atol=1e-5)
    single = compute.encode_images(clip, volumes[1:2])
    assert np.abs(single.features[0] - batch.features[1]).max() < 1e-4
    chunked = compute.encode_images(clip, volumes, micro_batch=2)
    assert np.abs(chunked.phenotype_logits - batch.phenotype_logits).max() < 1e-4
    assert np.abs(batch.embedding[0] - batch.embedding[2]).max() > 1e-3  # inputs matter


def test_phenotypes_are_named_in_output_order(clip, volumes) -> None:
    table = phenotypes()
    assert len(table) == 1692 and (table[0].code, table[0].name) == ("8", "Intestinal infection")
    probs = compute.sigmoid(compute.encode_images(clip, volumes[:1]).phenotype_logits)[0]
    top = compute.top_phenotypes(probs, 3)
    best = int(np.argmax(probs))
    assert top[0] == {
        "code": table[best].code,
        "name": table[best].name,
        "probability": float(probs[best]),
    }
    assert top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]


def test_five_year(merlin_stores: dict[str, Path], volumes) -> None:
    model = load_five_year(merlin_stores["five_year"])
    probs = compute.five_year(model, volumes)
    assert probs.shape == (3, 6) and ((probs > 0) & (probs < 1)).all()
    named = compute.five_year_named(probs[0])
    assert [d["code"] for d in named] == ["CVD", "IHD", "HTN", "DM", "CKD", "CLD"]
    assert len(FIVE_YEAR_DISEASES) == 6


def test_text_preprocessing_and_embedding(clip) -> None:
    assert (
        sanitize_report("Liver: Normal.  No free-fluid!!") == "liver : normal . no free - fluid !!"
    )
    texts = ["Liver: normal.", "Mild bibasilar atelectasis, small hiatal hernia."]
    batch = compute.embed_texts(clip, texts)
    assert batch.shape == (2, 512) and np.allclose(np.linalg.norm(batch, axis=1), 1, atol=1e-5)
    alone = compute.embed_texts(clip, texts[1:])
    assert np.abs(alone[0] - batch[1]).max() < 1e-4  # padding does not change the CLS state
    same = compute.embed_texts(clip, ["LIVER : NORMAL ."])
    assert np.abs(same[0] - batch[0]).max() < 1e-5  # case and spacing are normalised away


def test_zero_shot_scores_mean_similarities(clip) -> None:
    findings = builtin_findings()
    assert len(findings) == 30 and findings[0].name == "submucosal_edema"
    user = Finding("kidney_mass", ("renal mass",), ("no renal mass", "kidneys : normal"))
    chosen = [findings[21], user]  # ascites and a user finding
    bank = compute.prompt_bank(clip, chosen)
    positive, negative = bank["ascites"]
    assert positive.shape == (len(chosen[0].positive), 512) and negative.shape[0] == 5
    like_positive = positive.mean(0) / np.linalg.norm(positive.mean(0))
    like_negative = negative.mean(0) / np.linalg.norm(negative.mean(0))
    scores = compute.zero_shot(np.stack([like_positive, like_negative]), bank)
    first = scores[0][0]
    assert first.name == "ascites" and first.present and not scores[1][0].present
    assert np.isclose(
        first.positive_similarity, float((positive @ like_positive).mean()), atol=1e-6
    )
    assert np.isclose(first.margin, first.positive_similarity - first.negative_similarity)
    assert scores[0][1].name == "kidney_mass"


def test_missing_or_wrong_files_are_weights_unavailable(
    merlin_stores: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(WeightsUnavailable, match="missing"):
        load_clip(tmp_path)
    shutil.copytree(merlin_stores["clip"], tmp_path / "no-text")
    shutil.rmtree(tmp_path / "no-text" / TEXT_DIR)
    with pytest.raises(WeightsUnavailable, match="Clinical-Longformer"):
        load_clip(tmp_path / "no-text")
    assert load_clip(tmp_path / "no-text", with_text=False).encode_text is None
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(merlin_stores["five_year"] / FIVE_YEAR_CHECKPOINT, wrong / CLIP_CHECKPOINT)
    with pytest.raises(WeightsUnavailable, match="no I3D ResNet"):
        load_clip(wrong, with_text=False)
    shutil.copy(merlin_stores["clip"] / CLIP_CHECKPOINT, wrong / FIVE_YEAR_CHECKPOINT)
    with pytest.raises(WeightsUnavailable, match="no I3D ResNet"):
        load_five_year(wrong)
    (wrong / FIVE_YEAR_CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="readable"):
        load_five_year(wrong)
    state = torch.load(merlin_stores["clip"] / CLIP_CHECKPOINT, weights_only=True)
    del state["encode_image.i3_resnet.layer2.0.bn2.running_var"]
    torch.save(state, wrong / CLIP_CHECKPOINT)
    with pytest.raises(WeightsUnavailable, match="1 tensors missing"):
        load_clip(wrong, with_text=False)
