"""CMSIS-NN's arena needs (backends/tflm/cmsis.py) on real converted models, against the sizes CMSIS-NN's
*_get_buffer_size functions give for each core, and in the rendered model_settings.h (the project with a CMSIS-NN
tree adds them under CMSIS_NN; the firmware runs in QEMU with TFLM_ROOT, tests/codegen -m tflm_tree)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.tflm.cmsis import arch_of, cmsis_nn_arena


def _tflite(keras, shape, *layers, per_channel=True):
    from edgeclust.tflite.convert import to_tflite

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape, batch_size=1), *layers])
    data = np.random.default_rng(0).normal(size=(16, *shape)).astype(np.float32)
    return to_tflite(model, representative_data=data, per_channel=per_channel)


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


def test_cores_map_to_the_code_cmsis_nn_compiles():
    assert [
        arch_of(c) for c in ("cortex-m55", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m3", "cortex-m0plus")
    ] == [
        "mve",
        "dsp",
        "dsp",
        "dsp",
        "plain",
        "plain",
    ]


def test_conv_scratch_is_the_im2col_buffer_of_the_core(keras):
    tflite = _tflite(keras, (8, 8, 3), keras.layers.Conv2D(4, 3, padding="same"))
    cols = 3 * 3 * 3  # 27
    assert cmsis_nn_arena(tflite, "cortex-m55").scratch == 4 * 2 * 16  # 4 im2col columns of 16-lane blocks
    aligned = -(-cols // 4) * 4  # 28
    assert cmsis_nn_arena(tflite, "cortex-m4").scratch == 2 * aligned * 2 == 112  # two int16 columns, 4-aligned
    assert cmsis_nn_arena(tflite, "cortex-m3").scratch == 112
    one_by_one = _tflite(keras, (8, 8, 3), keras.layers.Conv2D(4, 1))
    assert cmsis_nn_arena(one_by_one, "cortex-m55").extra == cmsis_nn_arena(one_by_one, "cortex-m4").extra == 0


def test_depthwise_and_fully_connected_needs(keras):
    dw3 = _tflite(keras, (8, 8, 6), keras.layers.DepthwiseConv2D(3, padding="same"))
    assert cmsis_nn_arena(dw3, "cortex-m55").scratch == 4 * 124 * 9  # CH_IN_BLOCK_MVE
    assert cmsis_nn_arena(dw3, "cortex-m4").scratch == 0  # the 3x3 DSP kernel needs none
    dw5 = _tflite(keras, (8, 8, 6), keras.layers.DepthwiseConv2D(5, padding="same"))
    assert cmsis_nn_arena(dw5, "cortex-m4").scratch == 304  # 6 x 25 int16 = 300, aligned to 16
    fc = _tflite(keras, (20,), keras.layers.Dense(12), keras.layers.Dense(5))
    mve = cmsis_nn_arena(fc, "cortex-m55")
    assert mve.persistent == 48 + 32 and mve.scratch == 0  # each layer's kernel sums, 16-byte aligned
    assert cmsis_nn_arena(fc, "cortex-m4").extra == 0


def test_the_project_reserves_them_under_cmsis_nn(keras):
    from edgeclust.backends.tflm import TflmBackend
    from edgeclust.pipeline.boards import board_spec
    from edgeclust.pipeline.layouts import weight_layouts

    tflite = _tflite(keras, (8, 8, 6), keras.layers.DepthwiseConv2D(3, padding="same"), keras.layers.Flatten())
    backend = TflmBackend()
    lowered = backend.lower(tflite, weight_layouts(tflite))
    reserved = lowered.details.arena.reserved
    settings = backend.render(lowered, board_spec("qemu_mps3_an547"), [])["model_settings.h"].decode()
    assert "#ifdef CMSIS_NN" in settings and f"kTensorArenaSize = {reserved + 4464};" in settings
    assert f"kTensorArenaSize = {reserved};" in settings  # the reference kernels' build
    plain = backend.render(lowered, board_spec("qemu_mps2_an386"), [])["model_settings.h"].decode()
    assert "CMSIS_NN" not in plain and f"kTensorArenaSize = {reserved};" in plain  # DSP 3x3 depthwise: nothing
