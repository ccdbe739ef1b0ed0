"""Render once, price from what was rendered: the budget of a native build is the linked size of the very
project it writes (all its self-test cases included), so a model a few KB under a part's flash limit builds
and links, and one a few KB over it is refused; the demo prices every backend from the build's own results."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from edgeclust import data as edata
from edgeclust.errors import BudgetError, FirmwareError
from edgeclust.pipeline.boards import board_spec
from edgeclust.pipeline.build import BuildOptions, build
from edgeclust.pipeline.stages import ClusterOptions, convert_model

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("make") is None,
    reason="needs arm-none-eabi-gcc and make (DEVELOPERS.md, 'The cross toolchain and QEMU')",
)
MARGIN = 2048  # bytes either side of the priced flash: "within a few KB of the part's limit"


@pytest.fixture(scope="module")
def inputs(digits, tmp_path_factory):
    """An int8 .tflite (a small digits CNN converted by edgeclust) and DATA.npz: a build without fine-tuning."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    data = digits.subset(train=200, test=40)
    folder = tmp_path_factory.mktemp("render_once")
    model_path, data_path = folder / "digits.tflite", folder / "digits.npz"
    model_path.write_bytes(convert_model(model, quantize="int8", representative=data.x_train, per_channel=False))
    edata.save_npz(data_path, data)
    return model_path, data_path


def _options(board, out, **kwargs) -> BuildOptions:
    return BuildOptions(board=board, out_dir=out, backend="native", cluster=ClusterOptions(clusters=0), **kwargs)


def _link(project, board):
    from edgeclust.device.build import build_make_project, elf_size

    return elf_size(build_make_project(project, board), board)


def test_the_budget_is_the_linked_size_of_the_written_project(inputs, tmp_path):
    board = board_spec("qemu_lm3s6965evb")
    result = build(*inputs, _options(board, tmp_path / "out"))
    budget = result.report["budget"]
    firmware = tmp_path / "out" / "firmware"
    assert json.loads((firmware / "board.json").read_text())["self_test_cases"] == 4
    size = _link(firmware, board)  # the written files, against the board's own memory map
    assert budget["measured"] is True
    stack = json.loads((firmware / "board.json").read_text())["stack"]["reserved"]  # measured + margin
    assert (budget["flash_used"], budget["ram_used"]) == (size.flash, size.data + size.bss + stack)
    assert result.rendered.project == {
        path.relative_to(firmware).as_posix(): path.read_bytes()
        for path in firmware.rglob("*")
        if path.is_file() and "build" not in path.relative_to(firmware).parts
    }


def test_a_part_a_few_kb_roomier_builds_and_links_and_a_few_kb_tighter_is_refused(inputs, tmp_path):
    lm3s = board_spec("qemu_lm3s6965evb")
    flash = build(*inputs, _options(lm3s, tmp_path / "priced")).report["budget"]["flash_used"]

    roomier = dataclasses.replace(lm3s, flash_bytes=flash + MARGIN)
    result = build(*inputs, _options(roomier, tmp_path / "fits"))
    assert result.report["budget"]["fits"] and result.report["budget"]["flash_used"] == flash
    assert _link(tmp_path / "fits" / "firmware", roomier).flash == flash  # links against the tight memory map

    tighter = dataclasses.replace(lm3s, flash_bytes=flash - MARGIN)
    with pytest.raises(BudgetError, match=f"{MARGIN:,} bytes too many"):
        build(*inputs, _options(tighter, tmp_path / "over"))
    assert not (tmp_path / "over").exists()
    # written anyway, the linker agrees: FLASH overflows by the same bytes
    build(*inputs, _options(tighter, tmp_path / "over", allow_over_budget=True))
    with pytest.raises(FirmwareError, match="overflow"):
        _link(tmp_path / "over" / "firmware", tighter)


def test_the_comparison_reuses_the_builds_price_and_renders_the_others_with_its_cases(inputs, tmp_path):
    from edgeclust.pipeline.comparison import price_build_on_every_backend

    result = build(*inputs, _options(board_spec("qemu_mps2_an386"), tmp_path / "out"))
    prices = {p.backend: p for p in price_build_on_every_backend(result)}
    assert prices["native"].flash_used == result.report["budget"]["flash_used"]
    assert prices["tflm"].flash_used is not None and prices["tflm"].flash_used > prices["native"].flash_used
