"""Run a generated project on its board for the CLI (`edgeclust flash`, `edgeclust demo`): device/ does the
work; this says what a status means, refuses a firmware that did not pass, and says what running it in QEMU
still needs."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeclust.codegen.board import BoardSpec
from edgeclust.errors import FirmwareError, InputError


@dataclass(frozen=True)
class FlashOutcome:
    """The firmware's exit status and what it means; on a QEMU board, its instructions per inference."""

    status: int
    meaning: str
    what: str = "firmware"  # or "smoke firmware"
    ticks: int | None = None  # the firmware's "inference: N ticks" (QEMU, -icount shift=0)
    instructions: int | None = None  # those ticks as instructions, with the machine's calibration
    instructions_note: str | None = None  # why there is no instruction count, when there is none

    @property
    def passed(self) -> bool:
        return self.status == 0

    def line(self) -> str:
        """ "firmware exited with status 0 (self-test PASS)"."""
        return f"{self.what} exited with status {self.status} ({self.meaning})"

    def instructions_line(self) -> str | None:
        """ "inference: 843,180 instructions (QEMU -icount shift=0: 21,080 SysTick ticks x 40 instructions)",
        or None where nothing was counted (a real board, the smoke firmware)."""
        if self.instructions is not None:
            per_tick = self.instructions / self.ticks if self.ticks else 0
            return (
                f"inference: {self.instructions:,} instructions (QEMU -icount shift=0: {self.ticks:,} SysTick ticks "
                f"x {per_tick:.4g} instructions)"
            )
        if self.instructions_note:
            return f"inference: instructions not counted ({self.instructions_note})"
        return None

    def check(self) -> None:
        """Raise FirmwareError (exit code 1, whatever the firmware's status) unless the firmware passed."""
        if not self.passed:
            raise FirmwareError(f"the {self.line()}")


def project_folder(path: Path) -> Path:
    """The firmware folder of a build's --out folder, or `path` itself when it is a project."""
    from edgeclust.codegen.project import PROJECT_FILE

    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such folder; give the firmware folder that `edgeclust build` wrote")
    if not (path / PROJECT_FILE).is_file() and (path / "firmware" / PROJECT_FILE).is_file():
        return path / "firmware"
    return path


def flash_project(
    project_dir: Path,
    board: BoardSpec | None,
    *,
    timeout_s: float = 60,
    smoke: bool = False,
    tflm_root=None,
    port: str | None = None,
    on_output: Callable[[str], None] = print,
) -> FlashOutcome:
    """Build the project and run it on `board` (default: the board it was generated for); a real board's
    verdict is read from its serial console (`port`, default the board file's). On a QEMU board the firmware
    runs with -icount shift=0 and its inference ticks become instructions per inference (device/icount.py:
    the machine's ticks per instruction, measured once by a calibration firmware)."""
    from edgeclust.device import flash, qemu
    from edgeclust.pipeline.boards import project_board

    project_dir = project_folder(project_dir)
    board = board or project_board(project_dir)
    lines: list[str] = []

    def output(line: str) -> None:
        lines.append(line)
        on_output(line)

    status = flash.flash(
        project_dir, board, timeout_s=timeout_s, on_output=output, smoke=smoke, tflm_root=tflm_root, port=port
    )
    if smoke:
        meaning = {0: "smoke check PASS", 1: "smoke check FAIL: the model array on the board differs from the host's"}
        return FlashOutcome(status, meaning.get(status) or qemu.status_meaning(status), "smoke firmware")
    outcome = FlashOutcome(status, qemu.status_meaning(status))
    return _with_instructions(outcome, board, lines) if board.is_qemu else outcome


def _with_instructions(outcome: FlashOutcome, board: BoardSpec, lines: list[str]) -> FlashOutcome:
    """The outcome with the firmware's inference ticks as instructions (QEMU -icount shift=0)."""
    from edgeclust import resources
    from edgeclust.device import icount
    from edgeclust.errors import EdgeclustError

    ticks = icount.inference_ticks(lines)
    if ticks is None:
        return dataclasses.replace(outcome, instructions_note="the firmware printed no 'inference: N ticks' line")
    try:
        calibration = icount.calibrate(board, str(resources.templates_dir()))
    except EdgeclustError as error:
        return dataclasses.replace(outcome, ticks=ticks, instructions_note=f"calibration failed: {error}")
    return dataclasses.replace(outcome, ticks=ticks, instructions=calibration.instructions_for(ticks))


def missing_for_qemu(project_dir: Path) -> list[str]:
    """What running the project's firmware in QEMU still needs, each with how to get it (a TFLM tree only for
    a project whose board.json names the tflm backend)."""
    from edgeclust.codegen.project import read_project_backend

    missing = []
    if shutil.which("arm-none-eabi-g++") is None:
        missing.append(
            "the Arm cross compiler (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
            "libstdc++-arm-none-eabi-newlib)"
        )
    if shutil.which("qemu-system-arm") is None:
        missing.append("QEMU (apt-get install qemu-system-arm)")
    if read_project_backend(project_folder(project_dir)) == "tflm" and not os.environ.get("TFLM_ROOT"):
        missing.append("a TFLite Micro source tree: set TFLM_ROOT (README, 'Running the firmware')")
    return missing
