"""With a TFLM tree ($TFLM_ROOT): the full project builds for both QEMU boards, `edgeclust flash` runs it, and
the firmware's outputs on the baked-in inputs are bit-identical to the TFLM host interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeclust.backends.tflm.arena import tflm_arena

pytestmark = pytest.mark.tflm_tree
TOOLCHAIN = Path(__file__).resolve().parents[2] / "toolchain"


def _flash_cli(project_dir: Path, tflm_root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(TOOLCHAIN), "TFLM_ROOT": str(tflm_root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "edgeclust", "flash", str(project_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )


def _firmware_outputs(stdout: str, dtype) -> np.ndarray:
    rows = re.findall(r"^self-test case \d+: ok(?: \(\d+ ULP\))?; output: (.*)$", stdout, re.M)
    if dtype == np.float32:
        return np.array([[int(v, 16) for v in row.split()] for row in rows], np.uint32).view(np.float32)
    return np.array([[int(v) for v in row.split()] for row in rows], dtype)


@pytest.mark.parametrize("board_id", ["qemu_mps2_an386", "qemu_lm3s6965evb"])
def test_int8_firmware_outputs_are_bit_identical_to_the_host(
    board_id, make_project, tiny_model, tflm_root, tmp_path, cross_tools
):
    from edgeclust.tflite import parity

    out = tmp_path / "firmware"
    make_project(board_id, out)
    done = _flash_cli(out, tflm_root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "self-test: PASS (3/3 outputs bit-identical to the TFLM host interpreter)" in done.stdout
    assert "exited with status 0 (self-test PASS)" in done.stdout
    host = parity.run_tflm(tiny_model.tflite, tiny_model.x)
    device = _firmware_outputs(done.stdout, np.int8)
    assert device.shape == host.reshape(len(host), -1).shape
    assert np.array_equal(device, host.reshape(len(host), -1))
    used = int(re.search(r"arena used: (\d+) of (\d+) bytes", done.stdout).group(1))
    assert 0 < used <= tiny_model.arena  # the host's 64-bit measurement bounds the board's


def test_float_firmware_outputs_match_the_host_within_a_few_ulp_on_the_m4f(
    digits, tflm_project, tflm_root, tmp_path, cross_tools
):
    from edgeclust import examples
    from edgeclust.tflite import parity
    from edgeclust.tflite.convert import to_tflite

    data = to_tflite(examples.digits_cnn(seed=1), quantize="float32")
    x = digits.x_test[:2]
    out = tmp_path / "firmware"
    tflm_project(data, "qemu_mps2_an386", out, x)
    done = _flash_cli(out, tflm_root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    host = parity.run_tflm(data, x).reshape(len(x), -1)
    device = _firmware_outputs(done.stdout, np.float32)
    assert device.shape == host.shape
    # With -ffp-contract=off our code adds no fused multiply-add; newlib's expf (softmax) on the FPU core may
    # still round differently from the host's by an ULP or two.
    assert np.max(np.abs(device.view(np.int32).astype(np.int64) - host.view(np.int32))) <= 4
    assert "self-test: PASS" in done.stdout


def test_a_model_too_big_for_the_arena_fails_with_status_2(make_project, tiny_model, tflm_root, tmp_path, cross_tools):
    out = tmp_path / "firmware"
    make_project("qemu_mps2_an386", out, arena=tflm_arena(512, margin=0.0))
    done = _flash_cli(out, tflm_root)
    assert done.returncode == 1, done.stdout[-2000:]  # flash exits 1 on any failure; the status is in the line
    assert "AllocateTensors() failed" in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("edgeclust: error:")]
    assert len(errors) == 1 and "status 2" in errors[0] and "could not be set up" in errors[0]


def test_a_lut_compressed_model_decodes_on_the_board_bit_identically(
    digits, tflm_project, tflm_root, tmp_path, cross_tools
):
    import keras
    from keras import layers

    from edgeclust.tflite import parity
    from edgeclust.tflite.convert import to_tflite

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(8, 8, 1))
    x = layers.Flatten()(layers.Conv2D(8, 3, padding="same", activation="relu")(inputs))
    model = keras.Model(inputs, layers.Dense(10, activation="softmax")(layers.Dense(64, activation="relu")(x)))
    for layer in model.layers:  # 16 values per kernel, as clustering leaves them
        weights = layer.get_weights()
        if weights:
            levels = np.linspace(weights[0].min(), weights[0].max(), 16, dtype=np.float32)
            weights[0] = levels[np.abs(weights[0][..., None] - levels).argmin(-1)]
            layer.set_weights(weights)
    int8 = to_tflite(model, quantize="int8", representative_data=digits.x_train, num_calibration=32, per_channel=False)
    x = digits.x_test[:3]
    out = tmp_path / "firmware"
    lowered = tflm_project(int8, "qemu_mps2_an386", out, x, compress="lut")
    assert lowered.details.lut.compressed_tensors and len(lowered.model) < len(int8)
    assert "TFLM_DECODE" in lowered.op_names
    done = _flash_cli(out, tflm_root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    device = _firmware_outputs(done.stdout, np.int8)
    assert np.array_equal(device, parity.run_tflm(int8, x).reshape(len(x), -1))  # = the uncompressed model's


def test_a_cmsis_nn_tree_builds_and_passes_its_self_test(make_project, tiny_model, tmp_path, cross_tools):
    """$TFLM_CMSIS_NN_ROOT: a tree written with OPTIMIZED_KERNEL_DIR=cmsis_nn (DEVELOPERS.md); the project's
    Makefile finds CMSIS-NN in it and builds with its kernels, bit-identical to the host interpreter."""
    from edgeclust.tflite import parity

    root = os.environ.get("TFLM_CMSIS_NN_ROOT", "")
    if not root or not (Path(root) / "third_party" / "cmsis_nn" / "Include").is_dir():
        pytest.skip(
            "TFLM_CMSIS_NN_ROOT is not set to a TFLM tree with CMSIS-NN (third_party/cmsis_nn): write one with "
            "create_tflm_tree.py --makefile_options='OPTIMIZED_KERNEL_DIR=cmsis_nn TARGET=cortex_m_generic "
            "TARGET_ARCH=cortex-m4' as DEVELOPERS.md says"
        )
    out = tmp_path / "firmware"
    make_project("qemu_mps2_an386", out)
    done = _flash_cli(out, Path(root))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "-DCMSIS_NN" in (out / "build" / "build.log").read_text()
    device = _firmware_outputs(done.stdout, np.int8)
    host = parity.run_tflm(tiny_model.tflite, tiny_model.x)
    assert np.array_equal(device, host.reshape(len(host), -1))
