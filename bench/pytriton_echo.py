"""The echo model served by PyTriton (a real Triton server), for comparisons with medserve.

Runs in the PyTriton venv (`make triton-env`), not the project's: PyTriton pins numpy<2.
Same contract as medserve's echo: INPUT0 FP32 [batch, n] -> OUTPUT0 = INPUT0, dynamic
batching up to 32 rows. Prints `SERVING` when ready; stop it with SIGTERM.

    LD_LIBRARY_PATH=$(.venv-triton/bin/python -c "import sysconfig;
      print(sysconfig.get_config_var('LIBDIR'))") .venv-triton/bin/python bench/pytriton_echo.py
"""

from __future__ import annotations

import argparse
import logging
import tempfile

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


@batch
def echo(INPUT0: np.ndarray) -> dict[str, np.ndarray]:
    return {"OUTPUT0": INPUT0.astype(np.float32)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http-port", type=int, default=8021)
    parser.add_argument("--grpc-port", type=int, default=8022)
    parser.add_argument("--metrics-port", type=int, default=8023)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-queue-delay-us", type=int, default=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        allow_metrics=False,
    )
    with (
        tempfile.TemporaryDirectory(prefix="pytriton-") as scratch,
        Triton(config=config, workspace=f"{scratch}/workspace") as triton,
    ):
        triton.bind(
            model_name="echo",
            infer_func=echo,
            inputs=[Tensor(name="INPUT0", dtype=np.float32, shape=(-1,))],
            outputs=[Tensor(name="OUTPUT0", dtype=np.float32, shape=(-1,))],
            config=ModelConfig(
                max_batch_size=args.max_batch_size,
                batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us),
            ),
        )
        print("SERVING", flush=True)
        triton.serve()


if __name__ == "__main__":
    main()
