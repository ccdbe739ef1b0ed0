"""Property tests of the native backend's CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and elementwise kernels.

Hypothesis draws shapes, strides, paddings, dilations, activations and quantization parameters (weight and
bias magnitudes, input ranges, so scales and zero points; per-tensor or per-channel; weights snapped to 2..256
levels, so every index width 1..8 is packed); each draw builds a one-layer Keras model, converts it to int8
with the real converter, lowers it with NativeBackend and runs the host build against the tflite_micro
interpreter on random int8 inputs: the outputs must be bit-identical. Derandomized and small for CI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeclust.backends.native import NativeBackend
from edgeclust.pipeline.layouts import weight_layouts
from edgeclust.tflite import convert, parity
from edgeclust.tflite.flatbuffer import read_model

EXAMPLES = int(os.environ.get("EDGECLUST_PROPERTY_EXAMPLES", "18"))  # raise it for a longer local hunt
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@dataclass(frozen=True)
class Quantization:
    """What sets the converter's scales and zero points: input range, weight and bias magnitudes, levels."""

    input_low: float
    input_high: float
    weight_scale: float
    bias_scale: float
    levels: int | None  # weights snapped to this many values (None: left as trained, i.e. random)
    per_channel: bool
    seed: int


quantizations = st.builds(
    Quantization,
    input_low=st.sampled_from([-4.0, -1.0, -0.25, 0.0, 0.5]),
    input_high=st.sampled_from([0.1, 1.0, 3.0, 20.0]),
    weight_scale=st.sampled_from([1e-3, 0.05, 0.5, 4.0]),
    bias_scale=st.sampled_from([0.0, 0.01, 1.0, 30.0]),
    levels=st.sampled_from([None, 2, 3, 4, 7, 16, 33, 100, 256]),
    per_channel=st.booleans(),
    seed=st.integers(0, 2**16),
)
activations = st.sampled_from([None, "relu", "relu6"])


@st.composite
def windows(draw, *, max_size: int = 9):
    """(input h, w), kernel (kh, kw), strides, dilation and padding that Keras accepts and that give an output."""
    padding = draw(st.sampled_from(["valid", "same"]))
    dilated = draw(st.booleans())
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    if dilated:
        dilation, strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3))), (1, 1)
    else:
        dilation, strides = (1, 1), (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    reach = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    low = reach if padding == "valid" else (1, 1)
    size = (
        draw(st.integers(low[0], max(low[0], max_size))),
        draw(st.integers(low[1], max(low[1], max_size))),
    )
    return size, kernel, strides, dilation, padding


def prepared(model, q: Quantization):
    """Weights and biases scaled (and snapped to `levels` values) so the converter's scales vary widely."""
    rng = np.random.default_rng(q.seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        kernel = rng.standard_normal(weights[0].shape).astype(np.float32) * q.weight_scale
        if q.levels is not None:
            centroids = np.linspace(kernel.min(), kernel.max(), q.levels, dtype=np.float32)
            kernel = centroids[np.abs(kernel[..., None] - centroids).argmin(axis=-1)]
        weights[0] = kernel
        if len(weights) > 1:
            weights[1] = (rng.standard_normal(weights[1].shape) * q.bias_scale).astype(np.float32)
        layer.set_weights(weights)
    return model


def int8_model(layer, input_shape: tuple[int, ...], q: Quantization) -> bytes:
    """A one-layer model converted to int8 by the real converter, calibrated on inputs in the drawn range."""
    import keras

    keras.utils.set_random_seed(q.seed)
    inputs = keras.Input(shape=input_shape)
    model = prepared(keras.Model(inputs, layer(inputs)), q)
    rng = np.random.default_rng(q.seed + 1)
    high = max(q.input_high, q.input_low + 0.05)
    calibration = rng.uniform(q.input_low, high, (24, *input_shape)).astype(np.float32)
    return convert.to_tflite(
        model,
        quantize="int8",
        representative_data=calibration,
        per_channel=q.per_channel,
        num_calibration=24,
    )


def assert_native_matches_tflm(tflite: bytes, op_name: str, seed: int) -> None:
    """Lower `tflite` (which must hold `op_name`) with the native backend and compare its host build with the
    tflite_micro interpreter on six random int8 inputs, two of them all -128 and all 127."""
    model = read_model(tflite)
    assert op_name in model.op_names, model.op_names
    backend = NativeBackend()
    assert backend.unsupported(tflite) is None
    layouts = weight_layouts(tflite)
    lowered = backend.lower(tflite, layouts)
    spec = parity.model_interface(model).inputs[0]
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(6, *spec.shape[1:]), dtype=np.int8)
    x[0] = -128  # the saturating corners of the input range
    x[1] = 127
    expected = parity.run_tflm(tflite, x)
    got = backend.run_host(lowered, x)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    differing = np.argwhere(got != expected)
    assert differing.size == 0, (
        f"{len(differing)} of {got.size} outputs differ from TFLM; first at {differing[0].tolist()}: "
        f"native {got[tuple(differing[0])]} vs TFLM {expected[tuple(differing[0])]}"
    )


@PROPERTY_SETTINGS
@given(
    window=windows(),
    channels=st.integers(1, 5),
    filters=st.integers(1, 6),
    activation=activations,
    use_bias=st.booleans(),
    q=quantizations,
)
def test_conv2d_matches_tflm(window, channels, filters, activation, use_bias, q):
    """CONV_2D over random windows (stride or dilation, SAME or VALID), channels, filters and quantization."""
    from keras import layers

    size, kernel, strides, dilation, padding = window
    layer = layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        dilation_rate=dilation,
        padding=padding,
        activation=activation,
        use_bias=use_bias,
    )
    assert_native_matches_tflm(int8_model(layer, (*size, channels), q), "CONV_2D", q.seed)


