"""Models that crash TensorFlow's int8 calibrator or TFLite Micro give one error line, exit 1 and no files; an LSTM
converts because it is unrolled first (and the CLI says so)."""

from __future__ import annotations

import numpy as np
import pytest

BOARD = "qemu_mps2_an386"


def _save(folder, model, x, y) -> None:
    model.save(folder / "model.keras")
    np.savez(folder / "d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])


@pytest.fixture(scope="module")
def lstm_folder(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 3))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.LSTM(4)(inputs)))
    folder = tmp_path_factory.mktemp("lstm")
    rng = np.random.default_rng(0)
    _save(folder, model, rng.normal(size=(32, 6, 3)).astype(np.float32), rng.integers(0, 3, 32))
    return folder


def test_convert_unrolls_an_lstm_and_says_so(lstm_folder, tmp_path, run_cli):
    result = run_cli(
        ["convert", lstm_folder / "model.keras", "--data", lstm_folder / "d.npz", "-o", "m.tflite"], tmp_path
    )
    assert result.exit_code == 0, result.stderr
    assert "note: unrolled the recurrent layers lstm" in result.stdout
    ops = result.stdout.split("ops: ", 1)[1].splitlines()[0]
    assert "WHILE" not in ops and "UNPACK" in ops


def test_a_calibrator_crash_is_one_line_and_writes_nothing(
    lstm_folder, tmp_path, monkeypatch, run_cli, assert_one_line_error, nothing_written
):
    """With the unrolling turned off, TF's int8 calibrator really segfaults on the LSTM's loop."""
    from edgeclust.tflite import convert

    monkeypatch.setattr(convert, "unroll_recurrent", lambda model: model)
    with nothing_written(tmp_path):
        result = run_cli(
            ["convert", lstm_folder / "model.keras", "--data", lstm_folder / "d.npz", "-o", "m.tflite"], tmp_path
        )
    assert_one_line_error(result, 1, "the int8 converter crashed on this model (signal 11, in TensorFlow); ")


@pytest.mark.parametrize("backend", ["tflm", "native"])
def test_a_softmax_tflm_would_abort_on_is_refused_in_one_line(tmp_path_factory, backend, run_cli, nothing_written):
    """Equal logits (a zero kernel): softmax input scale 7.84e-9, on which TFLM's Prepare aborts the process."""
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", kernel_initializer="zeros")(inputs))
    folder = tmp_path_factory.mktemp("softmax")
    rng = np.random.default_rng(0)
    _save(folder, model, rng.normal(size=(32, 4)).astype(np.float32), rng.integers(0, 3, 32))
    args = ["build", "model.keras", "--board", BOARD, "--data", "d.npz", "--backend", backend, "--out", "out"]
    with nothing_written(folder):
        result = run_cli([*args, "--epochs", "0"], folder)
    assert result.exit_code == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    [line] = result.error_lines()  # after the build's progress lines
    assert "this softmax cannot run on TFLM or native" in line and "= 0.526" in line
