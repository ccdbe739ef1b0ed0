"""Loading the user's Keras model and data with checks that say what is wrong in one line."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from edgeclust.data import Dataset, load_npz
from edgeclust.errors import DataError, ModelFormatError

_H5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_keras_path(path: str | os.PathLike) -> Path:
    """Refuse, before any heavy import, a path that cannot hold a Keras 3 model."""
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            raise ModelFormatError(
                f"{path}: a TensorFlow SavedModel, which Keras 3 cannot load back as a model; "
                "save the model with model.save('model.keras') and pass that file"
            )
        raise ModelFormatError(f"{path}: a folder, not a model file; pass a .keras (or legacy .h5) file")
    if not path.exists():
        raise ModelFormatError(f"{path}: no such file; pass a .keras model saved with model.save()")
    size = path.stat().st_size
    if size == 0:
        raise ModelFormatError(f"{path}: empty file; pass a .keras model saved with model.save()")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _H5_SIGNATURE:
        return path
    if path.suffix == ".h5":
        raise ModelFormatError(f"{path}: not an HDF5 file (bad signature); pass a .keras model")
    if not zipfile.is_zipfile(path):
        raise ModelFormatError(
            f"{path}: not a .keras model (a .keras file is a zip archive); save it with model.save('model.keras')"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelFormatError(f"{path}: damaged .keras archive ({exc}); save the model again") from None
    if bad is not None:
        raise ModelFormatError(f"{path}: damaged .keras archive (member {bad} fails its CRC); save the model again")
    if "config.json" not in names:
        raise ModelFormatError(f"{path}: a zip archive but not a .keras model (no config.json inside)")
    return path


def load_keras_model(path: str | os.PathLike):
    """Load a .keras (or legacy .h5) model, clustering wrappers included, as a keras.Model."""
    path = check_keras_path(path)
    import keras

    import edgeclust.cluster  # noqa: F401  (registers the clustering wrappers for loading)

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types here; all mean "cannot load"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelFormatError(f"{path}: Keras cannot load this model ({first[:300]})") from None
    if not isinstance(model, keras.Model):
        raise ModelFormatError(f"{path}: holds a {type(model).__name__}, not a keras.Model")
    return model


def check_data_fits(data: Dataset, model, source: str) -> Dataset:
    """Check that the data's example shape and labels match the model's input and output."""
    input_shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if input_shape is not None and None not in input_shape and data.input_shape != input_shape:
        if int(np.prod(data.input_shape)) == int(np.prod(input_shape)):
            data = Dataset(
                data.x_train.reshape((-1, *input_shape)),
                data.y_train,
                data.x_test.reshape((-1, *input_shape)),
                data.y_test,
            )
        else:
            raise DataError(
                f"{source}: examples have shape {data.input_shape} but the model expects {input_shape}"
            )
    outputs = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    if outputs is not None and data.num_classes > outputs:
        raise DataError(
            f"{source}: labels go up to {data.num_classes - 1} but the model has {outputs} outputs; "
            "labels must be integers in [0, number of outputs)"
        )
    return data


def load_data_for(path: str | os.PathLike, model) -> Dataset:
    """DATA.npz checked on its own and against the model."""
    return check_data_fits(load_npz(path), model, str(path))
