#!/usr/bin/env python3
"""edgeclust vs tfmot 0.8.1 on the same model, data and settings, in one run, printed as one table.

Each measurement runs in its own subprocess: tfmot needs tf-keras (TF_USE_LEGACY_KERAS=1), which must
never reach edgeclust's process, and peak memory is only honest per process. Both sides start from the
same trained weights, fine-tune the same steps on the same batches, and convert to full int8.

    pip install -e ".[bench]"        # tf-keras + tensorflow-model-optimization 0.8.1
    python scripts/bench_vs_tfmot.py --mnist-dir ../shared/data/mnist

Defaults are the published experiment, 14 clusters, LINEAR, 1 epoch, batch 64, at the two learning rates of
issue 14 (1e-5 and 1e-4: each gets its own A/B from the same base model; --lr takes a comma-separated list).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "toolchain"))

from proc_memory import peak_rss_mib, rss_mib  # noqa: E402 - scripts/ is on sys.path as the script's folder

# ----------------------------------------------------------------------------- worker side


def _zipped(path: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "z.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.write(path, arcname=path.name)
        return target.stat().st_size


def _build(keras, input_shape=(28, 28, 1)):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def _step_timer(keras):
    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.rss_peak_in_fit = [], 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self._t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._t)

    return StepTimer()


def worker(args) -> dict:
    """Fine-tune (plain or clustered) with one toolkit; report step time, memory, accuracy, artefacts."""
    data = np.load(args.data)
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    weights = np.load(args.weights)
    weights = [weights[f"w{i}"] for i in range(len(weights.files))]
    out = Path(args.out_dir)

    if args.toolkit == "tfmot":
        import tensorflow as tf
        import tensorflow_model_optimization as tfmot

        keras = tf.keras
        tf.random.set_seed(args.seed)
        model = _build(keras)
        model.set_weights(weights)
        if args.mode == "clustered":
            cl = tfmot.clustering.keras
            init = getattr(cl.CentroidInitialization, args.init)
            model = cl.cluster_weights(model, number_of_clusters=args.clusters, cluster_centroids_init=init)
    else:
        import keras

        from edgeclust import cluster

        keras.utils.set_random_seed(args.seed)
        model = _build(keras)
        model.set_weights(weights)
        if args.mode == "clustered":
            init = getattr(cluster.CentroidInitialization, args.init)
            model = cluster.cluster_weights(model, args.clusters, init, seed=args.seed)

    model.compile(
        optimizer=keras.optimizers.Adam(float(args.lr)), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    timer = _step_timer(keras)
    rss_before = rss_mib()
    model.fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, shuffle=False, verbose=0, callbacks=[timer]
    )
    peak = peak_rss_mib()
    times = np.array(timer.times[5:]) if len(timer.times) > 10 else np.array(timer.times)

    if args.mode == "clustered":
        model = (
            tfmot.clustering.keras.strip_clustering(model)
            if args.toolkit == "tfmot"
            else cluster.strip_clustering(model)
        )
    accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0, batch_size=256), -1) == y_test))
    result = {
        "median_step_ms": float(np.median(times) * 1e3),
        "steps": len(timer.times),
        "peak_rss_mib": peak,
        "rss_before_fit_mib": rss_before,
        "fit_increment_mib": peak - rss_before,
        "test_accuracy": accuracy,
    }
    if args.mode == "clustered":
        saved = out / f"{args.toolkit}.{'h5' if args.toolkit == 'tfmot' else 'keras'}"
        model.save(saved)
        result["zipped_model_bytes"] = _zipped(saved)
        result["int8_tflite"] = str(_to_int8(model, x_train, out / f"{args.toolkit}_int8.tflite", args.toolkit))
        if args.toolkit == "edgeclust":  # what `edgeclust build` deploys: per-tensor int8 keeps N values
            result["int8_per_tensor_tflite"] = str(
                _to_int8(model, x_train, out / "edgeclust_int8_pt.tflite", args.toolkit, per_channel=False)
            )
    return result


def _to_int8(model, x_train, path: Path, toolkit: str, per_channel: bool = True) -> Path:
    """Full int8 with a batch-1 signature, the same recipe on both sides."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    calib = x_train[rng.choice(len(x_train), 500, replace=False)]
    if toolkit == "tfmot":
        fn = tf.function(
            lambda x: model(x, training=False), input_signature=[tf.TensorSpec((1, *x_train.shape[1:]), tf.float32)]
        )
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([c[None].astype(np.float32)] for c in calib)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
        path.write_bytes(converter.convert())
    else:
        from edgeclust.tflite import convert

        path.write_bytes(convert.to_tflite(model, quantize="int8", representative_data=calib, per_channel=per_channel))
    return path


# ----------------------------------------------------------------------------- parent side


