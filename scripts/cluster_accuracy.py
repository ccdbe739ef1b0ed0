"""MNIST accuracy of clustered models: the issue's CNN, each initialisation, 16, 8 and 4 clusters.

Trains edgeclust.examples.mnist_cnn for --epochs (>= 3) on the full MNIST training set, then for each
N in 16, 8, 4 and each CentroidInitialization: cluster_weights (per tensor), fine-tune 1 epoch at lr 1e-5
(Adam, batch 64), strip_clustering, and measure test accuracy against the unclustered model.
Targets (issue 3): within 0.1 point at N=16, 0.3 at N=8, 1.0 at N=4.

    .venv/bin/python scripts/cluster_accuracy.py [--data ../shared/data/mnist] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {16: 0.1, 8: 0.3, 4: 1.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--clusters", default="16,8,4")
    parser.add_argument("--inits", default="KMEANS_PLUS_PLUS,LINEAR,DENSITY_BASED,RANDOM")
    parser.add_argument("--finetune-lr", type=float, default=1e-5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="seed of the base model's training")
    parser.add_argument("--cluster-seeds", default="0",
                        help="comma-separated seeds of the clustering (centroid draws); one row each")
    args = parser.parse_args(argv)
    if args.epochs < 3:
        parser.error("--epochs must be >= 3 (the issue's protocol)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from edgeclust import cluster, data, examples

    mnist = data.load_mnist(args.data)
    start = time.time()
    model = examples.compile_for_training(examples.mnist_cnn(seed=args.seed))
    model.fit(mnist.x_train, mnist.y_train, batch_size=128, epochs=args.epochs, verbose=0)

    def accuracy(m) -> float:
        out = m.predict(mnist.x_test, batch_size=512, verbose=0)
        return float(np.mean(np.argmax(out, -1) == mnist.y_test)) * 100

    base = accuracy(model)
    print(f"unclustered MNIST CNN, {args.epochs} epochs: test accuracy {base:.2f}% "
          f"({time.time() - start:.0f} s)", flush=True)
    print(f"fine-tune: 1 epoch, Adam lr {args.finetune_lr:g}, batch {args.batch_size}; per-tensor clustering")
    print(f"{'N':>3} {'init':17} {'seed':>4} {'no fine-tune':>12} {'fine-tuned':>10} {'delta':>7} {'target':>7} "
          f"{'ok':>3} {'max unique':>10}", flush=True)
    failures = 0
    for n in [int(v) for v in args.clusters.split(",")]:
        for init, cluster_seed in [(i, int(s)) for i in args.inits.split(",") for s in args.cluster_seeds.split(",")]:
            wrapped = cluster.cluster_weights(model, n, getattr(cluster.CentroidInitialization, init),
                                              seed=cluster_seed)
            before = accuracy(cluster.strip_clustering(wrapped))
            keras.utils.set_random_seed(args.seed)
            wrapped.compile(optimizer=keras.optimizers.Adam(args.finetune_lr),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            wrapped.fit(mnist.x_train, mnist.y_train, batch_size=args.batch_size, epochs=1, verbose=0)
            stripped = cluster.strip_clustering(wrapped)
            after = accuracy(stripped)
            unique = max(len(np.unique(layer.get_weights()[0])) for layer in stripped.layers if layer.weights)
            delta = after - base
            ok = -delta <= TARGETS.get(n, 1.0) + 1e-9
            failures += not ok
            print(f"{n:>3} {init:17} {cluster_seed:>4} {before:11.2f}% {after:9.2f}% {delta:+7.2f} {-TARGETS.get(n, 1.0):+7.1f} "
                  f"{'yes' if ok else 'NO':>3} {unique:>10}", flush=True)
    print(f"total {time.time() - start:.0f} s; {failures} configuration(s) outside the target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
