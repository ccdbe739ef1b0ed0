"""Typed step records: what each kernel call of the native program computes, as numbers and arrays, no C.

lowering.py builds them from the graph (validated once); emit_c.py turns each record type into C; pricing,
the host oracle and rendering read the same records. A record names its kernel and the flash arrays it owns.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeclust.lower.weights import WeightLayout


@dataclass(frozen=True, eq=False)
class FlashArray:
    """One `static const` array on flash, owned by a step. kind: "weights", "tables", "biases", "requant"."""

    name: str
    values: np.ndarray  # its numpy dtype gives the C type (uint8, int8, int32)
    kind: str

    @property
    def ctype(self) -> str:
        return f"{self.values.dtype.name}_t"

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


@dataclass(frozen=True, eq=False)
class PackedWeights:
    """One weight tensor as the kernel reads it: one row per output channel, packed indices or plain int8.

    data: uint8 packed index rows (bits < 8) or int8 values (bits 8, no table); table: (tables, entries) int8,
    one row per channel when per_channel, or None. layout: the WeightLayout it was packed from, or None;
    fallback: why a given layout was not used (it would not save bytes), or None.
    """

    tensor: int
    name: str  # the tensor's name in the model
    op: str
    data: np.ndarray
    table: np.ndarray | None
    row_stride: int
    bits: int
    weights: int
    layout: WeightLayout | None = None
    fallback: str | None = None

    @property
    def per_channel(self) -> bool:
        """One table per output channel (packed from a per-channel layout)."""
        return self.table is not None and self.layout is not None and self.layout.per_channel

    @property
    def table_stride(self) -> int:
        return int(self.table.shape[1]) if self.per_channel else 0

    @property
    def index_bytes(self) -> int:
        return int(self.data.nbytes)

    @property
    def table_bytes(self) -> int:
        return 0 if self.table is None else int(self.table.size)


@dataclass(frozen=True, eq=False)
class Requant:
    """Int32 accumulator -> int8: folded biases per channel; multiplier and shift per channel, or once for all."""

    bias: np.ndarray  # int32, one per output channel, folded with input_offset * sum(w)
    multiplier: np.ndarray  # int32: one per output channel, or one for the tensor
    shift: np.ndarray  # int8, as many as multiplier
    output_zero_point: int
    act_min: int
    act_max: int

    @property
    def per_channel(self) -> bool:
        return self.multiplier.size > 1

    @property
    def packs_shift(self) -> bool:
        """The shifts ride in the multiplier words: each word holds bits 29..0 of a multiplier in [2^30, 2^31)
        (bit 30 set, bit 31 clear, as QuantizeMultiplier gives: two bits that carry nothing) and, in bits 31..30,
        the shift's distance from the layer's smallest (0..3), which is then the only shift byte on flash. Else
        the words are the multipliers and one shift byte a channel follows, less the 1 their bits 31..30 add."""
        m, s = self.multiplier.astype(np.int64), self.shift.astype(np.int64)
        return bool(m.min() >= 2**30 and s.max() - s.min() <= 3)

    def _channel_words(self) -> np.ndarray:
        """The int32 multiplier word of each channel (ec_requant_multiplier reads them)."""
        if not self.packs_shift:
            return self.multiplier
        m = self.multiplier.astype(np.uint32) & np.uint32(0x3FFFFFFF)
        e = (self.shift.astype(np.int64) - int(self.shift.min())).astype(np.uint32) << np.uint32(30)
        return (m | e).view(np.int32)

    def _channel_shifts(self) -> np.ndarray:
        """The int8 shift bytes (ec_requant_shift adds bits 31..30 of the multiplier word to them)."""
        if self.packs_shift:
            return self.shift.min(keepdims=True).reshape(1)
        return (self.shift.astype(np.int16) - 1).astype(np.int8)

    @functools.cached_property
    def _shared(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(words, shift bytes, entry per channel or None). Clustering leaves a layer a handful of channel scales:
        where the channels' distinct (word, shift byte) pairs and one byte a channel naming its pair take fewer
        bytes than a word (and a shift byte) a channel, flash holds those (ec_requant_entry)."""
        words, shifts = self._channel_words(), self._channel_shifts()
        if not self.per_channel:
            return words, shifts, None
        shift_each = self.shift_stride == 1  # a shift byte per channel, else one for all (packed in the words)
        channel_shifts = shifts if shift_each else np.zeros(words.size, np.int8)
        pairs = np.stack([words.astype(np.int64), channel_shifts.astype(np.int64)], 1)
        distinct, entry = np.unique(pairs, axis=0, return_inverse=True)
        pair_bytes = 5 if shift_each else 4
        if len(distinct) > 256 or len(distinct) * pair_bytes + words.size >= words.size * pair_bytes:
            return words, shifts, None
        shared_shifts = distinct[:, 1].astype(np.int8) if shift_each else shifts
        return distinct[:, 0].astype(np.int32), shared_shifts, entry.reshape(-1).astype(np.uint8)

    @property
    def multiplier_words(self) -> np.ndarray:
        """The int32 multiplier words on flash: one a channel, or one a distinct pair where `entries` is set."""
        return self._shared[0]

    @property
    def shift_bytes(self) -> np.ndarray:
        """The int8 shift array on flash, shift_stride apart (by entry where `entries` is set)."""
        return self._shared[1]

    @property
    def entries(self) -> np.ndarray | None:
        """uint8 per channel: the index of its multiplier word (and shift byte); None: indexed by channel."""
        return self._shared[2]

    @property
    def shift_stride(self) -> int:
        """Entries between consecutive channels' shift bytes: 0 for one byte for every channel."""
        return 0 if self.packs_shift or not self.per_channel else 1


