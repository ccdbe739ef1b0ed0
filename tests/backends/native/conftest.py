"""Small real models for the native backend's tests: tiny Keras models converted by the real converter.

`weights_with_values(model, k)` sets each kernel to k distinct float values (what clustering leaves), so a
model converted per tensor holds 2^b int8 values per filter; `check_bit_exact` runs the native host build
and the tflite_micro interpreter on the same int8 inputs and compares every output byte.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.native import NativeBackend, default_layouts
from edgeclust.tflite.parity import run_tflm


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
        centroids = np.sort(rng.normal(0, 0.3, values_per_kernel)).astype(np.float32)
        weights[0] = centroids[rng.integers(0, values_per_kernel, kernel.shape)]
        if values_per_kernel > 1:  # every value present at least once
            flat = weights[0].reshape(-1)
            flat[:values_per_kernel] = centroids
        layer.set_weights(weights)


def int8_inputs(tflite: bytes, n: int, seed: int = 1) -> np.ndarray:
    from edgeclust.tflite.parity import model_interface

    spec = model_interface(tflite).inputs[0]
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(n, *spec.shape[1:])).astype(np.int8)


def check_bit_exact(tflite: bytes, n: int = 8, *, layouts=None, backend: NativeBackend | None = None):
    """Native host build vs the tflite_micro interpreter on `n` random int8 inputs; returns the Lowered."""
    backend = backend or NativeBackend()
    lowered = backend.lower(tflite, default_layouts(tflite) if layouts is None else layouts)
    x = int8_inputs(tflite, n)
    ours = backend.run_host(lowered, x)
    reference = run_tflm(tflite, x)
    assert ours.dtype == reference.dtype and ours.shape == reference.shape
    differing = np.count_nonzero(ours != reference)
    assert differing == 0, f"{differing} of {ours.size} outputs differ from TFLM (max {np.abs(ours.astype(int) - reference).max()} LSB)"
    return lowered


@pytest.fixture(scope="session")
def keras():
    import keras

    return keras
