"""Cloning keeps each node's call exactly: keyword-only tensors (MultiHeadAttention's query=, value=, key=,
attention_mask=), positional plus keyword tensors, nested structures, a layer shared by two calls."""

import keras
import numpy as np
from tests.cluster.conftest import regression_fit, unique_counts

from edgeclust import cluster

L = keras.layers


def _data(r, **shapes):
    return {name: r.normal(size=(8, *shape)).astype("float32") for name, shape in shapes.items()}


def test_multi_head_attention_called_with_keywords_and_a_mask():
    keras.utils.set_random_seed(0)
    q, v = keras.Input((5, 8), name="q"), keras.Input((6, 8), name="v")
    mask = keras.Input((5, 6), dtype="bool", name="mask")
    x = L.MultiHeadAttention(num_heads=2, key_dim=16, name="mha")(query=q, value=v, key=v, attention_mask=mask)
    model = keras.Model({"q": q, "v": v, "mask": mask}, L.Dense(3, name="head")(x))
    r = np.random.default_rng(0)
    data = {**_data(r, q=(5, 8), v=(6, 8)), "mask": r.random((8, 5, 6)) > 0.3}
    wrapped = cluster.cluster_weights(model, 4, seed=0)
    assert [w.weight_name for w in cluster.clustering_report(wrapped).clustered] == [
        "query_kernel",
        "key_kernel",
        "value_kernel",
        "output_kernel",
        "kernel",
    ]
    stripped = cluster.strip_clustering(wrapped)
    np.testing.assert_array_equal(stripped(data), wrapped(data))
    # the mask reaches the attention: masking everything out changes the output
    blocked = {**data, "mask": np.zeros_like(data["mask"])}
    assert not np.allclose(stripped(blocked), stripped(data))
    regression_fit(wrapped, data)
    assert max(unique_counts(cluster.strip_clustering(wrapped).get_layer("mha")._query_dense.kernel)) <= 4


def test_self_attention_with_one_positional_and_keyword_tensors():
    keras.utils.set_random_seed(0)
    inp = keras.Input((5, 8), name="x")
    x = L.MultiHeadAttention(num_heads=2, key_dim=4, name="self_mha")(inp, value=inp, use_causal_mask=True)
    model = keras.Model(inp, L.Dense(2, name="head")(x))
    data = np.random.default_rng(0).normal(size=(4, 5, 8)).astype("float32")
    wrapped = cluster.cluster_weights(model, 4, seed=0)
    np.testing.assert_array_equal(cluster.strip_clustering(wrapped)(data), wrapped(data))
    # causal: the first position's output ignores later positions
    changed = data.copy()
    changed[:, -1] += 1.0
    np.testing.assert_allclose(np.asarray(wrapped(changed))[:, 0], np.asarray(wrapped(data))[:, 0], atol=1e-6)


def test_nested_inputs_and_a_shared_layer():
    keras.utils.set_random_seed(0)
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    shared = L.Dense(8, name="shared")
    joined = L.Concatenate(name="join")([shared(a), shared(b)])  # a list: a nested structure of tensors
    added = L.Add(name="add")([joined, L.Dense(16, name="side")(L.Concatenate()([a, b]))])
    model = keras.Model({"a": a, "b": b}, L.Dense(2, name="head")(added))
    data = _data(np.random.default_rng(0), a=(6,), b=(6,))
    wrapped = cluster.cluster_weights(model, 4, seed=0)
    assert sum(isinstance(layer, cluster.ClusterWeights) for layer in wrapped.layers) == 3
    regression_fit(wrapped, data)
    stripped = cluster.strip_clustering(wrapped)
    np.testing.assert_allclose(stripped(data), wrapped(data), rtol=1e-6, atol=1e-6)
    assert max(unique_counts(stripped.get_layer("shared").kernel)) <= 4
