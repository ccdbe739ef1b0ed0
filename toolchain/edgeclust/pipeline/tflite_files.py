"""The .tflite file steps behind `edgeclust inspect` and `edgeclust verify`: read, count, check."""

from __future__ import annotations

from dataclasses import dataclass

from edgeclust.errors import ModelFormatError


@dataclass(frozen=True, eq=False)
class InspectedFile:
    """A .tflite file's model (flatbuffer.TfliteModel) and its weight statistics (all finite)."""

    model: object
    weights: list


@dataclass(frozen=True, eq=False)
class VerifiedFile:
    """A .tflite file's model and the unique-values check (inspect.VerifyResult)."""

    model: object
    result: object


def inspect_file(path) -> InspectedFile:
    """Unique values, sparsity and bytes of every weight tensor of the .tflite file at `path`."""
    from edgeclust.tflite import flatbuffer, inspect

    parsed = flatbuffer.read_model_file(path)
    try:
        return InspectedFile(parsed, inspect.require_finite(inspect.inspect_weights(parsed)))
    except ModelFormatError as exc:  # name the file, as the reader does
        raise ModelFormatError(f"{path}: {exc}") from None


def verify_file(path, max_unique: int, *, per_channel: bool = False) -> VerifiedFile:
    """Whether every weight tensor of the .tflite file at `path` holds at most `max_unique` values."""
    from edgeclust.tflite import flatbuffer, inspect

    parsed = flatbuffer.read_model_file(path)
    try:
        return VerifiedFile(parsed, inspect.verify(parsed, max_unique, per_channel=per_channel))
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path}: {exc}") from None
