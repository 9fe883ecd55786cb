"""Peak RSS of a Merlin worker taking real-size CTs: a `medserve worker` (tiny weights, so the
figure is the request path's, not the model's) gets `--concurrent` analyze requests at once for
a 512x512x600 CT as .nii.gz and as a zipped DICOM series. Written to JSON.

    .venv/bin/python bench/merlin_memory.py [--shape 512,512,600] [--concurrent 4]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.merlin import vm_hwm_mib, write_ct
from tests.harness import WorkerProcess


def dicom_zip(shape: tuple[int, int, int]) -> bytes:
    """The phantom as one CT series: int16 slices, 0.7 x 0.7 mm, 1 mm apart."""
    from tests.merlin_support import dicom_series

    rng = np.random.default_rng(0)
    volume = np.full(shape, -1000, np.int16)
    i, j = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    volume[(i / 0.85) ** 2 + (j / 0.65) ** 2 < 1] = 40
    volume += rng.integers(-20, 20, size=shape, dtype=np.int16)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for k, data in enumerate(dicom_series(volume, spacing=(0.7, 0.7, 1.0))):
            archive.writestr(f"IM{k:04d}.dcm", data)
    return buffer.getvalue()


def burst(url: str, data: bytes, n: int) -> list[float]:
    from workers.runtime.client import SyncOIPClient

    out: list[float] = []

    def one() -> None:
        with SyncOIPClient(url, timeout_s=3600) as client:
            start = time.perf_counter()
            client.infer("merlin", {"IMAGE": np.array([data], dtype=np.object_)},
                         {"tasks": '["embedding"]'})  # fmt: skip
            out.append(round(time.perf_counter() - start, 1))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="512,512,600")
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "bench/results/merlin_memory.json"))
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    work = Path(tempfile.mkdtemp(prefix="merlin-memory-"))
    write_ct(work / "ct.nii.gz", shape)  # type: ignore[arg-type]
    files = {"nifti_gz": (work / "ct.nii.gz").read_bytes(), "dicom_zip": dicom_zip(shape)}  # type: ignore[arg-type]
    result: dict = {"bench": "merlin_memory", "ct_shape": list(shape),
                    "concurrent": args.concurrent, "runs": {}}  # fmt: skip
    (work / "models").mkdir()
    for kind, data in files.items():
        with WorkerProcess(["merlin"], work / "models") as worker:
            idle = vm_hwm_mib(worker.pid)
            single = burst(worker.url, data, 1)
            one = vm_hwm_mib(worker.pid)
            many = burst(worker.url, data, args.concurrent)
            peak = vm_hwm_mib(worker.pid)
        result["runs"][kind] = {
            "file_mib": round(len(data) / 2**20, 1),
            "worker_rss_loaded_mib": round(idle or 0),
            "peak_one_request_mib": round(one or 0),
            f"peak_{args.concurrent}_concurrent_mib": round(peak or 0),
            "latency_one_s": single,
            f"latency_{args.concurrent}_concurrent_s": sorted(many),
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
