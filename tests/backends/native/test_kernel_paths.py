"""Every native kernel path bit-exact on the cores that take it: the DSP path (SMLAD) on the Cortex-M4F, the
MVE (Helium) dot products on the Cortex-M55, the plain-C path on the Cortex-M3 and M0, and the host build (ASan
and UBSan) against the tflite_micro interpreter.

One small model whose shapes break the fast paths' blocking: odd output channel counts (a channel pair short of
one), odd output widths (a pixel pair short of one), padding (border pixels), strides, dilation (a window in
runs of one pixel), 1x1 and non-square filters, depthwise 3x3 (padded planes: stride 1 and 2, with and without
padding, a depth multiplier) and 5x5 with a depth multiplier (the tap loop), fully connected layers with even
and odd input counts; weights at 16 values (4-bit rows) per tensor and per channel, 4 values (2-bit) and
unclustered (plain int8 rows).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.native import NativeBackend
from edgeclust.device.build import cross_compiler_present
from edgeclust.device.icount import inference_ticks

pytestmark = pytest.mark.skipif(not cross_compiler_present(), reason="arm-none-eabi-gcc is not installed")


def blocking_breaker(keras):
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((9, 11, 3), batch_size=1)
    x = layers.Conv2D(5, 3, padding="same", activation="relu")(inputs)  # odd channels, odd width, border
    x = layers.Conv2D(6, 3, padding="same", dilation_rate=2)(x)  # dilated: a window in runs of one pixel
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)  # 3x3 planes, stride 1, odd width
    x = layers.DepthwiseConv2D(3, depth_multiplier=2)(x)  # 3x3 planes, no padding, a depth multiplier
    x = layers.Conv2D(6, 1)(x)  # 1x1 over 63 pixels: a pixel pair short of one
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)  # 3x3 unrolled, stride 2
    x = layers.DepthwiseConv2D(5, padding="same", depth_multiplier=2)(x)  # 25 taps: the tap loop
    x = layers.Conv2D(7, 1, activation="relu6")(x)  # 1x1, odd channels
    x = layers.Conv2D(4, (2, 3), strides=(2, 1), padding="valid")(x)  # non-square, strided, valid
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)  # 24 inputs: even
    x = layers.Dense(9, activation="relu")(x)  # 16 inputs: the M55 decodes 4-bit rows in registers
    outputs = layers.Dense(5)(x)  # 9 inputs: odd
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def models(nx, keras):
    """values per kernel (0: unclustered) and per-channel int8 -> .tflite"""
    data = np.random.default_rng(0).normal(size=(64, 9, 11, 3)).astype(np.float32)
    return nx.clustered_variants(lambda: blocking_breaker(keras), data)


@pytest.mark.parametrize(
    "values,per_channel",
    [(16, False), (16, True), (4, True), (0, True)],
    ids=["4bit-tensor", "4bit-channel", "2bit", "int8"],
)
def test_host_build_matches_tflm(nx, models, values, per_channel):
    # under ASan and UBSan: the plain-C paths index nothing out of bounds and overflow nothing
    nx.check_bit_exact(models[values, per_channel], n=6, backend=NativeBackend(sanitize=True))


@pytest.mark.parametrize(
    "board_id,values,per_channel",
    [
        ("qemu_mps2_an386", 16, False),  # DSP: the shared 256-entry pair table in FC
        ("qemu_mps2_an386", 16, True),  # DSP: per-channel halves in FC
        ("qemu_mps2_an386", 4, True),  # DSP: 2-bit rows decoded into the scratch
        ("qemu_mps2_an386", 0, True),  # DSP: plain int8 rows from flash
        ("qemu_mps3_an547", 16, True),  # Cortex-M55: MVE dot products over decoded rows
        ("qemu_mps3_an547", 0, True),  # Cortex-M55: MVE dot products over plain int8 rows
        ("qemu_lm3s6965evb", 16, True),  # Cortex-M3: plain C
        ("qemu_microbit", 16, False),  # Cortex-M0: plain C, 16 KiB of RAM
    ],
)
def test_firmware_self_test_is_bit_exact(nx, models, board_id, values, per_channel, tmp_path):
    lines = nx.qemu_self_test(models[values, per_channel], board_id, tmp_path)
    assert inference_ticks(lines) > 0


def helium_breaker(keras):
    """Shapes that break the Cortex-M55's MVE paths: a conv with one input channel and a 10x4 window (k = 40, a
    tail of 8 past the sixteen-value steps; DS-CNN's first layer), 264 pixels (a group of four exact) and strided
    (72 pixels, k = 320); a 3x3 depthwise over a plane of more than EC_MVE_DW_STEPS steps (row by row, each row's
    last group short) and over a small one (read as one run); 1x1 with plain rows interleaved on the stack
    (in_c 12) and wider than EC_MVE_1X1_WIDE (in_c 260: each channel over the image)."""
    layers = keras.layers
    keras.utils.set_random_seed(2)
    inputs = keras.Input((24, 11, 1), batch_size=1)
    x = layers.Conv2D(8, (10, 4), padding="same")(inputs)  # in_c 1, k = 40, 24x11 pixels
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)  # 3x3, 78 steps: row by row
    x = layers.Conv2D(12, (10, 4), strides=2, padding="same", activation="relu")(x)  # 12x6, k = 320
    x = layers.DepthwiseConv2D(3, padding="same")(x)  # 3x3, 24 steps: one run
    x = layers.Conv2D(260, 1)(x)  # 1x1, in_c 12: four pixels interleaved
    x = layers.Conv2D(6, 1, activation="relu")(x)  # 1x1, in_c 260: channel by channel
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(4)(x))


@pytest.fixture(scope="module")
def helium_models(nx, keras):
    data = np.random.default_rng(0).normal(size=(64, 24, 11, 1)).astype(np.float32)
    return nx.clustered_variants(lambda: helium_breaker(keras), data, variants=((16, True), (0, True)))


@pytest.mark.parametrize("values", [16, 0], ids=["4bit", "int8"])
def test_helium_paths_are_bit_exact(nx, helium_models, values, tmp_path):
    nx.check_bit_exact(helium_models[values, True], n=4, backend=NativeBackend(sanitize=True))
    nx.qemu_self_test(helium_models[values, True], "qemu_mps3_an547", tmp_path)


def helium_fc_breaker(keras):
    """Fully connected shapes that break the Cortex-M55's FC blocking (ec_mve_fully_connected): thirty-two inputs
    a step, then sixteen at a time predicated, output channels four at a time in pairs. Two rows of inputs
    (batches 2); in_n 75 (two steps, an odd tail of 11), 37 (one step and 5), 48 (one step and exactly 16), 18
    (16 and 2: no step); out_n 37, 48, 18, 7 (groups of four short of 3, none, 2 and 1); relu6 clamps inside the
    int8 range. The last two layers (in_n 7 and 5) stay plain int8 rows: packing them saves nothing."""
    layers = keras.layers
    keras.utils.set_random_seed(3)
    inputs = keras.Input((2, 75), batch_size=1)
    x = layers.Dense(37, activation="relu")(inputs)  # n 75, out 37
    x = layers.Dense(48, activation="relu6")(x)  # n 37, out 48
    x = layers.Dense(18)(x)  # n 48, out 18
    x = layers.Dense(7, activation="relu")(x)  # n 18, out 7
    x = layers.Dense(5)(x)  # n 7, out 5
    return keras.Model(inputs, layers.Dense(3)(x))  # n 5, out 3


@pytest.fixture(scope="module")
def helium_fc_models(nx, keras):
    data = np.random.default_rng(0).normal(size=(64, 2, 75)).astype(np.float32)
    variants = ((16, True), (16, False), (0, True), (0, False))
    return nx.clustered_variants(lambda: helium_fc_breaker(keras), data, variants=variants)


@pytest.mark.parametrize(
    "values,per_channel",
    [(16, True), (16, False), (0, True), (0, False)],
    ids=["4bit-channel", "4bit-tensor", "int8-channel", "int8-tensor"],
)
def test_helium_fully_connected_is_bit_exact(nx, helium_fc_models, values, per_channel, tmp_path):
    tflite = helium_fc_models[values, per_channel]
    lowered = nx.check_bit_exact(tflite, n=4, backend=NativeBackend(sanitize=True))
    kinds = [type(step).__name__ for step in lowered.details.program.steps]
    assert kinds.count("FullyConnectedStep") == 6, kinds
    if values and per_channel:  # clustered: rows share scales, so the lanes gather their multipliers by entry
        assert any(step.requant.entries is not None for step in lowered.details.program.steps)
    nx.qemu_self_test(tflite, "qemu_mps3_an547", tmp_path)


def helium_pool_breaker(keras):
    """Pooling shapes that break the Cortex-M55's sixteen channels a step (ec_mve_pool): 19 channels (a step and
    3), max pooling with border windows (padding "same", odd sizes), average pooling with windows of 9, 6 and 4
    pixels at the borders (TFLM divides by the pixels inside), a strided one and a whole-plane one (DS-CNN's)."""
    layers = keras.layers
    keras.utils.set_random_seed(4)
    inputs = keras.Input((7, 9, 19), batch_size=1)
    x = layers.MaxPooling2D(3, strides=1, padding="same")(inputs)  # 7x9, border windows
    x = layers.AveragePooling2D(3, strides=1, padding="same")(x)  # 7x9, counts 4, 6, 9
    x = layers.MaxPooling2D(2, strides=2, padding="same")(x)  # 4x5, the last row and column short
    x = layers.AveragePooling2D((4, 5))(x)  # the whole plane
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(3)(x))


