#!/usr/bin/env python3
"""RAM table: what the native firmware needs in RAM on a board, part by part, for models of the MLPerf Tiny
shapes (DS-CNN keyword spotting, ResNet-8, MobileNetV1 0.25 96x96, FC autoencoder; Keras builders from
scripts/speed_matrix.py, random weights, raw int8 per channel), against TFLM's RAM from its size table.

    PYTHONPATH=toolchain python scripts/ram_table.py                       # the four models on qemu_mps2_an386
    PYTHONPATH=toolchain python scripts/ram_table.py --models ds_cnn --no-run

Columns: the arena as planned (convolutions in place where the plan chooses them), the whole-tensor bound
(the largest sum of whole tensors alive at one step), their ratio, the stack measured from the call graph,
the board's stack margin, statics (data + bss less the arena), RAM reported (their sum, what the build's
budget check uses), TFLM's RAM (arena measured by the tflite_micro interpreter, its runtime, the board's stack
and heap), and, with QEMU, instructions per inference of the whole-tensor plan and of the in-place plan (both
firmwares pass their self-test bit-exact against the tflite_micro interpreter).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "toolchain"))
sys.path.insert(0, str(HERE))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("ds_cnn", "resnet8", "mobilenet", "fc_ae")


def lowered_for(tflite: bytes, in_place: bool):
    from edgeclust.backends.native import NativeBackend
    from edgeclust.backends.native import plan as native_plan
    from edgeclust.pipeline.layouts import weight_layouts

    saved = native_plan.CONV_IN_PLACE
    native_plan.CONV_IN_PLACE = in_place
    try:
        return NativeBackend().lower(tflite, weight_layouts(tflite))
    finally:
        native_plan.CONV_IN_PLACE = saved


def instructions(lowered, x, y, board) -> int | None:
    """Instructions per inference of the firmware in QEMU (None: its self-test failed)."""
    from edgeclust.backends.base import SelfTestCase
    from edgeclust.backends.native import NativeBackend
    from edgeclust.device import icount
    from edgeclust.device.build import build_make_project, write_project
    from edgeclust.resources import templates_dir

    files = NativeBackend().render(lowered, board, [SelfTestCase(x[i], y[i]) for i in range(len(x))])
    with tempfile.TemporaryDirectory(prefix="edgeclust-ram-") as tmp:
        elf = build_make_project(write_project(files, Path(tmp)), board, jobs=2)
        status, lines = icount.run_icount(elf, board, timeout_s=1800)
    console = "\n".join(lines)
    match = re.search(r"inference: (\d+) ticks", console)
    if status != 0 or "self-test: PASS" not in console or match is None:
        return None
    return icount.calibrate(board, str(templates_dir())).instructions_for(int(match.group(1)))


def row(name: str, board, run: bool, seed: int) -> dict:
    from edgeclust.backends.native import NativeBackend
    from edgeclust.backends.tflm import TflmBackend
    from edgeclust.errors import EdgeclustError
    from edgeclust.pipeline.layouts import weight_layouts
    from edgeclust.tflite.parity import run_tflm
    from speed_matrix import build_tflite

    tflite, x = build_tflite(name, 0, seed)
    y = run_tflm(tflite, x)  # the tflite_micro interpreter: the self-test's expected outputs
    lowered = lowered_for(tflite, True)
    program = lowered.details.program
    backend = NativeBackend()
    assert (backend.run_host(lowered, x) == y).all(), f"{name}: the host build differs from tflite_micro"
    cost = backend.price(lowered, board)
    parts = cost.ram_parts
    tflm = TflmBackend()
    try:
        tflm_ram = tflm.price(tflm.lower(tflite, weight_layouts(tflite)), board).ram_used
    except EdgeclustError as exc:  # the interpreter that measures TFLM's arena can fail; the row goes on
        print(f"{name}: no TFLM figure: {exc}", file=sys.stderr)
        tflm_ram = None
    out = {
        "model": name,
        "arena": program.arena_bytes,
        "bound": program.arena_lower_bound,
        "stack": parts["stack"],
        "margin": parts.get("stack margin", 0),
        "statics": parts["statics"],
        "ram": cost.ram_used,
        "tflm": tflm_ram,
        "in_place": program.in_place,
        "whole_ins": None,
        "in_place_ins": None,
    }
    assert cost.ram_used == out["arena"] + out["stack"] + out["margin"] + out["statics"]
    print(f"{name}: arena {out['arena']:,}, bound {out['bound']:,}, RAM {out['ram']:,}", file=sys.stderr)
    if run:
        out["in_place_ins"] = instructions(lowered, x, y, board)
        out["whole_ins"] = instructions(lowered_for(tflite, False), x, y, board) if program.in_place else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--board", default="qemu_mps2_an386")
    parser.add_argument("--no-run", action="store_true", help="no QEMU runs: no instruction counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from edgeclust.codegen.board import load_board
    from edgeclust.resources import boards_dir

    board = load_board(args.board, boards_dir())
    rows = [row(name, board, not args.no_run, args.seed) for name in args.models]
    print(f"board {board.id}; bytes; stack = measured from the call graph, + margin {board.stack_margin_bytes}")
    head = (
        "| model | arena | whole-tensor bound | arena/bound | stack measured | statics | RAM reported "
        "| TFLM RAM | instructions whole / in place |"
    )
    print(head)
    print("|" + "---|" * 9)
    for r in rows:
        if r["whole_ins"] and r["in_place_ins"]:
            change = 100.0 * (r["in_place_ins"] - r["whole_ins"]) / r["whole_ins"]
            ins = f"{r['whole_ins']:,} / {r['in_place_ins']:,} ({change:+.1f}%)"
        elif r["in_place_ins"]:
            ins = f"{r['in_place_ins']:,} (nothing in place)"
        else:
            ins = "-"
        tflm_text = f"{r['tflm']:,}" if r["tflm"] else "-"
        print(
            f"| {r['model']} | {r['arena']:,} | {r['bound']:,} | {r['arena'] / r['bound']:.2f}x | {r['stack']:,} "
            f"| {r['statics']:,} | {r['ram']:,} | {tflm_text} | {ins} |"
        )
    for r in rows:
        tricks = ", ".join(f"{c.step} {c.kind} -{c.saved_bytes:,}" for c in r["in_place"]) or "none"
        print(f"{r['model']}: in place: {tricks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
