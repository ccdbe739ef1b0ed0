"""`edgeclust flash` on a real board reads its serial console after flashing: the STM32F746G-DISCO project is
built for real; its flash command is swapped for `touch` (a mark the replay waits for) and the console is a
pty replaying the board's lines."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgeclust.backends.tflm.arena import tflm_arena


def _disco_project(out: Path) -> Path:
    """The STM32F746G-DISCO project around a synthetic model, with a flash command that only leaves a mark."""
    from edgeclust import resources
    from edgeclust.backends.tflm import render
    from edgeclust.codegen import board, project

    model = bytearray(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    model[4:8] = b"TFL3"
    spec = render.TensorSpec("x", (1, 4), "int8", 0.5, 0)
    project.write_files(
        out,
        render.render_files(
            model_data=bytes(model),
            op_names=["FULLY_CONNECTED"],
            board=board.load_board("stm32f746g_disco", resources.boards_dir()),
            interface=render.ModelInterface(inputs=(spec,), outputs=(spec,)),
            self_test=[],
            arena=tflm_arena(512),
            templates_dir=resources.templates_dir(),
        ),
    )
    path = out / "board.json"
    data = json.loads(path.read_text())
    data["board"].update(flash_tool="touch", flash_command="touch {project}/flashed")
    path.write_text(json.dumps(data))
    return out


@pytest.fixture
def console_pty():
    """(port path, replay(project, lines)): the board's console as a pty; once the project is 'flashed', replay
    writes the lines as the firmware would after its reset."""
    master, slave = os.openpty()
    threads = []

    def replay(project: Path, lines):
        def write():
            deadline = time.monotonic() + 120
            while not (project / "flashed").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            for line in lines:
                os.write(master, line.encode() + b"\r\n")

        threads.append(threading.Thread(target=write, daemon=True))
        threads[-1].start()

    yield os.ttyname(slave), replay
    for thread in threads:
        thread.join(timeout=5)
    os.close(master)
    os.close(slave)


def test_flash_shows_the_boards_lines_and_exits_0_on_pass(run_cli, tmp_path, console_pty):
    port, replay = console_pty
    _disco_project(tmp_path / "p")
    replay(
        tmp_path / "p",
        [
            "smoke: size=3000 identifier=TFL3 address=0x08002a00 aligned16=yes crc32=0x26a4cf00",
            "smoke: PASS (expected size=3000 crc32=0x26a4cf00)",
        ],
    )
    result = run_cli(["flash", "p", "--smoke", "--port", port, "--timeout", "20"], cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "smoke: PASS" in result.stdout and f"reading the board's console ({port}, 115200 baud" in result.stdout
    assert "smoke firmware exited with status 0" in result.stdout


def test_flash_exits_1_when_the_board_reports_fail(run_cli, assert_one_line_error, tmp_path, console_pty):
    port, replay = console_pty
    _disco_project(tmp_path / "p")
    replay(
        tmp_path / "p",
        [
            "smoke: size=3000 identifier=TFL4 address=0x08002a00 aligned16=yes crc32=0x11111111",
            "smoke: FAIL (expected size=3000 crc32=0x26a4cf00)",
        ],
    )
    result = run_cli(["flash", "p", "--smoke", "--port", port, "--timeout", "20"], cwd=tmp_path)
    assert_one_line_error(result, 1, "exited with status 1", "smoke check FAIL")
    assert "smoke: FAIL" in result.stdout


def test_flash_times_out_on_a_silent_board_with_one_line(run_cli, assert_one_line_error, tmp_path, console_pty):
    port, _ = console_pty
    _disco_project(tmp_path / "p")
    result = run_cli(["flash", "p", "--smoke", "--port", port, "--timeout", "1"], cwd=tmp_path)
    assert_one_line_error(result, 1, f"no self-test verdict from the board on {port} within 1 s", "--timeout")


def test_flash_runs_a_uart_console_board_under_qemu_and_stops_at_its_exit_line(run_cli, tmp_path):
    from edgeclust import resources
    from edgeclust.backends.tflm import render
    from edgeclust.codegen import board, project

    model = bytearray(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    model[4:8] = b"TFL3"
    spec = render.TensorSpec("x", (1, 4), "int8", 0.5, 0)
    project.write_files(
        tmp_path / "p",
        render.render_files(
            model_data=bytes(model),
            op_names=["FULLY_CONNECTED"],
            board=board.load_board("qemu_netduinoplus2", resources.boards_dir()),
            interface=render.ModelInterface(inputs=(spec,), outputs=(spec,)),
            self_test=[],
            arena=tflm_arena(512),
            templates_dir=resources.templates_dir(),
        ),
    )
    result = run_cli(["flash", "p", "--smoke", "--timeout", "30"], cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "edgeclust: exit status 0" in lines and any(line.startswith("smoke: PASS") for line in lines)
    assert lines[-1] == "smoke firmware exited with status 0 (smoke check PASS)"
