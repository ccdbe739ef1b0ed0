"""Keras 3 weight clustering (tfmot.clustering.keras's API): wrap, fine-tune, strip.

Keras and numpy; kernels.py alone uses TensorFlow, lazily, for the XLA-compiled lookups and the training C ops
(cpu_build.py compiles them): DEVELOPERS.md says why. Never edgeclust.tflite or codegen.
"""

from edgeclust.cluster.api import cluster_scope, cluster_weights, is_clustered, strip_clustering
from edgeclust.cluster.batchnorm import fold_batch_norms
from edgeclust.cluster.clusterable import ClusterableLayer
from edgeclust.cluster.config import CentroidInitialization, GradientAggregation
from edgeclust.cluster.report import clustering_report
from edgeclust.cluster.wrapper import ClusterWeights

__all__ = [
    "CentroidInitialization",
    "ClusterWeights",
    "ClusterableLayer",
    "GradientAggregation",
    "cluster_scope",
    "cluster_weights",
    "clustering_report",
    "fold_batch_norms",
    "is_clustered",
    "strip_clustering",
]
