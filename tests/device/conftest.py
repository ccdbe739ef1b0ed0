"""Fixtures for the device tests: the cross tools, and small projects rendered for any board.

`synthetic_project` renders a project around a synthetic 'model' (random bytes with the TFL3 identifier): all
the smoke firmware needs, with no TensorFlow in the test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeclust.backends.tflm.arena import tflm_arena

CROSS_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm"


@pytest.fixture(scope="session")
def cross_tools():
    """arm-none-eabi-gcc/g++, objdump, qemu-system-arm: installed by `make test` (make system-deps); missing fails."""
    tools = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-objdump", "qemu-system-arm", "make")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run `make system-deps` (apt packages {CROSS_PACKAGES})")


@pytest.fixture(scope="session")
def boards_dir() -> Path:
    from edgeclust import resources

    return resources.boards_dir()


@pytest.fixture
def synthetic_project(boards_dir):
    """`synthetic_project(board_id, out_dir)`: the smoke-ready project for that board; returns (out_dir, model)."""
    from edgeclust import resources
    from edgeclust.backends.tflm import render as tflm_render
    from edgeclust.codegen import board, project

    def render(board_id: str, out: Path) -> tuple[Path, bytes]:
        model = bytearray(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
        model[4:8] = b"TFL3"
        spec = tflm_render.TensorSpec("x", (1, 4), "int8", 0.5, 0)
        project.write_files(
            out,
            tflm_render.render_files(
                model_data=bytes(model),
                op_names=["FULLY_CONNECTED"],
                board=board.load_board(board_id, boards_dir),
                interface=tflm_render.ModelInterface(inputs=(spec,), outputs=(spec,)),
                self_test=[],
                arena=tflm_arena(512),
                templates_dir=resources.templates_dir(),
            ),
        )
        return out, bytes(model)

    return render
