"""Per-layer numbers of clusters: {layer name or glob: N}, N=0 leaves a layer unclustered."""

import keras
import numpy as np
import pytest
from tests.cluster.conftest import regression_fit, unique_counts

from edgeclust import cluster
from edgeclust.cluster.layer_counts import resolve_layer_counts
from edgeclust.errors import ConfigError


def model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, name="dense_1")(x)
    x = keras.layers.Dense(16, name="dense_2")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


X = np.random.default_rng(0).normal(size=(16, 8, 8, 2)).astype(np.float32)


def test_each_layer_gets_its_own_n_and_zero_leaves_a_layer_alone():
    original = model()
    wrapped = cluster.cluster_weights(original, 16, seed=0, layer_clusters={"dense_*": 8, "dense_2": 4, "conv": 0})
    report = cluster.clustering_report(wrapped)
    assert {(w.layer_name, w.number_of_clusters) for w in report.clustered} == {
        ("dense_1", 8),
        ("dense_2", 4),
        ("head", 16),
    }
    assert [(s.layer_name, s.reason) for s in report.skipped] == [
        ("conv", "left unclustered (layer_clusters gives it N=0)")
    ]
    regression_fit(wrapped, X)
    stripped = cluster.strip_clustering(wrapped)
    assert max(unique_counts(stripped.get_layer("dense_1").kernel)) <= 8
    assert max(unique_counts(stripped.get_layer("dense_2").kernel)) <= 4
    assert max(unique_counts(stripped.get_layer("head").kernel)) <= 16
    assert max(unique_counts(stripped.get_layer("conv").kernel)) > 16  # trained, never clustered
    assert report.clusters_by_tensor() == {"dense_1/kernel": 8, "dense_2/kernel": 4, "head/kernel": 16}


def test_later_entries_win_and_mistakes_are_named():
    names = ["conv", "dense_1", "dense_2"]
    assert resolve_layer_counts(names, 16, {"dense_2": 4, "dense_*": 8}) == {"conv": 16, "dense_1": 8, "dense_2": 8}
    with pytest.raises(ConfigError, match=r"'dense3' matches no clusterable layer; .*conv, dense_1, dense_2"):
        resolve_layer_counts(names, 16, {"dense3": 8})
    with pytest.raises(ConfigError, match=r"0 \(leave it unclustered\) or an integer >= 2. Received: 1"):
        cluster.cluster_weights(model(), 16, layer_clusters={"conv": 1})
    with pytest.raises(ValueError, match="applies to a model"):
        cluster.cluster_weights(keras.layers.Dense(3), 4, layer_clusters={"x": 2})
