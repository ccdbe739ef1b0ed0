"""The native firmware on QEMU: builds with arm-none-eabi-gcc alone, self-test PASS on both Cortex-M boards,
weights in flash (map file), price() from the real link."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from edgeclust.backends.base import SelfTestCase
from edgeclust.backends.native import NativeBackend
from edgeclust.codegen.board import load_board
from edgeclust.device.build import build_make_project, elf_size, write_project
from edgeclust.device.icount import inference_ticks, run_icount
from edgeclust.device.stack import STACK_FLAGS, stack_usage
from edgeclust.pipeline.layouts import weight_layouts
from edgeclust.resources import boards_dir


@pytest.fixture(scope="module")
def small_model(nx, keras):
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((10, 10, 2), batch_size=1)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Add()([x, y])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(12, activation="relu")(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    nx.weights_with_values(model, 8)
    data = np.random.default_rng(0).normal(size=(64, 10, 10, 2)).astype(np.float32)
    return nx.convert(model, data, per_channel=False)


@pytest.mark.parametrize("board_id", ["qemu_mps2_an386", "qemu_lm3s6965evb"])
def test_small_model_self_test_passes_on_qemu(nx, small_model, board_id, tmp_path):
    board = load_board(board_id, boards_dir())
    backend = NativeBackend()
    lowered = backend.lower(small_model, weight_layouts(small_model))
    x = nx.int8_inputs(small_model, 4)
    expected = backend.run_host(lowered, x)
    files = backend.render(lowered, board, [SelfTestCase(x[i], expected[i]) for i in range(len(x))])
    assert {"Makefile", "startup.c", "linker.ld", "ec_model.c", "ec_kernels.c", "main.c", "board.json"} <= set(files)
    elf = build_make_project(write_project(files, tmp_path), board)
    status, lines = run_icount(elf, board)
    console = "\n".join(lines)
    assert status == 0, console
    assert "self-test: PASS (4/4 outputs bit-identical" in console
    assert inference_ticks(lines) > 0

    # every weight, table and bias array is const and lands in flash
    symbols = _symbols(elf)
    consts = [c.name for c in lowered.details.program.consts]
    assert consts and all(symbols[name] < board.ram_origin for name in consts)
    assert symbols["ec_arena"] >= board.ram_origin
    mapped = (tmp_path / "build" / "fw.map").read_text()
    assert all(re.search(rf"\.rodata\.{name}\b", mapped) for name in consts)

    # the price is the linked size of these very files (against a roomy memory map: the same code and data)
    cost = backend.price(lowered, board, files)
    sizes = elf_size(elf, board)
    assert cost.measured and cost.fits
    assert cost.ram_parts["arena"] == lowered.arena_bytes
    assert cost.flash_used == sizes.flash
    # RAM: arena + statics (data + bss, no heap) + the stack the linker script reserves (measured + margin)
    stack = json.loads(files["board.json"])["stack"]
    assert (
        stack["reserved"]
        == stack["measured"] + board.stack_margin_bytes
        == cost.ram_parts["stack"] + cost.ram_parts["stack margin"]
    )
    assert f"_stack_size = {stack['reserved']};" in files["linker.ld"].decode()
    assert "_heap_size = 0;" in files["linker.ld"].decode()
    assert cost.ram_used == sizes.data + sizes.bss + stack["reserved"]
    assert cost.flash_parts["self_test"] == 4 * (
        lowered.details.program.input.size + lowered.details.program.output.size
    )


def test_stack_measured_bounds_the_painted_high_water_mark(nx, small_model, tmp_path):
    """The call-graph figure against the stack the firmware really touched in QEMU (the same build: painted
    before the self-test, scanned after it): never below it, and not far above (the figure also counts the
    paths this model's data do not take and an interrupt on top of the deepest call)."""
    board = load_board("qemu_mps2_an386", boards_dir())
    backend = NativeBackend()
    lowered = backend.lower(small_model, weight_layouts(small_model))
    x = nx.int8_inputs(small_model, 2)
    files = backend.render(lowered, board, [SelfTestCase(x[i], backend.run_host(lowered, x)[i]) for i in range(2)])
    stack = json.loads(files["board.json"])["stack"]
    elf = build_make_project(
        write_project(files, tmp_path), board, make_args=(f"OPT=-O2 -DEDGECLUST_STACK_PAINT=1 {STACK_FLAGS}",)
    )
    usage = stack_usage([p.read_text() for p in sorted(tmp_path.rglob("*.ci"))], fpu=True)
    status, lines = run_icount(elf, board)
    assert status == 0, lines
    painted = int(re.search(r"stack painted: (\d+) bytes used", "\n".join(lines)).group(1))
    assert 0 < painted <= usage.bytes <= painted + 2048
    assert abs(usage.bytes - stack["measured"]) <= 64  # the painting code adds a few bytes to main's frame
    assert stack["reserved"] == stack["measured"] + board.stack_margin_bytes


def _symbols(elf) -> dict[str, int]:
    import subprocess

    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in (line.split() for line in out.splitlines()) if len(parts) == 3}


def test_flash_on_qemu_prints_instructions_per_inference(nx, small_model, tmp_path):
    """`edgeclust flash` runs a QEMU board with -icount shift=0: the same count every run, as instructions."""
    from edgeclust.device.icount import calibrate
    from edgeclust.pipeline.flashing import flash_project
    from edgeclust.resources import templates_dir

    board = load_board("qemu_mps2_an386", boards_dir())
    backend = NativeBackend()
    lowered = backend.lower(small_model, weight_layouts(small_model))
    x = nx.int8_inputs(small_model, 1)
    files = backend.render(lowered, board, [SelfTestCase(x[0], backend.run_host(lowered, x)[0])])
    write_project(files, tmp_path)
    runs = []
    for _ in range(2):
        lines: list[str] = []
        outcome = flash_project(tmp_path, None, timeout_s=60, on_output=lines.append)
        assert outcome.passed, "\n".join(lines)
        runs.append(outcome)
    first, second = runs
    assert first.ticks == inference_ticks(lines) and first.ticks > 0
    assert first.instructions == calibrate(board, str(templates_dir())).instructions_for(first.ticks)
    assert (first.ticks, first.instructions) == (second.ticks, second.instructions)  # virtual time, not the host's
    assert first.instructions_line().startswith(f"inference: {first.instructions:,} instructions (QEMU -icount")
