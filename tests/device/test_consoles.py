"""Consoles chosen by the board file: semihosting on the emulated boards that say so, the STM32's USART1 on
netduinoplus2 (run under QEMU, which the runner stops at the firmware's exit line) and on the
STM32F746G-DISCO (compiled, not run): no firmware for a board without a debugger executes a semihosting BKPT."""

from __future__ import annotations

import re
import subprocess
import zlib

import pytest

from edgeclust.codegen import board as board_mod
from edgeclust.codegen import project
from edgeclust.device import build, flash, verdict
from edgeclust.errors import FirmwareError
from edgeclust.pipeline.boards import all_boards

QEMU_BOARDS = [board.id for board in all_boards() if board.is_qemu]


def _disassembly(elf) -> str:
    return subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout


def _symbols(elf) -> str:
    return subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("board_id", QEMU_BOARDS)
def test_every_qemu_board_boots_prints_over_its_console_and_exits_with_the_verdict(
    board_id, synthetic_project, tmp_path, cross_tools
):
    out, model = synthetic_project(board_id, tmp_path / "p")
    board = project.read_project_board(out)
    lines = []
    status = flash.flash(out, board, smoke=True, timeout_s=30, on_output=lines.append)
    report = next(line for line in lines if line.startswith("smoke: size="))
    fields = dict(re.findall(r"(\w+)=(\S+)", report))
    assert int(fields["size"]) == len(model) and int(fields["crc32"], 16) == zlib.crc32(model)
    assert board.flash_origin <= int(fields["address"], 16) < board.flash_origin + board.flash_bytes
    assert status == 0 and any(line.startswith("smoke: PASS") for line in lines)
    if board.uses_semihosting:
        assert "edgeclust: exit status 0" not in lines  # QEMU itself ended with the status
    else:
        assert lines[-1] == "edgeclust: exit status 0"  # the UART exit line, where the runner stopped QEMU


