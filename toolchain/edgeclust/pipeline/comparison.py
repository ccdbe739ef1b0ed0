"""What the board pays for the same model under every backend: the demo's headline, bytes saved on the device.

From a build's own results: the backend it used keeps its price; every other registered backend lowers the
deployed .tflite from the same weight layouts, renders its project with the same self-test cases and prices
those files, so TFLM's plain int8 (weight sharing saves nothing on its flash) stands beside native's packed
indices, on one board.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgeclust.backends.base import Cost, SelfTestCase
from edgeclust.codegen.board import BoardSpec
from edgeclust.errors import EdgeclustError
from edgeclust.lower.weights import WeightLayout


@dataclass(frozen=True)
class BackendPrice:
    """One backend's flash and RAM for the model on the board (None with `why` when it cannot build it)."""

    backend: str
    flash_used: int | None
    ram_used: int | None
    fits: bool | None
    why: str = ""


def price_every_backend(
    tflite: bytes,
    board: BoardSpec,
    layouts: Sequence[WeightLayout],
    cases: Sequence[SelfTestCase],
    known: dict[str, Cost] | None = None,
) -> tuple[BackendPrice, ...]:
    """`tflite` on `board` with each registered backend (default settings, no LUT): the cost in `known` for a
    backend already priced (the build's own), else lowered, rendered with `cases` and priced from those files."""
    from edgeclust.backends import BACKENDS, get_backend

    known = known or {}
    prices = []
    for name in BACKENDS:
        cost = known.get(name)
        if cost is None:
            backend = get_backend(name)
            why = backend.unsupported(tflite)
            if why is not None:
                prices.append(BackendPrice(name, None, None, None, why))
                continue
            try:
                lowered = backend.lower(tflite, layouts)
                cost = backend.price(lowered, board, backend.render(lowered, board, cases))
            except EdgeclustError as exc:
                prices.append(BackendPrice(name, None, None, None, str(exc)))
                continue
        prices.append(BackendPrice(name, cost.flash_used, cost.ram_used, cost.fits))
    return tuple(prices)


def price_build_on_every_backend(result) -> tuple[BackendPrice, ...]:
    """Every backend's price for what a build (pipeline.build.BuildResult) deployed, on its board: its own
    backend's from its budget, the others' from the same model, layouts and self-test cases."""
    known = {result.lowered.backend.name: result.priced.cost}
    return price_every_backend(result.deployed, result.priced.board, result.layouts, result.rendered.cases, known)


def comparison_lines(prices: tuple[BackendPrice, ...], board: BoardSpec) -> list[str]:
    """The table the demo prints, and one line of what the smallest build saves against the largest."""
    lines = [f"What {board.id} pays for this model, per backend (flash and RAM in bytes)"]
    width = max(len(p.backend) for p in prices)
    for p in prices:
        if p.flash_used is None:
            lines.append(f"  {p.backend:<{width}}  cannot build it: {p.why}")
        else:
            fits = "fits" if p.fits else "does not fit"
            lines.append(f"  {p.backend:<{width}}  flash {p.flash_used:>9,}  RAM {p.ram_used:>9,}  ({fits})")
    built = [p for p in prices if p.flash_used is not None]
    if len(built) >= 2:
        small = min(built, key=lambda p: p.flash_used)
        large = max(built, key=lambda p: p.flash_used)
        if small is not large:
            lines.append(
                f"  {small.backend} saves {large.flash_used - small.flash_used:,} bytes of flash "
                f"({large.flash_used / small.flash_used:.1f}x less) and {large.ram_used - small.ram_used:,} bytes "
                f"of RAM against {large.backend}"
            )
    return lines
