"""The lowered model: typed step records (records.py) over buffers planned in one arena.

Frozen results of lowering; emit_c.py turns a Program into C without deciding anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeclust.backends.native.records import FlashArray, PackedWeights, Step


@dataclass(frozen=True)
class Buffer:
    """One activation tensor's place in the arena; name says which step writes it (`conv_2d_0_output`)."""

    name: str
    size: int
    dtype: str  # "int8" or "float32"
    offset: int
    tensor: int = -1  # its index in the model
    tensor_name: str = ""


@dataclass(frozen=True)
class Edge:
    """The model's input or output as the application sees it: shape, dtype and quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None
    zero_point: int | None


@dataclass(frozen=True, eq=False)
class Program:
    """A model lowered to straight-line kernel calls over one arena."""

    steps: tuple[Step, ...]
    buffers: tuple[Buffer, ...]
    input: Buffer
    output: Buffer
    arena_bytes: int
    arena_lower_bound: int
    op_names: tuple[str, ...]
    model_input: Edge
    model_output: Edge
    in_place: tuple = ()  # inplace.InPlaceChoice per convolution the plan runs in place
    # (step name, its scratch buffer, one row's bytes) for each kernel that uses scratch (plan.scratch_row_bytes)
    scratch: tuple[tuple[str, Buffer, int], ...] = ()

    @property
    def consts(self) -> tuple[FlashArray, ...]:
        """Every flash array the steps' params point to, in step order."""
        return tuple(array for step in self.steps for array in step.arrays())

    @property
    def packed(self) -> tuple[PackedWeights, ...]:
        """How each weight tensor landed on flash, in step order."""
        return tuple(p for step in self.steps for p in step.packed())

    def flash_parts(self) -> dict[str, int]:
        parts: dict[str, int] = {}
        for c in self.consts:
            parts[c.kind] = parts.get(c.kind, 0) + c.nbytes
        return parts
