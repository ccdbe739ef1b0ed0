"""Run an external tool with its output streamed line by line, under a timeout, killing its whole process group.

Standard library only: QEMU, flash tools and cmake stream through here; one-shot compiles and `size` run with
subprocess.run in the device/ module that needs them (device/ is where every tool starts).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgeclust.errors import FirmwareError, ToolMissingError


def require_tool(tool: str, install: str) -> None:
    """Raise ToolMissingError naming the install command when `tool` is not on PATH."""
    if shutil.which(tool) is None:
        raise ToolMissingError(f"{tool} is not installed (or not on PATH); install it with: {install}")


def fill_command(template: str, project_dir: Path, elf: Path) -> list[str]:
    """A board's command template ("{elf}", "{bin}", "{project}") as an argument list."""
    parts = shlex.split(template)
    values = {"elf": str(elf), "bin": str(elf.with_suffix(".bin")), "project": str(project_dir)}
    return [part.format(**values) if "{" in part else part for part in parts]


def run_streaming(
    command: list[str],
    *,
    cwd,
    timeout_s: float,
    on_output: Callable[[str], None],
    what: str,
    until: Callable[[str], int | None] | None = None,
) -> int:
    """Run `command`, pass each output line to `on_output`, return its exit status.

    `until(line)` returning a status stops the run there (a firmware that cannot end QEMU itself) and returns
    that status. A run past `timeout_s` is killed and raises FirmwareError (hung); a missing program is
    ToolMissingError.
    """
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ToolMissingError(f"{command[0]} is not installed") from None
    timer = threading.Timer(timeout_s, _kill, args=(process,))
    started = time.monotonic()
    timer.start()
    stopped_with = None
    try:
        for raw in process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            on_output(line)
            stopped_with = until(line) if until is not None else None
            if stopped_with is not None:
                _kill(process)
                break
        status = process.wait()
    except BaseException:
        _kill(process)
        raise
    finally:
        timer.cancel()
        process.stdout.close()
    if stopped_with is not None:
        return stopped_with
    if time.monotonic() - started >= timeout_s and status < 0:
        raise FirmwareError(
            f"{what} did not finish within {timeout_s:g} s and was stopped: the firmware hung "
            "(raise the limit with --timeout if it is only slow)"
        )
    if status < 0:
        raise FirmwareError(f"{what} was killed by signal {-status}")
    return status


def _kill(process: subprocess.Popen) -> None:
    """Kill the process group started for `process` (QEMU, make and their children)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, 9)
        except (ProcessLookupError, PermissionError):
            process.kill()
