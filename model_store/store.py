"""The model store: resolve a model name to weights on disk, pull them, verify them.

Layout: `<model_dir>/<name>/` holds the files exactly as the Hugging Face repository lays
them out, plus `medserve.json`, written last, which says how they got there
(`weights: pulled | random-tiny`), the revision and the weights digest. Loading code is the
same for pulled and tiny weights.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.constants import STORE_MARKER
from core.errors import ModelNotFound, WeightsUnavailable
from model_store.lock import LockFile, is_pinned
from model_store.manifest import ExtraSource, Manifest, Source, SourceFile

MARKER = STORE_MARKER
IMPORTED = "imported"  # the lock's repo and revision of files imported from outside the Hub
Weights = Literal["pulled", "random-tiny", "random-full"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model whose weights are on disk and ready to load."""

    manifest: Manifest
    path: Path
    weights: Weights
    digest: str
    info: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest.name


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(root: Path) -> tuple[str, dict[str, str]]:
    """sha256 over (relative path, file sha256) of every file but the marker."""
    files: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == MARKER or rel.startswith(".cache/"):
            continue
        files[rel] = sha256_file(path)
    outer = hashlib.sha256()
    for rel, digest in files.items():
        outer.update(f"{rel}\0{digest}\n".encode())
    return "sha256:" + outer.hexdigest(), files


def write_marker(root: Path, manifest: Manifest, weights: Weights, **extra: Any) -> dict[str, Any]:
    digest, files = tree_digest(root)
    sizes = {rel: (root / rel).stat().st_size for rel in files}
    info = {
        "name": manifest.name,
        "family": manifest.family,
        "version": manifest.version,
        "weights": weights,
        "digest": digest,
        "files": files,
        "sizes": sizes,
        "created": time.time(),
        **extra,
    }
    (root / MARKER).write_text(json.dumps(info, indent=2))
    return info


