"""Build a generated Makefile project with arm-none-eabi-gcc, finding the TFLM tree and sharing its compiled library.

Standard library only; the build log goes to the project's build/build.log.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from edgeclust.codegen.board import BoardSpec
from edgeclust.codegen.project import read_project_backend
from edgeclust.device.process import require_tool
from edgeclust.errors import FirmwareError, ToolMissingError

# tool -> what to install to get it
CROSS_TOOLS = {
    "arm-none-eabi-gcc": "sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-g++": "sudo apt-get install gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib",
    "make": "sudo apt-get install make",
}
TFLM_HINT = (
    "set TFLM_ROOT to a TFLM source tree (the folder TFLM's create_tflm_tree.py writes; DEVELOPERS.md says how), "
    "or run `edgeclust flash DIR --smoke` to check the model array without TFLM"
)
BUILD_TIMEOUT_S = 3600


def build_make_project(
    project_dir,
    board: BoardSpec,
    *,
    smoke: bool = False,
    tflm_root=None,
    jobs: int | None = None,
    on_output: Callable[[str], None] | None = None,
) -> Path:
    """Run the project's Makefile with arm-none-eabi-gcc; return the ELF. The build log goes to build/build.log.
    A TFLM project (board.json's backend) gets TFLM_ROOT and the shared TFLM library folder."""
    project_dir = Path(project_dir)
    for tool in ("make", "arm-none-eabi-gcc", "arm-none-eabi-g++"):
        require_tool(tool, CROSS_TOOLS[tool])
    target = "build/smoke.elf" if smoke else "build/fw.elf"
    args = ["make", "--no-print-directory", f"-j{jobs or os.cpu_count() or 1}", target]
    if not smoke and read_project_backend(project_dir) == "tflm":  # other runtimes build without TFLM
        root = resolve_tflm_root(tflm_root)
        args += [f"TFLM_ROOT={root}", f"TFLM_BUILD={tflm_build_dir(board, project_dir, root)}"]
    log_path = project_dir / "build" / "build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if on_output is not None:
        on_output(f"building {target} for {board.name} (log: {log_path})")
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            done = subprocess.run(
                args,
                cwd=project_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise FirmwareError(f"the firmware build did not finish in {BUILD_TIMEOUT_S} s; see {log_path}") from None
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
        raise ToolMissingError(
            f"TFLM_ROOT={value} is not a TFLM source tree (no tensorflow/lite/micro there): {TFLM_HINT}"
        )
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


def _first_error(log_path: Path) -> str:
    """The build log's first line that names an error (or its last line), for a one-line message."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines:  # a compiler or linker diagnostic, not a command line that mentions -Werror
        if "error:" in line.lower() or "overflow" in line.lower() or "not a TFLM source tree" in line:
            return line.strip()[:300]
    tail = [line for line in lines if line.strip()]
    return tail[-1].strip()[:300] if tail else "no output"
