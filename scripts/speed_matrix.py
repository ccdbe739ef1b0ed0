#!/usr/bin/env python3
"""Speed matrix: instructions per inference of the native backend (and of TFLM, where trees are given) on the
QEMU Cortex-M boards, for models of the MLPerf Tiny shapes and the digits CNN, at raw int8 and clustered.

Models are built in Keras from their published architectures with random weights (instruction counts do not
depend on the values), BatchNorm folded, clustered to N values per tensor (LINEAR, no fine-tuning) or left as
they are (raw int8), converted to int8 per channel. Each firmware runs its boot self-test (bit-exact against
the host oracle, itself checked against the tflite_micro interpreter) under `qemu-system-arm -icount shift=0`;
its SysTick ticks become instructions with the machine's calibration (edgeclust.device.icount).

    python scripts/speed_matrix.py                                   # everything (long: ~100 firmwares)
    python scripts/speed_matrix.py --models ds_cnn fc_ae --boards qemu_mps2_an386 --clusters 0 16
    python scripts/speed_matrix.py --kernels /tmp/ec_kernels_before.c --label before ...   # another kernel file
    TFLM_ROOT=~/tflm/tree-ref python scripts/speed_matrix.py --tflm-cmsis-root ~/tflm/tree-cmsis ...   # TFLM at -O2
    python scripts/speed_matrix.py --models mobilenet --clusters 0 --console ...   # and each firmware's QEMU output

Columns: instructions per inference, instructions per MAC, flash (text + data) and RAM (data + bss + stack)
of the linked firmware, for each runtime; last, the native firmware's flash (less its self-test data) over the
physical limit of its model (every weight at its packed width + index tables + biases + the linked code).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "toolchain"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("digits", "ds_cnn", "fc_ae", "resnet8", "mobilenet")
BOARDS = ("qemu_microbit", "qemu_lm3s6965evb", "qemu_mps2_an386", "qemu_mps2_an500", "qemu_mps3_an547")
CLUSTERS = (0, 16, 8, 4)


# ---- models (Keras 3), shapes from the MLPerf Tiny reference models ----


def digits_model(keras):
    from edgeclust import examples

    return examples.digits_cnn(seed=0)


def ds_cnn_model(keras):
    """MLPerf Tiny keyword spotting DS-CNN: 49x10 MFCC, 64 filters, 4 depthwise-separable blocks, 12 classes."""
    layers = keras.layers
    inputs = keras.Input((49, 10, 1), batch_size=1)
    x = layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(64, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(12, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


def fc_ae_model(keras):
    """MLPerf Tiny anomaly detection autoencoder: 640 -> 4 x 128 -> 8 -> 4 x 128 -> 640, BatchNorm + ReLU."""
    layers = keras.layers
    inputs = keras.Input((640,), batch_size=1)
    x = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = layers.Dense(units)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    outputs = layers.Dense(640)(x)
    return keras.Model(inputs, outputs, name="fc_ae")


def resnet8_model(keras):
    """MLPerf Tiny image classification ResNet-8 (CIFAR-10 32x32): 16/32/64 filters, three residual stacks."""
    layers = keras.layers

    def conv_bn(x, filters, strides=1, relu=True):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same")(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x) if relu else x

    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = conv_bn(inputs, 16)
    for filters, strides in ((16, 1), (32, 2), (64, 2)):
        y = conv_bn(x, filters, strides)
        y = conv_bn(y, filters, 1, relu=False)
        if strides != 1:
            x = layers.Conv2D(filters, 1, strides=strides, padding="same")(x)
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.AveragePooling2D(pool_size=8)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="resnet8")


def mobilenet_model(keras):
    """MLPerf Tiny visual wake words MobileNetV1 alpha 0.25 at 96x96x3, 2 classes."""
    layers = keras.layers

    def bn_relu(x):
        return layers.ReLU()(layers.BatchNormalization()(x))

    inputs = keras.Input((96, 96, 3), batch_size=1)
    x = bn_relu(layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs))
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
    for filters, strides in blocks:
        x = bn_relu(layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x))
        x = bn_relu(layers.Conv2D(filters, 1, use_bias=False)(x))
    x = layers.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mobilenet")


BUILDERS = {
    "digits": digits_model,
    "ds_cnn": ds_cnn_model,
    "fc_ae": fc_ae_model,
    "resnet8": resnet8_model,
    "mobilenet": mobilenet_model,
}


def randomized(keras, model, seed: int):
    """Random weights (He-scaled, so activations neither vanish nor explode), BatchNorm statistics spread, and a
    last layer wide enough that the softmax's input scale stays in the range TFLM accepts."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = weights
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.normal(0, 0.1, beta.shape).astype("float32"),
                    rng.normal(0, 0.1, mean.shape).astype("float32"),
                    rng.uniform(0.5, 1.5, var.shape).astype("float32"),
                ]
            )
            continue
        kernel = weights[0]
        fan_in = int(np.prod(kernel.shape[:-1])) if kernel.ndim > 1 else 1
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            fan_in = int(np.prod(kernel.shape[:2]))
        weights[0] = (rng.standard_normal(kernel.shape) * np.sqrt(2.0 / max(fan_in, 1))).astype("float32")
        if len(weights) > 1:
            weights[1] = rng.normal(0, 0.05, weights[1].shape).astype("float32")
        layer.set_weights(weights)
    return model


