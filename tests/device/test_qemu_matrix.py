"""The QEMU matrix: every QEMU board (one per CPU family) x the native backend x the digits CNN clustered to
8 values, its boot self-test bit-identical to the TFLM interpreter; the TFLM backend on the same boards when
TFLM_ROOT is set. The Cortex-M0 build holds no instruction ARMv6-M lacks, and QEMU faults on one that it
lacks; SysTick ticks become the same instruction count on two machines of different clocks.

The rows come from scripts/boards_matrix.py, which prints the same matrix as a table (one rule, one place).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeclust.codegen import board as board_mod
from edgeclust.codegen import project
from edgeclust.device import flash

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "boards_matrix.py"
# 32-bit Thumb-2 encodings ARMv6-M keeps: calls and the system instructions
ARMV6M_WIDE = {"bl", "mrs", "msr", "dsb", "dmb", "isb"}
ARMV7M_ONLY = re.compile(
    r"^(sdiv|udiv|smla\w*|smul\w*|smlal\w*|umlal|umull|smull|mla|mls|ssat|usat|qadd\w*|qsub\w*|"
    r"sxtb16|uxtb16|pkh\w+|sel|clz|rbit|ldrex\w*|strex\w*|it\w*|cbz|cbnz|ubfx|sbfx|bfi|bfc)$"
)


def _load_script():
    """scripts/boards_matrix.py as a module (registered, so that its dataclasses resolve their module)."""
    if "boards_matrix" in sys.modules:
        return sys.modules["boards_matrix"]
    spec = importlib.util.spec_from_file_location("boards_matrix", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["boards_matrix"] = module
    spec.loader.exec_module(module)
    return module


MATRIX = _load_script()


@pytest.fixture(scope="module")
def matrix():
    return MATRIX


@pytest.fixture(scope="module")
def digits8(matrix):
    """The digits CNN clustered to 8 values per kernel, int8, with 3 self-test cases from the TFLM interpreter."""
    return matrix.digits_model(clusters=8, cases=3)


@pytest.fixture(scope="module")
def native_rows(matrix, digits8, boards_dir, tmp_path_factory):
    """`native_rows(board_id)`: that board's native row, built and run once per module."""
    work = tmp_path_factory.mktemp("matrix")
    rows = {}

    def row(board_id: str):
        if board_id not in rows:
            rows[board_id] = matrix.native_row(board_mod.load_board(board_id, boards_dir), digits8, work)
        return rows[board_id]

    return row


def _wide_mnemonics(elf) -> list[str]:
    """The mnemonics of every 32-bit Thumb instruction in the ELF (objdump shows them as two halfwords)."""
    text = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"^\s+[0-9a-f]+:\s+[0-9a-f]{4} [0-9a-f]{4}\s+(\S+)", text, re.M)


def _mnemonics(elf) -> set[str]:
    text = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in re.findall(r"^\s+[0-9a-f]+:\s+[0-9a-f]{4}(?: [0-9a-f]{4})?\s+(\S+)", text, re.M)}


@pytest.mark.parametrize("board_id", MATRIX.QEMU_BOARDS)
def test_the_native_firmware_passes_its_self_test_on_every_qemu_board(
    board_id, native_rows, digits8, boards_dir, cross_tools
):
    board = board_mod.load_board(board_id, boards_dir)
    row = native_rows(board_id)
    cases = len(digits8.inputs)
    assert row.status == 0 and row.result == f"PASS {cases}/{cases}", row.lines
    assert any(line.startswith(f"self-test: PASS ({cases}/{cases} outputs bit-identical") for line in row.lines)
    assert 0 < row.flash <= board.flash_bytes and 0 < row.ram <= board.ram_bytes
    # a count, not garbage: the digits CNN at 8 clusters has 80k MACs; no core does them in fewer than 100k
    assert 100_000 < row.instructions < 20_000_000
    if not board.uses_semihosting:  # netduinoplus2: the lines came over USART1, the run ended on the exit line
        assert row.lines[-1] == "edgeclust: exit status 0"


def test_two_machines_with_different_clocks_count_the_same_instructions(native_rows, cross_tools):
    # mps2-an386 (25 MHz) and netduinoplus2 (168 MHz) run the same Cortex-M4F code: the ticks differ 6.7x
    an386, netduino = native_rows("qemu_mps2_an386"), native_rows("qemu_netduinoplus2")
    assert abs(an386.instructions - netduino.instructions) <= 0.0005 * an386.instructions


