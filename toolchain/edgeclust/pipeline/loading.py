"""Loading the user's Keras model and data with checks that say what is wrong in one line."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from edgeclust.data import Dataset, load_npz
from edgeclust.errors import DataError, ModelFormatError, first_line

_H5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_keras_path(path: str | os.PathLike) -> Path:
    """Refuse, before any heavy import, a path that cannot hold a Keras 3 model (.keras, .h5, unzipped .keras)."""
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return path  # an unzipped .keras archive: Keras 3 loads it
        if (path / "saved_model.pb").is_file():
            raise ModelFormatError(
                f"{path}: a TensorFlow SavedModel, which Keras 3 cannot load back as a model; "
                "save the model with model.save('model.keras') and pass that file"
            )
        raise ModelFormatError(f"{path}: a folder, not a model file; pass a .keras (or legacy .h5) file")
    if not path.exists():
        raise ModelFormatError(f"{path}: no such file; pass a .keras model saved with model.save()")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ModelFormatError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if size == 0:
        raise ModelFormatError(f"{path}: empty file; pass a .keras model saved with model.save()")
    if head == _H5_SIGNATURE:
        return path
    if head[4:8] == b"TFL3":
        raise ModelFormatError(
            f"{path}: a .tflite model, already converted; inspect it with `edgeclust inspect`, or pass the .keras model"
        )
    if path.suffix in (".h5", ".hdf5"):
        raise ModelFormatError(f"{path}: not an HDF5 file (bad signature); pass a .keras model")
    if not zipfile.is_zipfile(path):
        damaged = " (it starts like one: damaged or truncated?)" if head[:4] == b"PK\x03\x04" else ""
        raise ModelFormatError(
            f"{path}: not a .keras model (a .keras file is a zip archive{damaged}); "
            "save it with model.save('model.keras')"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise ModelFormatError(f"{path}: damaged .keras archive ({first_line(exc)}); save the model again") from None
    if bad is not None:
        raise ModelFormatError(f"{path}: damaged .keras archive (member {bad} fails its CRC); save the model again")
    if "config.json" not in names:
        raise ModelFormatError(f"{path}: a zip archive but not a .keras model (no config.json inside)")
    return path


def load_keras_model(path: str | os.PathLike):
    """Load a .keras (or legacy .h5) model, clustering wrappers included, as a keras.Model.

    The weights must be finite: a NaN or Inf weight is refused with the weight's name.
    """
    path = check_keras_path(path)
    import keras

    import edgeclust.cluster  # noqa: F401  (registers the clustering wrappers for loading)

    try:
        with _named_for_keras(path) as loadable, _legacy_rewritten(loadable) as rewritten:
            model = keras.models.load_model(rewritten, compile=False)
    except Exception as exc:  # Keras raises many types here; all mean "cannot load"
        raise ModelFormatError(_cannot_load(path, exc)) from None
    if not isinstance(model, keras.Model):
        raise ModelFormatError(f"{path}: holds a {type(model).__name__}, not a keras.Model")
    check_finite_weights(model, str(path))
    return model


def check_finite_weights(model, source: str) -> None:
    """Refuse a model with a NaN or Inf weight, naming the weight (clustering and conversion need real numbers)."""
    for weight in model.weights:
        values = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            name = getattr(weight, "path", None) or weight.name
            raise ModelFormatError(
                f"{source}: weight {name} holds {bad:,} NaN or Inf values of {values.size:,}; "
                "the model is broken: retrain or repair it before clustering or converting"
            )


# Config keys that Keras 2 (TF 2.3-2.15) wrote and Keras 3's layers no longer take, by layer class: dropping them
# changes nothing (DepthwiseConv2D's `groups` was always 1; Embedding's `input_length` and the recurrent layers'
# `time_major` only described the input).
LEGACY_KEYS = {
    "DepthwiseConv1D": ("groups",),
    "DepthwiseConv2D": ("groups",),
    "Embedding": ("input_length",),
    "SimpleRNN": ("time_major",),
    "LSTM": ("time_major",),
    "GRU": ("time_major",),
}
_UNKNOWN_ARGUMENT = re.compile(r"Unrecognized keyword arguments passed to (\w+): \{'([^']+)'")
_LAYER_NAME = re.compile(r"config=\{'name': '([^']+)'")


def rewrite_legacy_config(node, changes: list[str]) -> None:
    """Drop, in place, the LEGACY_KEYS of every layer config in a model config (nested ones included), noting
    each as "layer NAME (CLASS): KEY"."""
    if isinstance(node, dict):
        cls, config = node.get("class_name"), node.get("config")
        if cls in LEGACY_KEYS and isinstance(config, dict):
            for key in LEGACY_KEYS[cls]:
                if key in config:
                    del config[key]
                    changes.append(f"layer {config.get('name', '?')} ({cls}): {key}")
        for value in node.values():
            rewrite_legacy_config(value, changes)
    elif isinstance(node, list):
        for value in node:
            rewrite_legacy_config(value, changes)


@contextlib.contextmanager
def _legacy_rewritten(path: Path):
    """`path`, or, for a Keras 2 .h5 whose config holds keys Keras 3 refuses, a copy with them dropped (one
    warning lists them)."""
    import json
    import shutil
    import warnings

    if path.is_dir() or path.suffix not in (".h5", ".hdf5"):
        yield path
        return
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else None
    except (OSError, ValueError):
        config = None
    changes: list[str] = []
    rewrite_legacy_config(config, changes)
    if not changes:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="edgeclust-legacy-") as tmp:
        copy = Path(tmp) / "model.h5"
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as f:
            f.attrs["model_config"] = json.dumps(config)
        warnings.warn(
            f"a Keras 2 file: dropped config keys Keras 3 does not take ({'; '.join(changes)})",
            UserWarning,
            stacklevel=3,
        )
        yield copy


def _cannot_load(path: Path, exc: Exception) -> str:
    """One line saying why Keras cannot load the model and what to do: for an argument Keras 3 refuses, the
    layer, the key and the way out; otherwise Keras' own reason (the line that says it, not the config dump)."""
    text = str(exc)
    unknown = _UNKNOWN_ARGUMENT.search(text)
    if unknown:
        cls, key = unknown.groups()
        layer = _LAYER_NAME.search(text)
        which = f"layer {layer.group(1)!r} ({cls})" if layer else f"a {cls} layer"
        return (
            f"{path}: Keras cannot load this model: {which} has the config key {key!r}, which Keras 3's {cls} does "
            f"not take (a file written by Keras 2); load it with the Keras that wrote it and save it again, or "
            f"delete {key!r} from that layer's config in the file"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    encountered = [line for line in lines if line.startswith("Exception encountered:")]
    reason = encountered[-1].removeprefix("Exception encountered:").strip() if encountered else first_line(exc)
    hint = ""
    if "No model config found" in reason:
        hint = "; this file holds weights only (save_weights): pass a model saved with model.save('model.keras')"
    return f"{path}: Keras cannot load this model ({reason[:300]}){hint}"


@contextlib.contextmanager
def _named_for_keras(path: Path):
    """`path`, or a link to it whose name ends as Keras needs (.keras for a zip, .h5 for HDF5)."""
    if path.is_dir():
        yield path
        return
    with open(path, "rb") as f:
        is_h5 = f.read(8) == _H5_SIGNATURE
    wanted = (".h5", ".hdf5") if is_h5 else (".keras",)
    if path.suffix in wanted:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="edgeclust-load-") as tmp:
        link = Path(tmp) / f"model{wanted[0]}"
        link.symlink_to(path.resolve())
        yield link