def test_netduinoplus2_prints_through_usart1_and_never_through_semihosting(synthetic_project, tmp_path, cross_tools):
    out, _ = synthetic_project("qemu_netduinoplus2", tmp_path / "p")
    board = project.read_project_board(out)
    elf = build.build_make_project(out, board, smoke=True)
    assert re.search(r"\bbkpt\b", _disassembly(elf)) is None
    symbols = _symbols(elf)
    assert "initialise_monitor_handles" not in symbols and " _write" in symbols
    # the USART1 registers the driver writes (RCC_APB2ENR, CR1, DR, SR) are in the console startup.c carries
    console = (out / "startup.c").read_text()
    for register in ("0x40023844u", "0x4001100Cu", "0x40011004u", "0x40011000u"):
        assert register in console
    # the same image with QEMU's serial port sent nowhere prints nothing: the text came through the UART
    with pytest.raises(subprocess.TimeoutExpired) as stopped:
        subprocess.run(
            [
                "qemu-system-arm",
                "-M",
                "netduinoplus2",
                "-nographic",
                "-monitor",
                "none",
                "-serial",
                "null",
                "-kernel",
                str(elf),
            ],
            capture_output=True,
            timeout=3,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    assert b"smoke:" not in (stopped.value.stdout or b"")


def test_a_uart_board_that_fails_or_faults_reports_it_on_its_exit_line(synthetic_project, tmp_path, cross_tools):
    out, _ = synthetic_project("qemu_netduinoplus2", tmp_path / "p")
    board = project.read_project_board(out)
    cc = out / "model_data.cc"
    cc.write_text(cc.read_text().replace("0x54, 0x46, 0x4c, 0x33", "0x54, 0x46, 0x4c, 0x34", 1))  # TFL3 -> TFL4
    lines = []
    assert flash.flash(out, board, smoke=True, timeout_s=30, on_output=lines.append) == 1
    assert lines[-1] == "edgeclust: exit status 1" and any(line.startswith("smoke: FAIL") for line in lines)
    (out / "smoke_test.cc").write_text('#include "model_data.h"\nint main() {\n  __builtin_trap();\n  return 0;\n}\n')
    lines = []
    assert flash.flash(out, board, smoke=True, timeout_s=30, on_output=lines.append) == 4
    assert any("HardFault" in line for line in lines) and lines[-1] == "edgeclust: exit status 4"


def test_a_uart_board_that_never_prints_its_exit_line_is_stopped_at_the_timeout(
    synthetic_project, tmp_path, cross_tools
):
    out, _ = synthetic_project("qemu_netduinoplus2", tmp_path / "p")
    (out / "smoke_test.cc").write_text('#include "model_data.h"\nint main() {\n  for (;;) {\n  }\n}\n')
    with pytest.raises(FirmwareError, match="did not finish within 3 s.*hung"):
        flash.flash(out, project.read_project_board(out), smoke=True, timeout_s=3, on_output=lambda line: None)


def test_the_stm32f746g_disco_firmware_uses_usart1_and_no_semihosting(synthetic_project, tmp_path, cross_tools):
    out, _ = synthetic_project("stm32f746g_disco", tmp_path / "p")
    board = project.read_project_board(out)
    assert board.console == "uart-stm32f7"
    elf = build.build_make_project(out, board, smoke=True)
    assert re.search(r"\bbkpt\b", _disassembly(elf)) is None
    assert "initialise_monitor_handles" not in _symbols(elf)
    console = (out / "startup.c").read_text()
    # STM32F7 USART1: CR1 at +0x00, BRR at +0x0C, ISR at +0x1C, TDR at +0x28; PA9 TX, PB7 RX on AF7
    for register in ("0x40011000u", "0x4001100Cu", "0x4001101Cu", "0x40011028u", "0x40020400u"):
        assert register in console
    ldflags = next(line for line in (out / "Makefile").read_text().splitlines() if line.startswith("LDFLAGS :="))
    assert "--specs=nosys.specs" in ldflags and "rdimon" not in ldflags


def test_only_boards_whose_file_says_semihosting_carry_a_bkpt(synthetic_project, tmp_path, boards_dir):
    for board_id in board_mod.list_boards(boards_dir):
        board = board_mod.load_board(board_id, boards_dir)
        if board.build_system != "make":
            continue
        out, _ = synthetic_project(board_id, tmp_path / board_id)
        startup = (out / "startup.c").read_text()
        assert ("bkpt" in startup) == board.uses_semihosting, board_id
        assert f"---- console: {board.console} ----" in startup, board_id
        ldflags = next(line for line in (out / "Makefile").read_text().splitlines() if line.startswith("LDFLAGS :="))
        assert "rdimon" not in ldflags, board_id  # newlib's _write and _exit come from the console


@pytest.mark.parametrize(
    "line, status",
    [
        ("edgeclust: exit status 0", 0),
        ("edgeclust: exit status 3\r", 3),
        ("self-test: PASS (3/3 outputs bit-identical to the TFLM host interpreter)", 0),
        ("self-test: SKIPPED (no cases were baked in)", 0),
        ("self-test: FAIL (2/3 outputs bit-identical to the TFLM host interpreter)", 1),
        ("smoke: PASS (expected size=3000 crc32=0x26a4cf00)", 0),
        ("smoke: FAIL (expected size=1)", 1),
        ("error: AllocateTensors() failed in a 512-byte arena", 2),
        ("edgeclust firmware: HardFault (the firmware crashed); exit status 4", 4),
        ("self-test case 0: ok; output: 1 2 3", None),
        ("arena used: 100 of 512 bytes", None),
        ("", None),
    ],
)
def test_console_lines_that_carry_a_verdict(line, status):
    assert verdict.verdict(line) == status
    assert verdict.exit_status(line) == (status if line.startswith("edgeclust: exit") else None)
