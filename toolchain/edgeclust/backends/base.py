"""The seam between the pipeline and what runs on the board: every backend implements `Backend`.

lower: .tflite bytes + weight layouts -> Lowered (frozen: interface, ops, memory, what lands on flash);
run_host: the backend's host oracle (parity and the self-test's expected outputs);
render: the project's files as {relative path: bytes}; price: what the board pays (flash, RAM) for those very
files (rendered once; a backend that can link them reads the linked size).
The pipeline writes the files (once, atomically); backends never touch the disk outside a temp folder.
TensorSpec and ModelInterface are defined once, in tflite/parity.py (the interpreters read them too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edgeclust.errors import BudgetError
from edgeclust.lower.weights import WeightLayout
from edgeclust.tflite.parity import ModelInterface, TensorSpec

__all__ = ["Backend", "Cost", "FlashItem", "Lowered", "ModelInterface", "SelfTestCase", "TensorSpec"]


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

    arena_bytes: the tensor arena the firmware reserves, decided once by lower() (planned exactly, or for TFLM
    measured on the host plus its margin), which price() and render() both use as it is;
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
    summary: Mapping[str, Any] = field(default_factory=dict)  # backend facts for report.json (JSON values)

    @property
    def flash_bytes(self) -> int:
        return sum(item.bytes for item in self.flash)


@dataclass(frozen=True)
class Cost:
    """What the board pays: flash and RAM used against its sizes, with the parts that add up to them
    (named for a reader: "model", "TFLM runtime", "arena", "stack", ...)."""

    board_id: str
    flash_used: int
    flash_total: int
    ram_used: int
    ram_total: int
    flash_parts: Mapping[str, int] = field(default_factory=dict)
    ram_parts: Mapping[str, int] = field(default_factory=dict)
    measured: bool = False  # True when read from a real link (arm-none-eabi-size), False when from a table
    flash_advice: str = ""  # what shrinks this backend's flash (options that re-cluster a Keras model)
    ram_advice: str = ""  # what shrinks its RAM
    board_name: str = ""

    @property
    def flash_fits(self) -> bool:
        return self.flash_used <= self.flash_total

    @property
    def ram_fits(self) -> bool:
        return self.ram_used <= self.ram_total

    @property
    def fits(self) -> bool:
        return self.flash_fits and self.ram_fits

    def line(self) -> str:
        """One line: flash and RAM used of the board's, with the parts, and whether it fits."""
        return f"{self.board_id}: {self._flash_text()}; {self._ram_text()}: {'fits' if self.fits else 'DOES NOT FIT'}"

    def check(self, *, can_recluster: bool = True) -> None:
        """Raise BudgetError with the numbers and what to do, if the model does not fit. The advice names only
        what shrinks the resource that is over; options that re-cluster are left out for a .tflite input
        (`can_recluster=False`), where edgeclust clusters nothing."""
        if self.fits:
            return
        over, tips = [], []
        if not self.flash_fits:
            over.append(f"{self._flash_text()}, {self.flash_used - self.flash_total:,} bytes too many")
            tips.append(self.flash_advice if can_recluster else "")
        if not self.ram_fits:
            over.append(f"{self._ram_text()}, {self.ram_used - self.ram_total:,} bytes too many")
            tips.append(self.ram_advice)
        advice = "".join(f"{tip}; " for tip in dict.fromkeys(tips) if tip)
        name = f" ({self.board_name})" if self.board_name else ""
        raise BudgetError(
            f"the model does not fit {self.board_id}{name}: " + "; ".join(over) + f". Options: {advice}"
            "another board (see `edgeclust boards`); or --allow-over-budget to generate the project anyway"
        )

    def _flash_text(self) -> str:
        parts = _parts(self.flash_used, self.flash_total, self.flash_parts)
        return f"flash {self.flash_used:,} of {self.flash_total:,} bytes ({parts})"

    def _ram_text(self) -> str:
        parts = _parts(self.ram_used, self.ram_total, self.ram_parts)
        return f"RAM {self.ram_used:,} of {self.ram_total:,} bytes ({parts})"


def _parts(used: int, total: int, parts: Mapping[str, int]) -> str:
    """ "62%: model 100,000 + TFLM runtime 62,000"."""
    percent = f"{100 * used / total:.0f}%" if total else "n/a"
    return percent + (": " + " + ".join(f"{name} {size:,}" for name, size in parts.items()) if parts else "")


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

    def render(self, lowered: Lowered, board, cases: Sequence[SelfTestCase]) -> dict[str, bytes]: ...

    def price(self, lowered: Lowered, board, files: Mapping[str, bytes] | None = None) -> Cost:
        """What the board pays for `files`, the project render() gave for `board` (None: the backend prices the
        model without a rendered project, e.g. with one blank self-test case)."""
        ...
