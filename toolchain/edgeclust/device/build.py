"""Build a generated Makefile project with arm-none-eabi-gcc (finding the TFLM tree and sharing its compiled
library), and size the firmware: arm-none-eabi-size of the ELF, or of a project linked against a roomy memory
map so that a model over the board's budget still gets a number.

The build log goes to the project's build/build.log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edgeclust import resources
from edgeclust.codegen.board import BoardSpec
from edgeclust.codegen.project import read_project_backend
from edgeclust.device.process import require_tool
from edgeclust.device.stack import STACK_FLAGS, StackUsage, stack_usage
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
# a memory map no model outgrows: the project is linked against it to read its size whatever the board's
ROOMY_BYTES = 1 << 26


@dataclass(frozen=True)
class FirmwareSize:
    """arm-none-eabi-size of a linked ELF: text (code + const data), data, bss (arena, heap reserve, statics);
    flash = text + data, RAM = data + bss + the board's stack."""

    text: int
    data: int
    bss: int
    flash: int
    ram: int
    stack: StackUsage | None = None  # measured from the call graph (linked_size(..., stack=True))


def cross_compiler_present() -> bool:
    """Whether make and arm-none-eabi-gcc are on PATH (what a C-only project needs to build)."""
    return all(shutil.which(tool) is not None for tool in ("make", "arm-none-eabi-gcc"))


def write_project(files: Mapping[str, bytes], folder) -> Path:
    """Write a rendered project ({relative path: bytes}) into `folder` (a scratch folder: tests, scripts,
    sizing; the build itself writes its output atomically through the pipeline)."""
    folder = Path(folder)
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def build_make_project(
    project_dir,
    board: BoardSpec,
    *,
    smoke: bool = False,
    tflm_root=None,
    jobs: int | None = None,
    on_output: Callable[[str], None] | None = None,
    make_args: tuple[str, ...] = (),
) -> Path:
    """Run the project's Makefile with arm-none-eabi-gcc; return the ELF. The build log goes to build/build.log.
    A TFLM project (board.json's backend) gets TFLM_ROOT and the shared TFLM library folder; a C-only project
    (the native backend) needs no C++ compiler. `make_args`: extra variables, e.g. "OPT=-O3"."""
    project_dir = Path(project_dir)
    backend = read_project_backend(project_dir)
    tools = ("make", "arm-none-eabi-gcc") if backend == "native" and not smoke else tuple(CROSS_TOOLS)
    for tool in tools:
        require_tool(tool, CROSS_TOOLS[tool])
    target = "build/smoke.elf" if smoke else "build/fw.elf"
    args = ["make", "--no-print-directory", f"-j{jobs or os.cpu_count() or 1}", *make_args, target]
    if not smoke and backend == "tflm":  # other runtimes build without TFLM
        root = resolve_tflm_root(tflm_root)
        args += [f"TFLM_ROOT={root}", f"TFLM_BUILD={tflm_build_dir(board, root)}"]
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


def tflm_build_dir(board: BoardSpec, tflm_root: Path) -> Path:
    """Where the compiled TFLM library for these flags lives, shared between projects:
    resources.cache_dir("tflm")/<profile>-<hash of the TFLM tree and the flags>."""
    key = json.dumps([str(tflm_root), list(board.cflags)], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return resources.cache_dir("tflm") / f"{board.runtime_profile}-{digest}"


def elf_size(elf, board: BoardSpec) -> FirmwareSize:
    """arm-none-eabi-size's text, data and bss of `elf`; RAM adds the board's stack."""
    require_tool("arm-none-eabi-size", CROSS_TOOLS["arm-none-eabi-gcc"])
    done = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FirmwareError(f"arm-none-eabi-size cannot read {elf}: {done.stderr.strip()[:300]}")
    text, data, bss = (int(v) for v in done.stdout.splitlines()[1].split()[:3])
    return FirmwareSize(text=text, data=data, bss=bss, flash=text + data, ram=data + bss + board.stack_bytes)


def linked_size(
    files: Mapping[str, bytes], board: BoardSpec, templates_dir=None, *, stack: bool = False
) -> FirmwareSize:
    """The size of a rendered Makefile project ({relative path: bytes}, a C-only runtime) once linked: the very
    files, built in a scratch folder with the board's startup code and a linker script whose flash and RAM
    are ROOMY_BYTES, so that a model over the board's budget still links and gets a number (the budget check
    compares it with the board's sizes). A project rendered for a board built another way (no Makefile) is
    not sized here: the caller adds its Makefile. `stack`: compiled with device.stack's flags too, the
    size's `stack` is the worst case its call graph gives (the flags do not change the code).

    The answer for the same sources and board is kept for the process (render and price link the same
    files); the project's linker.ld and board.json are not part of the key (the roomy script replaces one,
    the other is not compiled)."""
    from edgeclust.codegen.templates import render_template  # jinja2: only when sizing

    if "Makefile" not in files:
        raise FirmwareError("the project has no Makefile to size it with")
    key = _size_key(files, board, templates_dir, stack)
    if key in _SIZES:
        return _SIZES[key]
    root = Path(templates_dir) if templates_dir is not None else resources.templates_dir()
    roomy = dataclasses.replace(board, flash_bytes=ROOMY_BYTES, ram_bytes=ROOMY_BYTES)
    board_files = {"linker.ld": render_template(root, "board/make/linker.ld.j2", {"board": roomy})}
    if "startup.c" not in files:
        board_files["startup.c"] = render_template(root, "board/make/startup.c.j2", {"board": board})
    make_args = (f"OPT={_default_opt(files['Makefile'])} {STACK_FLAGS}",) if stack else ()
    with tempfile.TemporaryDirectory(prefix="edgeclust-size-") as tmp:
        folder = write_project({**files, **board_files}, tmp)
        size = elf_size(build_make_project(folder, board, make_args=make_args), board)
        if stack:
            texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(folder.rglob("*.ci"))]
            size = dataclasses.replace(size, stack=stack_usage(texts, fpu=board.fpu != "none"))
    if len(_SIZES) >= 16:
        _SIZES.pop(next(iter(_SIZES)))
    _SIZES[key] = size
    return size


_SIZES: dict[str, FirmwareSize] = {}


def _default_opt(makefile: bytes) -> str:
    """The optimisation the project's Makefile builds with (its `OPT ?=` line), so the stack is the build's."""
    found = re.search(rb"^OPT \?= *(.+)$", makefile, re.MULTILINE)
    return found.group(1).decode().strip() if found else "-O2"


def _size_key(files: Mapping[str, bytes], board: BoardSpec, templates_dir, stack: bool) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        if name not in ("linker.ld", "board.json"):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    facts = board.to_dict() | {"templates": str(templates_dir), "measure_stack": stack}
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _first_error(log_path: Path) -> str:
    """The build log's first line that names an error (or its last line), for a one-line message."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines:  # a compiler or linker diagnostic, not a command line that mentions -Werror
        if "error:" in line.lower() or "overflow" in line.lower() or "not a TFLM source tree" in line:
            return line.strip()[:300]
    tail = [line for line in lines if line.strip()]
    return tail[-1].strip()[:300] if tail else "no output"
