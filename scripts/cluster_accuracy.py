"""MNIST accuracy of clustered models: 16, 8 and 4 clusters, fine-tuned to a target, at each learning rate.

Trains edgeclust.examples.mnist_cnn for --epochs (>= 3) on the MNIST training set (or --train-examples of
it), then for each N, initialisation and learning rate: cluster_weights (per tensor), fine-tune epoch by
epoch until the validation accuracy (a seeded 10% of the training data) is within the target of the
unclustered model's or --max-epochs have run (pipeline.training.finetune_to_target, what `--max-drop` does
in the CLI), strip_clustering, and measure test accuracy against the unclustered model.
Targets (issue 3): within 0.1 point at N=16, 0.3 at N=8, 1.0 at N=4.

    .venv/bin/python scripts/cluster_accuracy.py [--data ../shared/data/mnist] [--epochs 3]
    .venv/bin/python scripts/cluster_accuracy.py --train-examples 10000 --lrs 1e-5,1e-4   # ~15 min, 2 cores
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
    parser.add_argument("--epochs", type=int, default=3, help="epochs to train the base model")
    parser.add_argument("--train-examples", type=int, default=None, help="a subset of the 60,000 (default: all)")
    parser.add_argument("--clusters", default="16,8,4")
    parser.add_argument("--inits", default="KMEANS_PLUS_PLUS")
    parser.add_argument("--lrs", default="1e-4", help="fine-tuning learning rates (Adam), comma-separated")
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument(
        "--max-drop", type=float, default=None, help="validation target in points for every N (default: the issue's)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="seed of the base model's training")
    parser.add_argument(
        "--cluster-seeds", default="0", help="comma-separated seeds of the clustering (centroid draws); one row each"
    )
    args = parser.parse_args(argv)
    if args.epochs < 3:
        parser.error("--epochs must be >= 3 (the issue's protocol)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from edgeclust import cluster, data, examples
    from edgeclust.pipeline.training import finetune_to_target

    mnist = data.load_mnist(args.data).subset(train=args.train_examples)
    start = time.time()
    model = examples.compile_for_training(examples.mnist_cnn(seed=args.seed))
    model.fit(mnist.x_train, mnist.y_train, batch_size=128, epochs=args.epochs, verbose=0)

    def accuracy(m) -> float:
        out = m.predict(mnist.x_test, batch_size=512, verbose=0)
        return float(np.mean(np.argmax(out, -1) == mnist.y_test)) * 100

    base = accuracy(model)
    print(
        f"unclustered MNIST CNN, {args.epochs} epochs on {len(mnist.x_train):,} images: test accuracy {base:.2f}% "
        f"({time.time() - start:.0f} s)",
        flush=True,
    )
    print(
        f"fine-tune: Adam, batch {args.batch_size}, up to {args.max_epochs} epoch(s) until the validation drop is "
        "within the target; per-tensor clustering"
    )
    print(
        f"{'N':>3} {'init':17} {'seed':>4} {'lr':>6} {'as clustered':>12} {'fine-tuned':>10} {'delta':>7} "
        f"{'target':>7} {'ok':>3} {'epochs':>6} {'val. curve (points below)':<28} {'max unique':>10}",
        flush=True,
    )
    failures = 0
    for n in [int(v) for v in args.clusters.split(",")]:
        target = TARGETS.get(n, 1.0) if args.max_drop is None else args.max_drop
        for init in args.inits.split(","):
            for cluster_seed in [int(s) for s in args.cluster_seeds.split(",")]:
                for lr in [float(v) for v in args.lrs.split(",")]:
                    wrapped = cluster.cluster_weights(
                        model, n, getattr(cluster.CentroidInitialization, init), seed=cluster_seed
                    )
                    before = accuracy(cluster.strip_clustering(wrapped))
                    recovery = finetune_to_target(
                        wrapped,
                        model,
                        mnist.x_train,
                        mnist.y_train,
                        max_drop_points=target,
                        max_epochs=args.max_epochs,
                        learning_rate=lr,
                        batch_size=args.batch_size,
                        seed=args.seed,
                    )
                    stripped = cluster.strip_clustering(wrapped)
                    after = accuracy(stripped)
                    unique = max(len(np.unique(layer.get_weights()[0])) for layer in stripped.layers if layer.weights)
                    delta = after - base
                    ok = -delta <= target + 1e-9
                    failures += not ok
                    curve = " ".join(f"{p.drop_points:+.2f}" for p in recovery.curve)
                    print(
                        f"{n:>3} {init:17} {cluster_seed:>4} {lr:>6g} {before:11.2f}% {after:9.2f}% {delta:+7.2f} "
                        f"{-target:+7.1f} {'yes' if ok else 'NO':>3} {recovery.best_epoch:>6} {curve:<28} "
                        f"{unique:>10}",
                        flush=True,
                    )
    print(f"total {time.time() - start:.0f} s; {failures} configuration(s) outside the target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
