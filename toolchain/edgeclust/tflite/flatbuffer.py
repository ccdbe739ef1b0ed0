"""Read a .tflite file into small frozen dataclasses: tensors with their data, quantization and operators.

Uses the flatbuffer schema module that ships with `tflite-micro` (flat API, no interpreter, no TensorFlow).
Every offset and length is checked against the file before it is trusted, so a corrupted file raises
ModelFormatError with one line instead of hanging, crashing or allocating unbounded memory.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from edgeclust.errors import InputError, ModelFormatError

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# TFLite TensorType name -> little-endian numpy dtype of one stored element (None: not a plain array)
_NUMPY_DTYPES = {
    "FLOAT32": "<f4",
    "FLOAT16": "<f2",
    "FLOAT64": "<f8",
    "INT8": "i1",
    "UINT8": "u1",
    "INT16": "<i2",
    "UINT16": "<u2",
    "INT32": "<i4",
    "UINT32": "<u4",
    "INT64": "<i8",
    "UINT64": "<u8",
    "BOOL": "?",
    "COMPLEX64": "<c8",
    "COMPLEX128": "<c16",
}
# 4-bit types store two elements per byte, low nibble first
_NIBBLE_TYPES = {"INT4": True, "UINT4": False}


def numpy_dtype(tflite_type: str) -> np.dtype | None:
    """The numpy dtype of a TFLite tensor type name ("INT8" -> int8), or None when numpy has none."""
    name = _NUMPY_DTYPES.get(tflite_type)
    return np.dtype(name) if name else None


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _enum_names(enum_class) -> dict[int, str]:
    names: dict[int, str] = {}
    for name, value in vars(enum_class).items():
        if not name.startswith("_") and isinstance(value, int):
            names.setdefault(value, name)
    return names


@dataclass(frozen=True, eq=False)
class Quantization:
    """Affine quantization of a tensor: real = scale * (q - zero_point), per tensor or along one axis.

    Not checked against the tensor's shape here: LUT-encoded tensors keep the scales of their decoded form.
    """

    scales: np.ndarray
    zero_points: np.ndarray
    quantized_dimension: int
    zero_points_stored: bool = True  # False: the file has scales but no zero points (read as zeros here)

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1


@dataclass(frozen=True, eq=False)
class Tensor:
    """One tensor of a subgraph. `data` is a read-only view of its constant values, or None."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization | None
    buffer: int
    data: np.ndarray | None
    nbytes: int
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.nbytes > 0


@dataclass(frozen=True)
class Operator:
    """One operator: its name ("CONV_2D", or a custom op's code such as "TFLM_DECODE") and tensor indices.

    An input index of -1 marks an optional input that is absent. `options` holds the builtin options as
    snake_case names ("stride_w", "padding": "SAME", "fused_activation_function": "RELU", "new_shape": (1, 4));
    empty when the operator has none. `has_custom_options`: custom options bytes are stored (a builtin operator
    with them is one TFLM refuses).
    """

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    is_custom: bool = False
    options: dict = field(default_factory=dict, compare=False, hash=False)
    has_custom_options: bool = False


@dataclass(frozen=True)
class Subgraph:
    index: int
    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def producer(self, tensor_index: int) -> Operator | None:
        """The operator that writes `tensor_index`, or None for constants and model inputs."""
        return self._producers.get(tensor_index)

    @cached_property
    def _producers(self) -> dict[int, Operator]:
        return {t: op for op in self.operators for t in op.outputs}


@dataclass(frozen=True)
class TfliteModel:
    """A .tflite model: schema version, description, subgraphs (the first is the main one) and op names."""

    version: int
    description: str
    subgraphs: tuple[Subgraph, ...]
    op_names: tuple[str, ...]
    size_bytes: int

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        return self.subgraphs[0].tensors

    @property
    def operators(self) -> tuple[Operator, ...]:
        return self.subgraphs[0].operators

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        return tuple(self.tensors[i] for i in self.subgraphs[0].inputs)

    @property
    def outputs(self) -> tuple[Tensor, ...]:
        return tuple(self.tensors[i] for i in self.subgraphs[0].outputs)


