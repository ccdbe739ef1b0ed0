"""The TFLM firmware's tensor arena, computed in this one place: the arena TFLM's host interpreter measured,
plus a margin (the board's 32-bit pointers and kernel scratch differ from the host's), 16-byte aligned.

Decoded LUT weights get no margin: their size is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgeclust.align import align
from edgeclust.errors import CodegenError

ARENA_MARGIN = 0.25


@dataclass(frozen=True)
class TflmArena:
    """measured: what TFLM on the host needed (decoded weights included); decoded: the part DECODE writes;
    reserved: what the firmware declares (measured without decoded, plus the margin, plus decoded)."""

    measured: int
    decoded: int
    margin: float
    reserved: int

    @property
    def plain(self) -> int:
        """The measured arena without the decoded weights."""
        return max(self.measured - self.decoded, 0)


def tflm_arena(measured: int, *, decoded: int = 0, margin: float = ARENA_MARGIN) -> TflmArena:
    """The arena the firmware reserves for a model whose host run needed `measured` bytes."""
    if not isinstance(measured, int) or isinstance(measured, bool) or measured < 0:
        raise CodegenError(f"`arena_bytes` must be an integer >= 0. Received: {measured!r}")
    if not isinstance(margin, (int, float)) or not 0 <= margin <= 10:
        raise CodegenError(f"`arena_margin` must be a number between 0 and 10. Received: {margin!r}")
    if not isinstance(decoded, int) or not 0 <= decoded <= measured:
        raise CodegenError(f"`decoded_bytes` must be an integer between 0 and arena_bytes. Received: {decoded!r}")
    plain = measured - decoded
    reserved = align(math.ceil(plain * (1 + margin))) + align(decoded)
    return TflmArena(measured=measured, decoded=decoded, margin=float(margin), reserved=reserved)
