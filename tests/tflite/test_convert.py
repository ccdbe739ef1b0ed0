"""convert.to_tflite on real Keras models: batch 1, int8 and float32, per-channel and per-tensor, errors."""

import numpy as np
import pytest

from edgeclust.errors import ConfigError, ConversionError, DataError, EdgeclustError
from edgeclust.tflite import convert, flatbuffer


def _weight_tensors(data):
    model = flatbuffer.read_model(data)
    return {t.name: t for t in model.tensors if t.data is not None and t.data.ndim >= 2}


def test_batch_size_is_one_and_flatten_is_a_single_reshape(plain):
    model = flatbuffer.read_model(plain.float32)
    assert model.inputs[0].shape == (1, 8, 8, 1)
    assert model.outputs[0].shape == (1, 10)
    names = [op.name for op in model.operators]
    assert names.count("RESHAPE") == 1
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(names)
    assert model.op_names == ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "RESHAPE", "SOFTMAX")


def test_float32_keeps_the_keras_weights_in_tflite_layouts(plain):
    weights = {t.name.split("/")[1]: t.data for t in _weight_tensors(plain.float32).values()}
    layers = {layer.name: layer.get_weights()[0] for layer in plain.model.layers if layer.get_weights()}
    np.testing.assert_array_equal(weights["dense1_1"], layers["dense1"].T)  # (in, out) -> (out, in)
    np.testing.assert_array_equal(weights["conv1_1"], layers["conv1"].transpose(3, 0, 1, 2))  # HWIO -> OHWI
    np.testing.assert_array_equal(
        weights["dwconv_1"], layers["dwconv"].transpose(3, 0, 1, 2)
    )  # (kh,kw,in,1) -> (1,kh,kw,in)


def test_int8_has_int8_input_output_and_weights(plain):
    model = flatbuffer.read_model(plain.int8)
    assert model.inputs[0].dtype == "INT8" and model.outputs[0].dtype == "INT8"
    assert model.inputs[0].quantization.scales[0] > 0
    kernels = _weight_tensors(plain.int8)
    assert kernels and all(t.dtype == "INT8" for t in kernels.values())


def test_per_channel_and_per_tensor_weight_scales(plain):
    per_channel = _weight_tensors(plain.int8)
    per_tensor = _weight_tensors(plain.int8_per_tensor)
    for name, tensor in per_channel.items():
        q = tensor.quantization
        assert len(q.scales) == tensor.shape[q.quantized_dimension] > 1, name
    assert all(len(t.quantization.scales) == 1 for t in per_tensor.values())


def test_same_model_and_data_give_the_same_bytes(plain, digits):
    again = convert.to_tflite(plain.model, quantize="int8", representative_data=digits.x_train, per_channel=False)
    assert again == plain.int8_per_tensor


def test_converter_chatter_stays_off_the_console(plain, digits, capfd):
    convert.to_tflite(plain.model, quantize="int8", representative_data=digits.x_train[:20])
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_calibration_draws_at_most_num_calibration_examples(plain, digits):
    few = convert.to_tflite(plain.model, quantize="int8", representative_data=digits.x_train, num_calibration=8)
    assert few != plain.int8  # other examples, other activation ranges
    assert flatbuffer.read_model(few).op_names == flatbuffer.read_model(plain.int8).op_names


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"quantize": "int4"}, ConfigError, r"`quantize` must be one of int8, float32\. Received: quantize='int4'"),
        ({"quantize": "int8"}, ConfigError, "needs `representative_data`"),
        (
            {"quantize": "int8", "representative_data": np.zeros((4, 4, 4, 1))},
            DataError,
            r"shape \(examples, 8, 8, 1\)",
        ),
        ({"quantize": "int8", "representative_data": np.full((4, 8, 8, 1), np.nan)}, DataError, "NaN or Inf"),
        ({"quantize": "float32", "num_calibration": 0}, ConfigError, "`num_calibration` must be an integer >= 1"),
    ],
)
def test_bad_settings_are_one_line_errors(plain, kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        convert.to_tflite(plain.model, **kwargs)
    assert "\n" not in str(info.value)


def test_nan_weights_are_refused():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    kernel, bias = model.layers[0].get_weights()
    kernel[0, 0] = np.inf
    model.layers[0].set_weights([kernel, bias])
    with pytest.raises(ConversionError, match="NaN or Inf"):
        convert.to_tflite(model, quantize="float32")


def test_unknown_input_dimensions_are_refused():
    import keras

    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ConversionError, match="unknown dimensions"):
        convert.to_tflite(model, quantize="float32")


def test_a_model_without_inputs_is_refused():
    import keras

    with pytest.raises(ConversionError, match="no defined inputs"):
        convert.to_tflite(keras.Sequential([keras.layers.Dense(2)]), quantize="float32")


def test_converter_failure_is_one_line(capfd):
    """An op with no int8 kernel makes the real converter fail; the user gets one line, no converter log."""
    import keras

    inputs = keras.Input((4,), batch_size=1)
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: keras.ops.erfinv(t * 0.5))(inputs))
    with pytest.raises(ConversionError) as info:
        convert.to_tflite(model, quantize="int8", representative_data=np.random.default_rng(0).random((8, 4)))
    message = str(info.value)
    assert message.startswith("the TFLite converter failed:") and "\n" not in message
    assert "Erfinv" in message and "loc(" not in message
    assert isinstance(info.value, EdgeclustError)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
