"""The CheXagent-2-3b-srrg loader runs remote code only when every .py file is pinned."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core.errors import WeightsUnavailable
from model_store.manifest import Manifest
from workers.srrg import tiny
from workers.srrg.remote import load_remote_report_model, verify_remote_code


def remote_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "chexagent"
    folder.mkdir()
    files = {"modeling_chexagent.py": "x = 1\n", "configuration_chexagent.py": "y = 2\n"}
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "config.json").write_text(
        json.dumps(
            {"auto_map": {"AutoModelForCausalLM": "modeling_chexagent.CheXagentForCausalLM"}}
        )
    )
    pins = {n: hashlib.sha256(t.encode()).hexdigest() for n, t in files.items()}
    return folder, pins


def test_exact_pins_pass(tmp_path: Path) -> None:
    folder, pins = remote_folder(tmp_path)
    verify_remote_code(folder, pins)
    verify_remote_code(folder, {k: v.upper() for k, v in pins.items()})


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ("no pins", "must pin the sha256"),
        ("tampered", "sha256 differs for modeling_chexagent.py"),
        ("extra file", "not pinned sub/evil.py"),
        ("missing file", "missing configuration_chexagent.py"),
        ("foreign auto_map", "another repository"),
    ],
)
def test_anything_else_is_refused(tmp_path: Path, change: str, fragment: str) -> None:
    folder, pins = remote_folder(tmp_path)
    if change == "no pins":
        pins = {}
    elif change == "tampered":
        (folder / "modeling_chexagent.py").write_text("import os\n")
    elif change == "extra file":
        (folder / "sub").mkdir()
        (folder / "sub" / "evil.py").write_text("")
    elif change == "missing file":
        (folder / "configuration_chexagent.py").unlink()
    else:
        (folder / "config.json").write_text(
            json.dumps({"auto_map": {"AutoModel": "someone/else--modeling.Model"}})
        )
    with pytest.raises(WeightsUnavailable, match=fragment):
        verify_remote_code(folder, pins)
    with pytest.raises(WeightsUnavailable, match=fragment):  # the loader checks before importing
        load_remote_report_model(folder, "findings", pins)


def test_no_tiny_build_for_chexagent(tmp_path: Path) -> None:
    manifest = Manifest(
        name="chexagent-srrg-findings",
        family="srrg",
        version="1",
        source={
            "repo_id": "StanfordAIMI/CheXagent-2-3b-srrg-findings",
            "revision": "9f7225fc382ddd1297ade1aa796da660237940bc",
        },
    )
    with pytest.raises(WeightsUnavailable, match="no tiny build"):
        tiny.build(manifest, tmp_path)
