"""Real-size Merlin on the CPU with random weights: build, load, and one image embedding.

usage: python bench/merlin_embed.py STORE_DIR [THREADS]   (writes the full-size store if absent)"""

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from model_store.manifest import Manifest
from workers.merlin import compute, tiny
from workers.merlin.model import CLIP_CHECKPOINT, load_clip


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    store = Path(sys.argv[1])
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    if not (store / CLIP_CHECKPOINT).exists():
        start = time.perf_counter()
        tiny.build(Manifest(name="merlin", family="merlin", version="1"), store, full_size=True)
        print(f"built full-size random store in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    model = load_clip(store)
    size = (store / CLIP_CHECKPOINT).stat().st_size / 2**20
    print(f"load {time.perf_counter() - start:.1f} s ({size:.0f} MiB checkpoint)")
    volume = torch.rand((1, 224, 224, 160), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    compute.encode_images(model, [volume])
    took = time.perf_counter() - start
    print(f"image features+embedding+phenotypes of 224x224x160: {took:.1f} s")
    start = time.perf_counter()
    compute.embed_texts(model, ["Liver: normal. Spleen: normal. Mild bibasilar atelectasis."])
    print(f"one text embedding {time.perf_counter() - start:.2f} s; peak RSS {peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()
