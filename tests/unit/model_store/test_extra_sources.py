"""`source.extra_sources`: files of other repositories pulled into subfolders, checked by sha256.

The Hub is not reachable here; `pull(download=...)` takes a function with `snapshot_download`'s
keywords, and these tests give it one that copies from a local mirror of repositories."""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import WeightsUnavailable
from model_store.manifest import ExtraSource, Manifest
from model_store.store import ModelStore

REV_A, REV_B = "a" * 40, "b" * 40  # pinned commits


def mirror(root: Path, calls: list[dict]):
    """A `snapshot_download` stand-in reading `root/<repo_id>@<revision>/`."""

    def download(*, repo_id, revision, allow_patterns, local_dir, token):
        calls.append({"repo_id": repo_id, "revision": revision, "patterns": allow_patterns,
                      "local_dir": local_dir})  # fmt: skip
        repo = root / f"{repo_id}@{revision}"
        if not repo.is_dir():
            raise FileNotFoundError(repo_id)
        for path in repo.rglob("*"):
            rel = path.relative_to(repo).as_posix()
            if path.is_file() and any(fnmatch.fnmatch(rel, p) for p in allow_patterns or ["*"]):
                (Path(local_dir) / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, Path(local_dir) / rel)

    return download


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def hub(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "hub"
    digests = {
        "ckpt": write(root / f"org/model@{REV_A}/model.pt", "weights"),
        "config": write(root / f"other/text@{REV_B}/config.json", "{}"),
        "vocab": write(root / f"other/text@{REV_B}/vocab.json", '{"a": 0}'),
    }
    write(root / f"other/text@{REV_B}/pytorch_model.bin", "not wanted")
    return root, digests


def manifest(digests: dict[str, str], vocab_sha: str | None = None) -> Manifest:
    return Manifest.model_validate({
        "name": "m", "family": "builtin", "version": "1",
        "source": {
            "repo_id": "org/model", "revision": REV_A,
            "files": [{"path": "model.pt", "sha256": digests["ckpt"]}],
            "extra_sources": [{
                "repo_id": "other/text", "revision": REV_B, "target_dir": "Text-Encoder",
                "allow_patterns": ["config.json", "vocab.json"],
                "files": [{"path": "config.json", "sha256": digests["config"]},
                          {"path": "vocab.json", "sha256": vocab_sha or digests["vocab"]}],
            }],
        },
    })  # fmt: skip


def test_pull_puts_each_extra_source_in_its_folder_and_verifies_it(tmp_path: Path, hub) -> None:
    root, digests = hub
    store = ModelStore(tmp_path / "models", {"m": manifest(digests)})
    calls: list[dict] = []
    resolved = store.pull("m", download=mirror(root, calls))

    assert [(c["repo_id"], c["revision"]) for c in calls] == [("org/model", REV_A),
                                                              ("other/text", REV_B)]  # fmt: skip
    assert calls[1]["patterns"] == ["config.json", "vocab.json"]
    assert calls[1]["local_dir"] == str(resolved.path / "Text-Encoder")
    files = sorted(
        p.relative_to(resolved.path).as_posix() for p in resolved.path.rglob("*") if p.is_file()
    )
    assert files == ["Text-Encoder/config.json", "Text-Encoder/vocab.json", "medserve.json",
                     "model.pt"]  # fmt: skip
    assert resolved.weights == "pulled"
    assert resolved.info["extra_revisions"] == {"other/text": REV_B}
    assert store.verify("m") == []

    (resolved.path / "Text-Encoder" / "vocab.json").write_text('{"b": 1}')
    problems = store.verify("m")
    assert any("Text-Encoder/vocab.json" in p for p in problems)


def test_an_extra_file_with_the_wrong_digest_fails_the_pull(tmp_path: Path, hub) -> None:
    root, digests = hub
    store = ModelStore(tmp_path / "models", {"m": manifest(digests, vocab_sha="0" * 64)})
    with pytest.raises(WeightsUnavailable, match=r"Text-Encoder/vocab\.json failed its sha256"):
        store.pull("m", download=mirror(root, []))
    assert store.info("m") is None  # no marker: the model is not servable


def test_a_missing_extra_repository_names_it(tmp_path: Path, hub) -> None:
    root, digests = hub
    shutil.rmtree(root / "other")
    store = ModelStore(tmp_path / "models", {"m": manifest(digests)})
    with pytest.raises(WeightsUnavailable, match=f"other/text@{REV_B} failed"):
        store.pull("m", download=mirror(root, []))


@pytest.mark.parametrize("bad", ["../outside", "a/../../b", "/abs", "", "a//b"])
def test_target_dir_must_stay_inside_the_model_folder(bad: str) -> None:
    with pytest.raises(ValidationError):
        ExtraSource(repo_id="o/r", revision="x", target_dir=bad)


def test_an_unpinned_extra_source_is_refused_before_any_download(tmp_path: Path, hub) -> None:
    root, digests = hub
    moving = manifest(digests).model_dump()
    moving["source"]["extra_sources"][0]["revision"] = "main"
    store = ModelStore(tmp_path / "models", {"m": Manifest.model_validate(moving)})
    calls: list[dict] = []
    with pytest.raises(WeightsUnavailable, match="other/text@main, which can move"):
        store.pull("m", download=mirror(root, calls))
    assert calls == []
