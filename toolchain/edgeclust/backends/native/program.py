"""What the native generator emits, decided once: constant arrays, kernel calls with arena offsets, the plan.

Frozen results of lowering (lowering.py); emit_c.py turns a Program into C without deciding anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ConstArray:
    """One `static const` array on flash. kind: "weights", "tables", "biases", "requant" (multipliers, shifts)."""

    name: str
    ctype: str  # "uint8_t", "int8_t", "int32_t"
    values: np.ndarray
    kind: str

    @property
    def nbytes(self) -> int:
        return int(self.values.size * np.dtype(self.values.dtype).itemsize)


@dataclass(frozen=True)
class Step:
    """One kernel call: `kernel(&params, inputs..., output)` with `params` a static const struct.

    initializer: the C99 designated initializer of the params struct (it refers to ConstArray names);
    inputs / outputs: buffer names (their offsets come from the memory plan); what: the ops it runs, for a comment.
    """

    name: str
    kernel: str
    params_type: str
    initializer: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    what: str
    extra: tuple[tuple[str, str, str], ...] = ()  # (ctype, name, initializer) of helper structs, emitted first


@dataclass(frozen=True)
class PackedTensor:
    """How one weight tensor landed on flash: bits per index (8 and no table: plain int8) and bytes used."""

    tensor: int
    name: str
    op: str
    bits: int
    per_channel: bool
    weights: int
    index_bytes: int
    table_bytes: int


@dataclass(frozen=True)
class Buffer:
    name: str
    size: int
    dtype: str  # "int8" or "float32"
    offset: int


@dataclass(frozen=True, eq=False)
class Program:
    """A model lowered to straight-line kernel calls over one arena."""

    consts: tuple[ConstArray, ...]
    steps: tuple[Step, ...]
    buffers: tuple[Buffer, ...]
    input: Buffer
    output: Buffer
    arena_bytes: int
    arena_lower_bound: int
    packed: tuple[PackedTensor, ...]
    op_names: tuple[str, ...]

    def flash_parts(self) -> dict[str, int]:
        parts: dict[str, int] = {}
        for c in self.consts:
            parts[c.kind] = parts.get(c.kind, 0) + c.nbytes
        return parts
