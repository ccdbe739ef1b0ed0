"""What a firmware's console lines say about the run: read by the QEMU runner on UART boards (which cannot end
QEMU themselves) and by the serial reader on real boards. Statuses as in main_functions.h and startup.c."""

from __future__ import annotations

import re

# printed by console_exit() on a UART console (firmware_templates/board/console/uart-exit.c.j2)
_EXIT_LINE = re.compile(r"^edgeclust: exit status (-?\d+)$")
_VERDICTS = (
    (re.compile(r"^self-test: (PASS|SKIPPED)\b"), 0),
    (re.compile(r"^self-test: FAIL\b"), 1),
    (re.compile(r"^smoke: PASS\b"), 0),
    (re.compile(r"^smoke: FAIL\b"), 1),
    (re.compile(r"^error: "), 2),  # setup() failed: schema version, ops or arena
    (re.compile(r"^edgeclust firmware: HardFault\b"), 4),
)


def exit_status(line: str) -> int | None:
    """The status of an "edgeclust: exit status N" line, else None."""
    match = _EXIT_LINE.match(line.strip())
    return int(match.group(1)) if match else None


def verdict(line: str) -> int | None:
    """The firmware status a console line announces (self-test PASS/FAIL, smoke check, setup error, HardFault,
    or the exit line), else None."""
    status = exit_status(line)
    if status is not None:
        return status
    text = line.strip()
    for pattern, status in _VERDICTS:
        if pattern.match(text):
            return status
    return None
