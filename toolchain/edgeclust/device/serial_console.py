"""A real board's serial console after flashing: find its port (the board file's pattern, or --port), read it
from before the flash tool runs, show each line, and stop at the firmware's verdict line, under a timeout.

The port is read in a background thread so the lines the firmware prints right after its reset are not lost;
a port that disappears (a USB device re-enumerating after the flash) is looked for again until the deadline.
"""

from __future__ import annotations

import glob
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgeclust.device import verdict
from edgeclust.errors import FirmwareError, InputError

_POLL_S = 0.1
_OPEN_WAIT_S = 2.0  # how long entering waits for a port that exists to open, so no early line is lost


@dataclass(frozen=True)
class ConsoleVerdict:
    """How a run on the board ended: its status (0 = self-test PASS), the line that said so, and the port."""

    status: int
    line: str
    port: str
    lines_read: int


def find_port(pattern: str) -> str | None:
    """The one serial device matching `pattern` (a path or a glob such as /dev/ttyACM*), None if none yet.

    Several matches are an InputError listing them, since edgeclust cannot tell which one is the board.
    """
    if not any(c in pattern for c in "*?["):
        return pattern if glob.glob(pattern) else None
    matches = sorted(glob.glob(pattern))
    if len(matches) > 1:
        raise InputError(f"several serial ports match {pattern} ({', '.join(matches)}); choose the board's with --port")
    return matches[0] if matches else None


class SerialConsole:
    """The board's console, read in the background while the flash tool runs; `wait` returns its verdict."""

    def __init__(self, port: str, baud: int, *, on_output: Callable[[str], None] = print):
        self.pattern = port
        self.baud = baud
        self.on_output = on_output
        self._lines: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._opened: list[str] = []
        self._errors: list[str] = []
        self._first_open = threading.Event()
        self._thread = threading.Thread(target=self._read_forever, name="edgeclust-serial", daemon=True)

    def __enter__(self) -> SerialConsole:
        present = find_port(self.pattern)  # several matches: refuse before anything is flashed
        self._thread.start()
        if present is not None:  # opening it clears its input: open before the board is reset by the flash
            self._first_open.wait(_OPEN_WAIT_S)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def wait(self, timeout_s: float) -> ConsoleVerdict:
        """Show the console's lines until one carries a verdict; past `timeout_s` raise FirmwareError."""
        deadline = time.monotonic() + timeout_s
        count = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FirmwareError(self._silence_message(timeout_s, count))
            try:
                line = self._lines.get(timeout=min(left, _POLL_S * 2))
            except queue.Empty:
                continue
            count += 1
            self.on_output(line)
            status = verdict.verdict(line)
            if status is not None:
                return ConsoleVerdict(status=status, line=line, port=self._opened[-1], lines_read=count)

    def _silence_message(self, timeout_s: float, count: int) -> str:
        if not self._opened:
            why = f"; last error: {self._errors[-1]}" if self._errors else ""
            return (
                f"no serial port matched {self.pattern} within {timeout_s:g} s{why}: connect the board "
                "(or give its port with --port)"
            )
        heard = f"{count} lines, none with a verdict" if count else "nothing"
        return (
            f"no self-test verdict from the board on {self._opened[-1]} within {timeout_s:g} s (heard {heard}): "
            f"check the baud rate ({self.baud}) and the cable, press the board's reset button, or raise --timeout"
        )

    def _read_forever(self) -> None:
        import serial  # pyserial, only where a real board is read

        while not self._stop.is_set():
            try:
                port = find_port(self.pattern)
            except InputError as exc:
                self._errors.append(str(exc))
                port = None
            if port is None:
                time.sleep(_POLL_S)
                continue
            try:
                with serial.Serial(port, self.baud, timeout=_POLL_S) as device:
                    self._opened.append(port)
                    self._first_open.set()
                    self._read_lines(device)
            except (serial.SerialException, OSError) as exc:  # gone (re-enumerating) or not ready yet
                self._errors.append(f"{port}: {exc}")
                time.sleep(_POLL_S)

    def _read_lines(self, device) -> None:
        pending = b""
        while not self._stop.is_set():
            chunk = device.read(256)
            if not chunk:
                continue
            pending += chunk
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                self._lines.put(raw.decode("utf-8", errors="replace").rstrip("\r"))


def flash_and_read(
    flash_tool: Callable[[], int],
    *,
    port: str,
    baud: int,
    timeout_s: float,
    on_output: Callable[[str], None] = print,
    tool_name: str = "the flash tool",
) -> int:
    """Open the console on `port`, run `flash_tool()` (its exit status), then read until the verdict; return it."""
    with SerialConsole(port, baud, on_output=on_output) as console:
        status = flash_tool()
        if status != 0:
            raise FirmwareError(
                f"{tool_name} exited with status {status}; the board was not flashed (see its output above)"
            )
        on_output(f"reading the board's console ({port}, {baud} baud; up to {timeout_s:g} s)")
        return console.wait(timeout_s).status
