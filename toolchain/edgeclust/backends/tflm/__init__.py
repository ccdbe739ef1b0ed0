"""The TFLite Micro backend: the .tflite runs in TFLM's interpreter on the board.

lower: optional LUT compression driven by the weight layouts (lut.py), the arena measured in TFLM's host
interpreter plus its margin (arena.py), the ops checked against the resolver table (resolver.py);
price: the measured runtime size table (price.py); render: the project's files (render.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgeclust.backends.base import Cost, FlashItem, Lowered, SelfTestCase
from edgeclust.backends.tflm.arena import ARENA_MARGIN, TflmArena, tflm_arena
from edgeclust.backends.tflm.lut import LutResult, lut_compress
from edgeclust.codegen.board import BoardSpec
from edgeclust.lower.weights import WeightLayout

COMPRESS_CHOICES = ("none", "lut")


@dataclass(frozen=True, eq=False)
class TflmDetails:
    """What only this backend reads back from a Lowered: the arena's parts and the LUT compression (or None)."""

    arena: TflmArena
    lut: LutResult | None


class TflmBackend:
    """TFLM behind the Backend protocol; `compress="lut"` stores clustered weights as indices (TFLM DECODE)."""

    name = "tflm"

    def __init__(self, *, compress: str = "none", arena_margin: float = ARENA_MARGIN, templates_dir=None):
        from edgeclust.errors import ConfigError

        if compress not in COMPRESS_CHOICES:
            raise ConfigError(f"`compress` must be one of {', '.join(COMPRESS_CHOICES)}. Received: {compress!r}")
        self.compress = compress
        self.arena_margin = arena_margin
        self.templates_dir = templates_dir

    def unsupported(self, tflite: bytes) -> str | None:
        """The first op TFLM's resolver table lacks, as one line, or None."""
        from edgeclust.backends.tflm.resolver import OPS
        from edgeclust.tflite.flatbuffer import read_model

        missing = sorted(set(read_model(tflite).op_names) - set(OPS))
        return f"TFLM's op resolver table has no {missing[0]}" if missing else None

    def lower(self, tflite: bytes, layouts: Sequence[WeightLayout]) -> Lowered:
        """The model TFLM will run (LUT-compressed when asked), its interface, ops and arena."""
        from edgeclust.backends.tflm.resolver import resolver_calls
        from edgeclust.tflite import flatbuffer, parity

        tflite = bytes(tflite)
        lut = lut_compress(tflite, layouts) if self.compress == "lut" else None
        model = lut.model if lut is not None else tflite
        op_names = tuple(sorted(set(flatbuffer.read_model(model).op_names)))
        resolver_calls(op_names, compressed=False)  # an op TFLM cannot resolve fails here, by name
        arena = self._arena(tflite, model)
        return Lowered(
            backend=self.name,
            model=model,
            interface=parity.model_interface(model),
            op_names=op_names,
            arena_bytes=arena.reserved,
            flash=(FlashItem("model", len(model)),),
            packed=_packed(layouts, lut),
            notes=_notes(tflite, model, lut, arena),
            details=TflmDetails(arena, lut),
            summary=_summary(lut, arena),
        )

    def run_host(self, lowered: Lowered, x: np.ndarray) -> np.ndarray:
        """TFLM's host interpreter on the lowered model: the same reference kernels as the board."""
        from edgeclust.tflite import parity

        return parity.run_tflm(lowered.model, x)

    def price(self, lowered: Lowered, board: BoardSpec, files=None) -> Cost:
        """Flash and RAM from the measured runtime size table (price.py); the project's files are not linked
        (that needs a TFLM tree), so `files` is not read."""
        from edgeclust.backends.tflm.price import check_budget, to_cost

        return to_cost(
            check_budget(board, model_bytes=len(lowered.model), op_names=lowered.op_names, arena=lowered.details.arena)
        )

    def render(self, lowered: Lowered, board: BoardSpec, cases: Sequence[SelfTestCase]) -> dict[str, bytes]:
        """The TFLM project's files for `board` (render.py)."""
        from edgeclust import resources
        from edgeclust.backends.tflm.cmsis import cmsis_nn_arena
        from edgeclust.backends.tflm.render import render_files
        from edgeclust.tflite.inspect import DECODE_OP

        return render_files(
            model_data=lowered.model,
            op_names=lowered.op_names,
            board=board,
            interface=lowered.interface,
            self_test=list(cases),
            arena=lowered.details.arena,
            templates_dir=self.templates_dir or resources.templates_dir(),
            compressed=DECODE_OP in lowered.op_names,
            cmsis=cmsis_nn_arena(lowered.model, board.cpu),
        )

    def _arena(self, original: bytes, model: bytes) -> TflmArena:
        """The arena measured in TFLM's host interpreter. DECODE writes decoded weights into the arena, where the
        planner overlaps them with other tensors: what decoding costs is the LUT model's arena minus the
        original's (often less than all decoded tensors together)."""
        from edgeclust.tflite import parity

        measured = parity.tflm_arena_bytes(model)
        if model == original:
            return tflm_arena(measured, margin=self.arena_margin)
        plain = parity.tflm_arena_bytes(original)
        decoded = max(measured - plain, 0)
        return tflm_arena(plain + decoded, decoded=decoded, margin=self.arena_margin)


def _packed(layouts: Sequence[WeightLayout], lut: LutResult | None) -> tuple[WeightLayout, ...]:
    """The layouts of the tensors TFLM stores as indices."""
    if lut is None:
        return ()
    done = {(c.subgraph, c.tensor) for c in lut.compressed_tensors}
    return tuple(layout for layout in layouts if (layout.subgraph, layout.tensor) in done)


def _notes(original: bytes, model: bytes, lut: LutResult | None, arena: TflmArena) -> tuple[str, ...]:
    """What the user should read about this lowering, one line each."""
    notes = []
    if lut is not None:
        bits = sorted({c.index_bits for c in lut.compressed_tensors})
        notes.append(
            f"LUT: {len(lut.compressed_tensors)} tensor(s) compressed"
            + (f" ({'/'.join(map(str, bits))}-bit indices)" if bits else "")
            + f", {len(lut.skipped_tensors)} left as they are; {len(original):,} -> {len(model):,} bytes"
        )
        notes += [f"LUT skipped {s.name}: {s.reason}" for s in lut.skipped_tensors]
        notes.append(
            f"TFLM arena {arena.plain:,} bytes without LUT, {arena.measured:,} with it: decoding costs "
            f"{arena.decoded:,} bytes of RAM (all decoded tensors together: {lut.decoded_bytes:,})"
        )
    notes.append(
        f"tensor arena: {arena.measured:,} bytes measured in TFLM's host interpreter, "
        f"{arena.reserved:,} reserved (+{arena.margin:.0%} margin)"
    )
    return tuple(notes)


def _summary(lut: LutResult | None, arena: TflmArena) -> dict:
    """report.json's backend section: the arena's parts and the LUT compression."""
    summary: dict = {
        "arena": {
            "measured_bytes": arena.measured,
            "decoded_bytes": arena.decoded,
            "margin": arena.margin,
            "reserved_bytes": arena.reserved,
        }
    }
    if lut is not None:
        summary["lut"] = {
            "compressed_tensors": list(lut.compressed_tensors),
            "skipped_tensors": list(lut.skipped_tensors),
            "decoded_bytes": lut.decoded_bytes,  # all decoded tensors together
            "decoding_ram_bytes": arena.decoded,  # measured: arena with LUT minus arena without
        }
    return summary
