"""MedVAE model, converter and sliding window on tiny random models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import WeightsUnavailable
from tests.medvae_support import ALL, tiny
from workers.medvae.autoencoder import MedVAE, inject_lora
from workers.medvae.compute import Window, encode_volume
from workers.medvae.model import VARIANTS, load_variant, load_weights, read_state_dict


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("medvae-store")
    for name in ALL:
        tiny(root, name)
    return root


def variant_of(name: str):
    return VARIANTS[name.replace("-", "_")]


@pytest.mark.parametrize("name", ALL)
def test_shapes_per_variant(store: Path, name: str) -> None:
    variant = variant_of(name)
    model, report = load_variant(store / name, variant)
    size = (64, 64) if variant.dims == 2 else (32, 32, 32)
    x = torch.randn(1, model.in_channels, *size)
    with torch.no_grad():
        z = model.encode(x)
        image = model.decode(z)
    assert tuple(z.shape[1:]) == (variant.latent_channels, *(n // variant.factor for n in size))
    assert tuple(image.shape) == tuple(x.shape)
    assert model.latent_shape(size) == tuple(z.shape[1:])
    assert report["stage2"] and report["lora_merged"] == (
        36 if "4-3" in name else 42 if "8-4" in name else 0
    )


@pytest.mark.parametrize("name", ["medvae-4-3-2d", "medvae-8-4-2d"])
def test_lora_merge_equals_unmerged_branch(store: Path, name: str) -> None:
    variant = variant_of(name)
    merged, _ = load_variant(store / name, variant, merge_lora=True)
    branched, _ = load_variant(store / name, variant, merge_lora=False)
    assert any("lora_down" in k for k in branched.state_dict())
    assert not any("lora_down" in k for k in merged.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = merged.encode(x), branched.encode(x)
        plain = MedVAE(2, merged.ddconfig, merged.embed_dim)  # the LoRA branches really matter:
        state = {k: v for k, v in branched.state_dict().items() if "lora_" not in k}
        plain.load_state_dict({k.replace(".conv.", "."): v for k, v in state.items()}, strict=False)
        c = plain.eval().encode(x)
    assert torch.allclose(a, b, atol=1e-5)
    assert (a - c).abs().max() > 1e-3


def test_checkpoint_extra_keys_ignored_missing_keys_refused(store: Path, tmp_path: Path) -> None:
    variant = variant_of("medvae-4-1-2d")
    state = read_state_dict(store / "medvae-4-1-2d/model_weights" / variant.ckpt, False)
    model, _ = load_variant(store / "medvae-4-1-2d", variant)
    extra = {**state, "loss.discriminator.main.0.weight": torch.zeros(3)}
    fresh = MedVAE(2, model.ddconfig, model.embed_dim)
    report = load_weights(fresh, extra, lora=False)
    assert report["ignored"] == 1
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh.encode(x), model.encode(x))
    broken = {k: v for k, v in state.items() if not k.startswith("decoder.conv_out")}
    with pytest.raises(WeightsUnavailable, match="lacks"):
        load_weights(MedVAE(2, model.ddconfig, model.embed_dim), broken, lora=False)
    wrong = {**state, "quant_conv.weight": torch.zeros(5, 5, 1, 1)}
    with pytest.raises(WeightsUnavailable, match="do not belong together"):
        load_weights(MedVAE(2, model.ddconfig, model.embed_dim), wrong, lora=False)


def test_2d_kernels_inflate_into_3d_middle_slice(store: Path) -> None:
    variant = variant_of("medvae-4-1-2d")
    state = read_state_dict(store / "medvae-4-1-2d/model_weights" / variant.ckpt, False)
    model2d, _ = load_variant(store / "medvae-4-1-2d", variant)
    model3d = MedVAE(3, model2d.ddconfig, model2d.embed_dim)
    report = load_weights(model3d, state, lora=False)
    assert report["inflated"] > 0
    w3 = model3d.encoder.conv_in.weight
    assert torch.equal(w3[..., 1], model2d.encoder.conv_in.weight)
    assert w3[..., 0].abs().sum() == 0 and w3[..., 2].abs().sum() == 0


def test_lora_checkpoint_keys_match_released_names(store: Path) -> None:
    variant = variant_of("medvae-4-3-2d")
    state = read_state_dict(store / "medvae-4-3-2d/model_weights" / variant.ckpt, False)
    assert "encoder.down.0.block.0.conv1.conv.weight" in state
    assert "encoder.down.0.block.0.conv1.lora_down.weight" in state
    assert "encoder.mid.attn_1.q.lora_up.weight" in state
    assert "encoder.conv_in.weight" in state  # conv_in is outside the LoRA targets
    probe = MedVAE(2, {**load_variant(store / "medvae-4-3-2d", variant)[0].ddconfig}, 3)
    assert inject_lora(probe) == 36


@pytest.mark.parametrize("name", ["medvae-4-1-3d", "medvae-8-1-3d"])
def test_sliding_window_equals_full_volume_when_it_fits(store: Path, name: str) -> None:
    model, _ = load_variant(store / name, variant_of(name))
    volume = torch.randn(1, 32, 16, 48)
    with torch.no_grad():
        full = model.encode(volume[None])[0].numpy()
    windowed = encode_volume(model, volume, Window(roi=64), None, "s1")
    np.testing.assert_allclose(windowed, full, atol=1e-5)
    tiled = encode_volume(model, volume, Window(roi=16), None, "s1")
    assert tiled.shape == full.shape  # windows of 16 voxels blend into the same latent grid