@dataclass(frozen=True)
class Window:
    """A 2-D window over an NHWC tensor (batch 1): TFLM's output size and top/left padding."""

    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    dil_h: int
    dil_w: int
    pad_h: int
    pad_w: int


@dataclass(frozen=True)
class PoolFusion:
    """A MAX_POOL_2D (op `op_index`) fused into the conv before it: the conv's output never exists whole."""

    op_index: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    out_h: int
    out_w: int
    act_min: int
    act_max: int


@dataclass(frozen=True, eq=False)
class Step:
    """One kernel call: `kernel(&params, inputs..., outputs...)`; inputs and outputs name planned buffers.

    name: the params' C name, the op's name and TFLite op index (`conv_2d_3`); op_index: that index.
    """

    KERNEL: ClassVar[str] = ""
    OP: ClassVar[str] = ""

    name: str
    op_index: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def kernel(self) -> str:
        return self.KERNEL

    @property
    def what(self) -> str:
        """The ops it runs, for a comment."""
        return f"{self.OP} (op {self.op_index})"

    def arrays(self) -> tuple[FlashArray, ...]:
        """The flash arrays the step's params point to."""
        return ()

    def packed(self) -> tuple[PackedWeights, ...]:
        return ()


@dataclass(frozen=True, eq=False)
class _WeightedStep(Step):
    """A step with a weight tensor and per-channel requantization (conv, depthwise, fully connected)."""

    weights: PackedWeights
    requant: Requant

    def arrays(self) -> tuple[FlashArray, ...]:
        w, q = self.weights, self.requant
        out = [FlashArray(f"{self.name}_weights", w.data, "weights")]
        if w.table is not None:
            out.append(FlashArray(f"{self.name}_table", w.table.reshape(-1), "tables"))
        out += [
            FlashArray(f"{self.name}_bias", q.bias, "biases"),
            FlashArray(f"{self.name}_multiplier", q.multiplier_words, "requant"),
            FlashArray(f"{self.name}_shift", q.shift_bytes, "requant"),
        ]
        if q.entries is not None:
            out.append(FlashArray(f"{self.name}_entry", q.entries, "requant"))
        return tuple(out)

    def packed(self) -> tuple[PackedWeights, ...]:
        return (self.weights,)


