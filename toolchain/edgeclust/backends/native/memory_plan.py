"""Offsets for the activation buffers in one arena, by lifetime (until lower/memory.py lands in `lower`).

Same shape as lower.memory: BufferUse (name, size, first/last op step, alias_of), plan() -> MemoryPlan,
lower_bound(). Greedy like TFLM's planner (largest first, lowest offset that no live buffer overlaps).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeclust.errors import CodegenError


@dataclass(frozen=True)
class BufferUse:
    name: str
    size: int
    first: int
    last: int
    alias_of: str | None = None


@dataclass(frozen=True)
class MemoryPlan:
    offsets: dict
    arena_bytes: int
    lower_bound: int


def _align(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def lower_bound(buffers) -> int:
    """The largest sum of sizes of buffers alive at one step (aliases share their target's memory)."""
    owners = [b for b in buffers if b.alias_of is None]
    steps = {s for b in owners for s in (b.first, b.last)}
    return max((sum(b.size for b in owners if b.first <= s <= b.last) for s in steps), default=0)


def plan(buffers, *, alignment: int = 16) -> MemoryPlan:
    owners = [b for b in buffers if b.alias_of is None]
    placed: list[tuple[BufferUse, int]] = []
    offsets: dict[str, int] = {}
    for b in sorted(owners, key=lambda b: (-b.size, b.first, b.name)):
        live = [(o, off) for o, off in placed if not (o.last < b.first or b.last < o.first)]
        offset = 0
        for other, other_offset in sorted(live, key=lambda item: item[1]):
            if offset + b.size <= other_offset:
                break
            offset = max(offset, _align(other_offset + other.size, alignment))
        placed.append((b, offset))
        offsets[b.name] = offset
    for b in buffers:
        if b.alias_of is not None:
            if b.alias_of not in offsets:
                raise CodegenError(f"buffer {b.name} aliases {b.alias_of}, which has no memory")
            offsets[b.name] = offsets[b.alias_of]
    arena = max((offsets[b.name] + b.size for b in owners), default=0)
    return MemoryPlan(offsets, _align(arena, alignment), lower_bound(buffers))
