"""The maths: nearest centroids, the clustered weight and its gradients (finite differences, STE), with both
kernels (XLA-compiled on TensorFlow, and the keras.ops ones other backends use)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import ops

from edgeclust.cluster import algorithm, kernels


@pytest.fixture(params=["xla", "keras.ops"])
def kernel(request, monkeypatch):
    """Runs a test with the XLA-compiled kernels, then with the keras.ops ones."""
    monkeypatch.setattr(kernels, "USE_XLA", request.param == "xla")
    return request.param


def _argmin_positions(w, c):
    """Sorted position of the nearest centroid, ties to the smaller: the definition, by brute force."""
    s = np.sort(c)
    d = np.abs(w[:, None].astype(np.float64) - s[None, :])
    return np.argmin(d, axis=1)


# the kernel fixture sets a module flag once per test; every example runs under the same value
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(k=st.integers(2, 300), n=st.integers(1, 300), seed=st.integers(0, 2**16), far=st.booleans())
def test_local_refresh_from_any_start_finds_the_nearest_centroid(k, n, seed, far, kernel):
    r = np.random.default_rng(seed)
    w = r.normal(size=n).astype(np.float32)
    c = r.normal(size=k).astype(np.float32)  # unsorted on purpose
    truth = algorithm.nearest_positions(w, c, channel_axes=None)
    np.testing.assert_array_equal(np.sort(c)[truth], np.sort(c)[_argmin_positions(w, c)])
    start = r.integers(0, k, n) if far else np.clip(truth + r.integers(-1, 2, n), 0, k - 1)
    got = np.asarray(algorithm.refresh_positions(w, start.astype(np.int32), c.reshape(1, k), per_channel=False))
    np.testing.assert_array_equal(got, truth)
    looked_up = np.asarray(algorithm.lookup(np.sort(c), got, (n,)))
    np.testing.assert_array_equal(looked_up, np.sort(c)[truth])


def test_refresh_per_channel_uses_each_channels_centroids(kernel):
    r = np.random.default_rng(0)
    w = r.normal(size=(3, 5, 4)).astype(np.float32)
    c = r.normal(size=(5, 6)).astype(np.float32)  # channels on axis 1
    truth = algorithm.nearest_positions(w, c, channel_axes=(1,))
    s = np.sort(c, axis=1)
    want = np.argmin(np.abs(w[..., None] - s[None, :, None, :]), -1) + 6 * np.arange(5)[None, :, None]
    np.testing.assert_array_equal(truth, want)
    start = (np.arange(5)[None, :, None] * 6 + r.integers(0, 6, w.shape)).astype(np.int32).reshape(-1)
    got = np.asarray(algorithm.refresh_positions(w, start, c, per_channel=True))
    np.testing.assert_array_equal(got, truth.reshape(-1))


def _weights_and_centroids(per_channel):
    r = np.random.default_rng(0)
    w = r.normal(size=(7, 5)).astype(np.float32)
    c = r.normal(size=(5, 4) if per_channel else (1, 4)).astype(np.float32)
    positions = algorithm.nearest_positions(w, c, channel_axes=(-1,) if per_channel else None).reshape(-1)
    x = r.normal(size=(3, 7)).astype(np.float32)
    return w, c, positions, x


def _loss(y):
    return ops.sum(ops.sin(y) * ops.arange(1, 1 + y.shape[-1], dtype="float32"))


@pytest.mark.tensorflow_only  # tf.GradientTape
@pytest.mark.parametrize("aggregation", ["SUM", "AVG"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_centroid_gradients_match_finite_differences(aggregation, per_channel, kernel):
    import tensorflow as tf

    w, c0, positions, x = _weights_and_centroids(per_channel)
    average = aggregation == "AVG"

    def loss_of(c):
        return _loss(x @ algorithm.clustered_weight(tf.constant(w), c, positions, average=average))

    c_var = tf.Variable(c0)
    with tf.GradientTape() as tape:
        loss = loss_of(c_var)
    grad = tape.gradient(loss, c_var).numpy()
    numeric = np.zeros_like(c0, dtype=np.float64)
    eps = 1e-2
    for j in np.ndindex(c0.shape):
        for sign in (1, -1):
            c = c0.copy()
            c[j] += sign * eps
            numeric[j] += sign * float(loss_of(tf.constant(c))) / (2 * eps)
    if average:  # sizes per centroid: positions count sorted ranks, order maps them back
        order = np.argsort(c0, axis=-1)
        by_position = np.bincount(positions, minlength=c0.size).reshape(c0.shape)
        sizes = np.zeros_like(by_position)
        np.put_along_axis(sizes, order, by_position, axis=-1)
        numeric = numeric / np.maximum(sizes, 1)
    np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=2e-4)


@pytest.mark.tensorflow_only  # tf.GradientTape
def test_original_weights_get_the_clustered_weights_gradient_straight_through(kernel):
    import tensorflow as tf

    w0, c, positions, x = _weights_and_centroids(False)
    clustered = algorithm.nearest_values(w0, c, channel_axes=None)
    w = tf.Variable(w0)
    with tf.GradientTape() as tape:
        loss = _loss(x @ algorithm.clustered_weight(w, tf.constant(c), positions))
    got = tape.gradient(loss, w).numpy()
    plain = tf.Variable(clustered)
    with tf.GradientTape() as tape:
        loss = _loss(x @ plain)
    want = tape.gradient(loss, plain).numpy()
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


@pytest.mark.parametrize("k", [3, 16, 130])
@pytest.mark.parametrize("channel_axes", [None, (-1,), (-2, -1)])
def test_comparison_and_local_search_give_the_nearest_centroid_exactly(k, channel_axes, kernel):
    r = np.random.default_rng(k)
    w = r.normal(size=(40, 3, 4)).astype(np.float32)
    channels = 1 if channel_axes is None else int(np.prod([w.shape[a] for a in channel_axes]))
    c = r.normal(size=(channels, k)).astype(np.float32)
    want = algorithm.nearest_values(w, c, channel_axes=channel_axes)
    by_comparison = algorithm.clustered_weight(w, c, None, channel_axes=channel_axes)
    np.testing.assert_array_equal(np.asarray(by_comparison), want)
    positions = algorithm.nearest_positions(w, c, channel_axes=channel_axes).reshape(-1)
    by_lookup = algorithm.clustered_weight(w, c, positions, channel_axes=channel_axes)
    np.testing.assert_array_equal(np.asarray(by_lookup), want)
