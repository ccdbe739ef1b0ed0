"""A static memory plan: activation buffers placed by lifetime in one arena, computed at generation time.

Buffers that are never alive at the same op step may share bytes. `plan` tries several placement orders with
first-fit and best-fit (and, for small graphs, an exact search) and keeps the smallest arena, so it is never
worse than TFLM's greedy planner, which `greedy_tflm` reproduces. numpy/stdlib only.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from edgeclust.align import TENSOR_ALIGNMENT, align
from edgeclust.errors import CodegenError

EXACT_SEARCH_MAX_UNITS = 8  # graphs with at most this many placement units get the exact search
EXACT_SEARCH_MAX_NODES = 20_000  # a bound on the exact search, so planning time stays small and deterministic


@dataclass(frozen=True)
class BufferUse:
    """A buffer of `size` bytes alive from op step `first` to `last` inclusive.

    alias_of: the name of a buffer whose memory this one occupies (an in-place element-wise op's output, a
    reshape); an alias chain is placed as one unit spanning its members, alive over the union.
    alias_offset: where this buffer starts relative to alias_of's start (a multiple of the alignment; negative
    below it): a convolution writing over its input from `delta` bytes below it (inplace.ShiftedConvStep).
    """

    name: str
    size: int
    first: int
    last: int
    alias_of: str | None = None
    alias_offset: int = 0


@dataclass(frozen=True, eq=False)
class MemoryPlan:
    """Each buffer's byte offset in the arena, the arena's size and the lower bound no placement can beat."""

    offsets: Mapping[str, int]
    arena_bytes: int
    lower_bound: int
    alignment: int = TENSOR_ALIGNMENT
    strategy: str = ""  # which placement found this arena (for the report)


@dataclass(frozen=True)
class _Unit:
    """One placement unit: an alias group, with its members' names, aligned size and joint lifetime."""

    names: tuple[str, ...]
    size: int
    first: int
    last: int
    # (start within the unit, aligned size, first, last) per member of an alias group of several: the group is
    # placed by its parts, so a buffer may sit in a part of the group that is dead at its steps
    parts: tuple[tuple[int, int, int, int], ...] = ()


def _parts(unit: _Unit) -> tuple[tuple[int, int, int, int], ...]:
    """The unit's parts, in the order of its names: a lone buffer is one part, the whole unit."""
    return unit.parts or ((0, unit.size, unit.first, unit.last),)


def _alive_together(a: _Unit, b: _Unit) -> bool:
    return a.first <= b.last and b.first <= a.last


def lower_bound(buffers: Iterable[BufferUse], *, alignment: int = TENSOR_ALIGNMENT) -> int:
    """The largest sum of aligned sizes alive at one op step, each alias group counted once: no arena is smaller."""
    return _units_lower_bound(_units(list(buffers), alignment))


def greedy_tflm(buffers: Iterable[BufferUse], *, alignment: int = TENSOR_ALIGNMENT) -> MemoryPlan:
    """TFLM's GreedyMemoryPlanner on the same buffers: sizes aligned up, placed largest first at the first gap
    among buffers alive at the same time (alias groups as one). TFLM fills its sort array from the tail and
    bubble-sorts it stably, so equal sizes go last-added first."""
    buffers = list(buffers)
    units = _units(buffers, alignment)
    offsets = _place(units, _tflm_order(units), best_fit=False)
    return _make_plan(buffers, units, offsets, alignment, "tflm-greedy")


def plan(buffers: Iterable[BufferUse], *, alignment: int = TENSOR_ALIGNMENT) -> MemoryPlan:
    """The smallest arena found over several placement orders, first-fit and best-fit, and an exact search for
    small graphs. TFLM's greedy order is one of the candidates, so the arena is never above greedy_tflm's."""
    buffers = list(buffers)
    units = _units(buffers, alignment)
    bound = _units_lower_bound(units)
    best_offsets: list[int] = []
    best_arena = -1
    best_name = ""
    for name, key in _ORDERS:
        order = _tflm_order(units) if key is None else _stable_order(units, lambda u, key=key: key(u, units))
        for best_fit in (False, True):
            offsets = _place(units, order, best_fit=best_fit)
            arena = _arena(units, offsets)
            if best_arena < 0 or arena < best_arena:
                best_offsets, best_arena = offsets, arena
                best_name = f"{name}/{'best' if best_fit else 'first'}-fit"
            if best_arena == bound:
                return _make_plan(buffers, units, best_offsets, alignment, best_name)
    if len(units) <= EXACT_SEARCH_MAX_UNITS:
        found = _exact(units, best_arena, bound)
        if found is not None:
            best_offsets, best_name = found, "exact"
    return _make_plan(buffers, units, best_offsets, alignment, best_name)


