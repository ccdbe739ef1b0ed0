"""What a model costs: zipped bytes (what users measure) and LUT-compressed bytes (what a board stores).

A zip file saves nothing on a microcontroller's flash; storing clustered weights as indices into a value
table does, and TFLite Micro decodes them at run time (its TFLM_DECODE operator). `lut_compress` builds
that model for real with `tflite_micro.compression`, per tensor or per channel as the unique counts allow.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from dataclasses import dataclass

from edgeclust.errors import ConfigError, ConversionError
from edgeclust.tflite._fds import captured_output
from edgeclust.tflite.flatbuffer import TfliteModel, read_model
from edgeclust.tflite.inspect import WeightTensor, count_unique, find_weights, max_unique_per_channel

MAX_LUT_INDEX_BITS = 7  # what the DECODE operator's header can express
DEFAULT_INDEX_BITS = 4  # 16 values: what clustering usually leaves
_DCM_BYTES = 16
# flatbuffer bookkeeping per compressed tensor (ancillary and decoded tensors, a DECODE operator, buffers,
# 16-byte alignment): 190-230 bytes measured on converter output, so tensors must save more than this
DECODE_OVERHEAD_BYTES = 256
# decoded types the LUT DECODE kernel writes
LUT_DTYPES = ("INT8", "INT16", "INT32", "INT64", "FLOAT32")


@dataclass(frozen=True)
class CompressedTensor:
    name: str
    subgraph: int
    tensor: int
    mode: str  # "per-tensor" or "per-channel"
    axis: int | None
    index_bits: int
    table_entries: int  # values per table
    tables: int
    original_bytes: int
    compressed_bytes: int  # packed indices + header + value tables
    decoded_bytes: int


@dataclass(frozen=True)
class SkippedTensor:
    name: str
    reason: str


@dataclass(frozen=True)
class LutResult:
    """The LUT-compressed model, what was compressed and how, what was left and why.

    decoded_bytes: RAM that TFLM's DECODE operators write decoded weights to (sum over compressed tensors).
    """

    model: bytes
    compressed_tensors: tuple[CompressedTensor, ...]
    skipped_tensors: tuple[SkippedTensor, ...]
    decoded_bytes: int


def zipped_size(data: bytes, arcname: str = "model.tflite") -> int:
    """Bytes of a zip archive holding `data` as `arcname` (ZIP_DEFLATED), the way users measure."""
    out = io.BytesIO()
    info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(info, bytes(data))
    return len(out.getvalue())


@dataclass(frozen=True)
class _Plan:
    axis: int | None
    bits: int
    entries: int
    tables: int
    cost: int


def lut_compress(data: bytes, *, max_index_bits: int = DEFAULT_INDEX_BITS) -> LutResult:
    """Store each weight tensor with at most 2**max_index_bits values (per tensor or per channel) as
    packed indices plus value tables, where that is smaller; the rest stay as they are, with a reason.
    """
    if not isinstance(max_index_bits, int) or isinstance(max_index_bits, bool) or not 1 <= max_index_bits <= MAX_LUT_INDEX_BITS:
        raise ConfigError(
            f"`max_index_bits` must be an integer in 1..{MAX_LUT_INDEX_BITS}. Received: max_index_bits={max_index_bits!r}"
        )
    model = read_model(data)
    raw = bytes(data)
    weights = find_weights(model)
    users = _buffer_users(model)
    planned: list[tuple[WeightTensor, _Plan]] = []
    skipped: list[SkippedTensor] = []
    for weight in weights:
        reason = _unsuitable(weight, model, users)
        if reason is None:
            plan = _plan(weight, max_index_bits)
            if isinstance(plan, str):
                reason = plan
            else:
                planned.append((weight, plan))
                continue
        skipped.append(SkippedTensor(weight.name, reason))
    if not planned:
        return LutResult(raw, (), tuple(skipped), 0)
    compressed_model = _compress(raw, planned)
    if len(compressed_model) >= len(raw):
        reason = f"compressing would not shrink the model ({len(raw):,} -> {len(compressed_model):,} bytes)"
        return LutResult(raw, (), tuple(skipped) + tuple(SkippedTensor(w.name, reason) for w, _ in planned), 0)
    done = tuple(
        CompressedTensor(
            name=w.name, subgraph=w.subgraph, tensor=w.tensor,
            mode="per-tensor" if p.axis is None else "per-channel", axis=p.axis,
            index_bits=p.bits, table_entries=p.entries, tables=p.tables,
            original_bytes=w.nbytes, compressed_bytes=p.cost, decoded_bytes=int(w.values.nbytes),
        )
        for w, p in planned
    )
    return LutResult(compressed_model, done, tuple(skipped), sum(c.decoded_bytes for c in done))


def _buffer_users(model: TfliteModel) -> dict[int, list[tuple[int, int]]]:
    """buffer index -> the (subgraph, tensor) pairs that read it (the converter shares identical constants)."""
    users: dict[int, list[tuple[int, int]]] = {}
    for sg in model.subgraphs:
        for t in sg.tensors:
            if t.buffer:
                users.setdefault(t.buffer, []).append((sg.index, t.index))
    return users


def _unsuitable(weight: WeightTensor, model: TfliteModel, users) -> str | None:
    if weight.stored_as != "raw":
        return "already compressed" if weight.stored_as == "lut" else "feeds a DEQUANTIZE operator"
    if weight.dtype not in LUT_DTYPES:
        return f"{weight.dtype} weights cannot be LUT-decoded"
    buffer = model.subgraphs[weight.subgraph].tensors[weight.tensor].buffer
    if len(users.get(buffer, [])) > 1:
        return "shares its data with another tensor, which would keep the uncompressed copy"
    return None


def _plan(weight: WeightTensor, max_bits: int) -> _Plan | str:
    """The LUT layout TFLM decodes bit-exactly, or why there is none.

    Measured with the tflite-micro wheel: its DECODE kernel reproduces the weights only when the tables
    follow the tensor's quantization, i.e. one table per channel along the quantized dimension for a
    per-channel quantized tensor, and one table for anything else. Other layouts change the outputs.
    """
    values = weight.values
    n, itemsize = values.size, values.dtype.itemsize
    q = weight.quantization
    if q is not None and q.per_channel:
        axis = q.quantized_dimension
        if axis not in (0, values.ndim - 1):
            return f"quantized along dimension {axis}; the DECODE kernel supports the first or last only"
        plan = _layout(axis, max_unique_per_channel(values, axis), values.shape[axis], n, itemsize)
        scope = "per channel"
    else:
        plan = _layout(None, count_unique(values), 1, n, itemsize)
        scope = "per tensor"
    if plan.bits > max_bits:
        return f"{plan.entries} unique values {scope} need {plan.bits}-bit indices, more than {max_bits}"
    if plan.cost + DECODE_OVERHEAD_BYTES >= weight.nbytes:
        return (
            f"indices and tables ({plan.cost:,} bytes) plus the DECODE bookkeeping (~{DECODE_OVERHEAD_BYTES} bytes) "
            f"would not be smaller than the tensor ({weight.nbytes:,} bytes)"
        )
    return plan


def _layout(axis: int | None, entries: int, tables: int, n: int, itemsize: int) -> _Plan:
    bits = max(1, (max(entries, 1) - 1).bit_length())
    cost = (n * bits + 7) // 8 + _DCM_BYTES + tables * entries * itemsize
    return _Plan(axis, bits, entries, tables, cost)


def _compress(raw: bytes, planned) -> bytes:
    from tflite_micro.tensorflow.lite.micro.compression import compress, compressor, spec  # compress: the function

    specs = [
        spec.Tensor(
            subgraph=w.subgraph,
            tensor=w.tensor,
            compression=[spec.LookUpTableCompression(
                index_bitwidth=p.bits, mode=spec.PerTensor() if p.axis is None else spec.PerChannel(axis=p.axis)
            )],
        )
        for w, p in planned
    ]
    try:
        with warnings.catch_warnings(), captured_output():
            warnings.simplefilter("ignore")
            return bytes(compress(raw, specs))
    except (compressor.CompressionError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConversionError(f"LUT compression failed: {first}") from None
