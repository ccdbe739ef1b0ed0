"""What crashes the native libraries (TensorFlow's int8 calibrator, TFLite Micro's Prepare) becomes one error line:
each crash here is real, in the isolated worker process, and edgeclust lives on to raise an EdgeclustError."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.native import fixed_point
from edgeclust.errors import CodegenError, ConversionError, VerificationError
from edgeclust.tflite import convert, isolated, parity
from edgeclust.tflite.flatbuffer import read_model

STEPS, FEATURES = 6, 3


def _recurrent(kind: str, *, bidirectional: bool = False):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((STEPS, FEATURES), batch_size=1)
    layer = getattr(keras.layers, kind)(4)
    hidden = keras.layers.Bidirectional(layer)(inputs) if bidirectional else layer(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(hidden))


def _sequences(n: int = 24) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, STEPS, FEATURES)).astype(np.float32)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_the_int8_calibrator_crash_on_a_recurrent_loop_is_one_line(kind):
    """TF 2.21's calibrator segfaults on a Keras 3 LSTM/GRU loop (WHILE): the worker dies, edgeclust does not."""
    with pytest.raises(ConversionError) as caught:
        convert.to_tflite(_recurrent(kind), quantize="int8", representative_data=_sequences(), unroll=False)
    message = str(caught.value)
    assert message.startswith("the int8 converter crashed on this model (signal 11, in TensorFlow); ")
    assert "unroll=True" in message and "\n" not in message
    if kind == "LSTM":  # the next conversion starts a fresh worker
        assert convert.to_tflite(_recurrent(kind), quantize="float32")


@pytest.mark.parametrize("kind, bidirectional", [("LSTM", False), ("GRU", True), ("SimpleRNN", False)])
def test_recurrent_layers_are_unrolled_and_convert_to_int8(kind, bidirectional):
    model = _recurrent(kind, bidirectional=bidirectional)
    assert convert.rolled_recurrent_layers(model)
    x = _sequences()
    int8 = convert.to_tflite(model, quantize="int8", representative_data=x)
    ops = read_model(int8).op_names
    assert "WHILE" not in ops and "FULLY_CONNECTED" in ops
    assert not convert.rolled_recurrent_layers(convert.unroll_recurrent(model))
    # the int8 model computes what Keras computes, within the quantization error
    expected = np.asarray(model(x[:8]))
    spec = parity.model_interface(int8).outputs[0]
    for outputs in (parity.run_tflm(int8, x[:8]), parity.run_litert(int8, x[:8])):
        got = parity.dequantize(outputs, spec)
        assert np.max(np.abs(got - expected)) <= 4 * spec.scale + 0.02 * np.max(np.abs(expected))


@pytest.fixture(scope="module")
def constant_logits():
    """Dense with a zero kernel before softmax: equal logits, softmax input scale 7.84e-9 (as an untrained
    MobileNet's), which TFLM's QuantizeMultiplierGreaterThanOne aborts on."""
    import keras

    inputs = keras.Input((4,), batch_size=1)
    outputs = keras.layers.Dense(3, activation="softmax", kernel_initializer="zeros")(inputs)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    return convert.to_tflite(keras.Model(inputs, outputs), quantize="int8", representative_data=x), x


def test_tflm_really_aborts_on_a_degenerate_softmax_and_the_worker_reports_it(constant_logits):
    tflite, x = constant_logits
    inputs = [parity.quantize(x[:1], parity.model_interface(tflite).inputs[0])]
    with pytest.raises(VerificationError, match=r"^the TFLite Micro interpreter crashed on this model \(signal 6, "):
        parity._isolated("TFLite Micro interpreter", "_run_tflm_here", tflite, inputs, None)


def test_a_degenerate_softmax_is_refused_before_tflm_runs(constant_logits):
    tflite, x = constant_logits
    for run in (lambda: parity.run_tflm(tflite, x[:1]), lambda: parity.tflm_arena_bytes(tflite)):
        with pytest.raises(ConversionError, match=r"^this softmax cannot run on TFLM or native: .* = 0\.526"):
            run()
    assert parity.run_litert(tflite, x[:1]).shape == (1, 3)  # LiteRT's softmax takes it


def test_native_softmax_guard_matches_tflm():
    """Refused exactly where TFLM's CHECK_GT(multiplier, 1.) fails: 0.526 (the untrained MobileNet) and 1.0."""
    for scale in (7.843137e-09, 1.0 / (1 << 26)):
        with pytest.raises(CodegenError, match="cannot run on TFLM or native"):
            fixed_point.softmax_params(1.0, scale)
    multiplier, shift, diff_min = fixed_point.softmax_params(1.0, 1.5 / (1 << 26))
    assert shift == 1 and multiplier == 3 << 29 and diff_min < 0
    assert fixed_point.softmax_params(1.0, 0.1)[1] > 1


def test_the_worker_returns_values_and_raises_errors_unchanged():
    assert isolated.call("math", "gcd", 12, 18) == 6
    with pytest.raises(ValueError):
        isolated.call("math", "sqrt", -1.0)
