"""Data-movement and spatial ops on the native backend (movement.py, ec_movement.c): tiny real Keras models
converted to int8, lowered natively and compared bit for bit with the tflite_micro interpreter (TILE, which
TFLM lacks, against numpy's repeat); the sanitized host build; one QEMU firmware holding every new kernel."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.base import SelfTestCase
from edgeclust.backends.native import NativeBackend
from edgeclust.backends.native.movement import CopyStep, MeanNdStep, ResizeNearestStep, TransposeConvStep
from edgeclust.codegen.board import load_board
from edgeclust.device.build import build_make_project, write_project
from edgeclust.device.icount import run_icount
from edgeclust.pipeline.layouts import weight_layouts
from edgeclust.resources import boards_dir


def _conv1d(keras, layers, ops):
    """Conv1D HAR-style: RESHAPE + CONV_2D, MaxPooling1D, GlobalAveragePooling1D (MEAN over axis 1 of 3-D)."""
    i = keras.Input((16, 3), batch_size=1)
    x = layers.Conv1D(4, 3, activation="relu")(i)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(6, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(i, layers.Dense(3)(x))


def _pad(keras, layers, ops):
    """ZeroPadding2D (PAD) and ops.pad with a constant (PADV2)."""
    i = keras.Input((6, 6, 2), batch_size=1)
    x = layers.ZeroPadding2D(((1, 2), (0, 1)))(i)
    x = layers.Conv2D(3, 3)(x)
    x = layers.Lambda(lambda t: ops.pad(t, [[0, 0], [1, 1], [2, 0], [0, 1]], constant_values=0.7))(x)
    x = layers.MaxPooling2D()(x)
    return keras.Model(i, layers.Conv2D(2, 1)(x))


def _fire(keras, layers, ops):
    """A SqueezeNet fire module: squeeze 1x1, expand 1x1 and 3x3, CONCATENATION on channels."""
    i = keras.Input((8, 8, 3), batch_size=1)
    s = layers.Conv2D(4, 1, activation="relu")(i)
    a = layers.Conv2D(5, 1, activation="relu")(s)
    b = layers.Conv2D(6, 3, padding="same", activation="relu")(s)
    return keras.Model(i, layers.Conv2D(3, 1)(layers.Concatenate()([a, b])))


def _unet(keras, layers, ops):
    """U-Net pieces: Conv2DTranspose (TRANSPOSE_CONV, VALID and SAME, stride 2 and 1) and a skip Concatenate."""
    i = keras.Input((8, 8, 2), batch_size=1)
    c1 = layers.Conv2D(4, 3, padding="same", activation="relu")(i)
    p1 = layers.MaxPooling2D()(c1)
    b = layers.Conv2D(6, 3, padding="same", activation="relu")(p1)
    u = layers.Conv2DTranspose(4, 2, strides=2, padding="same")(b)
    x = layers.Concatenate()([u, c1])
    x = layers.Conv2DTranspose(3, 3, strides=2, padding="valid")(x)
    return keras.Model(i, layers.Conv2DTranspose(2, 3, padding="same")(x))


def _split(keras, layers, ops):
    """SPLIT on channels, SPLIT_V on rows, CONCATENATION on axis 1 in another order."""
    i = keras.Input((6, 6, 4), batch_size=1)
    a, b = layers.Lambda(lambda t: ops.split(t, 2, axis=-1))(i)
    c, d, e = layers.Lambda(lambda t: ops.split(t, [1, 3], axis=1))(i)
    x = layers.Concatenate()([layers.Conv2D(3, 1)(a), layers.Conv2D(3, 1)(b)])
    y = layers.Concatenate(axis=1)([e, d, c])
    return keras.Model(i, layers.Concatenate()([layers.Conv2D(3, 1)(x), layers.Conv2D(2, 1)(y)]))


def _unpack(keras, layers, ops):
    """UNPACK over time steps (what an unrolled RNN starts with), a Dense per step, CONCATENATION."""
    i = keras.Input((4, 6), batch_size=1)
    parts = layers.Lambda(lambda t: ops.unstack(t, axis=1))(i)
    return keras.Model(i, layers.Concatenate()([layers.Dense(5)(p) for p in parts]))


def _slice(keras, layers, ops):
    """STRIDED_SLICE on data (a stride, a reversed axis), MEAN over axis 2, EXPAND_DIMS as a reshape."""
    i = keras.Input((8, 8, 4), batch_size=1)
    x = layers.Lambda(lambda t: t[:, 1:7:2, ::-1, 1:3])(i)
    x = layers.Conv2D(3, 1)(x)
    y = layers.Lambda(lambda t: ops.expand_dims(ops.mean(t, axis=2), 1))(x)
    return keras.Model(i, layers.Conv2D(2, 1)(y))


def _mean(keras, layers, ops):
    """MEAN over axes (1, 3) and over axis 2 of 4-D tensors, keep_dims."""
    i = keras.Input((6, 5, 4), batch_size=1)
    x = layers.Conv2D(4, 1)(i)
    a = layers.Lambda(lambda t: ops.mean(t, axis=(1, 3), keepdims=True))(x)
    b = layers.Lambda(lambda t: ops.mean(t, axis=2, keepdims=True))(layers.Conv2D(4, 1)(i))
    return keras.Model(i, layers.Add()([layers.Conv2D(3, 1)(a), layers.Conv2D(3, 1)(b)]))


def _resize(keras, layers, ops):
    """RESIZE_NEAREST_NEIGHBOR up by 2x3 and down to an odd size (half-pixel centers)."""
    i = keras.Input((5, 4, 2), batch_size=1)
    x = layers.Conv2D(3, 1)(i)
    x = layers.Resizing(10, 12, interpolation="nearest")(x)
    x = layers.Lambda(lambda t: ops.image.resize(t, (7, 5), interpolation="nearest"))(x)
    return keras.Model(i, layers.Conv2D(2, 1)(x))


MODELS = {
    "conv1d": (_conv1d, {"MEAN", "RESHAPE"}),
    "pad": (_pad, {"PAD", "PADV2"}),
    "fire": (_fire, {"CONCATENATION"}),
    "unet": (_unet, {"TRANSPOSE_CONV", "CONCATENATION"}),
    "split": (_split, {"SPLIT", "SPLIT_V", "CONCATENATION"}),
    "unpack": (_unpack, {"UNPACK"}),
    "slice": (_slice, {"STRIDED_SLICE", "MEAN"}),
    "mean": (_mean, {"MEAN"}),
    "resize": (_resize, {"RESIZE_NEAREST_NEIGHBOR"}),
}


def _build(nx, keras, name: str, levels: int = 0) -> bytes:
    from keras import layers, ops

    keras.utils.set_random_seed(0)
    model = MODELS[name][0](keras, layers, ops)
    if levels:
        nx.weights_with_values(model, levels)
    data = np.random.default_rng(0).normal(size=(64, *model.inputs[0].shape[1:])).astype(np.float32)
    return nx.convert(model, data)


@pytest.fixture(scope="module")
def models(nx, keras) -> dict[str, bytes]:
    return {name: _build(nx, keras, name, levels=4 if name == "unet" else 0) for name in MODELS}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_matches_tflm(nx, models, name):
    from edgeclust.backends.native.from_tflite import graph_from_tflite

    ops = {op.name for op in graph_from_tflite(models[name]).ops}
    assert MODELS[name][1] <= ops, ops
    nx.check_bit_exact(models[name], 6)


def test_sanitized_host_build_matches_tflm(nx, models):
    """Under -fsanitize=address,undefined: no report, the same bytes (the mutation tests below run more)."""
    nx.check_bit_exact(models["split"], 2, backend=NativeBackend(sanitize=True))


def test_transpose_conv_weights_stay_packed(models):
    """Clustered Conv2DTranspose kernels (4 values) land on flash as 2-bit indices, not int8."""
    tflite = models["unet"]
    lowered = NativeBackend().lower(tflite, weight_layouts(tflite))
    steps = [s for s in lowered.details.program.steps if isinstance(s, TransposeConvStep)]
    assert len(steps) == 3
    assert all(s.weights.table is not None and s.weights.bits == 2 for s in steps)


def test_concatenation_and_split_are_copies_into_one_buffer(models):
    program = NativeBackend().lower(models["split"], ()).details.program
    copies = [s for s in program.steps if isinstance(s, CopyStep)]
    assert {s.op for s in copies} == {"SPLIT", "SPLIT_V", "CONCATENATION"}
    concat = [s for s in copies if s.op == "CONCATENATION"]
    assert len({s.outputs for s in concat if s.op_index == concat[0].op_index}) == 1


def _upsampling(keras):
    i = keras.Input((3, 4, 2), batch_size=1)
    return keras.Model(i, keras.layers.UpSampling2D((2, 3))(i))


def test_tile_from_upsampling2d_repeats_rows_and_columns(nx, keras):
    """Keras 3 UpSampling2D is RESHAPE + TILE (edgeclust converts it as Resizing unless told not to); TFLM has no
    TILE kernel, so the check is TFLite's semantics."""
    from edgeclust.backends.native.from_tflite import graph_from_tflite
    from edgeclust.tflite.convert import to_tflite

    keras.utils.set_random_seed(0)
    model = _upsampling(keras)
    data = np.random.default_rng(0).normal(size=(32, 3, 4, 2)).astype(np.float32)
    tflite = to_tflite(model, quantize="int8", representative_data=data, num_calibration=32, resize_upsampling=False)
    assert "TILE" in {op.name for op in graph_from_tflite(tflite).ops}
    backend = NativeBackend()
    lowered = backend.lower(tflite, ())
    x = nx.int8_inputs(tflite, 3)
    expected = np.repeat(np.repeat(x, 2, axis=1), 3, axis=2)
    assert np.array_equal(backend.run_host(lowered, x), expected)


