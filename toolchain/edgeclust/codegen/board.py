"""Boards: one flat TOML file per board (boards/<id>.toml) read into a frozen, validated BoardSpec."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from edgeclust.errors import BoardError

BUILD_SYSTEMS = ("make", "cmake-pico-sdk", "cmake-esp-idf", "platformio")
# How the firmware prints. semihosting needs a debugger (a BKPT faults on a board without one), so only
# emulated boards use it; uart-* are edgeclust's own USART drivers; sdk-stdio and arduino-serial the SDK's.
CONSOLES = ("semihosting", "uart-stm32f4", "uart-stm32f7", "sdk-stdio", "arduino-serial")
UART_CONSOLES = ("uart-stm32f4", "uart-stm32f7")
# which build systems can carry each console
_CONSOLE_BUILD_SYSTEMS = {
    "semihosting": ("make",),
    "uart-stm32f4": ("make",),
    "uart-stm32f7": ("make",),
    "sdk-stdio": ("cmake-pico-sdk", "cmake-esp-idf"),
    "arduino-serial": ("platformio",),
}
# One per CPU family with a QEMU board; codegen/runtime_sizes.toml prices the TFLM runtime for each (measured or
# estimated). Cortex-M33 joins when a board needs it (QEMU's mps2-an505 boots it Secure at 0x10000000).
RUNTIME_PROFILES = ("cortex-m0", "cortex-m3", "cortex-m4f", "cortex-m7", "cortex-m55")
_BOARD_ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass(frozen=True)
class BoardSpec:
    """A board as the firmware generator, the budget check and `edgeclust flash` see it."""

    id: str
    name: str
    mcu: str
    cpu: str
    fpu: str  # "none" for soft float
    flash_bytes: int
    ram_bytes: int
    build_system: str  # one of BUILD_SYSTEMS
    cflags: tuple[str, ...]
    flash_tool: str
    flash_tool_install: str  # what to run to get flash_tool
    flash_command: str  # run in the project folder; {elf}, {bin}, {project} are filled in
    stack_bytes: int  # the stack a runtime whose stack is not measured reserves (TFLM's)
    runtime_profile: str  # which column of codegen/runtime_sizes.toml prices the TFLM runtime
    qemu_machine: str | None = None  # None for a real board
    heap_bytes: int = 4096  # the heap reserve of a runtime that may malloc (TFLM's); the native runtime has none
    # added to the stack measured from a native build's call graph (library code outside it, headroom)
    stack_margin_bytes: int = 256
    flash_origin: int = 0
    ram_origin: int = 0x20000000
    console: str = "semihosting"  # one of CONSOLES
    sdk_board: str | None = None  # PlatformIO board, Pico SDK PICO_BOARD or ESP-IDF target
    serial_port: str | None = None  # a real board's console device, a glob such as /dev/ttyACM*
    serial_baud: int = 115200

    @property
    def is_qemu(self) -> bool:
        return self.qemu_machine is not None

    @property
    def uses_semihosting(self) -> bool:
        return self.console == "semihosting"

    @property
    def hard_float(self) -> bool:
        return "-mfloat-abi=hard" in self.cflags

    def to_dict(self) -> dict:
        """Plain values (lists, not tuples) for board.json and report.json."""
        data = asdict(self)
        data["cflags"] = list(self.cflags)
        return data


# field -> (type, required); `id` comes from the file name
_STR, _INT, _LIST = "a string", "an integer", "a list of strings"
_FIELDS = {
    "name": (_STR, True),
    "mcu": (_STR, True),
    "cpu": (_STR, True),
    "fpu": (_STR, True),
    "flash_bytes": (_INT, True),
    "ram_bytes": (_INT, True),
    "build_system": (_STR, True),
    "cflags": (_LIST, True),
    "flash_tool": (_STR, True),
    "flash_tool_install": (_STR, True),
    "flash_command": (_STR, True),
    "stack_bytes": (_INT, True),
    "runtime_profile": (_STR, True),
    "qemu_machine": (_STR, False),
    "heap_bytes": (_INT, False),
    "stack_margin_bytes": (_INT, False),
    "flash_origin": (_INT, False),
    "ram_origin": (_INT, False),
    "console": (_STR, False),
    "sdk_board": (_STR, False),
    "serial_port": (_STR, False),
    "serial_baud": (_INT, False),
}
_CHOICES = {"build_system": BUILD_SYSTEMS, "console": CONSOLES, "runtime_profile": RUNTIME_PROFILES}
_POSITIVE = ("flash_bytes", "ram_bytes", "stack_bytes", "serial_baud")
assert set(_FIELDS) | {"id"} == {f.name for f in fields(BoardSpec)}


def list_boards(boards_dir: str | os.PathLike) -> list[str]:
    """The ids of the boards in `boards_dir` (file names of boards/<id>.toml), sorted."""
    boards_dir = Path(boards_dir)
    if not boards_dir.is_dir():
        raise BoardError(f"{boards_dir}: no such boards folder")
    return sorted(p.stem for p in boards_dir.glob("*.toml") if _BOARD_ID.match(p.stem))


def load_board(board_id: str, boards_dir: str | os.PathLike) -> BoardSpec:
    """Read and check boards/<board_id>.toml; an unknown id is an error listing the known ones."""
    known = list_boards(boards_dir)
    if board_id not in known:
        raise BoardError(
            f"unknown board {board_id!r}; known boards: {', '.join(known) or 'none'} "
            "(run `edgeclust boards` for their memory sizes)"
        )
    path = Path(boards_dir) / f"{board_id}.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BoardError(f"{path}: cannot read the board file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(f"{path}: not valid TOML ({exc}); fix the file") from None
    return board_from_dict(board_id, raw, source=str(path))


def board_from_dict(board_id: str, raw: dict, *, source: str = "board") -> BoardSpec:
    """Check the fields of one board (from a TOML file or a project's board.json) and build its BoardSpec."""
    unknown = sorted(set(raw) - set(_FIELDS) - {"id"})
    if unknown:
        raise BoardError(f"{source}: unknown field {unknown[0]!r}; the fields are {', '.join(_FIELDS)}")
    values = {}
    for name, (kind, required) in _FIELDS.items():
        if name not in raw or raw[name] is None:
            if required:
                raise BoardError(f"{source}: missing field {name!r} ({kind}); add it to the board file")
            continue
        values[name] = _checked(source, name, kind, raw[name])
    for name in _POSITIVE:
        if values.get(name, 1) <= 0:
            raise BoardError(f"{source}: field {name!r} must be > 0. Received: {values[name]}")
    for name in ("heap_bytes", "stack_margin_bytes", "flash_origin", "ram_origin"):
        if values.get(name, 0) < 0:
            raise BoardError(f"{source}: field {name!r} must be >= 0. Received: {values[name]}")
    for name, choices in _CHOICES.items():
        if name in values and values[name] not in choices:
            raise BoardError(
                f"{source}: field {name!r} must be one of {', '.join(choices)}. Received: {values[name]!r}"
            )
    if values["stack_bytes"] + values.get("heap_bytes", 4096) >= values["ram_bytes"]:
        raise BoardError(f"{source}: stack_bytes + heap_bytes leave no RAM of the {values['ram_bytes']:,} bytes")
    _check_console(source, values)
    return BoardSpec(id=board_id, **values)


def _check_console(source: str, values: dict) -> None:
    """The console must suit the build system; semihosting only on QEMU boards; real boards name their port."""
    console, build_system = values.get("console", "semihosting"), values["build_system"]
    if build_system not in _CONSOLE_BUILD_SYSTEMS[console]:
        raise BoardError(
            f"{source}: console {console!r} cannot be used with build_system {build_system!r}; "
            f"it needs {' or '.join(_CONSOLE_BUILD_SYSTEMS[console])}"
        )
    emulated = values.get("qemu_machine") is not None
    if console == "semihosting" and not emulated:
        raise BoardError(
            f"{source}: console 'semihosting' needs a debugger and faults on a board without one; "
            f"give a real board a UART console ({', '.join(c for c in CONSOLES if c != 'semihosting')})"
        )
    if not emulated and "serial_port" not in values:
        raise BoardError(
            f"{source}: a real board needs field 'serial_port' (a string: its console device, e.g. '/dev/ttyACM*')"
        )


def _checked(source: str, name: str, kind: str, value):
    if kind == _INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == _LIST:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str) and value.strip() != ""
    if not ok:
        raise BoardError(f"{source}: field {name!r} must be {kind}. Received: {value!r}")
    return value
