"""Instructions per inference under QEMU: run with `-icount shift=0` (one instruction per nanosecond of virtual
time) and turn the firmware's SysTick ticks into instructions with each machine's ticks per instruction,
measured by a calibration firmware built with the board's own startup code, console and linker script.

SysTick runs on each machine's processor clock (25 MHz on MPS2, 16 MHz on the micro:bit, 168 MHz on the
netduinoplus2), so the same code takes different ticks on each; the instructions agree.
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeclust.codegen.board import BoardSpec
from edgeclust.codegen.templates import render_template
from edgeclust.device.build import CROSS_TOOLS
from edgeclust.device.process import require_tool
from edgeclust.device.qemu import run_qemu
from edgeclust.errors import FirmwareError

ICOUNT_ARGS = ("-icount", "shift=0")
_CALIBRATION = re.compile(r"^calibration: (\d+) ticks for (\d+) instructions$", re.M)
_TICKS = re.compile(r"inference: (\d+) ticks")


@dataclass(frozen=True)
class Calibration:
    """A machine's SysTick ticks for a loop of a known instruction count, under -icount shift=0."""

    machine: str
    ticks: int
    instructions: int

    @property
    def instructions_per_tick(self) -> float:
        return self.instructions / self.ticks

    def instructions_for(self, ticks: int) -> int:
        return round(ticks * self.instructions / self.ticks)


def run_icount(elf, board: BoardSpec, *, timeout_s: float = 120) -> tuple[int, list[str]]:
    """Run `elf` on the board's QEMU machine with -icount shift=0; (exit status, console lines)."""
    lines: list[str] = []
    status = run_qemu(elf, board, timeout_s=timeout_s, on_output=lines.append, qemu_args=ICOUNT_ARGS)
    return status, lines


@functools.cache
def calibrate(board: BoardSpec, templates_dir: str) -> Calibration:
    """Build and run the calibration firmware for `board` (cached per board)."""
    for tool in ("arm-none-eabi-gcc",):
        require_tool(tool, CROSS_TOOLS[tool])
    root = Path(templates_dir)
    with tempfile.TemporaryDirectory(prefix="edgeclust-icount-") as tmp:
        folder = Path(tmp)
        for name in ("startup.c", "linker.ld"):
            (folder / name).write_bytes(render_template(root, f"board/make/{name}.j2", {"board": board}))
        (folder / "console.h").write_bytes((root / "board" / "make" / "console.h").read_bytes())
        (folder / "calibration_main.c").write_bytes((root / "board" / "icount" / "calibration_main.c").read_bytes())
        elf = folder / "calibration.elf"
        command = [
            "arm-none-eabi-gcc",
            *board.cflags,
            "-O2",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            tmp,
            str(folder / "calibration_main.c"),
            str(folder / "startup.c"),
            "-T",
            str(folder / "linker.ld"),
            "-nostartfiles",
            "--specs=nano.specs",
            "--specs=nosys.specs",
            "-o",
            str(elf),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise FirmwareError(f"the calibration firmware for {board.id} did not build: {done.stderr.strip()[:300]}")
        status, lines = run_icount(elf, board, timeout_s=60)
    match = _CALIBRATION.search("\n".join(lines))
    if status != 0 or match is None:
        raise FirmwareError(
            f"the calibration firmware on {board.id} ended with status {status}: {lines[-1] if lines else 'no output'}"
        )
    return Calibration(machine=str(board.qemu_machine), ticks=int(match.group(1)), instructions=int(match.group(2)))


def inference_ticks(lines) -> int | None:
    """The "inference: N ticks" figure a native firmware prints (console lines, or its text), or None."""
    text = lines if isinstance(lines, str) else "\n".join(lines)
    match = _TICKS.search(text)
    return int(match.group(1)) if match else None
