"""Job artifacts on any fsspec filesystem: a local folder, `s3://...`, `memory://` in tests.

Writes are atomic where the filesystem allows it (temp name, then rename), so a reader or a
resuming runner never sees half a file. Paths given by clients are checked to stay inside
the job's folder.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import fsspec

from core.errors import InvalidInput, NotFound

HIDDEN_PREFIXES = (".", "_")


class ArtifactStore:
    """One job's artifact folder (`root_url`), addressed by relative POSIX paths."""

    def __init__(self, root_url: str) -> None:
        self.url = root_url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.root = self.root.rstrip("/")

    def _full(self, rel: str) -> str:
        return f"{self.root}/{safe_relpath(rel)}"

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write `rel` atomically: a temp sibling first, then a rename over the final name."""
        final = self._full(rel)
        parent = final.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, final)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode())

    def read_bytes(self, rel: str) -> bytes:
        path = self._full(rel)
        if not self.fs.isfile(path):
            raise NotFound(f"no artifact {rel!r}; list them with GET /v1/jobs/{{id}}/artifacts")
        data: bytes = self.fs.cat_file(path)
        return data

    def open(self, rel: str) -> Any:
        path = self._full(rel)
        if not self.fs.isfile(path):
            raise NotFound(f"no artifact {rel!r}; list them with GET /v1/jobs/{{id}}/artifacts")
        return self.fs.open(path, "rb")

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self._full(rel)))

    def delete(self, rel: str) -> None:
        path = self._full(rel)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def list(self, under: str = "", *, hidden: bool = False) -> list[dict[str, Any]]:
        """Files below `under` as `{path, size}`, sorted; hidden (`.`/`_`) parts skipped."""
        base = self._full(under) if under else self.root
        if not self.fs.exists(base):
            return []
        out = []
        for path, info in sorted(self.fs.find(base, detail=True).items()):
            rel = path[len(self.root) :].lstrip("/")
            if not hidden and any(part.startswith(HIDDEN_PREFIXES) for part in rel.split("/")):
                continue
            out.append({"path": rel, "size": int(info.get("size") or 0)})
        return out

    def iter_bytes(self, rel: str, chunk: int = 1 << 16) -> Iterator[bytes]:
        with self.open(rel) as handle:
            while block := handle.read(chunk):
                yield block


def safe_relpath(rel: str) -> str:
    """Refuse absolute paths, `..` and empty parts: artifacts stay inside the job folder."""
    parts = rel.replace("\\", "/").split("/")
    if not rel or rel.startswith("/") or any(p in ("", "..", ".") for p in parts):
        raise InvalidInput(f"artifact path {rel!r} is not a relative path inside the job folder")
    return "/".join(parts)
