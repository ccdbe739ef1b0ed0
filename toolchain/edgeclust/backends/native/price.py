"""What the native firmware costs a board: from the real link when arm-none-eabi-gcc is here, else a table.

Flash = text + data of the linked ELF (code, const weights, tables, biases, self-test cases); RAM = data + bss
(the arena, the runtime's statics and the heap the linker script reserves) + the board's stack. Without the
cross compiler: the model's constants plus the code sizes measured per kernel (runtime_sizes.toml, written by
scripts/native_sizes.py).
"""

from __future__ import annotations

import dataclasses
import tempfile
import tomllib
from pathlib import Path

import numpy as np

from edgeclust.backends.base import Cost, Lowered, SelfTestCase
from edgeclust.backends.native import firmware
from edgeclust.backends.native.project import render_project
from edgeclust.errors import FirmwareError

SIZES_FILE = Path(__file__).with_name("runtime_sizes.toml")


def price(lowered: Lowered, board) -> Cost:
    program = lowered.details.program
    consts = program.flash_parts()
    sizes = None
    if firmware.cross_compiler_present() and str(board.cpu).startswith("cortex-m"):
        try:
            sizes = measured_sizes(lowered, board)
        except FirmwareError:  # a board whose flags this toolchain cannot link: price from the table
            sizes = None
    if sizes is not None:
        flash_used = sizes.text + sizes.data
        ram_used = sizes.data + sizes.bss + board.stack_bytes
        code = flash_used - sum(consts.values()) - program.input.size - program.output.size
        flash_parts = {**consts, "code": code, "self_test": program.input.size + program.output.size}
        heap = board.heap_bytes  # reserved by the linker script (.heap counts as bss); the runtime never mallocs
        ram_parts = {
            "arena": program.arena_bytes,
            "heap": heap,
            "statics": sizes.data + sizes.bss - program.arena_bytes - heap,
            "stack": board.stack_bytes,
        }
        measured = True
    else:
        code = table_code_bytes(program, board)
        flash_parts = {**consts, "code": code}
        flash_used = sum(flash_parts.values())
        ram_parts = {"arena": program.arena_bytes, "heap": board.heap_bytes, "statics": 64, "stack": board.stack_bytes}
        ram_used = sum(ram_parts.values())
        measured = False
    names = {f.name for f in dataclasses.fields(Cost)}
    extra = {
        key: value
        for key, value in (
            ("advice", "--clusters with fewer clusters (fewer index bits), or a board with more memory"),
            ("board_name", getattr(board, "name", "")),
        )
        if key in names
    }
    return Cost(
        board.id,
        flash_used,
        board.flash_bytes,
        ram_used,
        board.ram_bytes,
        flash_parts,
        ram_parts,
        measured=measured,
        **extra,
    )


def measured_sizes(lowered: Lowered, board) -> firmware.LinkSizes:
    """Link the firmware (one self-test case) in a temporary folder and read arm-none-eabi-size."""
    spec_in, spec_out = lowered.interface.inputs[0], lowered.interface.outputs[0]
    case = SelfTestCase(np.zeros(spec_in.shape[1:], spec_in.dtype), np.zeros(spec_out.shape[1:], spec_out.dtype))
    # a board built another way is linked as a make board with the semihosting console (same kernels and model)
    make_board = (
        board
        if board.build_system == "make"
        else dataclasses.replace(board, build_system="make", console="semihosting")
    )
    files = render_project(lowered, make_board, [case])
    with tempfile.TemporaryDirectory(prefix="edgeclust-native-size-") as tmp:
        folder = firmware.write_project(files, Path(tmp))
        # a model that overflows the board still gets a price: link against a large memory map
        roomy = dataclasses.replace(make_board, flash_bytes=1 << 26, ram_bytes=1 << 26)
        files_roomy = render_project(lowered, roomy, [case])
        (folder / "linker.ld").write_bytes(files_roomy["linker.ld"])
        return firmware.link_sizes(firmware.build(folder))


def table_code_bytes(program, board) -> int:
    """Runtime code from the per-kernel size table: the base (startup, console, main) plus each kernel used."""
    table = tomllib.loads(SIZES_FILE.read_text(encoding="utf-8"))
    profile = table.get(board.runtime_profile) or table["cortex-m4f"]
    kernels = {step.kernel for step in program.steps}
    return int(profile["base"]) + sum(int(profile.get(k, profile["default_kernel"])) for k in kernels)
