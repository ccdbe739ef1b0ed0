"""The budget check: flash = model + TFLM runtime of the ops used; RAM = arena + margin + decoded weights +
stack + heap + runtime data; over budget is one readable error with the numbers and the options."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgeclust.backends.tflm import price as budget_mod
from edgeclust.backends.tflm import resolver
from edgeclust.backends.tflm.arena import tflm_arena
from edgeclust.codegen import board as board_mod
from edgeclust.errors import BudgetError, CodegenError

TABLE = """
[profiles."cortex-m3"]
core_flash = 50000
core_ram = 1000
[profiles."cortex-m3".families]
conv = 7000
fully_connected = 3000
softmax = 2000
decode = 9000
"""


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "sizes.toml"
    path.write_text(TABLE)
    return path


@pytest.fixture
def lm3s(boards_dir):
    return board_mod.load_board("qemu_lm3s6965evb", boards_dir)


def test_the_numbers_add_up(lm3s, table):
    b = budget_mod.check_budget(
        lm3s,
        model_bytes=100_000,
        op_names=["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"],
        arena=tflm_arena(10_000),
        sizes_file=table,
    )
    assert b.runtime_parts == {"core": 50_000, "conv": 7_000, "fully_connected": 3_000, "softmax": 2_000}
    assert b.runtime == 62_000 and b.model == 100_000
    assert b.flash_used == 162_000 and b.flash_total == 262_144 and b.flash_fits
    assert b.arena == 12_512  # 10,000 + 25 %, rounded up to 16 bytes
    assert (b.stack, b.heap, b.runtime_ram, b.decoded) == (4096, 2048, 1000, 0)
    assert b.ram_used == 12_512 + 4096 + 2048 + 1000 and b.ram_total == 65_536 and b.ram_fits and b.fits
    line = budget_mod.budget_line(b)
    assert line.startswith(
        "qemu_lm3s6965evb: flash 162,000 of 262,144 bytes (62%: model 100,000 + TFLM runtime 62,000)"
    )
    assert "RAM 19,656 of 65,536 bytes" in line and line.endswith(": fits")
    budget_mod.raise_over_budget(b)  # fits: no error


def test_lut_models_pay_for_decode_and_the_decoded_weights(lm3s, table):
    b = budget_mod.check_budget(
        lm3s,
        model_bytes=50_000,
        op_names=["CONV_2D", "TFLM_DECODE"],
        arena=tflm_arena(24_000, decoded=20_000),
        sizes_file=table,
    )
    assert b.runtime_parts["decode"] == 9_000 and b.decoded == 20_000
    assert b.ram_used == 5_008 + 20_000 + 4096 + 2048 + 1000
    assert "decoded weights 20,000" in budget_mod.budget_line(b)


def test_a_family_missing_from_the_table_is_priced_at_its_largest_entry(lm3s, table):
    b = budget_mod.check_budget(lm3s, model_bytes=1, op_names=["TANH"], arena=tflm_arena(16), sizes_file=table)
    assert b.runtime_parts["tanh"] == 9_000 and b.estimated_families == ("tanh",)


def test_over_budget_is_one_line_with_the_numbers_and_the_options(lm3s, table):
    b = budget_mod.check_budget(
        lm3s, model_bytes=1_200_000, op_names=["CONV_2D"], arena=tflm_arena(70_000), sizes_file=table
    )
    assert not b.fits and not b.flash_fits and not b.ram_fits
    with pytest.raises(BudgetError) as info:
        budget_mod.raise_over_budget(b)
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 1
    for fragment in (
        "does not fit qemu_lm3s6965evb",
        "flash 1,257,000 of 262,144 bytes",
        "994,856 bytes too many",
        "RAM",
        "65,536",
        "fewer clusters",
        "--compress lut",
        "another board",
        "edgeclust boards",
        "--allow-over-budget",
    ):
        assert fragment in message, fragment


def test_bad_numbers_and_unknown_ops_are_refused(lm3s, table):
    with pytest.raises(CodegenError, match="model_bytes"):
        budget_mod.check_budget(lm3s, model_bytes=-1, op_names=[], arena=tflm_arena(0), sizes_file=table)
    with pytest.raises(CodegenError, match="FANCY_OP"):
        budget_mod.check_budget(lm3s, model_bytes=1, op_names=["FANCY_OP"], arena=tflm_arena(0), sizes_file=table)


def test_the_shipped_table_prices_every_op_for_every_board(boards_dir):
    table = budget_mod.runtime_table()
    families = {family for _, family in resolver.OPS.values()}
    for profile in {board_mod.load_board(b, boards_dir).runtime_profile for b in board_mod.list_boards(boards_dir)}:
        row = table["profiles"][profile]
        assert 20_000 < row["core_flash"] < 200_000 and 0 < row["core_ram"] < 16_384
        assert set(row["families"]) == families, profile
        assert all(0 <= size < 60_000 for size in row["families"].values())
    # soft float (M3) costs more code than hardware float for the same kernels
    m3, m4f = table["profiles"]["cortex-m3"]["families"], table["profiles"]["cortex-m4f"]["families"]
    assert m3["softmax"] > m4f["softmax"]


def test_the_mnist_cnn_is_refused_on_the_lm3s6965_and_fits_the_mps2(boards_dir):
    from edgeclust import examples
    from edgeclust.tflite import flatbuffer
    from edgeclust.tflite.convert import to_tflite

    model = to_tflite(
        examples.mnist_cnn(seed=0),
        quantize="int8",
        representative_data=np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32),
        num_calibration=8,
    )
    ops = flatbuffer.read_model(model).op_names
    small = budget_mod.check_budget(
        board_mod.load_board("qemu_lm3s6965evb", boards_dir),
        model_bytes=len(model),
        op_names=ops,
        arena=tflm_arena(40_000),
    )
    with pytest.raises(BudgetError, match=r"flash [\d,]+ of 262,144 bytes"):
        budget_mod.raise_over_budget(small)
    big = budget_mod.check_budget(
        board_mod.load_board("qemu_mps2_an386", boards_dir),
        model_bytes=len(model),
        op_names=ops,
        arena=tflm_arena(40_000),
    )
    assert big.fits and big.flash_used == len(model) + big.runtime


def test_profiles_without_a_measurement_are_priced_from_a_measured_one_and_say_so(boards_dir):
    table = budget_mod.runtime_table()["profiles"]
    assert set(table) == set(board_mod.RUNTIME_PROFILES)
    assert table["cortex-m3"]["measured"] and table["cortex-m4f"]["measured"] and table["cortex-m0"]["measured"]
    # Thumb-1 code is larger: the Cortex-M0's conv kernel costs more flash than the Cortex-M3's
    assert table["cortex-m0"]["families"]["conv"] > table["cortex-m3"]["families"]["conv"]
    for profile in ("cortex-m7", "cortex-m55"):
        assert table[profile]["measured"] is False
        source = table[table[profile]["estimated_from"]]
        assert table[profile]["families"] == source["families"] and table[profile]["core_flash"] == source["core_flash"]
    an500 = board_mod.load_board("qemu_mps2_an500", boards_dir)
    b = budget_mod.check_budget(an500, model_bytes=1000, op_names=["FULLY_CONNECTED"], arena=tflm_arena(1000))
    assert not b.runtime_measured and "TFLM runtime" in budget_mod.budget_line(b)
    assert "estimated for cortex-m7" in budget_mod.budget_line(b)
    an386 = budget_mod.check_budget(
        board_mod.load_board("qemu_mps2_an386", boards_dir),
        model_bytes=1000,
        op_names=["FULLY_CONNECTED"],
        arena=tflm_arena(1000),
    )
    assert an386.runtime_measured and "estimated" not in budget_mod.budget_line(an386)


def test_an_estimate_from_a_profile_that_is_not_measured_is_refused(tmp_path, lm3s):
    path = tmp_path / "sizes.toml"
    path.write_text(TABLE + '[profiles."cortex-m0"]\nestimated_from = "cortex-m7"\n')
    with pytest.raises(CodegenError, match="'cortex-m0' is estimated from 'cortex-m7', which is not a measured"):
        budget_mod.check_budget(lm3s, model_bytes=1, op_names=[], arena=tflm_arena(1), sizes_file=path)


def test_on_the_microbit_the_digits_model_fits_and_the_mnist_cnn_is_refused_for_its_16_kib_ram(boards_dir, tiny_model):
    from edgeclust import examples
    from edgeclust.tflite import flatbuffer, parity
    from edgeclust.tflite.convert import to_tflite

    microbit = board_mod.load_board("qemu_microbit", boards_dir)
    digits = budget_mod.check_budget(
        microbit, model_bytes=len(tiny_model.tflite), op_names=tiny_model.op_names, arena=tflm_arena(tiny_model.arena)
    )
    assert digits.fits and digits.ram_used <= 16 * 1024
    mnist = to_tflite(
        examples.mnist_cnn(seed=0),
        quantize="int8",
        representative_data=np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32),
        num_calibration=8,
    )
    b = budget_mod.check_budget(
        microbit,
        model_bytes=len(mnist),
        op_names=flatbuffer.read_model(mnist).op_names,
        arena=tflm_arena(parity.tflm_arena_bytes(mnist)),
    )
    assert not b.ram_fits and b.arena > 16 * 1024
    with pytest.raises(BudgetError) as info:
        budget_mod.raise_over_budget(b)
    message = str(info.value)
    assert "does not fit qemu_microbit" in message and re.search(r"RAM [\d,]+ of 16,384 bytes", message)
    assert "\n" not in message
