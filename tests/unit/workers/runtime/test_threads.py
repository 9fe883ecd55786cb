"""MEDSERVE_TORCH_THREADS: applied for torch models, never imports torch for built-ins alone."""

from __future__ import annotations

import torch

from model_store.manifest import load_manifests
from workers.runtime.registry import adapter_for
from workers.runtime.state import set_torch_threads


def test_torch_threads_setting_applies_to_torch_models() -> None:
    manifests = load_manifests()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        set_torch_threads(1, {"medvae-4-1-2d": adapter_for(manifests["medvae-4-1-2d"])})
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        set_torch_threads(1, {"echo": adapter_for(manifests["echo"])})
        assert torch.get_num_threads() == 2
        set_torch_threads(None, {"medvae-4-1-2d": adapter_for(manifests["medvae-4-1-2d"])})
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
