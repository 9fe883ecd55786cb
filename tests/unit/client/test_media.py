"""The client's file readers against the platform's writers (nibabel, safetensors, Pillow),
its server-sent-event parser and retry delays, and that it imports and runs with nothing but
httpx installed (numpy and Pillow only when an array or image is asked for)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pytest

from medserve_client import media
from medserve_client.client import SSEParser
from medserve_client.transport import Options, delay_for, retry_after
from tests.harness import ROOT
from workers.imaging.writers import to_nifti, to_npy, to_safetensors


def test_nifti_voxels_affine_and_scaling_match_nibabel() -> None:
    import nibabel as nib

    volume = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    affine = np.array([[0, 0, 2.5, -10], [0, -1.5, 0, 20], [3, 0, 0, 5], [0, 0, 0, 1]], float)
    voxels, got = media.read_nifti(to_nifti(volume, affine, {"model": "m"}))
    assert np.array_equal(voxels, volume) and np.allclose(got, affine)
    scaled = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    scaled.header.set_slope_inter(0.5, -3.0)
    voxels, _ = media.read_nifti(scaled.to_bytes())
    assert np.allclose(voxels, np.arange(24).reshape(2, 3, 4) * 0.5 - 3.0)


def test_safetensors_and_npy_read_back_with_their_metadata() -> None:
    latent = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    array, meta = media.read_safetensors(to_safetensors(latent, {"latent": "s2", "factor": 4}))
    assert np.array_equal(array, latent) and meta == {"latent": "s2", "factor": 4}
    assert np.array_equal(media.to_array(to_npy(latent), "application/x-npy"), latent)


def test_sse_parser_reads_events_and_skips_keep_alives() -> None:
    parser = SSEParser()
    lines = [": keep-alive", "", "event: progress", 'data: {"a": 1}', "", "event: end",
             'data: {"state": "succeeded"}', ""]  # fmt: skip
    events = [e for line in lines if (e := parser.feed(line)) is not None]
    assert events == [("progress", {"a": 1}), ("end", {"state": "succeeded"})]


def test_retry_delays_honour_retry_after_within_the_budget() -> None:
    options = Options(max_retries=2, max_retry_wait_s=5.0)
    busy = httpx.Response(503, headers={"Retry-After": "2"})
    assert retry_after(busy) == 2.0 and delay_for(options, 0, busy) == 2.0
    assert delay_for(options, 0, httpx.Response(429, headers={"Retry-After": "120"})) == 5.0
    assert delay_for(options, 2, busy) is None  # the budget is spent
    assert delay_for(options, 0, httpx.Response(500)) is None  # never retried
    assert delay_for(options, 1, None) == 1.0  # connection refused: backoff


NO_NUMPY = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numpy", "PIL", "torch", "core", "service", "workers"):
            raise ImportError(name)
sys.meta_path.insert(0, Refuse())
from medserve_client import Client
from medserve_client.results import File
client = Client("http://127.0.0.1:9")
assert client.options.base_url == "http://127.0.0.1:9"
try:
    File(data=b"\\x89PNG\\r\\n\\x1a\\n", media_type="image/png").to_pil()
except ImportError as exc:
    print(exc)
"""


def test_the_client_imports_without_numpy_or_pillow_and_says_what_to_install() -> None:
    result = subprocess.run([sys.executable, "-c", NO_NUMPY], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pip install pillow" in result.stdout


def test_a_missing_file_names_the_path_tried(tmp_path) -> None:
    from medserve_client.routes import read_file

    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.png")):
        read_file(tmp_path / "nope.png")


def test_with_options_changes_the_budget_per_call_on_the_same_pool() -> None:
    from medserve_client import Client

    with Client("http://127.0.0.1:9", max_retries=0) as client:
        quick = client.with_options(timeout=0.5, max_retries=1)
        assert quick._http is client._http and quick.options.max_retries == 1
        assert quick.options.http_timeout().read == 0.5 and client.options.timeout == 600.0
        with pytest.raises(TypeError, match="new client"):
            client.with_options(api_key="other")
