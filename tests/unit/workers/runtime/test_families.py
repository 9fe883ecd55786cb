"""Every shipped manifest validates against its family's contract; a typo is refused at load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.errors import InvalidInput
from model_store.manifest import MANIFEST_DIR
from workers.runtime.families import FAMILIES, load_manifests


def test_every_shipped_manifest_loads_and_names_a_known_family() -> None:
    manifests = load_manifests()
    assert {m.family for m in manifests.values()} <= set(FAMILIES)
    assert {"echo", "roentgen-v2", "medvae-4-1-2d", "medval-4b"} <= set(manifests)


@pytest.mark.parametrize(
    ("name", "block", "key", "needle"),
    [
        ("roentgen-v2.yaml", "adapter", "micro_batch", "option 'micro_batch' (did you mean"),
        ("medvae-4-1-2d.yaml", "defaults", "latnet", "default 'latnet' (did you mean 'latent'?)"),
        ("medval-4b.yaml", "tiny", "hiden_size", "tiny option 'hiden_size' (did you mean"),
        ("echo.yaml", "input", "modality", "modality"),
    ],
)
def test_an_unknown_key_in_any_block_is_refused_with_the_closest_name(
    tmp_path: Path, name: str, block: str, key: str, needle: str
) -> None:
    doc = yaml.safe_load((MANIFEST_DIR / name).read_text())
    doc.setdefault(block, {})[key] = 1
    (tmp_path / name).write_text(yaml.safe_dump(doc))
    with pytest.raises((InvalidInput, ValueError)) as caught:
        load_manifests(tmp_path)
    assert needle in str(caught.value)
