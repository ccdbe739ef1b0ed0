"""Clustered vs plain fine-tuning: median train-step time and peak memory, with and without XLA.

Models: (a) the MNIST CNN (edgeclust.examples.mnist_cnn), (b) an MLP of 4 Dense 1024x1024 (+ Dense 10).
N = 8, 16, 32, 64, 256 (k-means++ init). Every configuration runs in its own fresh subprocess, so the
peak memory is that configuration's own: peak RSS of the process (VmHWM), and the increment
of RSS during fit() over the RSS just before it (the training state: weights, optimizer slots,
gradients, activations, clustering state). Step time: median (and mean) time between consecutive
on_train_batch_end callbacks after `--warmup` steps; the mean includes the steps that recompute the
pulling indices (every 100 steps by default), the median mostly does not. "cpu ms" is the median process
CPU time per step (all threads): steadier than wall time when other work shares the cores.

    .venv/bin/python scripts/bench_clustering.py            # full table (~25 min on 2 cores; --jit off ~10)
    .venv/bin/python scripts/bench_clustering.py --quick    # N = 16, 256; fewer steps
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

ROOT = Path(__file__).resolve().parents[1]


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    """This process's own high-water mark (VmHWM; getrusage's ru_maxrss survives exec, so it could report the
    parent's)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _build(name: str):
    import keras

    from edgeclust import examples

    if name == "cnn":
        return examples.mnist_cnn(seed=0), (28, 28, 1)
    keras.utils.set_random_seed(0)
    layers = [keras.Input((1024,))] + [keras.layers.Dense(1024, activation="relu", name=f"dense{i}")
                                       for i in range(4)]
    return keras.Sequential(layers + [keras.layers.Dense(10, name="head")], name="mlp"), (1024,)


def run_one(args) -> dict:
    """One configuration, in this process: build, (cluster), compile, fit, measure."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from edgeclust import cluster

    model, input_shape = _build(args.model)
    if args.clusters:
        model = cluster.cluster_weights(model, args.clusters, cluster.CentroidInitialization.KMEANS_PLUS_PLUS,
                                        seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=args.model == "mlp"),
                  jit_compile=args.jit)
    rng = np.random.default_rng(0)
    n = args.batch_size * (args.steps + args.warmup)
    x = rng.random((n, *input_shape), dtype=np.float32)
    y = rng.integers(0, 10, n)
    times: list[float] = []
    cpu: list[float] = []

    class Timer(keras.callbacks.Callback):
        last = None

        def on_train_batch_end(self, batch, logs=None):
            now = (time.perf_counter(), time.process_time())
            if self.last is not None:
                times.append(now[0] - self.last[0])
                cpu.append(now[1] - self.last[1])
            self.last = now

    rss_before = _rss_mib()
    model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[Timer()])
    steady = np.array(times[args.warmup - 1:])
    return {
        "median_ms": float(np.median(steady) * 1e3),
        "cpu_ms": float(np.median(cpu[args.warmup - 1:]) * 1e3),
        "mean_ms": float(np.mean(steady) * 1e3),
        "peak_rss_mib": _peak_rss_mib(),
        "fit_increment_mib": _peak_rss_mib() - rss_before,
        "steps": len(steady),
    }


def _subprocess(model: str, clusters: int, jit: bool, args) -> dict:
    cmd = [sys.executable, __file__, "--one", "--model", model, "--clusters", str(clusters),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size)]
    if jit:
        cmd.append("--xla")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "toolchain"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"configuration {model} N={clusters} jit={jit} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=8, help="steps not timed (tracing, first runs)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="N = 16 and 256 only, 30 steps")
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--rounds", type=int, default=3,
                        help="repeat plain and every N this many times, interleaved (machines are noisy)")
    parser.add_argument("--jit", choices=["both", "off", "on"], default="both")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="mlp", help=argparse.SUPPRESS)
    parser.add_argument("--clusters", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--xla", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        args.jit = args.xla
        print(json.dumps(run_one(args)))
        return 0
    clusters = [16, 256] if args.quick else [8, 16, 32, 64, 256]
    if args.quick:
        args.steps = min(args.steps, 30)
    jits = {"both": [False, True], "off": [False], "on": [True]}[args.jit]
    print(f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup}; Adam; k-means++; "
          f"each configuration a fresh process; {args.rounds} round(s), each running plain and every N side by "
          "side; ratios are clustered / plain within a round, then the median over rounds")
    print(f"{'model':5} {'XLA':4} {'N':>5} {'median ms':>10} {'x plain':>8} {'mean ms':>8} {'x plain':>8} "
          f"{'cpu ms':>7} {'x plain':>8} {'peak RSS MiB':>12} {'x plain':>8} {'fit +MiB':>9} {'x plain':>8}")
    keys = ["median_ms", "mean_ms", "cpu_ms", "peak_rss_mib", "fit_increment_mib"]
    for model in args.models.split(","):
        for jit in jits:
            rounds = []
            for _ in range(args.rounds):
                base = _subprocess(model, 0, jit, args)
                rounds.append({0: base, **{n: _subprocess(model, n, jit, args) for n in clusters}})
            for n in [0, *clusters]:
                cells = []
                for key in keys:
                    value = statistics.median(r[n][key] for r in rounds)
                    ratio = statistics.median(r[n][key] / max(r[0][key], 1e-9) for r in rounds)
                    cells.append((value, ratio))
                (med, med_x), (mean, mean_x), (cpu, cpu_x), (rss, rss_x), (inc, inc_x) = cells
                print(f"{model:5} {'on' if jit else 'off':4} {n if n else 'plain':>5} {med:10.1f} {med_x:8.2f} "
                      f"{mean:8.1f} {mean_x:8.2f} {cpu:7.1f} {cpu_x:8.2f} {rss:12.0f} {rss_x:8.2f} {inc:9.0f} "
                      f"{inc_x:8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