@PROPERTY_SETTINGS
@given(
    window=windows(),
    channels=st.integers(1, 5),
    multiplier=st.integers(1, 3),
    activation=activations,
    use_bias=st.booleans(),
    q=quantizations,
)
def test_depthwise_conv2d_matches_tflm(window, channels, multiplier, activation, use_bias, q):
    """DEPTHWISE_CONV_2D over random windows, channels, depth multipliers 1..3 and quantization."""
    from keras import layers

    size, kernel, strides, dilation, padding = window
    layer = layers.DepthwiseConv2D(
        kernel,
        strides=strides,
        dilation_rate=dilation,
        padding=padding,
        depth_multiplier=multiplier,
        activation=activation,
        use_bias=use_bias,
    )
    assert_native_matches_tflm(int8_model(layer, (*size, channels), q), "DEPTHWISE_CONV_2D", q.seed)


@PROPERTY_SETTINGS
@given(
    features=st.integers(1, 64),
    units=st.integers(1, 24),
    activation=activations,
    use_bias=st.booleans(),
    q=quantizations,
)
def test_fully_connected_matches_tflm(features, units, activation, use_bias, q):
    """FULLY_CONNECTED over random input and output widths and quantization."""
    from keras import layers

    layer = layers.Dense(units, activation=activation, use_bias=use_bias)
    assert_native_matches_tflm(int8_model(layer, (features,), q), "FULLY_CONNECTED", q.seed)


