"""`edgeclust demo`: the whole toolchain on a built-in data set, ending in QEMU when it can."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from edgeclust.cli.board_param import BOARD


def _missing_for_qemu() -> list[str]:
    """What running the firmware in QEMU still needs, each with how to get it."""
    missing = []
    if shutil.which("arm-none-eabi-g++") is None:
        missing.append("the Arm cross compiler (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                       "libstdc++-arm-none-eabi-newlib)")
    if shutil.which("qemu-system-arm") is None:
        missing.append("QEMU (apt-get install qemu-system-arm)")
    if not os.environ.get("TFLM_ROOT"):
        missing.append("a TFLite Micro source tree: set TFLM_ROOT (README, 'Running the firmware')")
    return missing


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("edgeclust-demo"),
              show_default=True, help="Output folder; a previous demo's output there is replaced.")
@click.option("--board", type=BOARD, default="qemu_mps2_an386", show_default=True, help="Board to build for.")
@click.option("--no-run", is_flag=True, help="Build only; do not run the firmware in QEMU.")
@click.option("--force", is_flag=True, help="Replace --out even if it does not hold a previous demo.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def command(out_dir, board, no_run, force, quiet):
    """Train a small CNN on scikit-learn's 8x8 digits, cluster it to 16 values per tensor, build the
    firmware for a QEMU board and run its self-test there (when the cross compiler, QEMU and a TFLM tree
    are present). Prints the summary table."""
    from edgeclust.cli.progress import ProgressPrinter
    from edgeclust.cli.summary import summary_lines
    from edgeclust.errors import InputError
    from edgeclust.pipeline.demo import run_demo

    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "report.json").is_file() and not force:
        raise InputError(f"{out_dir}: exists and does not hold a previous demo; choose another --out or add --force")
    progress = ProgressPrinter(quiet)
    result = run_demo(out_dir, board=board, on_progress=progress)
    click.echo("")
    for line in summary_lines(result.build.report):
        click.echo(line)
    click.echo("")
    click.echo(f"wrote {out_dir}/: report.json, .tflite files, plots/, firmware/, inputs/")

    missing = [] if no_run else _missing_for_qemu()
    if no_run:
        click.echo(f"not run in QEMU (--no-run); run it with: edgeclust flash {out_dir}")
        return
    if missing:
        click.echo("skipped running the firmware in QEMU; it needs " + "; ".join(missing) + ".")
        click.echo(f"once they are there: edgeclust flash {out_dir}")
        return
    from edgeclust import resources
    from edgeclust.codegen import board as board_mod
    from edgeclust.device import flash

    click.echo(f"building the firmware and running it in QEMU ({board}) ...")
    status = flash.flash(out_dir / "firmware", board_mod.load_board(board, resources.boards_dir()),
                         on_output=lambda line: click.echo(f"  | {line}"))
    if status != 0:
        from edgeclust.errors import FirmwareError

        raise FirmwareError(f"the firmware's self-test failed in QEMU (exit status {status})")
    click.echo("firmware self-test passed in QEMU")
