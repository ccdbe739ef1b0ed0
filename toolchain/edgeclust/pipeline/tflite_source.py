"""A .tflite made elsewhere as the model of `edgeclust build`: loaded with its data, and taken as converted.

Clustering and conversion are skipped; which options make no sense for such an input is decided here once.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from edgeclust.errors import ConfigError, ModelFormatError, first_line
from edgeclust.pipeline.build_results import ConvertedModels, LoadedInputs
from edgeclust.pipeline.loading import load_data_for_shapes

TFLITE_FORMAT = "tflite"


# BuildOptions and ClusterOptions fields that only mean something when edgeclust clusters or converts the model
# itself -> the command-line flag that sets them
KERAS_ONLY = {
    "quantize": "--quantize",
    "layers": "--layer",
    "max_drop": "--max-drop",
    "max_epochs": "--max-epochs",
    "epochs": "--epochs (fine-tuning)",
    "learning_rate": "--lr (fine-tuning)",
    "batch_size": "--batch-size (fine-tuning)",
    "init": "--init",
    "preserve_sparsity": "--preserve-sparsity",
    "fold_bn": "--fold-bn/--no-fold-bn",
    "seed": "--seed",
    "calibration_samples": "--calibration-samples",
}


def refuse_keras_only(given) -> None:
    """Refuse, for a .tflite model, the first of the options named in `given` (KERAS_ONLY's keys) that only mean
    something for a Keras model: one ConfigError naming its flag. The CLI passes the options given on its
    command line; check_tflite_options those that differ from their defaults."""
    for name, flag in KERAS_ONLY.items():
        if name in given:
            raise ConfigError(
                f"{flag} makes no sense for a .tflite model (it is already clustered and converted); "
                "leave it out, or pass the .keras model"
            )


def check_tflite_options(options) -> None:
    """Refuse BuildOptions that set an option only a Keras model uses (clustering, conversion) for a .tflite."""
    given = {
        f.name
        for holder in (options, options.cluster)
        for f in dataclasses.fields(holder)
        if f.name in KERAS_ONLY and f.default is not dataclasses.MISSING and getattr(holder, f.name) != f.default
    }
    refuse_keras_only(given)


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
