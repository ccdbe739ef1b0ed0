"""Weight tensors of a converted .tflite tied to their Keras layers by content: default names, several layers
of one class, a nested model and a renamed layer all map to the layer that holds the values."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.pipeline.tensor_layers import tensor_layers


@pytest.mark.parametrize("quantize", ["float32", "int8"])
def test_tensors_map_to_their_layers_under_default_names_and_nesting(quantize):
    import keras

    from edgeclust.pipeline.stages import convert_model

    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((16,)), keras.layers.Dense(12), keras.layers.Dense(8)])  # dense, dense_1
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(4, 2, name="renamed_conv")(inputs)
    x = keras.layers.Conv2D(1, 2)(x)  # conv2d
    x = inner(keras.layers.Flatten()(keras.layers.ZeroPadding2D(((1, 1), (1, 1)))(x)))
    model = keras.Model(inputs, keras.layers.Dense(3)(x))  # dense_2
    x_cal = np.random.default_rng(0).random((32, 4, 4, 1), dtype=np.float32)
    tflite = convert_model(model, quantize=quantize, representative=x_cal, per_channel=quantize == "int8")
    mapping = tensor_layers(tflite, model)
    assert sorted(mapping.values()) == ["conv2d", "dense", "dense_1", "dense_2", "renamed_conv"], mapping
    assert tensor_layers(tflite, None) == {}
