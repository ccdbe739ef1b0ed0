"""Every expected failure in edgeclust is an EdgeclustError; the CLI maps them to exit codes.

`exit_code` is 1 for a failed check or domain error and 2 for bad usage or an unreadable input.
Messages are one line: what is wrong, then what to do next.
"""


class EdgeclustError(Exception):
    """Base class of edgeclust's expected failures."""

    exit_code = 1


class InputError(EdgeclustError):
    """A file or argument that cannot be used as given (missing, unreadable, wrong format)."""

    exit_code = 2


class ModelFormatError(InputError):
    """A model file (.keras, .tflite) that cannot be read."""


class DataError(InputError):
    """A data file (DATA.npz, MNIST IDX) that is missing arrays or has wrong shapes or values."""


class ConfigError(EdgeclustError, ValueError):
    """A clustering or conversion setting outside its valid range."""

    exit_code = 2


class UnsupportedLayerError(EdgeclustError, ValueError):
    """A layer or model that edgeclust cannot cluster, with what to do instead."""


class ConversionError(EdgeclustError):
    """The TFLite converter failed or produced something a microcontroller cannot run."""


class VerificationError(EdgeclustError):
    """A model failed a check (unique values, parity)."""


class BoardError(EdgeclustError):
    """An unknown board, or a board file with missing or invalid fields."""

    exit_code = 2


class CodegenError(EdgeclustError):
    """The firmware project cannot be generated (unknown op, bad identifier)."""


class BudgetError(EdgeclustError):
    """The model does not fit the board's flash or RAM."""


class ToolMissingError(EdgeclustError):
    """An external program (cross compiler, QEMU, flash tool) is not installed."""


class FirmwareError(EdgeclustError):
    """The firmware failed to build, crashed, hung, or its self-test failed."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type's name), for a one-line error."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
