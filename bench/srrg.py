"""Benchmark: SRRG on real-size architectures with random weights (speed does not depend on values).

(1) reports/s of a direct `generate` call (num_beams 2, max_length 128, as released) on the
chexpert-plus-srrg architecture (SwinV2-T 224 + 2-layer BERT decoder) at batch 1 and 4;
(2) SRR-BERT (BERT-base, 163 labels) sentences/s batched (32 per forward) vs one at a time.
One timed run each after one full warm-up call. Writes JSON (default bench/results/srrg.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
from PIL import Image

from model_store.manifest import Manifest
from workers.srrg import tiny
from workers.srrg.labels import load_labeller
from workers.srrg.model import Generation, load_report_model

SENTENCES = [
    "Small left pleural effusion.",
    "No pneumothorax.",
    "Stable moderate cardiomegaly with mild pulmonary vascular congestion.",
    "Right lower lobe consolidation, likely pneumonia in the appropriate clinical setting.",
    "Endotracheal tube tip 4 cm above the carina.",
    "Lungs are clear.",
    "Degenerative changes of the thoracic spine.",
    "No acute cardiopulmonary process.",
]


def manifest(repo: str) -> Manifest:
    return Manifest(
        name="bench", family="srrg", version="1", source={"repo_id": repo, "revision": "0" * 40}
    )


def bench_generate(root: Path, batches: list[int], max_length: int) -> dict:
    folder = root / "report"
    tiny.build(manifest("StanfordAIMI/chexpert-plus-srrg_findings"), folder, full_size=True)
    model = load_report_model(folder, "findings")
    params = sum(p.numel() for p in model.model.parameters())
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (512, 512), dtype=np.uint8)).convert("RGB")
    settings = Generation(num_beams=2, max_length=max_length)
    model.generate([image], settings)  # warm-up at full length
    out: dict = {"params": params, "num_beams": 2, "max_length": max_length}
    for batch in batches:
        pixels = model.pixel_values([image] * batch)
        start = time.perf_counter()
        ids = model.generate_ids(pixels, settings)
        seconds = time.perf_counter() - start
        out[f"batch_{batch}"] = {
            "seconds": round(seconds, 3),
            "reports_per_s": round(batch / seconds, 3),
            "generated_tokens": int(ids.shape[1]),
        }
    return out


def bench_labels(root: Path, count: int) -> dict:
    folder = root / "srrbert"
    tiny.build(manifest("StanfordAIMI/SRR-BERT-Leaves-with-Statuses"), folder, full_size=True)
    sentences = [SENTENCES[i % len(SENTENCES)] for i in range(count)]
    out: dict = {"sentences": count}
    for batch in (32, 1):
        labeller = load_labeller(folder, "leaves_with_statuses", batch_size=batch)
        out.setdefault("params", sum(p.numel() for p in labeller.model.parameters()))
        labeller(sentences[:2])  # warm-up
        start = time.perf_counter()
        labeller(sentences)
        seconds = time.perf_counter() - start
        out[f"batch_{batch}"] = {
            "seconds": round(seconds, 3),
            "sentences_per_s": round(count / seconds, 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "srrg.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="srrg-bench-") as tmp:
        result = {
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "threads": args.threads,
                "torch": torch.__version__,
            },
            "generate": bench_generate(Path(tmp), [1, 4], args.max_length),
            "srr_bert": bench_labels(Path(tmp), args.sentences),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
