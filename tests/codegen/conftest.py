"""Fixtures for the firmware generator: a tiny real int8 model, its interface and self-test cases, projects.

The model is the digits CNN trained briefly on the 8x8 digits and converted by the real converter; its
self-test outputs come from the TFLM host interpreter, as in `edgeclust build`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgeclust.backends.tflm.arena import tflm_arena

CROSS_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm"


@dataclass(frozen=True)
class TinyModel:
    tflite: bytes
    op_names: tuple[str, ...]
    interface: object  # backends.base.ModelInterface
    cases: list  # backends.base.SelfTestCase
    arena: int
    x: np.ndarray  # the float inputs of the cases


@pytest.fixture(scope="session")
def tiny_model(digits) -> TinyModel:
    """The digits CNN (Conv, BN folded, depthwise, pooling, Dense, softmax), 2 epochs, int8, 3 self-test cases."""
    from edgeclust import examples
    from edgeclust.backends.base import SelfTestCase
    from edgeclust.tflite import flatbuffer, parity
    from edgeclust.tflite.convert import to_tflite

    model = examples.compile_for_training(examples.digits_cnn(seed=0))
    model.fit(digits.x_train, digits.y_train, batch_size=32, epochs=2, verbose=0)
    data = to_tflite(model, quantize="int8", representative_data=digits.x_train, num_calibration=64)
    x = digits.x_test[:3]
    interface = parity.model_interface(data)
    inputs = parity.quantize(x, interface.inputs[0])
    outputs = parity.run_tflm(data, inputs)
    return TinyModel(
        tflite=data,
        op_names=tuple(flatbuffer.read_model(data).op_names),
        interface=interface,
        cases=[SelfTestCase(inputs[i], outputs[i]) for i in range(len(x))],
        arena=parity.tflm_arena_bytes(data),
        x=x,
    )


@pytest.fixture(scope="session")
def boards_dir() -> Path:
    from edgeclust import resources

    return resources.boards_dir()


@pytest.fixture(scope="session")
def templates_dir() -> Path:
    from edgeclust import resources

    return resources.templates_dir()


@pytest.fixture
def make_project(tiny_model, boards_dir, templates_dir):
    """`make_project(board_id, out_dir, force=False, **overrides)` writes the tiny model's TFLM project (rendered
    by backends.tflm.render, written by codegen.project.write_files); returns the paths."""
    from edgeclust.backends.tflm import render
    from edgeclust.codegen import board, project

    def make(board_id: str, out_dir, force: bool = False, **overrides):
        kwargs = dict(
            model_data=tiny_model.tflite,
            op_names=tiny_model.op_names,
            board=board.load_board(board_id, boards_dir),
            interface=tiny_model.interface,
            self_test=tiny_model.cases,
            arena=tflm_arena(tiny_model.arena),
            templates_dir=templates_dir,
        )
        kwargs.update(overrides)
        return project.write_files(out_dir, render.render_files(**kwargs), force=force)

    return make


@pytest.fixture(scope="session")
def cross_tools():
    """arm-none-eabi-gcc/g++ and qemu-system-arm: installed by `make test` (make system-deps); missing fails."""
    missing = [t for t in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm", "make") if not shutil.which(t)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run `make system-deps` (apt packages {CROSS_PACKAGES})")


@pytest.fixture(scope="session")
def tflm_root() -> Path:
    """A TFLM source tree from $TFLM_ROOT; without it the full-firmware tests are skipped, saying how to run them."""
    root = os.environ.get("TFLM_ROOT", "")
    if not root:
        pytest.skip(
            "TFLM_ROOT is not set: build a TFLM tree as DEVELOPERS.md says ('TensorFlow Lite Micro "
            "tree'), then run `TFLM_ROOT=/path/to/tree pytest -m tflm_tree`"
        )
    path = Path(root)
    if not (path / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
        pytest.fail(f"TFLM_ROOT={root} is not a TFLM tree (no tensorflow/lite/micro/micro_interpreter.h)")
    return path


@pytest.fixture
def tflm_project(boards_dir):
    """`tflm_project(tflite, board_id, out_dir, x, compress="none")`: the TFLM backend end to end (weight layouts,
    lower, self-test cases from its host oracle, render), written to out_dir; returns the Lowered."""
    from edgeclust.backends.base import SelfTestCase
    from edgeclust.backends.tflm import TflmBackend
    from edgeclust.codegen import board, project
    from edgeclust.pipeline.layouts import weight_layouts
    from edgeclust.tflite import parity

    def make(tflite: bytes, board_id: str, out_dir, x, compress: str = "none"):
        backend = TflmBackend(compress=compress)
        lowered = backend.lower(tflite, weight_layouts(tflite))
        inputs = parity.quantize(x, lowered.interface.inputs[0])
        outputs = backend.run_host(lowered, inputs)
        cases = [SelfTestCase(inputs[i], outputs[i]) for i in range(len(inputs))]
        project.write_files(out_dir, backend.render(lowered, board.load_board(board_id, boards_dir), cases))
        return lowered

    return make


@pytest.fixture(autouse=True)
def warnings_are_errors(monkeypatch):
    """Every generated project these tests build compiles its own sources with -Wall -Wextra -Werror (the
    Makefile's WARNINGS; TFLM's headers come in with -isystem)."""
    monkeypatch.setenv("WARNINGS", "-Wall -Wextra -Werror")
