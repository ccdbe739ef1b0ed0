"""Lowering decisions: op options read from the flatbuffer, the arena against its bound and TFLM's, the
price without a cross compiler, and one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.native import NativeBackend
from edgeclust.backends.native.from_tflite import graph_from_tflite
from edgeclust.codegen.board import load_board
from edgeclust.device import build as device_build
from edgeclust.errors import CodegenError
from edgeclust.pipeline.layouts import weight_layouts
from edgeclust.resources import boards_dir
from edgeclust.tflite.flatbuffer import read_model
from edgeclust.tflite.parity import tflm_arena_bytes


def data_for(shape, n=32):
    return np.random.default_rng(0).normal(size=(n, *shape)).astype(np.float32)


@pytest.fixture(scope="module")
def residual_model(nx, keras):
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((12, 12, 3), batch_size=1)
    x = layers.Conv2D(8, 3, padding="same", strides=2, dilation_rate=1, activation="relu6")(inputs)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Add()([x, layers.Conv2D(8, 1)(y)])
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = layers.Flatten()(x)
    outputs = layers.Softmax(axis=-1)(layers.Dense(5)(x))
    return nx.convert(keras.Model(inputs, outputs), data_for((12, 12, 3)))


def test_op_options_are_read_from_the_flatbuffer(residual_model):
    ops = {op.name: op for op in read_model(residual_model).operators}
    conv = next(op for op in read_model(residual_model).operators if op.name == "CONV_2D")
    assert conv.options["padding"] == "SAME" and conv.options["stride_h"] == 2 and conv.options["stride_w"] == 2
    assert conv.options["fused_activation_function"] == "RELU6" and conv.options["dilation_h_factor"] == 1
    assert ops["DEPTHWISE_CONV_2D"].options["depth_multiplier"] == 1
    pool = ops["MAX_POOL_2D"].options
    assert (pool["filter_height"], pool["filter_width"], pool["padding"]) == (3, 3, "SAME")
    assert ops["SOFTMAX"].options["beta"] == pytest.approx(1.0)
    assert ops["MEAN"].options["keep_dims"] in (True, 1)
    graph = graph_from_tflite(residual_model)
    assert graph.tensors[graph.inputs[0]].shape == (1, 12, 12, 3)


def test_arena_below_tflm_and_below_the_whole_tensor_bound_only_in_place(nx, residual_model):
    lowered = nx.check_bit_exact(residual_model)
    assert lowered.arena_bytes <= tflm_arena_bytes(residual_model)
    in_place = lowered.summary["in_place"]
    # the whole-tensor bound holds for any plan of whole tensors; only steps run in place go below it
    assert lowered.arena_lower_bound <= lowered.arena_bytes or in_place
    add = next(s for s in lowered.details.program.steps if s.kernel == "ec_add")
    offsets = {b.name: b.offset for b in lowered.details.program.buffers}
    assert offsets[add.outputs[0]] in {offsets[name] for name in add.inputs}  # in place over an input that dies


def test_price_without_cross_compiler_uses_the_measured_table(residual_model, monkeypatch):
    board = load_board("qemu_lm3s6965evb", boards_dir())
    backend = NativeBackend()
    lowered = backend.lower(residual_model, weight_layouts(residual_model))
    linked = backend.price(lowered, board)
    monkeypatch.setattr(device_build, "cross_compiler_present", lambda: False)
    table = backend.price(lowered, board)
    assert linked.measured and not table.measured
    assert table.flash_parts["weights"] == linked.flash_parts["weights"]
    assert abs(table.flash_used - linked.flash_used) <= 0.25 * linked.flash_used
    assert table.ram_parts["arena"] == linked.ram_parts["arena"] == lowered.arena_bytes


def test_refusals_name_the_op_and_suggest_tflm(nx, keras):
    keras.utils.set_random_seed(0)
    grouped = keras.Sequential([keras.Input((6, 6, 4), batch_size=1), keras.layers.Conv2D(4, 3, groups=2)])
    reason = NativeBackend().unsupported(nx.convert(grouped, data_for((6, 6, 4))))
    assert reason is not None and "--backend tflm" in reason and "\n" not in reason

    inputs = keras.Input((6,), batch_size=1)
    broadcast = keras.Model(inputs, keras.layers.Dense(6)(inputs) * 0.5 + keras.layers.Dense(1)(inputs))
    tflite = nx.convert(broadcast, data_for((6,)))
    reason = NativeBackend().unsupported(tflite)
    if reason is None:  # the converter may fold the broadcast away; then it must still match TFLM
        nx.check_bit_exact(tflite)
    else:
        assert "--backend tflm" in reason and "\n" not in reason
        with pytest.raises(CodegenError):
            NativeBackend().lower(tflite, ())


@pytest.mark.parametrize("board_id", ["esp32s3_devkitc", "rpi_pico", "arduino_nano33_ble"])
def test_other_build_systems_get_sources_and_a_price(residual_model, board_id):
    from edgeclust.backends.base import SelfTestCase

    board = load_board(board_id, boards_dir())
    backend = NativeBackend()
    lowered = backend.lower(residual_model, weight_layouts(residual_model))
    cost = backend.price(lowered, board)
    assert cost.flash_used > sum(item.bytes for item in lowered.flash)
    assert cost.ram_parts["arena"] == lowered.arena_bytes
    assert cost.measured == board.cpu.startswith("cortex-m")
    spec_in, spec_out = lowered.interface.inputs[0], lowered.interface.outputs[0]
    case = SelfTestCase(np.zeros(spec_in.shape[1:], spec_in.dtype), np.zeros(spec_out.shape[1:], spec_out.dtype))
    files = backend.render(lowered, board, [case])
    assert {"ec_kernels.c", "ec_model.c", "ec_self_test.c", "main.c", "board.json"} <= set(files)
