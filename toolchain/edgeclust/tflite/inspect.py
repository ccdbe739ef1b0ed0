"""Per-tensor and per-channel statistics of a .tflite model's weights, and the unique-value check for CI.

numpy and the flatbuffer reader only (no keras, no TensorFlow, no interpreter). Memory stays proportional
to the largest weight tensor: unique values come from one sort (or a 256-bin count for 8-bit weights),
never from a weights x clusters comparison. Weights stored LUT-compressed for TFLite Micro (TFLM_DECODE)
are decoded first, so a compressed model is checked on the values the board computes with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from edgeclust.errors import ConfigError, ModelFormatError
from edgeclust.tflite.flatbuffer import Quantization, Subgraph, Tensor, TfliteModel, read_model

# op name -> input positions that hold weights (kernels, filters, embeddings); biases are not weights here
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "CONV_2D": (1,),
    "DEPTHWISE_CONV_2D": (1,),
    "FULLY_CONNECTED": (1,),
    "TRANSPOSE_CONV": (1,),
    "CONV_3D": (1,),
    "CONV_3D_TRANSPOSE": (1,),
    "BATCH_MATMUL": (0, 1),
    "EMBEDDING_LOOKUP": (1,),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (1, 2, 3, 4, 5, 6, 7, 8),
}
# op name -> axis of its weight that indexes output channels (used when quantization does not say)
OUTPUT_CHANNEL_AXIS: dict[str, int] = {
    "CONV_2D": 0,
    "FULLY_CONNECTED": 0,
    "TRANSPOSE_CONV": 0,
    "DEPTHWISE_CONV_2D": -1,
    "CONV_3D": -1,
    "CONV_3D_TRANSPOSE": -2,
    "BATCH_MATMUL": -1,
    "EMBEDDING_LOOKUP": 0,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": 0,
}
DECODE_OP = "TFLM_DECODE"
_DCM_BYTES = 16
_LUT_DECODE_TYPE = 0
_LUT_PER_TENSOR_AXIS = 0xF
_COUNT_CHUNK = 1 << 16  # elements per step of chunked counts: bincount widens each chunk to 8-byte intp
_BLOCK_ELEMENTS = 1 << 20  # elements per block of channels sorted at once


@dataclass(frozen=True, eq=False)
class WeightTensor:
    """A weight as an operator sees it: its values (decoded when stored compressed) and where it lives."""

    subgraph: int
    tensor: int
    name: str
    consumer: str
    values: np.ndarray
    dtype: str
    quantization: Quantization | None
    channel_axis: int | None
    nbytes: int
    stored_as: str  # "raw", "lut" (TFLM_DECODE) or "dequantize" (e.g. float16 weights)


@dataclass(frozen=True)
class WeightStats:
    """What `inspect` reports for one weight tensor (sparsity: fraction of weights equal to real zero)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    unique_values: int
    max_unique_per_channel: int
    channel_axis: int | None
    sparsity: float
    nbytes: int
    consumer: str
    subgraph: int = 0
    tensor: int = 0
    stored_as: str = "raw"
    non_finite: int = 0  # NaN or Inf values (float weights only)


@dataclass(frozen=True)
class VerifyResult:
    """Whether every weight tensor holds at most `max_unique` values (per tensor, or per channel)."""

    passed: bool
    failures: tuple[WeightStats, ...]
    checked: int
    max_unique: int = 0
    per_channel: bool = False

    def count(self, stats: WeightStats) -> int:
        return stats.max_unique_per_channel if self.per_channel else stats.unique_values

    def summary(self) -> str:
        scope = "per channel" if self.per_channel else "per tensor"
        if self.checked == 0:
            return "no weight tensors found; nothing to verify (is this the model you meant?)"
        if self.passed:
            return f"all {self.checked} weight tensors hold at most {self.max_unique} unique values {scope}"
        return (
            f"{len(self.failures)} of {self.checked} weight tensors hold more than {self.max_unique} unique "
            f"values {scope}"
        )


def find_weights(model: TfliteModel | bytes) -> list[WeightTensor]:
    """Every constant weight operand of every subgraph, in operator order, each tensor once."""
    if not isinstance(model, TfliteModel):
        model = read_model(model)
    found: list[WeightTensor] = []
    for sg in model.subgraphs:
        seen: set[int] = set()
        for op in sg.operators:
            for position in WEIGHT_INPUTS.get(op.name, ()):
                if position >= len(op.inputs) or op.inputs[position] < 0 or op.inputs[position] in seen:
                    continue
                weight = _resolve(sg, op.inputs[position], op.name)
                if weight is not None:
                    seen.add(op.inputs[position])
                    found.append(weight)
    return found


