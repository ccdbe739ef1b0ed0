"""Click options shared by several commands, so that each is spelled and documented once."""

from __future__ import annotations

import click

from edgeclust.pipeline.stages import INITIALIZATIONS, ClusterOptions


def clustering_options(func):
    """--clusters, --init, --per-channel, --preserve-sparsity, --fold-bn, --epochs, --lr, --batch-size, --seed,
    --layer, --max-drop, --max-epochs."""
    options = [
        click.option(
            "--clusters",
            "-n",
            type=click.IntRange(min=0),
            default=16,
            show_default=True,
            help="Distinct values per weight tensor (per channel with --per-channel); 0 skips clustering.",
        ),
        click.option(
            "--init",
            type=click.Choice(INITIALIZATIONS),
            default="kmeans++",
            show_default=True,
            help="Centroid initialisation.",
        ),
        click.option(
            "--per-channel", is_flag=True, help="N centroids per output channel (pairs with per-channel int8)."
        ),
        click.option("--preserve-sparsity", is_flag=True, help="Keep zero weights exactly zero."),
        click.option(
            "--fold-bn/--no-fold-bn",
            default=True,
            show_default=True,
            help="Fold BatchNormalization into the layer before it first, so the .tflite keeps N values.",
        ),
        click.option(
            "--epochs",
            type=click.IntRange(min=0),
            default=1,
            show_default=True,
            help="Fine-tuning epochs after clustering (needs --data).",
        ),
        click.option(
            "--lr",
            "learning_rate",
            type=click.FloatRange(min=0, min_open=True),
            default=1e-4,
            show_default=True,
            help="Fine-tuning learning rate (Adam).",
        ),
        click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for initialisation and training."),
        click.option(
            "--layer",
            "layers",
            multiple=True,
            callback=_layer_counts,
            metavar="NAME_OR_GLOB=N",
            help="A layer's own number of clusters (repeatable, later wins; N=0 leaves it unclustered).",
        ),
        click.option(
            "--max-drop",
            type=click.FloatRange(min=0),
            default=None,
            metavar="POINTS",
            help="Fine-tune epoch by epoch until the validation metric (10% of the training data, seeded) is "
            "at most POINTS worse than the unclustered model's, up to --max-epochs; keeps the best epoch. "
            "Classifiers: accuracy points; regression: how far the MSE may rise.",
        ),
        click.option(
            "--max-epochs",
            type=click.IntRange(min=1),
            default=5,
            show_default=True,
            help="The most epochs --max-drop fine-tunes.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _layer_counts(ctx, param, values) -> tuple[tuple[str, int], ...]:
    pairs = []
    for value in values:
        name, _, number = value.rpartition("=")
        if not name or not number.strip().isdigit() or int(number) == 1:
            raise click.BadParameter(
                f"expected NAME_OR_GLOB=N with N = 0 (unclustered) or N >= 2, e.g. --layer 'dense*=32'. "
                f"Received: {value!r}",
                ctx=ctx,
                param=param,
            )
        pairs.append((name, int(number)))
    return tuple(pairs)


def cluster_options_from(kwargs) -> ClusterOptions:
    return ClusterOptions(
        clusters=kwargs["clusters"],
        init=kwargs["init"],
        per_channel=kwargs["per_channel"],
        preserve_sparsity=kwargs["preserve_sparsity"],
        fold_bn=kwargs["fold_bn"],
        epochs=kwargs["epochs"],
        learning_rate=kwargs["learning_rate"],
        batch_size=kwargs["batch_size"],
        seed=kwargs["seed"],
        layers=kwargs["layers"],
        max_drop=kwargs["max_drop"],
        max_epochs=kwargs["max_epochs"],
    )
