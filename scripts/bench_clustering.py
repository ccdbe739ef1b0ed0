"""Clustered vs plain fine-tuning: training-step time and peak memory, with and without XLA.

Models: (a) the MNIST CNN (edgeclust.examples.mnist_cnn), (b) an MLP of 4 Dense 1024x1024 (+ Dense 10).
N = 8, 16, 32, 64, 256 (k-means++ init), Adam, batch 64.

Time: one process builds the plain model and every clustered one, then runs one training step of each in
turn, `--steps` times, on the same batches: its ratio is the median of per-turn ratios clustered / plain,
so what the shared machine does to one model it does to the other within milliseconds (timing models in
separate processes a minute apart gave ratios that moved by 0.2x between runs). Such a process is run
`--processes` times: the table gives the median of their ratios and the range (the same code gave an MLP
ratio of 1.17x in one process and 1.29x in the next on this 2-core machine). Every clustered step finds
each weight's nearest centroid (by comparison up to 16 clusters, by the local search beyond: see
edgeclust/cluster/kernels.py). "cpu" is process CPU time per step.
Memory: every configuration fits in its own fresh process: its peak RSS (VmHWM), and the increment of RSS
during fit() over the RSS just before it (weights, optimizer slots, gradients, activations, clustering
state, XLA's compiler).

    .venv/bin/python scripts/bench_clustering.py            # full table (~30 min on 2 cores)
    .venv/bin/python scripts/bench_clustering.py --jit off  # Keras' default compile only (~10 min)
    .venv/bin/python scripts/bench_clustering.py --quick --backend jax   # the same under KERAS_BACKEND=jax

Under JAX every model is jit-compiled (Keras' default there), whatever --jit says.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from proc_memory import peak_rss_mib, rss_mib

ROOT = Path(__file__).resolve().parents[1]


def _build(name: str):
    import keras

    from edgeclust import examples

    if name == "cnn":
        return examples.mnist_cnn(seed=0), (28, 28, 1)
    keras.utils.set_random_seed(0)
    layers = [keras.Input((1024,))] + [keras.layers.Dense(1024, activation="relu", name=f"dense{i}") for i in range(4)]
    return keras.Sequential(layers + [keras.layers.Dense(10, name="head")], name="mlp"), (1024,)


def _jit(keras, jit: bool):
    """XLA as asked on TensorFlow; JAX always compiles (an uncompiled JAX step is not what anyone runs)."""
    return "auto" if keras.backend.backend() == "jax" else jit


def run_one(args) -> dict:
    """Memory of one configuration, in this process: build, (cluster), compile, fit."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from edgeclust import cluster

    model, input_shape = _build(args.model)
    if args.clusters:
        model = cluster.cluster_weights(model, args.clusters, cluster.CentroidInitialization.KMEANS_PLUS_PLUS, seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=args.model == "mlp"),
        jit_compile=_jit(keras, args.jit),
    )
    rng = np.random.default_rng(0)
    n = args.batch_size * (args.steps + args.warmup)
    x = rng.random((n, *input_shape), dtype=np.float32)
    y = rng.integers(0, 10, n)
    rss_before = rss_mib()
    model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
    return {"peak_rss_mib": peak_rss_mib(), "fit_increment_mib": peak_rss_mib() - rss_before}


