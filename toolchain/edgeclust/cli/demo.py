"""`edgeclust demo`: the whole toolchain on a built-in data set, ending in QEMU when it can."""

from __future__ import annotations

from pathlib import Path

import click

from edgeclust.cli.board_param import BOARD
from edgeclust.pipeline.build_plan import BACKEND_CHOICES


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("edgeclust-demo"),
    show_default=True,
    help="Output folder; a previous demo's output there is replaced.",
)
@click.option("--board", type=BOARD, default="qemu_mps2_an386", show_default=True, help="Board to build for.")
@click.option(
    "--backend",
    type=click.Choice(BACKEND_CHOICES),
    default="auto",
    show_default=True,
    help="What runs the model on the board (see `edgeclust build --help`).",
)
@click.option("--no-run", is_flag=True, help="Build only; do not run the firmware in QEMU.")
@click.option("--force", is_flag=True, help="Replace --out even if it does not hold a previous demo.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def command(out_dir, board, backend, no_run, force, quiet):
    """Train a small CNN on scikit-learn's 8x8 digits, cluster it to 16 values per tensor, build the
    firmware for a QEMU board and run its self-test there (when the cross compiler and QEMU are present; a
    TFLM tree only with --backend tflm). Prints the summary table and what each backend costs the board."""
    from edgeclust.cli.progress import ProgressPrinter
    from edgeclust.cli.summary import summary_lines
    from edgeclust.errors import InputError
    from edgeclust.pipeline.comparison import comparison_lines
    from edgeclust.pipeline.demo import run_demo
    from edgeclust.pipeline.flashing import flash_project, missing_for_qemu

    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "report.json").is_file() and not force:
        raise InputError(f"{out_dir}: exists and does not hold a previous demo; choose another --out or add --force")
    progress = ProgressPrinter(quiet)
    result = run_demo(out_dir, board=board, backend=backend, on_progress=progress)
    click.echo("")
    for line in summary_lines(result.build.report):
        click.echo(line)
    click.echo("")
    for line in comparison_lines(result.prices, board):
        click.echo(line)
    click.echo("")
    click.echo(f"wrote {out_dir}/: report.json, .tflite files, plots/, firmware/, inputs/")

    missing = [] if no_run else missing_for_qemu(out_dir)
    if no_run:
        click.echo(f"not run in QEMU (--no-run); run it with: edgeclust flash {out_dir}")
        return
    if missing:
        click.echo("skipped running the firmware in QEMU; it needs " + "; ".join(missing) + ".")
        click.echo(f"once they are there: edgeclust flash {out_dir}")
        return
    click.echo(f"building the firmware and running it in QEMU ({board.id}) ...")
    outcome = flash_project(out_dir / "firmware", board, on_output=lambda line: click.echo(f"  | {line}"))
    outcome.check()
    click.echo("firmware self-test passed in QEMU")
    if outcome.instructions_line():
        click.echo(outcome.instructions_line())
