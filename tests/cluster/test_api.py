"""cluster_weights / strip_clustering / cluster_scope / report: behaviour, errors, saving."""

import keras
import numpy as np
import pytest
from tests.cluster.conftest import regression_fit, unique_counts

from edgeclust import cluster
from edgeclust.cluster import algorithm, kernels
from edgeclust.cluster.api import plan
from edgeclust.errors import ConfigError, UnsupportedLayerError


def small_cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, name="dense")(x)
    return keras.Model(inputs, outputs)


X = np.random.default_rng(0).normal(size=(32, 8, 8, 1)).astype(np.float32)


def test_original_model_still_works_and_is_untouched():
    model = small_cnn()
    model.compile("adam", "mse")
    weights = [w.copy() for w in model.get_weights()]
    wrapped = cluster.cluster_weights(model, 4, seed=0)
    regression_fit(wrapped, X)
    model.evaluate(X, np.zeros((32, 3)), verbose=0)
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    assert not cluster.is_clustered(model) and cluster.is_clustered(wrapped)
    assert [layer.name for layer in cluster.strip_clustering(wrapped).layers] == [layer.name for layer in model.layers]


def test_report_lists_clustered_weights_and_skipped_layers():
    model = small_cnn()
    wrapped = cluster.cluster_weights(model, 4, cluster.CentroidInitialization.LINEAR, seed=0)
    report = cluster.clustering_report(wrapped)
    assert [(w.layer_name, w.weight_name, w.shape) for w in report.clustered] == [
        ("conv", "kernel", (3, 3, 1, 8)),
        ("dense", "kernel", (288, 3)),
    ]
    conv = report.clustered[0]
    np.testing.assert_array_equal(conv.original_values, model.get_layer("conv").kernel.numpy())
    np.testing.assert_allclose(
        conv.initial_centroids, np.linspace(conv.original_values.min(), conv.original_values.max(), 4), rtol=1e-6
    )
    assert conv.number_of_clusters == 4 and conv.per_channel is False
    assert [(s.layer_name, s.layer_class) for s in report.skipped] == [("bn", "BatchNormalization")]
    assert "never clustered" in report.skipped[0].reason
    assert [p.layer_name for p in plan(model)] == ["conv", "bn", "dense"]


def test_same_seed_same_model():
    a = cluster.cluster_weights(small_cnn(), 4, cluster.CentroidInitialization.RANDOM, seed=3)
    b = cluster.cluster_weights(small_cnn(), 4, cluster.CentroidInitialization.RANDOM, seed=3)
    c = cluster.cluster_weights(small_cnn(), 4, cluster.CentroidInitialization.RANDOM, seed=4)
    np.testing.assert_array_equal(a(X), b(X))
    assert not np.allclose(a(X), c(X))


@pytest.mark.parametrize("per_channel", [False, True])
def test_preserve_sparsity_keeps_zeros_zero_through_fine_tuning(per_channel):
    model = small_cnn()
    dense = model.get_layer("dense")
    kernel = dense.kernel.numpy()
    kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.5)] = 0.0
    dense.kernel.assign(kernel)
    zeros = kernel == 0
    wrapped = cluster.cluster_weights(model, 4, preserve_sparsity=True, cluster_per_channel=per_channel, seed=0)
    wrapper = wrapped.get_layer("cluster_dense")
    regression_fit(wrapped, X, steps=8, lr=5e-2)
    assert np.all(wrapper.layer.kernel.numpy()[zeros] == 0), "zero weights moved"
    stripped = cluster.strip_clustering(wrapped).get_layer("dense").kernel.numpy()
    assert np.all(stripped[zeros] == 0)
    assert max(unique_counts(stripped, (-1,) if per_channel else None)) <= 4


