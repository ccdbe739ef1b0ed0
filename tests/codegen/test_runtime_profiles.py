"""The TFLM size table's profiles: one per CPU family with a QEMU board, each measured on that board's flags
or marked as an estimate; scripts/measure_sizes.py rewrites the table without losing either kind."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

from edgeclust.backends.tflm import price as budget_mod
from edgeclust.codegen import board as board_mod

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "measure_sizes.py"


def _measure_sizes():
    spec = importlib.util.spec_from_file_location("measure_sizes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("measure_sizes", module)
    spec.loader.exec_module(module)
    return module


def test_every_profile_is_measured_on_a_qemu_board_with_its_flags(boards_dir):
    script = _measure_sizes()
    assert set(script.PROFILE_BOARDS) == set(board_mod.RUNTIME_PROFILES)
    table = budget_mod.runtime_table()["profiles"]
    for profile, board_id in script.PROFILE_BOARDS.items():
        board = board_mod.load_board(board_id, boards_dir)
        assert board.is_qemu and board.runtime_profile == profile
        assert table[profile]["reference_board"] == board_id and table[profile]["cflags"] == " ".join(board.cflags)


def test_rewriting_the_table_keeps_measured_and_estimated_rows(tmp_path):
    script = _measure_sizes()
    raw = tomllib.loads(budget_mod.SIZES_FILE.read_text())["profiles"]
    out = tmp_path / "sizes.toml"
    script.write_table(out, raw, "tensorflow/tflite-micro test")
    assert budget_mod.runtime_table(out) == budget_mod.runtime_table()
    rewritten = tomllib.loads(out.read_text())["profiles"]
    for name, row in raw.items():
        assert rewritten[name].get("estimated_from") == row.get("estimated_from")
        assert rewritten[name]["measured"] == ("estimated_from" not in row)