def inspect_weights(data: bytes | TfliteModel) -> list[WeightStats]:
    """Unique values per tensor and per channel, sparsity, bytes and consuming op of every weight tensor."""
    return [weight_stats(w) for w in find_weights(data)]


def verify(data: bytes | TfliteModel, max_unique: int, per_channel: bool = False) -> VerifyResult:
    """Pass when every weight tensor holds at most `max_unique` unique values (per channel if asked).

    A model without weight tensors does not pass: there is nothing to prove.
    """
    if not isinstance(max_unique, (int, np.integer)) or isinstance(max_unique, bool) or max_unique < 1:
        raise ConfigError(f"`max_unique` must be an integer >= 1. Received: max_unique={max_unique!r}")
    stats = require_finite(inspect_weights(data))
    limit = VerifyResult(True, (), len(stats), int(max_unique), bool(per_channel))
    failures = tuple(s for s in stats if limit.count(s) > max_unique)
    return replace(limit, passed=bool(stats) and not failures, failures=failures)


def require_finite(stats: list[WeightStats]) -> list[WeightStats]:
    """`stats` unchanged, or ModelFormatError naming the first weight tensor holding NaN or Inf values."""
    broken = [s for s in stats if s.non_finite]
    if broken:
        first = broken[0]
        others = f" (and {len(broken) - 1} more tensor(s))" if len(broken) > 1 else ""
        size = math.prod(first.shape)
        raise ModelFormatError(
            f"weight tensor {first.name!r} ({first.consumer}, tensor {first.tensor}) holds {first.non_finite:,} "
            f"NaN or Inf values of {size:,}{others}; the model is broken: retrain or repair it, then convert again"
        )
    return stats


def count_non_finite(values: np.ndarray) -> int:
    """NaN and Inf values in a float tensor (0 for integers), counted in chunks to keep temporaries small."""
    if values.dtype.kind not in "fc":
        return 0
    flat = values.reshape(-1)
    return sum(
        int(flat[i : i + _COUNT_CHUNK].size - np.count_nonzero(np.isfinite(flat[i : i + _COUNT_CHUNK])))
        for i in range(0, flat.size, _COUNT_CHUNK)
    )


def weight_stats(weight: WeightTensor) -> WeightStats:
    values = weight.values
    unique = count_unique(values)
    per_channel = unique if weight.channel_axis is None else max_unique_per_channel(values, weight.channel_axis)
    return WeightStats(
        name=weight.name,
        shape=tuple(values.shape),
        dtype=weight.dtype,
        unique_values=unique,
        max_unique_per_channel=per_channel,
        channel_axis=weight.channel_axis,
        sparsity=_sparsity(values, weight.quantization),
        nbytes=weight.nbytes,
        consumer=weight.consumer,
        subgraph=weight.subgraph,
        tensor=weight.tensor,
        stored_as=weight.stored_as,
        non_finite=count_non_finite(values),
    )


def count_unique(values: np.ndarray) -> int:
    """Distinct values in the whole tensor: a 256-bin count for 8-bit integers, else one sorted copy.

    All NaNs count as one value, as in np.unique; -0.0 and 0.0 as one.
    """
    flat = values.reshape(-1)
    if flat.size == 0:
        return 0
    if flat.dtype.itemsize == 1 and flat.dtype.kind in "iub":
        counts = np.zeros(256, dtype=np.int64)
        for start in range(0, flat.size, _COUNT_CHUNK):  # bincount widens to intp: keep that temporary small
            counts += np.bincount(flat[start : start + _COUNT_CHUNK].view(np.uint8), minlength=256)
        return int(np.count_nonzero(counts))
    ordered = np.sort(flat)  # NaNs go last
    nans = 0
    if ordered.dtype.kind in "fc":
        nans = sum(int(np.count_nonzero(np.isnan(chunk))) for chunk in _chunks(ordered))
    finite = ordered[: ordered.size - nans]
    pairs = max(finite.size - 1, 0)  # neighbours compared a chunk at a time
    changes = sum(
        int(np.count_nonzero(finite[s + 1 : e + 1] != finite[s:e]))
        for s, e in ((s, min(s + _COUNT_CHUNK, pairs)) for s in range(0, pairs, _COUNT_CHUNK))
    )
    return (changes + 1 if finite.size else 0) + (1 if nans else 0)


