"""TFLM's LUT compression driven by the build's weight layouts: each weight tensor stored as b-bit indices
into value tables (b from its layout: 17-128 values get 5-7 bits), decoded by TFLM's DECODE operator.

Built for real with `tflite_micro.compression`. Measured with the tflite-micro wheel: DECODE reproduces the
weights bit for bit only when the tables follow the tensor's quantization (one table per channel along the
quantized dimension for a per-channel quantized tensor, one table otherwise), so a layout along another axis
is recomputed along that one. Tensors where compressing would not pay are left as they are, with a reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from edgeclust.errors import ConfigError, ConversionError, first_line
from edgeclust.lower.weights import WeightLayout, layout_for
from edgeclust.tflite._fds import captured_output
from edgeclust.tflite.flatbuffer import TfliteModel, read_model
from edgeclust.tflite.inspect import WeightTensor, find_weights

MAX_LUT_INDEX_BITS = 7  # what the DECODE operator's header can express
_DCM_BYTES = 16  # the DECODE header stored with each compressed tensor
# flatbuffer bookkeeping per compressed tensor (ancillary and decoded tensors, a DECODE operator, buffers,
# 16-byte alignment): 190-230 bytes measured on converter output, so tensors must save more than this
DECODE_OVERHEAD_BYTES = 256
# decoded types the LUT DECODE kernel writes
LUT_DTYPES = ("INT8", "INT16", "INT32", "INT64", "FLOAT32")


@dataclass(frozen=True)
class CompressedTensor:
    """One tensor stored as indices and tables: how, and what it costs on flash and in RAM once decoded."""

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
    """A weight tensor left as it is, and why."""

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


def lut_compress(
    data: bytes, layouts: Sequence[WeightLayout], *, max_index_bits: int = MAX_LUT_INDEX_BITS
) -> LutResult:
    """Store each weight tensor that has a layout with at most `max_index_bits`-bit indices as packed indices
    plus value tables, where that is smaller; the rest stay as they are, with a reason."""
    if (
        not isinstance(max_index_bits, int)
        or isinstance(max_index_bits, bool)
        or not 1 <= max_index_bits <= MAX_LUT_INDEX_BITS
    ):
        raise ConfigError(
            f"`max_index_bits` must be an integer in 1..{MAX_LUT_INDEX_BITS}. "
            f"Received: max_index_bits={max_index_bits!r}"
        )
    model, raw = read_model(data), bytes(data)
    by_tensor = {(layout.subgraph, layout.tensor): layout for layout in layouts}
    users = _buffer_users(model)
    planned: list[tuple[WeightTensor, WeightLayout, int]] = []
    skipped: list[SkippedTensor] = []
    for weight in find_weights(model):
        reason = _unsuitable(weight, model, users)
        plan = reason or _plan(weight, by_tensor.get((weight.subgraph, weight.tensor)), max_index_bits)
        if isinstance(plan, str):
            skipped.append(SkippedTensor(weight.name, plan))
        else:
            planned.append((weight, *plan))
    if not planned:
        return LutResult(raw, (), tuple(skipped), 0)
    compressed_model = _compress(raw, [(w, layout) for w, layout, _ in planned])
    if len(compressed_model) >= len(raw):
        reason = f"compressing would not shrink the model ({len(raw):,} -> {len(compressed_model):,} bytes)"
        return LutResult(raw, (), tuple(skipped) + tuple(SkippedTensor(w.name, reason) for w, _, _ in planned), 0)
    done = tuple(_compressed(w, layout, cost) for w, layout, cost in planned)
    return LutResult(compressed_model, done, tuple(skipped), sum(c.decoded_bytes for c in done))


def _compressed(weight: WeightTensor, layout: WeightLayout, cost: int) -> CompressedTensor:
    return CompressedTensor(
        name=weight.name,
        subgraph=weight.subgraph,
        tensor=weight.tensor,
        mode="per-tensor" if layout.axis is None else "per-channel",
        axis=layout.axis,
        index_bits=layout.bits,
        table_entries=layout.entries,
        tables=int(layout.tables.shape[0]),
        original_bytes=weight.nbytes,
        compressed_bytes=cost,
        decoded_bytes=int(weight.values.nbytes),
    )


def _buffer_users(model: TfliteModel) -> dict[int, list[tuple[int, int]]]:
    """buffer index -> the (subgraph, tensor) pairs that read it (the converter shares identical constants)."""
    users: dict[int, list[tuple[int, int]]] = {}
    for sg in model.subgraphs:
        for t in sg.tensors:
            if t.buffer:
                users.setdefault(t.buffer, []).append((sg.index, t.index))
    return users


def _unsuitable(weight: WeightTensor, model: TfliteModel, users) -> str | None:
    """Why TFLM cannot LUT-decode this tensor whatever its values, or None."""
    if weight.stored_as != "raw":
        return "already compressed" if weight.stored_as == "lut" else "feeds a DEQUANTIZE operator"
    if weight.dtype not in LUT_DTYPES:
        return f"{weight.dtype} weights cannot be LUT-decoded"
    buffer = model.subgraphs[weight.subgraph].tensors[weight.tensor].buffer
    if len(users.get(buffer, [])) > 1:
        return "shares its data with another tensor, which would keep the uncompressed copy"
    return None


def _plan(weight: WeightTensor, layout: WeightLayout | None, max_bits: int) -> tuple[WeightLayout, int] | str:
    """The layout TFLM decodes bit-exactly (the build's, or one along the quantized axis) and its flash cost,
    or why there is none."""
    values = weight.values
    q = weight.quantization
    axis = q.quantized_dimension if q is not None and q.per_channel else None
    if axis is not None and axis not in (0, values.ndim - 1):
        return f"quantized along dimension {axis}; the DECODE kernel supports the first or last only"
    if layout is not None and layout.axis != axis:
        layout = layout_for(
            values,
            axis=axis,
            subgraph=weight.subgraph,
            tensor=weight.tensor,
            name=weight.name,
            consumer=weight.consumer,
        )
    scope = "per tensor" if axis is None else "per channel"
    if layout is None:
        return f"more than 256 unique values {scope}: not clustered"
    if layout.bits > max_bits:
        return f"{layout.unique_values} unique values {scope} need {layout.bits}-bit indices, more than {max_bits}"
    cost = layout.packed_index_bytes + _DCM_BYTES + layout.table_bytes
    if cost + DECODE_OVERHEAD_BYTES >= weight.nbytes:
        return (
            f"indices and tables ({cost:,} bytes) plus the DECODE bookkeeping (~{DECODE_OVERHEAD_BYTES} bytes) "
            f"would not be smaller than the tensor ({weight.nbytes:,} bytes)"
        )
    return layout, cost


def _compress(raw: bytes, planned: list[tuple[WeightTensor, WeightLayout]]) -> bytes:
    """The model with the planned tensors LUT-compressed by tflite_micro.compression at the layouts' bit widths."""
    from tflite_micro.tensorflow.lite.micro.compression import compress, compressor, spec  # compress: the function

    specs = [
        spec.Tensor(
            subgraph=w.subgraph,
            tensor=w.tensor,
            compression=[
                spec.LookUpTableCompression(
                    index_bitwidth=layout.bits,
                    mode=spec.PerTensor() if layout.axis is None else spec.PerChannel(axis=layout.axis),
                )
            ],
        )
        for w, layout in planned
    ]
    try:
        with warnings.catch_warnings(), captured_output():
            warnings.simplefilter("ignore")
            return bytes(compress(raw, specs))
    except (compressor.CompressionError, ValueError) as exc:
        raise ConversionError(f"LUT compression failed: {first_line(exc)}") from None