def read_model(data: bytes | bytearray | memoryview) -> TfliteModel:
    """Parse .tflite bytes. Anything malformed raises ModelFormatError with one line saying what."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ModelFormatError(f"a .tflite model must be bytes, got {type(data).__name__}")
    data = bytes(data)
    _check_header(data)
    try:
        return _Reader(data).model()
    except ModelFormatError:
        raise
    except (struct.error, TypeError, ValueError, IndexError, OverflowError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"corrupted .tflite file: {_first_line(exc)}") from None


def read_model_file(path: str | os.PathLike) -> TfliteModel:
    """Read and parse a .tflite file; every failure names the file (InputError / ModelFormatError)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(f"{os.fspath(path)}: no such file; give the path of a .tflite model") from None
    except IsADirectoryError:
        raise InputError(f"{os.fspath(path)}: is a folder, not a .tflite file") from None
    except OSError as exc:
        raise InputError(f"{os.fspath(path)}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        return read_model(data)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{os.fspath(path)}: {exc}") from None


def _check_header(data: bytes) -> None:
    if not data:
        raise ModelFormatError("empty file; expected a .tflite model")
    if len(data) < 12:
        raise ModelFormatError(f"not a .tflite file: only {len(data)} bytes")
    ident = data[4:8]
    if ident != FILE_IDENTIFIER:
        hint = ""
        if data[:4] == b"PK\x03\x04":
            hint = " (this is a zip archive, e.g. a .keras model: convert it with `edgeclust convert`)"
        elif data[:8] == b"\x89HDF\r\n\x1a\n":
            hint = " (this is an HDF5 file, e.g. a .h5 model: convert it with `edgeclust convert`)"
        raise ModelFormatError(f"not a .tflite file: file identifier is {ident!r}, expected {FILE_IDENTIFIER!r}{hint}")
    root = struct.unpack_from("<I", data, 0)[0]
    if not 8 <= root <= len(data) - 4:
        raise ModelFormatError(
            f"corrupted .tflite file: root table offset {root} is outside the file ({len(data)} bytes)"
        )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class _Reader:
    """Walks the flatbuffer through the generated flat API, checking every count against the file size."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)
        self.fb = _schema()
        self.op_names = _enum_names(self.fb.BuiltinOperator)
        self.type_names = _enum_names(self.fb.TensorType)
        self.options_names = _enum_names(self.fb.BuiltinOptions)
        self._enum_cache: dict[str, dict[int, str]] = {}

    def _count(self, what: str, length: int, element_bytes: int, last) -> int:
        """A vector's length, refused when it cannot fit in the file; `last(n-1)` must read inside it."""
        if length < 0 or length * element_bytes > self.size:
            raise ModelFormatError(
                f"corrupted .tflite file: {what} claims {length:,} entries, more than a {self.size:,}-byte file holds"
            )
        if length:
            try:
                last(length - 1)
            except (struct.error, TypeError, ValueError, IndexError, OverflowError):
                raise ModelFormatError(
                    f"corrupted .tflite file: {what} ({length:,} entries) runs past the end of the file"
                ) from None
        return length

    def _ints(self, what: str, getter, is_none) -> tuple[int, ...]:
        if is_none():
            return ()
        values = getter()
        if isinstance(values, int):  # the generated API returns 0 for an absent vector
            return ()
        return tuple(int(v) for v in values)

    def model(self) -> TfliteModel:
        fb = self.fb
        m = fb.Model.GetRootAs(self.data, 0)
        version = m.Version()
        if version != SCHEMA_VERSION:
            raise ModelFormatError(
                f"unsupported .tflite schema version {version}; edgeclust reads version {SCHEMA_VERSION} "
                "(convert the model again with TensorFlow 2.x)"
            )
        n_codes = self._count("operator_codes", m.OperatorCodesLength(), 4, m.OperatorCodes)
        codes = [self._op_name(m.OperatorCodes(i)) for i in range(n_codes)]
        n_buffers = self._count("buffers", m.BuffersLength(), 4, m.Buffers)
        n_subgraphs = self._count("subgraphs", m.SubgraphsLength(), 4, m.Subgraphs)
        if n_subgraphs == 0:
            raise ModelFormatError("corrupted .tflite file: the model has no subgraph")
        buffers = _LazyBuffers(self, m, n_buffers)
        subgraphs = tuple(self._subgraph(i, m.Subgraphs(i), codes, buffers) for i in range(n_subgraphs))
        op_names = sorted({op.name for sg in subgraphs for op in sg.operators})
        description = (m.Description() or b"").decode("utf-8", errors="replace")
        return TfliteModel(version, description, subgraphs, tuple(op_names), self.size)

    def _op_name(self, code) -> tuple[str, bool]:
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == self.fb.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            return (custom.decode("utf-8", errors="replace") if custom else "CUSTOM"), True
        return self.op_names.get(builtin, f"BUILTIN_{builtin}"), False

    def _subgraph(self, index: int, sg, codes, buffers) -> Subgraph:
        where = f"subgraph {index}"
        n_tensors = self._count(f"{where} tensors", sg.TensorsLength(), 4, sg.Tensors)
        tensors = tuple(self._tensor(where, i, sg.Tensors(i), buffers) for i in range(n_tensors))
        n_ops = self._count(f"{where} operators", sg.OperatorsLength(), 4, sg.Operators)
        operators = []
        for i in range(n_ops):
            op = sg.Operators(i)
            opcode = op.OpcodeIndex()
            if not 0 <= opcode < len(codes):
                raise ModelFormatError(
                    f"corrupted .tflite file: {where} operator {i} uses opcode {opcode}, but the model has {len(codes)}"
                )
            name, is_custom = codes[opcode]
            inputs = self._ints(f"{where} operator {i} inputs", op.InputsAsNumpy, op.InputsIsNone)
            outputs = self._ints(f"{where} operator {i} outputs", op.OutputsAsNumpy, op.OutputsIsNone)
            self._check_indices(f"{where} operator {i} ({name})", inputs + outputs, n_tensors, optional=True)
            options = {} if is_custom else self._options(f"{where} operator {i} ({name})", op)
            custom_options = not op.CustomOptionsIsNone() and op.CustomOptionsLength() > 0
            operators.append(Operator(i, name, inputs, outputs, is_custom, options, custom_options))
        inputs = self._ints(f"{where} inputs", sg.InputsAsNumpy, sg.InputsIsNone)
        outputs = self._ints(f"{where} outputs", sg.OutputsAsNumpy, sg.OutputsIsNone)
        self._check_indices(f"{where} inputs/outputs", inputs + outputs, n_tensors, optional=False)
        name = (sg.Name() or b"").decode("utf-8", errors="replace")
        return Subgraph(index, name, tensors, tuple(operators), inputs, outputs)

    def _options(self, where: str, op) -> dict:
        """The operator's builtin options table read field by field (enums as their names, vectors as tuples)."""
        kind = self.options_names.get(op.BuiltinOptionsType())
        table = op.BuiltinOptions()
        if kind is None or kind == "NONE" or table is None:
            return {}
        options_class = getattr(self.fb, kind, None)
        if options_class is None:
            return {}
        options = options_class()
        options.Init(table.Bytes, table.Pos)
        values = {}
        for method in vars(options_class):
            if not method[:1].isupper() or method in ("Init",) or method.startswith("GetRootAs"):
                continue
            if method.endswith(("AsNumpy", "Length", "IsNone", "BufferHasIdentifier")):
                continue
            key = _snake(method)
            if hasattr(options_class, f"{method}Length"):
                if getattr(options, f"{method}IsNone")():
                    values[key] = ()
                    continue
                length = getattr(options, f"{method}Length")()
                self._count(f"{where} option {key}", length, 1, getattr(options, method))
                values[key] = tuple(int(getattr(options, method)(j)) for j in range(length))
                continue
            try:
                value = getattr(options, method)()
            except TypeError:  # a nested table or union: not an option any supported op reads
                continue
            if not isinstance(value, (int, float)):
                continue
            enum = _OPTION_ENUMS.get(key)
            values[key] = self.enum_names(enum).get(value, f"{enum}_{value}") if enum else value
        return values

    def enum_names(self, enum: str) -> dict[int, str]:
        if enum not in self._enum_cache:
            self._enum_cache[enum] = _enum_names(getattr(self.fb, enum))
        return self._enum_cache[enum]

    @staticmethod
    def _check_indices(where: str, indices, n_tensors: int, *, optional: bool) -> None:
        low = -1 if optional else 0
        bad = [i for i in indices if not low <= i < n_tensors]
        if bad:
            raise ModelFormatError(
                f"corrupted .tflite file: {where} refers to tensor {bad[0]}, but the subgraph has {n_tensors}"
            )

    def _tensor(self, where: str, index: int, t, buffers) -> Tensor:
        name = (t.Name() or b"").decode("utf-8", errors="replace")
        label = f"{where} tensor {index} ({name!r})"
        shape = self._ints(f"{label} shape", t.ShapeAsNumpy, t.ShapeIsNone)
        type_code = t.Type()
        dtype = self.type_names.get(type_code, f"TYPE_{type_code}")
        buffer_index = t.Buffer()
        raw = buffers.get(buffer_index, label)
        quantization = self._quantization(label, t.Quantization(), shape)
        data = None
        if raw is not None and len(raw) and t.Sparsity() is None:
            data = self._array(label, raw, shape, dtype)
        return Tensor(
            index,
            name,
            shape,
            dtype,
            quantization,
            buffer_index,
            data,
            0 if raw is None else len(raw),
            bool(t.IsVariable()),
        )

    def _array(self, label: str, raw: np.ndarray, shape: tuple[int, ...], dtype: str) -> np.ndarray | None:
        if any(d < 0 for d in shape):
            raise ModelFormatError(f"corrupted .tflite file: {label} is constant but has shape {list(shape)}")
        count = 1
        for d in shape:
            count *= d
        if dtype in _NIBBLE_TYPES:
            if len(raw) != (count + 1) // 2:
                raise self._size_mismatch(label, raw, shape, dtype, (count + 1) // 2)
            return _unpack_nibbles(raw, count, signed=_NIBBLE_TYPES[dtype]).reshape(shape)
        np_dtype = _NUMPY_DTYPES.get(dtype)
        if np_dtype is None:
            return None
        expected = count * np.dtype(np_dtype).itemsize
        if len(raw) != expected:
            raise self._size_mismatch(label, raw, shape, dtype, expected)
        return raw.view(np_dtype).reshape(shape)

    @staticmethod
    def _size_mismatch(label, raw, shape, dtype, expected) -> ModelFormatError:
        return ModelFormatError(
            f"corrupted .tflite file: {label} holds {len(raw):,} bytes but shape {list(shape)} of {dtype} "
            f"needs {expected:,}"
        )

    def _quantization(self, label: str, q, shape: tuple[int, ...]) -> Quantization | None:
        if q is None or q.ScaleIsNone():
            return None
        scales = q.ScaleAsNumpy()
        zero_points = q.ZeroPointAsNumpy() if not q.ZeroPointIsNone() else np.zeros(0, np.int64)
        if isinstance(zero_points, int):
            zero_points = np.zeros(0, np.int64)
        axis = q.QuantizedDimension()
        if len(zero_points) not in (0, len(scales)):
            raise ModelFormatError(
                f"corrupted .tflite file: {label} has {len(scales)} quantization scales but "
                f"{len(zero_points)} zero points"
            )
        stored = len(zero_points) > 0 or len(scales) == 0
        if len(zero_points) == 0:
            zero_points = np.zeros(len(scales), np.int64)
        return Quantization(scales, zero_points, int(axis), stored)


class _LazyBuffers:
    """The model's buffers, each read and bounds-checked the first time a tensor asks for it."""

    def __init__(self, reader: _Reader, model, count: int):
        self.reader = reader
        self.model = model
        self.count = count
        self.cache: dict[int, np.ndarray | None] = {}

    def get(self, index: int, label: str) -> np.ndarray | None:
        if not 0 <= index < self.count:
            raise ModelFormatError(
                f"corrupted .tflite file: {label} uses buffer {index}, but the model has {self.count}"
            )
        if index not in self.cache:
            self.cache[index] = self._read(index)
        return self.cache[index]

    def _read(self, index: int) -> np.ndarray | None:
        data, size = self.reader.data, self.reader.size
        buf = self.model.Buffers(index)
        offset = buf.Offset()
        if offset > 1:  # data stored after the flatbuffer (models over 2 GB), offset from the file start
            length = buf.Size()
            if offset + length > size:
                raise ModelFormatError(
                    f"corrupted .tflite file: buffer {index} lies at bytes {offset:,}..{offset + length:,}, "
                    f"past the end of the {size:,}-byte file"
                )
            return np.frombuffer(data, dtype=np.uint8, count=length, offset=offset)
        if buf.DataIsNone():
            return None
        length = buf.DataLength()
        if length > size:
            raise ModelFormatError(
                f"corrupted .tflite file: buffer {index} claims {length:,} bytes in a {size:,}-byte file"
            )
        array = buf.DataAsNumpy()
        return None if isinstance(array, int) else array


# option fields whose integer value is an enum of the schema, shown by name
_OPTION_ENUMS = {"padding": "Padding", "fused_activation_function": "ActivationFunctionType"}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _unpack_nibbles(raw: np.ndarray, count: int, *, signed: bool) -> np.ndarray:
    low = raw & 0x0F
    high = raw >> 4
    values = np.stack([low, high], axis=-1).reshape(-1)[:count].astype(np.int8)
    if signed:
        values = np.where(values > 7, values - 16, values).astype(np.int8)
    return values
