"""The fused conv + max-pool kernel paths and the fully connected paths bit-exact on the cores that take them: the
DSP paths (SMLAD) on the Cortex-M4F, the MVE paths on the Cortex-M55 (four conv pixels interleaved, VMAXV over
their accumulators; 4-bit FC rows decoded in registers), plain C on the Cortex-M3 and M0, and the host build (ASan
and UBSan) against the tflite_micro interpreter.

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
        ("qemu_mps3_an547", 16, True),  # Cortex-M55: MVE
        ("qemu_mps3_an547", 0, True),
        ("qemu_lm3s6965evb", 16, True),  # Cortex-M3: plain C
        ("qemu_microbit", 0, True),  # Cortex-M0: plain C, 16 KiB of RAM
    ],
)
def test_firmware_self_test_is_bit_exact(nx, models, board_id, values, per_channel, tmp_path):
    lines = nx.qemu_self_test(models[values, per_channel], board_id, tmp_path)
    assert inference_ticks(lines) > 0


def fc_groups_breaker(keras):
    """Fully connected layers whose 4-bit per-channel rows share tables in groups (FullyConnectedStep.order), three
    groups a layer (kernels_in_bands): 48 inputs (the DSP kernel's four-row pass, sixteen values a step) into
    42 outputs (groups of 14: two rows left after the four-row passes), 42 inputs (two rows a pass, a tail of two)
    into 35 outputs (groups of 12 and 11: one row alone), odd inputs (no groups)."""
    layers = keras.layers
    keras.utils.set_random_seed(1)
    inputs = keras.Input((48,), batch_size=1)
    x = layers.Dense(42, activation="relu")(inputs)  # 48 inputs
    x = layers.Dense(35, activation="relu")(x)  # 42 inputs
    x = layers.Dense(19)(x)  # 35 inputs: odd, no groups
    outputs = layers.Dense(9)(x)  # 19 inputs
    return keras.Model(inputs, outputs)


def kernels_in_bands(model, seed: int = 1) -> None:
    """16 values per kernel (a clustered one), each output channel drawing from one of three bands of them whose
    largest magnitudes differ: per-channel int8 then gives the channels of a band one table and the bands
    different ones (more than 16 values in the tensor), as BatchNorm folding and per-tensor clustering do."""
    rng = np.random.default_rng(seed)
    centroids = np.linspace(-0.5, 0.5, 16).astype(np.float32)
    bands = (np.arange(0, 16), np.arange(3, 13), np.arange(1, 15))
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or weights[0].ndim != 2:
            continue
        kernel = weights[0]
        for j in range(kernel.shape[1]):
            band = bands[j % 3]
            kernel[:, j] = centroids[rng.choice(band, kernel.shape[0])]
            kernel[: len(band), j][: kernel.shape[0]] = centroids[band][: kernel.shape[0]]
        layer.set_weights([kernel, *weights[1:]])


@pytest.fixture(scope="module")
def fc_models(nx, keras):
    data = np.random.default_rng(1).normal(size=(64, 48)).astype(np.float32)
    built = {}
    for per_channel in (True, False):
        model = fc_groups_breaker(keras)
        kernels_in_bands(model)
        built[16, per_channel] = nx.convert(model, data, per_channel=per_channel)
    return built


def test_fc_rows_share_tables_in_groups(fc_models):
    from edgeclust.backends.native.records import FullyConnectedStep

    lowered = NativeBackend().lower(fc_models[16, True], weight_layouts(fc_models[16, True]))
    steps = lowered.details.program.steps
    grouped = {s.in_n: s for s in steps if isinstance(s, FullyConnectedStep) and s.order is not None}
    assert set(grouped) == {48, 42}
    for step in grouped.values():
        oc = step.order & 0x7FFF
        assert sorted(oc.tolist()) == list(range(step.out_n)) and step.order[0] & 0x8000
        w = step.weights  # every row's table is its group's: rows of one group have the same table
        starts = np.flatnonzero(step.order & 0x8000).tolist() + [step.out_n]
        for a, b in zip(starts, starts[1:]):
            assert (w.table[oc[a:b]] == w.table[oc[a]]).all()
        assert len(starts) - 1 < step.out_n  # tables shared


@pytest.mark.parametrize("per_channel", [True, False], ids=["channel", "tensor"])
def test_fc_groups_host_build_matches_tflm(nx, fc_models, per_channel):
    nx.check_bit_exact(fc_models[16, per_channel], n=6, backend=NativeBackend(sanitize=True))


@pytest.mark.parametrize(
    "board_id,per_channel",
    [
        ("qemu_mps2_an386", True),
        ("qemu_mps2_an386", False),
        ("qemu_mps3_an547", True),
        ("qemu_mps3_an547", False),
        ("qemu_lm3s6965evb", True),
    ],
)
def test_fc_groups_firmware_is_bit_exact(nx, fc_models, board_id, per_channel, tmp_path):
    lines = nx.qemu_self_test(fc_models[16, per_channel], board_id, tmp_path)
    assert inference_ticks(lines) > 0