def macs(tflite: bytes) -> int:
    """Multiply-accumulates of the CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED ops."""
    import numpy as np
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(tflite, 0)
    graph = model.subgraphs[0]
    codes = [c.builtinCode if c.builtinCode else c.deprecatedBuiltinCode for c in model.operatorCodes]
    total = 0
    builtin = schema.BuiltinOperator
    for op in graph.operators:
        code = codes[op.opcodeIndex]
        if code not in (builtin.CONV_2D, builtin.DEPTHWISE_CONV_2D, builtin.FULLY_CONNECTED):
            continue
        out = graph.tensors[op.outputs[0]].shape
        w = graph.tensors[op.inputs[1]].shape
        if code == builtin.CONV_2D:
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif code == builtin.DEPTHWISE_CONV_2D:
            total += int(np.prod(out)) * int(w[1] * w[2])
        else:
            total += int(np.prod(out)) * int(w[-1])
    return total


def build_tflite(name: str, clusters: int, seed: int):
    """(int8 .tflite, int8 self-test inputs) for one model at `clusters` values per tensor (0: raw int8)."""
    import keras
    import numpy as np

    from edgeclust.pipeline.stages import ClusterOptions, cluster_model, convert_model
    from edgeclust.tflite.parity import model_interface, quantize

    keras.utils.set_random_seed(seed)
    model = randomized(keras, BUILDERS[name](keras), seed)
    shape = tuple(model.inputs[0].shape[1:])
    data = np.random.default_rng(seed).normal(0, 1, (64, *shape)).astype("float32")
    options = ClusterOptions(clusters=clusters, init="linear", epochs=0)
    clustered = cluster_model(model, None, options).model
    tflite = convert_model(clustered, quantize="int8", representative=data, per_channel=True, calibration_samples=64)
    x = quantize(data[:4], model_interface(tflite).inputs[0])
    return tflite, np.ascontiguousarray(x)


# ---- firmwares ----


def flash_over_limit(program, flash: int, n_cases: int) -> float:
    """The native firmware's flash (less its self-test data) over the physical limit of its model: every weight
    at its packed width (weights x bits / 8, no row padding) + index tables + biases + the code as linked.
    The rest is row padding, the requantization arrays and nothing else."""
    parts = program.flash_parts()
    self_test = n_cases * (program.input.size + program.output.size)
    code = flash - sum(parts.values()) - self_test
    packed = sum(p.weights * p.bits / 8 for p in program.packed)
    return (flash - self_test) / (packed + parts.get("tables", 0) + parts.get("biases", 0) + code)


def run_native(backend, lowered, x, y, board, templates: str, kernels: Path | None):
    """(instructions, flash, ram, verdict, QEMU console) of the native firmware on `board`."""
    from edgeclust.backends.base import SelfTestCase
    from edgeclust.device import icount
    from edgeclust.device.build import build_make_project, elf_size, write_project

    files = dict(backend.render(lowered, board, [SelfTestCase(x[i], y[i]) for i in range(len(x))]))
    if kernels is not None:
        files["ec_kernels.c"] = kernels.read_bytes()
    with tempfile.TemporaryDirectory(prefix="edgeclust-speed-") as tmp:
        elf = build_make_project(write_project(files, Path(tmp)), board, jobs=2)
        status, lines = icount.run_icount(elf, board, timeout_s=1800)
        size = elf_size(elf, board)
    return _result(status, "\n".join(lines), board, templates, size)


def run_tflm(tflite, x, y, board, templates: str, tflm_root: Path, opt: str = "-O2"):
    """(instructions, flash, ram, verdict, QEMU console) of the TFLM firmware (reference or CMSIS-NN tree)."""
    from edgeclust.backends.base import SelfTestCase
    from edgeclust.backends.tflm import TflmBackend
    from edgeclust.device import icount
    from edgeclust.device.build import build_make_project, elf_size, write_project
    from edgeclust.pipeline.layouts import weight_layouts

    # the arena: the host interpreter's measure (reference kernels) plus, under CMSIS_NN, the scratch and kernel
    # sums CMSIS-NN's kernels for this core ask for (backends/tflm/cmsis.py); an AllocateTensors failure is a FAIL
    backend = TflmBackend()
    lowered = backend.lower(tflite, weight_layouts(tflite))
    files = backend.render(lowered, board, [SelfTestCase(x[i], y[i]) for i in range(len(x))])
    with tempfile.TemporaryDirectory(prefix="edgeclust-speed-tflm-") as tmp:
        project = write_project(files, Path(tmp))
        elf = build_make_project(project, board, tflm_root=tflm_root, jobs=2, make_args=(f"OPT={opt}",))
        status, lines = icount.run_icount(elf, board, timeout_s=3600)
        size = elf_size(elf, board)
    return _result(status, "\n".join(lines), board, templates, size)


