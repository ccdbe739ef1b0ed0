"""A stripped keras.Model to .tflite bytes: float32, or full int8 for microcontrollers.

The only module of edgeclust.tflite that imports TensorFlow, and only inside `to_tflite`. The model is
exported as a SavedModel with a batch size of 1 (so Flatten becomes one RESHAPE) and converted with
`TFLiteConverter.from_saved_model`; the converter's own chatter on stdout/stderr is kept off the console
and its last error line becomes the ConversionError message.
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from edgeclust.errors import ConfigError, ConversionError, DataError
from edgeclust.tflite import isolated
from edgeclust.tflite._fds import captured_output

QUANTIZE_MODES = ("int8", "float32")
DEFAULT_CALIBRATION = 200
CALIBRATION_SEED = 0


def to_tflite(
    model,
    *,
    quantize: str = "int8",
    representative_data=None,
    per_channel: bool = True,
    num_calibration: int = DEFAULT_CALIBRATION,
    unroll: bool = True,
    resize_upsampling: bool = True,
) -> bytes:
    """Convert a plain keras.Model to .tflite bytes with a fixed batch size of 1.

    quantize="int8": full integer model (int8 weights, activations, input and output) calibrated on up to
    `num_calibration` examples drawn (seeded) from `representative_data` (an array shaped like the model's
    input without the batch axis first, or one array per input); weights are quantized per channel unless
    `per_channel=False`, which keeps one scale per tensor (and so the clustered values per tensor).
    quantize="float32": no quantization. Same model and data give the same bytes.

    Recurrent layers (SimpleRNN, LSTM, GRU, RNN, also inside Bidirectional) are unrolled first (`unroll_recurrent`):
    TensorFlow 2.21's int8 calibrator crashes on their loop. `unroll=False` converts them as they are.
    Nearest-neighbour UpSampling2D layers become the equal Resizing layers (`upsampling_as_resizing`): Keras 3
    writes UpSampling2D as TILE, which TensorFlow Lite Micro lacks, and Resizing as RESIZE_NEAREST_NEIGHBOR;
    `resize_upsampling=False` keeps the TILE.
    The converter runs in a separate process (`isolated`): if it crashes, a ConversionError says so.
    """
    if quantize not in QUANTIZE_MODES:
        raise ConfigError(f"`quantize` must be one of {', '.join(QUANTIZE_MODES)}. Received: quantize={quantize!r}")
    if not isinstance(num_calibration, int) or isinstance(num_calibration, bool) or num_calibration < 1:
        raise ConfigError(f"`num_calibration` must be an integer >= 1. Received: num_calibration={num_calibration!r}")
    _refuse_wrappers(model)
    specs = _input_specs(model)
    if unroll:
        model = unroll_recurrent(model)
    if resize_upsampling:
        model = upsampling_as_resizing(model)
    calibration = None
    if quantize == "int8":
        if representative_data is None:
            raise ConfigError("int8 conversion needs `representative_data` to calibrate on (or use quantize='float32')")
        calibration = _calibration_arrays(representative_data, specs, num_calibration)
    _refuse_non_finite_weights(model)
    isolated.warm("tensorflow")  # the worker imports TensorFlow while this process exports the model
    return _convert(model, specs, quantize, calibration, per_channel)


def _refuse_wrappers(model) -> None:
    wrapped = [layer.name for layer in _layers(model) if type(layer).__module__.startswith("edgeclust.cluster")]
    if wrapped:
        raise ConversionError(
            f"the model still carries clustering wrappers ({', '.join(wrapped[:3])}); "
            "strip them with edgeclust.cluster.strip_clustering before converting"
        )


RECURRENT_LAYERS = ("SimpleRNN", "LSTM", "GRU", "RNN")


def rolled_recurrent_layers(model) -> list[str]:
    """Names of the recurrent layers that loop over time (not unrolled), Bidirectional ones included."""
    found = []
    for layer in _layers(model):
        for inner in (layer, getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)):
            if inner is not None and type(inner).__name__ in RECURRENT_LAYERS and not getattr(inner, "unroll", True):
                found.append(layer.name)
                break
    return found


def unroll_recurrent(model):
    """The model rebuilt from its config with unroll=True on every recurrent layer and its weights copied; the
    model itself when it has none to unroll, or when it cannot be rebuilt from its config (custom classes)."""
    if not rolled_recurrent_layers(model):
        return model
    config = model.get_config()
    _set_unroll(config)
    try:
        rebuilt = type(model).from_config(config)
        rebuilt.set_weights(model.get_weights())
    except Exception:  # a model Keras cannot rebuild converts as it is (the isolated converter catches a crash)
        return model
    return rebuilt


def nearest_upsampling_layers(model) -> list[str]:
    """Names of the UpSampling2D layers (nearest, channels last) that the converter would write as TILE."""
    return [
        layer.name
        for layer in _layers(model)
        if type(layer).__name__ == "UpSampling2D"
        and getattr(layer, "interpolation", "nearest") == "nearest"
        and getattr(layer, "data_format", "channels_last") == "channels_last"
    ]


def upsampling_as_resizing(model):
    """The model rebuilt with each nearest UpSampling2D as a Resizing layer to the same size (the same values:
    half-pixel nearest at an integer factor repeats each pixel); the model itself when it has none, or when
    Keras cannot rebuild it from its config."""
    names = set(nearest_upsampling_layers(model))
    if not names:
        return model
    sizes = {}
    for layer in _layers(model):
        if layer.name in names:
            height, width = layer.output.shape[1:3]
            sizes[layer.name] = (int(height), int(width))
    config = model.get_config()
    _set_resizing(config, sizes)
    try:
        rebuilt = type(model).from_config(config)
        rebuilt.set_weights(model.get_weights())
    except Exception:  # converted as it is: TILE, which the native backend runs and TFLM does not
        return model
    return rebuilt


def _set_resizing(config, sizes: dict[str, tuple[int, int]]) -> None:
    if isinstance(config, dict):
        inner = config.get("config")
        if config.get("class_name") == "UpSampling2D" and isinstance(inner, dict) and inner.get("name") in sizes:
            height, width = sizes[inner["name"]]
            config["class_name"] = "Resizing"
            config["config"] = {
                "name": inner["name"],
                "dtype": inner.get("dtype"),
                "trainable": inner.get("trainable", True),
                "height": height,
                "width": width,
                "interpolation": "nearest",
                "crop_to_aspect_ratio": False,
                "data_format": "channels_last",
            }
        for value in config.values():
            _set_resizing(value, sizes)
    elif isinstance(config, list):
        for value in config:
            _set_resizing(value, sizes)


def _set_unroll(config) -> None:
    if isinstance(config, dict):
        if config.get("class_name") in RECURRENT_LAYERS and isinstance(config.get("config"), dict):
            config["config"]["unroll"] = True
        for value in config.values():
            _set_unroll(value)
    elif isinstance(config, list):
        for value in config:
            _set_unroll(value)


def _layers(model):
    flatten = getattr(model, "_flatten_layers", None)
    return list(flatten(include_self=False)) if flatten else list(getattr(model, "layers", []))


def _input_specs(model) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape with batch 1, dtype) for each model input; unknown dimensions are refused."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ConversionError("the model has no defined inputs; build it with keras.Input(shape=...) before converting")
    specs = []
    for tensor in inputs:
        shape = tuple(tensor.shape)
        rest = shape[1:]
        if any(d is None for d in rest):
            raise ConversionError(
                f"input {tensor.name!r} has shape {shape} with unknown dimensions; give the model a fixed input "
                "shape (microcontrollers need static shapes)"
            )
        specs.append((tensor.name, (1, *rest), str(tensor.dtype)))
    return specs


def _calibration_arrays(representative_data, specs, num_calibration: int) -> list[np.ndarray]:
    arrays = representative_data if isinstance(representative_data, (list, tuple)) else [representative_data]
    if len(arrays) != len(specs):
        raise DataError(f"the model has {len(specs)} input(s) but `representative_data` gives {len(arrays)} array(s)")
    checked = []
    for array, (name, shape, _) in zip(arrays, specs):
        array = np.asarray(array)
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise DataError(f"representative data for input {name!r} must be numeric, got dtype {array.dtype}")
        if array.shape[1:] != shape[1:] or len(array) == 0:
            raise DataError(
                f"representative data for input {name!r} must have shape (examples, {', '.join(map(str, shape[1:]))}); "
                f"got {array.shape}"
            )
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise DataError(f"representative data for input {name!r} holds NaN or Inf values")
        checked.append(array)
    n = len(checked[0])
    if any(len(a) != n for a in checked):
        raise DataError("representative data arrays for the model's inputs hold different numbers of examples")
    rng = np.random.default_rng(CALIBRATION_SEED)
    chosen = np.sort(rng.choice(n, size=min(n, num_calibration), replace=False))
    return [np.ascontiguousarray(a[chosen], dtype=np.float32) for a in checked]


def _refuse_non_finite_weights(model) -> None:
    for weight in model.weights:
        values = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            raise ConversionError(
                f"weight {weight.path if hasattr(weight, 'path') else weight.name} holds NaN or Inf values; "
                "retrain or repair the model before converting"
            )


def _convert(model, specs, quantize: str, calibration, per_channel: bool) -> bytes:
    """Export here (TensorFlow is loaded already); convert and calibrate in the isolated worker, where a
    crash of TensorFlow's C++ ends the worker, not edgeclust."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="edgeclust-convert-") as tmp:
        saved = os.path.join(tmp, "saved_model")
        with captured_output() as log:
            try:
                import tensorflow as tf

                signature = [tf.TensorSpec(shape, dtype=dtype) for name, shape, dtype in specs]
                model.export(saved, verbose=False, input_signature=signature)
            except Exception as exc:  # Keras and TensorFlow raise many types; each becomes one line
                detail = _error_line(str(exc)) or _error_line(log.text()) or type(exc).__name__
                raise ConversionError(f"the model cannot be exported for the TFLite converter: {detail}") from None
        try:
            result = isolated.call(
                "edgeclust.tflite.convert", "convert_saved_model", saved, quantize, calibration, per_channel
            )
        except isolated.Crashed as crash:
            raise ConversionError(_crash_line(model, quantize, crash)) from None
    return bytes(result)


