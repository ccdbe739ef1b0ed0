"""LiteRT and TFLite Micro on the same models: accuracy, differences, interface, the arena really needed."""

import re

import numpy as np
import pytest

from edgeclust.errors import DataError, ModelFormatError
from edgeclust.tflite import parity


@pytest.fixture(scope="module")
def test_set(digits):
    return digits.x_test, digits.y_test


def keras_outputs(model, x):
    return model.predict(x, batch_size=64, verbose=0)


def test_float32_litert_matches_keras(plain, test_set):
    x, y = test_set
    reference = keras_outputs(plain.model, x)
    litert = parity.run_litert(plain.float32, x)
    assert litert.dtype == np.float32 and litert.shape == reference.shape
    result = parity.compare("litert float32", litert, labels=y, reference=reference)
    assert result.top1_agreement == 1.0
    assert result.max_abs_diff < 1e-5
    assert result.top1_accuracy == pytest.approx(np.mean(reference.argmax(1) == y))


def test_float32_tflm_matches_litert(plain, test_set):
    x, _ = test_set
    tflm = parity.run_tflm(plain.float32, x[:100])
    litert = parity.run_litert(plain.float32, x[:100])
    assert np.abs(tflm - litert).max() < 1e-5


@pytest.mark.parametrize("which", ["int8", "int8_per_tensor"])
def test_int8_litert_and_tflm_differ_by_at_most_one_lsb(plain, test_set, which):
    x, y = test_set
    data = getattr(plain, which)
    litert = parity.run_litert(data, x)
    tflm = parity.run_tflm(data, x)
    assert litert.dtype == tflm.dtype == np.int8
    out = parity.model_interface(data).outputs[0]
    result = parity.compare("tflm", tflm, labels=y, reference=litert, interface=out, reference_interface=out)
    assert result.max_lsb_diff <= 1
    assert result.max_abs_diff <= out.scale + 1e-9
    assert result.top1_agreement >= 0.98
    float_accuracy = np.mean(parity.run_litert(plain.float32, x).argmax(1) == y)
    assert result.top1_accuracy >= float_accuracy - 0.03


def test_litert_with_xnnpack_agrees_on_top1(plain, test_set):
    x, _ = test_set
    with_delegate = parity.run_litert(plain.int8, x[:200], xnnpack=True)
    result = parity.compare("xnnpack", with_delegate, reference=parity.run_tflm(plain.int8, x[:200]))
    assert result.top1_agreement >= 0.98 and result.max_lsb_diff <= 16


def test_model_interface_describes_inputs_and_outputs(plain):
    io_int8 = parity.model_interface(plain.int8)
    (inp,), (out,) = io_int8.inputs, io_int8.outputs
    assert (inp.shape, inp.dtype, out.shape, out.dtype) == ((1, 8, 8, 1), "int8", (1, 10), "int8")
    assert inp.scale == pytest.approx(1 / 255, rel=0.01) and inp.zero_point == -128
    assert out.scale == pytest.approx(1 / 256) and out.zero_point == -128  # softmax output
    io_float = parity.model_interface(plain.float32)
    assert io_float.inputs[0].dtype == "float32" and io_float.inputs[0].scale is None


def test_quantize_and_dequantize_round_trip(plain):
    spec = parity.model_interface(plain.int8).inputs[0]
    x = np.linspace(0, 1, 50, dtype=np.float32)
    q = parity.quantize(x, spec)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127
    assert np.abs(parity.dequantize(q, spec) - x).max() <= spec.scale / 2 + 1e-6
    assert parity.quantize(np.array([5.0, -5.0]), spec).tolist() == [127, -128]  # saturates
    assert parity.quantize(q, spec) is q  # already int8: unchanged


def test_arena_is_the_smallest_that_works(plain, capfd):
    from tflite_micro import runtime

    arena = parity.tflm_arena_bytes(plain.int8)
    assert arena % 16 == 0
    interpreter = runtime.Interpreter.from_bytes(plain.int8, arena_size=arena)
    interpreter.set_input(np.zeros((1, 8, 8, 1), np.int8), 0)
    interpreter.invoke()
    capfd.readouterr()
    interpreter.print_allocations()
    recorded = int(re.search(r"Arena allocation total (\d+) bytes", capfd.readouterr().err).group(1))
    assert recorded <= arena <= recorded + 256
    with pytest.raises(RuntimeError):
        runtime.Interpreter.from_bytes(plain.int8, arena_size=arena - 16)
    capfd.readouterr()


def test_arena_search_is_quiet(plain, capfd):
    parity.tflm_arena_bytes(plain.int8_per_tensor)
    parity.run_litert(plain.int8_per_tensor, np.zeros((1, 8, 8, 1), np.float32))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_litert_refuses_a_lut_model(lut_per_tensor):
    with pytest.raises(ModelFormatError, match="LiteRT cannot run a LUT-compressed model"):
        parity.run_litert(lut_per_tensor.model, np.zeros((1, 8, 8, 1), np.float32))


def test_wrong_input_shape_is_a_data_error(plain):
    with pytest.raises(DataError, match=r"takes examples of shape \(8, 8, 1\); got an array of shape \(3, 28, 28, 1\)"):
        parity.run_tflm(plain.int8, np.zeros((3, 28, 28, 1), np.float32))


def test_compare_reports_bit_exactness_and_lsb():
    a = np.array([[10, -3], [0, 5]], np.int8)
    b = np.array([[10, -2], [0, 5]], np.int8)
    same = parity.compare("same", a, labels=[0, 1], reference=a.copy())
    assert (same.bit_exact, same.max_lsb_diff, same.outputs_differing, same.top1_accuracy) == (True, 0, 0, 1.0)
    off = parity.compare("off", b, reference=a)
    assert (off.bit_exact, off.max_lsb_diff, off.outputs_differing, off.top1_agreement) == (False, 1, 1, 1.0)
    with pytest.raises(DataError, match="2 outputs but 3 labels"):
        parity.compare("x", a, labels=[0, 1, 1])


def test_lut_model_accuracy_equals_int8_in_tflm(plain, test_set, lut):
    x, y = test_set
    lut = lut(plain.int8)
    with_lut = parity.compare("lut", parity.run_tflm(lut.model, x), labels=y, reference=parity.run_tflm(plain.int8, x))
    assert with_lut.bit_exact and with_lut.max_lsb_diff == 0


def test_arena_search_survives_sizes_on_which_tflm_crashes():
    """The FC autoencoder of scripts/speed_matrix.py (640 -> 4 x 128 -> 8 -> 4 x 128 -> 640, random weights, int8):
    the tflite_micro wheel segfaults when given 22,032 bytes for it (22,016 fails cleanly, 22,048 runs); the
    search counts such a size as too small instead of failing the build."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "speed_matrix.py"
    spec = importlib.util.spec_from_file_location("speed_matrix", script)
    speed_matrix = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed_matrix)
    tflite, _ = speed_matrix.build_tflite("fc_ae", 0, 0)
    arena = parity.tflm_arena_bytes(tflite)
    assert arena % 16 == 0
    assert parity.run_tflm(tflite, np.zeros((1, 640), np.int8), arena_size=arena).shape == (1, 640)