def max_unique_per_channel(values: np.ndarray, axis: int) -> int:
    """The most distinct values in one slice along `axis`, sorting a block of channels at a time."""
    if values.size == 0:
        return 0
    best = 0
    for rows in _channel_blocks(values, axis):
        if rows.shape[1] == 1:
            return 1
        ordered = np.sort(rows, axis=1, kind="stable")
        changes = np.count_nonzero(ordered[:, 1:] != ordered[:, :-1], axis=1)
        best = max(best, int(changes.max()) + 1)
    return best


def _chunks(flat: np.ndarray):
    for start in range(0, flat.size, _COUNT_CHUNK):
        yield flat[start : start + _COUNT_CHUNK]


def _channel_blocks(values: np.ndarray, axis: int, elements: int = _BLOCK_ELEMENTS):
    """(channels, rest) 2-D copies of consecutive channels along `axis`, about `elements` values each."""
    moved = np.moveaxis(values, axis % values.ndim, 0)  # a view
    channels = moved.shape[0]
    per_channel = values.size // channels if channels else 0
    step = max(1, elements // max(per_channel, 1))
    for start in range(0, channels, step):
        yield moved[start : start + step].reshape(-1, per_channel)


def _sparsity(values: np.ndarray, quantization: Quantization | None) -> float:
    """Fraction of weights whose real value is zero (the stored value equals the zero point)."""
    if values.size == 0:
        return 0.0
    if quantization is None or len(quantization.zero_points) == 0 or values.dtype.kind == "f":
        zeros = sum(int(np.count_nonzero(chunk == 0)) for chunk in _chunks(values.reshape(-1)))
    else:
        zp = quantization.zero_points
        if len(zp) == 1 or np.all(zp == zp[0]) or values.ndim == 0:
            zeros = sum(int(np.count_nonzero(chunk == zp[0])) for chunk in _chunks(values.reshape(-1)))
        else:
            zeros, start = 0, 0
            for rows in _channel_blocks(values, quantization.quantized_dimension):
                zeros += int(np.count_nonzero(rows == zp[start : start + len(rows), None]))
                start += len(rows)
    return float(zeros) / values.size


def _channel_axis(name: str, op_name: str, values: np.ndarray, quantization: Quantization | None) -> int | None:
    if values.ndim == 0:
        return None
    if quantization is not None and quantization.per_channel:
        axis = quantization.quantized_dimension
        if not (0 <= axis < values.ndim and values.shape[axis] == len(quantization.scales)):
            raise ModelFormatError(
                f"corrupted .tflite file: weight {name!r} has {len(quantization.scales)} quantization scales "
                f"along dimension {axis} of shape {list(values.shape)}"
            )
        return axis
    return OUTPUT_CHANNEL_AXIS.get(op_name, 0) % values.ndim


def _resolve(sg: Subgraph, index: int, consumer: str) -> WeightTensor | None:
    """The weight at tensor `index`: stored as is, or produced from a constant by DEQUANTIZE or DECODE."""
    tensor = sg.tensors[index]
    if tensor.data is not None:
        return _weight(sg, tensor, tensor.data, tensor.quantization, consumer, tensor.nbytes, "raw")
    producer = sg.producer(index)
    if producer is None:
        return None
    if producer.name == "DEQUANTIZE" and producer.inputs and producer.inputs[0] >= 0:
        source = sg.tensors[producer.inputs[0]]
        if source.data is None:
            return None
        return _weight(sg, source, source.data, source.quantization, consumer, source.nbytes, "dequantize")
    if producer.name == DECODE_OP:
        k = producer.outputs.index(index)
        if 2 * k + 1 >= len(producer.inputs) or min(producer.inputs[2 * k : 2 * k + 2]) < 0:
            raise ModelFormatError(
                f"corrupted .tflite file: {DECODE_OP} operator {producer.index} lacks the inputs for output {k}"
            )
        encoded = sg.tensors[producer.inputs[2 * k]]
        ancillary = sg.tensors[producer.inputs[2 * k + 1]]
        values = decode_lut(encoded, ancillary, tensor)
        weight = _weight(sg, tensor, values, tensor.quantization, consumer, encoded.nbytes + ancillary.nbytes, "lut")
        return replace(weight, tensor=encoded.index, name=encoded.name or tensor.name)
    return None


def _weight(sg, tensor: Tensor, values, quantization, consumer, nbytes, stored_as) -> WeightTensor:
    return WeightTensor(
        subgraph=sg.index,
        tensor=tensor.index,
        name=tensor.name,
        consumer=consumer,
        values=values,
        dtype=tensor.dtype,
        quantization=quantization,
        channel_axis=_channel_axis(tensor.name, consumer, values, quantization),
        nbytes=nbytes,
        stored_as=stored_as,
    )


def decode_lut(encoded: Tensor, ancillary: Tensor, decoded: Tensor) -> np.ndarray:
    """The values a TFLM_DECODE (LUT) operator writes to `decoded`, from packed indices and value tables.

    Format (tflite_micro.compression): a 16-byte header (byte 0 decode type, 0 = LUT; byte 5 = axis << 4 |
    index bits; byte 6 = entries per table), then the value tables; indices packed big-endian bit order.
    """
    what = f"compressed tensor {decoded.name!r}"
    anc = ancillary.data
    if encoded.data is None or anc is None or anc.dtype != np.uint8 or anc.size < _DCM_BYTES:
        raise ModelFormatError(f"corrupted .tflite file: {what} lacks its encoded data or its {DECODE_OP} header")
    if int(anc[0]) != _LUT_DECODE_TYPE:
        raise ModelFormatError(
            f"{what} uses {DECODE_OP} type {int(anc[0])}; edgeclust reads only LUT compression (type 0)"
        )
    axis, bits, stride = int(anc[5]) >> 4, int(anc[5]) & 0x7, int(anc[6])
    np_dtype = decoded_numpy_dtype(decoded.dtype)
    shape = decoded.shape
    count = math.prod(shape)  # Python ints: a corrupted shape must not overflow int64
    if bits == 0 or stride == 0 or np_dtype is None or any(d < 0 for d in shape):
        raise ModelFormatError(f"corrupted .tflite file: {what} has an invalid LUT header")
    if axis == _LUT_PER_TENSOR_AXIS:
        tables = 1
    elif axis < len(shape):
        tables = shape[axis]
    else:
        raise ModelFormatError(f"corrupted .tflite file: {what} has LUT axis {axis} for shape {list(shape)}")
    itemsize = np.dtype(np_dtype).itemsize
    table_bytes = anc[_DCM_BYTES:]
    if table_bytes.size < tables * stride * itemsize:
        raise ModelFormatError(
            f"corrupted .tflite file: {what} needs {tables * stride * itemsize} bytes of value tables, "
            f"has {table_bytes.size}"
        )
    if encoded.data.size * 8 < count * bits:
        raise ModelFormatError(
            f"corrupted .tflite file: {what} holds {encoded.data.size} bytes of indices, "
            f"needs {(count * bits + 7) // 8}"
        )
    values_table = table_bytes[: tables * stride * itemsize].view(np_dtype).reshape(tables, stride)
    indices = _unpack_indices(encoded.data.reshape(-1).view(np.uint8), count, bits)
    if count and int(indices.max()) >= stride:
        raise ModelFormatError(f"corrupted .tflite file: {what} has an index past the end of its value table")
    if tables == 1:
        return values_table[0][indices].reshape(shape)
    moved_shape = (shape[axis],) + tuple(d for i, d in enumerate(shape) if i != axis)
    rows = np.moveaxis(indices.reshape(shape), axis, 0).reshape(tables, -1)
    decoded_rows = np.take_along_axis(values_table, rows.astype(np.intp), axis=1)
    return np.moveaxis(decoded_rows.reshape(moved_shape), 0, axis)


def decoded_numpy_dtype(dtype: str):
    return {
        "INT8": "i1",
        "INT16": "<i2",
        "INT32": "<i4",
        "INT64": "<i8",
        "FLOAT32": "<f4",
        "UINT8": "u1",
        "FLOAT16": "<f2",
        "BOOL": "?",
    }.get(dtype)


def _unpack_indices(packed: np.ndarray, count: int, bits: int) -> np.ndarray:
    """`count` unsigned `bits`-wide integers packed most significant bit first."""
    bit_array = np.unpackbits(packed)[: count * bits].reshape(count, bits)
    indices = np.zeros(count, dtype=np.uint8)
    for j in range(bits):
        indices = (indices << 1) | bit_array[:, j]
    return indices
