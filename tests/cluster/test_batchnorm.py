"""fold_batch_norms: same outputs within 1e-5, BNs gone where foldable, kept where not."""

import keras
import numpy as np
import pytest

from edgeclust import cluster
from edgeclust.cluster.api import plan

L = keras.layers


def _randomise_bn(model):
    r = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(r.normal(size=shape))
            layer.moving_variance.assign(r.uniform(0.5, 2.0, size=shape))
            layer.gamma.assign(r.normal(1.0, 0.3, size=shape))
            layer.beta.assign(r.normal(size=shape))
    return model


def functional():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="image")
    x = L.Conv2D(6, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    y = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    y = L.BatchNormalization(name="bn2")(y)
    z = L.Conv2DTranspose(4, 3, padding="same", name="tconv")(y)
    z = L.BatchNormalization(name="bn3")(z)
    relu = L.Conv2D(4, 1, activation="relu", name="relu_conv")(z)
    kept = L.BatchNormalization(name="bn_after_relu")(relu)  # activation in between: not foldable
    w = L.Flatten()(L.Add()([kept, z]))
    w = L.Dense(5, name="dense")(w)
    outputs = L.BatchNormalization(name="bn4")(w)
    return _randomise_bn(keras.Model(inputs, outputs))


def sequential():
    keras.utils.set_random_seed(0)
    return _randomise_bn(
        keras.Sequential(
            [
                keras.Input((6, 6, 2)),
                L.Conv2D(4, 3, name="conv"),
                L.BatchNormalization(name="bn"),
                L.ReLU(),
                L.Flatten(),
                L.Dense(3, name="dense"),
                L.BatchNormalization(name="bn2"),
            ]
        )
    )


@pytest.mark.parametrize(
    "build, kept", [(functional, {"bn_after_relu"}), (sequential, set())], ids=["functional", "sequential"]
)
def test_folding_keeps_outputs_within_1e5(build, kept):
    model = build()
    x = np.random.default_rng(1).normal(size=(4, *model.input_shape[1:])).astype(np.float32)
    folded = cluster.fold_batch_norms(model)
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-5, atol=1e-5)
    remaining = {layer.name for layer in folded.layers if isinstance(layer, L.BatchNormalization)}
    assert remaining == kept
    assert any(isinstance(layer, L.BatchNormalization) for layer in model.layers)  # original untouched
    assert folded.inputs[0].name == model.inputs[0].name


def test_fold_then_cluster_keeps_n_values_per_tensor():
    folded = cluster.fold_batch_norms(sequential())
    stripped = cluster.strip_clustering(cluster.cluster_weights(folded, 4, seed=0))
    assert len(np.unique(stripped.get_layer("conv").kernel.numpy())) <= 4
    assert [p.layer_name for p in plan(folded)] == ["conv", "dense"]
