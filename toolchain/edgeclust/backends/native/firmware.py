"""Build a rendered native project with arm-none-eabi-gcc and run it under QEMU (tests, price, figures).

The pipeline's device/ package runs `edgeclust flash`; this module serves the backend itself: price() links
the firmware to read its real size, and the figures script reads the ticks it prints.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeclust.errors import FirmwareError, ToolMissingError

INSTALL = "sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi make"


@dataclass(frozen=True)
class LinkSizes:
    """arm-none-eabi-size of the ELF: text (code + const data), data, bss (arena and statics)."""

    text: int
    data: int
    bss: int


def cross_compiler_present() -> bool:
    return shutil.which("arm-none-eabi-gcc") is not None and shutil.which("make") is not None


def write_project(files: dict[str, bytes], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def build(folder: Path, *, timeout_s: float = 600, make_args: tuple[str, ...] = ()) -> Path:
    """`make build/fw.elf` in the project folder; the ELF, or FirmwareError with the first compiler error.

    make_args: extra variables, e.g. ("OPT=-O2 -DEC_BUCKET_SUMS=1",) to measure a kernel variant."""
    if not cross_compiler_present():
        raise ToolMissingError(f"arm-none-eabi-gcc or make is not installed; install them with: {INSTALL}")
    done = subprocess.run(
        ["make", "--no-print-directory", *make_args, "build/fw.elf"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        lines = (done.stderr + done.stdout).splitlines()
        first = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "no output")
        raise FirmwareError(f"the native firmware does not build: {first}")
    return folder / "build" / "fw.elf"


def link_sizes(elf: Path) -> LinkSizes:
    done = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in done.stdout.splitlines()[1].split()[:3])
    return LinkSizes(text, data, bss)


def run_qemu(elf: Path, machine: str, *, timeout_s: float = 120) -> tuple[int, str]:
    """Run under qemu-system-arm with semihosting and -icount shift=0; (exit status, console text)."""
    if shutil.which("qemu-system-arm") is None:
        raise ToolMissingError(
            "qemu-system-arm is not installed; install it with: sudo apt-get install qemu-system-arm"
        )
    command = [
        "qemu-system-arm",
        "-M",
        machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "null",
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        "shift=0",
        "-kernel",
        str(elf),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise FirmwareError(f"the firmware did not finish within {timeout_s:g} s under QEMU ({machine})") from None
    return done.returncode, done.stdout + done.stderr


def ticks(console: str) -> int | None:
    """The "inference: N ticks" figure the firmware prints."""
    match = re.search(r"inference: (\d+) ticks", console)
    return int(match.group(1)) if match else None
