"""Build a generated project and flash it: for the QEMU boards, make + arm-none-eabi-gcc, then qemu-system-arm
with semihosting, always under a timeout; for real boards, the board's own build system and flash tool.

The firmware's output is streamed line by line to `on_output`; the return value is its exit status
(self-test PASS = 0). Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from edgeclust.codegen.board import BoardSpec
from edgeclust.errors import FirmwareError, InputError, ToolMissingError

# tool -> what to install to get it
CROSS_TOOLS = {
    "arm-none-eabi-gcc": "sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-g++": "sudo apt-get install gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib",
    "make": "sudo apt-get install make",
}
# what the firmware's exit status means (main_functions.h, startup.c)
STATUS_MEANING = {
    0: "self-test PASS",
    1: "self-test FAIL: outputs differ from the TFLM host interpreter",
    2: "the model could not be set up (schema version, ops or tensor arena)",
    3: "an inference failed",
    4: "HardFault: the firmware crashed",
}
TFLM_HINT = (
    "set TFLM_ROOT to a TFLM source tree (the folder TFLM's create_tflm_tree.py writes; DEVELOPERS.md says how), "
    "or run `edgeclust flash DIR --smoke` to check the model array without TFLM"
)
_BUILD_TIMEOUT_S = 3600


def flash(project_dir, board: BoardSpec, *, timeout_s: float = 60, on_output: Callable[[str], None] = print,
          smoke: bool = False, tflm_root: str | os.PathLike | None = None, jobs: int | None = None) -> int:
    """Build the project in `project_dir` and run it on `board`; return the firmware's exit status.

    QEMU boards: builds build/fw.elf (or build/smoke.elf with `smoke`, which needs no TFLM) and runs it in
    qemu-system-arm for at most `timeout_s` seconds. `tflm_root` defaults to $TFLM_ROOT. Raises
    ToolMissingError for a missing tool or TFLM tree, FirmwareError when the build fails or the firmware hangs.
    """
    project_dir = Path(project_dir).resolve()
    if not (project_dir / "Makefile").is_file() and board.build_system == "make":
        raise InputError(f"{project_dir}: no Makefile; give the firmware folder that `edgeclust build` wrote")
    if board.build_system != "make":
        return _flash_with_board_tools(project_dir, board, timeout_s=timeout_s, on_output=on_output)
    _require(board.flash_tool, board.flash_tool_install)  # before anything is built
    elf = build_make_project(project_dir, board, smoke=smoke, tflm_root=tflm_root, jobs=jobs, on_output=on_output)
    if board.is_qemu:
        return run_qemu(elf, board, timeout_s=timeout_s, on_output=on_output)
    command = _fill(board.flash_command, project_dir, elf)
    return _run_streaming(command, cwd=project_dir, timeout_s=timeout_s, on_output=on_output, what=board.flash_tool)


def build_make_project(project_dir, board: BoardSpec, *, smoke: bool = False, tflm_root=None, jobs: int | None = None,
                       on_output: Callable[[str], None] | None = None) -> Path:
    """Run the project's Makefile with arm-none-eabi-gcc; return the ELF. The build log goes to build/build.log."""
    project_dir = Path(project_dir)
    for tool in ("make", "arm-none-eabi-gcc", "arm-none-eabi-g++"):
        _require(tool, CROSS_TOOLS[tool])
    target = "build/smoke.elf" if smoke else "build/fw.elf"
    args = ["make", "--no-print-directory", f"-j{jobs or os.cpu_count() or 1}", target]
    if not smoke:
        root = resolve_tflm_root(tflm_root)
        args += [f"TFLM_ROOT={root}", f"TFLM_BUILD={tflm_build_dir(board, project_dir, root)}"]
    log_path = project_dir / "build" / "build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if on_output is not None:
        on_output(f"building {target} for {board.name} (log: {log_path})")
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            done = subprocess.run(args, cwd=project_dir, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=_BUILD_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise FirmwareError(f"the firmware build did not finish in {_BUILD_TIMEOUT_S} s; see {log_path}") from None
    if done.returncode != 0:
        raise FirmwareError(f"the firmware build failed: {_first_error(log_path)}; full log in {log_path}")
    return project_dir / target


def resolve_tflm_root(tflm_root=None) -> Path:
    """The TFLM tree to build with: `tflm_root`, else $TFLM_ROOT; missing or wrong is a ToolMissingError."""
    value = tflm_root if tflm_root is not None else os.environ.get("TFLM_ROOT", "")
    if not str(value).strip():
        raise ToolMissingError(f"TFLM_ROOT is not set: {TFLM_HINT}")
    root = Path(value).expanduser().resolve()
    if not (root / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
        raise ToolMissingError(f"TFLM_ROOT={value} is not a TFLM source tree (no tensorflow/lite/micro there): {TFLM_HINT}")
    return root


def tflm_build_dir(board: BoardSpec, project_dir, tflm_root: Path) -> Path:
    """Where the compiled TFLM library for these flags lives: shared between projects (cache) unless
    EDGECLUST_CACHE_DIR is set to an empty string, then inside the project."""
    cache = os.environ.get("EDGECLUST_CACHE_DIR")
    if cache == "":
        return Path(project_dir).resolve() / "build" / "tflm"
    if cache is None:
        cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgeclust")
    key = json.dumps([str(tflm_root), list(board.cflags)], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache) / "tflm" / f"{board.runtime_profile}-{digest}"


def run_qemu(elf, board: BoardSpec, *, timeout_s: float = 60, on_output: Callable[[str], None] = print) -> int:
    """Run an ELF in qemu-system-arm with semihosting; stream its output; return its exit status.

    A run longer than `timeout_s` is killed and raises FirmwareError (the firmware hung).
    """
    if not board.is_qemu:
        raise InputError(f"board {board.id} is not emulated by QEMU; flash it with {board.flash_tool}")
    _require(board.flash_tool, board.flash_tool_install)
    elf = Path(elf).resolve()
    command = _fill(board.flash_command, elf.parent, elf)
    qemu_errors = []

    def output(line: str) -> None:
        if line.startswith(f"{command[0]}:"):
            qemu_errors.append(line)
        on_output(line)

    status = _run_streaming(command, cwd=elf.parent, timeout_s=timeout_s, on_output=output,
                            what=f"the firmware under QEMU ({board.qemu_machine})")
    if status != 0 and qemu_errors:
        raise FirmwareError(f"QEMU could not run the firmware: {qemu_errors[0]}")
    return status


def status_meaning(status: int) -> str:
    """What a firmware exit status means, for a message."""
    return STATUS_MEANING.get(status, f"exit status {status}")


def _flash_with_board_tools(project_dir: Path, board: BoardSpec, *, timeout_s, on_output) -> int:
    _require(board.flash_tool, board.flash_tool_install)
    if board.build_system == "cmake-pico-sdk":
        _require("cmake", "sudo apt-get install cmake")
        for step in (["cmake", "-B", "build", f"-DPICO_BOARD={board.sdk_board}"], ["cmake", "--build", "build"]):
            status = _run_streaming(step, cwd=project_dir, timeout_s=_BUILD_TIMEOUT_S, on_output=on_output, what="cmake")
            if status != 0:
                raise FirmwareError(f"the firmware build failed ({' '.join(step)} exited with {status})")
    command = _fill(board.flash_command, project_dir, project_dir / "build" / "fw.elf")
    return _run_streaming(command, cwd=project_dir, timeout_s=max(timeout_s, 600), on_output=on_output,
                          what=board.flash_tool)


def _run_streaming(command: list[str], *, cwd, timeout_s: float, on_output, what: str) -> int:
    try:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    except FileNotFoundError:
        raise ToolMissingError(f"{command[0]} is not installed") from None
    timer = threading.Timer(timeout_s, _kill, args=(process,))
    started = time.monotonic()
    timer.start()
    try:
        for raw in process.stdout:
            on_output(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        status = process.wait()
    except BaseException:
        _kill(process)
        raise
    finally:
        timer.cancel()
        process.stdout.close()
    if time.monotonic() - started >= timeout_s and status < 0:
        raise FirmwareError(
            f"{what} did not finish within {timeout_s:g} s and was stopped: the firmware hung "
            "(raise the limit with --timeout if it is only slow)"
        )
    if status < 0:
        raise FirmwareError(f"{what} was killed by signal {-status}")
    return status


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, 9)
        except (ProcessLookupError, PermissionError):
            process.kill()


def _require(tool: str, install: str) -> None:
    if shutil.which(tool) is None:
        raise ToolMissingError(f"{tool} is not installed (or not on PATH); install it with: {install}")


def _fill(template: str, project_dir: Path, elf: Path) -> list[str]:
    parts = shlex.split(template)
    values = {"elf": str(elf), "bin": str(elf.with_suffix(".bin")), "project": str(project_dir)}
    return [part.format(**values) if "{" in part else part for part in parts]


def _first_error(log_path: Path) -> str:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines:
        if "error" in line.lower() or "overflow" in line.lower() or "not a TFLM source tree" in line:
            return line.strip()[:300]
    tail = [line for line in lines if line.strip()]
    return tail[-1].strip()[:300] if tail else "no output"
