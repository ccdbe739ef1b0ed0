"""Small real models for the native backend's tests: tiny Keras models converted by the real converter.

`weights_with_values(model, k)` sets each kernel to k distinct float values (what clustering leaves), so a
model converted per tensor holds 2^b int8 values per filter; `check_bit_exact` runs the native host build
and the tflite_micro interpreter on the same int8 inputs and compares every output byte.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.native import NativeBackend
from edgeclust.pipeline.layouts import weight_layouts
from edgeclust.tflite.parity import run_tflm, tflm_arena_bytes


def convert(model, data, *, per_channel: bool = True) -> bytes:
    from edgeclust.tflite.convert import to_tflite

    return to_tflite(model, quantize="int8", representative_data=data, per_channel=per_channel, num_calibration=64)


def weights_with_values(model, values_per_kernel: int, *, seed: int = 0) -> None:
    """Replace every kernel with `values_per_kernel` distinct values (a clustered kernel), biases untouched."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        kernel = weights[0]
        if kernel.ndim < 2:
            continue
        # evenly spaced, so that per-tensor int8 keeps them apart (up to 128 values)
        centroids = (np.linspace(-0.5, 0.5, values_per_kernel) * rng.uniform(0.5, 1.5)).astype(np.float32)
        weights[0] = centroids[rng.integers(0, values_per_kernel, kernel.shape)]
        present = min(values_per_kernel, kernel.size)  # every value present at least once where it fits
        weights[0].reshape(-1)[:present] = centroids[:present]
        layer.set_weights(weights)


def int8_inputs(tflite: bytes, n: int, seed: int = 1) -> np.ndarray:
    """Random examples in the model's input dtype: every int8 value, or normal floats for a float input."""
    from edgeclust.tflite.parity import model_interface

    spec = model_interface(tflite).inputs[0]
    rng = np.random.default_rng(seed)
    if spec.dtype == "float32":
        return rng.normal(0, 1, size=(n, *spec.shape[1:])).astype(np.float32)
    return rng.integers(-128, 128, size=(n, *spec.shape[1:])).astype(np.int8)


def convert_float_edges(model, data) -> bytes:
    """int8 kernels with float32 input and output (QUANTIZE / DEQUANTIZE at the edges), as TF's converter
    writes when no inference type is set; a model without a fixed batch size gets Flatten's SHAPE ops."""
    import tensorflow as tf

    from edgeclust.tflite._fds import captured_output

    def representative():
        for row in data[:64]:
            yield [row[None].astype(np.float32)]

    with captured_output():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


def check_bit_exact(tflite: bytes, n: int = 8, *, layouts=None, backend: NativeBackend | None = None):
    """Native host build vs the tflite_micro interpreter on `n` random int8 inputs; returns the Lowered."""
    backend = backend or NativeBackend()
    lowered = backend.lower(tflite, weight_layouts(tflite) if layouts is None else layouts)
    x = int8_inputs(tflite, n)
    ours = backend.run_host(lowered, x)
    reference = run_tflm(tflite, x)
    assert ours.dtype == reference.dtype and ours.shape == reference.shape
    differing = np.count_nonzero(ours != reference)
    worst = int(np.abs(ours.astype(int) - reference).max())
    assert differing == 0, f"{differing} of {ours.size} outputs differ from TFLM (max {worst} LSB)"
    # the planned arena: never below the whole-tensor bound unless convolutions run in place, never above
    # TFLM's measured arena but for the kernels' scratch (one step's at a time; TFLM's reference kernels use none)
    program = lowered.details.program
    scratch = max((buffer.size for _, buffer, _ in program.scratch), default=0)
    assert program.in_place or lowered.arena_lower_bound <= lowered.arena_bytes
    assert lowered.arena_bytes <= tflm_arena_bytes(tflite) + scratch
    return lowered


def clustered_variants(build, data, variants=((16, False), (16, True), (4, True), (0, True))) -> dict:
    """{(values, per_channel): .tflite}: the model build() returns with each kernel set to `values` distinct
    values (0: left as built), converted to int8 per channel or per tensor, calibrated on `data`."""
    built = {}
    for values, per_channel in variants:
        model = build()
        if values:
            weights_with_values(model, values)
        built[values, per_channel] = convert(model, data, per_channel=per_channel)
    return built


def qemu_self_test(tflite: bytes, board_id: str, folder, n: int = 3, *, lowered=None) -> list[str]:
    """The native firmware for `board_id` with `n` self-test cases (expected outputs from the host build),
    built in `folder` and run under QEMU -icount: asserts its self-test passed bit-exact; returns its lines."""
    from edgeclust.backends.base import SelfTestCase
    from edgeclust.codegen.board import load_board
    from edgeclust.device.build import build_make_project, write_project
    from edgeclust.device.icount import run_icount
    from edgeclust.resources import boards_dir

    board = load_board(board_id, boards_dir())
    backend = NativeBackend()
    lowered = lowered or backend.lower(tflite, weight_layouts(tflite))
    x = int8_inputs(tflite, n)
    expected = backend.run_host(lowered, x)
    files = backend.render(lowered, board, [SelfTestCase(x[i], expected[i]) for i in range(n)])
    status, lines = run_icount(build_make_project(write_project(files, folder), board), board)
    console = "\n".join(lines)
    assert status == 0 and f"self-test: PASS ({n}/{n} outputs bit-identical" in console, console
    return lines


@pytest.fixture(scope="session")
def keras():
    import keras

    return keras


class Helpers:
    """The helpers above, handed to tests as the `nx` fixture (conftest modules are not importable)."""

    convert = staticmethod(convert)
    convert_float_edges = staticmethod(convert_float_edges)
    weights_with_values = staticmethod(weights_with_values)
    int8_inputs = staticmethod(int8_inputs)
    check_bit_exact = staticmethod(check_bit_exact)
    qemu_self_test = staticmethod(qemu_self_test)
    clustered_variants = staticmethod(clustered_variants)


@pytest.fixture(scope="session")
def nx() -> Helpers:
    return Helpers()