def check_plan(memory_plan: MemoryPlan, buffers: Iterable[BufferUse]) -> None:
    """Raise CodegenError naming the buffers if two alive at one step overlap, an alias does not share its
    buffer's offset, an offset is misaligned, or a buffer runs past the arena."""
    buffers = list(buffers)
    _validate(buffers)
    offsets = memory_plan.offsets
    for b in buffers:
        if b.name not in offsets:
            raise CodegenError(f"The memory plan has no offset for buffer {b.name!r}; re-run the planner.")
        offset = offsets[b.name]
        if offset < 0 or offset % memory_plan.alignment:
            raise CodegenError(
                f"Buffer {b.name!r} is at offset {offset}, not a non-negative multiple of "
                f"{memory_plan.alignment}; re-run the planner."
            )
        if offset + b.size > memory_plan.arena_bytes:
            raise CodegenError(
                f"Buffer {b.name!r} ({b.size} B at offset {offset}) runs past the arena of "
                f"{memory_plan.arena_bytes} B; re-run the planner."
            )
        if b.alias_of is not None and offset != offsets.get(b.alias_of, 0) + b.alias_offset:
            raise CodegenError(
                f"Buffer {b.name!r} aliases {b.alias_of!r} but sits at offset {offset}, not "
                f"{offsets.get(b.alias_of, 0) + b.alias_offset}; re-run the planner."
            )
    root = _roots(buffers)
    by_first = sorted(buffers, key=lambda b: (b.first, b.last))
    for i, a in enumerate(by_first):
        for b in by_first[i + 1 :]:
            if b.first > a.last:
                break
            if root[a.name] == root[b.name] or a.size == 0 or b.size == 0:
                continue
            a_start, b_start = offsets[a.name], offsets[b.name]
            if a_start < b_start + b.size and b_start < a_start + a.size:
                raise CodegenError(
                    f"Buffers {a.name!r} (steps {a.first}..{a.last}, bytes {a_start}..{a_start + a.size - 1}) and "
                    f"{b.name!r} (steps {b.first}..{b.last}, bytes {b_start}..{b_start + b.size - 1}) overlap while "
                    "both are alive; re-run the planner."
                )


# Placement orders: each a key over (unit, all units); sorted ascending and stable, so ties keep input order.
def _conflict_bytes(unit: _Unit, units: Sequence[_Unit]) -> int:
    return sum(o.size for o in units if _alive_together(unit, o))


_ORDERS: tuple[tuple[str, Callable[[_Unit, Sequence[_Unit]], object] | None], ...] = (
    (
        "tflm",
        None,
    ),  # TFLM's own order (ties last-added first): greedy_tflm's arena is the first candidate
    ("size", lambda u, _: -u.size),
    ("size-then-first", lambda u, _: (-u.size, u.first)),
    ("lifetime", lambda u, _: (-(u.last - u.first), -u.size)),
    ("area", lambda u, _: (-u.size * (u.last - u.first + 1), -u.size)),
    ("first-use", lambda u, _: (u.first, -u.size)),
    ("last-use", lambda u, _: (-u.last, -u.size)),
    ("conflict", lambda u, units: (-_conflict_bytes(u, units), -u.size)),
)


def _tflm_order(units: Sequence[_Unit]) -> list[int]:
    """TFLM's placement order: largest first; its sort array is filled from the tail and bubble-sorted stably."""
    return sorted(range(len(units)), key=lambda i: (-units[i].size, -i))


def _stable_order(units: Sequence[_Unit], key: Callable[[_Unit], object]) -> list[int]:
    return sorted(range(len(units)), key=lambda i: key(units[i]))


def _place(units: Sequence[_Unit], order: Sequence[int], *, best_fit: bool) -> list[int]:
    """Place units in `order`, each at the first (or the smallest fitting) gap among placed units alive at the
    same time; placed units are kept sorted by offset, ties in placement order, as TFLM's list is."""
    offsets = [0] * len(units)
    placed: list[tuple[int, int, int]] = []  # (offset, placement sequence, unit index)
    for seq, i in enumerate(order):
        offsets[i] = _fit(units, placed, units[i], best_fit=best_fit)
        bisect.insort(placed, (offsets[i], seq, i))
    return offsets


