"""Weights that already hold at most N values pass through unchanged: reported, warned about once, counted."""

import warnings

import keras
import numpy as np
import pytest
from tests.cluster.conftest import regression_fit, unique_counts

from edgeclust import cluster
from edgeclust.tflite import convert, flatbuffer, inspect

X = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype(np.float32)


def first_convs(seed=0):
    """tfmot users' first layers: a 1x1 conv on one channel (1 weight per channel), a 3x3x1x16 conv (9 per
    channel, 144 in all), then a layer big enough to cluster."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 1, name="conv2d")(inputs)
    y = keras.layers.Conv2D(16, 3, name="conv3x3")(inputs)
    x = keras.layers.Concatenate()([keras.layers.Flatten()(x), keras.layers.Flatten()(y)])
    return keras.Model(inputs, keras.layers.Dense(3, name="dense")(x))


def _clustered_with_warnings(model, n, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapped = cluster.cluster_weights(model, n, seed=0, **kwargs)
    return wrapped, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_per_channel_small_convs_pass_through_with_one_warning_each_and_a_reason():
    model = first_convs()
    wrapped, messages = _clustered_with_warnings(model, 16, cluster_per_channel=True)
    assert sorted(m.split(" does not")[0] for m in messages if "does not have enough weights" in m) == [
        "Layer conv2d",
        "Layer conv3x3",
    ]
    report = cluster.clustering_report(wrapped)
    reasons = {u.layer_name: u.reason for u in report.unchanged}
    assert sorted((u.layer_name, u.weight_name, u.number_of_clusters) for u in report.unchanged) == [
        ("conv2d", "kernel", 16),
        ("conv3x3", "kernel", 16),
    ]
    assert "1 per channel <= 16" in reasons["conv2d"] and "9 per channel" in reasons["conv3x3"]
    assert [(w.layer_name, w.weight_name) for w in report.clustered] == [("dense", "kernel")]
    assert report.clusters_by_tensor() == {"conv2d/kernel": 16, "conv3x3/kernel": 16, "dense/kernel": 16}
    as_clustered = cluster.strip_clustering(wrapped)
    for name in ("conv2d", "conv3x3"):  # left as they were (fine-tuning then trains them as ordinary layers)
        np.testing.assert_array_equal(as_clustered.get_layer(name).kernel.numpy(), model.get_layer(name).kernel.numpy())
    regression_fit(wrapped, X)
    stripped = cluster.strip_clustering(wrapped)
    for name in ("conv2d", "conv3x3"):
        np.testing.assert_array_equal(stripped.get_layer(name).kernel.numpy(), wrapped.get_layer(name).kernel.numpy())
        assert max(unique_counts(stripped.get_layer(name).kernel, (-1,))) <= 16
    assert max(unique_counts(stripped.get_layer("dense").kernel, (-1,))) <= 16


def test_a_kernel_with_fewer_weights_than_clusters_is_left_and_one_with_few_distinct_values_keeps_them():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="small"),  # 12 weights
            keras.layers.Dense(64, name="few"),  # clustered before: 3 distinct values
            keras.layers.Dense(32, name="big"),
        ]
    )
    few = model.get_layer("few")
    values = np.random.default_rng(0).choice([-0.5, 0.1, 0.25], few.kernel.shape).astype(np.float32)
    few.kernel.assign(values)
    wrapped, messages = _clustered_with_warnings(model, 16)
    assert sum("does not have enough weights" in m for m in messages) == 1
    report = cluster.clustering_report(wrapped)
    assert [(u.layer_name, "12 <= 16" in u.reason) for u in report.unchanged] == [("small", True)]
    assert not isinstance(wrapped.get_layer("small"), cluster.ClusterWeights)
    # still wrapped, on exactly its values, so that fine-tuning cannot spread them past 16
    assert [w.layer_name for w in report.clustered] == ["few", "big"]
    regression_fit(wrapped, np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32))
    stripped = cluster.strip_clustering(wrapped)
    assert len(np.unique(stripped.get_layer("few").kernel.numpy())) <= 16
    assert len(np.unique(stripped.get_layer("big").kernel.numpy())) <= 16


@pytest.mark.tensorflow_only  # the TFLite converter
def test_unchanged_weights_are_counted_by_verify(tmp_path):
    wrapped, _ = _clustered_with_warnings(first_convs(), 16, cluster_per_channel=True)
    stripped = cluster.strip_clustering(wrapped)
    tflite = convert.to_tflite(stripped, quantize="float32")
    result = inspect.verify(flatbuffer.read_model(tflite), 16, per_channel=True)
    assert result.passed and result.checked == 3, result.summary()


def test_wrapper_built_on_an_unbuilt_small_layer_warns_and_computes_as_the_layer():
    wrapper = cluster.ClusterWeights(keras.layers.Dense(3, name="tiny"), 8, seed=0)
    with pytest.warns(UserWarning, match="Layer tiny does not have enough weights"):
        out = wrapper(np.ones((2, 2), np.float32))
    assert wrapper.weight_specs == [] and [u.name for u in wrapper.unchanged_weights] == ["kernel"]
    np.testing.assert_array_equal(out, wrapper.layer(np.ones((2, 2), np.float32)))


def test_a_channel_with_few_distinct_values_keeps_them_exactly():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(4, name="dense")])
    kernel = model.layers[0].kernel.numpy()
    kernel[:, 0] = np.resize([0.5, -0.25, 0.75], 32)  # channel 0: 3 values
    model.layers[0].kernel.assign(kernel)
    stripped = cluster.strip_clustering(cluster.cluster_weights(model, 4, cluster_per_channel=True, seed=0))
    np.testing.assert_array_equal(stripped.layers[0].kernel.numpy()[:, 0], kernel[:, 0])
