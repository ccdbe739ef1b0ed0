#!/usr/bin/env python3
"""Figures of the native backend against TFLM, side by side, for the MNIST CNN at 16, 8 and 4 clusters and the
digits demo model: flash and RAM (native from the real link; TFLM int8 and LUT from edgeclust's budget table,
as no TFLM tree is here), the physical limit (weights x bits / 8 + tables + int32 biases), the arena against its
lower bound and TFLM's measured arena, instructions per inference on qemu_mps2_an386 (-icount shift=0: SysTick
ticks x 40), with and without bucket sums, and host time per image against the tflite_micro interpreter.

    python scripts/native_figures.py                 # MNIST from ../shared/data/mnist; ~5 minutes on 2 cores
    python scripts/native_figures.py --models mnist16
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "toolchain"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("mnist16", "mnist8", "mnist4", "digits16")
BOARD = "qemu_lm3s6965evb"  # the 256 KiB / 64 KiB Cortex-M3: flash and RAM are priced here
TIMING_BOARD = "qemu_mps2_an386"  # instructions per inference: one SysTick tick = 40 instructions there
INSTRUCTIONS_PER_TICK = 40


def build_models(names, mnist_dir: Path, seed: int):
    """name -> (int8 .tflite, int8 test inputs): trained briefly, clustered (LINEAR, no fine-tuning), converted."""
    import keras
    import numpy as np

    from edgeclust import data as edata
    from edgeclust import examples
    from edgeclust.pipeline.stages import ClusterOptions, cluster_model, convert_model

    built = {}
    trained = {}
    for name in names:
        family, clusters = name.rstrip("0123456789"), int(name.lstrip("abcdefghijklmnopqrstuvwxyz"))
        if family not in trained:
            keras.utils.set_random_seed(seed)
            if family == "mnist":
                dataset = edata.load_mnist(mnist_dir).subset(train=5000, test=1000)
                model = examples.compile_for_training(examples.mnist_cnn(seed=seed))
                model.fit(dataset.x_train, dataset.y_train, batch_size=64, epochs=1, verbose=0)
            else:
                dataset = edata.load_digits()
                model = examples.compile_for_training(examples.digits_cnn(seed=seed), learning_rate=3e-3)
                model.fit(dataset.x_train, dataset.y_train, batch_size=32, epochs=3, verbose=0)
            trained[family] = (model, dataset)
        model, dataset = trained[family]
        clustered = cluster_model(model, None, ClusterOptions(clusters=clusters, init="linear", epochs=0)).model
        tflite = convert_model(clustered, quantize="int8", representative=dataset.x_train[:300], per_channel=True)
        from edgeclust.tflite.parity import model_interface, quantize

        x = quantize(dataset.x_test[:1000], model_interface(tflite).inputs[0])
        built[name] = (tflite, np.ascontiguousarray(x))
    return built


def physical_limit(lowered) -> int:
    """Weights x bits / 8 + tables + int32 biases: what the packed weights cannot go below."""
    program = lowered.details.program
    weights = sum(-(-p.weights * p.bits // 8) + p.table_bytes for p in program.packed)
    biases = sum(c.nbytes for c in program.consts if c.kind == "biases")
    return weights + biases


def qemu_ticks(backend, lowered, x, board, make_args=()) -> tuple[int, str]:
    from edgeclust.backends.base import SelfTestCase
    from edgeclust.device.build import build_make_project, write_project
    from edgeclust.device.icount import inference_ticks, run_icount

    y = backend.run_host(lowered, x[:2])
    files = backend.render(lowered, board, [SelfTestCase(x[i], y[i]) for i in range(2)])
    with tempfile.TemporaryDirectory(prefix="edgeclust-figures-") as tmp:
        elf = build_make_project(write_project(files, Path(tmp)), board, make_args=make_args)
        status, lines = run_icount(elf, board, timeout_s=600)
        verdict = "PASS" if status == 0 and any("self-test: PASS" in line for line in lines) else f"FAIL ({status})"
        return inference_ticks(lines) or 0, verdict


def host_times(backend, lowered, tflite, x) -> tuple[float, float]:
    """Seconds per image: native host build (one process for all images) and the tflite_micro interpreter."""
    from edgeclust.tflite.parity import run_tflm

    backend.run_host(lowered, x[:1])  # compiles the host build once (cached): not timed
    started = time.perf_counter()
    ours = backend.run_host(lowered, x)
    native = (time.perf_counter() - started) / len(x)
    started = time.perf_counter()
    reference = run_tflm(tflite, x)
    tflm = (time.perf_counter() - started) / len(x)
    if not (ours == reference).all():
        raise SystemExit("native host outputs differ from TFLM: the figures would be meaningless")
    return native, tflm


def tflm_budgets(tflite: bytes, board, bits: int):
    from edgeclust.backends.tflm.arena import tflm_arena
    from edgeclust.backends.tflm.lut import lut_compress
    from edgeclust.backends.tflm.price import check_budget
    from edgeclust.pipeline.layouts import weight_layouts
    from edgeclust.tflite.flatbuffer import read_model
    from edgeclust.tflite.parity import tflm_arena_bytes

    ops = read_model(tflite).op_names
    arena = tflm_arena_bytes(tflite)
    int8 = check_budget(board, model_bytes=len(tflite), op_names=ops, arena=tflm_arena(arena))
    lut = lut_compress(tflite, weight_layouts(tflite), max_index_bits=min(bits, 7))
    lut_arena = tflm_arena_bytes(lut.model, alt_decompression_bytes=lut.decoded_bytes)
    lut_budget = check_budget(
        board,
        model_bytes=len(lut.model),
        op_names=read_model(lut.model).op_names,
        arena=tflm_arena(lut_arena + lut.decoded_bytes, decoded=lut.decoded_bytes),
    )
    return arena, int8, lut_budget


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from edgeclust.backends.native import NativeBackend
    from edgeclust.codegen.board import load_board
    from edgeclust.pipeline.layouts import weight_layouts
    from edgeclust.resources import boards_dir

    board, timing_board = load_board(BOARD, boards_dir()), load_board(TIMING_BOARD, boards_dir())
    backend = NativeBackend()
    rows = []
    for name, (tflite, x) in build_models(args.models, args.mnist_dir, args.seed).items():
        lowered = backend.lower(tflite, weight_layouts(tflite))
        cost = backend.price(lowered, board)
        bits = max((p.bits for p in lowered.details.program.packed if p.table_bytes), default=8)
        tflm_arena, int8, lut = tflm_budgets(tflite, board, bits)
        ticks, verdict = qemu_ticks(backend, lowered, x, timing_board)
        bucket_ticks, bucket_verdict = qemu_ticks(
            backend, lowered, x, timing_board, make_args=("OPT=-O2 -DEC_BUCKET_SUMS=1",)
        )
        native_s, tflm_s = host_times(backend, lowered, tflite, x)
        rows.append(
            (
                name,
                lowered,
                cost,
                physical_limit(lowered),
                tflm_arena,
                int8,
                lut,
                ticks,
                verdict,
                bucket_ticks,
                bucket_verdict,
                native_s,
                tflm_s,
            )
        )

    print(
        f"\nflash and RAM on {board.name} ({board.flash_bytes:,} B flash, {board.ram_bytes:,} B RAM); "
        "TFLM from edgeclust's budget table (no TFLM tree here)"
    )
    header = (
        f"{'model':<10} {'native flash':>13} {'limit':>9} {'code':>7} {'native RAM':>11} {'TFLM int8 flash':>16} "
        f"{'TFLM int8 RAM':>14} {'TFLM LUT flash':>15} {'TFLM LUT RAM':>13}"
    )
    print(header)
    for name, _lowered, cost, limit, _tflm_arena, int8, lut, *_ in rows:
        print(
            f"{name:<10} {cost.flash_used:>13,} {limit:>9,} {cost.flash_parts['code']:>7,} {cost.ram_used:>11,} "
            f"{int8.flash_used:>16,} {int8.ram_used:>14,} {lut.flash_used:>15,} {lut.ram_used:>13,}"
        )
    print("\narena (bytes): native plan vs its lower bound vs TFLM's measured arena")
    for name, lowered, _cost, _limit, tflm_arena, *_ in rows:
        print(
            f"{name:<10} native {lowered.arena_bytes:>7,}  lower bound {lowered.arena_lower_bound:>7,}  "
            f"TFLM {tflm_arena:>7,}  ({lowered.arena_bytes / tflm_arena:.0%} of TFLM)"
        )
    print(
        f"\ninstructions per inference on {timing_board.name} (SysTick ticks x {INSTRUCTIONS_PER_TICK}); "
        "host seconds per image"
    )
    for name, *_, ticks, verdict, bucket_ticks, bucket_verdict, native_s, tflm_s in rows:
        print(
            f"{name:<10} native {ticks * INSTRUCTIONS_PER_TICK:>12,} (self-test {verdict})  with bucket sums "
            f"{bucket_ticks * INSTRUCTIONS_PER_TICK:>12,} ({bucket_verdict})  host {native_s * 1e6:8.1f} us "
            f"vs tflite_micro {tflm_s * 1e6:8.1f} us"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
