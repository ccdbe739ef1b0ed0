"""The maths: nearest centroids, the clustered weight and its gradients (finite differences, STE), with both
kernels (XLA-compiled on TensorFlow, and the keras.ops ones other backends use)."""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import ops

from edgeclust import cluster
from edgeclust.cluster import algorithm, kernels


@pytest.fixture(params=["xla", "keras.ops"])
def kernel(request, monkeypatch):
    """Runs a test with the XLA-compiled kernels, then with the keras.ops ones."""
    monkeypatch.setattr(kernels, "USE_XLA", request.param == "xla")
    return request.param


# the kernel fixture sets a module flag once per test; every example runs under the same value
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(k=st.integers(2, 300), n=st.integers(1, 300), seed=st.integers(0, 2**16), xla=st.booleans())
def test_nearest_matches_argmin_and_lookup_takes_the_centroids(k, n, seed, xla, kernel):
    r = np.random.default_rng(seed)
    w = r.normal(size=n).astype(np.float32)
    c = r.normal(size=k).astype(np.float32)  # unsorted on purpose
    idx = np.asarray(algorithm.nearest_indices(w, c, channel_axes=None, preserve_sparsity=False, xla=xla))
    looked_up = np.asarray(algorithm.lookup(c, idx, (n,)))
    np.testing.assert_array_equal(np.abs(w - c[idx]), np.abs(w[:, None] - c[None, :]).min(axis=1))
    np.testing.assert_array_equal(looked_up, c[idx])


def test_nearest_per_channel_uses_each_channels_centroids():
    r = np.random.default_rng(0)
    w = r.normal(size=(3, 5, 4)).astype(np.float32)
    c = r.normal(size=(5, 6)).astype(np.float32)  # channels on axis 1
    idx = np.asarray(algorithm.nearest_indices(w, c, channel_axes=(1,), preserve_sparsity=False))
    expected = np.argmin(np.abs(w[..., None] - c[None, :, None, :]), -1) + 6 * np.arange(5)[None, :, None]
    np.testing.assert_array_equal(idx, expected)


def _wrapped_dense(k=4, **kwargs):
    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense(5, use_bias=False)
    dense.build((None, 7))
    return cluster.ClusterWeights(dense, k, cluster.CentroidInitialization.LINEAR, seed=0, **kwargs), \
        np.random.default_rng(0).normal(size=(3, 7)).astype(np.float32)


def _loss(y):
    return ops.sum(ops.sin(y) * ops.arange(1, 1 + y.shape[-1], dtype="float32"))


@pytest.mark.parametrize("aggregation", ["SUM", "AVG"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_centroid_gradients_match_finite_differences(aggregation, per_channel, kernel):
    import tensorflow as tf

    wrapper, x = _wrapped_dense(cluster_gradient_aggregation=aggregation, cluster_per_channel=per_channel)
    wrapper(x)
    centroids = wrapper._centroid_vars[0]
    with tf.GradientTape() as tape:
        loss = _loss(wrapper(x, training=False))
    grad = tape.gradient(loss, centroids).numpy()
    c0 = centroids.numpy().copy()
    numeric = np.zeros_like(c0, dtype=np.float64)
    eps = 1e-2
    for j in np.ndindex(c0.shape):
        for sign in (1, -1):
            c = c0.copy()
            c[j] += sign * eps
            centroids.assign(c)
            numeric[j] += sign * float(_loss(wrapper(x, training=False))) / (2 * eps)
    centroids.assign(c0)
    if aggregation == "AVG":
        sizes = np.bincount(np.asarray(wrapper._index_vars[0]), minlength=c0.size).reshape(c0.shape)
        numeric = numeric / np.maximum(sizes, 1)
    np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=2e-4)


def test_original_weights_get_the_clustered_weights_gradient_straight_through(kernel):
    import tensorflow as tf

    wrapper, x = _wrapped_dense()
    wrapper(x)
    clustered = wrapper.clustered_values()[0]
    plain = keras.layers.Dense(5, use_bias=False)
    plain.build((None, 7))
    plain.kernel.assign(clustered)
    with tf.GradientTape() as tape:
        loss = _loss(wrapper(x, training=False))
    got = tape.gradient(loss, wrapper.layer.kernel).numpy()
    with tf.GradientTape() as tape:
        loss = _loss(plain(x))
    want = tape.gradient(loss, plain.kernel).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bins", [8, 300, 40000])
def test_per_cluster_sums_match_numpy(bins, kernel):
    r = np.random.default_rng(0)
    n = 5001
    idx = r.integers(0, bins, n).astype(np.int32)
    values = r.normal(size=n).astype(np.float32)
    want = np.bincount(idx, weights=values, minlength=bins)
    got = np.asarray(algorithm.per_cluster_sums(values, idx, (bins,)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    sizes = np.asarray(algorithm.cluster_sizes(idx, (bins,), n=n))
    np.testing.assert_array_equal(sizes, np.bincount(idx, minlength=bins))