def _fit(
    units: Sequence[_Unit],
    placed: Sequence[tuple[int, int, int]],
    want: _Unit,
    *,
    best_fit: bool,
) -> int:
    """The offset for `want` among `placed` (sorted by offset): TFLM's gap scan, or the tightest gap it finds;
    the lowest offset where no part collides where alias groups are placed by their parts."""
    if want.parts or any(units[j].parts for _, _, j in placed):
        return _fit_parts(units, placed, want)
    candidate = 0
    best: tuple[int, int] | None = None  # (gap, offset)
    for offset, _, j in placed:
        other = units[j]
        if not _alive_together(want, other):
            continue
        gap = offset - candidate
        if gap >= want.size:
            if not best_fit:
                return candidate
            if best is None or gap < best[0]:
                best = (gap, candidate)
        candidate = max(candidate, offset + other.size)
    return best[1] if best is not None else candidate


def _fit_parts(units: Sequence[_Unit], placed: Sequence[tuple[int, int, int]], want: _Unit) -> int:
    """The lowest offset at which no part of `want` meets a part of a placed unit alive at the same step: 0 or
    where one of its parts starts right after a part it meets (the lowest fit is always one of those)."""
    blocks = []  # (start, end) of a placed part, (start, size) of the part of `want` it meets
    candidates = {0}
    for offset, _, j in placed:
        other = units[j]
        if not _alive_together(want, other):
            continue
        for q_start, q_size, q_first, q_last in _parts(other):
            for p_start, p_size, p_first, p_last in _parts(want):
                if q_first <= p_last and p_first <= q_last and q_size and p_size:
                    lo, hi = offset + q_start, offset + q_start + q_size
                    blocks.append((lo, hi, p_start, p_size))
                    if hi - p_start >= 0:
                        candidates.add(hi - p_start)
    for c in sorted(candidates):
        if all(not (c + p_start < hi and lo < c + p_start + p_size) for lo, hi, p_start, p_size in blocks):
            return c
    raise AssertionError("unreachable: the highest candidate clears every part")


def _arena(units: Sequence[_Unit], offsets: Sequence[int]) -> int:
    return max((o + u.size for u, o in zip(units, offsets)), default=0)


def _exact(units: Sequence[_Unit], incumbent: int, bound: int) -> list[int] | None:
    """The smallest arena over every placement order with lowest-fit placement, which contains an optimum
    (any optimal layout, compacted downwards, is what lowest-fit gives in order of offset). Branch and bound,
    at most EXACT_SEARCH_MAX_NODES nodes; None when nothing beats `incumbent`."""
    best_arena = incumbent
    best: list[int] | None = None
    nodes = 0
    offsets = [0] * len(units)

    def search(placed: list[tuple[int, int, int]], remaining: list[int], arena: int) -> bool:
        nonlocal best_arena, best, nodes
        if not remaining:
            best_arena, best = arena, list(offsets)
            return best_arena == bound
        tried: set[tuple] = set()
        for k, i in enumerate(remaining):
            unit = units[i]
            key = (unit.size, unit.first, unit.last, unit.parts)
            if key in tried:
                continue  # an identical unit at this level gives the same layouts
            tried.add(key)
            nodes += 1
            if nodes > EXACT_SEARCH_MAX_NODES:
                return True
            offsets[i] = _fit(units, placed, unit, best_fit=False)
            new_arena = max(arena, offsets[i] + unit.size)
            if new_arena >= best_arena:
                continue
            entry = (offsets[i], len(placed), i)
            bisect.insort(placed, entry)
            done = search(placed, remaining[:k] + remaining[k + 1 :], new_arena)
            placed.remove(entry)
            if done:
                return True
        return False

    search([], list(range(len(units))), 0)
    return best


def _units_lower_bound(units: Sequence[_Unit]) -> int:
    events: dict[int, int] = {}
    for u in units:
        parts = _parts(u)
        before = 0  # the unit's bytes alive before each step it changes at: the span of its parts alive there
        for step in sorted({p[2] for p in parts} | {p[3] + 1 for p in parts}):
            alive = [p for p in parts if p[2] <= step <= p[3]]
            span = max(p[0] + p[1] for p in alive) - min(p[0] for p in alive) if alive else 0
            events[step] = events.get(step, 0) + span - before
            before = span
    alive = peak = 0
    for step in sorted(events):
        alive += events[step]
        peak = max(peak, alive)
    return peak