def run_interleaved(args) -> dict:
    """Step times of plain and every clustered model, built in this process and stepped in turn."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from edgeclust import cluster

    counts = [0, *[int(n) for n in args.clusters_list.split(",")]]
    models = {}
    for n in counts:
        model, input_shape = _build(args.model)
        if n:
            model = cluster.cluster_weights(model, n, cluster.CentroidInitialization.KMEANS_PLUS_PLUS, seed=0)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-5),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=args.model == "mlp"),
            jit_compile=_jit(keras, args.jit),
        )
        models[n] = model
    rng = np.random.default_rng(0)
    batches = [
        (rng.random((args.batch_size, *input_shape), dtype=np.float32), rng.integers(0, 10, args.batch_size))
        for _ in range(args.steps + args.warmup)
    ]
    wall = {n: [] for n in counts}
    cpu = {n: [] for n in counts}
    for step, (x, y) in enumerate(batches):
        for n, model in models.items():
            start = (time.perf_counter(), time.process_time())
            model.train_on_batch(x, y)
            if step >= args.warmup:
                wall[n].append(time.perf_counter() - start[0])
                cpu[n].append(time.process_time() - start[1])
    base_wall, base_cpu = np.array(wall[0]), np.array(cpu[0])
    return {
        str(n): {
            "median_ms": float(np.median(wall[n]) * 1e3),
            "median_x": float(np.median(np.array(wall[n]) / base_wall)),
            "cpu_ms": float(np.median(cpu[n]) * 1e3),
            "cpu_x": float(np.median(np.array(cpu[n]) / np.maximum(base_cpu, 1e-9))),
        }
        for n in counts
    }


def _subprocess(model: str, clusters, jit: bool, args, mode: str = "--one") -> dict:
    cmd = [
        sys.executable,
        __file__,
        mode,
        "--model",
        model,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--batch-size",
        str(args.batch_size),
    ]
    cmd += ["--clusters-list", clusters] if mode == "--interleaved" else ["--clusters", str(clusters)]
    if jit:
        cmd.append("--xla")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "toolchain"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_BACKEND": args.backend,
    }
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"configuration {model} N={clusters} jit={jit} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=8, help="steps not timed (tracing, first runs)")
    parser.add_argument("--processes", type=int, default=3, help="timing processes; the table gives their median")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="N = 16 and 256 only, 30 steps")
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--jit", choices=["both", "off", "on"], default="both")
    parser.add_argument(
        "--backend", choices=["tensorflow", "jax"], default="tensorflow", help="KERAS_BACKEND of the measured processes"
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="mlp", help=argparse.SUPPRESS)
    parser.add_argument("--clusters", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--interleaved", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clusters-list", default="", help=argparse.SUPPRESS)
    parser.add_argument("--xla", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one or args.interleaved:
        args.jit = args.xla
        print(json.dumps(run_interleaved(args) if args.interleaved else run_one(args)))
        return 0
    clusters = [16, 256] if args.quick else [8, 16, 32, 64, 256]
    jits = {"both": [False, True], "off": [False], "on": [True]}[args.jit]
    if args.quick:
        args.steps = min(args.steps, 30)
    if args.backend == "jax":
        jits = [True]
    print(
        f"backend {args.backend}; batch {args.batch_size}; Adam; k-means++. Time: plain and every N stepped in "
        f"turn in one process, {args.steps} turns after {args.warmup}; x plain = median of per-turn ratios, "
        f"median (and range) of {args.processes} such processes. "
        "Memory: each configuration fitted in its own process"
    )
    print(
        f"{'model':5} {'XLA':4} {'N':>5} {'median ms':>10} {'x plain':>8} {'x range':>11} {'cpu ms':>7} "
        f"{'x plain':>8} {'peak RSS MiB':>12} {'x plain':>8} {'fit +MiB':>9} {'x plain':>8}"
    )
    for model in args.models.split(","):
        for jit in jits:
            runs = [
                _subprocess(model, ",".join(map(str, clusters)), jit, args, mode="--interleaved")
                for _ in range(args.processes)
            ]
            memory = {n: _subprocess(model, n, jit, args) for n in [0, *clusters]}
            base = memory[0]
            for n in [0, *clusters]:
                m = memory[n]
                ratios = [run[str(n)]["median_x"] for run in runs]
                t = {key: statistics.median(run[str(n)][key] for run in runs) for key in runs[0][str(n)]}
                print(
                    f"{model:5} {'on' if jit else 'off':4} {n if n else 'plain':>5} {t['median_ms']:10.1f} "
                    f"{t['median_x']:8.2f} {f'{min(ratios):.2f}-{max(ratios):.2f}':>11} "
                    f"{t['cpu_ms']:7.1f} {t['cpu_x']:8.2f} {m['peak_rss_mib']:12.0f} "
                    f"{m['peak_rss_mib'] / base['peak_rss_mib']:8.2f} {m['fit_increment_mib']:9.0f} "
                    f"{m['fit_increment_mib'] / max(base['fit_increment_mib'], 1e-9):8.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
