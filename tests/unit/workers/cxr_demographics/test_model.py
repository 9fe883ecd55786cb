"""Loading the released file formats: torchxrayvision's own constructors read the files our tiny
builds write and give the same outputs as the served models; imported (pulled) weights must
be ResNet-34s; missing and pickled files are refused with what to do."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.errors import WeightsUnavailable
from model_store.store import ModelStore
from workers.cxr_demographics.compute import predict, resize
from workers.cxr_demographics.contract import Options
from workers.cxr_demographics.model import load_model, stage_depths
from workers.runtime.registry import adapter_for, build_tiny, tiny_builder

XRV_FILES = "~/.torchxrayvision/models_data"


def batch(count: int = 2) -> list[torch.Tensor]:
    rng = np.random.default_rng(5)
    return [resize(rng.random((1, 90, 90)).astype(np.float32)) for _ in range(count)]


def options(store: ModelStore, name: str) -> Options:
    return Options.model_validate(store.manifest(name).adapter)


@pytest.mark.parametrize("name", ["cxr-race", "cxr-age"])
def test_torchxrayvision_loads_our_files_and_agrees(
    name: str, cxr_store: ModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package's constructor (which downloads only when the file is missing) reads our
    file from its cache folder (race: a real-size ResNet-34, which is all RaceModel builds;
    age: TorchScript, any size); its forward equals the served model's."""
    from torchxrayvision.baseline_models.emory_hiti import RaceModel
    from torchxrayvision.baseline_models.riken import AgeModel

    resolved = build_tiny(cxr_store, name, force=True, full_size=name == "cxr-race")
    opts = options(cxr_store, name)
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = Path(XRV_FILES.replace("~", str(tmp_path)))
    cache.mkdir(parents=True)
    (cache / opts.weights_file).write_bytes((resolved.path / opts.weights_file).read_bytes())
    reference = (RaceModel if name == "cxr-race" else AgeModel)().eval()
    ours = load_model(resolved.path, opts, pulled=False, device="cpu")
    images = batch()
    served = predict(ours, opts.kind, images, "cpu")
    from workers.cxr_demographics.compute import scale

    with torch.no_grad():
        x = scale(torch.stack(images), -1024.0, 1024.0)[:, :1]
        want = reference(x)
    want = torch.softmax(want, 1) if name == "cxr-race" else want.reshape(-1)
    assert np.allclose(served, want.numpy(), atol=1e-5)
    if name == "cxr-race":
        assert list(reference.targets) == ["Asian", "Black", "White"]


def test_full_size_sex_model_imports_and_matches_the_release_architecture(
    cxr_store: ModelStore, tmp_path: Path
) -> None:
    """ResNet-34 built as RoentGen-v2's `SexModelResNet` (torchvision resnet34, fc 512->2),
    loaded from the Lightning checkpoint's `state_dict`, equals the served model."""
    from torchvision.models import resnet34

    manifest = cxr_store.manifest("cxr-sex")
    opts = options(cxr_store, "cxr-sex")
    tiny_builder("cxr_demographics")(manifest, tmp_path, full_size=True, seed=3)
    checkpoint = tmp_path / opts.weights_file
    resolved = cxr_store.import_files("cxr-sex", [checkpoint])
    assert resolved.weights == "pulled" and resolved.info["revision"] == "imported"
    reference = resnet34(weights=None)
    reference.fc = torch.nn.Linear(512, 2)
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    reference.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    adapter = adapter_for(manifest)
    adapter.load(cxr_store.resolve("cxr-sex"), "cpu")
    images = batch()
    with torch.no_grad():
        from workers.cxr_demographics.compute import scale

        want = torch.softmax(reference.eval()(scale(torch.stack(images), 0.0, 255.0)), 1)
    assert np.allclose(adapter.predict([_item(i) for i in images]), want.numpy(), atol=1e-5)
    other = tmp_path / "other" / opts.weights_file
    other.parent.mkdir()
    torch.save({"state_dict": {}}, other)
    with pytest.raises(WeightsUnavailable, match="differ from the ones locked"):
        cxr_store.import_files("cxr-sex", [other])


def _item(tensor: torch.Tensor) -> Any:
    from workers.runtime.adapter import Item

    return Item(tensor, key=("qc",))


def test_imported_weights_must_be_resnet_34(cxr_store: ModelStore, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store", cxr_store.manifests)
    tiny = build_tiny(cxr_store, "cxr-race", force=True)
    opts = options(cxr_store, "cxr-race")
    store.import_files("cxr-race", [tiny.path / opts.weights_file])
    with pytest.raises(WeightsUnavailable, match="not a ResNet-34"):
        load_model(store.path("cxr-race"), opts, pulled=True, device="cpu")
    with pytest.raises(WeightsUnavailable, match="is on the Hub"):
        store.import_files("srrg-findings", [tiny.path / opts.weights_file])


def test_missing_and_pickled_files_are_refused(cxr_store: ModelStore, tmp_path: Path) -> None:
    opts = options(cxr_store, "cxr-sex")
    with pytest.raises(WeightsUnavailable, match="models import"):
        load_model(tmp_path, opts, pulled=False, device="cpu")
    with (tmp_path / opts.weights_file).open("wb") as handle:
        pickle.dump({"state_dict": {}, "extra": Path("x")}, handle)
    with pytest.raises(WeightsUnavailable, match="pickled objects"):
        load_model(tmp_path, opts, pulled=False, device="cpu")
    age = options(cxr_store, "cxr-age")
    (tmp_path / age.weights_file).write_bytes(b"not torchscript")
    with pytest.raises(WeightsUnavailable, match="TorchScript"):
        load_model(tmp_path, age, pulled=False, device="cpu")


def test_stage_depths_are_read_from_the_keys() -> None:
    keys = {f"layer{s}.{b}.conv1.weight": 0 for s, n in zip(range(1, 5), (3, 4, 6, 3), strict=True)
            for b in range(n)}  # fmt: skip
    assert stage_depths({**keys, "fc.weight": 0}) == (3, 4, 6, 3)


def test_models_import_puts_a_released_file_into_the_store(
    cxr_store: ModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import cli.models

    store = ModelStore(tmp_path / "store", cxr_store.manifests)
    monkeypatch.setattr(cli.models, "_store", lambda: store)
    age = build_tiny(cxr_store, "cxr-age", force=True)
    released = age.path / options(cxr_store, "cxr-age").weights_file
    answer = CliRunner().invoke(cli.models.app, ["import", "cxr-age", str(released)])
    assert answer.exit_code == 0, answer.output
    assert "cxr-age: imported" in answer.output
    resolved = store.resolve("cxr-age")  # checks the lock, as a worker does before loading
    assert resolved.weights == "pulled" and store.verify("cxr-age") == []
    model = load_model(resolved.path, options(store, "cxr-age"), pulled=True, device="cpu")
    assert predict(model, "age", batch(1), "cpu").tolist() == [55.0]
    missing = CliRunner().invoke(cli.models.app, ["import", "cxr-age", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no such file" in missing.output