def convert_saved_model(saved: str, quantize: str, calibration, per_channel: bool) -> bytes:
    """TFLiteConverter.from_saved_model(saved).convert(), int8 calibrated on `calibration` (in this process:
    `to_tflite` calls it in the isolated worker)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with captured_output() as log:
        try:
            import tensorflow as tf

            converter = tf.lite.TFLiteConverter.from_saved_model(saved)
            if quantize == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
                converter.representative_dataset = lambda: (
                    [a[i : i + 1] for a in calibration] for i in range(len(calibration[0]))
                )
                if not per_channel:
                    converter._experimental_disable_per_channel = True
            result = converter.convert()
        except Exception as exc:  # the converter raises many types; each becomes one line
            detail = _error_line(str(exc)) or _error_line(log.text()) or type(exc).__name__
            raise ConversionError(f"the TFLite converter failed: {detail}") from None
    return bytes(result)


def _crash_line(model, quantize: str, crash: isolated.Crashed) -> str:
    """One line for a converter that killed its process: what died, how, and what to try."""
    what = "int8 converter" if quantize == "int8" else "float32 converter"
    rolled = rolled_recurrent_layers(model)
    if rolled:
        hint = (
            f"its recurrent layers ({', '.join(rolled[:3])}) loop over time (a WHILE graph); rebuild them with "
            "unroll=True and a fixed sequence length"
        )
    elif quantize == "int8":
        hint = (
            "check that the model converts with --quantize float32, then simplify the layers it adds to a plain "
            "CNN or MLP; EDGECLUST_DEBUG=1 shows TensorFlow's log"
        )
    else:
        hint = "simplify the model's custom or unusual layers; EDGECLUST_DEBUG=1 shows TensorFlow's log"
    return f"the {what} crashed on this model ({crash.how}, in TensorFlow); {hint}"


def _error_line(text: str) -> str:
    """The most telling line of a converter error: the first 'error:' line, else the first non-empty one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    chosen = next((m.group(1) for m in map(re.compile(r"error:\s*(.+)").search, lines) if m), None)
    if chosen is None:
        chosen = lines[0] if lines else ""
    if chosen.startswith("loc("):  # MLIR prefixes the graph location: keep what follows it
        chosen = chosen.rsplit("): ", 1)[-1]
    return chosen[:300]