@pytest.fixture(scope="module")
def helium_pool_model(nx, keras):
    data = np.random.default_rng(0).normal(size=(64, 7, 9, 19)).astype(np.float32)
    return nx.clustered_variants(lambda: helium_pool_breaker(keras), data, variants=((0, True),))[0, True]


def test_helium_pooling_is_bit_exact(nx, helium_pool_model, tmp_path):
    lowered = nx.check_bit_exact(helium_pool_model, n=4, backend=NativeBackend(sanitize=True))
    kinds = [type(step).__name__ for step in lowered.details.program.steps]
    assert kinds.count("PoolStep") == 4, kinds
    nx.qemu_self_test(helium_pool_model, "qemu_mps3_an547", tmp_path)


def im2col_breaker(keras):
    """Shapes that break the int16 im2col path's blocking (ec_conv_im2col): windows widened straight from the
    input with an odd count of four-value groups (k = 36), stride 2 with padding, relu6 (requantized without
    ec_rq_fast), 25 pixels (a group of four short of three), packed rows in two blocks (17 channels of 288:
    more than the block holds), k not a multiple of 4 (rows copied into the scratch), 1x1 with stride 2."""
    layers = keras.layers
    keras.utils.set_random_seed(1)
    inputs = keras.Input((9, 9, 4), batch_size=1)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu6")(inputs)  # 5x5x32, k = 36
    x = layers.Conv2D(17, 3, padding="same")(x)  # k = 288, 17 channels, 25 pixels
    x = layers.Conv2D(8, 1, strides=2, padding="same", activation="relu")(x)  # 1x1 s2, k = 17
    x = layers.Conv2D(4, 1, strides=2)(x)  # 1x1 s2, k = 8: straight from the input
    x = layers.Flatten()(x)
    outputs = layers.Dense(3)(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def im2col_models(nx, keras):
    data = np.random.default_rng(0).normal(size=(64, 9, 9, 4)).astype(np.float32)
    built = {}
    for values in (16, 4, 0):
        model = im2col_breaker(keras)
        if values:
            nx.weights_with_values(model, values)
        built[values] = nx.convert(model, data, per_channel=True)
    return built


@pytest.mark.parametrize("values", [16, 4, 0], ids=["4bit", "2bit", "int8"])
def test_im2col_host_build_matches_tflm(nx, im2col_models, values):
    nx.check_bit_exact(im2col_models[values], n=6, backend=NativeBackend(sanitize=True))


@pytest.mark.parametrize(
    "board_id,values",
    [("qemu_mps2_an386", 16), ("qemu_mps2_an386", 0), ("qemu_mps3_an547", 16), ("qemu_lm3s6965evb", 0)],
)
def test_im2col_firmware_is_bit_exact(nx, im2col_models, board_id, values, tmp_path):
    nx.qemu_self_test(im2col_models[values], board_id, tmp_path)


def pointwise_in_place(keras):
    """A 1x1 convolution in place (InPlaceConvStep, forwards: 40 -> 36 channels over 90 pixels) whose 4-bit rows
    pay for their tables: on DSP cores each row pair is decoded once as int16 pairs for the window's block and
    the pixels after it (ec_conv_1x1_ahead), 90 = (8 + 24) * 2 + 26 pixels, the last pass short; on the
    Cortex-M55 the rows are decoded in registers (40 = 32 + a predicated tail of 8) and the scratch holds only the
    outputs of the pixels ahead, four pixels at a time (the block of 8 whole, the pixels ahead and the last pass
    short of a four)."""
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10, 9, 1), batch_size=1)
    x = layers.Conv2D(40, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(36, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(5)(x))


@pytest.fixture(scope="module")
def pointwise_models(nx, keras):
    data = np.random.default_rng(0).normal(size=(64, 10, 9, 1)).astype(np.float32)
    model = pointwise_in_place(keras)
    nx.weights_with_values(model, 16)
    return {16: nx.convert(model, data, per_channel=True)}


def test_pointwise_runs_in_place_with_4bit_rows(pointwise_models):
    from edgeclust.backends.native import inplace, plan
    from edgeclust.pipeline.layouts import weight_layouts

    program = NativeBackend().lower(pointwise_models[16], weight_layouts(pointwise_models[16])).details.program
    (step,) = [s for s in program.steps if isinstance(s, inplace.InPlaceConvStep)]
    assert step.weights.bits == 4 and step.window.in_c % 4 == 0
    assert plan.scratch_row_bytes(step) * 2 >= 4 * step.window.in_c + 24 * step.window.out_c


def test_pointwise_host_build_matches_tflm(nx, pointwise_models):
    nx.check_bit_exact(pointwise_models[16], n=6, backend=NativeBackend(sanitize=True))


@pytest.mark.parametrize("board_id", ["qemu_mps2_an386", "qemu_mps3_an547", "qemu_lm3s6965evb"])
def test_pointwise_firmware_is_bit_exact(nx, pointwise_models, board_id, tmp_path):
    nx.qemu_self_test(pointwise_models[16], board_id, tmp_path)
