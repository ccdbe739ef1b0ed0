"""Will the model fit the board with TFLM? Flash = model + TFLM runtime for the ops used; RAM = arena (with its
margin) + decoded LUT weights + stack + heap + the runtime's static data, against the board's sizes.

The runtime sizes come from backends/tflm/runtime_sizes.toml, measured once per CPU profile with
arm-none-eabi-size (see that file and scripts/measure_sizes.py for how).
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgeclust.align import align
from edgeclust.backends.base import Cost
from edgeclust.backends.tflm import resolver
from edgeclust.backends.tflm.arena import TflmArena
from edgeclust.codegen.board import BoardSpec
from edgeclust.errors import CodegenError

SIZES_FILE = Path(__file__).with_name("runtime_sizes.toml")


@dataclass(frozen=True)
class Budget:
    """Bytes used and available on the board, with the parts that add up to them."""

    board_id: str
    board_name: str
    flash_used: int
    flash_total: int
    ram_used: int
    ram_total: int
    fits: bool
    flash_fits: bool
    ram_fits: bool
    # flash parts
    model: int
    runtime: int  # TFLM core + the kernels of the ops used (+ startup code and libc)
    runtime_parts: dict[str, int] = field(default_factory=dict)  # "core" and one entry per op family
    # RAM parts
    arena: int = 0  # the firmware's tensor arena without the decoded weights: measured arena + margin
    decoded: int = 0  # weights TFLM's DECODE writes to RAM (LUT-compressed models)
    stack: int = 0
    heap: int = 0
    runtime_ram: int = 0  # .data + .bss of the runtime, the arena aside
    arena_margin: float = 0.0
    runtime_profile: str = ""
    estimated_families: tuple[str, ...] = ()  # op families the table lacks, priced at its largest entry
    runtime_measured: bool = True  # False: the profile's row is an estimate (runtime_sizes.toml `estimated_from`)


def check_budget(
    board: BoardSpec,
    *,
    model_bytes: int,
    op_names,
    arena: TflmArena,
    stack_bytes: int | None = None,
    sizes_file: str | Path | None = None,
) -> Budget:
    """Price the model on `board`: `arena` is the tensor arena lower() decided (arena.tflm_arena, with its
    decoded LUT weights and margin; the firmware reserves `arena.reserved`); `stack_bytes` defaults to the
    board's."""
    if not isinstance(model_bytes, int) or isinstance(model_bytes, bool) or model_bytes < 0:
        raise CodegenError(f"`model_bytes` must be an integer >= 0. Received: {model_bytes!r}")
    if not isinstance(arena, TflmArena):
        raise CodegenError(f"`arena` must be a TflmArena (backends/tflm/arena.py). Received: {arena!r}")
    stack = board.stack_bytes if stack_bytes is None else int(stack_bytes)
    compressed = arena.decoded > 0 or resolver.DECODE_OP in set(op_names)
    parts, estimated = _runtime_parts(board, op_names, compressed, sizes_file)
    profile = runtime_table(sizes_file)["profiles"][board.runtime_profile]
    decoded = align(arena.decoded)
    runtime = sum(parts.values())
    runtime_ram = int(profile["core_ram"])
    flash_used = model_bytes + runtime
    ram_used = arena.reserved + stack + board.heap_bytes + runtime_ram
    flash_fits = flash_used <= board.flash_bytes
    ram_fits = ram_used <= board.ram_bytes
    return Budget(
        board_id=board.id,
        board_name=board.name,
        flash_used=flash_used,
        flash_total=board.flash_bytes,
        ram_used=ram_used,
        ram_total=board.ram_bytes,
        fits=flash_fits and ram_fits,
        flash_fits=flash_fits,
        ram_fits=ram_fits,
        model=model_bytes,
        runtime=runtime,
        runtime_parts=parts,
        arena=arena.reserved - decoded,
        decoded=decoded,
        stack=stack,
        heap=board.heap_bytes,
        runtime_ram=runtime_ram,
        arena_margin=arena.margin,
        runtime_profile=board.runtime_profile,
        estimated_families=tuple(estimated),
        runtime_measured=bool(profile.get("measured", True)),
    )