def test_positions_follow_the_weights_at_every_step():
    keras.utils.set_random_seed(0)
    k = kernels.MAX_CLUSTERS_COMPARED + 2  # beyond it, positions are stored and searched locally
    wrapper = cluster.ClusterWeights(keras.layers.Dense(256), k, seed=0)
    model = keras.Sequential([keras.Input((4,)), wrapper])
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    before = wrapper._index_vars[0].numpy().copy()
    regression_fit(model, x, steps=8, lr=0.05)
    assert not np.array_equal(before, wrapper._index_vars[0].numpy())

    # a move far beyond one midpoint (the local search repeats): the next training call stores exact positions
    kernel = wrapper.layer.kernel
    kernel.assign(-kernel.numpy())
    stale = wrapper._index_vars[0].numpy().copy()
    inference = np.asarray(wrapper(x, training=False))  # uses fresh positions, stores nothing
    np.testing.assert_array_equal(wrapper._index_vars[0].numpy(), stale)
    np.testing.assert_allclose(inference, cluster.strip_clustering(model)(x), rtol=1e-6, atol=1e-6)
    wrapper(x, training=True)
    fresh = algorithm.nearest_positions(kernel.numpy(), wrapper._centroid_vars[0].numpy(), channel_axes=None)
    np.testing.assert_array_equal(wrapper._index_vars[0].numpy(), fresh.reshape(-1))
    assert not np.array_equal(fresh.reshape(-1), stale)


@pytest.mark.parametrize("with_scope", [True, False])
def test_keras_round_trip_gives_identical_predictions(tmp_path, with_scope):
    wrapped = cluster.cluster_weights(small_cnn(), 4, cluster_per_channel=with_scope, seed=0)
    regression_fit(wrapped, X)
    path = tmp_path / "wrapped.keras"
    wrapped.save(path)
    if with_scope:
        with cluster.cluster_scope():
            loaded = keras.models.load_model(path)
    else:
        loaded = keras.models.load_model(path)
    assert cluster.is_clustered(loaded)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), wrapped.predict(X, verbose=0))
    np.testing.assert_array_equal(cluster.strip_clustering(loaded)(X), cluster.strip_clustering(wrapped)(X))
    report = cluster.clustering_report(loaded)
    assert len(report.clustered) == 2


def test_wrapped_model_fine_tunes_under_xla():
    wrapped = cluster.cluster_weights(small_cnn(), 4, seed=0)
    history = regression_fit(wrapped, X, jit_compile=True)
    assert np.isfinite(history.history["loss"]).all()
    assert max(unique_counts(cluster.strip_clustering(wrapped).get_layer("dense").kernel)) <= 4


def test_single_layers_and_lists():
    dense = keras.layers.Dense(4)
    wrapper = cluster.cluster_weights(dense, 3, seed=0)
    assert isinstance(wrapper, cluster.ClusterWeights) and wrapper.layer is dense
    model = keras.Sequential([keras.Input((6,)), wrapper])  # built (and initialised) when called
    assert len(np.unique(cluster.strip_clustering(model).layers[0].kernel.numpy())) <= 3
    layers = cluster.cluster_weights([keras.layers.Dense(4), keras.layers.Conv1D(2, 2)], 2)
    assert all(isinstance(layer, cluster.ClusterWeights) for layer in layers)


class Scale(keras.layers.Layer, cluster.ClusterableLayer):
    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 6), name="kernel")
        self.offset = self.add_weight(shape=(6,), name="offset", initializer="ones")

    def call(self, x):
        return x @ self.kernel + self.offset

    def get_clusterable_weights(self):
        return [("kernel", self.kernel)]


def test_user_layers_implementing_clusterable_layer_are_clustered():
    model = keras.Sequential([keras.Input((5,)), Scale(name="scale")])
    wrapped = cluster.cluster_weights(model, 3, seed=0)
    regression_fit(wrapped, np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32))
    stripped = cluster.strip_clustering(wrapped).get_layer("scale")
    assert len(np.unique(stripped.kernel.numpy())) <= 3
    assert len(np.unique(stripped.offset.numpy())) > 3  # not clustered


