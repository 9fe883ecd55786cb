"""The store's lock file (`<model_dir>/medserve.lock.json`): every pulled file's sha256, recorded
at the first pull of a (repository, revision), then checked at every later pull, by
`medserve models verify` and when a worker loads the model.

So the bytes a deployment serves are the bytes it first accepted: a hub that serves other
content under the same revision, or a file changed on disk, is refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from core.constants import STORE_LOCK
from core.errors import WeightsUnavailable

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def is_pinned(revision: str) -> bool:
    """A full commit sha: the only revision that cannot move under a deployment."""
    return bool(COMMIT.match(revision))


class LockFile:
    """Read, record and check pulled models' file digests."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / STORE_LOCK

    def read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        data: dict[str, Any] = json.loads(self.path.read_text())
        return data

    def entry(self, name: str) -> dict[str, Any] | None:
        value = self.read().get(name)
        return value if isinstance(value, dict) else None

    def record_or_check(
        self, name: str, repo_id: str, revision: str, files: dict[str, str]
    ) -> None:
        """First pull of this revision: record the files; later pulls: they must be equal."""
        lock = self.read()
        known = lock.get(name)
        if isinstance(known, dict) and (known.get("repo_id"), known.get("revision")) == (
            repo_id, revision,
        ):  # fmt: skip
            changed = sorted(set(known.get("files", {}).items()) ^ set(files.items()))
            if changed:
                paths = sorted({path for path, _ in changed})
                raise WeightsUnavailable(
                    f"{name}: the files of {repo_id}@{revision} differ from the ones locked at "
                    f"the first pull ({', '.join(paths[:5])}); delete the entry in "
                    f"{self.path.name} only if you trust the new files"
                )
            return
        lock[name] = {
            "repo_id": repo_id,
            "revision": revision,
            "files": dict(sorted(files.items())),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")

    def problems(self, name: str, files: dict[str, str]) -> list[str]:
        """How `files` (path -> sha256 now) depart from the lock (empty when they match)."""
        entry = self.entry(name)
        if entry is None:
            return [f"{name}: pulled weights with no entry in {self.path.name}; pull them again"]
        locked: dict[str, str] = entry.get("files", {})
        out = [f"{name}: {p} is missing" for p in sorted(set(locked) - set(files))]
        out += [f"{name}: {p} is not in the lock" for p in sorted(set(files) - set(locked))]
        out += [f"{name}: {p} changed since it was locked" for p in sorted(locked)
                if p in files and files[p] != locked[p]]  # fmt: skip
        return out