@pytest.mark.parametrize("levels", [2, 3, 5, 9, 17, 33, 65, 129])
def test_every_index_width_is_packed_and_matches(levels):
    """Every output channel holds all `levels` values (2..129: 1..8 index bits), symmetric around zero so the
    int8 scale keeps them apart; the native backend decodes each width it packs (1,152 weights: packing pays
    at least up to 6 bits, whatever the table and row overheads)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(levels)
    inputs = keras.Input(shape=(5, 5, 16))
    conv = layers.Conv2D(8, 3, padding="same")
    model = keras.Model(inputs, conv(inputs))
    rng = np.random.default_rng(levels)
    kernel, bias = conv.get_weights()
    values = np.linspace(-0.5, 0.5, levels, dtype=np.float32)
    per_channel = kernel.size // kernel.shape[-1]
    picks = rng.integers(0, levels, size=(kernel.shape[-1], per_channel))
    picks[:, :levels] = np.stack([rng.permutation(levels) for _ in range(kernel.shape[-1])])
    kernel = values[picks].T.reshape(kernel.shape)
    conv.set_weights([kernel, rng.standard_normal(bias.shape).astype(np.float32) * 0.1])
    calibration = rng.uniform(-1, 1, (24, 5, 5, 16)).astype(np.float32)
    tflite = convert.to_tflite(
        model,
        quantize="int8",
        representative_data=calibration,
        per_channel=False,
        num_calibration=24,
    )
    bits = max(1, (levels - 1).bit_length())
    layouts = weight_layouts(tflite)
    assert [(layout.bits, layout.unique_values) for layout in layouts] == [(bits, levels)]
    lowered = NativeBackend().lower(tflite, layouts)
    if bits <= 6:
        assert [layout.bits for layout in lowered.packed] == [bits]
    assert_native_matches_tflm(tflite, "CONV_2D", levels)


BINARY_LAYERS = {"ADD": "Add", "SUB": "Subtract", "MUL": "Multiply"}
# the other operand: same shape, [1,1,1,C], [1,H,1,C], [1,1,W,C] at run time, or a constant ([C], scalar, full)
OPERANDS = ("same", "channel", "row", "column", "const_channel", "const_scalar", "const_full")
UNARY_AFTER = (None, "sigmoid", "tanh", "hard_swish", "leaky_relu", "relu", "relu6")


@settings(PROPERTY_SETTINGS, max_examples=min(EXAMPLES, 10))
@given(
    op=st.sampled_from(sorted(BINARY_LAYERS)),
    operand=st.sampled_from(OPERANDS),
    swapped=st.booleans(),
    unary=st.sampled_from(UNARY_AFTER),
    size=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 6)),
    q=quantizations,
)
def test_elementwise_ops_match_tflm(op, operand, swapped, unary, size, q):
    """ADD / SUB / MUL with every broadcast form and constant operand, then a unary op (a 256-entry table)."""
    import keras
    from keras import layers

    h, w, c = size
    keras.utils.set_random_seed(q.seed)
    rng = np.random.default_rng(q.seed)
    inputs = keras.Input(shape=(h, w, c))
    x = layers.Conv2D(c, 1)(inputs)
    if operand == "same":
        other = layers.DepthwiseConv2D(1)(inputs)
    elif operand == "channel":
        other = layers.GlobalAveragePooling2D(keepdims=True)(inputs)
    elif operand == "row":
        other = layers.Conv2D(c, (1, w))(inputs)
    elif operand == "column":
        other = layers.Conv2D(c, (h, 1))(inputs)
    else:
        shape = {"const_channel": (c,), "const_scalar": (), "const_full": (h, w, c)}[operand]
        constant = rng.uniform(-2, 2, shape).astype(np.float32) * q.weight_scale * 4 + 0.1
        other = None
    if other is None:
        if op == "ADD":
            y = layers.Lambda(lambda t: constant + t if swapped else t + constant)(x)
        elif op == "SUB":
            y = layers.Lambda(lambda t: constant - t if swapped else t - constant)(x)
        else:
            y = layers.Lambda(lambda t: constant * t if swapped else t * constant)(x)
    else:
        pair = [other, x] if swapped else [x, other]
        y = getattr(layers, BINARY_LAYERS[op])()(pair)
    if unary == "leaky_relu":
        y = layers.LeakyReLU(negative_slope=0.3)(y)
    elif unary == "relu6":
        y = layers.ReLU(max_value=6.0)(y)
    elif unary is not None:
        y = layers.Activation(getattr(keras.activations, unary))(y)
    model = keras.Model(inputs, y)
    calibration = rng.uniform(q.input_low, max(q.input_high, q.input_low + 0.05), (24, h, w, c)).astype(np.float32)
    tflite = convert.to_tflite(model, quantize="int8", representative_data=calibration, num_calibration=24)
    names = read_model(tflite).op_names
    if not any(name in names for name in BINARY_LAYERS):  # the converter folded the op away (e.g. t * 1)
        return
    assert_native_matches_tflm(tflite, next(name for name in names if name in BINARY_LAYERS), q.seed)
