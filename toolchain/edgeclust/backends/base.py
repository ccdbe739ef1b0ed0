"""The seam between the pipeline and what runs on the board: every backend implements `Backend`.

lower: .tflite bytes + weight layouts -> Lowered (frozen: interface, ops, memory, what lands on flash);
run_host: the backend's host oracle (parity and the self-test's expected outputs);
price: what the board pays (flash, RAM); render: the project's files as {relative path: bytes}.
The pipeline writes the files (once, atomically); backends never touch the disk outside a temp folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from edgeclust.lower.weights import WeightLayout


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: shape with the batch dimension, numpy dtype name, quantization (or None)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None and np.dtype(self.dtype).kind in "iu"


@dataclass(frozen=True)
class ModelInterface:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True, eq=False)
class SelfTestCase:
    """One boot self-test case, in the model's input and output dtypes (e.g. int8)."""

    input: np.ndarray
    expected_output: np.ndarray


@dataclass(frozen=True)
class FlashItem:
    """One thing that lands on flash, in bytes: "model", "weights", "tables", "biases", "code", ..."""

    name: str
    bytes: int


@dataclass(frozen=True, eq=False)
class Lowered:
    """A model lowered for one backend: everything price and render need, decided once.

    arena_bytes: the activation arena the backend needs (measured or planned, no margin);
    arena_lower_bound: the largest sum of buffers alive at one step (0 when not computed);
    flash: what the model puts on flash besides the runtime's code; packed: the layouts the backend used;
    details: backend-private data (TFLM's compressed model, native's program), read only by that backend.
    """

    backend: str
    model: bytes  # the .tflite it was lowered from (for TFLM: the one the firmware embeds)
    interface: ModelInterface
    op_names: tuple[str, ...]
    arena_bytes: int
    flash: tuple[FlashItem, ...]
    packed: tuple[WeightLayout, ...] = ()
    arena_lower_bound: int = 0
    notes: tuple[str, ...] = ()  # one line each, shown to the user (what was skipped and why)
    details: Any = None

    @property
    def flash_bytes(self) -> int:
        return sum(item.bytes for item in self.flash)


@dataclass(frozen=True)
class Cost:
    """What the board pays: flash and RAM used against its sizes, with the parts that add up to them."""

    board_id: str
    flash_used: int
    flash_total: int
    ram_used: int
    ram_total: int
    flash_parts: Mapping[str, int] = field(default_factory=dict)
    ram_parts: Mapping[str, int] = field(default_factory=dict)
    measured: bool = False  # True when read from a real link (arm-none-eabi-size), False when from a table

    @property
    def flash_fits(self) -> bool:
        return self.flash_used <= self.flash_total

    @property
    def ram_fits(self) -> bool:
        return self.ram_used <= self.ram_total

    @property
    def fits(self) -> bool:
        return self.flash_fits and self.ram_fits


@runtime_checkable
class Backend(Protocol):
    """What a backend does; `name` is what `--backend` takes."""

    name: str

    def unsupported(self, tflite: bytes) -> str | None:
        """Why this backend cannot run the model (one line naming the op or option), or None."""
        ...

    def lower(self, tflite: bytes, layouts: Sequence[WeightLayout]) -> Lowered: ...

    def run_host(self, lowered: Lowered, x: np.ndarray) -> np.ndarray:
        """Outputs for inputs `x` already in the model's input dtype (batch first), as the board computes them."""
        ...

    def price(self, lowered: Lowered, board) -> Cost: ...

    def render(self, lowered: Lowered, board, cases: Sequence[SelfTestCase]) -> dict[str, bytes]: ...