def run_worker(toolkit: str, mode: str, common: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if toolkit == "tfmot":
        env["TF_USE_LEGACY_KERAS"] = "1"
    cmd = [sys.executable, __file__, "--worker", "--toolkit", toolkit, "--mode", mode, *common]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{toolkit}/{mode} worker failed:\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", default=str(HERE.parent.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--clusters", type=int, default=14)
    parser.add_argument("--init", default="LINEAR", choices=["LINEAR", "RANDOM", "DENSITY_BASED", "KMEANS_PLUS_PLUS"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", default="1e-5,1e-4", help="fine-tuning learning rate(s), comma-separated")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-epochs", type=int, default=3, help="epochs to train the base model")
    parser.add_argument("--train-examples", type=int, default=60000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    # worker-only arguments
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--toolkit", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import importlib.util

    if (
        importlib.util.find_spec("tensorflow_model_optimization") is None
        or importlib.util.find_spec("tf_keras") is None
    ):
        raise SystemExit(
            "needs the bench extra: pip install -e '.[bench]' (tf-keras and tensorflow-model-optimization)"
        )

    import keras

    from edgeclust import data as edata

    mnist = edata.load_mnist(args.mnist_dir).subset(train=args.train_examples)
    with tempfile.TemporaryDirectory(prefix="bench-vs-tfmot-") as tmp:
        tmp = Path(tmp)
        print(
            f"training the base MNIST CNN ({args.train_epochs} epochs on {len(mnist.x_train):,} images) ...",
            file=sys.stderr,
        )
        keras.utils.set_random_seed(args.seed)
        base = _build(keras)
        base.compile(
            optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        base.fit(mnist.x_train, mnist.y_train, batch_size=128, epochs=args.train_epochs, verbose=0)
        base_acc = float(np.mean(np.argmax(base.predict(mnist.x_test, verbose=0), -1) == mnist.y_test))
        np.savez(tmp / "weights.npz", **{f"w{i}": w for i, w in enumerate(base.get_weights())})
        np.savez(
            tmp / "data.npz", x_train=mnist.x_train, y_train=mnist.y_train, x_test=mnist.x_test, y_test=mnist.y_test
        )
        tables = {}
        for lr in [float(v) for v in str(args.lr).split(",")]:
            tables[lr] = _ab(args, tmp, lr)
    for lr, results in tables.items():
        _print_table(args, base_acc, lr, results)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "base_accuracy": base_acc,
                    **{f"lr={lr:g}/{t}/{m}": v for lr, results in tables.items() for (t, m), v in results.items()},
                },
                indent=2,
            )
        )


def _ab(args, tmp: Path, lr: float) -> dict:
    """Plain and clustered fine-tuning with both toolkits at one learning rate, from the same base weights."""
    from edgeclust.tflite import inspect

    common = [
        "--data",
        str(tmp / "data.npz"),
        "--weights",
        str(tmp / "weights.npz"),
        "--out-dir",
        str(tmp),
        "--clusters",
        str(args.clusters),
        "--init",
        args.init,
        "--epochs",
        str(args.epochs),
        "--lr",
        str(lr),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
    ]
    results = {}
    for toolkit in ("tfmot", "edgeclust"):
        for mode in ("plain", "clustered"):
            print(f"lr {lr:g}, {toolkit}: {mode} fine-tuning ...", file=sys.stderr)
            results[(toolkit, mode)] = run_worker(toolkit, mode, common)
    for toolkit in ("tfmot", "edgeclust"):
        c = results[(toolkit, "clustered")]
        blob = Path(c["int8_tflite"]).read_bytes()
        stats = inspect.inspect_weights(blob)
        c["int8_bytes"] = len(blob)
        c["int8_max_unique_per_tensor"] = max(s.unique_values for s in stats)
        c["int8_max_unique_per_channel"] = max(s.max_unique_per_channel for s in stats)
    per_tensor = Path(results[("edgeclust", "clustered")]["int8_per_tensor_tflite"]).read_bytes()
    results[("edgeclust", "clustered")]["int8_per_tensor_max_unique"] = max(
        s.unique_values for s in inspect.inspect_weights(per_tensor)
    )
    results[("edgeclust", "clustered")]["int8_per_tensor_bytes"] = len(per_tensor)
    return results


def _print_table(args, base_acc: float, lr: float, results: dict) -> None:
    rows = []
    for label, fn in [
        ("step time, clustered / plain (median)", lambda p, c: f"{c['median_step_ms'] / p['median_step_ms']:.2f}x"),
        ("step time clustered, ms", lambda p, c: f"{c['median_step_ms']:.1f}"),
        ("peak RSS, clustered / plain", lambda p, c: f"{c['peak_rss_mib'] / p['peak_rss_mib']:.2f}x"),
        (
            "fit memory increment, clustered / plain",
            lambda p, c: f"{c['fit_increment_mib'] / max(p['fit_increment_mib'], 1e-9):.2f}x",
        ),
        ("peak RSS clustered, MiB", lambda p, c: f"{c['peak_rss_mib']:.0f}"),
        ("test accuracy, plain fine-tuning", lambda p, c: f"{p['test_accuracy']:.4f}"),
        ("test accuracy after clustering", lambda p, c: f"{c['test_accuracy']:.4f}"),
        ("int8 .tflite, max unique values per tensor", lambda p, c: str(c["int8_max_unique_per_tensor"])),
        ("int8 .tflite, max unique values per channel", lambda p, c: str(c["int8_max_unique_per_channel"])),
        ("int8 .tflite bytes", lambda p, c: f"{c['int8_bytes']:,}"),
        ("zipped clustered model bytes", lambda p, c: f"{c['zipped_model_bytes']:,}"),
        (
            "per-tensor int8 (edgeclust build), max unique per tensor",
            lambda p, c: str(c.get("int8_per_tensor_max_unique", "-")),
        ),
    ]:
        rows.append((label, *(fn(results[(t, "plain")], results[(t, "clustered")]) for t in ("tfmot", "edgeclust"))))
    print(
        f"\nMNIST CNN, base test accuracy {base_acc:.4f}; {args.clusters} clusters, {args.init}, "
        f"{args.epochs} epoch(s) at lr {lr:g}, batch {args.batch_size}"
    )
    widths = [max(len(r[i]) for r in rows + [("", "tfmot 0.8.1 (tf-keras)", "edgeclust (Keras 3)")]) for i in range(3)]
    header = ("", "tfmot 0.8.1 (tf-keras)", "edgeclust (Keras 3)")
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  {r[2].rjust(widths[2])}")


if __name__ == "__main__":
    main()
