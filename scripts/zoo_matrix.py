"""The model zoo on the native backend: common Keras architectures (edgeclust.zoo), each built as a user would
and run under QEMU, as one table: model, TFLite ops, native or the ops it lacks, flash, RAM, instructions per
inference, QEMU verdict.

    PYTHONPATH=toolchain python scripts/zoo_matrix.py [--models mlp,lstm,...] [--out DIR] [--board ID]

For each model (untrained, random weights; random data from edgeclust.zoo.dataset): the int8 .tflite's ops
(edgeclust.tflite.convert.to_tflite, as build converts), then

    edgeclust build M.keras --board qemu_mps2_an386 --data D.npz --clusters 16 --backend native --epochs 0
    edgeclust flash DIR

each a fresh process; instructions per inference as flash prints them (QEMU -icount shift=0), or from one
more run under -icount where it printed none. A build that fails gives its error line (the ops native lacks, or
why not).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TOOLCHAIN = Path(__file__).resolve().parents[1] / "toolchain"
BOARD = "qemu_mps2_an386"


@dataclass
class Row:
    model: str
    ops: str = ""
    native: str = ""
    flash: int | None = None
    ram: int | None = None
    instructions: int | None = None
    qemu: str = ""
    seconds: float = 0.0


def _edgeclust(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(TOOLCHAIN), os.environ.get("PYTHONPATH"))))}
    try:
        command = [sys.executable, "-m", "edgeclust", *args]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"edgeclust: error: timed out after {timeout:.0f} s")


def _error(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.startswith("edgeclust: error:")]
    if lines:
        return lines[-1].removeprefix("edgeclust: error:").strip()
    tail = (done.stderr or done.stdout).strip().splitlines()
    return f"exit {done.returncode}: {tail[-1] if tail else 'no output'}"


def _op_list(tflite: bytes) -> str:
    from edgeclust.tflite.flatbuffer import read_model

    counts = Counter(op.name for sg in read_model(tflite).subgraphs for op in sg.operators)
    return " ".join(f"{name}x{n}" if n > 1 else name for name, n in sorted(counts.items()))


def run_model(name: str, out: Path, board_id: str, timeout: float) -> Row:
    from edgeclust import data as edata
    from edgeclust import zoo
    from edgeclust.errors import EdgeclustError
    from edgeclust.tflite.convert import to_tflite

    started = time.perf_counter()
    row = Row(name)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    model = zoo.build(name)
    dataset = zoo.dataset(model)
    model.save(folder / "model.keras")
    edata.save_npz(folder / "d.npz", dataset)
    try:
        row.ops = _op_list(to_tflite(model, quantize="int8", representative_data=dataset.x_train))
    except EdgeclustError as exc:
        row.ops = f"(int8 conversion failed: {exc})"
    build = _edgeclust(
        ["build", "model.keras", "--board", board_id, "--data", "d.npz", "--clusters", "16", "--backend", "native"]
        + ["--epochs", "0", "--out", "build"],
        folder,
        timeout,
    )
    (folder / "build.log").write_text(build.stdout + build.stderr)
    if build.returncode != 0:
        row.native = _error(build)
        row.qemu = "not built"
        row.seconds = time.perf_counter() - started
        return row
    row.native = "native"
    budget = json.loads((folder / "build" / "report.json").read_text()).get("budget") or {}
    row.flash, row.ram = budget.get("flash_used"), budget.get("ram_used")
    flashed = _edgeclust(["flash", "build"], folder, timeout)
    (folder / "flash.log").write_text(flashed.stdout + flashed.stderr)
    verdict = re.search(r"self-test: (PASS|FAIL)[^\n]*", flashed.stdout)
    row.qemu = verdict.group(0).removeprefix("self-test: ") if verdict else _error(flashed)
    if flashed.returncode == 0:  # flash prints them on a QEMU board; else one more run under -icount
        counted = re.search(r"inference: ([\d,]+) instructions", flashed.stdout)
        row.instructions = (
            int(counted.group(1).replace(",", "")) if counted else _instructions(folder / "build", board_id)
        )
    row.seconds = time.perf_counter() - started
    return row


def _instructions(build_dir: Path, board_id: str) -> int | None:
    """The flashed firmware once more under QEMU -icount shift=0: its inference ticks as instructions."""
    from edgeclust import resources
    from edgeclust.device import icount
    from edgeclust.errors import EdgeclustError
    from edgeclust.pipeline.boards import all_boards

    elf = next(iter(sorted(build_dir.rglob("*.elf"))), None)
    board = next((b for b in all_boards() if b.id == board_id), None)
    if elf is None or board is None:
        return None
    try:
        status, lines = icount.run_icount(elf, board, timeout_s=300)
        ticks = icount.inference_ticks(lines)
        if status != 0 or ticks is None:
            return None
        return icount.calibrate(board, str(resources.templates_dir())).instructions_for(ticks)
    except EdgeclustError:
        return None


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(rows: list[Row]) -> str:
    header = ("model", "TFLite ops (int8)", "native, or what it lacks", "flash", "RAM", "instr/inference", "QEMU")
    cells = [header] + [
        (r.model, r.ops, r.native, _cell(r.flash), _cell(r.ram), _cell(r.instructions), r.qemu) for r in rows
    ]
    lines = ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---" for _ in header) + "|")
    return "\n".join(lines)


def main(argv=None) -> int:
    from edgeclust import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help=f"comma-separated, default all: {','.join(zoo.MODELS)}")
    parser.add_argument("--out", type=Path, default=Path("zoo-matrix"), help="work folder (default ./zoo-matrix)")
    parser.add_argument("--board", default=BOARD, help=f"a QEMU board id (default {BOARD})")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per edgeclust command")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else list(zoo.MODELS)
    unknown = [n for n in names if n not in zoo.MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(zoo.MODELS)}")
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "rows.jsonl", "a") as log:  # each row as soon as it is known
        for name in names:
            row = run_model(name, args.out, args.board, args.timeout)
            print(f"{name}: {row.native}; {row.qemu} ({row.seconds:.0f} s)", flush=True)
            log.write(json.dumps(dataclasses.asdict(row)) + "\n")
            log.flush()
            rows.append(row)
    print()
    print(table(rows))
    deployed = sum(r.qemu.startswith("PASS") for r in rows)
    print(f"\n{deployed} of {len(rows)} deploy natively and pass their QEMU self-test on {args.board}")
    (args.out / "zoo_matrix.md").write_text(table(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
