"""Small real models for the TFLite stage: trained on the 8x8 digits, kernels snapped to 16 levels.

Snapping every kernel to 16 evenly spaced values stands in for clustering (the clustering core is a
separate package): the result is an ordinary Keras model, converted by the real converter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

LEVELS = 16


def snap_kernels(model, levels: int = LEVELS) -> None:
    """Replace every Conv2D / DepthwiseConv2D / Dense kernel by the nearest of `levels` evenly spaced values."""
    from keras import layers

    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)):
            weights = layer.get_weights()
            kernel = weights[0]
            centroids = np.linspace(kernel.min(), kernel.max(), levels, dtype=np.float32)
            nearest = np.abs(kernel[..., None] - centroids).argmin(axis=-1)
            weights[0] = centroids[nearest]
            layer.set_weights(weights)


def plain_cnn(seed: int = 0):
    """Conv2D, DepthwiseConv2D, Conv2D 1x1, Dense, Dense: no BatchNorm, so int8 per-tensor keeps 16 values."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(8, 8, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dwconv")(x)
    x = layers.Conv2D(16, 1, activation="relu", name="pwconv")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu", name="dense1")(x)
    outputs = layers.Dense(10, activation="softmax", name="dense2")(x)
    return keras.Model(inputs, outputs, name="plain_cnn")


def trained(model, digits, epochs: int):
    from edgeclust import examples

    examples.compile_for_training(model, learning_rate=3e-3)
    model.fit(digits.x_train, digits.y_train, batch_size=32, epochs=epochs, verbose=0)
    return model


@dataclass(frozen=True)
class Converted:
    model: object  # the keras model that was converted
    float32: bytes
    int8: bytes  # per-channel weights (the converter's default)
    int8_per_tensor: bytes | None


@pytest.fixture(scope="session")
def plain(digits) -> Converted:
    """The BatchNorm-free CNN, trained, snapped to 16 levels, converted three ways."""
    from edgeclust.tflite import convert

    model = trained(plain_cnn(), digits, epochs=4)
    snap_kernels(model)
    x = digits.x_train
    return Converted(
        model,
        convert.to_tflite(model, quantize="float32"),
        convert.to_tflite(model, quantize="int8", representative_data=x),
        convert.to_tflite(model, quantize="int8", representative_data=x, per_channel=False),
    )


@pytest.fixture(scope="session")
def with_bn(digits) -> Converted:
    """The demo's digits CNN (Conv, BatchNorm, DepthwiseConv2D, Dense), trained, snapped, converted."""
    from edgeclust import examples
    from edgeclust.tflite import convert

    model = trained(examples.digits_cnn(seed=0), digits, epochs=4)
    snap_kernels(model)
    return Converted(
        model,
        convert.to_tflite(model, quantize="float32"),
        convert.to_tflite(model, quantize="int8", representative_data=digits.x_train),
        None,
    )


@pytest.fixture(scope="session")
def unclustered_float(digits) -> bytes:
    """The plain CNN before snapping: every weight distinct."""
    from edgeclust.tflite import convert

    return convert.to_tflite(trained(plain_cnn(), digits, epochs=1), quantize="float32")


@pytest.fixture(scope="session")
def lut_per_tensor(plain):
    return lut_compressed(plain.int8_per_tensor)


def lut_compressed(data: bytes, **kwargs):
    """The TFLM backend's LUT compression of `data`, driven by the build's weight layouts for it."""
    from edgeclust.backends.tflm.lut import lut_compress
    from edgeclust.pipeline.layouts import weight_layouts

    return lut_compress(data, weight_layouts(data), **kwargs)


@pytest.fixture(scope="session")
def lut():
    """lut(data, max_index_bits=7): see lut_compressed."""
    return lut_compressed


def fc_model_bytes(weights: np.ndarray, *, scales=None, zero_points=None, axis: int = 0) -> bytes:
    """A one-FULLY_CONNECTED .tflite built with the schema's object API around `weights` (out, in).

    For tests that need exact control over a weight tensor (sizes, values, quantization) without the
    converter: int8 weights get per-tensor or per-channel quantization from `scales`/`zero_points`.
    """
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    types = {np.dtype(np.int8): fb.TensorType.INT8, np.dtype(np.float32): fb.TensorType.FLOAT32}
    out_features, in_features = weights.shape

    def tensor(name, shape, buffer, quantized):
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), list(shape), types[weights.dtype], buffer
        if quantized and weights.dtype == np.int8:
            q = fb.QuantizationParametersT()
            q.scale = [0.05] if scales is None or name != "weights" else list(scales)
            q.zeroPoint = [0] * len(q.scale) if zero_points is None or name != "weights" else list(zero_points)
            q.quantizedDimension = axis if name == "weights" else 0
            t.quantization = q
        return t

    buffers = [fb.BufferT(), fb.BufferT(), fb.BufferT(), fb.BufferT()]
    buffers[2].data = np.ascontiguousarray(weights).reshape(-1).view(np.uint8)
    sg = fb.SubGraphT()
    sg.tensors = [
        tensor("input", (1, in_features), 1, True),
        tensor("weights", (out_features, in_features), 2, True),
        tensor("output", (1, out_features), 3, True),
    ]
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, -1], [2]
    op.builtinOptionsType = fb.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = fb.FullyConnectedOptionsT()
    sg.operators, sg.inputs, sg.outputs = [op], [0], [2]
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [sg], buffers
    model.description = b"edgeclust test model"
    builder = flatbuffers.Builder(weights.nbytes + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture(scope="session")
def make_fc_model():
    return fc_model_bytes
