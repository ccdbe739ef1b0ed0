"""Unbuilt Sequential models (no Input: Keras builds them on the first batch, inside the traced `fit`), the
way tfmot's RNN examples write them: clustered, fine-tuned with fit, stripped to N values."""

import keras
import numpy as np
import pytest
from tests.cluster.conftest import unique_counts

from edgeclust import cluster

L = keras.layers
N = 4
RNNS = {
    "SimpleRNN": lambda: L.SimpleRNN(8),
    "LSTM": lambda: L.LSTM(8),
    "GRU": lambda: L.GRU(8),
    "Bidirectional": lambda: L.Bidirectional(L.LSTM(6)),
    "StackedCells": lambda: L.RNN(L.StackedRNNCells([L.LSTMCell(6), L.GRUCell(5)])),
}


@pytest.mark.parametrize("family", list(RNNS))
def test_unbuilt_sequential_rnn_fine_tunes_with_fit(family):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([L.Embedding(40, 8), RNNS[family](), L.Dense(1)])
    assert not model.built
    wrapped = cluster.cluster_weights(model, N, seed=0)
    r = np.random.default_rng(0)
    x = r.integers(0, 40, (32, 7))
    y = (x.mean(axis=1, keepdims=True) > 20).astype("float32")
    wrapped.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    history = wrapped.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    wrappers = [layer for layer in wrapped.layers if isinstance(layer, cluster.ClusterWeights)]
    assert len(wrappers) == 3
    centroids = wrappers[1]._centroid_vars[0].numpy()
    assert len(np.unique(centroids)) == N  # initialised from the built weights, not left at zeros
    stripped = cluster.strip_clustering(wrapped)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), wrapped.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    report = cluster.clustering_report(wrapped)
    names = {w.layer_name for w in report.clustered}
    assert len(names) == 3
    for w in report.clustered:
        layer = stripped.get_layer(w.layer_name)
        kernels = [v for v in layer.weights if tuple(v.shape) == w.shape and "bias" not in v.path]
        assert kernels and all(max(unique_counts(k)) <= N for k in kernels)
