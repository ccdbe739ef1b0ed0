"""Every clusterable layer type, per tensor and per channel: clustered, fine-tuned, stripped."""

import keras
import numpy as np
import pytest
from tests.cluster.conftest import regression_fit, unique_counts

from edgeclust import cluster

N = 3  # every case has more than 3 weights per channel


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_layer_clusters_learns_and_strips_to_n_values(case, per_channel):
    model, x = case.build()
    before = [keras.ops.convert_to_numpy(k) for k, _ in case.kernels(model.get_layer("target"))]
    wrapped = cluster.cluster_weights(
        model, N, cluster.CentroidInitialization.LINEAR, cluster_per_channel=per_channel, seed=0
    )
    wrapper = wrapped.get_layer("cluster_target")
    assert isinstance(wrapper, cluster.ClusterWeights)
    assert len(wrapper.weight_specs) == len(before)

    regression_fit(wrapped, x, run_eagerly=per_channel)  # graph mode per tensor, eager per channel (time)

    learned = [keras.ops.convert_to_numpy(k) for k, _ in case.kernels(wrapper.layer)]
    for b, a in zip(before, learned):
        assert not np.allclose(a, b), "the original weights did not learn through the straight-through gradient"
    stripped = cluster.strip_clustering(wrapped)
    assert not cluster.is_clustered(stripped)
    for kernel, axes in case.kernels(stripped.get_layer("target")):
        counts = unique_counts(kernel, axes if per_channel else None)
        assert max(counts) <= N
        if not per_channel:
            assert max(counts) >= 2
    # the stripped model computes what the wrapper computes (inference uses up-to-date positions)
    np.testing.assert_allclose(stripped(x), wrapped(x), rtol=1e-5, atol=1e-5)


def test_forward_pass_uses_the_clustered_weight(case):
    model, x = case.build()
    wrapped = cluster.cluster_weights(model, N, seed=0)
    stripped = cluster.strip_clustering(wrapped)  # before any training: the initial assignment
    np.testing.assert_allclose(wrapped(x), stripped(x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(wrapped(x), model(x), atol=1e-6)


def test_biases_are_not_clustered():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, bias_initializer="random_normal")])
    bias = model.layers[0].bias.numpy()
    stripped = cluster.strip_clustering(cluster.cluster_weights(model, 2, seed=0))
    np.testing.assert_array_equal(stripped.layers[0].bias.numpy(), bias)
