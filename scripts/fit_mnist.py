#!/usr/bin/env python3
"""`--fit` on the MNIST CNN against uniform N: budget, chosen counts, flash, validation and test accuracy.

Trains edgeclust.examples.mnist_cnn on a subset of MNIST, sets a seeded 10% of it apart as the validation set
(the builds never see it), then builds with the native backend (packed weights), each with the same
fine-tuning (--epochs at --lr, Adam, batch 64):
- `edgeclust.fit_to_board` with --flash-budget BYTES for the weights, tables and biases;
- `--clusters N` for each uniform N (16, 8, 4 by default; one that does not fit is still built and marked).
Flash is what the build's firmware keeps for the model's weights, index tables and biases (report.json's
budget.flash_parts); validation and test accuracy are the deployed int8 model's (TFLM's interpreter, which the
native firmware equals bit for bit).

    .venv/bin/python scripts/fit_mnist.py                      # 120,000 bytes, 10,000 training images
    .venv/bin/python scripts/fit_mnist.py --budget 120000 --train 10000 --epochs 3 --finetune-epochs 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "toolchain"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--budget", type=int, default=120_000, help="flash bytes for weights, tables and biases")
    parser.add_argument("--train", type=int, default=10_000, help="training images (of 60,000)")
    parser.add_argument("--test", type=int, default=10_000, help="test images (of 10,000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to train the base model")
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate")
    parser.add_argument("--uniform", default="16,8,4", help="uniform N to compare with")
    parser.add_argument("--board", default="qemu_mps2_an386")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras

    import edgeclust
    from edgeclust import data as edata
    from edgeclust import examples
    from edgeclust.pipeline.build import BuildOptions, build
    from edgeclust.pipeline.files import save_keras_atomic
    from edgeclust.pipeline.stages import ClusterOptions
    from edgeclust.pipeline.training import accuracy, validation_split
    from edgeclust.tflite import parity

    started = time.time()
    mnist = edata.load_mnist(args.mnist_dir).subset(train=args.train, test=args.test)
    x_train, y_train, x_val, y_val = validation_split(mnist.x_train, mnist.y_train, 0.1, args.seed)
    keras.utils.set_random_seed(args.seed)
    model = examples.compile_for_training(examples.mnist_cnn(seed=args.seed))
    model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=0)
    base_val = accuracy(model.predict(x_val, verbose=0), y_val)
    base_test = accuracy(model.predict(mnist.x_test, verbose=0), mnist.y_test)
    print(
        f"MNIST CNN trained {args.epochs} epochs on {len(x_train):,} images ({time.time() - started:.0f} s): "
        f"validation {base_val * 100:.2f}% on {len(x_val):,}, test {base_test * 100:.2f}% on {len(mnist.x_test):,} "
        "(float Keras)",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeclust-fit-") as tmp:
        tmp = Path(tmp)
        model_path, data_path = tmp / "mnist_cnn.keras", tmp / "mnist.npz"
        save_keras_atomic(model, model_path)
        edata.save_npz(data_path, edata.Dataset(x_train, y_train, mnist.x_test, mnist.y_test))
        finetune = ClusterOptions(
            clusters=16, init="kmeans++", epochs=args.finetune_epochs, learning_rate=args.lr, seed=args.seed
        )

        def options(name: str, cluster: ClusterOptions) -> BuildOptions:
            return BuildOptions(
                board=args.board, out_dir=tmp / name, backend="native", cluster=cluster, allow_over_budget=True
            )

        def measure(label: str, result) -> None:
            report = result.report
            parts = report["budget"]["flash_parts"]
            flash = sum(parts.get(k, 0) for k in ("weights", "tables", "biases"))
            deployed = (result.out_dir / "model_int8.tflite").read_bytes()
            val = accuracy(parity.run_tflm(deployed, x_val), y_val)
            test = report["parity"]["accuracy"]["firmware"]
            rows.append((label, flash, val, test))
            print(
                f"{label}: flash {flash:,} bytes, validation {val * 100:.2f}%, test {test * 100:.2f}% "
                f"({time.time() - started:.0f} s)",
                flush=True,
            )

        fitted = edgeclust.fit_to_board(
            model_path, data_path, options("fit", finetune), flash_budget=args.budget, on_line=print
        )
        rules = " ".join(fitted.plan.rules)
        measure(f"--fit ({rules})", fitted.build)
        for n in [int(v) for v in args.uniform.split(",")]:
            measure(f"uniform N={n}", build(model_path, data_path, options(f"n{n}", replace(finetune, clusters=n))))

    print()
    print(
        f"budget {args.budget:,} bytes (weights, tables, biases); fine-tuning {args.finetune_epochs} epoch(s) at lr "
        f"{args.lr:g}; unclustered float: validation {base_val * 100:.2f}%, test {base_test * 100:.2f}%"
    )
    print(f"| {'build':<58} | {'flash bytes':>11} | {'fits':>4} | {'validation':>10} | {'test':>7} |")
    print(f"|{'-' * 60}|{'-' * 13}|{'-' * 6}|{'-' * 12}|{'-' * 9}|")
    for label, flash, val, test in rows:
        fits = "yes" if flash <= args.budget else "no"
        print(f"| {label:<58} | {flash:>11,} | {fits:>4} | {val * 100:>9.2f}% | {test * 100:>6.2f}% |")
    fitting = [r for r in rows[1:] if r[1] <= args.budget]
    fit_row = rows[0]
    if fitting:
        best = max(fitting, key=lambda r: (r[2], r[3]))
        print(
            f"--fit against the best uniform N that fits ({best[0]}): validation {(fit_row[2] - best[2]) * 100:+.2f}, "
            f"test {(fit_row[3] - best[3]) * 100:+.2f} points, flash {fit_row[1] - best[1]:+,} bytes"
        )
    print(f"total {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
