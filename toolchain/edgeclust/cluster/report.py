"""What a clustered model clusters and what it skips, and why: frozen dataclasses, never printed here."""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from edgeclust.cluster.api import SKIP_REASON_ATTR, UNCHANGED_ATTR
from edgeclust.cluster.clusterable import skip_reason
from edgeclust.cluster.wrapper import ClusterWeights


@dataclass(frozen=True)
class ClusteredWeight:
    """One clustered weight: where, its shape, N, and its values and centroids when clustering began."""

    layer_name: str
    weight_name: str
    shape: tuple
    number_of_clusters: int
    per_channel: bool
    initial_centroids: np.ndarray = field(repr=False)  # (k,) or (channels, k)
    original_values: np.ndarray = field(repr=False)  # the weight before clustering


@dataclass(frozen=True)
class SkippedLayer:
    """A layer with weights that was left unclustered, and why."""

    layer_name: str
    layer_class: str
    reason: str


@dataclass(frozen=True)
class UnchangedTensor:
    """A clusterable weight left as it is because it cannot hold more than N values (N or fewer weights,
    per channel with cluster_per_channel)."""

    layer_name: str
    weight_name: str
    shape: tuple
    number_of_clusters: int
    per_channel: bool
    reason: str


@dataclass(frozen=True)
class ClusteringReport:
    """Everything cluster_weights decided about a model."""

    clustered: list[ClusteredWeight]
    skipped: list[SkippedLayer]
    unchanged: list[UnchangedTensor] = field(default_factory=list)

    def clusters_by_tensor(self) -> dict[str, int]:
        """{"layer/weight": N} of every clustered or unchanged weight: the most values each may hold."""
        return {f"{w.layer_name}/{w.weight_name}": w.number_of_clusters for w in [*self.clustered, *self.unchanged]}


def _layers(model):
    if isinstance(model, (list, tuple)):
        for item in model:
            yield from _layers(item)
    elif isinstance(model, ClusterWeights):
        yield model
    elif isinstance(model, keras.Model):
        for layer in model.layers:
            yield from _layers(layer)
    elif isinstance(model, keras.layers.Layer):
        yield model


def clustering_report(wrapped_model) -> ClusteringReport:
    """The report of a model (or layer, or list of layers) returned by cluster_weights."""
    clustered, skipped, unchanged = [], [], []
    for layer in _layers(wrapped_model):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, ClusterWeights):
            cfg = layer.clustering
            unchanged += [
                UnchangedTensor(
                    layer.layer.name, u.name, u.shape, cfg.number_of_clusters, cfg.cluster_per_channel, u.reason
                )
                for u in layer.unchanged_weights
            ]
            for i, spec in enumerate(layer.weight_specs):
                clustered.append(
                    ClusteredWeight(
                        layer_name=layer.layer.name,
                        weight_name=spec.name,
                        shape=tuple(spec.variable(layer.layer).shape),
                        number_of_clusters=cfg.number_of_clusters,
                        per_channel=cfg.cluster_per_channel,
                        initial_centroids=layer.initial_centroids(i),
                        original_values=layer.original_values(i),
                    )
                )
        elif getattr(layer, UNCHANGED_ATTR, None):
            k, per_channel = getattr(layer, UNCHANGED_ATTR)[0], getattr(layer, UNCHANGED_ATTR)[1]
            unchanged += [
                UnchangedTensor(layer.name, u.name, u.shape, k, per_channel, u.reason)
                for u in getattr(layer, UNCHANGED_ATTR)[2]
            ]
        elif layer.weights:
            reason = getattr(layer, SKIP_REASON_ATTR, None) or skip_reason(layer)
            skipped.append(SkippedLayer(layer.name, type(layer).__name__, reason))
    return ClusteringReport(clustered, skipped, unchanged)
