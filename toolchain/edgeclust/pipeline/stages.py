"""The model-level steps as functions over models and bytes (cluster, strip, convert) and their options;
build_steps.py and files.py chain them."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from edgeclust.data import Dataset
from edgeclust.errors import ConfigError
from edgeclust.pipeline.progress import Stages
from edgeclust.pipeline.training import finetune, finetune_to_target

INITIALIZATIONS = ("kmeans++", "linear", "random", "density")
DEFAULT_CALIBRATION_SAMPLES = 500


@dataclass(frozen=True)
class ClusterOptions:
    """How to cluster and fine-tune. clusters=0 means: leave the weights as they are."""

    clusters: int = 16
    init: str = "kmeans++"
    per_channel: bool = False
    preserve_sparsity: bool = False
    fold_bn: bool = True
    epochs: int = 1
    # 1e-4: with the nearest centroid found at every step it recovers as far as 1e-5 or further in the same
    # epoch (MNIST CNN, N=8: +0.53 against +0.45 points; scripts/cluster_accuracy.py) and 1e-3 loses nothing
    # (tests/cluster/test_finetuning.py); the issue measured the old stale indices diverging at 1e-4
    learning_rate: float = 1e-4
    batch_size: int = 64
    seed: int = 0
    layers: tuple[tuple[str, int], ...] = ()  # (layer name or glob, N): later entries win; N=0 leaves it alone
    # fine-tune epoch by epoch until the metric is at most this much worse: accuracy points, or MSE (regression)
    max_drop: float | None = None
    max_epochs: int = 5  # the most epochs --max-drop fine-tunes

    def __post_init__(self):
        if self.clusters != 0 and (not isinstance(self.clusters, int) or self.clusters < 2):
            raise ConfigError(
                f"`clusters` must be an integer >= 2 (or 0 to skip clustering). Received: clusters={self.clusters}"
            )
        if self.init not in INITIALIZATIONS:
            raise ConfigError(f"`init` must be one of {', '.join(INITIALIZATIONS)}. Received: init={self.init!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def centroid_initialization(name: str):
    from edgeclust.cluster import CentroidInitialization

    return {
        "kmeans++": CentroidInitialization.KMEANS_PLUS_PLUS,
        "linear": CentroidInitialization.LINEAR,
        "random": CentroidInitialization.RANDOM,
        "density": CentroidInitialization.DENSITY_BASED,
    }[name]


def has_batch_norm(model) -> bool:
    import keras

    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in model._flatten_layers())


@dataclass(frozen=True, eq=False)
class ClusterResult:
    """The stripped model, the report of what was clustered (initial centroids), whether BN was folded, and
    what fine-tuning to a target did (with max_drop)."""

    model: object
    report: object | None
    folded_batch_norm: bool
    recovery: object | None = None  # training.Recovery


def cluster_model(
    model,
    data: Dataset | None,
    options: ClusterOptions,
    stages: Stages | None = None,
    *,
    strip: bool = True,
    task=None,
) -> ClusterResult:
    """Fold BatchNorm (if asked and present), cluster, fine-tune on data (if given) for the model's task
    (pipeline/task.Task; None: inferred from the model and data), strip (unless told not to)."""
    from edgeclust import cluster
    from edgeclust.pipeline.training import model_task

    if data is not None and task is None:
        task = model_task(model, data)

    folded = False
    if options.fold_bn and has_batch_norm(model):
        model = cluster.fold_batch_norms(model)
        folded = True
        if stages:
            stages.info("folded BatchNormalization into the layers before it")
    if options.clusters == 0:
        return ClusterResult(model, None, folded)
    with warnings.catch_warnings():  # said once, below, for all the layers it concerns
        warnings.filterwarnings("ignore", message=r"Layer .* does not have enough weights", category=UserWarning)
        wrapped = _cluster_weights(cluster, model, options)
    report = cluster.clustering_report(wrapped)
    if stages:
        stages.info(
            f"clustering {len(report.clustered)} weight tensor(s) to {options.clusters} values "
            f"{'per channel' if options.per_channel else 'per tensor'} ({options.init})"
        )
        for skipped in report.skipped:
            stages.info(f"skipped {skipped.layer_name}: {skipped.reason}")
        if report.unchanged:
            stages.info(unchanged_line(report.unchanged))
    if data is not None and not report.clustered:
        if stages:
            stages.info("no weight tensor to cluster (each holds at most its N values already): fine-tuning skipped")
        return ClusterResult(cluster.strip_clustering(wrapped) if strip else wrapped, report, folded)
    if data is not None and options.max_drop is not None:
        recovery = finetune_to_target(
            wrapped,
            model,
            data.x_train,
            data.y_train,
            max_drop_points=options.max_drop,
            max_epochs=options.max_epochs,
            learning_rate=options.learning_rate,
            batch_size=options.batch_size,
            seed=options.seed,
            stages=stages,
            task=task,
        )
        if stages:
            verdict = "met" if recovery.target_met else "NOT met"
            if task.classification:
                how = f"{recovery.best.drop_points:+.2f} points below the unclustered model"
            else:
                how = f"{task.metric} {recovery.best.drop_points:+.6g} above the unclustered model's"
            stages.info(
                f"target {options.max_drop:g} {task.drop_unit} {verdict}: kept epoch {recovery.best_epoch}, {how}"
            )
        return ClusterResult(cluster.strip_clustering(wrapped) if strip else wrapped, report, folded, recovery)
    if data is not None and options.epochs > 0:
        finetune(
            wrapped,
            data.x_train,
            data.y_train,
            epochs=options.epochs,
            learning_rate=options.learning_rate,
            batch_size=options.batch_size,
            seed=options.seed,
            stages=stages,
            task=task,
        )
    return ClusterResult(cluster.strip_clustering(wrapped) if strip else wrapped, report, folded)


def _cluster_weights(cluster, model, options: ClusterOptions):
    return cluster.cluster_weights(
        model,
        options.clusters,
        centroid_initialization(options.init),
        cluster_per_channel=options.per_channel,
        preserve_sparsity=options.preserve_sparsity,
        seed=options.seed,
        layer_clusters=dict(options.layers) or None,
    )


def unchanged_line(unchanged) -> str:
    """One note for every weight left as it is because it has at most N elements (so it cannot hold more)."""
    import math
    import re

    def what(u) -> tuple[str, str]:
        name = u.layer_name if u.weight_name == "kernel" else f"{u.layer_name}/{u.weight_name}"
        per_channel = re.search(r": (\d+) per channel", u.reason)
        size = f"{math.prod(u.shape):,} weights" + (f", {per_channel.group(1)} per channel" if per_channel else "")
        return name, size

    if len(unchanged) == 1:
        name, size = what(unchanged[0])
        n = unchanged[0].number_of_clusters
        return f"note: layer {name} has {size}, left unclustered (it cannot hold more than {n} values)"
    shown = ", ".join(f"{name} ({size})" for name, size in map(what, unchanged))
    return f"note: layers {shown} left unclustered (none can hold more than its N values)"


def strip_if_clustered(model, stages: Stages | None = None):
    """A model still carrying clustering wrappers converts 16x larger: strip it first and say so."""
    from edgeclust import cluster

    if cluster.is_clustered(model):
        if stages:
            stages.info("the model still carries clustering wrappers: stripped them before converting")
        return cluster.strip_clustering(model), True
    return model, False


def convert_model(
    model,
    *,
    quantize: str,
    representative: np.ndarray | None,
    per_channel: bool,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
) -> bytes:
    """A stripped keras.Model to .tflite bytes (float32, or full int8 calibrated on up to `calibration_samples`
    examples the converter draws, seeded, from `representative`)."""
    from edgeclust.tflite import convert

    return convert.to_tflite(
        model,
        quantize=quantize,
        representative_data=representative,
        per_channel=per_channel,
        num_calibration=calibration_samples,
    )


def calibration_count(representative: np.ndarray | None, calibration_samples: int) -> int:
    """How many examples the int8 converter calibrates on (what the report shows)."""
    return 0 if representative is None else min(len(representative), calibration_samples)
