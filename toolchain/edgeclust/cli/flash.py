"""`edgeclust flash`: build a generated project and run it on its board (QEMU for the QEMU boards)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeclust.cli.board_param import BOARD


@click.command("flash")
@click.argument("project_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--board", "-b", type=BOARD, default=None,
              help="Board id (see `edgeclust boards`); default: the board the project was generated for.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds the firmware may run (QEMU), or a real board's console may stay without a verdict "
                   "after flashing, before it counts as hung.")
@click.option("--smoke", is_flag=True,
              help="Build and run the smoke firmware instead: checks the model array (size, TFL3, alignment, "
                   "CRC32) on the board without TFLM.")
@click.option("--tflm-root", type=click.Path(path_type=Path), default=None,
              help="TFLM source tree (create_tflm_tree.py output); default: $TFLM_ROOT.")
@click.option("--port", default=None, metavar="DEVICE",
              help="A real board's serial console (e.g. /dev/ttyACM0); default: the board file's serial_port pattern.")
def command(project_dir, board, timeout_s, smoke, tflm_root, port):
    """Build the firmware project in DIR and flash it: for the QEMU boards, arm-none-eabi-gcc then
    qemu-system-arm; for a real board its flash tool, then its serial console is read. Streams the firmware's
    output and exits with its status (self-test PASS = 0).

    DIR is the firmware/ folder that `edgeclust build` wrote (or the build's --out folder).
    """
    from edgeclust.device import flash as flash_mod
    from edgeclust.device import qemu
    from edgeclust.codegen import project
    from edgeclust.errors import FirmwareError, InputError

    project_dir = _project_folder(project_dir, InputError)
    if board is None:
        spec = project.read_project_board(project_dir)
    else:
        from edgeclust import resources
        from edgeclust.codegen.board import load_board

        spec = load_board(board, resources.boards_dir())
    status = flash_mod.flash(project_dir, spec, timeout_s=timeout_s, on_output=click.echo, smoke=smoke,
                             tflm_root=tflm_root, port=port)
    what = "smoke firmware" if smoke else "firmware"
    if status != 0:
        meaning = "smoke check FAIL: the model array on the board differs from the host's" if smoke and status == 1 \
            else qemu.status_meaning(status)
        error = FirmwareError(f"the {what} exited with status {status} ({meaning})")
        error.exit_code = status
        raise error
    click.echo(f"{what} exited with status 0 ({'smoke check PASS' if smoke else qemu.status_meaning(0)})")


def _project_folder(path: Path, InputError) -> Path:
    if not path.is_dir():
        raise InputError(f"{path}: no such folder; give the firmware folder that `edgeclust build` wrote")
    if not (path / "board.json").is_file() and (path / "firmware" / "board.json").is_file():
        return path / "firmware"
    return path