def _every_kernel(keras):
    """One model calling ec_copy (PAD, CONCATENATION, SPLIT, STRIDED_SLICE, TILE), ec_resize_nearest,
    ec_mean_nd and ec_transpose_conv."""
    from keras import layers, ops

    i = keras.Input((6, 6, 2), batch_size=1)
    x = layers.Conv2D(4, 3, activation="relu")(layers.ZeroPadding2D()(i))
    a, b = layers.Lambda(lambda t: ops.split(t, 2, axis=-1))(x)
    x = layers.Concatenate()([layers.Conv2D(3, 1)(a), layers.Conv2D(3, 1)(b)])
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    x = layers.Lambda(lambda t: t[:, 1:11:2, :, :])(x)
    x = layers.Resizing(6, 9, interpolation="nearest")(x)
    x = layers.UpSampling2D()(layers.Conv2D(3, 1)(x))
    x = layers.Lambda(lambda t: ops.mean(t, axis=2))(x)
    return keras.Model(i, layers.Dense(4)(layers.Flatten()(x)))


def test_every_new_kernel_in_one_firmware_on_qemu(nx, keras, tmp_path):
    keras.utils.set_random_seed(0)
    model = _every_kernel(keras)
    nx.weights_with_values(model, 8)
    tflite = nx.convert(model, np.random.default_rng(0).normal(size=(64, 6, 6, 2)).astype(np.float32))
    backend = NativeBackend()
    lowered = backend.lower(tflite, weight_layouts(tflite))
    kinds = {type(s) for s in lowered.details.program.steps}
    assert {CopyStep, ResizeNearestStep, MeanNdStep, TransposeConvStep} <= kinds
    x = nx.int8_inputs(tflite, 3)
    expected = backend.run_host(lowered, x)
    board = load_board("qemu_mps2_an386", boards_dir())
    files = backend.render(lowered, board, [SelfTestCase(x[i], expected[i]) for i in range(len(x))])
    elf = build_make_project(write_project(files, tmp_path), board)
    status, lines = run_icount(elf, board)
    console = "\n".join(lines)
    assert status == 0, console
    assert "self-test: PASS (3/3 outputs bit-identical" in console


