"""The native firmware project's files: runtime sources, the generated model and self-test, board files.

Make boards get a complete project (Makefile, startup code and linker script from board/make/, rendered by
codegen.templates); other build systems get the sources to add to their own project.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from edgeclust.backends.base import Lowered, SelfTestCase
from edgeclust.codegen.carray import c_values
from edgeclust.codegen.project import project_json
from edgeclust.codegen.templates import render_template
from edgeclust.device import build as device_build
from edgeclust.device.stack import StackUsage
from edgeclust.errors import CodegenError, FirmwareError
from edgeclust.resources import templates_dir

# The kernels, a C file and its header per family: the firmware and the host oracle compile the same files.
KERNEL_SOURCES = (
    "ec_kernels.c",
    "ec_kernels.h",
    "ec_elementwise.c",
    "ec_elementwise.h",
    "ec_movement.c",
    "ec_movement.h",
    "ec_reduce.c",
    "ec_reduce.h",
    "ec_inplace.c",
    "ec_inplace.h",
)
RUNTIME_SOURCES = KERNEL_SOURCES + (
    "ec_platform.h",
    "ec_platform_console.c",
    "ec_self_test.h",
    "main.c",
)


def render_project(lowered: Lowered, board, cases: Sequence[SelfTestCase]) -> dict[str, bytes]:
    if not cases:
        raise CodegenError("the native firmware needs at least one self-test case; give the build test data")
    root = templates_dir()
    runtime = root / "runtime" / "native"
    files = {name: (runtime / name).read_bytes() for name in RUNTIME_SOURCES}
    files.update(lowered.details.files)
    files["ec_self_test.c"] = self_test_source(lowered, cases).encode()
    if board.build_system == "make":
        context = {"board": board}
        files["Makefile"] = makefile(board)
        files["startup.c"] = render_template(root, "board/make/startup.c.j2", context)
    files["board.json"] = board_json(lowered, board, len(cases))  # names the backend for the sizing build
    stack = firmware_stack(files, board)
    files["board.json"] = board_json(lowered, board, len(cases), stack)
    if board.build_system == "make":
        context = {"board": firmware_board(board, stack)}
        files["linker.ld"] = render_template(root, "board/make/linker.ld.j2", context)
    return files


def makefile(board) -> bytes:
    """The project's Makefile for a make board: the kernels' C files, the model, the self-test, the console."""
    kernels = [name for name in KERNEL_SOURCES if name.endswith(".c")]
    return render_template(templates_dir(), "runtime/native/Makefile.j2", {"board": board, "kernel_sources": kernels})


def make_project(files: Mapping[str, bytes], board):
    """(files, board) that device/ can link with make: the project as rendered for a make board; for a board
    built another way, its sources with the native Makefile of the same board built with make and the
    semihosting console (same kernels, model and self-test)."""
    if board.build_system == "make":
        return files, board
    make_board = dataclasses.replace(board, build_system="make", console="semihosting")
    return {**files, "Makefile": makefile(make_board)}, make_board


@dataclasses.dataclass(frozen=True)
class FirmwareStack:
    """The stack the native firmware reserves: measured from the project's call graph plus the board's
    stack_margin_bytes, or the board's stack_bytes where it cannot be measured here (no cross compiler)."""

    reserved: int
    measured: int | None = None
    margin: int = 0
    usage: StackUsage | None = None

    def facts(self) -> dict:
        return {
            "measured": self.measured,
            "margin": self.margin,
            "reserved": self.reserved,
            "deepest": list(self.usage.path) if self.usage else None,
            "handler": self.usage.handler if self.usage else None,
            "not_measured": list(self.usage.unknown) if self.usage else None,
        }


def firmware_stack(files: Mapping[str, bytes], board) -> FirmwareStack:
    """Link the project (files without linker.ld) for its call graph; the board's stack when that cannot be."""
    usage = None
    if device_build.cross_compiler_present() and str(board.cpu).startswith("cortex-m"):
        try:
            usage = device_build.linked_size(*make_project(files, firmware_board(board)), stack=True).stack
        except FirmwareError:  # a board whose flags this toolchain cannot link
            usage = None
    if usage is None:
        return FirmwareStack(board.stack_bytes)
    return FirmwareStack(usage.bytes + board.stack_margin_bytes, usage.bytes, board.stack_margin_bytes, usage)


def firmware_board(board, stack: FirmwareStack | None = None):
    """The board as the native firmware links it: no heap (the runtime never mallocs; its console has no
    printf), and the stack it measured when known."""
    board = dataclasses.replace(board, heap_bytes=0)
    return board if stack is None else dataclasses.replace(board, stack_bytes=stack.reserved)


def board_json(lowered: Lowered, board, n_cases: int, stack: FirmwareStack | None = None) -> bytes:
    """board.json (as the TFLM projects write it), so `edgeclust flash DIR` finds the board and the backend."""
    program = lowered.details.program
    facts = {
        "backend": "native",
        "model": {"bytes": len(lowered.model), "sha256": hashlib.sha256(lowered.model).hexdigest()},
        "ops": list(program.op_names),
        "arena_bytes": program.arena_bytes,
        "arena_lower_bound": program.arena_lower_bound,
        "self_test_cases": n_cases,
    }
    if stack is not None:
        facts["stack"] = stack.facts()
    return project_json(board, facts)


def self_test_source(lowered: Lowered, cases: Sequence[SelfTestCase]) -> str:
    program = lowered.details.program
    spec_in, spec_out = lowered.interface.inputs[0], lowered.interface.outputs[0]
    inputs, outputs = [], []
    for i, case in enumerate(cases):
        x = np.ascontiguousarray(np.asarray(case.input, dtype=np.dtype(spec_in.dtype)))
        y = np.ascontiguousarray(np.asarray(case.expected_output, dtype=np.dtype(spec_out.dtype)))
        if x.nbytes != program.input.size or y.nbytes != program.output.size:
            raise CodegenError(
                f"self-test case {i} holds {x.nbytes} input and {y.nbytes} output bytes; the model "
                f"takes {program.input.size} and gives {program.output.size}"
            )
        inputs.append(np.frombuffer(x.tobytes(), np.uint8))
        outputs.append(np.frombuffer(y.tobytes(), np.uint8))
    n = len(cases)

    def table(name: str, rows: list, size: str) -> str:
        cases_c = "\n".join(
            f"    {{ /* case {i} */\n{c_values(row, indent=' ' * 8)}\n    }}," for i, row in enumerate(rows)
        )
        return f"const uint8_t {name}[{n}][{size}] = {{\n{cases_c}\n}};"

    return "\n".join(
        [
            "/* Boot self-test cases: inputs and the host oracle's outputs. Generated by edgeclust; do not edit. */",
            '#include "ec_self_test.h"',
            "",
            f"const uint32_t ec_self_test_count = {n}u;",
            table("ec_self_test_inputs", inputs, "EC_MODEL_INPUT_BYTES"),
            table("ec_self_test_outputs", outputs, "EC_MODEL_OUTPUT_BYTES"),
            "",
        ]
    )
