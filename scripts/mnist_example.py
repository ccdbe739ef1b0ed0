#!/usr/bin/env python3
"""The published MNIST clustering experiment, run with edgeclust, printed beside the published figures.

The CNN of the clustering core (2 conv + 2 dense, ~431K parameters) is trained on full MNIST, then the
whole `edgeclust build` pipeline runs on it: 14 clusters, LINEAR initialisation, 1 epoch of fine-tuning at
lr 1e-5, int8, LUT compression, parity across Keras, LiteRT and TFLM, and the board's budget.

    python scripts/mnist_example.py                       # MNIST from ../shared/data/mnist
    python scripts/mnist_example.py --mnist-dir DIR --epochs 4 --board stm32f746g_disco

Published figures (TensorFlow Model Optimization, weight clustering example): test accuracy 0.9920
before and 0.9919 after clustering; zipped model 1,602,422 bytes before and 196,180 after.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "toolchain"))

PUBLISHED = {"accuracy_before": 0.9920, "accuracy_after": 0.9919, "zipped_before": 1_602_422, "zipped_after": 196_180}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs before clustering")
    parser.add_argument("--clusters", type=int, default=14)
    parser.add_argument("--board", default="stm32f746g_disco")
    parser.add_argument("--out", type=Path, default=None, help="keep the build here (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras

    from edgeclust import data as edata
    from edgeclust import examples
    from edgeclust.cli.progress import ProgressPrinter
    from edgeclust.pipeline.build import BuildOptions, build
    from edgeclust.pipeline.files import keras_archive_bytes, save_keras_atomic
    from edgeclust.pipeline.stages import ClusterOptions, convert_model
    from edgeclust.tflite import size

    dataset = edata.load_mnist(args.mnist_dir)
    print(f"MNIST: {len(dataset.x_train):,} training and {len(dataset.x_test):,} test images", flush=True)
    keras.utils.set_random_seed(args.seed)
    model = examples.compile_for_training(examples.mnist_cnn(seed=args.seed), learning_rate=1e-3)
    started = time.perf_counter()
    model.fit(dataset.x_train, dataset.y_train, batch_size=128, epochs=args.epochs, validation_split=0.1, verbose=2)
    print(f"trained {args.epochs} epoch(s) in {time.perf_counter() - started:.0f} s", flush=True)

    float_before = convert_model(model, quantize="float32", representative=None, per_channel=True)
    int8_before = convert_model(model, quantize="int8", representative=dataset.x_train[:500], per_channel=True)
    before = {
        "keras_zipped": size.zipped_size(keras_archive_bytes(model), "model.keras"),
        "tflite_float32_zipped": size.zipped_size(float_before, "model.tflite"),
        "tflite_int8": len(int8_before),
    }

    with tempfile.TemporaryDirectory(prefix="edgeclust-mnist-") as tmp:
        model_path, data_path = Path(tmp) / "mnist_cnn.keras", Path(tmp) / "mnist.npz"
        save_keras_atomic(model, model_path)
        edata.save_npz(data_path, dataset)
        options = BuildOptions(
            board=args.board,
            out_dir=args.out or Path(tmp) / "build",
            force=True,
            compress="lut",
            allow_over_budget=True,
            cluster=ClusterOptions(
                clusters=args.clusters, init="linear", epochs=1, learning_rate=1e-5, batch_size=64, seed=args.seed
            ),
        )
        report = build(model_path, data_path, options, on_progress=ProgressPrinter(False)).report

    acc = report["parity"]["accuracy"]
    sizes = report["sizes"]
    budget = report["budget"]
    rows = [
        (
            "test accuracy, Keras",
            f"{PUBLISHED['accuracy_before']:.4f} -> {PUBLISHED['accuracy_after']:.4f}",
            f"{acc['keras']:.4f} -> {acc['keras_clustered']:.4f}",
        ),
        ("test accuracy, int8 .tflite in TFLM", "-", f"{acc.get('tflm_int8', float('nan')):.4f}"),
        ("test accuracy, int8 + LUT in TFLM", "-", f"{acc.get('firmware', float('nan')):.4f}"),
        (
            "zipped .keras (bytes)",
            f"{PUBLISHED['zipped_before']:,} -> {PUBLISHED['zipped_after']:,}",
            f"{before['keras_zipped']:,} -> {sizes['keras_clustered_zipped']:,}",
        ),
        ("zipped float32 .tflite", "-", f"{before['tflite_float32_zipped']:,} -> {sizes['tflite_float32_zipped']:,}"),
        ("int8 .tflite", "-", f"{before['tflite_int8']:,} -> {sizes['tflite_int8']:,}"),
        ("int8 + LUT .tflite (what flash stores)", "-", f"{sizes.get('tflite_firmware', 0):,}"),
        (
            f"flash used on {report['board']['id']} (model + TFLM)",
            "-",
            f"{budget['flash_used']:,} of {budget['flash_total']:,}",
        ),
        (
            f"RAM used on {report['board']['id']} (arena + decoded LUT)",
            "-",
            f"{budget['ram_used']:,} of {budget['ram_total']:,}" + ("" if budget["fits"] else "  (does not fit)"),
        ),
        ("unique values per weight tensor (int8)", "-", f"<= {report['verify']['max_unique_found']}"),
    ]
    header = ("", "published", f"edgeclust ({args.clusters} clusters, linear)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