@dataclass(frozen=True, eq=False)
class ConvStep(_WeightedStep):
    KERNEL: ClassVar[str] = "ec_conv"
    OP: ClassVar[str] = "CONV_2D"

    window: Window
    input_zero_point: int
    pool: PoolFusion | None = None

    @property
    def what(self) -> str:
        if self.pool is None:
            return super().what
        return f"{super().what} + MAX_POOL_2D (op {self.pool.op_index}), fused: the conv's output never exists whole"


@dataclass(frozen=True, eq=False)
class DepthwiseStep(_WeightedStep):
    KERNEL: ClassVar[str] = "ec_depthwise_conv"
    OP: ClassVar[str] = "DEPTHWISE_CONV_2D"

    window: Window
    input_zero_point: int
    depth_multiplier: int


@dataclass(frozen=True, eq=False)
class FullyConnectedStep(_WeightedStep):
    KERNEL: ClassVar[str] = "ec_fully_connected"
    OP: ClassVar[str] = "FULLY_CONNECTED"

    batches: int
    in_n: int
    out_n: int
    # 4-bit rows with a table per channel, re-indexed (fc_row_groups) so that groups of rows share one table: the
    # rows in group order, uint16, bit 15 set on each group's first row (the DSP kernel builds the group's pair
    # table there); None: natural order, no groups
    order: np.ndarray | None = None

    def arrays(self) -> tuple[FlashArray, ...]:
        out = super().arrays()
        return out if self.order is None else (*out, FlashArray(f"{self.name}_order", self.order, "order"))


@dataclass(frozen=True, eq=False)
class PoolStep(Step):
    """MAX_POOL_2D or AVERAGE_POOL_2D (`average`)."""

    window: Window
    act_min: int
    act_max: int
    average: bool

    @property
    def kernel(self) -> str:
        return "ec_average_pool" if self.average else "ec_max_pool"

    @property
    def what(self) -> str:
        return f"{'AVERAGE' if self.average else 'MAX'}_POOL_2D (op {self.op_index})"


@dataclass(frozen=True, eq=False)
class MeanStep(Step):
    """MEAN over H and W of an NHWC tensor (global average pooling)."""

    KERNEL: ClassVar[str] = "ec_mean_hw"
    OP: ClassVar[str] = "MEAN"

    spatial: int
    channels: int
    input_zero_point: int
    output_zero_point: int
    multiplier: int
    shift: int


@dataclass(frozen=True, eq=False)
class AddStep(Step):
    """ADD of two same-shape int8 tensors (TFLM's fixed-point parameters)."""

    KERNEL: ClassVar[str] = "ec_add"
    OP: ClassVar[str] = "ADD"

    size: int
    input1_offset: int
    input2_offset: int
    output_offset: int
    input1_multiplier: int
    input2_multiplier: int
    output_multiplier: int
    input1_shift: int
    input2_shift: int
    output_shift: int
    left_shift: int
    act_min: int
    act_max: int


@dataclass(frozen=True, eq=False)
class SoftmaxStep(Step):
    KERNEL: ClassVar[str] = "ec_softmax"
    OP: ClassVar[str] = "SOFTMAX"

    outer: int
    depth: int
    input_multiplier: int
    input_left_shift: int
    diff_min: int


@dataclass(frozen=True, eq=False)
class QuantizeStep(Step):
    """float32 -> int8 at the model's input: size, scale and zero point of the int8 side."""

    KERNEL: ClassVar[str] = "ec_quantize"
    OP: ClassVar[str] = "QUANTIZE"

    size: int
    scale: float
    zero_point: int


@dataclass(frozen=True, eq=False)
class DequantizeStep(Step):
    """int8 -> float32 at the model's output."""

    KERNEL: ClassVar[str] = "ec_dequantize"
    OP: ClassVar[str] = "DEQUANTIZE"

    size: int
    scale: float
    zero_point: int