def _result(status, console, board, templates, size):
    import re

    from edgeclust.device import icount

    verdict = "PASS" if status == 0 and "self-test: PASS" in console else f"FAIL({status})"
    match = re.search(r"inference: (\d+) ticks", console)
    if match is None:
        return None, size.flash, size.ram, verdict, console
    instructions = icount.calibrate(board, templates).instructions_for(int(match.group(1)))
    return instructions, size.flash, size.ram, verdict, console


def _fmt_count(n) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.3f}M" if n < 10e6 else f"{n / 1e6:.1f}M"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--boards", nargs="+", default=list(BOARDS), choices=BOARDS)
    parser.add_argument("--clusters", nargs="+", type=int, default=list(CLUSTERS), help="0: raw int8")
    parser.add_argument("--kernels", type=Path, help="an ec_kernels.c to build in place of the runtime's own")
    parser.add_argument("--label", default="native", help="the native column's name (with --kernels)")
    parser.add_argument("--tflm-root", type=Path, default=os.environ.get("TFLM_ROOT") or None)
    parser.add_argument("--tflm-cmsis-root", type=Path, default=os.environ.get("TFLM_CMSIS_ROOT") or None)
    parser.add_argument(
        "--tflm-opt", default="-O2", help="optimisation of the TFLM firmwares and library (the project's default: -Os)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--console", action="store_true", help="print each firmware's QEMU output under its row")
    args = parser.parse_args()

    import numpy as np

    from edgeclust.backends.native import NativeBackend
    from edgeclust.codegen.board import load_board
    from edgeclust.errors import EdgeclustError
    from edgeclust.pipeline.layouts import weight_layouts
    from edgeclust.resources import boards_dir, templates_dir
    from edgeclust.tflite.parity import run_tflm as tflm_interpreter

    templates = str(templates_dir())
    boards = [load_board(b, boards_dir()) for b in args.boards]
    runtimes = [args.label]
    if args.tflm_root:
        runtimes.append("tflm-ref")
    if args.tflm_cmsis_root:
        runtimes.append("tflm-cmsis")
    backend = NativeBackend()
    header = (
        f"{'model':<10} {'N':>3} {'board':<17} {'MACs':>8} "
        + " ".join(f"{r + ' instr':>15} {'/MAC':>6} {'flash':>8} {'RAM':>7} {'self-test':>9}" for r in runtimes)
        + f" {'flash/limit':>11}"
    )
    print(header, flush=True)
    for name in args.models:
        for clusters in args.clusters:
            tflite, x = build_tflite(name, clusters, args.seed)
            try:
                lowered = backend.lower(tflite, weight_layouts(tflite))
            except EdgeclustError as e:
                print(f"{name:<10} {clusters or 'int8':>3} skipped: {str(e)[:160]}", flush=True)
                continue
            y = backend.run_host(lowered, x)
            if not np.array_equal(y, tflm_interpreter(tflite, x)):
                print(f"{name} N={clusters}: the native host build differs from tflite_micro", flush=True)
            n_macs = macs(tflite)
            for board in boards:
                cells, limit, consoles = [], "-", []
                for runtime in runtimes:
                    try:
                        if runtime == args.label:
                            r = run_native(backend, lowered, x, y, board, templates, args.kernels)
                        else:
                            root = args.tflm_root if runtime == "tflm-ref" else args.tflm_cmsis_root
                            r = run_tflm(tflite, x, y, board, templates, root, args.tflm_opt)
                    except EdgeclustError as e:
                        r = (None, 0, 0, "ERROR", "")
                        print(f"  {name} {board.id} {runtime}: {str(e)[:200]}", flush=True)
                    instr, flash, ram, verdict, console = r
                    consoles.append((runtime, console))
                    per_mac = f"{instr / n_macs:.2f}" if instr and n_macs else "-"
                    cells.append(f"{_fmt_count(instr):>15} {per_mac:>6} {flash:>8,} {ram:>7,} {verdict:>9}")
                    if runtime == args.label:
                        program = lowered.details.program
                        limit = f"{flash_over_limit(program, flash, len(x)):.3f}x" if flash else "-"
                print(
                    f"{name:<10} {clusters or 'int8':>3} {board.id:<17} {n_macs / 1e6:>7.2f}M "
                    + " ".join(cells)
                    + f" {limit:>11}",
                    flush=True,
                )
                for runtime, console in consoles if args.console else ():
                    print(f"  --- {runtime} on {board.id}, qemu-system-arm -icount shift=0:", flush=True)
                    print("".join(f"  | {line}\n" for line in console.splitlines()), end="", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
