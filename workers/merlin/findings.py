"""Prompt embeddings for zero-shot findings, computed once and reused.

The built-in prompts (`data/zero_shot_prompts.json`, a few hundred texts) are embedded on first
use (or at load with `precompute_findings`) and cached in memory and on disk, in the model
folder's `.cache/` (which the store's digest leaves out), keyed by the weights digest and the
prompts, so a restarted worker does not embed them again. Prompts of a caller's own findings
are embedded per request through a bounded in-memory cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from model_store.store import ResolvedModel
from workers.merlin.contract import UserFinding
from workers.merlin.prompts import Finding, builtin_findings

log = logging.getLogger(__name__)

USER_CACHE = 4096  # prompt texts kept


class FindingBank:
    """Text embeddings of finding prompts for one loaded CLIP model."""

    def __init__(self, model: Any, resolved: ResolvedModel, batch_size: int = 32) -> None:
        self.model = model
        self.resolved = resolved
        self.batch_size = batch_size
        self.lock = threading.Lock()
        self._builtin: dict[str, np.ndarray] | None = None
        self._user: OrderedDict[str, np.ndarray] = OrderedDict()

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        from workers.merlin.compute import embed_texts

        return embed_texts(self.model, list(texts), self.batch_size)

    def builtin(self) -> dict[str, np.ndarray]:
        """Prompt text -> embedding for every built-in prompt (computed once)."""
        with self.lock:
            if self._builtin is None:
                self._builtin = self._load_or_embed()
            return self._builtin

    def _load_or_embed(self) -> dict[str, np.ndarray]:
        texts = sorted({t for f in builtin_findings() for t in (*f.positive, *f.negative)})
        key = hashlib.sha256(json.dumps([self.resolved.digest, texts]).encode()).hexdigest()[:16]
        path = self.resolved.path / ".cache" / f"merlin-findings-{key}.npy"
        rows = None
        if path.is_file():
            try:
                rows = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                rows = None
            if rows is not None and rows.shape[0] != len(texts):
                rows = None
        if rows is None:
            log.info("merlin: embedding %d built-in finding prompts", len(texts))
            rows = self._embed(texts)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, rows, allow_pickle=False)
                tmp.replace(path)
            except OSError:  # a read-only store still serves, it just embeds again next time
                log.warning("merlin: cannot cache finding prompts in %s", path.parent)
        return dict(zip(texts, rows, strict=True))

    def _users(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        with self.lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._user]
        fresh = dict(zip(missing, self._embed(missing), strict=True)) if missing else {}
        with self.lock:
            self._user.update(fresh)
            out = {t: self._user[t] for t in texts if t in self._user}
            for text in texts:
                if text in self._user:
                    self._user.move_to_end(text)
            while len(self._user) > USER_CACHE:
                self._user.popitem(last=False)
        return {**out, **fresh}

    def for_request(
        self, names: Sequence[str] | None, user: Sequence[UserFinding]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Finding name -> (positive [P,512], negative [N,512]): the built-ins asked for (all, in
        the released order, when `names` is None; else in the order given), then the caller's."""
        by_name = {f.name: f for f in builtin_findings()}
        chosen: list[Finding] = (
            list(by_name.values()) if names is None else [by_name[n] for n in names]
        )
        bank: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if chosen:
            table = self.builtin()
            for f in chosen:
                bank[f.name] = (np.stack([table[t] for t in f.positive]),
                                np.stack([table[t] for t in f.negative]))  # fmt: skip
        if user:
            table = self._users([t for f in user for t in (*f.positive, *f.negative)])
            for uf in user:
                bank[uf.name] = (np.stack([table[t] for t in uf.positive]),
                                 np.stack([table[t] for t in uf.negative]))  # fmt: skip
        return bank
