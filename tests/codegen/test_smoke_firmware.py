"""The flash-and-run path without TFLM: the generated model array, linked with the project's startup code and
linker script, runs under QEMU on both QEMU boards and checks its size, identifier, alignment and CRC32."""

from __future__ import annotations

import re
import zlib

import pytest

from edgeclust.codegen import project
from edgeclust.device import flash, qemu
from edgeclust.errors import FirmwareError

QEMU_BOARDS = ["qemu_mps2_an386", "qemu_lm3s6965evb"]


@pytest.mark.parametrize("board_id", QEMU_BOARDS)
def test_the_model_array_arrives_whole_and_aligned_on_the_board(
    board_id, make_project, tiny_model, tmp_path, cross_tools
):
    out = tmp_path / "p"
    make_project(board_id, out)
    lines = []
    status = flash.flash(out, project.read_project_board(out), smoke=True, timeout_s=30, on_output=lines.append)
    report = next(line for line in lines if line.startswith("smoke: size="))
    fields = dict(re.findall(r"(\w+)=(\S+)", report))
    assert int(fields["size"]) == len(tiny_model.tflite)
    assert fields["identifier"] == "TFL3" == tiny_model.tflite[4:8].decode()
    assert fields["aligned16"] == "yes" and int(fields["address"], 16) % 16 == 0
    assert int(fields["crc32"], 16) == zlib.crc32(tiny_model.tflite)
    assert "smoke: PASS" in lines[-1] and status == 0
    # the array sits in the board's flash
    board = project.read_project_board(out)
    assert board.flash_origin <= int(fields["address"], 16) < board.flash_origin + board.flash_bytes


def test_a_corrupted_array_fails_on_the_board(make_project, tmp_path, cross_tools):
    out = tmp_path / "p"
    make_project("qemu_lm3s6965evb", out)
    cc = out / "model_data.cc"
    text = cc.read_text()
    cc.write_text(text.replace("0x54, 0x46, 0x4c, 0x33", "0x54, 0x46, 0x4c, 0x34", 1))  # TFL3 -> TFL4
    lines = []
    status = flash.flash(out, project.read_project_board(out), smoke=True, timeout_s=30, on_output=lines.append)
    assert status == 1 and "smoke: FAIL" in lines[-1] and "identifier=TFL4" in "\n".join(lines)


def _replace_smoke_main(out, body: str) -> None:
    (out / "smoke_test.cc").write_text('#include "model_data.h"\nint main() {\n' + body + "\n}\n")


def test_a_hanging_firmware_is_stopped_with_an_error(make_project, tmp_path, cross_tools):
    out = tmp_path / "p"
    make_project("qemu_mps2_an386", out)
    _replace_smoke_main(out, "  for (;;) {\n  }")
    with pytest.raises(FirmwareError, match="did not finish within 2 s.*hung"):
        flash.flash(out, project.read_project_board(out), smoke=True, timeout_s=2, on_output=lambda line: None)


@pytest.mark.parametrize("board_id", QEMU_BOARDS)
def test_a_hardfault_ends_the_run_with_status_4(board_id, make_project, tmp_path, cross_tools):
    out = tmp_path / "p"
    make_project(board_id, out)
    _replace_smoke_main(out, "  __builtin_trap();\n  return 0;")
    lines = []
    status = flash.flash(out, project.read_project_board(out), smoke=True, timeout_s=20, on_output=lines.append)
    assert status == 4 and any("HardFault" in line for line in lines)
    assert qemu.status_meaning(4).startswith("HardFault")


def test_a_build_error_is_one_line_naming_the_log(make_project, tmp_path, cross_tools):
    out = tmp_path / "p"
    make_project("qemu_mps2_an386", out)
    (out / "smoke_test.cc").write_text("int main() { return undefined_name; }\n")
    with pytest.raises(FirmwareError) as info:
        flash.flash(out, project.read_project_board(out), smoke=True, on_output=lambda line: None)
    message = str(info.value)
    assert "build failed" in message and "undefined_name" in message and "build.log" in message
    assert "\n" not in message