def is_tflite_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a file holding a .tflite flatbuffer (identifier TFL3), whatever its name."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return path.is_file() and f.read(8)[4:8] == b"TFL3"
    except OSError:
        return False


def check_data_fits(data: Dataset, model, source: str, task: str = "auto") -> Dataset:
    """Check that the data's example shape matches the model's input, and its labels fit the model's output
    for some task (or the one asked for)."""
    input_shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    outputs = tuple(model.outputs[0].shape[1:]) if getattr(model, "outputs", None) else None
    return check_data_fits_shapes(data, input_shape, outputs, source, task)


def check_data_fits_shapes(
    data: Dataset, input_shape: tuple | None, outputs: int | tuple | None, source: str, task: str = "auto"
) -> Dataset:
    """Check the data against an input shape (batch left out) and the output's shape (or its number of values;
    None: unknown): the labels must fit a task of that output (pipeline/task.py)."""
    from edgeclust.pipeline.task import infer_task

    if input_shape is not None and None not in input_shape and data.input_shape != input_shape:
        if int(np.prod(data.input_shape)) == int(np.prod(input_shape)):
            data = Dataset(
                data.x_train.reshape((-1, *input_shape)),
                data.y_train,
                data.x_test.reshape((-1, *input_shape)),
                data.y_test,
            )
        else:
            raise DataError(f"{source}: examples have shape {data.input_shape} but the model expects {input_shape}")
    if outputs is not None:
        output_shape = (outputs,) if isinstance(outputs, int) else tuple(outputs)
        if None not in output_shape:
            infer_task(output_shape, data, asked=task, source=source)
    return data


def compiled_loss(path: str | os.PathLike):
    """The loss the model was compiled with, as the file stores it (a name or a Keras config dict), or None."""
    import json

    path = Path(path)
    try:
        if path.is_dir():
            config = json.loads((path / "config.json").read_text())
            return (config.get("compile_config") or {}).get("loss")
        with open(path, "rb") as f:
            is_h5 = f.read(8) == _H5_SIGNATURE
        if is_h5:
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("training_config")
            if raw is None:
                return None
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw).get("loss")
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        return (config.get("compile_config") or {}).get("loss")
    except (OSError, ValueError, KeyError, AttributeError, zipfile.BadZipFile):
        return None


def check_data_path(path: str | os.PathLike) -> Dataset:
    """DATA.npz read and checked on its own (before any heavy import)."""
    return load_npz(path)


def load_data_for(path: str | os.PathLike, model, task: str = "auto") -> Dataset:
    """DATA.npz checked on its own and against the model."""
    return check_data_fits(load_npz(path), model, str(path), task)


def load_data_for_shapes(path: str | os.PathLike, input_shape: tuple, outputs, task: str = "auto") -> Dataset:
    """DATA.npz checked on its own and against a model known only by its shapes (a .tflite input)."""
    return check_data_fits_shapes(load_npz(path), input_shape, outputs, str(path), task)
