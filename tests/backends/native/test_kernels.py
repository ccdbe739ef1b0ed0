"""Every native kernel against the tflite_micro interpreter, bit for bit, on small converted models."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.native import NativeBackend
from edgeclust.errors import CodegenError

RNG = np.random.default_rng(0)


def data_for(shape, n=64):
    return RNG.normal(0, 1, size=(n, *shape)).astype(np.float32)


def sequential(keras, input_shape, *layers_):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(input_shape, batch_size=1), *layers_])


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
@pytest.mark.parametrize(
    "conv",
    [
        dict(filters=6, kernel_size=3, padding="same", activation="relu"),
        dict(filters=5, kernel_size=3, padding="valid", strides=2),
        dict(filters=4, kernel_size=(3, 2), padding="same", strides=(2, 1), activation="relu6"),
        dict(filters=3, kernel_size=3, padding="same", dilation_rate=2),
        dict(filters=4, kernel_size=1, padding="valid", use_bias=False),
    ],
    ids=["same-relu", "valid-stride2", "same-stride21-relu6", "dilation2", "1x1-nobias"],
)
def test_conv2d_matches_tflm(nx, keras, conv, per_channel):
    model = sequential(keras, (9, 9, 3), keras.layers.Conv2D(**conv))
    tflite = nx.convert(model, data_for((9, 9, 3)), per_channel=per_channel)
    lowered = nx.check_bit_exact(tflite)
    assert "CONV_2D" in lowered.op_names


@pytest.mark.parametrize(
    "dw",
    [
        dict(kernel_size=3, padding="same", activation="relu"),
        dict(kernel_size=3, padding="valid", strides=2, depth_multiplier=2),
        dict(kernel_size=3, padding="same", dilation_rate=2, activation="relu6"),
    ],
    ids=["same-relu", "valid-stride2-dm2", "dilation2-relu6"],
)
def test_depthwise_matches_tflm(nx, keras, dw):
    model = sequential(keras, (8, 8, 4), keras.layers.DepthwiseConv2D(**dw))
    nx.check_bit_exact(nx.convert(model, data_for((8, 8, 4))))


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_fully_connected_softmax_matches_tflm(nx, keras, per_channel):
    model = sequential(
        keras, (20,), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(7), keras.layers.Softmax()
    )
    lowered = nx.check_bit_exact(nx.convert(model, data_for((20,))), n=32)
    assert {"FULLY_CONNECTED", "SOFTMAX"} <= set(lowered.op_names)


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("padding,strides", [("valid", 2), ("same", 2), ("same", 1)])
def test_pools_match_tflm(nx, keras, pool, padding, strides):
    layer = keras.layers.MaxPooling2D if pool == "max" else keras.layers.AveragePooling2D
    model = sequential(
        keras,
        (7, 7, 3),
        keras.layers.Conv2D(3, 1),
        keras.layers.ReLU(),
        layer(pool_size=3 if strides == 1 else 2, strides=strides, padding=padding),
    )
    lowered = nx.check_bit_exact(nx.convert(model, data_for((7, 7, 3))))
    assert ("MAX_POOL_2D" if pool == "max" else "AVERAGE_POOL_2D") in lowered.op_names


def test_conv_maxpool_fusion_never_holds_the_conv_output(nx, keras):
    model = sequential(
        keras,
        (12, 12, 1),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(4),
    )
    lowered = nx.check_bit_exact(nx.convert(model, data_for((12, 12, 1))))
    program = lowered.details.program
    assert program.steps[0].kernel == "ec_conv" and "fused" in program.steps[0].what
    conv_output_bytes = 10 * 10 * 8
    assert max(b.size for b in program.buffers) < conv_output_bytes
    assert lowered.arena_bytes >= lowered.arena_lower_bound


def test_global_average_pooling_mean_matches_tflm(nx, keras):
    for keepdims in (False, True):
        model = sequential(
            keras,
            (6, 6, 5),
            keras.layers.Conv2D(5, 3, padding="same"),
            keras.layers.GlobalAveragePooling2D(keepdims=keepdims),
        )
        lowered = nx.check_bit_exact(nx.convert(model, data_for((6, 6, 5))))
        assert "MEAN" in lowered.op_names


def test_depthwise_avgpool_residual_add_model_matches_tflm(nx, keras):
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((8, 8, 4), batch_size=1)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    y = layers.Conv2D(8, 1)(y)
    x = layers.Add()([x, y])
    x = layers.ReLU()(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    tflite = nx.convert(keras.Model(inputs, outputs), data_for((8, 8, 4)))
    lowered = nx.check_bit_exact(tflite, n=16)
    assert {"ADD", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"} <= set(lowered.op_names)
    assert any(b.kernel == "ec_add" for b in lowered.details.program.steps)


def test_batchnorm_folded_model_matches_tflm(nx, keras):
    model = sequential(
        keras,
        (8, 8, 2),
        keras.layers.Conv2D(6, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Flatten(),
        keras.layers.Dense(4),
    )
    bn = model.layers[1]
    bn.set_weights([np.linspace(0.5, 2, 6), np.linspace(-1, 1, 6), np.linspace(-0.2, 0.3, 6), np.linspace(0.5, 3, 6)])
    nx.check_bit_exact(nx.convert(model, data_for((8, 8, 2))))


@pytest.mark.parametrize("bits", range(1, 9))
def test_every_index_width_packs_and_matches_tflm(nx, keras, bits):
    values = 2**bits if bits < 8 else 200
    model = sequential(
        keras,
        (6, 6, 3),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D(3, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(24, activation="relu"),
        keras.layers.Dense(5),
    )
    nx.weights_with_values(model, values, seed=bits)
    tflite = nx.convert(model, data_for((6, 6, 3)), per_channel=False)
    lowered = nx.check_bit_exact(tflite)
    dense1 = max((p for p in lowered.details.program.packed if p.op == "FULLY_CONNECTED"), key=lambda p: p.weights)
    if bits < 8:  # 6,912 weights: packing pays at every width below 8
        assert dense1.bits == bits and 2 ** (bits - 1) < dense1.table_bytes <= 2**bits  # int8 may merge two values
        assert dense1.index_bytes == 24 * -(-(6 * 6 * 8 * bits) // 8)
    else:
        assert dense1.bits == 8 and dense1.table_bytes == 0


@pytest.mark.parametrize(
    "bits,board",
    [
        (3, "qemu_microbit"),
        (3, "qemu_mps2_an500"),
        (5, "qemu_mps2_an386"),
        (5, "qemu_mps3_an547"),
        (6, "qemu_lm3s6965evb"),
    ],
)
def test_odd_index_widths_decode_eight_at_a_time_in_qemu(nx, keras, bits, board, tmp_path):
    """ec_row's EC_DECODE8 (eight indices from `bits` bytes) on each core's compiler: rows of 27, 72 and 9 weights
    (whole eights and a tail), bit-identical to the host build, itself checked against tflite_micro (7-bit rows
    on the host: test_every_index_width_packs_and_matches_tflm)."""
    model = sequential(
        keras,
        (6, 6, 3),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D(3, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(5),
    )
    nx.weights_with_values(model, 2**bits, seed=bits)
    tflite = nx.convert(model, data_for((6, 6, 3)), per_channel=False)
    lowered = nx.check_bit_exact(tflite)
    assert any(p.bits == bits for p in lowered.details.program.packed if p.op == "CONV_2D"), lowered.notes
    nx.qemu_self_test(tflite, board, tmp_path, lowered=lowered)


def test_per_channel_tables_match_tflm(nx, keras):
    from edgeclust.lower.weights import layout_for
    from edgeclust.tflite.flatbuffer import read_model

    model = sequential(
        keras, (6, 6, 2), keras.layers.Conv2D(6, 3, padding="same"), keras.layers.Flatten(), keras.layers.Dense(8)
    )
    nx.weights_with_values(model, 8)
    tflite = nx.convert(model, data_for((6, 6, 2)), per_channel=True)
    model_ops = read_model(tflite).operators
    filters = [
        read_model(tflite).tensors[op.inputs[1]] for op in model_ops if op.name in ("CONV_2D", "FULLY_CONNECTED")
    ]
    layouts = [layout_for(t.data, axis=0, tensor=t.index) for t in filters]  # one table per output channel
    lowered = nx.check_bit_exact(tflite, layouts=layouts)
    assert all(p.per_channel and p.bits == 3 for p in lowered.details.program.packed)
    assert {p.table_bytes for p in lowered.details.program.packed} == {6 * 8, 8 * 8}


def test_float_edges_and_dynamic_batch_shape_ops_fold(nx, keras):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(5),
        ]
    )
    tflite = nx.convert_float_edges(model, data_for((6, 6, 2)))
    lowered = nx.check_bit_exact(tflite)
    assert {"QUANTIZE", "DEQUANTIZE", "SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"} <= set(lowered.op_names)
    assert lowered.interface.inputs[0].dtype == "float32"


def test_unsupported_op_is_one_line_naming_it(nx, keras):
    model = sequential(keras, (8,), keras.layers.Dense(4), keras.layers.Activation("exponential"))
    tflite = nx.convert(model, data_for((8,)))
    backend = NativeBackend()
    reason = backend.unsupported(tflite)
    assert reason is not None and "EXP" in reason and "--backend tflm" in reason and "\n" not in reason
    with pytest.raises(CodegenError, match="EXP"):
        backend.lower(tflite, ())
