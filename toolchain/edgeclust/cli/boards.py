"""`edgeclust boards`: the boards a project can be generated for, with their memory sizes."""

from __future__ import annotations

import json

import click


@click.command("boards")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def command(as_json):
    """List the boards (boards/<id>.toml): MCU, CPU, flash and RAM, build system, and how it is flashed.

    Next: edgeclust build MODEL.keras --board ID --data DATA.npz
    """
    from edgeclust.pipeline.boards import all_boards

    boards = all_boards()
    if as_json:
        click.echo(json.dumps([b.to_dict() for b in boards], indent=2))
        return
    header = f"{'board':<20} {'MCU':<30} {'CPU':<14} {'flash':>11} {'RAM':>11}  {'build':<15} runs with"
    click.echo(header)
    for b in boards:
        runs = f"QEMU {b.qemu_machine}" if b.qemu_machine else b.flash_tool
        cpu = b.cpu + ("+FPU" if b.fpu != "none" else "")
        click.echo(
            f"{b.id:<20} {b.mcu:<30} {cpu:<14} {_kib(b.flash_bytes):>11} {_kib(b.ram_bytes):>11}  "
            f"{b.build_system:<15} {runs}"
        )
    click.echo(
        f"{len(boards)} boards; flash and RAM as the firmware may use them (see the comments in boards/<id>.toml)"
    )


def _kib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB" if n % 1024 == 0 else f"{n:,} B"