class ModelStore:
    """Resolve, pull and verify models under one root folder."""

    def __init__(self, root: Path, manifests: dict[str, Manifest]) -> None:
        self.root = Path(root)
        self.manifests = manifests

    def manifest(self, name: str) -> Manifest:
        try:
            return self.manifests[name]
        except KeyError:
            known = ", ".join(sorted(self.manifests))
            raise ModelNotFound(f"unknown model '{name}'; known models: {known}") from None

    def path(self, name: str) -> Path:
        return self.root / name

    def info(self, name: str) -> dict[str, Any] | None:
        marker = self.path(name) / MARKER
        if not marker.exists():
            return None
        return json.loads(marker.read_text())

    def resolve(self, name: str) -> ResolvedModel:
        manifest = self.manifest(name)
        info = self.info(name)
        if info is None:
            raise WeightsUnavailable(
                f"model '{name}' has no weights in {self.root}: run `medserve models pull {name}`"
                f" or `medserve models tiny {name}`"
            )
        if info["weights"] == "pulled":
            self._check_lock(name, info)
        return ResolvedModel(manifest, self.path(name), info["weights"], info["digest"], info)

    def _check_lock(self, name: str, info: dict[str, Any]) -> None:
        """Before loading pulled weights: they were locked, and no file changed size since."""
        problems = LockFile(self.root).problems(name, info.get("files", {}))
        sizes: dict[str, int] = info.get("sizes", {})
        for rel, size in sizes.items():
            path = self.path(name) / rel
            if not path.exists() or path.stat().st_size != size:
                problems.append(f"{name}: {rel} changed on disk since it was pulled")
        if problems:
            raise WeightsUnavailable(
                f"{problems[0]}; run `medserve models verify {name}` or pull it again"
            )

    def verify(self, name: str) -> list[str]:
        """Re-hash the files; return a list of problems (empty when intact)."""
        manifest = self.manifest(name)
        info = self.info(name)
        if info is None:
            return [f"{name}: not in the store"]
        problems = []
        digest, files = tree_digest(self.path(name))
        for rel, expected in info.get("files", {}).items():
            if files.get(rel) != expected:
                problems.append(f"{name}: {rel} changed or is missing")
        if digest != info["digest"] and not problems:
            problems.append(f"{name}: unexpected extra files")
        if info["weights"] == "pulled":
            problems += LockFile(self.root).problems(name, files)
        if info["weights"] == "pulled" and manifest.source:
            for _, _, _, folder, specs in _downloads(manifest.source, self.path(name)):
                for spec in specs:
                    rel = (folder / spec.path).relative_to(self.path(name)).as_posix()
                    if spec.sha256 and files.get(rel) != spec.sha256:
                        problems.append(f"{name}: {rel} does not match the manifest's sha256")
        return problems

    def pull(
        self,
        name: str,
        token: str | None = None,
        endpoint_check: bool = True,
        allow_unpinned: bool = False,
        download: Callable[..., Any] | None = None,
    ) -> ResolvedModel:
        """Download the pinned revision (and each extra source into its subfolder) with
        huggingface_hub, check every sha256 against the manifest and the lock file (recording
        it at the first pull). `download` has `snapshot_download`'s keywords (a local mirror,
        in tests)."""
        manifest = self.manifest(name)
        source = manifest.source
        if source is None:
            raise WeightsUnavailable(f"model '{name}' has no remote source; use `models tiny`")
        unpinned = [
            f"{repo}@{rev}"
            for repo, rev in [(source.repo_id, source.revision)]
            + [(e.repo_id, e.revision) for e in source.extra_sources]
            if not is_pinned(rev)
        ]
        if unpinned and not allow_unpinned:
            raise WeightsUnavailable(
                f"model '{name}' pins {', '.join(unpinned)}, which can move: set each revision "
                "in its manifest to the 40-character commit sha (see docs/model-store.md), or "
                "pass --allow-unpinned to pull it anyway"
            )
        if download is None:
            if endpoint_check and not _hub_reachable():
                raise WeightsUnavailable(
                    "the Hugging Face Hub cannot be reached from this machine (offline); pull on "
                    "a connected machine and copy the folder into MEDSERVE_MODEL_DIR, or use "
                    f"`medserve models tiny {name}` for random offline weights"
                )
            from huggingface_hub import snapshot_download

            download = snapshot_download
        target = self.path(name)
        target.mkdir(parents=True, exist_ok=True)
        (target / MARKER).unlink(missing_ok=True)
        for repo_id, revision, patterns, folder, files in _downloads(source, target):
            folder.mkdir(parents=True, exist_ok=True)
            try:
                download(repo_id=repo_id, revision=revision, allow_patterns=patterns,
                         local_dir=str(folder), token=token)  # fmt: skip
            except Exception as exc:  # huggingface_hub raises many types; report the kind only
                raise WeightsUnavailable(
                    f"download of {repo_id}@{revision} failed ({type(exc).__name__}); check the "
                    "network, the revision and HF_TOKEN for gated repositories"
                ) from exc
            for spec in files:
                path = folder / spec.path
                where = path.relative_to(target).as_posix()
                if not path.exists():
                    raise WeightsUnavailable(f"{name}: expected file {where} was not downloaded")
                if spec.sha256 and sha256_file(path) != spec.sha256:
                    raise WeightsUnavailable(f"{name}: {where} failed its sha256 check")
        _, digests = tree_digest(target)
        LockFile(self.root).record_or_check(name, source.repo_id, source.revision, digests)
        revisions = {e.repo_id: e.revision for e in source.extra_sources}
        info = write_marker(target, manifest, "pulled", revision=source.revision,
                            extra_revisions=revisions)  # fmt: skip
        return ResolvedModel(manifest, target, "pulled", info["digest"], info)

    def import_files(self, name: str, files: list[Path]) -> ResolvedModel:
        """Released files obtained outside the Hub (a GitHub release, a shared folder) into the
        store as `pulled` weights: each copied under its own name, their sha256 recorded in the
        lock at the first import; a later import must bring the same bytes."""
        manifest = self.manifest(name)
        if manifest.source is not None:
            raise WeightsUnavailable(f"model '{name}' is on the Hub: `medserve models pull {name}`")
        missing = [str(f) for f in files if not Path(f).is_file()]
        if not files or missing:
            raise WeightsUnavailable(f"no such file: {missing[0] if missing else '(none given)'}")
        target = self.path(name)
        info = self.info(name)
        if target.exists() and (info is None or info["weights"] != "pulled"):
            shutil.rmtree(target)  # tiny random weights or a half-finished copy
        target.mkdir(parents=True, exist_ok=True)
        (target / MARKER).unlink(missing_ok=True)
        for path in files:
            shutil.copyfile(path, target / Path(path).name)
        _, hashes = tree_digest(target)
        LockFile(self.root).record_or_check(name, IMPORTED, IMPORTED, hashes)
        info = write_marker(target, manifest, "pulled", revision=IMPORTED)
        return ResolvedModel(manifest, target, "pulled", info["digest"], info)


def _downloads(source: Source, target: Path) -> list[tuple[str, str, Any, Path, list[SourceFile]]]:
    """(repo, revision, allow_patterns, folder, files) of the main source, then each extra one."""
    repos: list[tuple[Source | ExtraSource, Path]] = [(source, target)]
    repos += [(extra, target / extra.target_dir) for extra in source.extra_sources]
    out: list[tuple[str, str, Any, Path, list[SourceFile]]] = []
    for repo, folder in repos:
        patterns = repo.allow_patterns or [f.path for f in repo.files] or None
        out.append((repo.repo_id, repo.revision, patterns, folder, list(repo.files)))
    return out


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