def test_the_cortex_m0_firmware_needs_no_divide_dsp_or_thumb2_data_instructions(native_rows, cross_tools):
    m0 = native_rows("qemu_microbit")
    assert set(_wide_mnemonics(m0.elf)) <= ARMV6M_WIDE
    assert not {m for m in _mnemonics(m0.elf) if ARMV7M_ONLY.match(m)}
    # the check sees what it looks for: the Cortex-M4F build of the same model has them
    m4 = native_rows("qemu_mps2_an386")
    assert set(_wide_mnemonics(m4.elf)) - ARMV6M_WIDE and {m for m in _mnemonics(m4.elf) if ARMV7M_ONLY.match(m)}


def test_qemu_faults_on_an_instruction_the_cortex_m0_lacks(synthetic_project, tmp_path, cross_tools):
    out, _ = synthetic_project("qemu_microbit", tmp_path / "p")
    (out / "smoke_test.cc").write_text(
        '#include "model_data.h"\nint main() {\n'
        '  __asm__ volatile(".inst.w 0xfb90f0f1" ::: "r0");  // sdiv r0, r0, r1: ARMv7-M only\n  return 0;\n}\n'
    )
    lines = []
    status = flash.flash(out, project.read_project_board(out), smoke=True, timeout_s=20, on_output=lines.append)
    assert status == 4 and any("HardFault" in line for line in lines)


def test_the_matrix_prints_as_a_table(matrix, native_rows, cross_tools):
    rows = [native_rows("qemu_microbit"), native_rows("qemu_netduinoplus2")]
    lines = matrix.table(rows).splitlines()
    assert lines[0].split()[:4] == ["board", "CPU", "model", "backend"] and len(lines) == 4
    assert lines[2].startswith("qemu_microbit") and "cortex-m0" in lines[2] and "digits CNN, 8 clusters" in lines[2]
    assert " native " in lines[2] and lines[2].endswith("PASS 3/3")
    assert f"{rows[0].instructions:,}" in lines[2]


def test_the_mnist_cnn_at_4_values_runs_on_the_microbits_16_kib(matrix, boards_dir, tmp_path, cross_tools):
    microbit = board_mod.load_board("qemu_microbit", boards_dir)
    row = matrix.native_row(microbit, matrix.mnist_model(values=4, cases=2), tmp_path)
    assert row.status == 0 and row.result == "PASS 2/2", row.lines
    assert row.flash <= 256 * 1024 and row.ram <= 16 * 1024


def test_the_unclustered_mnist_cnn_is_refused_by_the_microbits_flash_and_neither_built_nor_run(
    matrix, boards_dir, tmp_path, cross_tools
):
    import numpy as np

    from edgeclust import examples
    from edgeclust.tflite.convert import to_tflite

    tflite = to_tflite(
        examples.mnist_cnn(seed=0),
        quantize="int8",
        representative_data=np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32),
        num_calibration=8,
    )
    model = matrix.DigitsModel(tflite=tflite, inputs=[], expected=[], name="MNIST CNN, int8")
    row = matrix.native_row(board_mod.load_board("qemu_microbit", boards_dir), model, tmp_path)
    assert row.result.startswith("does not fit: flash ") and "of 262,144" in row.result and "RAM" not in row.result
    assert row.flash > 256 * 1024 and row.ram <= 16 * 1024  # the fused, planned arena alone would fit
    assert not list(tmp_path.iterdir())  # nothing was built


@pytest.fixture(scope="module")
def tflm_root():
    root = os.environ.get("TFLM_ROOT", "")
    if not root:
        pytest.skip(
            "TFLM_ROOT is not set: build a TFLM tree as DEVELOPERS.md says, then run "
            "`TFLM_ROOT=/path/to/tree pytest tests/device/test_qemu_matrix.py`"
        )
    return root


@pytest.mark.parametrize("board_id", MATRIX.QEMU_BOARDS)
def test_the_tflm_firmware_passes_its_self_test_on_every_qemu_board(
    board_id, matrix, digits8, tflm_root, boards_dir, tmp_path, cross_tools
):
    board = board_mod.load_board(board_id, boards_dir)
    row = matrix.tflm_row(board, digits8, tmp_path, tflm_root)
    assert row.status == 0 and row.result.startswith("PASS"), row.lines
    assert row.flash <= board.flash_bytes and row.ram <= board.ram_bytes
