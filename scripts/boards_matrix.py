"""Every QEMU board x every backend that can build here x a small clustered model: flash and RAM used,
instructions per inference and the boot self-test, as one table.

    PYTHONPATH=toolchain python scripts/boards_matrix.py [--clusters 8] [--boards qemu_microbit ...] [--work DIR]

The model is the digits CNN (8x8 digits), trained briefly, clustered to --clusters values per kernel,
converted to int8. The native backend's firmware (the project `edgeclust build --backend native` writes) is
built with arm-none-eabi-gcc and run under qemu-system-arm with -icount shift=0; its SysTick ticks become
instructions with each machine's calibration (edgeclust.device.icount). The TFLM backend joins when
TFLM_ROOT names a TFLM tree (flash and RAM from the link, self-test under QEMU; it prints no ticks).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeclust.pipeline.boards import all_boards

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

QEMU_BOARDS = tuple(board.id for board in all_boards() if board.is_qemu)  # every board file naming a machine

REAL_MAKE_BOARDS = ("stm32f746g_disco",)


@dataclass(frozen=True)
class DigitsModel:
    """The int8 model and its self-test: inputs in the model's dtype and the TFLM interpreter's outputs."""

    tflite: bytes
    inputs: object  # np.ndarray
    expected: object  # np.ndarray
    name: str = "digits CNN"


@dataclass(frozen=True)
class Row:
    """One board x backend: what the firmware costs and how its self-test went."""

    board: str
    cpu: str
    backend: str
    flash: int
    ram: int
    instructions: int | None
    result: str
    status: int
    lines: tuple[str, ...] = ()
    elf: str = ""
    model: str = ""


def digits_model(clusters: int = 8, cases: int = 3, seed: int = 0) -> DigitsModel:
    """The digits CNN, 2 epochs, clustered to `clusters` values per kernel (1 epoch), stripped, int8."""
    import keras

    from edgeclust import data, examples
    from edgeclust.cluster.api import cluster_weights, strip_clustering
    from edgeclust.tflite.convert import to_tflite
    from edgeclust.tflite.parity import model_interface, quantize, run_tflm

    digits = data.load_digits()
    model = examples.compile_for_training(examples.digits_cnn(seed=seed))
    model.fit(digits.x_train, digits.y_train, batch_size=32, epochs=2, verbose=0)
    clustered = examples.compile_for_training(cluster_weights(model, clusters, seed=seed))
    clustered.fit(digits.x_train, digits.y_train, batch_size=32, epochs=1, verbose=0)
    keras.utils.set_random_seed(seed)
    tflite = to_tflite(
        strip_clustering(clustered), quantize="int8", representative_data=digits.x_train, num_calibration=64
    )
    x = quantize(digits.x_test[:cases], model_interface(tflite).inputs[0])
    return DigitsModel(tflite=tflite, inputs=x, expected=run_tflm(tflite, x), name=f"digits CNN, {clusters} clusters")


def mnist_model(values: int = 4, cases: int = 2, seed: int = 0) -> DigitsModel:
    """The MNIST CNN with every kernel reduced to `values` shared values (its own quantiles: what clustering
    leaves, without the training), int8 per channel, calibrated on random images. For cost and bit-exactness,
    not accuracy."""
    import numpy as np

    from edgeclust import examples
    from edgeclust.tflite.convert import to_tflite
    from edgeclust.tflite.parity import model_interface, quantize, run_tflm

    model = examples.mnist_cnn(seed=seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and weights[0].ndim >= 2:
            kernel = weights[0]
            centroids = np.quantile(kernel, (np.arange(values) + 0.5) / values)
            weights[0] = centroids[np.abs(kernel[..., None] - centroids).argmin(-1)].astype(np.float32)
            layer.set_weights(weights)
    images = np.random.default_rng(seed).random((16, 28, 28, 1), dtype=np.float32)
    tflite = to_tflite(model, quantize="int8", representative_data=images, num_calibration=16)
    x = quantize(images[:cases], model_interface(tflite).inputs[0])
    return DigitsModel(tflite=tflite, inputs=x, expected=run_tflm(tflite, x), name=f"MNIST CNN, {values} values")


def native_row(board, model: DigitsModel, work: Path) -> Row:
    """Render the native project for `board`, build it, run it under QEMU with -icount shift=0."""
    from edgeclust import resources
    from edgeclust.backends.base import SelfTestCase
    from edgeclust.backends.native import NativeBackend
    from edgeclust.device import icount
    from edgeclust.device.build import build_make_project, elf_size, write_project
    from edgeclust.pipeline.layouts import weight_layouts

    backend = NativeBackend()
    lowered = backend.lower(model.tflite, weight_layouts(model.tflite))
    cases = [SelfTestCase(x, y) for x, y in zip(model.inputs, model.expected)]
    files = backend.render(lowered, board, cases) if cases else None  # no cases: priced with one blank case
    cost = backend.price(lowered, board, files)
    if not cost.fits:  # the budget check: the board cannot hold it, so it is neither built nor run
        over = [
            f"{what} {used:,} of {total:,}"
            for what, used, total, ok in (
                ("flash", cost.flash_used, cost.flash_total, cost.flash_fits),
                ("RAM", cost.ram_used, cost.ram_total, cost.ram_fits),
            )
            if not ok
        ]
        return Row(
            board.id,
            board.cpu,
            "native",
            cost.flash_used,
            cost.ram_used,
            None,
            "does not fit: " + ", ".join(over),
            0,
            model=model.name,
        )
    folder = write_project(files, work / f"native-{board.id}-{_slug(model.name)}")
    elf = build_make_project(folder, board)
    size = elf_size(elf, board)
    status, lines = icount.run_icount(elf, board, timeout_s=300)
    ticks = icount.inference_ticks(lines)
    calibration = icount.calibrate(board, str(resources.templates_dir()))
    instructions = calibration.instructions_for(ticks) if ticks is not None else None
    return Row(
        board.id,
        board.cpu,
        "native",
        size.flash,
        size.ram,
        instructions,
        _result(lines, status),
        status,
        tuple(lines),
        str(elf),
        model.name,
    )


def built_row(board, model: DigitsModel, work: Path) -> Row:
    """A real Makefile board: the native project built (its flash and RAM from the link), not run."""
    from edgeclust.backends.base import SelfTestCase
    from edgeclust.backends.native import NativeBackend
    from edgeclust.device.build import build_make_project, elf_size, write_project
    from edgeclust.pipeline.layouts import weight_layouts

    backend = NativeBackend()
    lowered = backend.lower(model.tflite, weight_layouts(model.tflite))
    cases = [SelfTestCase(x, y) for x, y in zip(model.inputs, model.expected)]
    folder = write_project(backend.render(lowered, board, cases), work / f"native-{board.id}")
    elf = build_make_project(folder, board)
    size = elf_size(elf, board)
    return Row(
        board.id,
        board.cpu,
        "native",
        size.flash,
        size.ram,
        None,
        "built, not run (real board)",
        0,
        elf=str(elf),
        model=model.name,
    )


def tflm_row(board, model: DigitsModel, work: Path, tflm_root: str) -> Row:
    """The TFLM project for `board` (the generated Makefile with the TFLM tree), built and run under QEMU."""
    from edgeclust.device import icount
    from edgeclust.device.build import build_make_project, elf_size

    folder = work / f"tflm-{board.id}"
    _write_tflm_project(board, model, folder)
    elf = build_make_project(folder, board, tflm_root=tflm_root)
    size = elf_size(elf, board)
    status, lines = icount.run_icount(elf, board, timeout_s=300)
    return Row(
        board.id,
        board.cpu,
        "tflm",
        size.flash,
        size.ram,
        None,
        _result(lines, status),
        status,
        tuple(lines),
        str(elf),
        model.name,
    )


def _write_tflm_project(board, model: DigitsModel, folder: Path) -> None:
    """The TFLM backend's project files for `board` in `folder`."""
    from edgeclust.backends.base import SelfTestCase
    from edgeclust.backends.tflm import TflmBackend
    from edgeclust.device.build import write_project

    backend = TflmBackend()
    lowered = backend.lower(model.tflite, ())
    cases = [SelfTestCase(x, y) for x, y in zip(model.inputs, model.expected)]
    write_project(backend.render(lowered, board, cases), folder)