def to_cost(budget: Budget) -> Cost:
    """The budget as the backend-neutral Cost the pipeline checks and reports."""
    ram_parts = {"arena": budget.arena}
    if budget.decoded:
        ram_parts["decoded weights"] = budget.decoded
    ram_parts |= {"stack": budget.stack, "heap": budget.heap, "runtime": budget.runtime_ram}
    compressed = "decode" in budget.runtime_parts
    flash_advice = (
        "fewer clusters (smaller LUT indices)"
        if compressed
        else "fewer clusters with --compress lut (weights stored as small indices), or --compress lut alone"
    )
    ram_advice = (
        "--backend native (weights decoded inside its kernels, not into RAM)"
        if compressed
        else "--backend native (an arena planned by lifetime)"
    )
    return Cost(
        board_id=budget.board_id,
        board_name=budget.board_name,
        flash_used=budget.flash_used,
        flash_total=budget.flash_total,
        ram_used=budget.ram_used,
        ram_total=budget.ram_total,
        flash_parts={"model": budget.model, _runtime_label(budget): budget.runtime},
        ram_parts=ram_parts,
        measured=False,
        flash_advice=flash_advice,
        ram_advice=ram_advice,
    )


def budget_line(budget: Budget) -> str:
    """One line: flash and RAM used of the board's, with the parts, and whether it fits."""
    return to_cost(budget).line()


def raise_over_budget(budget: Budget) -> None:
    """Raise BudgetError with the numbers and what to do, if the model does not fit."""
    to_cost(budget).check()


def _runtime_parts(board: BoardSpec, op_names, compressed: bool, sizes_file) -> tuple[dict[str, int], list[str]]:
    """Flash of the TFLM core and of each op family the model pulls in; families the table lacks are priced
    at its largest entry (and listed)."""
    families = resolver.op_families(op_names, compressed=compressed)
    profile = runtime_table(sizes_file)["profiles"].get(board.runtime_profile)
    if profile is None:
        raise CodegenError(
            f"{sizes_file or SIZES_FILE}: no runtime sizes for profile {board.runtime_profile!r} (board {board.id})"
        )
    known = profile["families"]
    fallback = max(known.values()) if known else 0
    parts = {"core": int(profile["core_flash"])}
    estimated = []
    for family in families:
        parts[family] = int(known.get(family, fallback))
        if family not in known:
            estimated.append(family)
    return parts, estimated


def _runtime_label(budget: Budget) -> str:
    """ "TFLM runtime", saying when the profile's sizes are an estimate."""
    return "TFLM runtime" if budget.runtime_measured else f"TFLM runtime estimated for {budget.runtime_profile}"


@functools.lru_cache(maxsize=4)
def _load_table(path: str) -> dict:
    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CodegenError(f"{path}: cannot read the runtime size table ({exc})") from None
    return _with_estimates(table, path)


def _with_estimates(table: dict, path: str) -> dict:
    """Fill each estimated profile (`estimated_from = "<measured profile>"`) with that profile's sizes."""
    profiles = table.get("profiles", {})
    for name, row in profiles.items():
        source = row.get("estimated_from")
        if source is None:
            continue
        measured = profiles.get(source)
        if measured is None or "estimated_from" in measured:
            raise CodegenError(
                f"{path}: profile {name!r} is estimated from {source!r}, which is not a measured profile"
            )
        profiles[name] = {**measured, **row, "measured": False}
    return table


def runtime_table(sizes_file: str | Path | None = None) -> dict:
    """The runtime sizes: {"profiles": {profile: {"core_flash", "core_ram", "families": {...}, "measured"}}};
    an estimated profile carries the sizes of the profile it is estimated from."""
    return _load_table(str(sizes_file or SIZES_FILE))
