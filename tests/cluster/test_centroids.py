"""Each initialisation on known inputs, determinism per seed, and the config's validation."""

import numpy as np
import pytest

from edgeclust.cluster import CentroidInitialization, GradientAggregation, centroids
from edgeclust.cluster.config import ClusteringConfig
from edgeclust.errors import ConfigError

VALUES = np.array([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0], np.float32)


def rng(seed=0):
    return np.random.default_rng(seed)


def test_linear_is_evenly_spaced_between_min_and_max():
    np.testing.assert_allclose(centroids.linear(VALUES, 5, rng()), [-1.0, 0.0, 1.0, 2.0, 3.0])


def test_random_is_sorted_uniform_within_range_and_seeded():
    c = centroids.random(VALUES, 50, rng(3))
    assert c.min() >= -1.0 and c.max() <= 3.0 and np.all(np.diff(c) >= 0)
    np.testing.assert_array_equal(c, centroids.random(VALUES, 50, rng(3)))
    assert not np.array_equal(c, centroids.random(VALUES, 50, rng(4)))


def test_density_based_follows_the_cumulative_distribution():
    values = np.concatenate([np.zeros(90), np.linspace(10, 11, 10)]).astype(np.float32)
    c = centroids.density_based(values, 4, rng())
    # quantiles 12.5%, 37.5%, 62.5%, 87.5%: dense mass at 0 gets every centroid
    np.testing.assert_allclose(c, [0, 0, 0, 0])
    c = centroids.density_based(np.arange(100, dtype=np.float32), 4, rng())
    np.testing.assert_allclose(c, np.quantile(np.arange(100), [0.125, 0.375, 0.625, 0.875]), rtol=1e-6)


def test_kmeans_plus_plus_finds_well_separated_clusters():
    r = rng(1)
    centres = np.array([-5.0, -1.0, 2.0, 7.0])
    values = (centres[r.integers(0, 4, 4000)] + r.normal(0, 0.05, 4000)).astype(np.float32)
    for seed in range(5):
        c = centroids.kmeans_plus_plus(values, 4, rng(seed))
        np.testing.assert_allclose(c, centres, atol=0.02)


def test_kmeans_1d_converges_to_segment_means():
    x = np.sort(np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0]))
    np.testing.assert_allclose(centroids.kmeans_1d(x, np.array([0.0, 5.0])), [1.0, 11.0])


@pytest.mark.parametrize("init", list(CentroidInitialization))
def test_every_init_is_deterministic_for_a_seed_and_sorted(init):
    values = np.random.default_rng(0).normal(size=3000).astype(np.float32)
    a = centroids.initial_centroids(values, 16, init, rng(7))
    b = centroids.initial_centroids(values, 16, init, rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (16,) and a.dtype == np.float32 and np.all(np.diff(a) >= 0)
    assert values.min() <= a.min() and a.max() <= values.max()


def test_preserve_sparsity_pins_centroid_zero():
    values = np.array([0, 0, 0, 1.0, 2.0, 3.0, -4.0], np.float32)
    c = centroids.initial_centroids(values, 3, CentroidInitialization.LINEAR, rng(), preserve_sparsity=True)
    np.testing.assert_allclose(c, [0.0, -4.0, 3.0])


def test_config_validates_with_keras_style_messages():
    with pytest.raises(
        ConfigError, match=r"`number_of_clusters` must be an integer >= 2. Received: number_of_clusters=1"
    ):
        ClusteringConfig(1)
    with pytest.raises(ValueError):
        ClusteringConfig(2.5)
    with pytest.raises(ConfigError, match="cluster_centroids_init"):
        ClusteringConfig(4, "SPLINE")
    assert ClusteringConfig(4, "kmeans++").cluster_centroids_init is CentroidInitialization.KMEANS_PLUS_PLUS
    assert (
        ClusteringConfig(4, cluster_gradient_aggregation="avg").cluster_gradient_aggregation is GradientAggregation.AVG
    )
    with pytest.raises(ConfigError, match="seed"):
        ClusteringConfig(4, seed=-1)
