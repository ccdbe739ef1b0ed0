#!/usr/bin/env python3
"""All 10,000 MNIST test images through the native host build and the tflite_micro interpreter, compared
byte for byte: the uncompressed int8 MNIST CNN (plain int8 weights) and the same model at 16 clusters
(4-bit packed weights). Exit status 0 when every output is bit-identical.

    python scripts/native_mnist_parity.py --mnist-dir ../shared/data/mnist     # ~2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "toolchain"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist")
    parser.add_argument("--train", type=int, default=5000, help="training images for the one epoch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras
    import numpy as np

    from edgeclust import data as edata
    from edgeclust import examples
    from edgeclust.backends.native import NativeBackend
    from edgeclust.pipeline.layouts import weight_layouts
    from edgeclust.pipeline.stages import ClusterOptions, cluster_model, convert_model
    from edgeclust.tflite.parity import model_interface, quantize, run_tflm

    dataset = edata.load_mnist(args.mnist_dir)
    keras.utils.set_random_seed(args.seed)
    model = examples.compile_for_training(examples.mnist_cnn(seed=args.seed))
    model.fit(dataset.x_train[: args.train], dataset.y_train[: args.train], batch_size=64, epochs=1, verbose=0)
    clustered = cluster_model(model, None, ClusterOptions(clusters=16, init="linear", epochs=0)).model
    backend = NativeBackend()
    failures = 0
    for name, keras_model in (("int8 (uncompressed)", model), ("16 clusters (4-bit packed)", clustered)):
        tflite = convert_model(keras_model, quantize="int8", representative=dataset.x_train[:500], per_channel=True)
        x = np.ascontiguousarray(quantize(dataset.x_test, model_interface(tflite).inputs[0]))
        lowered = backend.lower(tflite, weight_layouts(tflite) if "packed" in name else ())
        started = time.perf_counter()
        ours = backend.run_host(lowered, x)
        native_s = time.perf_counter() - started
        started = time.perf_counter()
        reference = run_tflm(tflite, x)
        tflm_s = time.perf_counter() - started
        same = int(np.all(ours.reshape(len(x), -1) == reference.reshape(len(x), -1), axis=1).sum())
        accuracy = float(np.mean(np.argmax(ours.reshape(len(x), -1), axis=1) == dataset.y_test))
        print(
            f"{name}: {same:,}/{len(x):,} images bit-identical to tflite_micro "
            f"(top-1 {accuracy:.4f}; native host {native_s:.1f} s, tflite_micro {tflm_s:.1f} s)",
            flush=True,
        )
        failures += len(x) - same
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