def _fuzz_module():
    """test_fuzz_native.py (run_case: refused in one line, or sanitized C equal to TFLM) and its edit helpers."""
    import importlib.util
    import sys
    from pathlib import Path

    if "native_fuzz_cases" not in sys.modules:
        path = Path(__file__).with_name("test_fuzz_native.py")
        spec = importlib.util.spec_from_file_location("native_fuzz_cases", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["native_fuzz_cases"]


MUTATIONS = {
    "concatenation axis 7": ("fire", "CONCATENATION", {"axis": 7}),
    "concatenation with RELU": ("fire", "CONCATENATION", {"fusedActivationFunction": 1}),
    "unpack axis 3": ("unpack", "UNPACK", {"axis": 3}),
    "transpose conv stride 0": ("unet", "TRANSPOSE_CONV", {"strideW": 0}),
    "transpose conv VALID": ("unet", "TRANSPOSE_CONV", {"padding": 1}),
    "strided slice ellipsis": ("slice", "STRIDED_SLICE", {"ellipsisMask": 1}),
    "resize align corners": ("resize", "RESIZE_NEAREST_NEIGHBOR", {"alignCorners": True, "halfPixelCenters": False}),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_option_mutations_end_in_a_clear_error_or_matching_c(models, name):
    """Odd options on the new ops: refused in one line, or sanitized C bit-identical to TFLM."""
    fuzz = _fuzz_module()
    model, op, fields = MUTATIONS[name]
    fuzz.run_case(fuzz._edit(models[model], fuzz._set_options(op, **fields)))


def test_constant_data_mutations_end_in_a_clear_error_or_matching_c(models):
    """Bytes of the constants the new ops read (paddings, axes, sizes, begin/end/strides, filters) set to
    telling values: each case refused in one line, or sanitized C bit-identical to TFLM."""
    import random

    fuzz = _fuzz_module()
    for case, name in enumerate(("pad", "slice", "unet")):
        rng = random.Random(case)
        data = bytearray(models[name])
        start, end = rng.choice(fuzz.fuzz_script.data_ranges(models[name], min_size=1))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(start, end)] = rng.choice([0x80, 0x7F, 0xFF, 0x00, 0x02, rng.randrange(256)])
        fuzz.run_case(bytes(data))


def test_a_float32_split_island_copies_the_values_as_they_are():
    """DEQUANTIZE -> SPLIT (float32) -> QUANTIZE, as TensorFlow's int8 converter leaves in some unrolled GRU/LSTM
    models: the split copies four-byte values; with the QUANTIZE at the DEQUANTIZE's scale and zero point each
    output is its slice of the input, exactly."""
    from edgeclust.backends.native import emit_c, host
    from edgeclust.backends.native.lowering import lower_graph
    from edgeclust.lower.graph import Graph, GraphOp, GraphTensor, Quant

    q = Quant((0.05,), (3,))
    tensors = (
        GraphTensor(0, "input", (1, 4, 6), "int8", q),
        GraphTensor(1, "dequantized", (1, 4, 6), "float32"),
        GraphTensor(2, "axis", (), "int32", None, np.array(2, np.int32)),
        GraphTensor(3, "left", (1, 4, 1), "float32"),
        GraphTensor(4, "middle", (1, 4, 3), "float32"),
        GraphTensor(5, "right", (1, 4, 2), "float32"),
        GraphTensor(6, "axis_v", (), "int32", None, np.array(2, np.int32)),
        GraphTensor(7, "sizes", (3,), "int32", None, np.array([1, 3, 2], np.int32)),
        GraphTensor(8, "output", (1, 4, 3), "int8", q),
    )
    ops = (
        GraphOp(0, "DEQUANTIZE", (0,), (1,)),
        GraphOp(1, "SPLIT_V", (1, 7, 6), (3, 4, 5), {"num_splits": 3}),
        GraphOp(2, "QUANTIZE", (4,), (8,)),
    )
    program = lower_graph(Graph(tensors, ops, (0,), (8,)))
    assert any(b.dtype == "float32" for b in program.buffers if b not in (program.input, program.output))
    files = {"ec_model.c": emit_c.model_source(program).encode(), "ec_model.h": emit_c.model_header(program).encode()}
    x = np.random.default_rng(0).integers(-128, 128, (5, 4, 6)).astype(np.int8)
    out = host.run_host_binary(host.build_host(files, sanitize=True), x, (4, 3), "int8")
    assert np.array_equal(out, x[:, :, 1:4])
