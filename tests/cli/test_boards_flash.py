"""`edgeclust boards` and `edgeclust flash`: the board list, the smoke run, and every failure as one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeclust.backends.tflm.arena import tflm_arena

BOARD_IDS = [
    "arduino_nano33_ble",
    "esp32s3_devkitc",
    "qemu_lm3s6965evb",
    "qemu_microbit",
    "qemu_mps2_an386",
    "qemu_mps2_an500",
    "qemu_mps3_an547",
    "qemu_netduinoplus2",
    "rpi_pico",
    "stm32f746g_disco",
]


def _project(out: Path, board_id: str = "qemu_mps2_an386") -> Path:
    """A project around a synthetic 'model' (random bytes with the TFL3 identifier): enough for the smoke firmware."""
    from edgeclust import resources
    from edgeclust.backends.tflm import render
    from edgeclust.codegen import board, project

    model = bytearray(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    model[4:8] = b"TFL3"
    spec = render.TensorSpec("x", (1, 4), "int8", 0.5, 0)
    files = render.render_files(
        model_data=bytes(model),
        op_names=["FULLY_CONNECTED"],
        board=board.load_board(board_id, resources.boards_dir()),
        interface=render.ModelInterface(inputs=(spec,), outputs=(spec,)),
        self_test=[],
        arena=tflm_arena(512),
        templates_dir=resources.templates_dir(),
    )
    project.write_files(out, files)
    return out


@pytest.fixture
def tools_without(tmp_path):
    """`tools_without(name)`: a PATH with make, the cross compiler and QEMU linked in, except `name`."""

    def path_without(missing: str) -> str:
        folder = tmp_path / f"bin-without-{missing}"
        folder.mkdir()
        for tool in (
            "make",
            "arm-none-eabi-gcc",
            "arm-none-eabi-g++",
            "arm-none-eabi-size",
            "arm-none-eabi-objcopy",
            "arm-none-eabi-ar",
            "qemu-system-arm",
            "timeout",
            "find",
            "sort",
            "cmp",
            "mkdir",
            "rm",
        ):
            found = shutil.which(tool)
            if tool != missing and found:
                (folder / tool).symlink_to(found)
        return str(folder)

    return path_without


def test_boards_lists_every_board_with_its_memory(run_cli):
    result = run_cli(["boards"])
    assert result.exit_code == 0, result.stderr
    for board_id in BOARD_IDS:
        assert board_id in result.stdout
    lm3s = next(line for line in result.stdout.splitlines() if line.startswith("qemu_lm3s6965evb"))
    assert "LM3S6965" in lm3s and "256 KiB" in lm3s and "64 KiB" in lm3s and "QEMU lm3s6965evb" in lm3s
    data = json.loads(run_cli(["boards", "--json"]).stdout)
    assert [b["id"] for b in data] == BOARD_IDS
    assert {b["id"]: b["ram_bytes"] for b in data}["qemu_lm3s6965evb"] == 65536
    microbit = next(line for line in result.stdout.splitlines() if line.startswith("qemu_microbit"))
    assert "nRF51822" in microbit and "cortex-m0" in microbit and "16 KiB" in microbit and "QEMU microbit" in microbit
    consoles = {b["id"]: (b["console"], b["serial_port"]) for b in data}
    assert consoles["qemu_netduinoplus2"] == ("uart-stm32f4", None)
    assert consoles["stm32f746g_disco"] == ("uart-stm32f7", "/dev/ttyACM*")


def test_flash_smoke_runs_under_qemu_and_exits_0(run_cli, tmp_path):
    _project(tmp_path / "out" / "firmware", "qemu_lm3s6965evb")
    result = run_cli(["flash", "out", "--smoke"], cwd=tmp_path)  # the build's --out folder works too
    assert result.exit_code == 0, result.stderr
    assert "smoke: PASS" in result.stdout and "exited with status 0" in result.stdout


def test_unknown_board_lists_the_known_ones_and_writes_nothing(
    run_cli, assert_one_line_error, nothing_written, tmp_path
):
    _project(tmp_path / "p")
    with nothing_written(tmp_path):
        result = run_cli(["flash", "p", "--board", "esp8266", "--smoke"], cwd=tmp_path)
    assert_one_line_error(result, 2, "unknown board 'esp8266'", "qemu_lm3s6965evb", "rpi_pico")


@pytest.mark.parametrize("make_dir, fragment", [(False, "no such folder"), (True, "no board.json")])
def test_a_folder_that_is_not_a_project_is_refused(run_cli, assert_one_line_error, tmp_path, make_dir, fragment):
    if make_dir:
        (tmp_path / "p").mkdir()
    result = run_cli(["flash", "p"], cwd=tmp_path)
    assert_one_line_error(result, 2, fragment)


def test_a_broken_board_json_names_the_field(run_cli, assert_one_line_error, nothing_written, tmp_path):
    _project(tmp_path / "p")
    path = tmp_path / "p" / "board.json"
    data = json.loads(path.read_text())
    data["board"]["flash_bytes"] = "lots"
    path.write_text(json.dumps(data))
    with nothing_written(tmp_path):
        result = run_cli(["flash", "p", "--smoke"], cwd=tmp_path)
    assert_one_line_error(result, 2, "board.json", "'flash_bytes' must be an integer")


@pytest.mark.parametrize(
    "missing, fragments",
    [
        ("arm-none-eabi-gcc", ["arm-none-eabi-gcc is not installed", "apt-get install gcc-arm-none-eabi"]),
        ("qemu-system-arm", ["qemu-system-arm is not installed", "apt-get install qemu-system-arm"]),
        ("make", ["make is not installed", "apt-get install make"]),
    ],
)
def test_a_missing_tool_is_named_with_what_to_install(
    run_cli, assert_one_line_error, nothing_written, tools_without, monkeypatch, tmp_path, missing, fragments
):
    _project(tmp_path / "p")
    monkeypatch.setenv("PATH", tools_without(missing))
    with nothing_written(tmp_path / "p"):
        result = run_cli(["flash", "p", "--smoke"], cwd=tmp_path)
    assert_one_line_error(result, 1, *fragments)


def test_a_tflm_build_without_tflm_root_says_how_to_set_it(
    run_cli, assert_one_line_error, nothing_written, monkeypatch, tmp_path
):
    _project(tmp_path / "p")
    monkeypatch.delenv("TFLM_ROOT", raising=False)
    with nothing_written(tmp_path / "p"):
        result = run_cli(["flash", "p"], cwd=tmp_path)
    assert_one_line_error(result, 1, "TFLM_ROOT is not set", "create_tflm_tree.py", "--smoke")
    with nothing_written(tmp_path / "p"):
        result = run_cli(["flash", "p", "--tflm-root", str(tmp_path)], cwd=tmp_path)
    assert_one_line_error(result, 1, "is not a TFLM source tree")


def test_a_hanging_firmware_is_stopped_after_the_timeout(run_cli, assert_one_line_error, tmp_path):
    _project(tmp_path / "p")
    (tmp_path / "p" / "smoke_test.cc").write_text("int main() {\n  for (;;) {\n  }\n}\n")
    result = run_cli(["flash", "p", "--smoke", "--timeout", "2"], cwd=tmp_path)
    assert_one_line_error(result, 1, "did not finish within 2 s", "hung", "--timeout")


def test_the_firmware_status_becomes_the_exit_code(run_cli, assert_one_line_error, tmp_path):
    _project(tmp_path / "p")
    cc = tmp_path / "p" / "smoke_test.cc"
    cc.write_text(
        cc.read_text().replace(
            "constexpr unsigned int kExpectedSize = 3000u;", "constexpr unsigned int kExpectedSize = 3001u;"
        )
    )
    result = run_cli(["flash", "p", "--smoke"], cwd=tmp_path)
    line = assert_one_line_error(result, 1, "exited with status 1", "smoke check FAIL")
    assert "smoke: FAIL" in result.stdout, line


@pytest.mark.parametrize(
    "ending, status, meaning",
    [
        ("  return 2;\n}", 2, "could not be set up"),  # a status that must not read as a usage error
        ("  __builtin_trap();\n}", 4, "HardFault"),  # a fault: the startup code ends the run with 4
    ],
)
def test_a_failing_or_faulting_firmware_exits_1_with_its_status_and_meaning(
    run_cli, assert_one_line_error, tmp_path, ending, status, meaning
):
    _project(tmp_path / "p")
    cc = tmp_path / "p" / "smoke_test.cc"
    source = cc.read_text()
    cc.write_text(source[: source.rindex("  return ok ? 0 : 1;\n}")] + ending + "\n")
    result = run_cli(["flash", "p", "--smoke"], cwd=tmp_path)
    assert_one_line_error(result, 1, f"exited with status {status}", meaning)