def _make_plan(
    buffers: Sequence[BufferUse],
    units: Sequence[_Unit],
    unit_offsets: Sequence[int],
    alignment: int,
    strategy: str,
) -> MemoryPlan:
    by_name = {
        name: offset + start
        for unit, offset in zip(units, unit_offsets)
        for name, (start, *_) in zip(unit.names, _parts(unit))
    }
    offsets = MappingProxyType({b.name: by_name[b.name] for b in buffers})
    return MemoryPlan(
        offsets=offsets,
        arena_bytes=_arena(units, unit_offsets),
        lower_bound=_units_lower_bound(units),
        alignment=alignment,
        strategy=strategy,
    )


def _units(buffers: Sequence[BufferUse], alignment: int) -> list[_Unit]:
    """Alias groups as placement units, in order of each group's first buffer in `buffers`."""
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment < 1:
        raise CodegenError(f"Memory plan alignment must be a positive integer. Received: {alignment!r}")
    _validate(buffers)
    root = _roots(buffers)
    position = _positions(buffers)
    groups: dict[str, list[BufferUse]] = {}
    for b in buffers:
        groups.setdefault(root[b.name], []).append(b)
    units = []
    for members in groups.values():
        low = min(position[b.name] for b in members)
        starts = tuple(position[b.name] - low for b in members)
        if any(start % alignment for start in starts):
            raise CodegenError(
                f"Buffers {[b.name for b in members]!r} alias each other at offsets {starts!r}, not multiples of "
                f"{alignment}; this is a bug in the lowering, please report it."
            )
        units.append(
            _Unit(
                names=tuple(b.name for b in members),
                size=align(max(start + b.size for start, b in zip(starts, members)), alignment),
                first=min(b.first for b in members),
                last=max(b.last for b in members),
                parts=tuple((start, align(b.size, alignment), b.first, b.last) for start, b in zip(starts, members))
                if len(members) > 1
                else (),
            )
        )
    return units


def _positions(buffers: Sequence[BufferUse]) -> dict[str, int]:
    """Each buffer's start relative to its alias root's (the sum of alias_offset along the chain)."""
    parent = {b.name: (b.alias_of, b.alias_offset) for b in buffers}
    position: dict[str, int] = {}
    for name in parent:
        chain, at = [], name
        while at not in position and parent[at][0] is not None:
            chain.append(at)
            at = parent[at][0]  # type: ignore[assignment]
        base = position.setdefault(at, 0)
        for member in reversed(chain):
            base += parent[member][1]
            position[member] = base
    return position


def _roots(buffers: Sequence[BufferUse]) -> dict[str, str]:
    """Each buffer's alias root: follow alias_of until a buffer that aliases nothing."""
    parent = {b.name: b.alias_of for b in buffers}
    root: dict[str, str] = {}
    for name in parent:
        chain = [name]
        while parent[chain[-1]] is not None and chain[-1] not in root:
            chain.append(parent[chain[-1]])  # type: ignore[arg-type]
        top = root.get(chain[-1], chain[-1])
        for member in chain:
            root[member] = top
    return root


def _validate(buffers: Sequence[BufferUse]) -> None:
    names: set[str] = set()
    for b in buffers:
        if not isinstance(b, BufferUse):
            raise CodegenError(
                f"The memory planner takes BufferUse records; got {type(b).__name__}. "
                "This is a bug in the lowering; please report it."
            )
        if b.name in names:
            raise CodegenError(f"Buffer {b.name!r} appears twice in the memory plan; give each buffer one name.")
        names.add(b.name)
        for field in ("size", "first", "last"):
            value = getattr(b, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise CodegenError(f"Buffer {b.name!r} has {field}={value!r}; it must be a non-negative integer.")
        if b.first > b.last:
            raise CodegenError(
                f"Buffer {b.name!r} is first used at step {b.first}, after its last use at step "
                f"{b.last}; a lifetime must run forwards."
            )
    for b in buffers:
        if b.alias_of is not None and b.alias_of not in names:
            raise CodegenError(
                f"Buffer {b.name!r} aliases {b.alias_of!r}, which is not in the memory plan; "
                "add that buffer or drop the alias."
            )
    parent = {b.name: b.alias_of for b in buffers}
    for b in buffers:
        seen = {b.name}
        at = b.alias_of
        while at is not None:
            if at in seen:
                raise CodegenError(
                    f"Buffer {b.name!r} is part of an alias cycle; an alias chain must end in a "
                    "buffer that aliases nothing."
                )
            seen.add(at)
            at = parent[at]


__all__ = [
    "BufferUse",
    "MemoryPlan",
    "check_plan",
    "greedy_tflm",
    "lower_bound",
    "plan",
]
