"""The clustering settings: two string enums and one frozen, validated config."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgeclust.errors import ConfigError


class CentroidInitialization(enum.StrEnum):
    """How the initial centroids of a weight tensor are chosen (tfmot's names)."""

    LINEAR = "LINEAR"  # evenly spaced between min and max
    RANDOM = "RANDOM"  # uniform between min and max; accuracy depends on the draw (README), a bad one loses points
    DENSITY_BASED = "DENSITY_BASED"  # evenly spaced on the weights' cumulative distribution
    KMEANS_PLUS_PLUS = "KMEANS_PLUS_PLUS"  # k-means++ seeding, then k-means on the weights


class GradientAggregation(enum.StrEnum):
    """How the gradients of the weights of one cluster are combined into its centroid's gradient."""

    SUM = "SUM"
    AVG = "AVG"  # the sum divided by the cluster's size


def _enum_value(enum_class, value, argument: str):
    if isinstance(value, enum_class):
        return value
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_").replace("+", "_PLUS")
        aliases = {
            "KMEANS_PLUS_PLUS": "KMEANS_PLUS_PLUS",
            "KMEANS": "KMEANS_PLUS_PLUS",
            "DENSITY": "DENSITY_BASED",
            "AVERAGE": "AVG",
            "MEAN": "AVG",
        }
        key = aliases.get(key, key)
        if key in enum_class.__members__:
            return enum_class[key]
    choices = ", ".join(f"{enum_class.__name__}.{m}" for m in enum_class.__members__)
    raise ConfigError(f"`{argument}` must be one of {choices}. Received: {argument}={value!r}")


@dataclass(frozen=True)
class ClusteringConfig:
    """What cluster_weights was asked for, validated on construction."""

    number_of_clusters: int
    cluster_centroids_init: CentroidInitialization = CentroidInitialization.KMEANS_PLUS_PLUS
    cluster_per_channel: bool = False
    preserve_sparsity: bool = False
    cluster_gradient_aggregation: GradientAggregation = GradientAggregation.SUM
    seed: int | None = None

    def __post_init__(self):
        k = self.number_of_clusters
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ConfigError(f"`number_of_clusters` must be an integer >= 2. Received: number_of_clusters={k!r}")
        object.__setattr__(
            self,
            "cluster_centroids_init",
            _enum_value(CentroidInitialization, self.cluster_centroids_init, "cluster_centroids_init"),
        )
        object.__setattr__(
            self,
            "cluster_gradient_aggregation",
            _enum_value(GradientAggregation, self.cluster_gradient_aggregation, "cluster_gradient_aggregation"),
        )
        for name in ("cluster_per_channel", "preserve_sparsity"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"`{name}` must be True or False. Received: {name}={getattr(self, name)!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"`seed` must be None or an integer >= 0. Received: seed={self.seed!r}")
