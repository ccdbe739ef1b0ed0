"""Build a generated project and run it on its board: make + arm-none-eabi-gcc then QEMU for the QEMU boards,
the board's own build system and flash tool for real boards.

The firmware's output is streamed line by line to `on_output`; the return value is its exit status
(self-test PASS = 0). On a real board that is the verdict read from its serial console after flashing
(device/serial_console.py, pyserial).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edgeclust.codegen.board import BoardSpec
from edgeclust.device import serial_console
from edgeclust.device.build import BUILD_TIMEOUT_S, build_make_project
from edgeclust.device.icount import ICOUNT_ARGS
from edgeclust.device.process import fill_command, require_tool, run_streaming
from edgeclust.device.qemu import run_qemu
from edgeclust.errors import FirmwareError, InputError


def flash(
    project_dir,
    board: BoardSpec,
    *,
    timeout_s: float = 60,
    on_output: Callable[[str], None] = print,
    smoke: bool = False,
    tflm_root: str | os.PathLike | None = None,
    jobs: int | None = None,
    port: str | None = None,
) -> int:
    """Build the project in `project_dir` and run it on `board`; return the firmware's exit status.

    QEMU boards: builds build/fw.elf (or build/smoke.elf with `smoke`, which needs no TFLM) and runs it in
    qemu-system-arm with -icount shift=0 (virtual time follows the instruction count, so the firmware's
    SysTick ticks count instructions: device/icount.py) for at most `timeout_s` seconds. Real boards: flashes,
    then reads the serial console (`port`, else the board file's serial_port pattern) for at most `timeout_s`
    seconds until the verdict line. `tflm_root` defaults to $TFLM_ROOT. Raises
    ToolMissingError for a missing tool or TFLM tree, FirmwareError when the build fails or the firmware hangs.
    """
    project_dir = Path(project_dir).resolve()
    if not (project_dir / "Makefile").is_file() and board.build_system == "make":
        raise InputError(f"{project_dir}: no Makefile; give the firmware folder that `edgeclust build` wrote")
    if board.build_system != "make":
        return _flash_with_board_tools(project_dir, board, timeout_s=timeout_s, on_output=on_output, port=port)
    require_tool(board.flash_tool, board.flash_tool_install)  # before anything is built
    elf = build_make_project(project_dir, board, smoke=smoke, tflm_root=tflm_root, jobs=jobs, on_output=on_output)
    if board.is_qemu:
        return run_qemu(elf, board, timeout_s=timeout_s, on_output=on_output, qemu_args=ICOUNT_ARGS)
    command = fill_command(board.flash_command, project_dir, elf)
    return _run_flash_tool_and_read_console(
        command, project_dir, board, timeout_s=timeout_s, tool_timeout_s=timeout_s, on_output=on_output, port=port
    )


def _flash_with_board_tools(project_dir: Path, board: BoardSpec, *, timeout_s, on_output, port=None) -> int:
    """Non-make boards: build with the board's build system (Pico SDK: cmake) and run its flash command."""
    require_tool(board.flash_tool, board.flash_tool_install)
    if board.build_system == "cmake-pico-sdk":
        require_tool("cmake", "sudo apt-get install cmake")
        for step in (["cmake", "-B", "build", f"-DPICO_BOARD={board.sdk_board}"], ["cmake", "--build", "build"]):
            status = run_streaming(step, cwd=project_dir, timeout_s=BUILD_TIMEOUT_S, on_output=on_output, what="cmake")
            if status != 0:
                raise FirmwareError(f"the firmware build failed ({' '.join(step)} exited with {status})")
    command = fill_command(board.flash_command, project_dir, project_dir / "build" / "fw.elf")
    return _run_flash_tool_and_read_console(
        command,
        project_dir,
        board,
        timeout_s=timeout_s,
        tool_timeout_s=max(timeout_s, 600),
        on_output=on_output,
        port=port,
    )


def _run_flash_tool_and_read_console(
    command: list[str],
    project_dir: Path,
    board: BoardSpec,
    *,
    timeout_s: float,
    tool_timeout_s: float,
    on_output,
    port: str | None,
) -> int:
    """Run the board's flash command; then its verdict from the serial console (a board without a port:
    the flash tool's status, as for a monitor command that shows the console itself)."""

    def flash_tool() -> int:
        return run_streaming(
            command, cwd=project_dir, timeout_s=tool_timeout_s, on_output=on_output, what=board.flash_tool
        )

    serial_port = port or board.serial_port
    if serial_port is None:
        return flash_tool()
    return serial_console.flash_and_read(
        flash_tool,
        port=serial_port,
        baud=board.serial_baud,
        timeout_s=timeout_s,
        on_output=on_output,
        tool_name=board.flash_tool,
    )
