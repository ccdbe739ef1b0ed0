"""`edgeclust flash`: build a generated project and run it on its board (QEMU for the QEMU boards)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeclust.cli.board_param import BOARD


@click.command("flash")
@click.argument("project_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "--board",
    "-b",
    type=BOARD,
    default=None,
    help="Board id (see `edgeclust boards`); default: the board the project was generated for.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds the firmware may run (QEMU), or a real board's console may stay without a verdict "
    "after flashing, before it counts as hung.",
)
@click.option(
    "--smoke",
    is_flag=True,
    help="Build and run the smoke firmware instead: checks the model array (size, TFL3, alignment, "
    "CRC32) on the board without TFLM.",
)
@click.option(
    "--tflm-root",
    type=click.Path(path_type=Path),
    default=None,
    help="TFLM source tree (create_tflm_tree.py output); default: $TFLM_ROOT.",
)
@click.option(
    "--port",
    default=None,
    metavar="DEVICE",
    help="A real board's serial console (e.g. /dev/ttyACM0); default: the board file's serial_port pattern.",
)
def command(project_dir, board, timeout_s, smoke, tflm_root, port):
    """Build the firmware project in DIR and flash it: for the QEMU boards, arm-none-eabi-gcc then
    qemu-system-arm; for a real board its flash tool, then its serial console is read. Streams the firmware's
    output and prints its status with what it means (on a QEMU board, run with -icount shift=0, also the
    instructions per inference); exits 0 when the self-test passes, 1 when the firmware
    fails, hangs or faults.

    DIR is the firmware/ folder that `edgeclust build` wrote (or the build's --out folder).
    """
    from edgeclust.pipeline.flashing import flash_project

    outcome = flash_project(
        project_dir, board, timeout_s=timeout_s, smoke=smoke, tflm_root=tflm_root, port=port, on_output=click.echo
    )
    if outcome.instructions_line():
        click.echo(outcome.instructions_line())
    outcome.check()  # FirmwareError: one line with the status and its meaning, exit code 1
    click.echo(outcome.line())
