"""Keras 3 writes UpSampling2D as RESHAPE + TILE, which TFLite Micro lacks; the converter gets the equal Resizing."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow_only


def test_nearest_upsampling_converts_to_resize_nearest_neighbor_with_the_same_outputs():
    import keras
    from keras import layers

    from edgeclust.tflite import flatbuffer, parity
    from edgeclust.tflite.convert import nearest_upsampling_layers, to_tflite, upsampling_as_resizing

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 5, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    x = layers.UpSampling2D((2, 3))(x)
    model = keras.Model(inputs, layers.Conv2D(2, 1)(x))
    bilinear = keras.Sequential([keras.Input((4, 4, 2)), layers.UpSampling2D(2, interpolation="bilinear")])
    assert nearest_upsampling_layers(model) == [model.layers[2].name] and not nearest_upsampling_layers(bilinear)

    rebuilt = upsampling_as_resizing(model)
    assert [type(layer).__name__ for layer in rebuilt.layers][2] == "Resizing"
    x = np.random.default_rng(0).random((4, 6, 5, 3), dtype=np.float32)
    assert np.array_equal(model.predict(x, verbose=0), rebuilt.predict(x, verbose=0))

    int8 = to_tflite(model, quantize="int8", representative_data=x, num_calibration=4)
    ops = flatbuffer.read_model(int8).op_names
    assert "RESIZE_NEAREST_NEIGHBOR" in ops and "TILE" not in ops
    q = parity.run_tflm(int8, (x[:1] * 40).astype(np.int8))  # TFLite Micro runs it
    assert q.shape == (1, 12, 15, 2)
