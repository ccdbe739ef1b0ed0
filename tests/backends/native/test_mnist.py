"""The MNIST CNN at 16 clusters as native firmware: fits the 256 KiB / 64 KiB Cortex-M3 (where TFLM int8 does
not), self-test PASS on qemu_lm3s6965evb and qemu_mps2_an386, host build bit-identical to TFLM."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.base import SelfTestCase
from edgeclust.backends.native import NativeBackend
from edgeclust.codegen.board import load_board
from edgeclust.device.build import build_make_project, elf_size, write_project
from edgeclust.device.icount import run_icount
from edgeclust.pipeline.layouts import weight_layouts
from edgeclust.resources import boards_dir
from edgeclust.tflite.parity import run_tflm

TFLM_ARENA_MNIST = 37_728  # TFLM's measured arena for this model (issue 12)


@pytest.fixture(scope="module")
def mnist16(trained_mnist_cnn, mnist_small):
    """The trained MNIST CNN clustered to 16 values per kernel (LINEAR centroids), converted to int8."""
    from edgeclust.pipeline.stages import ClusterOptions, cluster_model, convert_model

    clustered = cluster_model(trained_mnist_cnn, None, ClusterOptions(clusters=16, init="linear", epochs=0)).model
    return convert_model(clustered, quantize="int8", representative=mnist_small.x_train[:200], per_channel=True)


@pytest.fixture(scope="module")
def lowered16(mnist16):
    return NativeBackend().lower(mnist16, weight_layouts(mnist16))


def test_mnist16_host_build_matches_tflm(mnist16, lowered16, mnist_small):
    x = (
        (
            np.round(mnist_small.x_test[:100] / lowered16.interface.inputs[0].scale)
            + lowered16.interface.inputs[0].zero_point
        )
        .clip(-128, 127)
        .astype(np.int8)
    )
    ours = NativeBackend().run_host(lowered16, x)
    np.testing.assert_array_equal(ours, run_tflm(mnist16, x))
    program = lowered16.details.program
    assert all(p.bits == 4 for p in program.packed if p.weights > 1000)
    assert lowered16.arena_bytes <= 0.6 * TFLM_ARENA_MNIST
    assert lowered16.arena_bytes >= lowered16.arena_lower_bound


@pytest.mark.parametrize("board_id", ["qemu_lm3s6965evb", "qemu_mps2_an386"])
def test_mnist16_self_test_passes_on_qemu(mnist16, lowered16, mnist_small, board_id, tmp_path):
    board = load_board(board_id, boards_dir())
    backend = NativeBackend()
    spec = lowered16.interface.inputs[0]
    x = (np.round(mnist_small.x_test[:3] / spec.scale) + spec.zero_point).clip(-128, 127).astype(np.int8)
    y = backend.run_host(lowered16, x)
    files = backend.render(lowered16, board, [SelfTestCase(x[i], y[i]) for i in range(len(x))])
    elf = build_make_project(write_project(files, tmp_path), board)
    sizes = elf_size(elf, board)
    assert sizes.flash <= board.flash_bytes
    assert sizes.ram <= board.ram_bytes
    status, lines = run_icount(elf, board, timeout_s=300)
    console = "\n".join(lines)
    print(console)
    assert status == 0, console
    assert "self-test: PASS (3/3 outputs bit-identical" in console
