"""What the native firmware costs a board: the linked size of the very project render() wrote, when
arm-none-eabi-gcc is here; else a table.

Flash = text + data of the linked ELF (code, const weights, tables, biases, self-test cases); RAM = the arena,
the runtime's statics (data + bss less the arena), and the stack: measured from the project's call graph
(device.stack) plus the board's stack_margin_bytes, which is what the project's linker script reserves. No
heap: the runtime never mallocs and its console has no printf. device/ links the files against a roomy
memory map, so that a model over the board's budget still gets a number and the budget check, not the
linker, says by how much. Without the cross compiler: the model's constants plus the code sizes measured
per kernel (runtime_sizes.toml, written by scripts/native_sizes.py), and the board's stack_bytes.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeclust.backends.base import Cost, Lowered, SelfTestCase
from edgeclust.backends.native.project import firmware_board, make_project, render_project
from edgeclust.device import build as device_build
from edgeclust.errors import FirmwareError

SIZES_FILE = Path(__file__).with_name("runtime_sizes.toml")
FLASH_ADVICE = "fewer --clusters (fewer index bits per weight), or --fit to choose each layer's count"
RAM_ADVICE = "a smaller input or narrower layers (the arena holds the largest activations alive at one step)"


def price(lowered: Lowered, board, files: Mapping[str, bytes] | None = None) -> Cost:
    """The cost of `files`, the project render() gave for `board` (None: the project with one blank
    self-test case, for callers that price without rendering)."""
    program = lowered.details.program
    if files is None:
        files = render_project(lowered, board, [blank_case(lowered)])
    consts = program.flash_parts()
    self_test = self_test_cases(files) * (program.input.size + program.output.size)
    sizes = None
    if device_build.cross_compiler_present() and str(board.cpu).startswith("cortex-m"):
        try:
            sizes = device_build.linked_size(*make_project(files, firmware_board(board)), stack=True)
        except FirmwareError:  # a board whose flags this toolchain cannot link: price from the table
            sizes = None
    if sizes is not None:
        code = sizes.flash - sum(consts.values()) - self_test
        flash_parts = {**consts, "code": code, "self_test": self_test}
        flash_used = sizes.flash
        ram_parts = {
            "arena": program.arena_bytes,
            "statics": sizes.data + sizes.bss - program.arena_bytes,
            "stack": sizes.stack.bytes,
            "stack margin": board.stack_margin_bytes,
        }
    else:
        flash_parts = {**consts, "code": table_code_bytes(program, board), "self_test": self_test}
        flash_used = sum(flash_parts.values())
        ram_parts = {"arena": program.arena_bytes, "statics": 64, "stack": board.stack_bytes}
    return Cost(
        board.id,
        flash_used,
        board.flash_bytes,
        sum(ram_parts.values()),
        board.ram_bytes,
        flash_parts,
        ram_parts,
        measured=sizes is not None,
        flash_advice=FLASH_ADVICE,
        ram_advice=RAM_ADVICE,
        board_name=board.name,
    )


def self_test_cases(files: Mapping[str, bytes]) -> int:
    """How many self-test cases the rendered project holds (its board.json says)."""
    return int(json.loads(files["board.json"])["self_test_cases"])


def blank_case(lowered: Lowered) -> SelfTestCase:
    """One self-test case of zeros, the model's input and output dtypes and shapes."""
    spec_in, spec_out = lowered.interface.inputs[0], lowered.interface.outputs[0]
    return SelfTestCase(np.zeros(spec_in.shape[1:], spec_in.dtype), np.zeros(spec_out.shape[1:], spec_out.dtype))


# kernels that run other kernels (ec_inplace.c): their callees' code is linked with them
CALLS = {
    "ec_conv_1x1_inplace": ("ec_conv",),
    "ec_depthwise_conv_inplace": ("ec_depthwise_conv",),
    "ec_conv_rows": ("ec_conv",),
    "ec_pw_dw_rows": ("ec_conv", "ec_depthwise_conv"),
}


def table_code_bytes(program, board) -> int:
    """Runtime code from the per-kernel size table: the base (startup, console, main) plus each kernel used."""
    table = tomllib.loads(SIZES_FILE.read_text(encoding="utf-8"))
    profile = table.get(board.runtime_profile) or table["cortex-m4f"]
    kernels = {step.kernel for step in program.steps}
    kernels |= {callee for kernel in kernels for callee in CALLS.get(kernel, ())}
    return int(profile["base"]) + sum(int(profile.get(k, profile["default_kernel"])) for k in kernels)
