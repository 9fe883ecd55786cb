"""Time and peak memory of Merlin's CT preprocessing for one file (run under /usr/bin/time -v).

usage: python bench/merlin_preprocess.py CT_FILE [MAX_VOXELS]"""

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from workers.merlin.preprocess import prepare


def main() -> None:
    torch.set_num_threads(2)
    import monai.transforms  # noqa: F401  (imported once by a worker, not per request)

    data = Path(sys.argv[1]).read_bytes()
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 512 * 512 * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    out = prepare(data, limit)
    took = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shape = tuple(out.tensor.shape)
    print(f"input {out.input_shape} spacing {out.spacing} {out.orientation} -> {shape}")
    print(
        f"file {len(data) / 2**20:.0f} MiB; preprocess {took:.1f} s; peak RSS {peak:.0f} MiB "
        f"(before the call {before:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