class Mystery(keras.layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 2))

    def call(self, x):
        return x @ self.w


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def test_errors_say_what_and_how_to_fix():
    unknown = keras.Sequential([keras.Input((3,)), Mystery(name="mystery")])
    with pytest.raises(UnsupportedLayerError, match=r"'mystery' of class Mystery.*ClusterableLayer") as info:
        cluster.cluster_weights(unknown.get_layer("mystery"), 2)(np.zeros((1, 3), np.float32))
    assert isinstance(info.value, ValueError)
    # in a whole model, an unknown class is left as it is (reported), unless asked for by name
    report = cluster.clustering_report(cluster.cluster_weights(unknown, 2))
    assert [(s.layer_name, "Mystery is a class edgeclust does not know" in s.reason) for s in report.skipped] == [
        ("mystery", True)
    ]
    with pytest.raises(UnsupportedLayerError, match=r"'mystery' \(Mystery\) was asked for with mystery=4"):
        cluster.cluster_weights(unknown, 2, layer_clusters={"mystery": 4})
    sub = Subclassed()
    sub(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="Sequential or Functional.*one by one"):
        cluster.cluster_weights(sub, 2)
    with pytest.raises(
        ConfigError, match=r"`number_of_clusters` must be an integer >= 2. Received: number_of_clusters=1"
    ):
        cluster.cluster_weights(small_cnn(), 1)
    broken = small_cnn()
    kernel = broken.get_layer("dense").kernel.numpy()
    kernel[0, 0] = np.nan
    broken.get_layer("dense").kernel.assign(kernel)
    with pytest.raises(ConfigError, match="'dense'.*NaN"):
        cluster.cluster_weights(broken, 4)
    with pytest.raises(UnsupportedLayerError, match="already clustered"):
        cluster.cluster_weights(cluster.cluster_weights(small_cnn(), 2), 2)


def test_nested_models_are_clustered_inside():
    keras.utils.set_random_seed(0)
    block = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="inner")], name="block")
    inputs = keras.Input((6,), name="features")
    outputs = keras.layers.Dense(2, name="outer")(block(inputs))
    model = keras.Model(inputs, outputs)
    wrapped = cluster.cluster_weights(model, 3, seed=0)
    names = [w.layer_name for w in cluster.clustering_report(wrapped).clustered]
    assert names == ["inner", "outer"]
    stripped = cluster.strip_clustering(wrapped)
    assert len(np.unique(stripped.get_layer("block").get_layer("inner").kernel.numpy())) <= 3
    x = np.ones((2, 6), np.float32)
    np.testing.assert_allclose(stripped(x), wrapped(x), rtol=1e-5, atol=1e-6)


def test_masks_flow_through_wrapped_embedding_and_lstm():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None,), dtype="int32")
    outputs = keras.layers.LSTM(3)(keras.layers.Embedding(10, 4, mask_zero=True)(inputs))
    wrapped = cluster.cluster_weights(keras.Model(inputs, outputs), 4, seed=0)
    x = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 0, 0, 0, 0]], "int32")
    np.testing.assert_allclose(wrapped(x), wrapped(x[:, :3]), rtol=1e-6)  # padding is masked out
    np.testing.assert_allclose(cluster.strip_clustering(wrapped)(x), wrapped(x), rtol=1e-6)


def test_statistics_are_not_weights_to_cluster():
    """Normalization's adapted mean and variance (non-trainable) are left as they are, with a reason."""
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(np.random.default_rng(0).normal(3.0, 2.0, (64, 8)).astype(np.float32))
    model = keras.Sequential([keras.Input((8,)), norm, keras.layers.Dense(32, name="dense")])
    wrapped = cluster.cluster_weights(model, 4, seed=0)
    report = cluster.clustering_report(wrapped)
    assert [w.layer_name for w in report.clustered] == ["dense"]
    assert [(s.layer_name, "statistics" in s.reason) for s in report.skipped] == [("norm", True)]
    stripped = cluster.strip_clustering(wrapped)
    as_numpy = keras.ops.convert_to_numpy
    np.testing.assert_array_equal(as_numpy(stripped.get_layer("norm").mean), as_numpy(norm.mean))
    with pytest.raises(UnsupportedLayerError, match="'norm' .*asked for.*statistics"):
        cluster.cluster_weights(model, 4, layer_clusters={"norm": 8})
