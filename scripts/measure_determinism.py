"""What TensorFlow's deterministic kernels cost in fine-tuning time, and whether they are needed for the same
weights in two processes: the MNIST CNN clustered to 16 values, fine-tuned 1 epoch, each mode in fresh processes.

    python scripts/measure_determinism.py [--train 3000] [--runs 2] [--mnist DIR]

Prints, per mode (seeded only / seeded + tf.config.experimental.enable_op_determinism), the fine-tuning
wall and CPU seconds of each process and the sha256 of the stripped model's weights; equal hashes within a
mode mean reproducible across processes. On a shared machine compare CPU seconds: wall time follows the load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TOOLCHAIN = Path(__file__).resolve().parents[1] / "toolchain"
MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"  # as tests/conftest.py


def one_run(mnist: str, train: int, deterministic: bool) -> dict:
    """In this process: cluster and fine-tune once; the seconds fine-tuning took and the weights' hash."""
    import keras
    import numpy as np

    from edgeclust import data as edata
    from edgeclust import examples
    from edgeclust.pipeline.stages import ClusterOptions, cluster_model

    dataset = edata.load_mnist(mnist).subset(train=train, test=100)
    keras.utils.set_random_seed(0)
    model = examples.mnist_cnn(seed=0)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    options = ClusterOptions(clusters=16, epochs=0, seed=0)
    wrapped = cluster_model(model, dataset, options, strip=False).model
    from edgeclust.pipeline.training import finetune

    started, cpu_started = time.perf_counter(), time.process_time()
    finetune(wrapped, dataset.x_train, dataset.y_train, epochs=1, learning_rate=1e-4, batch_size=64, seed=0)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    from edgeclust import cluster

    stripped = cluster.strip_clustering(wrapped)
    digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in stripped.get_weights())).hexdigest()
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2), "weights_sha256": digest[:16]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--mnist", default=os.environ.get("EDGECLUST_MNIST_DIR", str(MNIST)))
    parser.add_argument("--child", choices=["seeded", "deterministic"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_run(args.mnist, args.train, args.child == "deterministic")))
        return
    env = {**os.environ, "PYTHONPATH": str(TOOLCHAIN), "TF_CPP_MIN_LOG_LEVEL": "3"}
    for mode in ("seeded", "deterministic") * args.runs:  # alternating, so a busy machine hurts both alike
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--train", str(args.train), "--mnist", args.mnist],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{mode:>13}: fine-tuning {result['seconds']:.2f} s wall, {result['cpu_seconds']:.2f} s CPU, "
            f"weights sha256 {result['weights_sha256']}"
        )


if __name__ == "__main__":
    main()
