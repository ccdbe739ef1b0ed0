"""The serial reader against a pseudo-terminal pair: a replayed PASS transcript ends with status 0, a FAIL one
with 1, a silent console with a clear timeout; the port is found from the board file's pattern."""

from __future__ import annotations

import os
import threading
import time

import pytest

from edgeclust.device import serial_console
from edgeclust.errors import FirmwareError, InputError

PASS_TRANSCRIPT = [
    "edgeclust firmware for ST STM32F746G-DISCO: model 2848 bytes, 6 op kinds, arena 9216 bytes",
    "arena used: 8912 of 9216 bytes",
    "self-test case 0: ok; output: -128 -128 -128 127 -128 -128 -128 -128 -128 -128",
    "self-test case 1: ok; output: -128 -128 -126 -128 -128 -128 -128 126 -128 -128",
    "self-test: PASS (20/20 outputs bit-identical to the TFLM host interpreter)",
    "case 0: top-1 3 (3)",
]
FAIL_TRANSCRIPT = [
    "edgeclust firmware for ST STM32F746G-DISCO: model 2848 bytes, 6 op kinds, arena 9216 bytes",
    "self-test case 0: DIFFERS; output: -128 -128 -128 126 -128 -128 -128 -128 -128 -128",
    "self-test case 0: expected: -128 -128 -128 127 -128 -128 -128 -128 -128 -128",
    "self-test: FAIL (19/20 outputs bit-identical to the TFLM host interpreter)",
]


@pytest.fixture
def board_port():
    """A pty pair standing for a board: `(path, replay)`, where replay(lines) writes them as the firmware would."""
    master, slave = os.openpty()
    threads = []

    def replay(lines, delay_s: float = 0.2):
        def write():
            time.sleep(delay_s)  # the board resets after the flash tool is done
            for line in lines:
                os.write(master, line.encode() + b"\r\n")
                time.sleep(0.01)

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        threads.append(thread)

    yield os.ttyname(slave), replay
    for thread in threads:
        thread.join(timeout=5)
    os.close(master)
    os.close(slave)


def _flash_and_read(port, replay_lines, replay, timeout_s=10.0):
    shown = []

    def flash_tool():
        if replay_lines is not None:
            replay(replay_lines)
        return 0

    status = serial_console.flash_and_read(
        flash_tool, port=port, baud=115200, timeout_s=timeout_s, on_output=shown.append
    )
    return status, shown


def test_a_pass_transcript_ends_with_status_0_and_shows_the_self_test_lines(board_port):
    port, replay = board_port
    status, shown = _flash_and_read(port, PASS_TRANSCRIPT, replay)
    assert status == 0
    assert shown[-1] == PASS_TRANSCRIPT[4]  # read up to the verdict line, not beyond
    assert PASS_TRANSCRIPT[:5] == shown[-5:] and "reading the board's console" in shown[0]


def test_a_fail_transcript_ends_with_status_1(board_port):
    port, replay = board_port
    status, shown = _flash_and_read(port, FAIL_TRANSCRIPT, replay)
    assert status == 1 and shown[-1].startswith("self-test: FAIL") and any("DIFFERS" in line for line in shown)


def test_a_silent_console_times_out_with_a_clear_message(board_port):
    port, replay = board_port
    with pytest.raises(FirmwareError) as info:
        _flash_and_read(port, None, replay, timeout_s=1.0)
    message = str(info.value)
    assert f"no self-test verdict from the board on {port} within 1 s (heard nothing)" in message
    assert "baud rate (115200)" in message and "--timeout" in message and "\n" not in message
    assert info.value.exit_code == 1


def test_chatter_without_a_verdict_is_counted_in_the_timeout_message(board_port):
    port, replay = board_port
    with pytest.raises(FirmwareError, match=r"heard 2 lines, none with a verdict"):
        _flash_and_read(port, PASS_TRANSCRIPT[:2], replay, timeout_s=1.5)


def test_the_port_is_found_from_the_board_files_pattern(board_port, tmp_path):
    port, replay = board_port
    link = tmp_path / "ttyACM0"
    link.symlink_to(port)
    status, _ = _flash_and_read(str(tmp_path / "ttyACM*"), PASS_TRANSCRIPT, replay)
    assert status == 0


def test_no_matching_port_times_out_saying_to_connect_the_board(tmp_path):
    expected = r"no serial port matched .*ttyACM\* within 0.5 s.*connect the board.*--port"
    with pytest.raises(FirmwareError, match=expected):
        serial_console.flash_and_read(
            lambda: 0, port=str(tmp_path / "ttyACM*"), baud=115200, timeout_s=0.5, on_output=lambda line: None
        )


def test_several_matching_ports_are_refused_before_flashing(tmp_path, board_port):
    port, _ = board_port
    for name in ("ttyACM0", "ttyACM1"):
        (tmp_path / name).symlink_to(port)
    flashed = []
    with pytest.raises(InputError, match=r"several serial ports match .*ttyACM0.*ttyACM1.*--port"):
        serial_console.flash_and_read(
            lambda: flashed.append(1) or 0,
            port=str(tmp_path / "ttyACM*"),
            baud=115200,
            timeout_s=1,
            on_output=lambda line: None,
        )
    assert flashed == []


def test_a_failing_flash_tool_is_reported_and_the_console_not_waited_for(board_port):
    port, _ = board_port
    with pytest.raises(FirmwareError, match="openocd exited with status 1; the board was not flashed"):
        serial_console.flash_and_read(
            lambda: 1, port=port, baud=115200, timeout_s=30, on_output=lambda line: None, tool_name="openocd"
        )
