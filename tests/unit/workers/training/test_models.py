"""The DenseNet classifiers, the latent stem rule, initial weights, and the LR schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import InvalidInput
from workers.training.inputs import latent_stem
from workers.training.loop import WarmupCosine, masked_bce
from workers.training.models import build, count_parameters, load_initial
from workers.training.params import ModelOptions

TINY = ModelOptions(arch="densenet", init_features=8, growth_rate=4, block_config=[2, 2])


def test_densenet121_is_monai_densenet121() -> None:
    from monai.networks.nets import DenseNet121

    torch.manual_seed(0)
    model = build(ModelOptions(), 14)
    assert isinstance(model, DenseNet121)
    assert model.features.conv0.in_channels == 1
    assert model.class_layers.out.out_features == 14
    assert 6_900_000 < count_parameters(model) < 7_000_000  # DenseNet-121, 1 channel, 14 labels


@pytest.mark.parametrize(("side", "expected"), [(64, "full"), (56, "no-pool"), (28, "none")])
def test_latent_stem_for_densenet121(side: int, expected: str) -> None:
    assert latent_stem(ModelOptions(), side) == expected


def test_latent_stems_run_and_too_small_is_refused() -> None:
    for side, stem in ((16, "full"), (8, "no-pool"), (4, "none")):
        assert latent_stem(TINY, side) == stem
        model = build(TINY, 3, in_channels=4, stem=stem)
        assert model(torch.zeros(2, 4, side, side)).shape == (2, 3)
    with pytest.raises(InvalidInput, match="too small"):
        latent_stem(TINY, 3)


def test_initial_weights_skip_a_different_head(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = build(TINY, 5)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pt")
    torch.manual_seed(2)
    target = build(TINY, 3)
    info = load_initial(target, str(tmp_path / "w.pt"))
    assert "class_layers.out.weight" in info["skipped"]
    assert torch.equal(target.features.conv0.weight, source.features.conv0.weight)
    with pytest.raises(InvalidInput, match="not found"):
        load_initial(target, str(tmp_path / "missing.pt"))


def test_warmup_then_cosine() -> None:
    f = WarmupCosine(total=10, warmup=2)
    assert [round(f(s), 4) for s in range(11)] == [
        0.5,
        1.0,
        1.0,
        0.9619,
        0.8536,
        0.6913,
        0.5,
        0.3087,
        0.1464,
        0.0381,
        0.0,
    ]


def test_masked_bce_leaves_out_nan() -> None:
    logits = torch.tensor([[0.0, 5.0], [1.0, -1.0]])
    labels = torch.tensor([[1.0, float("nan")], [0.0, 0.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([0.0, 1.0, -1.0]), torch.tensor([1.0, 0.0, 0.0])
    )
    assert masked_bce(logits, labels).item() == pytest.approx(expected.item())


def test_direct_loop_throughput_latent_vs_image() -> None:
    from workers.training.throughput import latent_vs_image

    result = latent_vs_image(
        TINY,
        image_side=32,
        factor=4,
        latent_channels=1,
        n_labels=3,
        batch_size=4,
        steps=2,
        warmup=1,
        device="cpu",
    )
    assert result["latent"]["input_shape"] == [1, 8, 8] and result["latent"]["stem"] == "no-pool"
    assert result["image"]["input_shape"] == [1, 32, 32]
    assert result["latent"]["images_per_s"] > 0 and result["speedup"] > 0