def _result(lines, status: int) -> str:
    """ "PASS 3/3" from the firmware's verdict line (outputs bit-identical / compared), or what went wrong."""
    for line in lines:
        match = re.match(r"^self-test: (\w+) \((\d+)/(\d+)", line)
        if match:
            return f"{match.group(1)} {match.group(2)}/{match.group(3)}"
    return f"no verdict (status {status})"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def table(rows) -> str:
    """The rows as a fixed-width table."""
    header = (
        f"{'board':<19} {'CPU':<11} {'model':<25} {'backend':<7} {'flash B':>9} {'RAM B':>8} "
        f"{'instr/inference':>15}  self-test"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        instructions = f"{r.instructions:,}" if r.instructions is not None else "-"
        lines.append(
            f"{r.board:<19} {r.cpu:<11} {r.model:<25} {r.backend:<7} {r.flash:>9,} {r.ram:>8,} "
            f"{instructions:>15}  {r.result}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument(
        "--mnist-values", type=int, default=4, help="the MNIST CNN's values per kernel (0: no MNIST rows)"
    )
    parser.add_argument("--boards", nargs="+", default=list(QEMU_BOARDS), choices=QEMU_BOARDS)
    parser.add_argument(
        "--tflm-boards",
        nargs="*",
        default=None,
        choices=QEMU_BOARDS,
        help="with TFLM_ROOT: the boards that also get a TFLM row (default: --boards); the first "
        "build for a CPU compiles the TFLM library",
    )
    parser.add_argument(
        "--real-boards",
        nargs="*",
        default=list(REAL_MAKE_BOARDS),
        choices=REAL_MAKE_BOARDS,
        help="real Makefile boards whose native firmware is built (not run)",
    )
    parser.add_argument("--work", type=Path, default=None, help="keep the projects here (default: a temp folder)")
    args = parser.parse_args(argv)
    from edgeclust import resources
    from edgeclust.codegen.board import load_board

    model = digits_model(args.clusters)
    mnist = mnist_model(args.mnist_values) if args.mnist_values else None
    tflm_root = os.environ.get("TFLM_ROOT")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeclust-matrix-") as tmp:
        work = args.work or Path(tmp)
        for board_id in args.boards:
            board = load_board(board_id, resources.boards_dir())
            rows.append(native_row(board, model, work))
            if tflm_root and board_id in (args.tflm_boards or args.boards):
                rows.append(tflm_row(board, model, work, tflm_root))
            if mnist is not None:
                rows.append(native_row(board, mnist, work))
        for board_id in args.real_boards:
            rows.append(built_row(load_board(board_id, resources.boards_dir()), model, work))
    print(
        f"{model.name}: int8 {len(model.tflite):,} bytes .tflite, {len(model.inputs)} self-test cases"
        + (f"; {mnist.name}: int8 {len(mnist.tflite):,} bytes" if mnist else "")
        + "; QEMU -icount shift=0; RAM = data + bss (heap reserve included) + stack"
        + ("" if tflm_root else "; TFLM rows need TFLM_ROOT")
    )
    print(table(rows))
    return 0 if all(r.status == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
