"""Run a firmware ELF under qemu-system-arm, always under a timeout; say what its status means.

Semihosting boards end QEMU with the firmware's status; on a UART console board the firmware prints
"edgeclust: exit status N" and sleeps, and the run is stopped at that line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgeclust.codegen.board import BoardSpec
from edgeclust.device import verdict
from edgeclust.device.process import fill_command, require_tool, run_streaming
from edgeclust.errors import FirmwareError, InputError

# what the firmware's exit status means: the TFLM runtime's main_functions.h, the native runtime's main.c, and
# the board's startup code (a fault ends with 4)
STATUS_MEANING = {
    0: "self-test PASS",
    1: "self-test FAIL: outputs differ from the host oracle's (the backend's host build or interpreter)",
    2: "the model could not be set up (TFLM: schema version, ops or tensor arena)",
    3: "an inference failed (TFLM)",
    4: "HardFault: the firmware crashed",
}


def run_qemu(
    elf,
    board: BoardSpec,
    *,
    timeout_s: float = 60,
    on_output: Callable[[str], None] = print,
    qemu_args: tuple[str, ...] = (),
) -> int:
    """Run an ELF in qemu-system-arm; stream its console; return its exit status.

    `qemu_args` go after the board's command (e.g. -icount shift=0). A run longer than `timeout_s` is killed
    and raises FirmwareError (the firmware hung).
    """
    if not board.is_qemu:
        raise InputError(f"board {board.id} is not emulated by QEMU; flash it with {board.flash_tool}")
    require_tool(board.flash_tool, board.flash_tool_install)
    elf = Path(elf).resolve()
    command = fill_command(board.flash_command, elf.parent, elf) + list(qemu_args)
    qemu_errors = []

    def output(line: str) -> None:
        if "Timer with period zero, disabling" in line:
            return  # QEMU's own noise (lm3s6965evb's timers), not the firmware's
        if line.startswith(f"{command[0]}:"):
            qemu_errors.append(line)
        on_output(line)

    until = None if board.uses_semihosting else verdict.exit_status
    status = run_streaming(
        command,
        cwd=elf.parent,
        timeout_s=timeout_s,
        on_output=output,
        what=f"the firmware under QEMU ({board.qemu_machine})",
        until=until,
    )
    if status != 0 and qemu_errors:
        raise FirmwareError(f"QEMU could not run the firmware: {qemu_errors[0]}")
    return status


def status_meaning(status: int) -> str:
    """What a firmware exit status means, for a message."""
    return STATUS_MEANING.get(status, f"exit status {status}")
