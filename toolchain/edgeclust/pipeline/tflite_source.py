"""A .tflite made elsewhere as the model of `edgeclust build`: loaded with its data, and taken as converted.

Clustering and conversion are skipped; which options make no sense for such an input is decided here once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from edgeclust.errors import ConfigError, ModelFormatError, first_line
from edgeclust.pipeline.build_results import ConvertedModels, LoadedInputs
from edgeclust.pipeline.loading import load_data_for_shapes

TFLITE_FORMAT = "tflite"


def check_tflite_options(options) -> None:
    """Refuse BuildOptions that only mean something for a Keras model (clustering, conversion) on a .tflite."""
    cluster = options.cluster
    refused = (
        (options.quantize != "int8", f"--quantize {options.quantize} (the .tflite is already converted)"),
        (bool(cluster.layers), "--layer (there is no Keras model to cluster layer by layer)"),
        (cluster.max_drop is not None, "--max-drop (there is no Keras model to fine-tune)"),
    )
    for bad, why in refused:
        if bad:
            raise ConfigError(f"{why} makes no sense for a .tflite model; leave it out, or pass the .keras model")


def load_tflite_inputs(stages, options, model_path: Path, data_path: Path) -> LoadedInputs:
    """Read the .tflite, and the data checked against its input shape and number of outputs."""
    from edgeclust.tflite.flatbuffer import read_model
    from edgeclust.tflite.parity import model_interface

    tflite = model_path.read_bytes()
    try:
        model = read_model(tflite)
    except Exception as exc:  # the reader raises its own one-line errors; anything else means corrupt
        raise ModelFormatError(f"{model_path}: not a readable .tflite ({first_line(exc)})") from None
    interface = model_interface(model)
    input_shape, output_shape = interface.inputs[0].shape[1:], interface.outputs[0].shape
    data = load_data_for_shapes(data_path, tuple(input_shape), tuple(output_shape[1:]), options.task)
    stages.info(
        f"{model_path.name}: a .tflite ({interface.inputs[0].dtype} input, {len(tflite):,} bytes): clustering "
        f"and conversion skipped; {len(data.x_train):,} training and {len(data.x_test):,} test examples"
    )
    n = options.parity_samples
    ops = model.subgraphs[0].operators
    from edgeclust.pipeline.task import infer_task

    last = ops[-1].name if ops else ""
    task = infer_task(tuple(output_shape[1:]), data, probabilities=last in ("SOFTMAX", "LOGISTIC"), asked=options.task)
    stages.info(task.describe())
    return LoadedInputs(
        model=None,
        data=data,
        model_path=model_path,
        data_path=data_path,
        model_sha256=hashlib.sha256(tflite).hexdigest(),
        data_sha256=hashlib.sha256(data_path.read_bytes()).hexdigest(),
        was_wrapped=False,
        probabilities=bool(ops) and ops[-1].name == "SOFTMAX",
        x_eval=data.x_test[:n],
        y_eval=data.y_test[:n],
        keras_outputs=None,
        keras_bytes=b"",
        model_format=TFLITE_FORMAT,
        tflite=tflite,
        task=task,
    )


def as_converted(inputs: LoadedInputs) -> ConvertedModels:
    """The .tflite as the build's converted model: int8 when its input is integer, else float32."""
    from edgeclust.tflite.parity import model_interface

    integer = model_interface(inputs.tflite).inputs[0].quantized
    if integer:
        return ConvertedModels(None, inputs.tflite, per_channel=False, calibration_samples=0)
    return ConvertedModels(inputs.tflite, None, per_channel=False, calibration_samples=0)
