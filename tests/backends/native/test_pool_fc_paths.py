"""The fused conv + max-pool kernel paths and the fully connected paths bit-exact on the cores that take them: the
DSP paths (SMLAD) on the Cortex-M4F, plain C on the Cortex-M3 and M0, and the host build (ASan and UBSan)
against the tflite_micro interpreter.

One small model whose shapes break their blocking: pool windows cut by the conv's edge (an odd width, padding
"same" on the pool, windows of 4, 6 and 9 conv pixels: groups of four short of one), conv windows across the
padding (patches), filters of 27 values (not a multiple of four), 8 (the four-pixel DSP path), 270 (over the
patch size: filter rows as runs) and dilated ones (patches), odd channel counts; fully connected layers whose
inputs (10, 37, 13) and outputs (37, 13, 6) are no multiple of the blocking; weights at 16 values (4-bit rows)
per tensor and per channel, 4 values (2-bit) and unclustered (plain int8 rows).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.native import NativeBackend
from edgeclust.backends.native.records import ConvStep
from edgeclust.device.build import cross_compiler_present
from edgeclust.device.icount import inference_ticks
from edgeclust.pipeline.layouts import weight_layouts

pytestmark = pytest.mark.skipif(not cross_compiler_present(), reason="arm-none-eabi-gcc is not installed")


def pool_breaker(keras):
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 13, 3), batch_size=1)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)  # k 27, border patches
    x = layers.MaxPooling2D(2)(x)  # 12x13 -> 6x6: the last conv column is in no window
    x = layers.Conv2D(7, 1)(x)  # k 8: four pixels at a time on DSP cores; odd channels
    x = layers.MaxPooling2D(3, strides=1, padding="same")(x)  # windows of 4, 6 and 9 pixels
    x = layers.Conv2D(30, 1, activation="relu")(x)
    x = layers.Conv2D(6, 3, padding="valid")(x)  # k 270 > EC_PATCH: filter rows as runs
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(5, (2, 3), padding="same", dilation_rate=(1, 2))(x)  # dilated: patches
    x = layers.MaxPooling2D((2, 1))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(37, activation="relu")(x)  # 10 inputs
    x = layers.Dense(13, activation="relu")(x)  # 37 inputs: odd
    outputs = layers.Dense(6)(x)  # 13 inputs
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def models(nx, keras):
    """values per kernel (0: unclustered) and per-channel int8 -> .tflite"""
    data = np.random.default_rng(0).normal(size=(64, 12, 13, 3)).astype(np.float32)
    return nx.clustered_variants(lambda: pool_breaker(keras), data)


def test_every_pool_is_fused(models):
    lowered = NativeBackend().lower(models[0, True], weight_layouts(models[0, True]))
    steps = lowered.details.program.steps
    assert sum(isinstance(s, ConvStep) and s.pool is not None for s in steps) == 4


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
        ("qemu_mps2_an386", 16, False),
        ("qemu_mps2_an386", 16, True),
        ("qemu_mps2_an386", 4, True),
        ("qemu_mps2_an386", 0, True),
        ("qemu_lm3s6965evb", 16, True),  # Cortex-M3: plain C
        ("qemu_microbit", 0, True),  # Cortex-M0: plain C, 16 KiB of RAM
    ],
)
def test_firmware_self_test_is_bit_exact(nx, models, board_id, values, per_channel, tmp_path):
    lines = nx.qemu_self_test(models[values, per_channel], board_id, tmp_path)
    assert inference_ticks(lines) > 0
